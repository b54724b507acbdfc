package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/findings"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestDemo runs `maptrace demo` for real: the built-in workload, traced
// with eBPF, must show what the demo promises.
func TestDemo(t *testing.T) {
	testtarget.NeedAttach(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, maptrace, "demo", "-d", "5s", "-f", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("maptrace demo: %v\n%s", err, stderr.String())
	}
	t.Logf("demo took %v; stderr:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	r := parseReport(t, stdout.Bytes())
	const pkg = "github.com/maptrace/maptrace/internal/demo."

	// Contention on named mutexes.
	var orders, config *report.Mutex
	for i, m := range r.Mutexes {
		switch {
		case m.Name == pkg+"ordersMu" && m.Kind == report.KindMutex:
			orders = &r.Mutexes[i]
		case m.Name == pkg+"configMu" && m.Kind == report.KindRWMutexRead:
			config = &r.Mutexes[i]
		}
	}
	if orders == nil || orders.Contentions == 0 || orders.WaitNS == 0 {
		t.Errorf("no contention on %sordersMu: %+v", pkg, r.Mutexes)
	}
	if config == nil || config.Contentions == 0 {
		t.Errorf("no readers waiting on %sconfigMu: %+v", pkg, r.Mutexes)
	}

	// A hot key: "region" in about half the config lookups.
	hot := false
	for _, m := range r.Maps {
		var total uint64
		for _, k := range m.HotKeys {
			total += k.Count
		}
		for _, k := range m.HotKeys {
			if k.Key == "region" && float64(k.Count) >= 0.3*float64(total) {
				hot = true
			}
		}
	}
	if !hot {
		t.Errorf("no hot key \"region\" in the maps: %+v", r.Maps)
	}

	// The race: seen by the probes, or the runtime killed the workload for it.
	crashed := strings.HasPrefix(r.TargetError, "concurrent map")
	if len(r.Races) == 0 && !crashed {
		t.Errorf("neither a race nor a concurrent-map crash: races %+v, target_error %q", r.Races, r.TargetError)
	}
	if crashed {
		if r.EndedBy != report.EndedByTargetExit && r.EndedBy != report.EndedByDuration {
			t.Errorf("ended by %q after the crash", r.EndedBy)
		}
		if !strings.Contains(stderr.String(), "crashed as expected: concurrent map") {
			t.Errorf("stderr does not say the crash was expected:\n%s", stderr.String())
		}
	}
	if strings.Contains(stdout.String(), "goroutine ") && strings.Contains(stdout.String(), "[running]") {
		t.Error("the workload's crash dump leaked into the report")
	}

	// What the findings make of it (the analysis itself, on this report).
	fs := findings.Analyze(r)
	want := map[string]bool{"critical race or death": false, "ordersMu warning": false, "region hot key": false}
	for _, f := range fs {
		switch {
		case f.Severity == report.SeverityCritical:
			want["critical race or death"] = true
		case f.Severity == report.SeverityWarning && strings.Contains(f.Title, "ordersMu"):
			want["ordersMu warning"] = true
		case strings.Contains(f.Title, `hot key "region"`):
			want["region hot key"] = true
		}
	}
	for what, ok := range want {
		if !ok {
			t.Errorf("findings.Analyze: no %s in %+v", what, fs)
		}
	}
	// The report must carry them: the trace collector sets
	// r.Findings = findings.Analyze(r).
	if len(r.Findings) == 0 {
		t.Error("the report has no findings: wire findings.Analyze into the trace collector")
	}
}

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{{"demo", "-p", "1"}, {"demo", "extra"}, {"demo", "-f", "xml"}} {
		stdout, stderr, code := run(t, args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want a usage error", args, code, stdout)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: stderr %q: want one line", args, stderr)
		}
	}
	help, _, _ := run(t, "--help")
	if strings.Contains(help, demoWorkloadCmd) || !strings.Contains(help, "demo") || !strings.Contains(help, "doctor") {
		t.Errorf("help lists the hidden workload, or lacks demo/doctor:\n%s", help)
	}
}
