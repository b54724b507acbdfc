package calibrate

import (
	"runtime"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestMeasure checks the cost of a hit is in the range a uprobe can cost:
// hundreds of nanoseconds (an emulated instruction on bare metal) to tens of
// microseconds (a slow VM).
func TestMeasure(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, multi := range []bool{true, false} {
		t.Run(map[bool]string{true: "multi", false: "perf-event"}[multi], func(t *testing.T) {
			f := preflight.ProbeFeatures()
			if multi {
				testtarget.NeedFeature(t, preflight.KernelUprobeMulti, f.UprobeMulti)
			} else {
				testtarget.NeedFeature(t, preflight.KernelPerfLink, f.PerfLink)
			}
			testtarget.NeedFeature(t, preflight.KernelCookie, f.Cookie)
			c, err := Measure(152, probes.LayoutFor("go1.26"), multi)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v per hit, %v of it in the program", c.Hit, c.Program)
			limit := 50 * time.Microsecond
			if testtarget.Emulated() && runtime.GOARCH == "arm64" {
				// make test-kernels emulates arm64 on amd64, instruction
				// by instruction: 10 to 20 times slower than its amd64
				// guests.
				limit = time.Millisecond
			}
			if c.Hit < 100*time.Nanosecond || c.Hit > limit {
				t.Errorf("%v per hit", c.Hit)
			}
			// The program times itself: some of the hit, not all of it (the
			// trap is the kernel's). Under emulation the clock reads that
			// time it cost as much as the trap, and the two measures, one
			// from the loop and one from the program, can meet (Measure
			// caps the program's at the hit).
			if c.Program <= 0 || c.Program > c.Hit || c.Program == c.Hit && !testtarget.Emulated() {
				t.Errorf("program %v of a %v hit", c.Program, c.Hit)
			}
		})
	}
}

// TestSiteCosts measures what site selection relies on: a probe on the
// function's first instruction, which the kernel single-steps (amd64's
// CMPQ, arm64's LDR), costs more than one on the entry site, which it
// emulates (amd64's PUSHQ BP or JBE, arm64's B.LS); a call (CALL, BL) is
// emulated too. The figures go to make test-kernels' table.
func TestSiteCosts(t *testing.T) {
	testtarget.NeedRoot(t)
	f := preflight.ProbeFeatures()
	multi := f.UprobeMulti == nil
	if !multi {
		testtarget.NeedFeature(t, preflight.KernelPerfLink, f.PerfLink)
	}
	testtarget.NeedFeature(t, preflight.KernelCookie, f.Cookie)
	costs, err := measureSites(152, probes.LayoutFor("go1.26"), multi, func(s probes.Sites, first uint64) []uint64 {
		if len(s.Calls) == 0 || s.Entry == first {
			t.Fatalf("probed has no call, or no stack check: %+v", s)
		}
		return []uint64{s.Entry, first, s.Calls[0].At}
	})
	if err != nil {
		t.Fatal(err)
	}
	entry, first, call := costs[0].Hit, costs[1].Hit, costs[2].Hit
	t.Logf("entry site %v, first instruction %v, call %v per hit (%s)", entry, first, call, runtime.GOARCH)
	if first <= entry {
		t.Errorf("the single-stepped first instruction (%v per hit) costs no more than the entry site (%v)", first, entry)
	}
}
