package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Accuracy is section 5: maptrace's figures against known truth.
type Accuracy struct {
	MS int
	// Mutex wait: maptrace's total over all mutexes against the runtime's
	// /sync/mutex/wait/total:seconds over the same run (testdata/contention).
	TruthSeconds  Dist
	TracedSeconds Dist
	WaitRatio     Dist
	// Hot keys with --exact (testdata/maps `hot`): every key's count
	// against (i+1)*10+1.
	KeysExpected int
	KeysExact    Dist // keys whose count was exactly right, per run
	KeyRatio     Dist // observed / truth, over every key of every run
	ReadsRatio   Dist // the two hot maps' reads / 550
	WritesRatio  Dist // writes / 10
	// Scaled map counts under a budget (testdata/maps `work`): one row a
	// budget.
	Sampled []SampledCounts
	Results []*TraceResult
}

// SampledCounts is main.loopMap's reads, scaled from the map windows at a
// budget, against the reads the target counted itself.
type SampledCounts struct {
	Budget   float64 // --overhead, percent
	Fraction Dist    // overhead.map_sampling_fraction
	Ratio    Dist    // reported / true reads
}

// sampledBudgets are the budgets the scaled counts are measured at: the
// agent's default and attach's.
var sampledBudgets = []float64{1, 5}

// hotMaps are testdata/maps' `hot` maps and the key for index i.
var hotMaps = []struct {
	name string
	key  func(i int) string
}{
	{"main.hotStrings", func(i int) string { return "user:" + strconv.Itoa(i) }},
	{"main.hotInts", func(i int) string { return strconv.Itoa(1000 + i) }},
}

func measureAccuracy(cfg *Config, bins *Binaries, logf func(string, ...any)) (*Accuracy, error) {
	a := &Accuracy{MS: cfg.AccMS}
	cont, err := startProc(bins.Contention)
	if err != nil {
		return nil, err
	}
	defer cont.Close()
	for round := 0; round < cfg.N; round++ {
		var f []string
		res, err := traceDuring(bins.Maptrace, cfg.Tmp, cont.PID(), nil, func() (err error) {
			f, err = cont.Ask(fmt.Sprintf("run %d", cfg.AccMS), time.Duration(cfg.AccMS)*time.Millisecond+time.Minute)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(f) != 2 || f[0] != "mutex_wait_seconds" {
			return nil, fmt.Errorf("contention target said %q", strings.Join(f, " "))
		}
		truth, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("contention target said %q: %v", strings.Join(f, " "), err)
		}
		var ns uint64
		for _, m := range res.Report.Mutexes {
			ns += m.WaitNS
		}
		got := float64(ns) / 1e9
		a.TruthSeconds.Add(truth)
		a.TracedSeconds.Add(got)
		if truth > 0 {
			a.WaitRatio.Add(got / truth)
		}
		logf("accuracy round %d/%d: mutex wait %.4fs traced, %.4fs runtime", round+1, cfg.N, got, truth)
	}

	maps, err := startProc(bins.Maps)
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	a.KeysExpected = 10 * len(hotMaps)
	for round := 0; round < cfg.N; round++ {
		var f []string
		res, err := traceDuring(bins.Maptrace, cfg.Tmp, maps.PID(), []string{"--exact"}, func() (err error) {
			f, err = maps.Ask("hot", time.Minute)
			return err
		})
		if err != nil {
			return nil, err
		}
		if strings.Join(f, " ") != "hot done" {
			return nil, fmt.Errorf("maps target said %q", strings.Join(f, " "))
		}
		a.Results = append(a.Results, res)
		exact := 0
		for _, hm := range hotMaps {
			var reads, writes uint64
			counts := map[string]uint64{}
			for _, m := range res.Report.Maps {
				if m.Name != hm.name {
					continue
				}
				reads, writes = m.Reads, m.Writes
				for _, k := range m.HotKeys {
					counts[k.Key] = k.Count
				}
			}
			a.ReadsRatio.Add(float64(reads) / 550)
			a.WritesRatio.Add(float64(writes) / 10)
			for i := 0; i < 10; i++ {
				want := uint64((i+1)*10 + 1)
				got := counts[hm.key(i)]
				if got == want {
					exact++
				}
				a.KeyRatio.Add(float64(got) / float64(want))
			}
		}
		a.KeysExact.Add(float64(exact))
		logf("accuracy round %d/%d: %d of %d hot-key counts exact", round+1, cfg.N, exact, a.KeysExpected)
	}

	// The reads among other work, ~40µs apart: duty-cycled at either
	// budget.
	work := fmt.Sprintf("work %d 120000", 2*cfg.AccMS)
	for _, budget := range sampledBudgets {
		sc := SampledCounts{Budget: budget}
		for round := 0; round < cfg.N; round++ {
			var f []string
			res, err := traceDuring(bins.Maptrace, cfg.Tmp, maps.PID(), []string{"--overhead", strconv.FormatFloat(budget, 'g', -1, 64)}, func() (err error) {
				f, err = maps.Ask(work, time.Duration(2*cfg.AccMS)*time.Millisecond+time.Minute)
				return err
			})
			if err != nil {
				return nil, err
			}
			var truth float64
			if len(f) == 2 && f[0] == "work" {
				truth, _ = strconv.ParseFloat(f[1], 64)
			}
			if truth <= 0 {
				return nil, fmt.Errorf("maps target said %q", strings.Join(f, " "))
			}
			var reads uint64
			for _, m := range res.Report.Maps {
				if m.Name == "main.loopMap" {
					reads += m.Reads
				}
			}
			sc.Fraction.Add(res.Report.Overhead.MapSamplingFraction)
			sc.Ratio.Add(float64(reads) / truth)
			logf("accuracy round %d/%d: --overhead %g: %d reads reported, %.0f true, sampling fraction %.4f", round+1, cfg.N, budget, reads, truth, res.Report.Overhead.MapSamplingFraction)
		}
		a.Sampled = append(a.Sampled, sc)
	}
	return a, nil
}
