package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Workload is a target loop whose throughput the target prints.
type Workload struct {
	Name    string // what it does
	Target  string // how the target is asked
	Bin     string
	RaceBin string
	Verb    string // "VERB MS" → "VERB COUNT"
	Unit    string
	Modes   []TraceMode
	// OneCPU runs the target, untraced, traced and -race alike, on CPU 0
	// only (taskset): its work per CPU-second then no longer depends on
	// how many of its threads other load lets run at once. It also runs
	// each budgeted mode beside an untraced twin on the same CPU.
	OneCPU bool
}

// TraceMode is one way of running maptrace against a workload.
type TraceMode struct {
	Name  string
	Args  []string
	Agent bool // traced by `maptrace agent`, not attach
	// Before, if set, is an older maptrace binary (-before) this mode runs
	// instead of the one under test.
	Before string
}

// bin is the maptrace binary the mode runs.
func (m TraceMode) bin(current string) string {
	if m.Before != "" {
		return m.Before
	}
	return current
}

// withBefore follows each budgeted mode with the same mode on the -before
// binary, so that both run in every round, side by side.
func withBefore(modes []TraceMode, before, version string) []TraceMode {
	if before == "" {
		return modes
	}
	var out []TraceMode
	for _, m := range modes {
		out = append(out, m)
		if !slices.Contains(m.Args, "--exact") {
			out = append(out, TraceMode{Name: m.Name + ", before (" + version + ")", Args: m.Args, Agent: m.Agent, Before: before})
		}
	}
	return out
}

var defaultMode = TraceMode{Name: "default (mutex + maps, --overhead 5)"}

// overhead1Mode is attach with the budget the agent traces with by default
// (always on); agentMode is the agent itself.
var overhead1Mode = TraceMode{Name: "--overhead 1 (the agent's default budget)", Args: []string{"--overhead", "1"}}
var fullMode = TraceMode{Name: "--exact (every map op probed)", Args: []string{"--exact"}}

// Slowdown is section 2 for one workload.
type Slowdown struct {
	Workload Workload
	MS       int
	Untraced Dist // throughput per second, untraced
	// UntracedCPU is the untraced throughput per second of the target's
	// CPU time.
	UntracedCPU Dist
	Traced      []TracedRuns
	Race        Dist // the -race build's throughput
	RaceRate    Dist // race / untraced, round by round
	// TwinControl is, for a OneCPU workload, the work per CPU-second of
	// the copy that would be traced over its twin's, neither traced,
	// round by round.
	TwinControl Dist
}

// TracedRuns are the traced runs of one mode.
type TracedRuns struct {
	Mode       TraceMode
	Throughput Dist
	Ratio      Dist // traced / untraced, round by round
	// CPURatio is the same per second of the target's CPU time: what a
	// busy machine, which gives the target less CPU in one run than in
	// the next, disturbs far less than throughput.
	CPURatio Dist
	// Kernel is the target's kernel-mode share of its CPU time traced,
	// less untraced, round by round: the probes' share of it.
	Kernel Dist
	// KernelStep is one tick's share of the traced run's CPU time, round
	// by round: how coarsely Kernel is measured.
	KernelStep Dist
	Results    []*TraceResult
	// Twin is, for a OneCPU workload and a budgeted mode, the traced
	// work per CPU-second over an untraced twin's, run at once on the
	// same CPU, round by round: the host's speed, which moves from one
	// run to the next, moves both alike. TwinResults are those traces.
	Twin        Dist
	TwinResults []*TraceResult
}

func workloads(b *Binaries, before, version string) []Workload {
	ws := []Workload{
		{
			Name: "contended sync.Mutex", Target: "bench/targets/locks `mutex MS` (3 goroutines, ~50µs hold, as testdata/contention)",
			Bin: b.Locks, RaceBin: b.LocksRace, Verb: "mutex", Unit: "critical sections/s",
			Modes: []TraceMode{defaultMode, overhead1Mode},
		},
		{
			Name: "read-mostly sync.RWMutex", Target: "bench/targets/locks `rwread MS` (4 readers, 1 writer every ~2ms)",
			Bin: b.Locks, RaceBin: b.LocksRace, Verb: "rwread", Unit: "reads/s",
			Modes: []TraceMode{defaultMode, overhead1Mode},
		},
		{
			// Four readers bounce the reader count's cache line between
			// cores when they run at once and not when they share one:
			// how often they do is the machine's other load's doing, and
			// moves reads per CPU-second more than any budget.
			Name: "read-mostly sync.RWMutex, on one CPU", Target: "as above, the target (untraced, traced and -race) confined to CPU 0 by `taskset -c 0`, so that the readers never run at once on two cores",
			Bin: b.Locks, RaceBin: b.LocksRace, Verb: "rwread", Unit: "reads/s",
			Modes: []TraceMode{defaultMode, overhead1Mode}, OneCPU: true,
		},
		{
			Name: "map-hot loop", Target: "testdata/maps `loop MS` (map[int64]int64 reads in a tight loop)",
			Bin: b.Maps, RaceBin: b.MapsRace, Verb: "loop", Unit: "lookups/s",
			Modes: []TraceMode{defaultMode, overhead1Mode, fullMode},
		},
		{
			// Its two vCPUs here differ by up to a fifth in speed (the
			// noise floor): on one CPU, where maptrace's own threads run
			// does not move the loop from one to the other.
			Name: "map-hot loop, on one CPU", Target: "as above, the target (untraced, traced and -race) confined to CPU 0 by `taskset -c 0`",
			Bin: b.Maps, RaceBin: b.MapsRace, Verb: "loop", Unit: "lookups/s",
			Modes: []TraceMode{defaultMode, overhead1Mode}, OneCPU: true,
		},
	}
	for i := range ws {
		ws[i].Modes = withBefore(ws[i].Modes, before, version)
	}
	return ws
}

// measureSlowdown runs a workload untraced, under each trace mode and as a
// -race build, interleaved round by round: untraced, traced…, race.
func measureSlowdown(cfg *Config, bins *Binaries, w Workload, logf func(string, ...any)) (*Slowdown, error) {
	start := func(bin string) (*Proc, error) {
		if w.OneCPU {
			return startProc("taskset", "-c", "0", bin)
		}
		return startProc(bin)
	}
	plain, err := start(w.Bin)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	race, err := start(w.RaceBin)
	if err != nil {
		return nil, err
	}
	defer race.Close()
	var twin *Proc
	if w.OneCPU {
		// A copy of the binary, so that nothing of the traced copy's
		// text, probed or not, is shared with it.
		bin := filepath.Join(cfg.Tmp, filepath.Base(w.Bin)+"-twin")
		if err := copyExecutable(w.Bin, bin); err != nil {
			return nil, err
		}
		if twin, err = start(bin); err != nil {
			return nil, err
		}
		defer twin.Close()
	}
	s := &Slowdown{Workload: w, MS: cfg.WorkMS}
	for _, m := range w.Modes {
		s.Traced = append(s.Traced, TracedRuns{Mode: m})
	}
	rate := func(p *Proc) (float64, error) {
		n, elapsed, err := p.Count(w.Verb, cfg.WorkMS)
		if err != nil {
			return 0, err
		}
		return n / elapsed.Seconds(), nil
	}
	measure := func(p *Proc) (run, error) { return measureRun(p, w.Verb, cfg.WorkMS) }
	// Warm up both: page faults, the first goroutine stacks.
	for _, p := range []*Proc{plain, race, twin} {
		if p == nil {
			continue
		}
		if _, _, err := p.Count(w.Verb, 100); err != nil {
			return nil, err
		}
	}
	for round := 0; round < cfg.N; round++ {
		// One run of each kind, in this order in even rounds and in the
		// reverse in odd ones: whatever a run leaves behind for the next
		// (the -race build's runtime tidying up, a trace's report being
		// written) falls on each kind as often.
		runs := []int{-1} // -1 untraced, -2 race, else a mode
		for i := range s.Traced {
			runs = append(runs, i)
		}
		runs = append(runs, -2)
		if round%2 == 1 {
			slices.Reverse(runs)
		}
		var u run
		var r float64
		traced := make([]run, len(s.Traced))
		for _, k := range runs {
			var err error
			switch k {
			case -1:
				u, err = measure(plain)
			case -2:
				r, err = rate(race)
			default:
				tr := &s.Traced[k]
				var res *TraceResult
				res, err = traceDuring(tr.Mode.bin(bins.Maptrace), cfg.Tmp, plain.PID(), tr.Mode.Args, func() (err error) {
					traced[k], err = measure(plain)
					return err
				})
				if err == nil {
					tr.Results = append(tr.Results, res)
				}
			}
			if err != nil {
				return nil, err
			}
		}
		s.Untraced.Add(u.rate)
		s.UntracedCPU.Add(u.cpuRate)
		for i := range s.Traced {
			tr := &s.Traced[i]
			tr.Throughput.Add(traced[i].rate)
			tr.Ratio.Add(traced[i].rate / u.rate)
			tr.CPURatio.Add(traced[i].cpuRate / u.cpuRate)
			tr.Kernel.Add(traced[i].use.Kernel - u.use.Kernel)
			tr.KernelStep.Add(traced[i].use.Step)
		}
		s.Race.Add(r)
		s.RaceRate.Add(r / u.rate)
		if twin != nil {
			if err := twinRound(cfg, bins, s, plain, twin, round); err != nil {
				return nil, err
			}
		}
		var parts []string
		for _, tr := range s.Traced {
			parts = append(parts, fmt.Sprintf("%.3f (%.3f per CPU-second)", tr.Ratio[len(tr.Ratio)-1], tr.CPURatio[len(tr.CPURatio)-1]))
		}
		logf("%s round %d/%d: traced/untraced %s, race/untraced %.3f", w.Name, round+1, cfg.N, strings.Join(parts, ", "), r/u.rate)
	}
	return s, nil
}

// twinRound runs the workload on both copies at once, untraced (the
// control) and with one traced under each budgeted mode, in this order in
// even rounds and in the reverse in odd ones. The traced copy is a in even
// rounds and b in odd ones.
func twinRound(cfg *Config, bins *Binaries, s *Slowdown, a, b *Proc, round int) error {
	traced, other := a, b
	if round%2 == 1 {
		traced, other = b, a
	}
	both := func() (float64, error) {
		t, o, err := measureTogether(traced, other, s.Workload.Verb, cfg.WorkMS)
		return t.cpuRate / o.cpuRate, err
	}
	runs := []int{-1} // -1 the control, else a budgeted mode
	for i, tr := range s.Traced {
		if !slices.Contains(tr.Mode.Args, "--exact") {
			runs = append(runs, i)
		}
	}
	if round%2 == 1 {
		slices.Reverse(runs)
	}
	for _, k := range runs {
		if k < 0 {
			r, err := both()
			if err != nil {
				return err
			}
			s.TwinControl.Add(r)
			continue
		}
		tr := &s.Traced[k]
		var r float64
		res, err := traceDuring(tr.Mode.bin(bins.Maptrace), cfg.Tmp, traced.PID(), tr.Mode.Args, func() (err error) {
			r, err = both()
			return err
		})
		if err != nil {
			return err
		}
		tr.Twin.Add(r)
		tr.TwinResults = append(tr.TwinResults, res)
	}
	return nil
}

// copyExecutable copies the file src to dst, executable, unless dst is
// there already (it may be running).
func copyExecutable(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// run is what one run of a workload did per second of wall time and of the
// target's CPU time.
type run struct {
	rate, cpuRate float64
	use           cpuUse
}

// measureRun does one run of verb for ms.
func measureRun(p *Proc, verb string, ms int) (r run, err error) {
	var n float64
	var elapsed time.Duration
	r.use, err = measureCPU(p.PID(), func() (err error) {
		n, elapsed, err = p.Count(verb, ms)
		return err
	})
	if err != nil {
		return r, err
	}
	r.rate = n / elapsed.Seconds()
	if r.use.CPU > 0 {
		r.cpuRate = n / r.use.CPU.Seconds()
	}
	return r, nil
}

// measureTogether does one run of verb for ms on a and b at once.
func measureTogether(a, b *Proc, verb string, ms int) (ra, rb run, err error) {
	var (
		errA error
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ra, errA = measureRun(a, verb, ms)
	}()
	rb, err = measureRun(b, verb, ms)
	wg.Wait()
	return ra, rb, errors.Join(errA, err)
}

// measureFloor runs two untraced copies of the map-hot loop at once, one on
// CPU 0 and one on CPU 1 (swapped round by round), and returns the ratio
// of their work per CPU-second, round by round: how far the machine alone
// moves two runs of one program apart, with neither traced.
func measureFloor(cfg *Config, bins *Binaries) (Dist, error) {
	var d Dist
	for round := 0; round < cfg.N; round++ {
		var ps [2]*Proc
		for i := range ps {
			p, err := startProc("taskset", "-c", strconv.Itoa((i+round)%2), bins.Maps)
			if err != nil {
				return nil, err
			}
			defer p.Close()
			ps[i] = p
		}
		r0, r1, err := measureTogether(ps[0], ps[1], "loop", cfg.WorkMS)
		if err != nil {
			return nil, err
		}
		d.Add(r0.cpuRate / r1.cpuRate)
	}
	return d, nil
}
