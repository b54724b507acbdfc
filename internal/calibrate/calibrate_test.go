package calibrate

import (
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestMeasure checks the cost of a hit is in the range a uprobe can cost:
// hundreds of nanoseconds (an emulated instruction on bare metal) to tens of
// microseconds (a slow VM).
func TestMeasure(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, multi := range []bool{true, false} {
		c, err := Measure(152, probes.LayoutFor("go1.26"), multi)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("uprobe_multi %v: %v per hit, %v of it in the program", multi, c.Hit, c.Program)
		if c.Hit < 100*time.Nanosecond || c.Hit > 50*time.Microsecond {
			t.Errorf("uprobe_multi %v: %v per hit", multi, c.Hit)
		}
		// The program times itself: some of the hit, not all of it (the
		// trap is the kernel's).
		if c.Program <= 0 || c.Program >= c.Hit {
			t.Errorf("uprobe_multi %v: program %v of a %v hit", multi, c.Program, c.Hit)
		}
	}
}
