// Package governor keeps the probes within an overhead budget. Map functions
// run millions of times a second and a probe hit costs ~100× a map lookup,
// so the map probes are attached in windows (duty cycling), each ended early
// once its share of the budget is spent; counts are then scaled by the
// fraction of the target's work the windows covered. The mutex probes fire
// only when a goroutine parks: they stay attached and spend the budget first
// while it holds them, and are duty-cycled too when they alone exceed their
// share of it, all of it but mapShare when the map probes are traced too.
//
// What the probes cost is measured, not only assumed: each hit is charged
// the calibrated cost times a factor measured in the target, from the
// kernel-mode share of its CPU-clock samples with probes attached against
// without (a hit is kernel time of the target's thread: the trap, the
// program, the cache and TLB misses around them). maptrace's own CPU time
// is charged too where the machine had no idle CPU to run it on, and so are
// those samples: each interrupts the target. Each group
// of probes is also measured by the samples taken while the kernel runs
// them, which needs no contrast: the mutex probes stay attached on both
// sides of the map windows' edges.
package governor

import (
	"context"
	"math"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/report"
)

// Group is probes attached and detached together.
type Group struct {
	Attach func() error
	Detach func()
	// Hits is the group's probe hits so far.
	Hits func() uint64
	// Recorded, optional, is how many of them recorded what they saw: the
	// map probes record nothing while they detach (they fire until the
	// kernel has removed them all, tens of milliseconds on a busy target),
	// so that a window's records are of its fully attached time. All of
	// them if nil.
	Recorded func() uint64
	// Tail, optional, is how long, in the last Detach, the probes that end
	// an event (a mutex wait's wake-up) stayed attached after those that
	// begin one (its park) were detached, at the start of Detach.
	Tail func() time.Duration
	// Cost, optional, is what one of the group's hits costs as measured so
	// far (the trap, and its programs' run time in the target); HitCost if
	// nil. The measured factor applies on top.
	Cost func() time.Duration
	// Sampled, optional, is what one of the group's hits costs by the
	// target's CPU-clock samples taken while the kernel ran its probes,
	// 0 until there are enough of them, and how many samples those are:
	// the cost replaces Cost times the factor where higher. It measures
	// the group's own hits, where the factor needs probes cut within a
	// period to contrast with, and the mutex probes, cut only over budget,
	// seldom are. While the samples are few, the duty cycle prices the
	// group's hits higher by twice their relative error.
	Sampled func() (cost time.Duration, samples uint64)
}

// Config is what the governor controls and measures.
type Config struct {
	// Budget is the share of the target's CPU time the probes may take;
	// 1 or more means always attached (exact counts).
	Budget float64
	// HitCost is the calibrated cost of one probe hit.
	HitCost time.Duration
	// Period is the duty cycle's length; 500ms if zero.
	Period time.Duration
	// Mutex are the mutex probes, nil if not traced: kept attached while
	// their cost fits the budget, duty-cycled when it does not.
	Mutex *Group
	// Maps are the map probes, nil if not traced: attached in windows in
	// what the mutex probes leave of the budget.
	Maps *Group
	// Fixed is the number of hits so far of probes that stay attached
	// whatever they cost (the fatal-error probe), nil if none.
	Fixed func() uint64
	// CPU is the target's CPU time so far.
	CPU func() (time.Duration, error)
	// CPUs is how many CPUs the target may run on; 0 if unknown.
	CPUs int
	// Rate is the target's CPU rate (CPUs busy) measured before Begin,
	// for the first period's allowance; 0 if unknown, and the first
	// period allows for a whole CPU. An idle target allowed that much
	// spends in its first window what its budget allows over many
	// periods, and its map windows wait for the debt to be paid.
	Rate float64
	// Samples are the target's CPU-clock samples so far, all and the
	// kernel's (in kernel mode, or where a probe's trap returns to), at Hz
	// a CPU; nil if not sampled, and the cost of a hit stays the
	// calibrated one.
	Samples func() (all, kernel uint64, err error)
	Hz      float64
	// Own is maptrace's own CPU time so far; Machine the machine's idle
	// and busy CPU time so far, summed over its CPUs. Either nil: maptrace's
	// own CPU time is not charged.
	Own     func() time.Duration
	Machine func() (idle, busy time.Duration, err error)
	// Sampler is what sampling the target's CPU clock cost it so far (the
	// interrupts and the program), charged to the budget before the
	// probes; nil if not sampled.
	Sampler func() time.Duration
}

// Governor runs the duty cycle.
type Governor struct {
	cfg   Config
	begun time.Time

	mu sync.Mutex
	// The map fraction's measurements.
	onCPU    time.Duration // target CPU time while the map probes were fully attached, probes included
	onFixed  time.Duration // of which the other probes' estimated time
	offFixed time.Duration // the other probes' time while not fully attached
	onSpan   time.Duration // wall time fully attached (from the first check after the attach to before the detach)
	recSpan  time.Duration // wall time recording (from the end of the attach to before the detach)
	offCPU   time.Duration // target CPU time while not fully attached
	// Map probe hits that recorded, while fully attached and in whole
	// windows (attaching included): the windows' records are all kept, so
	// the work they cover is the attached work scaled by the two's ratio.
	// edgeHits are all the hits in windows outside their fully attached
	// time, which cost the target CPU time that is not its work.
	onHits, windowHits, edgeHits uint64
	wallTime                     time.Duration
	// The target's CPU-clock samples, all and in kernel mode, while fully
	// attached and not; samplesLost once a period's could not be read.
	onAll, onKernel, offAll, offKernel uint64
	samplesLost                        bool

	// The measured cost: the target's kernel time with probes attached in
	// excess of its kernel time without, and the calibrated cost of the
	// hits in the same spans.
	excess, expected time.Duration
	// maptrace's CPU time over the periods so far, and the part of it
	// charged to the budget.
	ownCPU, ownCharged time.Duration
	// sampler is the sampler's cost charged over the periods so far.
	sampler time.Duration

	// The mutex probes' windows: closed ones, and whether one is open.
	mutexOn   bool
	mutexFrom time.Time
	mutexWins []window
	mutexCut  bool      // detached at least once before the end
	ended     time.Time // when Run returned

	// first is read before Begin attaches the first map window, which
	// records from firstAttached.
	first         reading
	firstAttached time.Time
}

const (
	// The spending of what is attached is checked at half the time it
	// would take to reach its limit at the rate since the last check, at
	// least pollMin and at most pollMax apart (pollMutex with the mutex
	// probes alone attached): often as a window nears its end, seldom
	// while far from it (every check wakes maptrace up, and maptrace's own
	// CPU time counts too), and within pollMax of a burst of map work. The
	// mutex probes fire only on parks, which cost more than the probes on
	// them: a burst of contention spends more slowly than a map loop.
	pollMin   = 2 * time.Millisecond
	pollMax   = 20 * time.Millisecond
	pollMutex = 100 * time.Millisecond
	// creditPeriods bounds the allowance saved while windows are skipped:
	// at a small budget on a busy machine, one window's overshoot can be
	// several periods' allowance, and windows must be that much rarer.
	creditPeriods = 20
	// prior is how much calibrated probe time the measured factor needs
	// before it counts as much as the calibration, with samples at
	// priorHz: a few kernel samples say little, and fewer a second need
	// proportionally more time to say as much.
	prior   = 50 * time.Millisecond
	priorHz = 499
	// maxFactor bounds the measured factor: beyond it the contrast says
	// more about a target changing its ways than about the probes.
	maxFactor = 10
	// mapShare is the part of each period's allowance kept for the map
	// windows when both groups are traced: mutex probes that would spend
	// it all are duty-cycled at the rest, and the map section still
	// samples every period rather than only the first.
	mapShare = 0.25
	// minRate is the least CPU rate the allowance is reckoned from: an
	// idle target's probes still get a sliver to record its rare work.
	minRate = 0.05
)

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
	g.begun = time.Now()
	if m := g.cfg.Mutex; m != nil {
		if err := g.attachMutex(); err != nil {
			return err
		}
	}
	if p := g.cfg.Maps; p != nil {
		g.first = g.read(readCPU | readMaps | readSamples)
		if err := p.Attach(); err != nil {
			g.detachMutex()
			return err
		}
		g.firstAttached = time.Now()
	}
	return nil
}

func (g *Governor) attachMutex() error {
	if err := g.cfg.Mutex.Attach(); err != nil {
		return err
	}
	g.mu.Lock()
	g.mutexOn, g.mutexFrom = true, time.Now()
	g.mu.Unlock()
	return nil
}

func (g *Governor) detachMutex() {
	if g.cfg.Mutex == nil {
		return
	}
	g.mu.Lock()
	on := g.mutexOn
	g.mu.Unlock()
	if !on {
		return
	}
	span := time.Since(g.mutexFrom)
	g.cfg.Mutex.Detach()
	var tail time.Duration
	if g.cfg.Mutex.Tail != nil {
		tail = g.cfg.Mutex.Tail()
	}
	g.mu.Lock()
	g.mutexWins = append(g.mutexWins, window{span, tail})
	g.mutexOn = false
	g.mu.Unlock()
}

// window is one attachment of the mutex probes: from the end of the
// attach to the start of the detach, and how long the wake-up probes stayed
// after it.
type window struct {
	span, tail time.Duration
}

// cycle is Run's state from one period to the next.
type cycle struct {
	rate float64 // target CPUs busy, less the probes
	// debt is what was spent beyond the allowances so far; below zero, a
	// credit (at most creditPeriods' allowances) of allowance not spent.
	// mutexDebt is the same for the mutex probes, the fixed costs and
	// maptrace's own CPU time alone.
	debt, mutexDebt time.Duration
	fixedPrev       time.Duration // the fatal-error probe's cost in the period before
	ownPrev         time.Duration // maptrace's charged CPU time and the sampler's cost in the period before
	mutexRate       float64       // the mutex probes' cost a second while attached
	// The hits so far, and what the debts charged for them, and for the
	// mutex probes' and the fixed costs' alone: a cost measured higher
	// later (the factor, a program's run time) re-prices the past, as the
	// report's estimate does at the costs it ends with.
	mutexHits, mapHits, fixedHits uint64
	charged, mutexCharged         time.Duration
	// over is how far a map window overshoots its limit: what fires
	// between two checks and while the probes detach, which a busy
	// machine stretches (the target bursts while maptrace waits for a
	// CPU). A window is cut that much before its limit, and opens only
	// with more room than that, else the allowance is saved for a later
	// period.
	over time.Duration
	// edge is how many hits a map window has outside its fully attached
	// interval: while its probes attach, until the check after that, and
	// while they detach. The largest seen, decaying.
	edge  uint64
	first bool
	// end is the last period's closing reading, the next one's opening:
	// the periods tile the trace, with nothing spent between them.
	end reading
}

// Run cycles the probes, after Begin, until ctx is done, and leaves them
// detached.
//
// Each period's allowance is the budget's share of the target's CPU time
// (measured over the period before), less what the fatal-error probe,
// maptrace's own CPU time and the sampling of the target's CPU clock cost
// in the period before. What was spent beyond
// it, against the budget's share of the CPU time the target actually used,
// is a debt paid in later periods, and an allowance not spent a credit
// (up to creditPeriods' worth). The mutex probes may spend all of it but
// mapShare when the map probes are traced too, less what they themselves
// overspent; the map probes get what the mutex probes are expected to
// leave, less the whole debt. Whatever is attached is
// detached once the period's spending reaches its limit: the map probes at
// theirs less their usual overshoot (or when everything spent reaches the
// allowance), the mutex probes when they alone spent theirs.
func (g *Governor) Run(ctx context.Context) error {
	// The checks run on a thread of their own, at a higher priority where
	// maptrace may raise it, and sleep in the kernel rather than on a Go
	// timer (which another thread, at the usual priority, would have to
	// fire): on a busy machine, a check that waits for a CPU lets
	// attached probes spend for as long as it waits.
	runtime.LockOSThread()
	tid := unix.Gettid()
	raised := unix.Setpriority(unix.PRIO_PROCESS, tid, checkNice) == nil
	defer func() {
		if !raised || unix.Setpriority(unix.PRIO_PROCESS, tid, 0) == nil {
			runtime.UnlockOSThread()
		} // else the thread ends with this goroutine
	}()
	defer func() {
		if g.cfg.Maps != nil && g.cfg.Budget >= 1 { // else every period detaches its window
			g.cfg.Maps.Detach()
		}
		g.detachMutex()
		g.mu.Lock()
		g.ended = time.Now()
		g.mu.Unlock()
	}()
	c := &cycle{rate: 1, first: true}
	if g.cfg.Rate > 0 {
		c.rate = max(minRate, g.cfg.Rate)
	}
	// Until a window has been cut: a check's interval at the target's
	// whole CPU rate.
	c.over = time.Duration(c.rate * float64(pollMin))
	for ctx.Err() == nil {
		if g.cfg.Budget >= 1 {
			g.idle(ctx)
			continue
		}
		if err := g.period(ctx, c); err != nil {
			return err
		}
		c.first = false
	}
	return nil
}

// idle is a period with everything attached (no budget): only maptrace's
// own CPU time is measured.
func (g *Governor) idle(ctx context.Context) {
	start := g.read(readCPU | readOwn)
	sleep(ctx, g.cfg.Period)
	g.chargeOwnSpan(start, g.read(readCPU|readOwn))
}

// reading is what the governor reads at the edges of a span.
type reading struct {
	t           time.Time
	cpu         time.Duration
	mutex, maps uint64 // hits
	mapsRec     uint64 // map hits that recorded
	fixed       uint64
	all, kernel uint64 // samples, if samplesRead
	samplesRead bool
	own         time.Duration
	idle, busy  time.Duration
	ownRead     bool
	sampler     time.Duration // the sampler's cost so far, with own
}

// What a reading reads besides the time.
const (
	readMutex = 1 << iota
	readMaps
	readFixed
	readCPU
	readSamples
	readOwn
	readEdge = readMutex | readMaps | readFixed | readCPU // at a span's edge
)

// read reads what says; what it leaves out is zero.
func (g *Governor) read(what int) reading {
	r := reading{t: time.Now()}
	if what&readCPU != 0 {
		r.cpu = g.cpuNow()
	}
	if what&readMutex != 0 && g.cfg.Mutex != nil {
		r.mutex = g.cfg.Mutex.Hits()
	}
	if what&readMaps != 0 && g.cfg.Maps != nil {
		r.maps = g.cfg.Maps.Hits()
		r.mapsRec = r.maps
		if g.cfg.Maps.Recorded != nil {
			r.mapsRec = g.cfg.Maps.Recorded()
		}
	}
	if what&readFixed != 0 && g.cfg.Fixed != nil {
		r.fixed = g.cfg.Fixed()
	}
	if what&readSamples != 0 && g.cfg.Samples != nil {
		var err error
		r.all, r.kernel, err = g.cfg.Samples()
		r.samplesRead = err == nil
	}
	if what&readOwn != 0 {
		r.own, r.idle, r.busy = g.ownNow()
		r.ownRead = g.cfg.Own != nil && g.cfg.Machine != nil
		if g.cfg.Sampler != nil {
			r.sampler = g.cfg.Sampler()
		}
	}
	return r
}

// sampling says whether the target's CPU-clock samples can be read.
func (g *Governor) sampling() bool {
	if g.cfg.Samples == nil {
		return false
	}
	_, _, err := g.cfg.Samples()
	return err == nil
}

// groupCost is what a hit of group gr costs, before the factor.
func (g *Governor) groupCost(gr *Group) time.Duration {
	if gr == nil || gr.Cost == nil {
		return g.cfg.HitCost
	}
	return gr.Cost()
}

// hitCost is what a hit of group gr costs at factor f, or as sampled where
// that is higher; and how many samples the sampled cost is from.
func (g *Governor) hitCost(gr *Group, f float64) (time.Duration, uint64) {
	c := time.Duration(float64(g.groupCost(gr)) * f)
	if gr == nil || gr.Sampled == nil {
		return c, 0
	}
	sampled, n := gr.Sampled()
	return max(c, sampled), n
}

// planCost is what the duty cycle charges a hit of group gr at factor f:
// its cost, raised by twice the relative error of the n samples that
// measure it (2/√(n+1)) where the target is sampled. A cost measured higher later
// re-prices the hits before it, and the debt that leaves at the end of a
// short trace is never repaid: the hits are priced at the top of what the
// samples allow, which comes down to the cost as they add up.
func (g *Governor) planCost(gr *Group, f float64, sampled bool) time.Duration {
	c, n := g.hitCost(gr, f)
	if !sampled || gr == nil || gr.Sampled == nil {
		return c
	}
	return time.Duration(float64(c) * (1 + 2/math.Sqrt(float64(n)+1)))
}

// mutexShare is the part of an allowance the mutex probes may spend.
func (g *Governor) mutexShare(allowance time.Duration) time.Duration {
	return time.Duration(g.mutexPart() * float64(allowance))
}

// mutexPart is the part of the budget the mutex probes may spend: all of it
// but mapShare when the map probes are traced too.
func (g *Governor) mutexPart() float64 {
	if g.cfg.Maps == nil {
		return 1
	}
	return 1 - mapShare
}

// MutexBudget is the share of the target's CPU time the mutex probes may
// spend before they are duty-cycled, where fixed is the share the fixed
// costs took (the samples, the fatal-error probe, maptrace's own charged
// CPU time): each period's room is the allowance less those.
func (g *Governor) MutexBudget(fixed float64) float64 {
	return max(0, g.cfg.Budget-fixed) * g.mutexPart()
}

// period runs one duty cycle.
func (g *Governor) period(ctx context.Context, c *cycle) error {
	f := g.Factor()
	sampled := g.sampling()
	costOf := func(gr *Group) func(uint64) time.Duration {
		cost := g.planCost(gr, f, sampled)
		return func(hits uint64) time.Duration { return time.Duration(hits) * cost }
	}
	mutexSpend, mapSpend, fixedSpend := costOf(g.cfg.Mutex), costOf(g.cfg.Maps), costOf(nil)
	mutexPast := mutexSpend(c.mutexHits) + fixedSpend(c.fixedHits)
	past := mutexPast + mapSpend(c.mapHits)
	c.debt += past - c.charged
	c.mutexDebt += mutexPast - c.mutexCharged
	c.charged, c.mutexCharged = past, mutexPast
	allowance := time.Duration(g.cfg.Budget * c.rate * float64(g.cfg.Period))
	room := allowance - c.fixedPrev - c.ownPrev
	// The mutex probes may spend their room less what they overspent.
	avail := g.mutexShare(room) - max(0, c.mutexDebt)
	// What they would spend over the period at their rate while attached.
	mutexWould := time.Duration(c.mutexRate * float64(g.cfg.Period))
	var mutexExpected time.Duration
	switch {
	case g.cfg.Mutex == nil:
	case c.first: // their cost unknown yet: half for them
		mutexExpected = room / 2
	default:
		mutexExpected = min(mutexWould, max(0, avail))
	}
	// The map probes get what the mutex probes are expected to leave, less
	// the debt; the mutex probes pay the part of the debt the map probes'
	// room cannot.
	mapsAllowed := room - mutexExpected - c.debt
	// Everything together may spend the room less the debt; the mutex
	// probes are cut only for what they and the fixed costs overspent
	// themselves (the map probes pay for their own windows' overshoot by
	// skipping windows).
	total := room - c.debt

	start := c.end
	if c.first {
		start = g.read(readEdge | readSamples | readOwn)
	}
	if c.first && g.cfg.Maps != nil { // the first map window began with Begin
		f := g.first
		start.t, start.cpu, start.maps, start.mapsRec = f.t, f.cpu, f.maps, f.mapsRec
		start.all, start.kernel, start.samplesRead = f.all, f.kernel, f.samplesRead
	}
	if g.cfg.Mutex != nil && !g.isMutexOn() && avail > 0 {
		if err := g.attachMutex(); err != nil {
			return err
		}
	}
	// Mutex probes that will be cut this period are alone in their
	// window, and the map window opens once they are detached: their
	// counts are scaled from their windows, which must be like the time
	// between them, and map probes there slow the target's lock holders.
	mapsAfterMutex := g.cfg.Maps != nil && !c.first && g.isMutexOn() && mutexWould >= avail
	mapsOn := c.first && g.cfg.Maps != nil
	var recFrom time.Time // the map probes record from here
	if mapsOn {
		recFrom = g.firstAttached
	}
	if g.cfg.Maps != nil && !c.first && !mapsAfterMutex && c.windowFits(mapsAllowed, allowance, mapSpend(c.edge)) {
		if err := g.cfg.Maps.Attach(); err != nil {
			return err
		}
		mapsOn, recFrom = true, time.Now()
	}
	var recSpan time.Duration // the map probes' recording time in this period
	opened := mapsOn          // a map window in this period
	defer func() {
		if mapsOn { // cut short by an error
			g.cfg.Maps.Detach()
		}
	}()
	mutexFrom := g.mutexSince(start.t) // the mutex probes' attached time in this period starts here

	// The map probes' fully attached interval runs from the first check
	// after the attach to before the detach: while they attach and detach
	// they are only partly in place and the target works mostly
	// unobserved. Their hits are the window's all the same, spent from its
	// allowance. Not from the attach itself: the target's CPU clock, read
	// from another process, moves only at the target's ticks and
	// scheduling events, and attaching is one (its threads wait while
	// their text is patched); read just after it, the clock would be
	// exact at the interval's start and about half a tick behind at its
	// end, and the interval's CPU time short by that every window.
	on0 := g.read(readEdge | readSamples)
	on1 := on0
	onPending := mapsOn // on0 is to be read at the next check
	var det reading     // after the last detach before the period's end
	// closeMaps ends the map window: its fully attached interval and its
	// recording end at the reading before the detach.
	closeMaps := func() {
		on1 = g.read(readEdge | readSamples)
		recSpan += on1.t.Sub(recFrom)
		g.cfg.Maps.Detach()
		mapsOn = false
	}
	mapsCut, mutexCut := false, false
	mapsLate := false // the map window opened after the mutex probes' cut
	var mutexSpan time.Duration
	deadline := start.t.Add(g.cfg.Period)
	last := on0 // the last check
	poll := pollMin
	for {
		if !mapsOn && !g.isMutexOn() {
			poll = time.Until(deadline)
		}
		sleep(ctx, min(poll, time.Until(deadline)))
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
		if onPending {
			on0, onPending = g.read(readEdge|readSamples), false
			on1 = on0
		}
		// Only what is attached spends: the rest is as last read.
		what := 0
		if mapsOn {
			what |= readMaps
		}
		if g.isMutexOn() {
			what |= readMutex
		}
		now := g.read(what)
		if what&readMaps == 0 {
			now.maps, now.mapsRec = last.maps, last.mapsRec
		}
		if what&readMutex == 0 {
			now.mutex = last.mutex
		}
		now.fixed = start.fixed // the fatal-error probe: read at the edges
		mSpent, pSpent, fSpent := mutexSpend(now.mutex-start.mutex), mapSpend(now.maps-start.maps), fixedSpend(now.fixed-start.fixed)
		var left time.Duration = 1 << 62 // to the nearest limit
		if mapsOn && (pSpent+c.over >= mapsAllowed || mSpent+pSpent+fSpent+c.over >= total) {
			closeMaps()
			mapsCut = true
			det = g.read(readEdge | readSamples)
			// The overshoot: the largest seen, decaying, since one
			// too small overspends.
			c.over = max(mapSpend(det.maps-start.maps)-(mapsAllowed-c.over), c.over*3/4, time.Duration(c.rate*float64(pollMin)))
		} else if mapsOn {
			left = min(mapsAllowed-pSpent, total-mSpent-pSpent-fSpent) - c.over
		}
		// The mutex probes go first: cut only when they alone spent the
		// allowance (the map probes' spending on top goes to the debt).
		if g.isMutexOn() && mSpent+fSpent >= avail {
			mutexSpan += time.Since(mutexFrom)
			g.detachMutex()
			g.markCut()
			mutexCut = true
			det = g.read(readEdge | readSamples)
			if mapsAfterMutex && c.windowFits(mapsAllowed, allowance, mapSpend(c.edge)) {
				if err := g.cfg.Maps.Attach(); err != nil {
					return err
				}
				mapsOn, mapsLate, onPending, opened = true, true, true, true
				recFrom = time.Now()
				left = min(mapsAllowed, total-mSpent-fSpent) - c.over
			}
		} else if g.isMutexOn() {
			left = min(left, avail-mSpent-fSpent)
		}
		most := pollMax
		if !mapsOn {
			most = pollMutex
		}
		poll = most
		rate := float64(mutexSpend(now.mutex-last.mutex)+mapSpend(now.maps-last.maps)) / float64(now.t.Sub(last.t))
		if mapsOn {
			// The probes can spend as fast as the target runs, however
			// little they spent since the last check (the target may have
			// waited for a CPU).
			rate = max(rate, c.rate)
		}
		if g.isMutexOn() {
			// Parks come in bursts: a quiet interval says little about
			// the next, and the rate while attached in the last period
			// says more.
			rate = max(rate, c.mutexRate)
		}
		if rate > 0 {
			poll = min(max(time.Duration(float64(left)/rate/2), pollMin), most)
		}
		last = now
	}
	// The probes' cost is measured against the kernel's share after the
	// last cut, which a map window opened after it and still attached
	// at the period's end leaves without a baseline.
	contrast := (mapsCut || mutexCut) && !(mapsLate && mapsOn)
	if mapsOn { // a map window never outlasts its period
		closeMaps()
		if onPending { // no check since the attach
			on0 = on1
		}
	}
	if g.isMutexOn() {
		mutexSpan += time.Since(mutexFrom)
	}
	end := g.read(readEdge | readSamples | readOwn)
	c.end = end
	wall := end.t.Sub(start.t)

	mSpent := mutexSpend(end.mutex - start.mutex)
	pSpent := mapSpend(end.maps - start.maps)
	fSpent := fixedSpend(end.fixed - start.fixed)
	probes := mSpent + pSpent + fSpent
	// The map hits outside the window's fully attached interval.
	edge := end.maps - start.maps - (on1.maps - on0.maps)
	own := g.chargeOwnSpan(start, end) + g.chargeSampler(start, end)
	// The debt is against what the budget allowed of the CPU time the
	// target actually used in the period, not the allowance forecast from
	// the period before: a target that got less CPU than it had (a busy
	// machine), or a period cut short at the end, spent from less.
	allowed := time.Duration(g.cfg.Budget * float64(max(0, end.cpu-start.cpu-probes)))
	c.debt = max(-creditPeriods*allowance, c.debt+probes+own-allowed)
	c.mutexDebt = max(-creditPeriods*allowance, c.mutexDebt+mSpent+fSpent+own-g.mutexShare(allowed))
	c.fixedPrev, c.ownPrev = fSpent, own
	if opened {
		c.edge = max(edge, c.edge*3/4)
	}
	c.mutexHits += end.mutex - start.mutex
	c.mapHits += end.maps - start.maps
	c.fixedHits += end.fixed - start.fixed
	c.charged += probes
	c.mutexCharged += mSpent + fSpent
	if wall > 0 {
		c.rate = max(minRate, float64(end.cpu-start.cpu-probes)/float64(wall))
	}
	if mutexSpan > 0 {
		c.mutexRate = float64(mSpent) / float64(mutexSpan)
	}
	if contrast {
		// The hits of what was cut, before the cut, at their cost before
		// the factor: what stayed attached fired on both sides of it.
		var expected time.Duration
		if mapsCut {
			expected += time.Duration(det.maps-start.maps) * g.groupCost(g.cfg.Maps)
		}
		if mutexCut {
			expected += time.Duration(det.mutex-start.mutex) * g.groupCost(g.cfg.Mutex)
		}
		g.contrast(start, det, end, expected)
	}

	if g.cfg.Maps != nil {
		fixedOn := mutexSpend(on1.mutex-on0.mutex) + fixedSpend(on1.fixed-on0.fixed)
		g.mu.Lock()
		g.onCPU += on1.cpu - on0.cpu
		g.onFixed += fixedOn
		g.offFixed += mSpent + fSpent - fixedOn
		g.onSpan += on1.t.Sub(on0.t)
		g.recSpan += recSpan
		g.offCPU += end.cpu - start.cpu - (on1.cpu - on0.cpu)
		g.onHits += on1.mapsRec - on0.mapsRec
		g.windowHits += end.mapsRec - start.mapsRec
		g.edgeHits += edge
		g.wallTime += wall
		if start.samplesRead && on0.samplesRead && on1.samplesRead && end.samplesRead {
			onAll, onKernel := on1.all-on0.all, on1.kernel-on0.kernel
			g.onAll += onAll
			g.onKernel += onKernel
			g.offAll += end.all - start.all - onAll
			g.offKernel += end.kernel - start.kernel - onKernel
		} else {
			g.samplesLost = true
		}
		g.mu.Unlock()
	}
	return nil
}

// windowFits says whether a map window may open with mapsAllowed to spend:
// more than its usual overshoot, and at least twice what its edges spend
// (edge), so that most of its hits fall in its fully attached interval,
// whose CPU time measures the work they cover (Fraction). Where detaching
// takes long (a busy target, many probe sites) and the allowance is small,
// windows that are all edge cover work no interval measures; they open
// less often instead, on the allowance saved meanwhile, and regardless
// once the saving is near its cap (which moves with the target's CPU rate,
// period to period).
func (c *cycle) windowFits(mapsAllowed, allowance, edge time.Duration) bool {
	if mapsAllowed <= c.over {
		return false
	}
	return mapsAllowed >= 2*edge || c.debt <= -creditPeriods*allowance*9/10
}

// contrast measures the probes' cost in one period from the target's
// kernel-mode samples: those from the period's start to the last cut in
// it, against the share of kernel samples after it. expected is what the
// hits before the cut of the probes cut were taken to cost: what that
// excess is the cost of.
func (g *Governor) contrast(start, det, end reading, expected time.Duration) {
	if !start.samplesRead || !det.samplesRead || !end.samplesRead || g.cfg.Hz <= 0 {
		return
	}
	offAll, offKernel := end.all-det.all, end.kernel-det.kernel
	if offAll == 0 {
		return // no baseline
	}
	onAll, onKernel := det.all-start.all, det.kernel-start.kernel
	share := float64(offKernel) / float64(offAll)
	excess := time.Duration((float64(onKernel) - share*float64(onAll)) / g.cfg.Hz * float64(time.Second))
	g.mu.Lock()
	g.excess += excess
	g.expected += expected
	g.mu.Unlock()
}

// Factor is the measured cost of a hit over the calibrated one: at least
// 1, as the calibration in maptrace's own loop is a lower bound too (it
// misses the cold caches of a real target, the samples miss the user-mode
// slowdown after a trap).
func (g *Governor) Factor() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.factor()
}

func (g *Governor) factor() float64 {
	p := prior
	if g.cfg.Hz > 0 && g.cfg.Hz < priorHz {
		p = time.Duration(float64(prior) * priorHz / g.cfg.Hz)
	}
	f := float64(g.excess+p) / float64(g.expected+p)
	return min(max(f, 1), maxFactor)
}

// Measured is the measurement behind Factor: the target's kernel time
// with probes attached in excess of its share without, and the calibrated
// cost of the hits in the same spans.
func (g *Governor) Measured() (excess, expected time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.excess, g.expected
}

// Costs are what a hit of the mutex probes, of the map probes and of the
// fatal-error probe costs as measured so far, the factor included.
func (g *Governor) Costs() (mutex, maps, fixed time.Duration) {
	f := g.Factor()
	mutex, _ = g.hitCost(g.cfg.Mutex, f)
	maps, _ = g.hitCost(g.cfg.Maps, f)
	fixed, _ = g.hitCost(nil, f)
	return mutex, maps, fixed
}

// chargeSampler charges the sampler's cost between two readings.
func (g *Governor) chargeSampler(a, b reading) time.Duration {
	d := max(0, b.sampler-a.sampler)
	g.mu.Lock()
	g.sampler += d
	g.mu.Unlock()
	return d
}

// Sampler is the sampler's cost charged to the budget over the periods so
// far.
func (g *Governor) Sampler() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sampler
}

// chargeOwnSpan charges maptrace's own CPU time between two readings.
func (g *Governor) chargeOwnSpan(a, b reading) time.Duration {
	if !a.ownRead || !b.ownRead {
		return 0
	}
	return g.chargeOwn(b.own-a.own, b.idle-a.idle, b.busy-a.busy, b.cpu-a.cpu)
}

// chargeOwn applies the rule for maptrace's own CPU time: the part of it
// the machine's idle CPU time could not have covered displaced other work,
// and the target's share of that work (its part of the machine's busy time
// besides maptrace) counts against the budget. On a machine with a CPU to
// spare, maptrace costs the target nothing.
func (g *Governor) chargeOwn(own, idle, busy, target time.Duration) time.Duration {
	var charged time.Duration
	if over := own - idle; over > 0 {
		others := busy - own
		share := 1.0
		if others > target && others > 0 {
			share = float64(target) / float64(others)
		}
		charged = time.Duration(float64(over) * share)
	}
	g.mu.Lock()
	g.ownCPU += own
	g.ownCharged += charged
	g.mu.Unlock()
	return charged
}

func (g *Governor) ownNow() (own, idle, busy time.Duration) {
	if g.cfg.Own == nil || g.cfg.Machine == nil {
		return 0, 0, 0
	}
	idle, busy, _ = g.cfg.Machine()
	return g.cfg.Own(), idle, busy
}

// Own is maptrace's own CPU time over the periods so far, and the part of
// it charged to the budget.
func (g *Governor) Own() (cpu, charged time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ownCPU, g.ownCharged
}

func (g *Governor) isMutexOn() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mutexOn
}

// mutexSince is when the mutex probes' attached time in a period starting
// at t begins: t, or their attach if later.
func (g *Governor) mutexSince(t time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mutexFrom.After(t) {
		return g.mutexFrom
	}
	return t
}

func (g *Governor) markCut() {
	g.mu.Lock()
	g.mutexCut = true
	g.mu.Unlock()
}

// MutexScaled reports whether the mutex probes were duty-cycled: their
// counts then cover the windows only, and MutexShare scales them.
func (g *Governor) MutexScaled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mutexCut
}

// MutexShare is the share of the time traced in which a wait of length d
// could be seen: a wait counts only if it began and ended in one window of
// the mutex probes (a wait across a detach is not half-counted, a wait
// from before an attach not matched with its end). A window of length W
// whose wake-up probes stay a tail T after it sees those that begin in its
// first W-(d-T). It is 1 while the mutex probes were never detached.
func (g *Governor) MutexShare(d time.Duration) float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mutexCut || g.begun.IsZero() {
		return 1
	}
	end := g.ended
	if end.IsZero() {
		end = time.Now()
	}
	total := end.Sub(g.begun)
	if total <= 0 {
		return 1
	}
	wins := g.mutexWins
	if g.mutexOn {
		wins = append(wins[:len(wins):len(wins)], window{span: end.Sub(g.mutexFrom)})
	}
	var seen time.Duration
	for _, w := range wins {
		seen += max(0, w.span-max(0, d-w.tail))
	}
	return min(1, float64(seen)/float64(total))
}

func (g *Governor) cpuNow() time.Duration {
	d, _ := g.cfg.CPU()
	return d
}

// checkNice is the governor's thread's nice value, where it can be set.
const checkNice = -10

// sleep sleeps for d or until ctx is done. Up to pollMutex it sleeps in
// the kernel, on the calling thread.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	if d <= pollMutex {
		ts := unix.NsecToTimespec(d.Nanoseconds())
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
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
// The share is that of the target's work done while attached, scaled by the
// windows' recorded hits over those while fully attached: hits while the
// probes attach record too, those while they detach do not. The target's
// work is its CPU time in user mode, as its CPU-clock samples split it: the
// probes' time, and any cost of attaching them, is the kernel's, measured
// rather than modelled.
// Without samples, the work is its CPU time less the probes' estimated
// time; where the probes took most of the attached CPU time, that
// difference is too small to trust, and the share of time attached is used
// instead. That is right for a target whose map operations are paced by
// something else (I/O, timers, locks): the probes then add CPU time without
// slowing it. A target whose work in the windows, its CPU time less the
// probes', fell short of its rate outside them — a loop doing little but map
// operations, a server the probes take most of while attached — was slowed
// by them, and the estimate is a lower bound (LowerBound says so); so is
// one whose windows' few samples show the probes taking most of them, or
// that used less CPU a second in them than outside them.
func (g *Governor) Fraction() float64 {
	f, _ := g.estimate()
	return f
}

// mapCost is what a map probe hit costs as measured so far, the factor
// included; g.mu held.
func (g *Governor) mapCost() time.Duration {
	return time.Duration(float64(g.groupCost(g.cfg.Maps)) * g.factor())
}

// LowerBound says why the scaled counts are lower bounds
// (report.LowerBound*), or "" where they are not.
func (g *Governor) LowerBound() string {
	_, why := g.estimate()
	return why
}

const (
	// probeDominated is the share of attached CPU time spent in probes
	// (most of it) above which the work left over is not trusted.
	probeDominated = 0.5
	// pacedRise is how far the target's work rate while attached (its CPU
	// time less the probes') may fall short of its rate while not for
	// the probes to count as added to its work, not displacing it.
	pacedRise = 1.3
	// saturated is the share of the target's CPUs it kept busy while
	// attached above which probes that took most of that time displaced
	// its work.
	saturated = 0.5
	// unmeasured: windows whose fully attached intervals hold fewer than
	// one in this many of their recorded hits were measured too little to
	// scale their records by it.
	unmeasured = 10
)

// minOnSamples is how many samples while attached the work's share needs
// to be read from samples: their user-mode share is a proportion, within
// ±14 points from this many on (two standard errors at worst), where the
// other ways to read it are off by more: a server the probes take most of
// while attached gets a few dozen samples in its windows in seconds, and
// its work left over is too small a difference to model.
const minOnSamples = 50

// samplesDominated says whether the CPU-clock samples while fully attached
// show the probes (the kernel) taking most of that time with 95%
// confidence: the lower end of the kernel share's Wilson score interval is
// over probeDominated. A dozen samples can say so; g.mu held.
func (g *Governor) samplesDominated() bool {
	if g.samplesLost || g.onAll == 0 {
		return false
	}
	return wilsonLower(g.onKernel, g.onAll) > probeDominated
}

// idledAttached says whether the target used less CPU a second while fully
// attached than while not, by more than pacedRise: the probes added to its
// CPU time there, so its goroutines waited more, as they do for a lock
// whose holder a trap stopped (nats-server: 0.3–0.5 CPUs attached, 0.8–0.9
// not), and its CPU time there, less the probes', was not its usual work; g.mu
// held.
func (g *Governor) idledAttached() bool {
	offSpan := g.wallTime - g.onSpan
	if g.onSpan <= 0 || offSpan <= 0 || g.offCPU <= 0 {
		return false
	}
	return float64(g.onCPU)/float64(g.onSpan)*pacedRise < float64(g.offCPU)/float64(offSpan)
}

// wilsonLower is the lower end of the 95% Wilson score interval of the
// proportion k of n.
func wilsonLower(k, n uint64) float64 {
	const z = 1.96
	p, fn := float64(k)/float64(n), float64(n)
	return (p + z*z/(2*fn) - z*math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn))) / (1 + z*z/fn)
}

func (g *Governor) estimate() (fraction float64, why string) {
	if g.cfg.Budget >= 1 {
		return 1, ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.windowHits > 0 && g.onHits*unmeasured < g.windowHits && g.wallTime > 0 {
		// The windows were nearly all edge, cut at the first check after
		// their attach: what was measured of them, from that check on, is
		// too little of what they recorded to be scaled up to it. Their
		// share of the time they recorded in stands for it instead, and
		// whether the probes slowed the target there is not known.
		return min(1, float64(g.recSpan)/float64(g.wallTime)), report.LowerBoundShortWindows
	}
	scale := 1.0 // attaching and detaching cover part of the work too
	if g.onHits > 0 {
		scale = float64(g.windowHits) / float64(g.onHits)
	}
	if !g.samplesLost && g.onAll >= minOnSamples && g.onKernel < g.onAll && g.offAll > 0 {
		userOn := float64(g.onAll-g.onKernel) / float64(g.onAll)
		offWork := float64(g.offCPU) * float64(g.offAll-g.offKernel) / float64(g.offAll)
		// Where the probes took most of the windows' CPU time, by the
		// samples or by their hits' cost, the work in them is what is
		// left, and the user code after each trap runs slower (cold
		// caches and TLB), or takes samples the trap delayed: the work
		// seems more than it was, the share too, and the scaled counts
		// are lower bounds; so they are where the target idled in them.
		// A few hundred samples put that work within ±20%, which can
		// outweigh the slowdown: it is read at the top of what they allow
		// (the 95% Wilson interval's), so that the counts are lower
		// bounds in all but a few runs in a hundred, not on average only.
		if float64(g.onKernel) > probeDominated*float64(g.onAll) ||
			float64(time.Duration(g.onHits)*g.mapCost()) > probeDominated*float64(g.onCPU-g.onFixed) || g.idledAttached() {
			why = report.LowerBoundSlowed
			userOn = 1 - wilsonLower(g.onKernel, g.onAll)
		}
		onWork := float64(g.onCPU) * userOn
		return min(1, scale*onWork/(onWork+offWork)), why
	}
	cost := g.mapCost()
	onProbe := time.Duration(g.onHits) * cost
	offProbe := time.Duration(g.edgeHits) * cost                     // attaching and detaching
	onCPU, offCPU := g.onCPU-g.onFixed, g.offCPU-g.offFixed-offProbe // the target's and map probes'
	onWork := onCPU - onProbe
	if onCPU > 0 && float64(onProbe) <= probeDominated*float64(onCPU) && onWork+offCPU > time.Millisecond {
		// Too few samples to read the work from, they may still say that
		// the probes took most of the windows where the model of their
		// cost says not, or the target may have used less CPU there: hits
		// in a contended lock's critical section (nats-server's) hold the
		// lock through the trap, its waiters park, and the windows' work
		// is a difference too small to trust.
		if g.samplesDominated() || g.idledAttached() {
			why = report.LowerBoundSlowed
		}
		return min(1, scale*float64(onWork)/float64(onWork+offCPU)), why
	}
	if g.wallTime == 0 {
		return 1, ""
	}
	fraction = min(1, scale*float64(g.onSpan)/float64(g.wallTime))
	offSpan := g.wallTime - g.onSpan
	if onProbe == 0 || g.onSpan == 0 || offSpan <= 0 {
		return fraction, ""
	}
	// Paced, the target's work went on at its rate while the probes
	// added to its CPU time; slowed, its work in the windows fell short
	// of that rate, and they covered less of it than of its time. Nor
	// could the probes add their time without taking it from the target's
	// work where the target kept more than half of its CPUs busy while
	// attached: its work there, CPU time less the probes' estimated cost,
	// is then no measure either, as user code runs slower after each trap.
	workOn := float64(onCPU-onProbe) / float64(g.onSpan)
	rateOff := float64(offCPU) / float64(offSpan)
	busy := g.cfg.CPUs > 0 && float64(onCPU) > saturated*float64(g.cfg.CPUs)*float64(g.onSpan)
	if busy || workOn*pacedRise < rateOff {
		why = report.LowerBoundSlowed
	}
	return fraction, why
}
