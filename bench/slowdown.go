package main

import (
	"fmt"
	"strings"
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
}

// TraceMode is one way of running maptrace against a workload.
type TraceMode struct {
	Name  string
	Args  []string
	Agent bool // traced by `maptrace agent`, not attach
}

var defaultMode = TraceMode{Name: "default (mutex + maps, --overhead 5)"}
var fullMode = TraceMode{Name: "--exact (every map op probed)", Args: []string{"--exact"}}

// Slowdown is section 2 for one workload.
type Slowdown struct {
	Workload Workload
	MS       int
	Untraced Dist // throughput per second, untraced
	Traced   []TracedRuns
	Race     Dist // the -race build's throughput
	RaceRate Dist // race / untraced, round by round
}

// TracedRuns are the traced runs of one mode.
type TracedRuns struct {
	Mode       TraceMode
	Throughput Dist
	Ratio      Dist // traced / untraced, round by round
	Results    []*TraceResult
}

func workloads(b *Binaries) []Workload {
	return []Workload{
		{
			Name: "contended sync.Mutex", Target: "bench/targets/locks `mutex MS` (3 goroutines, ~50µs hold, as testdata/contention)",
			Bin: b.Locks, RaceBin: b.LocksRace, Verb: "mutex", Unit: "critical sections/s",
			Modes: []TraceMode{defaultMode},
		},
		{
			Name: "read-mostly sync.RWMutex", Target: "bench/targets/locks `rwread MS` (4 readers, 1 writer every ~2ms)",
			Bin: b.Locks, RaceBin: b.LocksRace, Verb: "rwread", Unit: "reads/s",
			Modes: []TraceMode{defaultMode},
		},
		{
			Name: "map-hot loop", Target: "testdata/maps `loop MS` (map[int64]int64 reads in a tight loop)",
			Bin: b.Maps, RaceBin: b.MapsRace, Verb: "loop", Unit: "lookups/s",
			Modes: []TraceMode{defaultMode, fullMode},
		},
	}
}

// measureSlowdown runs a workload untraced, under each trace mode and as a
// -race build, interleaved round by round: untraced, traced…, race.
func measureSlowdown(cfg *Config, bins *Binaries, w Workload, logf func(string, ...any)) (*Slowdown, error) {
	plain, err := startProc(w.Bin)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	race, err := startProc(w.RaceBin)
	if err != nil {
		return nil, err
	}
	defer race.Close()
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
	// Warm up both: page faults, the first goroutine stacks.
	for _, p := range []*Proc{plain, race} {
		if _, _, err := p.Count(w.Verb, 100); err != nil {
			return nil, err
		}
	}
	for round := 0; round < cfg.N; round++ {
		u, err := rate(plain)
		if err != nil {
			return nil, err
		}
		s.Untraced.Add(u)
		for i := range s.Traced {
			tr := &s.Traced[i]
			var v float64
			res, err := traceDuring(bins.Maptrace, cfg.Tmp, plain.PID(), tr.Mode.Args, func() (err error) {
				v, err = rate(plain)
				return err
			})
			if err != nil {
				return nil, err
			}
			tr.Throughput.Add(v)
			tr.Ratio.Add(v / u)
			tr.Results = append(tr.Results, res)
		}
		r, err := rate(race)
		if err != nil {
			return nil, err
		}
		s.Race.Add(r)
		s.RaceRate.Add(r / u)
		var parts []string
		for _, tr := range s.Traced {
			parts = append(parts, fmt.Sprintf("%.3f", tr.Ratio[len(tr.Ratio)-1]))
		}
		logf("%s round %d/%d: traced/untraced %s, race/untraced %.3f", w.Name, round+1, cfg.N, strings.Join(parts, " "), r/u)
	}
	return s, nil
}
