// Package governor keeps the map probes within an overhead budget. Map
// functions run millions of times a second and a probe hit costs ~100× a map
// lookup, so the probes are attached in windows (duty cycling), each ended
// early once its share of the budget is spent; counts are then scaled by the
// fraction of the target's work the windows covered.
package governor

import (
	"context"
	"sync"
	"time"
)

// Config is what the governor controls and measures.
type Config struct {
	// Budget is the share of the target's CPU time the probes may take;
	// 1 or more means always attached (exact counts).
	Budget float64
	// HitCost is the calibrated cost of one probe hit.
	HitCost time.Duration
	// Period is the duty cycle's length; 500ms if zero.
	Period time.Duration
	Attach func() error
	Detach func()
	// Hits is the number of governed probe hits so far.
	Hits func() uint64
	// CPU is the target's CPU time so far.
	CPU func() (time.Duration, error)
}

// Governor runs the duty cycle.
type Governor struct {
	cfg Config

	mu       sync.Mutex
	onWork   time.Duration // target work (minus probe time) while attached
	offWork  time.Duration // target work while detached
	onTime   time.Duration
	wallTime time.Duration
}

// pollEvery is how often a window checks its spending.
const pollEvery = 2 * time.Millisecond

// New returns a governor for cfg.
func New(cfg Config) *Governor {
	if cfg.Period == 0 {
		cfg.Period = 500 * time.Millisecond
	}
	return &Governor{cfg: cfg}
}

// Run cycles the probes until ctx is done, and leaves them detached.
func (g *Governor) Run(ctx context.Context) error {
	if g.cfg.Budget >= 1 {
		if err := g.cfg.Attach(); err != nil {
			return err
		}
		<-ctx.Done()
		g.cfg.Detach()
		return nil
	}
	rate := 1.0 // target CPUs busy, until measured
	for ctx.Err() == nil {
		start := time.Now()
		cpu0, _ := g.cfg.CPU()
		h0 := g.cfg.Hits()
		if err := g.cfg.Attach(); err != nil {
			return err
		}
		allowed := time.Duration(g.cfg.Budget * rate * float64(g.cfg.Period))
		g.window(ctx, start, h0, allowed)
		g.cfg.Detach()
		onTime := time.Since(start)
		cpu1, _ := g.cfg.CPU()
		probe := time.Duration(g.cfg.Hits()-h0) * g.cfg.HitCost

		sleep(ctx, g.cfg.Period-onTime)
		cpu2, _ := g.cfg.CPU()
		wall := time.Since(start)

		g.mu.Lock()
		g.onWork += max(0, cpu1-cpu0-probe)
		g.offWork += cpu2 - cpu1
		g.onTime += onTime
		g.wallTime += wall
		g.mu.Unlock()
		if wall > 0 {
			rate = max(0.05, float64(cpu2-cpu0-probe)/float64(wall))
		}
	}
	return nil
}

// window waits while attached, until the period ends or the window has
// spent its allowance.
func (g *Governor) window(ctx context.Context, start time.Time, h0 uint64, allowed time.Duration) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		spent := time.Duration(g.cfg.Hits()-h0) * g.cfg.HitCost
		if spent >= allowed || time.Since(start) >= g.cfg.Period {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Fraction is the share of the target's work done while the probes were
// attached: observed counts divided by it estimate the true counts. It is 1
// when always attached, and the attached share of wall time when the target
// did no measurable work.
func (g *Governor) Fraction() float64 {
	if g.cfg.Budget >= 1 {
		return 1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if work := g.onWork + g.offWork; work > time.Millisecond {
		return float64(g.onWork) / float64(work)
	}
	if g.wallTime > 0 {
		return float64(g.onTime) / float64(g.wallTime)
	}
	return 1
}
