package main

import (
	"errors"
	"fmt"
	"slices"
)

// Check says which figures a run failed to produce: every measured figure
// must be finite, and every throughput, cost, time and ratio above zero.
// Counters that may rightly be zero (lost events, exact keys) need only be
// finite.
func (r *Results) Check() error {
	var errs []error
	pos := func(what string, d Dist) {
		if !d.Positive() {
			errs = append(errs, fmt.Errorf("%s: %v, want finite values above zero", what, []float64(d)))
		}
	}
	fin := func(what string, d Dist) {
		if !d.Valid() {
			errs = append(errs, fmt.Errorf("%s: %v, want finite values", what, []float64(d)))
		}
	}
	for s, e := range r.Errors {
		errs = append(errs, fmt.Errorf("%s failed: %s", s, firstLine(e)))
	}
	if pc := r.Probe; pc == nil {
		errs = append(errs, errors.New("section 1 (probe cost): no results"))
	} else {
		pos("probe cost: untraced ns per lookup", pc.Untraced)
		for _, row := range pc.Rows {
			pos("probe cost: "+row.Name+" ns per hit", row.PerHit)
			if row.Baseline != "" {
				pos("probe cost: "+row.Name+" ratio", row.Ratio)
			}
		}
	}
	if want := len(workloads(&Binaries{}, "", "")); len(r.Slowdowns) != want {
		errs = append(errs, fmt.Errorf("section 2 (slowdown): %d workloads measured, want %d", len(r.Slowdowns), want))
	}
	pos("noise floor: work per CPU-second, CPU 0 ÷ CPU 1", r.Floor)
	for _, s := range r.Slowdowns {
		n := s.Workload.Name
		pos("slowdown: "+n+" untraced", s.Untraced)
		pos("slowdown: "+n+" -race", s.Race)
		pos("slowdown: "+n+" -race ratio", s.RaceRate)
		if s.Workload.OneCPU {
			pos("slowdown: "+n+" twin control", s.TwinControl)
		}
		for _, tr := range s.Traced {
			pos("slowdown: "+n+" "+tr.Mode.Name, tr.Throughput)
			pos("slowdown: "+n+" "+tr.Mode.Name+" ratio", tr.Ratio)
			if s.Workload.OneCPU && !slices.Contains(tr.Mode.Args, "--exact") {
				pos("slowdown: "+n+" "+tr.Mode.Name+" beside the twin", tr.Twin)
			}
		}
	}
	if n := r.Nats; n == nil {
		errs = append(errs, errors.New("section 3 (nats-server): no results"))
	} else {
		pos("nats: untraced msgs/s", n.Untraced)
		for _, m := range append(n.Modes, n.Control) {
			pos("nats: traced msgs/s, "+m.Mode.Name, m.Traced)
			pos("nats: ratio, "+m.Mode.Name, m.Ratio)
		}
		if len(n.Top) == 0 || n.Top[0].Contentions == 0 || n.Top[0].WaitNS == 0 {
			errs = append(errs, fmt.Errorf("nats: no contended mutex found: %+v", n.Top))
		}
	}
	for _, row := range budgetRows(r) {
		pos("budget: "+row.Name+" estimate", row.Estimate)
		fin("budget: "+row.Name+" measured loss", row.Loss.Dist)
		fin("budget: "+row.Name+" loss per CPU-second", row.CPULoss.Dist)
		if len(row.Twin.Dist) > 0 {
			fin("budget: "+row.Name+" loss beside the twin", row.Twin.Dist)
			fin("budget: "+row.Name+" twin control", row.TwinControl)
			pos("budget: "+row.Name+" estimate on the traced copy alone", row.TwinEstimate)
		}
	}
	if c := r.Collector; c == nil || len(c.Rows) == 0 {
		errs = append(errs, errors.New("section 4 (collector cost): no results"))
	} else {
		for _, row := range c.Rows {
			pos("collector: "+row.Name+" probe hits/s", row.HitsPerSec)
			pos("collector: "+row.Name+" CPU while attached", row.CPUPct)
			pos("collector: "+row.Name+" total CPU", row.TotalCPU)
			pos("collector: "+row.Name+" peak RSS", row.RSSMB)
			pos("collector: "+row.Name+" attach time", row.Attach)
			fin("collector: "+row.Name+" lost events", row.Lost)
		}
		pos("collector: attach time on nats-server", c.NatsAttach)
	}
	if a := r.Accuracy; a == nil {
		errs = append(errs, errors.New("section 5 (accuracy): no results"))
	} else {
		pos("accuracy: runtime mutex wait", a.TruthSeconds)
		pos("accuracy: maptrace mutex wait", a.TracedSeconds)
		pos("accuracy: mutex wait ratio", a.WaitRatio)
		fin("accuracy: exact hot keys", a.KeysExact)
		pos("accuracy: hot key ratio", a.KeyRatio)
		pos("accuracy: reads ratio", a.ReadsRatio)
		pos("accuracy: writes ratio", a.WritesRatio)
		if len(a.Sampled) != len(sampledBudgets) {
			errs = append(errs, fmt.Errorf("accuracy: scaled map counts at %d budgets, want %d", len(a.Sampled), len(sampledBudgets)))
		}
		for _, sc := range a.Sampled {
			pos(fmt.Sprintf("accuracy: scaled map counts at %g%%", sc.Budget), sc.Ratio)
			pos(fmt.Sprintf("accuracy: sampling fraction at %g%%", sc.Budget), sc.Fraction)
		}
	}
	if r.Config != nil && r.Config.runs(6) {
		if len(r.Servers) != len(serverDefs) {
			errs = append(errs, fmt.Errorf("section 6 (real servers): %d of %d servers measured", len(r.Servers), len(serverDefs)))
		}
		for _, s := range r.Servers {
			pos("real servers: "+s.Name+" untraced throughput", Dist{s.Untraced})
			pos("real servers: "+s.Name+" traced throughput", Dist{s.Traced})
		}
	}
	if r.Config != nil && r.Config.runs(7) {
		if a := r.Agent; a == nil || len(a.Rows) != len(agentScenarios) {
			errs = append(errs, errors.New("section 7 (agent memory): no results"))
		} else {
			for _, row := range a.Rows {
				pos("agent memory: "+row.Name, Dist{float64(row.RSSKiB)})
			}
		}
	}
	return errors.Join(errs...)
}
