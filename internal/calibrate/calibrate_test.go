package calibrate

import (
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
			if c.Hit < 100*time.Nanosecond || c.Hit > 50*time.Microsecond {
				t.Errorf("%v per hit", c.Hit)
			}
			// The program times itself: some of the hit, not all of it (the
			// trap is the kernel's).
			if c.Program <= 0 || c.Program >= c.Hit {
				t.Errorf("program %v of a %v hit", c.Program, c.Hit)
			}
		})
	}
}
