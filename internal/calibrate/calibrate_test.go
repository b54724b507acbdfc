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
			t.Logf("%v per hit", c)
			if c < 100*time.Nanosecond || c > 50*time.Microsecond {
				t.Errorf("%v per hit", c)
			}
		})
	}
}
