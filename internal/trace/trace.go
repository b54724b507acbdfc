// Package trace runs one trace of a Go process: check, attach, wait for the
// end, collect, detach. Every ending after a successful attach yields a
// report.
package trace

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/calibrate"
	"github.com/maptrace/maptrace/internal/collector"
	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/findings"
	"github.com/maptrace/maptrace/internal/governor"
	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
)

// Options configure a trace.
type Options struct {
	PID      int
	Duration time.Duration // 0: until ctx is done or the target exits
	Mutex    bool
	Maps     bool
	// Overhead is the budget, in percent of the target's CPU time, for the
	// probes (DefaultOverhead if 0); 100 or more probes every map operation
	// and keeps the mutex probes attached whatever they cost.
	Overhead float64
	// Keys is how map keys are shown: collector.KeysRaw, KeysHash or KeysNone.
	Keys string
	// Log receives warnings (missing symbols, lost events), one line each.
	Log io.Writer
	// Attached, if set, is called once the probes are in place.
	Attached func()

	// Binary, if set, is the target's executable, already read with
	// symbols.Open, so that processes of one binary share it; the trace
	// does not close it. Start checks that the process runs that very
	// file, since uprobes placed by another binary's symbols would land
	// mid-instruction.
	Binary *symbols.Binary
	// StartTime, if set, is when the caller saw process PID start
	// (target.StartTime); Start fails if PID is now another process.
	StartTime uint64
	// HitCost, if set, is the cost of one probe hit as measured by an
	// earlier trace (Session.HitCost), which is not measured again.
	HitCost calibrate.Cost
	// Sampler, if set, is a CPU sampling program shared with other traces,
	// which the trace adds its target to; else it opens one of its own.
	Sampler *cpuprof.Program
}

// DefaultOverhead is the budget when Options.Overhead is 0, as --overhead's.
const DefaultOverhead = 5

// largeBinary is the executable size from which attaching says what it is
// doing, because reading its tables takes a noticeable moment.
const largeBinary = 20 << 20

// session is one trace in progress.
type session struct {
	opts Options
	proc *target.Process
	// The target's CPU time when the session opened, for its rate before
	// the probes (rateBefore).
	cpu0    time.Duration
	cpu0Err error
	cpu0At  time.Time
	bin     *symbols.Binary
	sym     *collector.Symbolizer
	multi   bool
	cal     calibrate.Cost // of one probe hit
	r       *report.Report

	mutexObjs  *bpf.MutexObjects
	mutexPlan  *probes.Plan
	mapObjs    *bpf.MapsObjects
	mapPlan    *probes.Plan
	fatalPlan  *probes.Plan
	gov        *governor.Governor
	links      []*probes.Links
	linksMu    sync.Mutex // the governed links
	mapLinks   *probes.Links
	mutexLinks *probes.Links
	mutexTail  time.Duration // see lastMutexTail

	start0    time.Time
	stopGov   context.CancelFunc
	govDone   chan error
	cpu       *cpuClock
	collectMu sync.Mutex     // one collect at a time
	final     *report.Report // the report once the trace has ended

	sampler *cpuprof.Sampler // nil when CPU sampling is unavailable

	mapNamesMu sync.Mutex
	mapNames   map[uint64]string // map header address → variable
	syncNames  map[uint64]bool   // mapNames that are sync.Map variables themselves
	quitNamer  chan struct{}
	namerDone  sync.WaitGroup

	hasher    *collector.KeyHasher // this trace's secret for --keys hash
	hotKeys   *collector.HotKeys   // nil with --keys none or no map probes
	quitDrain chan struct{}
	drainDone sync.WaitGroup
}

// Run traces opts.PID until ctx is done, opts.Duration passes or the target
// exits. Errors before the probes are attached mean nothing was traced; after
// that Run always returns a report, along with any error that cut the trace
// short.
func Run(ctx context.Context, opts Options) (*report.Report, error) {
	s, err := Start(opts)
	if err != nil {
		return nil, err
	}
	return s.Wait(ctx)
}

// Session is a trace in progress.
type Session struct {
	s *session
}

// Start checks the target, loads and attaches the probes. The caller must
// call Wait, which detaches them.
func Start(opts Options) (*Session, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Keys == "" {
		opts.Keys = collector.KeysRaw
	}
	if opts.Overhead <= 0 {
		opts.Overhead = DefaultOverhead
	}
	s := &session{opts: opts, hasher: collector.NewKeyHasher()}
	if err := s.open(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.attach(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.start(); err != nil {
		s.close()
		return nil, err
	}
	return &Session{s}, nil
}

// Snapshot collects what the probes have seen so far, as a report whose
// window ends now. Safe to call while the trace runs.
func (t *Session) Snapshot() (*report.Report, error) {
	s := t.s
	s.collectMu.Lock()
	defer s.collectMu.Unlock()
	if s.final != nil {
		return s.final, nil
	}
	return s.collect(time.Now(), false)
}

// Wait traces until ctx is done, the duration passes or the target exits,
// then detaches every probe and returns the final report.
func (t *Session) Wait(ctx context.Context) (*report.Report, error) {
	s := t.s
	defer s.close()
	return s.run(ctx)
}

// HashedKey is key, as this trace's reports show a map key, as --keys hash
// shows it in this trace. With --keys hash the reports' keys are hashed
// already and come back as they are.
func (t *Session) HashedKey(key string) string {
	if t.s.opts.Keys == collector.KeysHash {
		return key
	}
	return t.s.hasher.Hash(key)
}

// Target is the traced process's identity.
func (t *Session) Target() report.Target { return t.s.r.Target }

// HitCost is the calibrated cost of one probe hit, for Options.HitCost.
func (t *Session) HitCost() calibrate.Cost { return t.s.cal }

// open finds the process and reads its executable.
func (s *session) open() error {
	pid := s.opts.PID
	proc, err := target.Find(pid)
	if err != nil {
		return err
	}
	s.proc = proc
	s.cpu0, s.cpu0Err = proc.CPUTime()
	s.cpu0At = time.Now()
	if err := s.checkIdentity(); err != nil {
		return err
	}
	bin := s.opts.Binary
	if bin == nil {
		if fi, err := os.Stat(proc.ExeLink); err == nil && fi.Size() >= largeBinary {
			fmt.Fprintf(s.opts.Log, "maptrace: pid %d: reading symbols of a %d MB binary…\n", pid, fi.Size()>>20)
		}
		if bin, err = symbols.Open(proc.ExeLink); err != nil {
			return fmt.Errorf("pid %d (%s): %w", pid, proc.Exe, err)
		}
	}
	s.bin = bin
	if err := bin.CheckSupported(); err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, proc.Exe, err)
	}
	if err := preflight.First(preflight.System()); err != nil {
		return err
	}
	bias, err := loadBias(proc)
	if err != nil {
		return err
	}
	s.sym = collector.NewSymbolizer(bin, bias)
	s.mapNames, s.syncNames = map[uint64]string{}, map[uint64]bool{}
	// A sync.Map variable is the map, at a fixed address: named once.
	for _, v := range bin.SyncMapVars() {
		s.mapNames[v.Addr+bias], s.syncNames[v.Addr+bias] = v.Name, true
	}
	s.multi = probes.MultiSupported()
	s.r = &report.Report{
		Version:  report.Version,
		Target:   report.Target{PID: pid, Exe: proc.Exe, GoVersion: bin.GoVersion, Arch: bin.Arch, Module: bin.Module, CPUs: cpusOf(pid)},
		Overhead: report.Overhead{MapSamplingFraction: 1},
	}
	return nil
}

// ErrNotSameProcess means the process is not the one the caller saw
// (Options.StartTime), or does not run the binary it gave (Options.Binary).
var ErrNotSameProcess = errors.New("not the process seen before")

// checkIdentity checks, once the pidfd pins the process, that it is the one
// the caller meant: with the pidfd open, a start time that still matches
// means the pidfd is that process's.
func (s *session) checkIdentity() error {
	pid := s.opts.PID
	if s.opts.StartTime != 0 {
		st, err := target.StartTime(pid)
		if err != nil {
			return err
		}
		if st != s.opts.StartTime {
			return fmt.Errorf("pid %d: %w: the pid was reused", pid, ErrNotSameProcess)
		}
	}
	if s.opts.Binary != nil {
		id, err := symbols.FileIDOf(s.proc.ExeLink)
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		if id != s.opts.Binary.File {
			return fmt.Errorf("pid %d (%s): %w: it runs another executable now", pid, s.proc.Exe, ErrNotSameProcess)
		}
	}
	return nil
}

// attach loads the programs, calibrates and places the always-on probes.
func (s *session) attach() error {
	pid := s.opts.PID
	goidOff, _, err := s.bin.GoidOffset()
	if err != nil {
		return fmt.Errorf("pid %d (%s): %w", pid, s.proc.Exe, err)
	}
	if s.cal = s.opts.HitCost; s.cal.Hit == 0 {
		if s.cal, err = calibrate.Measure(goidOff, probes.LayoutFor(s.bin.GoVersion), s.multi); err != nil {
			return err
		}
	}
	if s.opts.Mutex {
		if s.mutexObjs, err = probes.LoadMutex(goidOff, s.multi); err != nil {
			return err
		}
		if s.mutexPlan, err = probes.PlanMutex(s.bin, s.mutexObjs); err != nil {
			return err
		}
		s.r.Missing = append(s.r.Missing, s.mutexPlan.Missing...)
	}
	if s.opts.Maps {
		keys := s.opts.Keys != collector.KeysNone
		layout := probes.LayoutFor(s.bin.GoVersion)
		if lo, hi := s.bin.DataRange(); hi > lo {
			layout.DataLo, layout.DataHi = lo+s.sym.Bias(), hi+s.sym.Bias()
		}
		if s.mapObjs, err = probes.LoadMaps(goidOff, layout, keys, s.multi); err != nil {
			return err
		}
		if s.mapPlan, s.fatalPlan, err = probes.PlanMaps(s.bin, s.mapObjs); err != nil {
			return err
		}
		s.r.Missing = append(s.r.Missing, s.mapPlan.Missing...)
		s.r.Missing = append(s.r.Missing, s.fatalPlan.Missing...)
		if keys {
			s.hotKeys = collector.NewHotKeys(&s.mapObjs.MapsMaps, &s.mapObjs.MapsVariables)
		}
		if err := s.attachAlways("fatal-error", s.fatalPlan); err != nil {
			return err
		}
	}
	for _, m := range s.r.Missing {
		fmt.Fprintf(s.opts.Log, "maptrace: note: %s\n", m)
	}
	return nil
}

// newGovernor sets up the governor of the mutex and map probes, which
// Begin attaches, once the sampler has started.
func (s *session) newGovernor() {
	cfg := governor.Config{
		Budget:  s.opts.Overhead / 100,
		HitCost: s.cal.Hit,
		CPU:     s.proc.CPUTime,
		CPUs:    s.r.Target.CPUs,
		Rate:    s.rateBefore(),
		Own:     ownCPU,
		Machine: machineCPU,
	}
	if s.sampler != nil {
		cfg.Hz = float64(s.sampler.Hz())
		cfg.Samples = s.sampler.Counts
		cfg.Sampler = func() time.Duration {
			c, _ := s.sampler.Cost()
			return c
		}
	}
	if s.mutexObjs != nil && len(s.mutexPlan.Probes) > 0 {
		hits := collector.NewHitSum(s.mutexObjs.Hits, s.mutexPlan).Sum
		cfg.Mutex = &governor.Group{Attach: s.attachMutex, Detach: s.detachMutex, Tail: s.lastMutexTail,
			Hits: hits,
			Cost: func() time.Duration {
				return s.programCost(s.mutexObjs.ProgTime, probes.ProgTimePark, probes.ProgTimeReady)
			},
			Sampled: func() (time.Duration, uint64) { return s.sampledCost(true, hits()) }}
	}
	if s.mapObjs != nil {
		hits, fixed := collector.NewHitSum(s.mapObjs.Hits, s.mapPlan).Sum, collector.NewHitSum(s.mapObjs.Hits, s.fatalPlan).Sum
		cfg.Maps = &governor.Group{Attach: s.attachMaps, Detach: s.detachMaps,
			Hits: hits,
			Recorded: func() uint64 {
				n, err := collector.Counter(s.mapObjs.RecordedHits, 0)
				if err != nil {
					return hits()
				}
				return n
			},
			Cost: func() time.Duration {
				return s.programCost(s.mapObjs.ProgTime, probes.ProgTimeMapOp, probes.ProgTimeMapPublish)
			},
			// The fatal-error probe's few hits are in the samples too.
			Sampled: func() (time.Duration, uint64) { return s.sampledCost(false, hits()+fixed()) }}
		cfg.Fixed = fixed
	}
	if cfg.Mutex != nil || cfg.Maps != nil {
		s.gov = governor.New(cfg)
	}
}

// rateBefore is the target's CPU rate (CPUs busy) since the session opened
// (reading symbols, calibrating, loading the programs: nothing probes its
// work yet), or 0 where that is too short a time to say.
func (s *session) rateBefore() float64 {
	d := time.Since(s.cpu0At)
	now, err := s.proc.CPUTime()
	if s.cpu0Err != nil || err != nil || d < minRateSpan {
		return 0
	}
	return float64(now-s.cpu0) / float64(d)
}

// minRateSpan is the least time rateBefore measures over: the target's CPU
// clock, read from another process, moves at its ticks.
const minRateSpan = 100 * time.Millisecond

// minTimed is how many timed runs of a collection's programs their
// average needs before it replaces the calibrated program's time.
const minTimed = 32

// programCost is what a hit of a collection's probes costs: the trap,
// calibrated, and the average run time of its programs (slots of its
// prog_time table) in the target, as they time themselves; the calibrated
// hit until they have timed enough runs.
func (s *session) programCost(m *ebpf.Map, slots ...uint32) time.Duration {
	var runs, ns uint64
	for _, slot := range slots {
		r, n, err := collector.ProgTime(m, slot)
		if err != nil {
			return s.cal.Hit
		}
		runs, ns = runs+r, ns+n
	}
	if runs < minTimed {
		return s.cal.Hit
	}
	return s.cal.Trap() + time.Duration(ns/runs)
}

// minSampled is how many CPU-clock samples in a group of probes a cost
// measured from them needs: 20 say it within ±22%, and a mutex probe
// costs up to twice what its trap and programs do (docs/probes.md), which
// the calibrated cost would say until then.
const minSampled = 20

// sampledCost is what a hit of the mutex probes, or of the others, costs
// by the target's samples taken in them (in their traps, or where they
// resume), over hits hits, 0 until there are minSampled of them; and how
// many samples there are.
func (s *session) sampledCost(mutex bool, hits uint64) (time.Duration, uint64) {
	if s.sampler == nil {
		return 0, 0
	}
	m, o, err := s.sampler.ProbeSamples()
	n := o
	if mutex {
		n = m
	}
	if err != nil || hits == 0 || n < minSampled {
		return 0, n
	}
	return time.Duration(float64(n) / float64(s.sampler.Hz()) * float64(time.Second) / float64(hits)), n
}

// attachMutex attaches the mutex probes for a window. The parks noted in
// an earlier window go first: a goroutine parked then and woken now would
// be timed across the gap, and one whose wake-up fell in the gap would be
// matched with a later one's.
func (s *session) attachMutex() error {
	if err := clearInflight(s.mutexObjs.Inflight); err != nil {
		return fmt.Errorf("pid %d: clear mutex parks: %w", s.opts.PID, err)
	}
	l, err := probes.Attach(s.proc.ExeLink, s.opts.PID, s.multi, s.mutexPlan.Probes)
	if err != nil {
		return s.attachErr("mutex", err)
	}
	s.linksMu.Lock()
	s.mutexLinks = l
	s.linksMu.Unlock()
	return nil
}

// detachMutex detaches the park probe first: a wait that began before it
// may still end while the wake-up probes are detached after it.
func (s *session) detachMutex() {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	if s.mutexLinks != nil {
		s.mutexTail, _ = s.mutexLinks.CloseReverse()
		s.mutexLinks = nil
	}
}

// lastMutexTail is how long the wake-up probes outlasted the park probe in
// the last detach.
func (s *session) lastMutexTail() time.Duration {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	return s.mutexTail
}

// clearInflight deletes every noted park (keyed by goroutine).
func clearInflight(m *ebpf.Map) error {
	var keys []uint64
	var k uint64
	var prev any
	for m.NextKey(prev, &k) == nil {
		keys = append(keys, k)
		prev = k
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

func (s *session) attachAlways(what string, p *probes.Plan) error {
	if len(p.Probes) == 0 {
		return nil
	}
	l, err := probes.Attach(s.proc.ExeLink, s.opts.PID, s.multi, p.Probes)
	if err != nil {
		return fmt.Errorf("pid %d: attach %s probes: %w", s.opts.PID, what, err)
	}
	s.links = append(s.links, l)
	return nil
}

// attachMaps attaches the map probes, then has them record (bpf/maps.bpf.c's
// window_closed).
func (s *session) attachMaps() error {
	l, err := probes.Attach(s.proc.ExeLink, s.opts.PID, s.multi, s.mapPlan.Probes)
	if err != nil {
		return s.attachErr("map", err)
	}
	s.linksMu.Lock()
	s.mapLinks = l
	s.linksMu.Unlock()
	if err := s.mapObjs.WindowClosed.Set(uint32(0)); err != nil {
		return fmt.Errorf("open the map window: %w", err)
	}
	return nil
}

// exitGrace is how long a failed window's attach waits for the target's
// exit to show: its memory goes before its pidfd turns readable.
const exitGrace = 200 * time.Millisecond

// attachErr is the error of attaching the what probes for a window, or nil
// if the target is exiting: then that, not the attach, ends the trace, and
// the report covers it up to there.
func (s *session) attachErr(what string, err error) error {
	if s.proc.ExitsWithin(exitGrace) {
		return nil
	}
	return fmt.Errorf("pid %d: attach %s probes: %w", s.opts.PID, what, err)
}

// detachMaps stops the map probes recording, then detaches them: they fire
// until the kernel has removed the last of them.
func (s *session) detachMaps() {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	if s.mapLinks != nil {
		// Memory-mapped: setting it cannot fail once loaded.
		_ = s.mapObjs.WindowClosed.Set(uint32(1))
		s.mapLinks.Close()
		s.mapLinks = nil
	}
}

// start begins the window and the governor's duty cycle, with the map probes
// attached for the first window.
func (s *session) start() error {
	s.startSampler()
	s.newGovernor()
	s.cpu = newCPUClock(s.proc)
	s.start0 = time.Now()
	var ctx context.Context
	ctx, s.stopGov = context.WithCancel(context.Background())
	s.govDone = make(chan error, 1)
	if s.mapObjs != nil {
		// The globals that hold maps now are named before the trace
		// starts: a target that dies of a race on one within the namer's
		// first tick (seen in make test-kernels' emulated guests) still
		// gets the map's name.
		s.readMapVars()
		s.quitNamer = make(chan struct{})
		s.namerDone.Add(1)
		go func() { defer s.namerDone.Done(); s.nameMaps(s.quitNamer) }()
	}
	if s.hotKeys != nil {
		s.quitDrain = make(chan struct{})
		s.drainDone.Add(1)
		go func() {
			defer s.drainDone.Done()
			s.hotKeys.Run(s.quitDrain, func(err error) {
				fmt.Fprintf(s.opts.Log, "maptrace: warning: %v: hot keys may be missing\n", err)
			})
		}()
	}
	if s.gov != nil {
		if err := s.gov.Begin(); err != nil {
			s.stopGov()
			return err
		}
		go func() { s.govDone <- s.gov.Run(ctx) }()
	} else {
		s.govDone <- nil
	}
	if s.opts.Attached != nil {
		s.opts.Attached()
	}
	return nil
}

// startSampler samples the target's CPU time for the report's cpu section.
// It costs nothing per map operation, so it runs with either kind of probe;
// where it cannot, the trace goes on without it.
func (s *session) startSampler() {
	if !s.opts.Maps && !s.opts.Mutex {
		return
	}
	var sp *cpuprof.Sampler
	var err error
	if s.opts.Sampler != nil {
		sp, err = s.opts.Sampler.Add(s.opts.PID, s.bin, s.sym.Bias())
	} else {
		sp, err = cpuprof.Start(s.opts.PID, s.bin, s.sym.Bias(), s.opts.Overhead/100)
	}
	if err != nil {
		fmt.Fprintf(s.opts.Log, "maptrace: note: no CPU sampling: %v\n", err)
		return
	}
	if len(sp.Dropped) > 0 {
		fmt.Fprintf(s.opts.Log, "maptrace: note: map CPU leaves out %d map functions (no room): %s\n", len(sp.Dropped), strings.Join(sp.Dropped, ", "))
	}
	s.sampler = sp
}

// run waits for the end, then detaches and collects the final report.
func (s *session) run(ctx context.Context) (*report.Report, error) {
	endedBy, err := wait(ctx, s.proc, s.opts.Duration)
	s.stopGov()
	err = errors.Join(err, <-s.govDone)
	s.detach()
	s.stopNamer()
	s.stopDrain()
	end := time.Now()
	s.cpu.stop()

	s.collectMu.Lock()
	defer s.collectMu.Unlock()
	r, cerr := s.collect(end, true)
	r.EndedBy = endedBy
	r.Findings = findings.Analyze(r) // again: the ending is evidence too
	s.final = r
	return r, errors.Join(err, cerr)
}

// collect reads everything the programs aggregated into a report whose
// window ends at end. Counts are cumulative since attach. final says the
// probes are detached: every key count can be drained.
func (s *session) collect(end time.Time, final bool) (*report.Report, error) {
	r := *s.r // the fixed parts: target, missing symbols
	r.Window = report.Window{Start: s.start0, End: end, Seconds: end.Sub(s.start0).Seconds()}
	var errs []error
	var mutexHits, mapHits, fatalHits uint64
	var mapCallers []map[uint64]uint64
	r.Overhead.MutexSamplingFraction = 1
	if s.mutexObjs != nil {
		c := &collector.Mutexes{Maps: &s.mutexObjs.MutexMaps, Plan: s.mutexPlan, Sym: s.sym, File: s.proc.FileAt}
		if s.gov != nil && s.gov.MutexScaled() {
			c.Share = s.gov.MutexShare
			r.Overhead.MutexSamplingFraction = s.gov.MutexShare(0)
			r.Overhead.MutexCountsScaled = true
		}
		ms, gs, err := c.Collect()
		errs = append(errs, err)
		r.Mutexes, r.Goroutines = ms, gs
		r.Overhead.Lost.Add(collector.Lost(s.mutexObjs.Stats))
		mutexHits = sum(collector.Hits(s.mutexObjs.Hits, s.mutexPlan))
		r.Overhead.ProbeHits += mutexHits
	}
	if s.mapObjs != nil {
		frac := s.gov.Fraction()
		r.Overhead.MapSamplingFraction = frac
		why := s.gov.LowerBound()
		r.Overhead.MapCountsLowerBound, r.Overhead.MapCountsLowerBoundWhy = why != "", why
		mapHits = sum(collector.Hits(s.mapObjs.Hits, s.mapPlan))
		fatalHits = sum(collector.Hits(s.mapObjs.Hits, s.fatalPlan))
		r.Overhead.ProbeHits += mapHits + fatalHits
		r.Overhead.Lost.Add(collector.Lost(s.mapObjs.Stats))
		if s.hotKeys != nil {
			if final {
				errs = append(errs, s.hotKeys.DrainAll())
			} else {
				s.hotKeys.Drain() // a failure is the drain loop's to tell
			}
		}
		c := &collector.Maps{Maps: &s.mapObjs.MapsMaps, Sym: s.sym, Keys: s.opts.Keys, HotKeys: s.hotKeys,
			Hasher: s.hasher, Name: s.mapName, Globals: s.mapGlobals, Scale: 1 / max(frac, 1e-6)}
		res, err := c.Collect()
		errs = append(errs, err)
		if res != nil {
			r.Maps, r.Races = res.Maps, res.Races
			r.TargetError, r.TargetCrash, r.TargetStack = res.Fatal.Error, res.Fatal.Crash, res.Fatal.Stack
			mapCallers = res.Callers
			r.Goroutines = mergeGoroutines(r.Goroutines, res.Goroutines)
		}
	}
	collector.ShardMutexes(r.Maps, r.Mutexes, s.proc.ReadMemory)
	r.Overhead.LostEvents = r.Overhead.Lost.Total()
	r.Goroutines = r.Goroutines[:min(len(r.Goroutines), 10)]
	var sampling time.Duration
	if s.sampler != nil {
		res, err := s.sampler.Read()
		errs = append(errs, err)
		if res != nil {
			sampling = s.sampler.CostOf(res)
			if res.Samples > 0 {
				r.Overhead.SampleCostNS = float64(sampling.Nanoseconds()) / float64(res.Samples)
				r.Overhead.SampleProgramNS = float64(res.Program.Nanoseconds()) / float64(res.Samples)
			}
			r.CPU = collector.CPU(res, s.sym)
			collector.AttributeCPU(r.Maps, mapCallers, res, s.sym)
			// Time is what the report ranks by: the maps that cost CPU first.
			sort.SliceStable(r.Maps, func(i, j int) bool { return r.Maps[i].CPUSeconds > r.Maps[j].CPUSeconds })
		}
	}
	// The estimate: every hit at the cost measured in the target, the
	// samples' interrupts, and maptrace's own CPU time where it competed
	// with the target.
	mutexCost, mapCost, fixedCost, factor := s.cal.Hit, s.cal.Hit, s.cal.Hit, 1.0
	var own, charged time.Duration
	if s.gov != nil {
		factor = s.gov.Factor()
		mutexCost, mapCost, fixedCost = s.gov.Costs()
		own, charged = s.gov.Own()
	}
	mutexTime := time.Duration(mutexHits) * mutexCost
	fixed := time.Duration(fatalHits)*fixedCost + sampling + charged
	cost := mutexTime + time.Duration(mapHits)*mapCost + fixed
	used := s.cpu.used()
	r.Overhead.Budget = s.opts.Overhead / 100
	if s.gov != nil && s.mutexObjs != nil && r.Overhead.Budget < 1 && used > 0 {
		r.Overhead.MutexBudget = s.gov.MutexBudget(fixed.Seconds() / used.Seconds())
	}
	r.Overhead.HitCostNS = float64(s.cal.Hit.Nanoseconds())
	r.Overhead.HitCostFactor = factor
	if s.mutexObjs != nil {
		r.Overhead.MutexHitCostNS = float64(mutexCost.Nanoseconds()) / factor
	}
	if s.mapObjs != nil {
		r.Overhead.MapHitCostNS = float64(mapCost.Nanoseconds()) / factor
	}
	r.Overhead.OwnCPUSeconds = own.Seconds()
	r.Overhead.OwnChargedSeconds = charged.Seconds()
	r.Overhead.SamplerSeconds = sampling.Seconds()
	r.Overhead.EstCostSeconds = cost.Seconds()
	if used > 0 {
		r.Overhead.Ratio = cost.Seconds() / used.Seconds()
		r.Overhead.MutexRatio = mutexTime.Seconds() / used.Seconds()
	}
	r.Findings = findings.Analyze(&r)
	return &r, errors.Join(errs...)
}

// mapName names a map by the global variable that points to it: a map
// variable holds the address of the map's header, which is what the probes
// see.
func (s *session) mapName(addr uint64) string {
	s.mapNamesMu.Lock()
	defer s.mapNamesMu.Unlock()
	return s.mapNames[addr]
}

// mapGlobals is a copy of the names found so far, by map header address.
func (s *session) mapGlobals() map[uint64]string {
	s.mapNamesMu.Lock()
	defer s.mapNamesMu.Unlock()
	out := make(map[uint64]string, len(s.mapNames))
	for a, n := range s.mapNames {
		out[a] = n
	}
	return out
}

// nameMaps reads the map variables again while the target lives (start
// reads them first): a global may be assigned a new map, and a target that
// crashes cannot be read afterwards. The reads back off from every 250ms to
// every 8s while no new class of maps appears; a new one reads at once.
func (s *session) nameMaps(quit <-chan struct{}) {
	const tick, most = 250 * time.Millisecond, 8 * time.Second
	seen := map[bpf.MapsClassKey]bool{}
	wait, last := tick, time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		fresh := false
		var key any // nil: the first key
		for {
			var k bpf.MapsClassKey
			if s.mapObjs.ClassStats.NextKey(key, &k) != nil {
				break
			}
			fresh = fresh || !seen[k]
			seen[k] = true
			key = k
		}
		if fresh {
			wait = tick
		}
		if fresh || time.Since(last) >= wait {
			s.readMapVars()
			last, wait = time.Now(), min(2*wait, most)
		}
	}
}

// readMapVars reads every pointer-sized global of the target at once.
func (s *session) readMapVars() {
	vars := s.bin.PointerVars()
	if len(vars) == 0 {
		return
	}
	bias := s.sym.Bias()
	lo, hi := vars[0].Addr, vars[len(vars)-1].Addr+8
	buf := make([]byte, hi-lo)
	if err := s.proc.ReadMemory(lo+bias, buf); err != nil {
		return // the target has exited: keep the names found so far
	}
	s.mapNamesMu.Lock()
	defer s.mapNamesMu.Unlock()
	for _, v := range vars {
		p := binary.LittleEndian.Uint64(buf[v.Addr-lo:])
		if p == 0 {
			continue
		}
		// Several variables may share a map; keep the shortest name, but
		// a sync.Map's own over any pointer to it.
		if old, ok := s.mapNames[p]; !s.syncNames[p] && (!ok || old == "" || len(v.Name) < len(old)) {
			s.mapNames[p] = v.Name
		}
	}
}

func (s *session) stopNamer() {
	if s.quitNamer != nil {
		close(s.quitNamer)
		s.namerDone.Wait()
		s.quitNamer = nil
	}
}

func (s *session) stopDrain() {
	if s.quitDrain != nil {
		close(s.quitDrain)
		s.drainDone.Wait()
		s.quitDrain = nil
	}
}

func (s *session) detach() {
	if s.sampler != nil {
		s.sampler.Stop() // the counts stay readable for the final report
	}
	s.detachMaps()
	s.detachMutex()
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
}

func (s *session) close() {
	if s.stopGov != nil {
		s.stopGov()
	}
	s.stopNamer()
	s.stopDrain()
	s.detach()
	if s.sampler != nil {
		s.sampler.Close()
	}
	if s.mutexObjs != nil {
		s.mutexObjs.Close()
	}
	if s.mapObjs != nil {
		s.mapObjs.Close()
	}
	if s.bin != nil && s.opts.Binary == nil {
		s.bin.Close()
	}
	if s.proc != nil {
		s.proc.Close()
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// mergeGoroutines joins the mutex and map views of each goroutine.
func mergeGoroutines(a, b []report.Goroutine) []report.Goroutine {
	by := map[int64]*report.Goroutine{}
	var out []report.Goroutine
	for _, g := range append(append([]report.Goroutine(nil), a...), b...) {
		if x := by[g.Goid]; x != nil {
			x.Contentions += g.Contentions
			x.WaitNS += g.WaitNS
			x.MapOps += g.MapOps
			x.HotKeys = append(x.HotKeys, g.HotKeys...)
			continue
		}
		out = append(out, g)
		by[g.Goid] = &out[len(out)-1]
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].WaitNS != out[j].WaitNS {
			return out[i].WaitNS > out[j].WaitNS
		}
		return out[i].MapOps > out[j].MapOps
	})
	return out
}

// wait blocks until the trace should end and says why.
func wait(ctx context.Context, proc *target.Process, d time.Duration) (string, error) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return report.EndedByDuration, nil
	case <-ctx.Done():
		if !proc.Alive() { // both at once: the exit explains more
			return report.EndedByTargetExit, nil
		}
		return report.EndedBySignal, nil
	case <-proc.Exited():
		return report.EndedByTargetExit, nil
	}
}

// loadBias finds where the executable's first segment was mapped.
func loadBias(proc *target.Process) (uint64, error) {
	f, err := elf.Open(proc.ExeLink)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			return proc.LoadBias(p.Vaddr)
		}
	}
	return 0, fmt.Errorf("pid %d: executable has no segment at file offset 0", proc.PID)
}

// cpusOf is how many CPUs process pid may run on: what GOMAXPROCS defaults
// to, and so how many goroutines can run at once.
func cpusOf(pid int) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return runtime.NumCPU()
	}
	return max(set.Count(), 1)
}
