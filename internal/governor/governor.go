// Package governor keeps the map probes within an overhead budget. Map
// functions run millions of times a second and a probe hit costs ~100× a map
// lookup, so the probes are attached in windows (duty cycling), each ended
// early once its share of the budget is spent; counts are then scaled by the
// fraction of the target's work the windows covered. The probes that stay
// attached (the mutex probes) spend the same budget first.
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
	// Fixed is the number of hits so far of the probes that stay attached,
	// nil if none: their cost comes out of the budget before the map
	// probes'.
	Fixed func() uint64
	// CPU is the target's CPU time so far.
	CPU func() (time.Duration, error)
}

// Governor runs the duty cycle.
type Governor struct {
	cfg Config

	mu       sync.Mutex
	onCPU    time.Duration // target CPU time while attached, probes included
	onFixed  time.Duration // of which estimated time in the probes that stay attached
	offFixed time.Duration // the same while not fully attached
	onSpan   time.Duration // wall time fully attached (after attach, before detach)
	offCPU   time.Duration // target CPU time while not fully attached
	// Map probe hits while fully attached, and in whole windows (attach
	// and detach included): the windows' hits are all counted, so the
	// work they cover is the attached work scaled by the two's ratio.
	onHits, windowHits uint64
	wallTime           time.Duration

	// first is the first window, attached by Begin.
	first struct {
		start time.Time
		cpu   time.Duration
		hits  uint64
	}
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

// Begin attaches the probes for the first window, so that tracing covers the
// target from the moment the caller returns.
func (g *Governor) Begin() error {
	g.first.start = time.Now()
	g.first.cpu = g.cpuNow()
	g.first.hits = g.cfg.Hits()
	return g.cfg.Attach()
}

// Run cycles the probes, after Begin, until ctx is done, and leaves them
// detached.
//
// Each period's allowance is the budget's share of the target's CPU time
// (measured over the period before), less what the probes that stay
// attached spent in the period before, less any overspending so far (a
// window overshoots by what fires between its last check and its detach).
// When nothing is left, the period has no window.
func (g *Governor) Run(ctx context.Context) error {
	if g.cfg.Budget >= 1 {
		<-ctx.Done()
		g.cfg.Detach()
		return nil
	}
	rate := 1.0 // target CPUs busy, until measured
	var fixedPrev, debt time.Duration
	for attached := true; ctx.Err() == nil; attached = false {
		start, cpuStart, hStart := g.first.start, g.first.cpu, g.first.hits
		fixedStart := g.fixedCost()
		allowance := time.Duration(g.cfg.Budget * rate * float64(g.cfg.Period))
		allowed := allowance - fixedPrev - debt
		if !attached {
			start, hStart = time.Now(), g.cfg.Hits()
			cpuStart, _ = g.cfg.CPU()
			if allowed > 0 {
				if err := g.cfg.Attach(); err != nil {
					return err
				}
				attached = true
			}
		}
		// The attached interval is measured from after the attach to
		// before the detach: while they run, the probes are only partly
		// in place and the target works mostly unobserved. Their hits
		// are the window's all the same, spent from its allowance.
		cpu0, h0, f0, t0 := g.cpuNow(), g.cfg.Hits(), g.fixedCost(), time.Now()
		cpu1, h1, f1, span := cpu0, h0, f0, time.Duration(0)
		if attached {
			g.window(ctx, start, hStart, allowed)
			cpu1, h1, f1, span = g.cpuNow(), g.cfg.Hits(), g.fixedCost(), time.Since(t0)
			g.cfg.Detach()
		}
		hEnd := g.cfg.Hits()
		probe := time.Duration(hEnd-hStart) * g.cfg.HitCost

		sleep(ctx, g.cfg.Period-time.Since(start))
		cpuEnd, fixedEnd := g.cpuNow(), g.fixedCost()
		wall := time.Since(start)
		fixed := fixedEnd - fixedStart

		g.mu.Lock()
		g.onCPU += cpu1 - cpu0
		g.onFixed += f1 - f0
		g.offFixed += fixed - (f1 - f0)
		g.onSpan += span
		g.offCPU += cpuEnd - cpuStart - (cpu1 - cpu0)
		g.onHits += h1 - h0
		g.windowHits += hEnd - hStart
		g.wallTime += wall
		g.mu.Unlock()
		fixedPrev = fixed
		debt = max(0, debt+probe+fixed-allowance)
		if wall > 0 {
			rate = max(0.05, float64(cpuEnd-cpuStart-probe-fixed)/float64(wall))
		}
	}
	return nil
}

// fixedCost is the estimated time spent so far in the probes that stay
// attached.
func (g *Governor) fixedCost() time.Duration {
	if g.cfg.Fixed == nil {
		return 0
	}
	return time.Duration(g.cfg.Fixed()) * g.cfg.HitCost
}

func (g *Governor) cpuNow() time.Duration {
	d, _ := g.cfg.CPU()
	return d
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

// Fraction estimates the share of the target's map operations that happened
// while the probes were attached; observed counts divided by it estimate the
// true counts. It is 1 when always attached.
//
// The share is that of the target's work (CPU time less the probes' own)
// done while attached, scaled by the windows' hits over those while fully
// attached: hits while the probes attach and detach are counted too. Where
// the probes took most of the attached CPU time, that difference is too
// small to trust, and the share of time attached is used instead. That is
// right for a target whose map operations are paced by something else (I/O,
// timers, locks): the probes then add CPU time without slowing it. A target
// that was busy anyway — a loop doing little but map operations — was slowed
// by them, and the estimate is a lower bound (LowerBound says so).
func (g *Governor) Fraction() float64 {
	f, _ := g.estimate()
	return f
}

// LowerBound reports whether the scaled counts are lower bounds.
func (g *Governor) LowerBound() bool {
	_, lb := g.estimate()
	return lb
}

const (
	// probeDominated is the share of attached CPU time spent in probes
	// above which the work left over is not trusted.
	probeDominated = 0.75
	// pacedRise is how much more CPU the target used while attached than
	// while not for the probes to count as added, not displacing, work.
	pacedRise = 1.3
)

func (g *Governor) estimate() (fraction float64, lowerBound bool) {
	if g.cfg.Budget >= 1 {
		return 1, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	onProbe := time.Duration(g.onHits) * g.cfg.HitCost
	offProbe := time.Duration(g.windowHits-g.onHits) * g.cfg.HitCost // attaching and detaching
	onCPU, offCPU := g.onCPU-g.onFixed, g.offCPU-g.offFixed-offProbe // the target's and map probes'
	onWork := onCPU - onProbe
	scale := 1.0 // attaching and detaching cover part of the work too
	if g.onHits > 0 {
		scale = float64(g.windowHits) / float64(g.onHits)
	}
	if onCPU > 0 && float64(onProbe) < probeDominated*float64(onCPU) && onWork+offCPU > time.Millisecond {
		return min(1, scale*float64(onWork)/float64(onWork+offCPU)), false
	}
	if g.wallTime == 0 {
		return 1, false
	}
	fraction = min(1, scale*float64(g.onSpan)/float64(g.wallTime))
	offSpan := g.wallTime - g.onSpan
	if onProbe == 0 || g.onSpan == 0 || offSpan <= 0 {
		return fraction, false
	}
	rateOn := float64(onCPU) / float64(g.onSpan)
	rateOff := float64(offCPU) / float64(offSpan)
	return fraction, rateOn < pacedRise*rateOff
}
