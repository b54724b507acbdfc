package trace

import (
	"context"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestWindowAfterExit checks that a window's attach that fails because the
// target has just exited (its map and mutex probes duty-cycled, as the demo's
// target dies of a map race) ends the trace with the exit, and its report,
// rather than with an error.
func TestWindowAfterExit(t *testing.T) {
	testtarget.NeedAttach(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", "local"))
	sess, err := Start(Options{PID: p.PID(), Mutex: true, Maps: true, Overhead: 5})
	if err != nil {
		t.Fatal(err)
	}
	s := sess.s
	s.detachMaps()
	s.detachMutex()
	p.Cmd.Process.Kill()
	p.Exited(t, 10*time.Second)
	for _, attach := range []func() error{s.attachMaps, s.attachMutex} {
		if err := attach(); err != nil {
			t.Errorf("attach after the target's exit: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := sess.Wait(ctx)
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	if r.EndedBy != report.EndedByTargetExit {
		t.Errorf("ended by %q, want %q", r.EndedBy, report.EndedByTargetExit)
	}
}
