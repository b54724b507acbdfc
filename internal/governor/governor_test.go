package governor

import (
	"context"
	"testing"
	"time"
)

// record sets the governor's measurements.
func (g *Governor) record(onCPU, onProbe, onSpan, offCPU, onTime, wall time.Duration) {
	g.onCPU, g.onProbe, g.onSpan, g.offCPU, g.onTime, g.wallTime = onCPU, onProbe, onSpan, offCPU, onTime, wall
}

func TestEstimate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name                                         string
		onCPU, onProbe, onSpan, offCPU, onTime, wall time.Duration
		fraction                                     float64
		lowerBound                                   bool
	}{
		// Probes took 20ms of 50ms attached: 30ms of work against 270ms off.
		{"work-based", 50 * ms, 20 * ms, 50 * ms, 270 * ms, 55 * ms, 500 * ms, 0.1, false},
		// Probes took nearly all attached CPU, and the target used no more
		// CPU attached than not (busy either way): slowed, a lower bound.
		{"busy loop", 50 * ms, 48 * ms, 50 * ms, 450 * ms, 50 * ms, 500 * ms, 0.1, true},
		// Probes took most attached CPU but only added to a mostly idle
		// target's: paced, the time share is right.
		{"paced", 10 * ms, 8 * ms, 50 * ms, 9 * ms, 50 * ms, 500 * ms, 0.1, false},
		// Nothing measured yet.
		{"no windows", 0, 0, 0, 0, 0, 0, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Config{Budget: 0.05})
			g.record(tc.onCPU, tc.onProbe, tc.onSpan, tc.offCPU, tc.onTime, tc.wall)
			f, lb := g.estimate()
			if diff := f - tc.fraction; diff > 1e-9 || diff < -1e-9 || lb != tc.lowerBound {
				t.Errorf("estimate = %v, %v; want %v, %v", f, lb, tc.fraction, tc.lowerBound)
			}
		})
	}
	if f, lb := New(Config{Budget: 1}).estimate(); f != 1 || lb {
		t.Errorf("always attached: %v, %v", f, lb)
	}
}

// TestRunCycles runs the duty cycle against a fake target whose every hit
// costs 1ms: each window must end once it has spent its allowance, and the
// probes must end detached.
func TestRunCycles(t *testing.T) {
	var attached bool
	var attaches int
	start := time.Now()
	hits := func() uint64 {
		if !attached {
			return 0
		}
		return uint64(time.Since(start) / time.Millisecond) // 1 hit per ms while attached
	}
	var total uint64
	t0 := time.Now() // one CPU, busy throughout
	g := New(Config{
		Budget:  0.1,
		HitCost: time.Millisecond,
		Period:  200 * time.Millisecond,
		Attach:  func() error { attached = true; attaches++; start = time.Now(); return nil },
		Detach:  func() { total += hits(); attached = false },
		Hits:    func() uint64 { return total + hits() },
		CPU:     func() (time.Duration, error) { return time.Since(t0), nil },
	})
	if err := g.Begin(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if attached {
		t.Error("probes left attached")
	}
	if attaches < 4 {
		t.Errorf("%d windows in 1s of 200ms periods", attaches)
	}
	// Budget 10% of one CPU for 200ms is 20ms of probe time: about 20 hits
	// a window (18 once the probes' own share is taken out of the rate).
	if perWindow := total / uint64(attaches); perWindow < 15 || perWindow > 25 {
		t.Errorf("%d hits a window, want about 20", perWindow)
	}
}
