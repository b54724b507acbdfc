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
		t.Logf("uprobe_multi %v: %v per hit", multi, c)
		if c < 100*time.Nanosecond || c > 50*time.Microsecond {
			t.Errorf("uprobe_multi %v: %v per hit", multi, c)
		}
	}
}
