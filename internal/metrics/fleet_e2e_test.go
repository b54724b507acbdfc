package metrics_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestFleetEndToEnd runs maptrace agent on two services the test started
// (by --match on the test's own directory), has a real Prometheus scrape it
// with the alerting rules loaded, and runs the dashboard's fleet queries,
// those that rank or split by service: each must give both services. The
// wait alert's expression, without its threshold, must name each.
func TestFleetEndToEnd(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, bin := range []string{prometheusBin, promtoolBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: this test runs a real Prometheus; make deps installs Debian's prometheus package: %v", bin, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var fleet []dashQuery
	byService := regexp.MustCompile(`by \([^)]*\bservice\b`)
	for _, q := range dashboardQueries(t) {
		if byService.MatchString(q.expr) {
			fleet = append(fleet, q)
		}
	}
	if len(fleet) < 5 {
		t.Fatalf("%d dashboard queries by service, want the fleet view's (at least 5)", len(fleet))
	}

	dir := t.TempDir()
	maptrace := filepath.Join(dir, "maptrace")
	if out, err := exec.Command("go", "build", "-o", maptrace, "../../cmd/maptrace").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	src, err := os.ReadFile(testtarget.Build(t, "../../testdata/contention", "local"))
	if err != nil {
		t.Fatal(err)
	}
	services := []string{"fleet-api", "fleet-worker"}
	var procs []*testtarget.Proc
	for _, s := range services {
		if err := os.WriteFile(filepath.Join(dir, s), src, 0o755); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, testtarget.Start(t, filepath.Join(dir, s)))
	}

	instance := freePort(t)
	// A budget that lets the map probes see the targets' few map operations
	// within seconds: the map class panels need a map row per service.
	agent := exec.Command(maptrace, "agent", "--listen", instance, "--match", filepath.Join(dir, "fleet-*"),
		"--containerd", "", "--overhead", "25")
	stderr, err := agent.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
		}
	}()
	t.Cleanup(func() {
		agent.Process.Kill()
		agent.Wait()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", log)
		}
	})

	prom := startPrometheus(t, instance, rules)
	sel := fmt.Sprintf(`{job="maptrace", instance=%q}`, instance)
	prom.waitFor(t, deadline, "both services traced", "count(maptrace_target_up"+sel+" == 1) == 2")
	start := time.Now()
	for _, p := range procs {
		p.Send(t, "run 5000")
	}
	prom.waitFor(t, deadline, "lock wait of both services",
		"count(sum by (service) (rate(maptrace_mutex_wait_seconds_sum"+sel+"[1m])) > 0) == 2")
	t.Logf("both services' lock wait in Prometheus %v after their workload started", time.Since(start).Round(time.Millisecond))

	subst := strings.NewReplacer(
		"${job}", "maptrace", "$job", "maptrace",
		"${instance}", instance, "$instance", instance,
		"${mutex}", ".+", "$mutex", ".+",
		"${namespace}", ".*", "$namespace", ".*", "${service}", ".*", "$service", ".*", "${pod}", ".*", "$pod", ".*",
		"$__rate_interval", "1m", "$__interval", "1s", "$__range", "1m",
	)
	want := strings.Join(services, " ")
	for {
		var failed []string
		for _, q := range fleet {
			got, err := prom.series(subst.Replace(q.expr))
			if err != nil {
				t.Fatalf("%s: %v\n  query: %s", q.where, err, q.expr)
			}
			if s := serviceSet(got); s != want {
				failed = append(failed, fmt.Sprintf("%s: services %q, want %q", q.where, s, want))
			}
		}
		if len(failed) == 0 {
			t.Logf("all %d fleet queries rank both services", len(fleet))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet queries:\n%s", strings.Join(failed, "\n"))
		}
		time.Sleep(time.Second)
	}

	rs := prom.checkRules(t, deadline)
	expr := regexp.MustCompile(`\)\s*>\s*[0-9.]+\s*$`).ReplaceAllString(rs["MaptraceMutexWaitHigh"], ")")
	got, err := prom.series(expr)
	if err != nil {
		t.Fatalf("MaptraceMutexWaitHigh without threshold: %v\n  query: %s", err, expr)
	}
	if s := serviceSet(got); s != want {
		t.Errorf("MaptraceMutexWaitHigh without threshold: services %q, want %q\n  query: %s", s, want, expr)
	}
}

// serviceSet is the distinct service labels of a query's series, sorted.
func serviceSet(series []map[string]string) string {
	seen := map[string]bool{}
	for _, l := range series {
		seen[l["service"]] = true
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
