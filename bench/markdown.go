package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// cells renders min | median | max with f.
func cells(d Dist, f func(float64) string) string {
	if len(d) == 0 {
		return "– | – | –"
	}
	return f(d.Min()) + " | " + f(d.Median()) + " | " + f(d.Max())
}

// human shortens large counts: 1.23M, 45.6k.
func human(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func ratio(v float64) string { return fmt.Sprintf("%.3f×", v) }
func ns(v float64) string    { return fmt.Sprintf("%.0f", v) }
func secs(v float64) string  { return fmt.Sprintf("%.3f", v) }
func num(v float64) string   { return fmt.Sprintf("%.0f", v) }
func pct(v float64) string   { return fmt.Sprintf("%.1f%%", v) }
func pct2(v float64) string  { return fmt.Sprintf("%.2f%%", v) }
func mib(v float64) string   { return fmt.Sprintf("%.1f", v) }
func frac(v float64) string  { return fmt.Sprintf("%.3g", v) }

func writeReportFile(path string, r *Results) error {
	return os.WriteFile(path, []byte(renderMarkdown(r)), 0o644)
}

func renderMarkdown(r *Results) string {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := r.Config
	m := r.Machine
	p("# maptrace benchmarks\n\n")
	p("What maptrace costs the process it traces, what it costs to run, and how exact it is, each against a baseline measured in the same run. ")
	p("Every figure is min | median | max over %d run(s); a ratio pairs the runs of one round, which alternate untraced and traced (untraced, traced, untraced, traced…). ", cfg.N)
	p("Nothing here is an estimate unless it says so: throughputs are what the targets print, CPU and memory come from the kernel.\n\n")
	if cfg.Quick {
		p("**Quick mode** (`-quick`): one short run of each benchmark, a smoke test; do not quote these figures.\n\n")
	}
	p("Produced by `%s` (as root, from the repository root; `make bench`), %s, in %v.\n\n", cfg.Command, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Took.Round(time.Second))
	p("| machine | |\n|---|---|\n")
	p("| kernel | %s |\n| CPU | %s |\n| cores | %d (from /proc/cpuinfo) |\n| memory | %s |\n", m.Kernel, m.CPU, m.Cores, m.MemTotal)
	if m.Virt != "" {
		p("| virtualization | %s |\n", m.Virt)
	}
	if l := r.Load; l != nil {
		p("| load average (1, 5, 15 min) | %s at the start, %s at the end |\n", l.AvgStart, l.AvgEnd)
		p("| CPU busy over the run | %.0f%% of %d cores (/proc/stat), of which other processes than these benchmarks %.0f%% |\n", 100*l.Busy, m.Cores, 100*l.Others)
	}
	p("| Go (targets, maptrace) | %s, %s/%s |\n| maptrace | %s |\n", m.Go, runtime.GOOS, runtime.GOARCH, r.Maptrace)
	if r.Builds != nil && r.Builds.NatsVersion != "" {
		p("| nats-server | %s (github.com/nats-io/nats-server/v2, built at bench time) |\n", r.Builds.NatsVersion)
	}
	p("\n")
	if len(r.Errors) > 0 {
		p("**Failed sections:**\n\n")
		for s, e := range r.Errors {
			p("- %s: `%s`\n", s, firstLine(e))
		}
		p("\n")
	}
	// Only the sections that ran: -only 6 writes section 6 alone.
	if cfg.runs(1) {
		renderProbe(p, r.Probe)
	}
	if cfg.runs(2) || cfg.runs(4) {
		renderSlowdown(p, cfg, r.Slowdowns)
	}
	if cfg.runs(3) || cfg.runs(4) {
		renderNats(p, r.Nats)
	}
	if cfg.runs(2) || cfg.runs(3) || cfg.runs(4) {
		renderBudget(p, budgetRows(r), r.Floor, r.Nats)
		renderCollector(p, r.Collector)
	}
	if cfg.runs(5) {
		renderAccuracy(p, r.Accuracy)
	}
	if cfg.runs(6) {
		renderServers(p, r.Servers)
	}
	if cfg.runs(7) {
		renderAgentMemory(p, r.Agent)
	}
	renderGoals(p, r)
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

type printer func(string, ...any)

func renderProbe(p printer, pc *ProbeCost) {
	p("## 1. Probe cost per hit\n\n")
	if pc == nil {
		p("Not measured (see the failures above).\n\n")
		return
	}
	link := "one perf-event uprobe link per site"
	if pc.Multi {
		link = "uprobe_multi links, as maptrace attaches"
	}
	p("Each program is attached, on its own, to `%s` of testdata/maps (the map read of its `loop`), entry probes on `%s` (the site maptrace uses), through %s. ", pc.Func, pc.EntryInsn, link)
	p("The loop is timed for %d ms probed and before and after unprobed; the cost of a hit is the time per lookup probed minus unprobed (as internal/calibrate measures it). ", pc.LoopMS)
	p("The empty program is `mov r0, 0; exit`, built with cilium/ebpf's asm. Unprobed, a lookup took %s ns (min | median | max).\n\n", cells(pc.Untraced, func(v float64) string { return fmt.Sprintf("%.2f", v) }))
	p("| program | site | ns per hit, min | median | max | × baseline (empty program, same instruction), min | median | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, row := range pc.Rows {
		rc := "(baseline) | | "
		if row.Baseline != "" {
			rc = cells(row.Ratio, ratio)
		}
		site := row.Site
		switch site {
		case "entry":
			site = "entry: `" + strings.SplitN(pc.EntryInsn, " at ", 2)[0] + "`"
		case "start":
			site = "first instruction: `" + pc.StartInsn + "`"
		}
		p("| %s | %s | %s | %s |\n", row.Name, site, cells(row.PerHit, ns), rc)
	}
	p("\n")
	if pc.Bpftrace != "" {
		p("bpftrace: %s, so there are no rows at the first instruction.\n\n", pc.Bpftrace)
	} else {
		p("The bpftrace row runs `uprobe:BIN:%s { @[reg(\"bx\")] = count(); }` (count calls by map pointer). Debian's bpftrace refuses a probe at an offset into a function (\"compiled without (k|u)probe offset support\"), so it probes the function's first instruction, which the kernel single-steps; the empty program and maptrace's map_op are measured at that instruction too for the comparison. ", pc.Func)
		p("bpftrace attaches a perf-event uprobe (the kernel's uprobe PMU), maptrace uprobe_multi links; the bpftrace row's ratio is against the empty program attached the same way as bpftrace.\n\n")
	}
	p("An entry `PUSHQ BP` is emulated by the kernel, the first instruction single-stepped (docs/probes.md explains why): that, not the program, makes the difference between the two groups of rows. maptrace probes no RET and no first instruction: every probe is an entry probe.\n\n")
}

func renderSlowdown(p printer, cfg *Config, ss []*Slowdown) {
	p("## 2. Target slowdown\n\n")
	if len(ss) == 0 {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("Each round runs the workload for %d ms untraced, then under `maptrace attach` in each mode (attached before the run starts, stopped with SIGINT after it ends), then the same workload built with `go build -race`; every other round in the reverse order. Throughput is what the target prints for the run.\n\n", cfg.WorkMS)
	p("| workload | run | throughput, min | median | max | × untraced, min | median | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range ss {
		w := s.Workload
		p("| %s | untraced | %s | (baseline) | | |\n", w.Name, cells(s.Untraced, human))
		for _, tr := range s.Traced {
			p("| %s | maptrace %s | %s | %s |\n", w.Name, tr.Mode.Name, cells(tr.Throughput, human), cells(tr.Ratio, ratio))
		}
		p("| %s | `-race` build, untraced | %s | %s |\n", w.Name, cells(s.Race, human), cells(s.RaceRate, ratio))
	}
	p("\nWorkloads (throughput unit):\n\n")
	for _, s := range ss {
		p("- %s: %s (%s).\n", s.Workload.Name, s.Workload.Target, s.Workload.Unit)
	}
	p("\n")
}

func renderNats(p printer, n *Nats) {
	p("## 3. A real server: nats-server\n\n")
	if n == nil {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("nats-server %s (%.1f MB binary), built at bench time from the Go module proxy, listens on a free port of 127.0.0.1. ", n.Version, float64(n.BinSize)/1e6)
	p("A separate process (bench/nats/load, nats.go) connects %d publishers and %d subscribers (each subscriber receives every message) and publishes %d-byte messages for %.0f s, at most 8192 deliveries outstanding (a bounded load). ", natsPubs, natsSubs, natsSize, n.Seconds)
	p("Throughput is messages delivered per second. Each round runs the load untraced, then traced one way and untraced again, for every way of tracing in turn (in the reverse order every other round); each traced run is set against the mean of the untraced runs just before and after it, so that a drift of the server's speed over a round moves both alike. ")
	p("Default flags are how a user runs maptrace; `--no-maps` and `--no-mutex` tell which probes cost what; `maptrace agent` is how a node runs it always on (its report is the agent's `/report` over the load); the last row runs no maptrace at all in a traced run's place, to show what the measurement alone says.\n\n")
	p("| run | delivered msgs/s, min | median | max | × untraced, min | median | max |\n|---|---|---|---|---|---|---|\n")
	p("| untraced (every untraced run) | %s | (baseline) | | |\n", cells(n.Untraced, human))
	for _, m := range n.Modes {
		p("| maptrace %s | %s | %s |\n", m.Mode.Name, cells(m.Traced, human), cells(m.Ratio, ratio))
	}
	if c := n.Control; len(c.Ratio) > 0 {
		p("| %s | %s | %s |\n", c.Mode.Name, cells(c.Traced, human), cells(c.Ratio, ratio))
	}
	p("\n")
	p("The top 5 contended mutexes maptrace found in nats-server (the `mutexes` of its JSON reports with default flags, summed over the %d run(s), most wait first; heap mutexes have no name, so they are told apart by where they were waited for):\n\n", len(n.Modes[0].Results))
	if len(n.Top) < 5 {
		p("(maptrace found only %d contended mutex(es) in these runs.)\n\n", len(n.Top))
	}
	p("| # | mutex | kind | contentions | total wait | max wait | waited for in |\n|---|---|---|---|---|---|---|\n")
	for i, m := range n.Top {
		p("| %d | `%s` | %s | %d | %s | %s | `%s` |\n", i+1, m.Name, m.Kind, m.Contentions,
			time.Duration(m.WaitNS).Round(time.Microsecond), time.Duration(m.MaxWaitNS).Round(time.Microsecond), shortFrame(m.Where))
	}
	p("\n")
}

// BudgetRow is one traced configuration under a budget: what it was
// allowed, what maptrace's report estimated, and what the target lost.
type BudgetRow struct {
	Name     string
	Budget   float64
	Estimate Dist   // report overhead.ratio
	Own      Dist   // report overhead.own_charged_seconds over the target's CPU: the part of the estimate that is maptrace's own CPU
	Probes   Dist   // the rest of the estimate: the probes' and the sampler's, in the target's CPU time
	Sampler  Dist   // report overhead.sampler_seconds over the target's CPU: the CPU-clock samples' part
	Traps    Dist   // Probes less Sampler: the probes' traps and programs, which are kernel time
	Factor   Dist   // report overhead.hit_cost_factor
	Mutex    Dist   // report overhead.mutex_sampling_fraction (1 in reports without it)
	Loss     Losses // 1 - traced/untraced throughput, round by round
	CPULoss  Losses // 1 - traced/untraced throughput per second of the target's CPU time, round by round
	Kernel   Losses // the target's extra kernel share traced (TracedRuns.Kernel)
	// Twin is 1 − traced/twin work per CPU-second (TracedRuns.Twin), and
	// TwinEstimate the part of those traces' estimates an untraced twin on
	// the same CPU does not share: all of it but the samples' interrupts,
	// which fall on whatever runs on the CPU, and maptrace's own CPU.
	Twin         Losses
	TwinEstimate Dist
	TwinControl  Dist // 1 − one copy's work per CPU-second over the twin's, neither traced
}

// Losses are one measure of a loss, round by round, and how much less
// certain their median is than their spread says: what the same
// measurement gave with nothing traced (nats-server's control).
type Losses struct {
	Dist
	Noise float64
}

// budgetRows are the traced runs of sections 2 and 3 that had a budget.
func budgetRows(r *Results) []BudgetRow {
	// A control's median, however far from zero, and its spread.
	noise := func(d Dist) float64 { return math.Abs(d.Median()) + resolution(Losses{Dist: d}) }
	var rows []BudgetRow
	add := func(name string, ratios, cpuRatios, kernel, step Dist, rs []*TraceResult, control *NatsMode) (BudgetRow, bool) {
		if len(rs) == 0 || rs[0].Report.Overhead.Budget >= 1 || rs[0].Report.Overhead.Budget <= 0 {
			return BudgetRow{}, false
		}
		row := BudgetRow{Name: name, Budget: rs[0].Report.Overhead.Budget, Kernel: Losses{Dist: kernel}}
		switch {
		case control != nil && len(control.Ratio) > 1:
			row.Kernel.Noise = noise(control.Kernel)
			row.CPULoss.Noise = noise(lossOf(control.CPURatio))
			row.Loss.Noise = noise(lossOf(control.Ratio))
		case control == nil && len(r.Floor) > 1:
			// The machine's own noise moves the work a CPU-second does,
			// not the kernel share, which is measured within a run.
			row.CPULoss.Noise = noise(lossOf(r.Floor))
			row.Loss.Noise = row.CPULoss.Noise
		}
		// A kernel share counted in whole ticks resolves no finer than one.
		if len(step) > 0 {
			row.Kernel.Noise += step.Median()
		}
		for i, r := range rs {
			o := r.Report.Overhead
			row.Estimate.Add(o.Ratio)
			if cpu := r.Report.CPU.Seconds; cpu > 0 {
				row.Own.Add(o.OwnChargedSeconds / cpu)
				row.Probes.Add(o.Ratio - o.OwnChargedSeconds/cpu)
				row.Sampler.Add(o.SamplerSeconds / cpu)
				row.Traps.Add(o.Ratio - (o.OwnChargedSeconds+o.SamplerSeconds)/cpu)
			}
			row.Factor.Add(max(o.HitCostFactor, 1))
			mf := o.MutexSamplingFraction
			if mf == 0 {
				mf = 1
			}
			row.Mutex.Add(mf)
			if i < len(ratios) {
				row.Loss.Add(1 - ratios[i])
			}
			if i < len(cpuRatios) {
				row.CPULoss.Add(1 - cpuRatios[i])
			}
		}
		return row, true
	}
	for _, s := range r.Slowdowns {
		for _, tr := range s.Traced {
			row, ok := add(s.Workload.Name+", "+tr.Mode.Name, tr.Ratio, tr.CPURatio, tr.Kernel, tr.KernelStep, tr.Results, nil)
			if !ok {
				continue
			}
			if len(tr.Twin) > 0 {
				row.Twin = Losses{Dist: lossOf(tr.Twin)}
				row.TwinControl = lossOf(s.TwinControl)
				if len(row.TwinControl) > 1 {
					row.Twin.Noise = noise(row.TwinControl)
				}
				for _, t := range tr.TwinResults {
					row.TwinEstimate.Add(unsharedEstimate(t.Report))
				}
			}
			rows = append(rows, row)
		}
	}
	if n := r.Nats; n != nil {
		for _, m := range n.Modes {
			if row, ok := add("nats-server, "+m.Mode.Name, m.Ratio, m.CPURatio, m.Kernel, m.KernelStep, m.Results, &n.Control); ok {
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// unsharedEstimate is the part of a report's estimate that falls on the
// target alone, as a share of its CPU time: the probes' hits and the
// sampling program's runs on its samples, not the samples' interrupts nor
// maptrace's own CPU time.
func unsharedEstimate(rep *report.Report) float64 {
	o := rep.Overhead
	if o.EstCostSeconds <= 0 {
		return 0
	}
	interrupts := float64(rep.CPU.Samples) * (o.SampleCostNS - o.SampleProgramNS) / 1e9
	return o.Ratio * (o.EstCostSeconds - interrupts - o.OwnChargedSeconds) / o.EstCostSeconds
}

// estimateBand is how far the report's estimate may be from the measured
// loss, as a share of the loss.
const estimateBand = 0.3

func renderBudget(p printer, rows []BudgetRow, floor Dist, n *Nats) {
	p("## Budget, estimate and measured loss\n\n")
	if len(rows) == 0 {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("The traced runs of sections 2 and 3 that had a budget (`--overhead`), one line each: the budget; the report's estimate of what tracing cost the target (`overhead.ratio`: probe hits at the cost measured in the target, plus the interrupts that took its CPU-clock samples, plus maptrace's own CPU time where it competed with the target, over the target's CPU time), the part of it that is maptrace's own CPU time (`own_charged_seconds` over the target's CPU time) and the part that is the samples' (`sampler_seconds` over it); the measured cost of a hit over the calibrated one (`hit_cost_factor`); the share of the time the mutex probes were attached (`mutex_sampling_fraction`); and three measures of the loss, round by round against the untraced run of the same round (for nats-server, the mean of the untraced runs around it): ")
	p("the target's extra kernel-mode share of its CPU time traced (/proc/PID/stat; a probe hit is kernel time of the thread that hits it; the kernel counts it in whole ticks of 10 ms, so its resolution includes one tick's share of the traced run's CPU time, 0.5%% of a 2-second run on one CPU), ")
	p("the loss of work per second of the target's CPU time (its CPUCLOCK_SCHED clock: 1 − traced/untraced), which is what the budget is a share of and which a busy machine disturbs less, since it counts the CPU the target got rather than the CPU it was given, though not nothing (other processes share the caches, and a VM's host its CPUs); ")
	p("and the loss of throughput (1 − traced/untraced), which is what a user sees, and which another process's load on the machine moves by more than any budget when it changes between two runs seconds apart. ")
	p("The loss per CPU-second does not include maptrace's own CPU time, so the estimate less maptrace's CPU (the probes' and the samples' part) is set against it; the kernel share does not include the samples' interrupts either (the kernel counts a tick's time as user or kernel by where the tick lands), so the probes' part alone is set against it; the whole estimate is set against the throughput loss. ")
	p("Medians over the rounds. The goals: the median loss at most the budget, and the estimate within ±%.0f%% of the loss. ", 100*estimateBand)
	p("A median of a few noisy rounds is itself uncertain: its resolution here is half the range of the rounds' losses over √rounds, and a verdict the resolution cannot decide (the loss within it of the budget, or the estimate within it of the ±%.0f%% band's edge) is **unresolved** rather than met or not met; so is one from a loss below zero by more than its resolution (the traced runs faster: the machine's load, not the trace, moved them).\n\n", 100*estimateBand)
	if len(floor) > 0 {
		p("**The machine's own noise.** Two untraced copies of the map-hot loop, run at once, one on CPU 0 and one on CPU 1 (swapped round by round), did %s each other's work per CPU-second (min | median | max over %d rounds): ", cells(floor, ratio), len(floor))
		p("a loss measured between two runs of one program, neither traced, of %s ± %s. ", pct2(100*(1-floor.Median())), resText(Losses{Dist: lossOf(floor)}))
		p("The loss per CPU-second and the throughput loss below carry that noise, and resolve a budget of a few percent only when it is small: their resolutions in section 2's rows below include it (its median, however far from zero, plus its own resolution). ")
		p("The kernel share is measured in the traced run itself (its kernel-mode CPU time over its CPU time, less the untraced run's), which the speed of the CPU it ran on does not move: it resolves where the others cannot, but it counts only the probes' own time (traps and programs), not what they cost the target's code around them in caches.\n\n")
	}
	if n != nil && len(n.Control.Ratio) > 0 {
		c := n.Control
		cpuLoss, loss := lossOf(c.CPURatio), lossOf(c.Ratio)
		p("**nats-server's own noise.** In each round, a run of the load in a traced run's place but untraced (section 3's control row) differed from the untraced runs around it by a loss per CPU-second of %s ± %s (%s), a throughput loss of %s ± %s (%s), and a kernel share of %s (%s), with nothing traced. The nats-server rows' resolutions below include it, measure by measure: the control's median, however far from zero, plus its own resolution.\n\n",
			pct2(100*cpuLoss.Median()), resText(Losses{Dist: cpuLoss}), cells(cpuLoss, func(v float64) string { return pct2(100 * v) }),
			pct2(100*loss.Median()), resText(Losses{Dist: loss}), cells(loss, func(v float64) string { return pct2(100 * v) }),
			pct2(100*c.Kernel.Median()), cells(c.Kernel, func(v float64) string { return pct2(100 * v) }))
	}
	p("| traced run | budget | estimate | of which maptrace's CPU | of which CPU-clock samples | hit cost factor | mutex probes attached | target's extra kernel share, min | median | max | ≤ budget | probes' estimate ÷ kernel share, within ±%.0f%% | loss per CPU-second, min | median | max | ≤ budget | probes' and samples' estimate ÷ loss per CPU-second, within ±%.0f%% | throughput loss, min | median | max | ≤ budget | estimate ÷ throughput loss, within ±%.0f%% |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", 100*estimateBand, 100*estimateBand, 100*estimateBand)
	for _, r := range rows {
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, pct2(100*r.Budget), pct2(100*r.Estimate.Median()), pct2(100*r.Own.Median()), pct2(100*r.Sampler.Median()),
			fmt.Sprintf("%.2f", r.Factor.Median()), pct2(100*r.Mutex.Median()),
			cells(r.Kernel.Dist, func(v float64) string { return pct2(100 * v) }), lossVerdict(r.Kernel, r.Budget), estimateVerdict(r.Traps.Median(), r.Kernel),
			cells(r.CPULoss.Dist, func(v float64) string { return pct2(100 * v) }), lossVerdict(r.CPULoss, r.Budget), estimateVerdict(r.Probes.Median(), r.CPULoss),
			cells(r.Loss.Dist, func(v float64) string { return pct2(100 * v) }), lossVerdict(r.Loss, r.Budget), estimateVerdict(r.Estimate.Median(), r.Loss))
	}
	p("\n")
	renderTwin(p, rows)
}

// renderTwin is the budget table's twin rows: the one-CPU workloads traced
// beside an untraced copy of themselves.
func renderTwin(p printer, rows []BudgetRow) {
	var twins []BudgetRow
	for _, r := range rows {
		if len(r.Twin.Dist) > 0 {
			twins = append(twins, r)
		}
	}
	if len(twins) == 0 {
		return
	}
	p("**Beside an untraced twin.** The runs on one CPU above also ran, in each round and for each budget, beside an untraced twin: a second copy of the target (a copy of its binary, so that no text is shared) on the same CPU, doing the same work at the same time, with maptrace attached to one of the two (the first copy in even rounds, the twin in odd ones). ")
	p("Both share one CPU's speed at every moment, so what moves the runs above apart from one run to the next (a VM's host, its other tenants) moves both alike, and the loss per CPU-second, 1 − traced/twin, resolves what it cannot above. ")
	p("The CPU-clock samples interrupt whatever runs on the CPU, the twin too, so the estimate set against this loss is what falls on the traced copy alone: the probes' hits and the sampling program's runs on its samples (`overhead.sample_program_ns`), not the samples' interrupts (`sample_cost_ns` less the program's part) nor maptrace's own CPU time. ")
	p("Each round also ran both copies untraced (the control); a row's resolution includes the control's median, however far from zero, plus its own resolution.\n\n")
	p("| traced run | budget | estimate that falls on the traced copy alone, min | median | max | control: loss with neither traced, min | median | max | loss per CPU-second beside the twin, min | median | max | ≤ budget | estimate ÷ loss, within ±%.0f%% |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", 100*estimateBand)
	for _, r := range twins {
		p("| %s | %s | %s | %s | %s | %s | %s |\n", r.Name, pct2(100*r.Budget), cells(r.TwinEstimate, func(v float64) string { return pct2(100 * v) }),
			cells(r.TwinControl, func(v float64) string { return pct2(100 * v) }), cells(r.Twin.Dist, func(v float64) string { return pct2(100 * v) }),
			lossVerdict(r.Twin, r.Budget), estimateVerdict(r.TwinEstimate.Median(), r.Twin))
	}
	p("\n")
}

// lossOf is 1 − each ratio.
func lossOf(ratios Dist) Dist {
	var d Dist
	for _, r := range ratios {
		d.Add(1 - r)
	}
	return d
}

// resolution is how far the median of per-round losses may be from the
// loss: half their range over the square root of their number, roughly,
// plus their noise.
func resolution(l Losses) float64 {
	d := l.Dist
	if len(d) < 2 {
		return math.Inf(1)
	}
	return (d.Max()-d.Min())/2/math.Sqrt(float64(len(d))) + l.Noise
}

// lossVerdict says whether a median loss is at most the budget: yes, no,
// or unresolved when the median's resolution straddles the budget.
func lossVerdict(d Losses, budget float64) string {
	med, res := d.Median(), resolution(d)
	switch {
	case med+res < 0:
		// Faster traced than not: the machine's load, not the trace,
		// moved the runs, and the median bounds nothing.
		return "unresolved (negative)"
	case med+res <= budget:
		return "yes"
	case med-res > budget:
		return "**no**"
	}
	return fmt.Sprintf("unresolved (±%s)", resText(d))
}

// resText is a median's resolution, as a percentage.
func resText(d Losses) string {
	if len(d.Dist) < 2 {
		return "? (one round)"
	}
	return pct2(100 * resolution(d))
}

// estimateVerdict is an estimate over a median loss, with whether it is
// within the band: unresolved when the loss's resolution straddles the
// band's edge, or there is no loss to compare with.
func estimateVerdict(est float64, d Losses) string {
	loss, res := d.Median(), resolution(d)
	lo, hi := est/(1+estimateBand), est/(1-estimateBand) // the losses the estimate is within the band of
	switch {
	case loss+res < 0:
		return "unresolved (negative loss)"
	case loss-res >= lo && loss+res <= hi:
		return fmt.Sprintf("%.2f, yes", est/loss)
	case loss+res < lo || loss-res > hi:
		if loss <= 0 {
			return "**no** (no loss measured)"
		}
		return fmt.Sprintf("**%.2f, no**", est/loss)
	}
	return "unresolved"
}

func renderCollector(p printer, c *Collector) {
	p("## 4. Collector cost\n\n")
	if c == nil || len(c.Rows) == 0 {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("maptrace's own cost in the traced runs of sections 2 and 3. CPU while attached is maptrace's CPU time from the \"attached\" line to the stop signal (its CPUCLOCK_SCHED clock), over that wall time; total CPU and peak RSS are getrusage of the whole `maptrace attach` command (start-up, calibration, symbol tables and the report included). Probe hits per second and the estimated overhead are the report's `overhead` fields.\n\n")
	p("| traced run | probe hits/s (median) | CPU while attached, %% of a core, min | median | max | total CPU s (median) | peak RSS MiB, min | median | max | attach s (median) | report overhead.ratio (median) | map sampling fraction (median) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range c.Rows {
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, human(r.HitsPerSec.Median()), cells(r.CPUPct, pct), secs(r.TotalCPU.Median()),
			cells(r.RSSMB, mib), secs(r.Attach.Median()), fmt.Sprintf("%.4f", r.EstRatio.Median()), frac(r.Sampling.Median()))
	}
	p("\n**Attach time on a large binary**: nats-server, %.1f MB: %s s (min | median | max), from the exec of `maptrace attach` to its \"attached to pid\" line on stderr (symbol tables, calibration, BPF load and attach).\n\n",
		float64(c.NatsBinSize)/1e6, cells(c.NatsAttach, secs))
	h := c.Rows[c.Highest]
	p("**Events lost** (the report's `overhead.lost_events`: stacks not recorded, parks not tracked, events not aggregated because a BPF table was full), at the highest hit rate (%s, %s probe hits/s): %s (min | median | max).\n\n",
		h.Name, human(h.HitsPerSec.Median()), cells(h.Lost, num))
	p("Every traced run, most per run:\n\n| traced run | lost events |\n|---|---|\n")
	for _, r := range c.Rows {
		p("| %s | %s |\n", r.Name, num(r.Lost.Max()))
	}
	p("\n")
}

func renderAccuracy(p printer, a *Accuracy) {
	p("## 5. Accuracy\n\n")
	if a == nil {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("**Mutex wait.** testdata/contention `run %d` under `maptrace attach` (default flags); the target prints the runtime's own `/sync/mutex/wait/total:seconds` over the run. maptrace's figure is the sum of `wait_ns` over every mutex in its report.\n\n", a.MS)
	p("| figure | min | median | max |\n|---|---|---|---|\n")
	p("| runtime /sync/mutex/wait/total, s | %s |\n", cells(a.TruthSeconds, secs))
	p("| maptrace total wait_ns, s | %s |\n", cells(a.TracedSeconds, secs))
	p("| maptrace / runtime | %s |\n\n", cells(a.WaitRatio, ratio))
	p("**Hot keys.** testdata/maps `hot` under `maptrace attach --exact`: key i of main.hotStrings (`user:i`) and of main.hotInts (`1000+i`) is used exactly (i+1)×10+1 times (one write, then reads).\n\n")
	p("| figure | min | median | max |\n|---|---|---|---|\n")
	p("| keys with exactly the true count (of %d) | %s |\n", a.KeysExpected, cells(a.KeysExact, num))
	p("| reported / true count, every key of every run | %s |\n", cells(a.KeyRatio, ratio))
	p("| reads reported / 550, per map | %s |\n", cells(a.ReadsRatio, ratio))
	p("| writes reported / 10, per map | %s |\n\n", cells(a.WritesRatio, ratio))
	if len(a.Sampled) == 0 {
		return
	}
	p("**Scaled map counts.** testdata/maps `work %d 120000` (main.loopMap read about every 40µs among other work, the reads counted by the target) under `maptrace attach --overhead B`: the map probes are attached in windows, and main.loopMap's reads in the report are those the windows saw over the share of the target's work they covered (`overhead.map_sampling_fraction`).\n\n", 2*a.MS)
	p("| budget | sampling fraction, min | median | max | reported / true reads, min | median | max |\n|---|---|---|---|---|---|---|\n")
	for _, sc := range a.Sampled {
		p("| %s | %s | %s |\n", pct2(sc.Budget), cells(sc.Fraction, func(v float64) string { return pct2(100 * v) }), cells(sc.Ratio, ratio))
	}
	p("\n")
}

func renderGoals(p printer, r *Results) {
	p("## Against the goals\n\n")
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	if pc := r.Probe; pc != nil {
		for _, row := range pc.Rows {
			if strings.HasPrefix(row.Name, "maptrace map_op") && row.Site == "entry" {
				p("- Probe cost ≤ 1.1× an empty probe: map_op is %s× the empty program's cost per hit (median) — %s.\n", fmt.Sprintf("%.2f", row.Ratio.Median()), met(row.Ratio.Median() <= 1.1))
			}
		}
	}
	// The slowdowns of sections 2 and 3 against their budgets.
	for _, row := range budgetRows(r) {
		loss, cpuLoss := row.Loss.Median(), row.CPULoss.Median()
		est, probes, traps := row.Estimate.Median(), row.Probes.Median(), row.Traps.Median()
		p("- %s, loss at most the budget (%s): in kernel time %s ± %s — %s; per CPU-second %s ± %s — %s; of throughput %s ± %s — %s. Estimate within ±%.0f%% of the loss: probes' %s against the kernel time — %s, probes' and samples' %s against the loss per CPU-second — %s; all of it, %s — %s.\n",
			row.Name, pct2(100*row.Budget), pct2(100*row.Kernel.Median()), resText(row.Kernel), lossVerdict(row.Kernel, row.Budget),
			pct2(100*cpuLoss), resText(row.CPULoss), lossVerdict(row.CPULoss, row.Budget),
			pct2(100*loss), resText(row.Loss), lossVerdict(row.Loss, row.Budget),
			100*estimateBand, pct2(100*traps), estimateVerdict(traps, row.Kernel), pct2(100*probes), estimateVerdict(probes, row.CPULoss), pct2(100*est), estimateVerdict(est, row.Loss))
		if len(row.Twin.Dist) > 0 {
			twinEst := row.TwinEstimate.Median()
			p("  - Beside an untraced twin: loss per CPU-second %s ± %s — %s; the estimate that falls on the traced copy alone, %s, within ±%.0f%% of it — %s.\n",
				pct2(100*row.Twin.Median()), resText(row.Twin), lossVerdict(row.Twin, row.Budget), pct2(100*twinEst), 100*estimateBand, estimateVerdict(twinEst, row.Twin))
		}
	}
	if c := r.Collector; c != nil && len(c.Rows) > 0 {
		most := 0.0
		for _, row := range c.Rows {
			most = max(most, row.Lost.Max())
		}
		p("- Events lost = 0 (in every traced run, the highest hit rate included): at most %s in a run — %s.\n", num(most), met(most == 0))
	}
	if a := r.Accuracy; a != nil {
		p("- Hot-key counts exact with --exact: %s of %d keys (median) — %s.\n", num(a.KeysExact.Median()), a.KeysExpected, met(a.KeysExact.Min() == float64(a.KeysExpected)))
		p("- Mutex wait against the runtime's metric: %s× (median).\n", fmt.Sprintf("%.3f", a.WaitRatio.Median()))
		for _, sc := range a.Sampled {
			p("- Scaled map counts at --overhead %g against the target's own: %s× (median).\n", sc.Budget, fmt.Sprintf("%.3f", sc.Ratio.Median()))
		}
	}
	for _, s := range r.Servers {
		st := s.Stats
		p("- %s's report: at most %d findings (%d), the bottleneck first (%s), no lost events (%d), at most %d lines of text (%d), no shared-writer warning (%s) — %s.\n",
			s.Name, maxFindings, st.Findings, map[bool]string{true: "yes", false: "no"}[st.BottleneckFirst], st.Lost, maxTextLines, st.TextLines,
			map[bool]string{true: "raised", false: "none"}[st.SharedWriter],
			met(st.Findings <= maxFindings && st.BottleneckFirst && st.Lost == 0 && st.TextLines <= maxTextLines && !st.SharedWriter))
	}
	p("\n")
}

// shortFrame drops the import path and the directory from a frame:
// "server.(*client).deliverMsg (client.go:3850)".
func shortFrame(f string) string {
	fn, loc := report.FrameFunc(f), ""
	if i := strings.LastIndex(f, " ("); i >= 0 {
		loc = f[i+2 : len(f)-1]
	}
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		fn = fn[i+1:]
	}
	if i := strings.LastIndex(loc, "/"); i >= 0 {
		loc = loc[i+1:]
	}
	if loc == "" {
		return fn
	}
	return fn + " (" + loc + ")"
}

func renderServers(p printer, ss []*RealServer) {
	p("## 6. Real servers\n\n")
	if len(ss) == 0 {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("Each server is built at bench time from the version pinned in its bench/*/go.mod (through the Go module proxy; the binaries are cached between runs), ")
	p("started as a child process listening on 127.0.0.1 only, warmed up for %v under its load client untraced, and then traced once with default flags ", realWarm)
	p("(`maptrace attach -p PID -d %v -f json`) while the load client runs for %v; the text report is `report.WriteText` of that JSON. ", realTrace, realLoad)
	p("One run per server: these are the report's contents, not timings to average. ")
	p("**Before** is the same harness on maptrace %s, before the report was reworked (bench/servers_before.go); **after** is this run. ", beforeCommit)
	p("A report should have at most %d findings with the bottleneck first, lose no event, fit in %d lines of text, and raise no \"written by more than one goroutine: may be unsafe\" warning (a map written from several goroutines whose writes were not seen to interleave).\n\n", maxFindings, maxTextLines)
	p("| server | version | binary | build | load client | throughput untraced (warm-up) | traced |\n|---|---|---|---|---|---|---|\n")
	for _, s := range ss {
		traced := human(s.Traced)
		if s.LoadDetail != "" {
			traced += " (" + s.LoadDetail + ")"
		}
		p("| %s | %s %s | %.1f MB | %s | %s | %s %s | %s |\n", s.Name, s.Module, s.Version, float64(s.BinSize)/1e6, s.Build, s.Load, human(s.Untraced), s.Unit, traced)
	}
	p("\nCold builds on this project's 2-vCPU VM: %s.\n\n", coldBuilds)
	p("| figure |")
	for _, s := range ss {
		p(" %s before | %s after |", s.Name, s.Name)
	}
	p("\n|---|")
	for range ss {
		p("---|---|")
	}
	p("\n")
	row := func(name string, before func(beforeFigures) string, after func(ReportStats) string) {
		p("| %s |", name)
		for _, s := range ss {
			b, ok := realBefore[s.Name]
			bs := "–"
			if ok {
				bs = before(b)
			}
			p(" %s | %s |", bs, after(s.Stats))
		}
		p("\n")
	}
	sev := func(n, c, w, i int) string { return fmt.Sprintf("%d (%d / %d / %d)", n, c, w, i) }
	yes := func(v bool) string {
		if v {
			return "**yes**"
		}
		return "no"
	}
	row("findings (critical / warning / info)", func(b beforeFigures) string { return sev(b.Findings, b.Critical, b.Warnings, b.Info) },
		func(s ReportStats) string { return sev(s.Findings, s.Critical, s.Warnings, s.Info) })
	row("lost events", func(b beforeFigures) string { return fmt.Sprint(b.Lost) }, func(s ReportStats) string { return fmt.Sprint(s.Lost) })
	row("text report, lines", func(b beforeFigures) string { return fmt.Sprint(b.TextLines) }, func(s ReportStats) string { return fmt.Sprint(s.TextLines) })
	row("maps in the report", func(b beforeFigures) string { return fmt.Sprint(b.Maps) }, func(s ReportStats) string { return fmt.Sprint(s.Maps) })
	row("contended mutexes", func(b beforeFigures) string { return fmt.Sprint(b.Mutexes) }, func(s ReportStats) string { return fmt.Sprint(s.Mutexes) })
	row("shared-writer warning", func(b beforeFigures) string { return yes(b.SharedWriter) }, func(s ReportStats) string { return yes(s.SharedWriter) })
	good := func(v bool) string {
		if v {
			return "yes"
		}
		return "**no**"
	}
	row("first finding names the bottleneck", func(b beforeFigures) string { return good(b.BottleneckFirst) }, func(s ReportStats) string { return good(s.BottleneckFirst) })
	p("\nThe first finding of each report:\n\n")
	for _, s := range ss {
		before := "not measured (added to section 6 later)"
		if b, ok := realBefore[s.Name]; ok {
			before = quoteOr(b.First)
		}
		p("- %s, before: %s\n- %s, after: %s\n", s.Name, before, s.Name, quoteOr(s.Stats.First))
	}
	p("\nThe mutex with the most wait in each report (this run), and where it was waited for:\n\n")
	p("| server | mutex | kind | waits | total wait | waited for in | the known bottleneck |\n|---|---|---|---|---|---|---|\n")
	for _, s := range ss {
		if m := s.Stats.Top; m != nil {
			p("| %s | `%s` | %s | %d | %s | `%s` | %s |\n", s.Name, m.Label(), m.Kind, m.Contentions, time.Duration(m.WaitNS).Round(time.Millisecond),
				shortFrame(s.Stats.TopWhere), map[bool]string{true: "yes", false: "**no**"}[s.Stats.TopIsBottleneck])
		} else {
			p("| %s | (none contended) | | | | | **no** |\n", s.Name)
		}
	}
	p("\n")
}

func quoteOr(s string) string {
	if s == "" {
		return "(none)"
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}
