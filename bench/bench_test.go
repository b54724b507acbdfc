package main

import (
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
