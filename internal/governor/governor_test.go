package governor

import (
	"context"
	"testing"
	"time"
)

// record sets the governor's measurements, onProbe as hits of 1ms each
// (newEstimator's), none of them while attaching or detaching.
func (g *Governor) record(onCPU, onProbe, onSpan, offCPU, wall time.Duration) {
	g.onCPU, g.onSpan, g.offCPU, g.wallTime = onCPU, onSpan, offCPU, wall
	g.onHits = uint64(onProbe / g.cfg.HitCost)
	g.windowHits = g.onHits
}

// newEstimator is a governor with a 5% budget and 1ms probe hits.
func newEstimator() *Governor {
	return New(Config{Budget: 0.05, HitCost: time.Millisecond})
}

func TestEstimate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name                                 string
		onCPU, onProbe, onSpan, offCPU, wall time.Duration
		fraction                             float64
		lowerBound                           bool
	}{
		// Probes took 20ms of 50ms attached: 30ms of work against 270ms off.
		{"work-based", 50 * ms, 20 * ms, 50 * ms, 270 * ms, 500 * ms, 0.1, false},
		// Probes took nearly all attached CPU, and the target used no more
		// CPU attached than not (busy either way): slowed, a lower bound.
		{"busy loop", 50 * ms, 48 * ms, 50 * ms, 450 * ms, 500 * ms, 0.1, true},
		// Probes took most attached CPU but only added to a mostly idle
		// target's: paced, the time share is right.
		{"paced", 10 * ms, 8 * ms, 50 * ms, 9 * ms, 500 * ms, 0.1, false},
		// Nothing measured yet.
		{"no windows", 0, 0, 0, 0, 0, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newEstimator()
			g.record(tc.onCPU, tc.onProbe, tc.onSpan, tc.offCPU, tc.wall)
			f, lb := g.estimate()
			if diff := f - tc.fraction; diff > 1e-9 || diff < -1e-9 || lb != tc.lowerBound {
				t.Errorf("estimate = %v, %v; want %v, %v", f, lb, tc.fraction, tc.lowerBound)
			}
		})
	}
	// The probes that stay attached did no work either: of 50ms attached,
	// 10ms was theirs and 20ms the map probes'; of 270ms off, 100ms theirs.
	g := newEstimator()
	g.record(50*ms, 20*ms, 50*ms, 270*ms, 500*ms)
	g.onFixed, g.offFixed = 10*ms, 100*ms
	if f, _ := g.estimate(); f < 20.0/190-1e-9 || f > 20.0/190+1e-9 {
		t.Errorf("with probes that stay attached: estimate = %v, want %v", f, 20.0/190)
	}
	// Half as many hits again while attaching and detaching (10ms of probe
	// time, off): they cover half as much work again as the 30ms attached.
	g = newEstimator()
	g.record(50*ms, 20*ms, 50*ms, 280*ms, 500*ms)
	g.windowHits = 30
	if f, _ := g.estimate(); f < 0.15-1e-9 || f > 0.15+1e-9 {
		t.Errorf("with hits while attaching: estimate = %v, want 0.15", f)
	}
	if f, lb := New(Config{Budget: 1}).estimate(); f != 1 || lb {
		t.Errorf("always attached: %v, %v", f, lb)
	}
}

// fakeTarget is one busy CPU whose map probes hit once a millisecond while
// attached, and whose probes that stay attached hit fixedEvery, each hit
// costing 1ms. Attaching and detaching take link each, the probes firing
// through it, as the first of many uprobes is in place before the last.
type fakeTarget struct {
	attached   bool
	attaches   int
	start      time.Time
	total      uint64
	t0         time.Time
	fixedEvery time.Duration
	link       time.Duration
}

func (f *fakeTarget) hits() uint64 {
	if !f.attached {
		return 0
	}
	return uint64(time.Since(f.start) / time.Millisecond)
}

// run runs a governor with budget 10% and 200ms periods for 1s.
func (f *fakeTarget) run(t *testing.T) {
	f.t0 = time.Now()
	cfg := Config{
		Budget:  0.1,
		HitCost: time.Millisecond,
		Period:  200 * time.Millisecond,
		Attach: func() error {
			f.attached, f.start = true, time.Now()
			f.attaches++
			time.Sleep(f.link)
			return nil
		},
		Detach: func() {
			time.Sleep(f.link)
			f.total += f.hits()
			f.attached = false
		},
		Hits: func() uint64 { return f.total + f.hits() },
		CPU:  func() (time.Duration, error) { return time.Since(f.t0), nil },
	}
	if f.fixedEvery > 0 {
		cfg.Fixed = func() uint64 { return uint64(time.Since(f.t0) / f.fixedEvery) }
	}
	g := New(cfg)
	if err := g.Begin(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if f.attached {
		t.Error("probes left attached")
	}
}

// TestRunCycles: each window must end once it has spent its allowance, hits
// while the probes attach and detach included, and the probes must end
// detached.
func TestRunCycles(t *testing.T) {
	for _, link := range []time.Duration{0, 5 * time.Millisecond} {
		f := &fakeTarget{link: link}
		f.run(t)
		if f.attaches < 4 {
			t.Errorf("link %v: %d windows in 1s of 200ms periods", link, f.attaches)
		}
		// Budget 10% of one CPU for 200ms is 20ms of probe time: about 20
		// hits a window (18 once the probes' own share is taken out of the
		// rate), not 20 plus the 10 that fire while slow links attach and
		// detach.
		if perWindow := f.total / uint64(f.attaches); perWindow < 15 || perWindow > 25 {
			t.Errorf("link %v: %d hits a window, want about 20", link, perWindow)
		}
	}
}

// TestRunFixedFirst: the probes that stay attached spend the budget first.
func TestRunFixedFirst(t *testing.T) {
	// They take 5% of the CPU (a 1ms hit every 20ms): of the 20ms a period
	// allows, ~10ms is theirs, so the map windows after the first (which
	// knows nothing yet) get about 7 hits (10% of the 85% left, less 10).
	f := &fakeTarget{fixedEvery: 20 * time.Millisecond}
	f.run(t)
	if f.attaches < 4 {
		t.Errorf("%d windows in 1s of 200ms periods", f.attaches)
	}
	if later := (f.total - 20) / uint64(f.attaches-1); later < 4 || later > 11 {
		t.Errorf("%d hits in all, %d windows: %d a window after the first, want about 7", f.total, f.attaches, later)
	}

	// They take 20%, twice the budget: no window after the first.
	f = &fakeTarget{fixedEvery: 5 * time.Millisecond}
	f.run(t)
	if f.attaches != 1 {
		t.Errorf("%d windows with the budget spent by the probes that stay attached, want 1 (Begin's)", f.attaches)
	}
}
