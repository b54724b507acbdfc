package target

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		start      uint64
		state      byte
		bad        bool
	}{
		{"plain", "1234 (server) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 8 0 987654 123456 789", 987654, 'S', false},
		{"name with spaces and parens", "77 (a) b) (c d) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", 42, 'R', false},
		{"zombie", "78 (srv) Z 1 78 78 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 43 0 0", 43, 'Z', false},
		{"truncated", "77 (x) R 1 2 3", 0, 0, true},
		{"no name", "garbage", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, state, err := parseStat(tc.stat)
			if (err != nil) != tc.bad || start != tc.start || state != tc.state {
				t.Errorf("parseStat = %d, %q, %v; want %d, %q (error: %v)", start, state, err, tc.start, tc.state, tc.bad)
			}
		})
	}
}

func TestStartTime(t *testing.T) {
	a, err := StartTime(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("StartTime(self) = %d, %v", a, err)
	}
	if b, _ := StartTime(os.Getpid()); b != a {
		t.Errorf("StartTime changed: %d then %d", a, b)
	}
	if _, err := StartTime(1 << 30); err == nil {
		t.Error("StartTime of no process: no error")
	}
	if !Running(os.Getpid(), a) || Running(os.Getpid(), a+1) || Running(1<<30, a) {
		t.Error("Running is wrong about this process, another start time or no process")
	}
}

// TestExitsWithin checks the exit test that decides whether a failed attach
// is the target's exit: a running process does not exit within the wait, one
// that exits does, before and after it is reaped.
func TestExitsWithin(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	p, err := Find(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	if p.ExitsWithin(50*time.Millisecond) || !p.Alive() {
		t.Fatal("a sleeping process exited")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("waited %v for a running process, want 50ms", waited)
	}
	time.AfterFunc(20*time.Millisecond, func() { cmd.Process.Kill() })
	if !p.ExitsWithin(5 * time.Second) {
		t.Fatal("a killed process did not exit within 5s")
	}
	cmd.Wait()
	if !p.ExitsWithin(0) || p.Alive() {
		t.Error("a reaped process is alive")
	}
}
