package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestQuick runs the whole harness in quick mode, in-process, and checks
// that every section produced numbers and the report has every section.
func TestQuick(t *testing.T) {
	testtarget.NeedRoot(t)
	if testing.Short() {
		t.Skip("-short: the quick benchmark builds nats-server and runs for a minute or more")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	cfg, err := parseFlags([]string{"-quick", "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Run(cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quick mode took %v", time.Since(start).Round(time.Second))
	if err := res.Check(); err != nil {
		t.Error(err)
	}
	if err := writeReportFile(out, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, h := range []string{"## 1. Probe cost per hit", "## 2. Target slowdown", "## 3. A real server: nats-server",
		"## Budget, estimate and measured loss", "**Beside an untraced twin.**", "## 4. Collector cost", "## 5. Accuracy", "| kernel |", "| CPU |", "| cores |", "go run ./bench -quick"} {
		if !strings.Contains(md, h) {
			t.Errorf("report lacks %q", h)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "%!", "Not measured"} {
		if strings.Contains(md, bad) {
			t.Errorf("report contains %q:\n%s", bad, md)
		}
	}
}

// TestCheckCatchesMissingFigures makes sure Check fails an empty run.
func TestCheckCatchesMissingFigures(t *testing.T) {
	r := &Results{Errors: map[string]string{}}
	if err := r.Check(); err == nil {
		t.Fatal("Check passed results with no figures")
	}
	r.Slowdowns = []*Slowdown{{Workload: Workload{Name: "w"}, Untraced: Dist{1}, Race: Dist{0}}}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "-race") {
		t.Fatalf("Check let a zero -race throughput through: %v", err)
	}
}

// TestBudgetRowsNoise checks that the machine's own noise widens a
// workload's loss per CPU-second and throughput loss, not its kernel share:
// a loss of 3% in every round is over a 1% budget on a quiet machine, and
// unresolved on one where two untraced copies differ by tens of percent.
func TestBudgetRowsNoise(t *testing.T) {
	rs := []*TraceResult{{Report: &report.Report{Overhead: report.Overhead{Budget: 0.01, Ratio: 0.006}}}}
	r := &Results{Slowdowns: []*Slowdown{{Workload: Workload{Name: "loop"}, Traced: []TracedRuns{{
		Mode: TraceMode{Name: "--overhead 1"}, Ratio: Dist{0.97, 0.97, 0.97}, CPURatio: Dist{0.97, 0.97, 0.97},
		Kernel: Dist{0.03, 0.03, 0.03}, Results: append(rs, rs[0], rs[0]),
	}}}}}
	for _, tc := range []struct {
		floor           Dist
		cpuLoss, kernel string
	}{
		{nil, "**no**", "**no**"},
		{Dist{0.999, 1.0, 1.001}, "**no**", "**no**"},
		{Dist{0.6, 0.8, 1.4}, "unresolved (±43.09%)", "**no**"},
	} {
		r.Floor = tc.floor
		rows := budgetRows(r)
		if len(rows) != 1 {
			t.Fatalf("%d rows", len(rows))
		}
		row := rows[0]
		if c, k, l := lossVerdict(row.CPULoss, row.Budget), lossVerdict(row.Kernel, row.Budget), lossVerdict(row.Loss, row.Budget); c != tc.cpuLoss || k != tc.kernel || l != tc.cpuLoss {
			t.Errorf("floor %v: per CPU-second %q, kernel %q, throughput %q; want %q, %q, %q", tc.floor, c, k, l, tc.cpuLoss, tc.kernel, tc.cpuLoss)
		}
	}
}

// TestBudgetRowsKernelStep checks that a kernel share counted in whole
// ticks resolves no finer than one: three runs with no tick more traced
// than untraced neither refute an estimate below a tick nor bound it.
func TestBudgetRowsKernelStep(t *testing.T) {
	rs := []*TraceResult{{Report: &report.Report{Overhead: report.Overhead{Budget: 0.01, Ratio: 0.0035}}}}
	for _, tc := range []struct {
		step Dist
		want string
	}{
		{nil, "**no** (no loss measured)"},
		{Dist{0.005, 0.005, 0.005}, "unresolved"},
	} {
		r := &Results{Slowdowns: []*Slowdown{{Workload: Workload{Name: "loop"}, Traced: []TracedRuns{{
			Mode: TraceMode{Name: "--overhead 1"}, Ratio: Dist{1, 1, 1}, CPURatio: Dist{1, 1, 1},
			Kernel: Dist{0, 0, 0}, KernelStep: tc.step, Results: append(rs, rs[0], rs[0]),
		}}}}}
		row := budgetRows(r)[0]
		if got := estimateVerdict(0.0035, row.Kernel); got != tc.want {
			t.Errorf("step %v: %q, want %q", tc.step, got, tc.want)
		}
	}
}

// TestBudgetRowsTwin checks the twin rows: the loss beside the twin, its
// control, and the estimate less what the twin shares (the samples'
// interrupts) and what it does not count (maptrace's own CPU).
func TestBudgetRowsTwin(t *testing.T) {
	rep := &report.Report{
		Overhead: report.Overhead{Budget: 0.05, Ratio: 0.03, EstCostSeconds: 0.03, OwnChargedSeconds: 0.001,
			SamplerSeconds: 0.01, SampleCostNS: 25000, SampleProgramNS: 5000},
		CPU: report.CPU{Samples: 400, Seconds: 1},
	}
	rs := []*TraceResult{{Report: rep}, {Report: rep}, {Report: rep}}
	r := &Results{Slowdowns: []*Slowdown{{Workload: Workload{Name: "loop", OneCPU: true}, TwinControl: Dist{1.001, 0.999, 1},
		Traced: []TracedRuns{{Mode: TraceMode{Name: "default"}, Ratio: Dist{0.97, 0.97, 0.97}, CPURatio: Dist{0.97, 0.97, 0.97},
			Kernel: Dist{0.02, 0.02, 0.02}, Results: rs, Twin: Dist{0.978, 0.979, 0.98}, TwinResults: rs}}}}}
	row := budgetRows(r)[0]
	// 400 samples' interrupts at 20µs each are 8ms of the 30ms estimate.
	if got := row.TwinEstimate.Median(); math.Abs(got-0.021) > 1e-9 {
		t.Errorf("estimate on the traced copy alone %v, want 0.021", got)
	}
	if got := row.Twin.Median(); math.Abs(got-0.021) > 1e-9 {
		t.Errorf("loss beside the twin %v, want 0.021", got)
	}
	if got := lossVerdict(row.Twin, row.Budget); got != "yes" {
		t.Errorf("loss beside the twin against 5%%: %q", got)
	}
	if got := estimateVerdict(row.TwinEstimate.Median(), row.Twin); got != "1.00, yes" {
		t.Errorf("estimate against the loss beside the twin: %q", got)
	}
}

func TestDist(t *testing.T) {
	d := Dist{3, 1, 2, 10}
	if d.Min() != 1 || d.Max() != 10 || d.Median() != 2.5 {
		t.Errorf("min %v median %v max %v", d.Min(), d.Median(), d.Max())
	}
	if r := Ratio(Dist{2, 6}, Dist{1, 3}); len(r) != 2 || r[0] != 2 || r[1] != 2 {
		t.Errorf("ratio %v", r)
	}
	if (Dist{}).Valid() || !(Dist{0}).Valid() || (Dist{0}).Positive() {
		t.Error("Valid/Positive wrong on empty or zero")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
