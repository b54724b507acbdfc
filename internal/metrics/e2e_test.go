package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/metrics"
	"github.com/maptrace/maptrace/internal/testtarget"
	"github.com/maptrace/maptrace/internal/trace"
)

const (
	prometheusBin = "/usr/bin/prometheus"
	promtoolBin   = "/usr/bin/promtool"
	dashboardFile = "../../dashboards/maptrace.json"
	alertsFile    = "../../dashboards/alerts.yml"
)

// TestEndToEnd traces a real contending Go program, serves its metrics,
// has a real Prometheus scrape them with the alerting rules loaded, and runs
// every query of the dashboard against it: each must succeed with data.
func TestEndToEnd(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, bin := range []string{prometheusBin, promtoolBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: this test runs a real Prometheus; install it with "+
				"`apt-get install -y prometheus` (Debian's package has prometheus and promtool): %v", bin, err)
		}
	}
	deadline := time.Now().Add(50 * time.Second)

	// The rules must pass promtool before Prometheus loads them.
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtoolBin, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertsFile, err, out)
	}
	queries := dashboardQueries(t)

	// A real target, traced in-process.
	bin := testtarget.Build(t, "../../testdata/contention", "local")
	p := testtarget.Start(t, bin)
	sess, err := trace.Start(trace.Options{PID: p.PID(), Mutex: true, Maps: true, Overhead: 100, Keys: "raw"})
	if err != nil {
		t.Fatalf("trace.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // end the trace now: Wait detaches the probes
		if _, err := sess.Wait(ctx); err != nil {
			t.Errorf("detach: %v", err)
		}
	})

	// The exporter, on a loopback port of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.NewHandler(sess, "raw"))
	// What /metrics serves without --keys raw: the same trace, keys hashed.
	mux.Handle("/hashed", metrics.NewHandler(sess, "hash"))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	instance := ln.Addr().String()

	prom := startPrometheus(t, instance, rules)
	sel := fmt.Sprintf(`{job="maptrace", instance=%q}`, instance)
	prom.waitFor(t, deadline, "first scrape", "maptrace_target_up"+sel+" == 1")

	// The workload runs for 5s while Prometheus scrapes every second: wait
	// for a few scrapes with mutex contention and map operations going on,
	// then for every dashboard query to return data.
	start := time.Now()
	p.Send(t, "run 5000")
	prom.waitFor(t, deadline, "5 scrapes of the exporter with mutex and map data",
		"count_over_time(maptrace_target_up"+sel+"[1m]) >= 5",
		"rate(maptrace_mutex_contentions_total"+sel+"[1m]) > 0",
		"rate(maptrace_mutex_wait_seconds_count"+sel+"[1m]) > 0",
		"rate(maptrace_map_ops_total"+sel+"[1m]) > 0",
		"rate(maptrace_map_hot_key_ops_total"+sel+"[1m]) > 0")
	t.Logf("contention and map operations in Prometheus %v after the workload started", time.Since(start).Round(time.Millisecond))

	subst := strings.NewReplacer(
		"${job}", "maptrace", "$job", "maptrace",
		"${instance}", instance, "$instance", instance,
		"${mutex}", ".+", "$mutex", ".+", // the "All" value of the mutex variable
		// the "All" values of the agent's label variables: attach's series
		// have none of these labels
		"${namespace}", ".*", "$namespace", ".*", "${service}", ".*", "$service", ".*", "${pod}", ".*", "$pod", ".*",
		"$__rate_interval", "1m", "$__interval", "1s", "$__range", "1m",
	)
	var failed []string
	for {
		failed = failed[:0]
		for _, q := range queries {
			expr := subst.Replace(q.expr)
			if strings.Contains(expr, "$") {
				t.Fatalf("%s: variable left in %q", q.where, expr)
			}
			n, err := prom.query(expr)
			switch {
			case err != nil:
				// a bad query never gets better: fail now
				t.Fatalf("%s: %v\n  query: %s", q.where, err, expr)
			case n == 0:
				failed = append(failed, fmt.Sprintf("%s: no data\n  query: %s", q.where, expr))
			}
		}
		if len(failed) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(failed) > 0 {
		t.Errorf("dashboard queries without data after the workload ran:\n%s\n\nexporter output:\n%s",
			strings.Join(failed, "\n"), get(t, "http://"+instance+"/metrics"))
	} else {
		t.Logf("all %d dashboard queries returned data", len(queries))
	}

	// The alerting rules evaluate without errors against the real series.
	// The wait alert's for: is 5m and a 5s burst cannot reach its threshold
	// in a 1m rate, so check instead that its expression, without the
	// threshold, sees every contended mutex with the labels the alert names.
	rs := prom.checkRules(t, deadline)
	expr, ok := rs["MaptraceMutexWaitHigh"]
	if !ok {
		t.Fatalf("no MaptraceMutexWaitHigh rule in %s", alertsFile)
	}
	cut := regexp.MustCompile(`\)\s*>\s*[0-9.]+\s*$`)
	if !cut.MatchString(expr) {
		t.Fatalf("MaptraceMutexWaitHigh: %q does not end in a > threshold", expr)
	}
	expr = cut.ReplaceAllString(expr, ")")
	want := []string{"main.mu/mutex", "main.rw/rwmutex-read", "main.rw/rwmutex-write"}
	for {
		got, err := prom.series(expr)
		if err != nil {
			t.Fatalf("MaptraceMutexWaitHigh without threshold: %v\n  query: %s", err, expr)
		}
		seen := map[string]bool{}
		for _, l := range got {
			if l["job"] == "maptrace" && l["instance"] == instance && l["value"] != "0" {
				seen[l["mutex"]+"/"+l["kind"]] = true
			}
		}
		missing := false
		for _, w := range want {
			missing = missing || !seen[w]
		}
		if !missing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MaptraceMutexWaitHigh without threshold gave %v, want wait for %v\n  query: %s", got, want, expr)
		}
		time.Sleep(500 * time.Millisecond)
	}

	checkHashedKeys(t, sess, instance)

	// The workload's own end report arrives once the run is over.
	if l := p.Line(t, time.Until(deadline)); !strings.HasPrefix(l, "mutex_wait_seconds ") {
		t.Errorf("target said %q after the run", l)
	}
}

// checkHashedKeys scrapes the raw and the hashed key series of one trace:
// each raw series must have a hashed one, under the trace's hash of its key.
// (Counts are not compared: the two scrapes may read snapshots apart.)
func checkHashedKeys(t *testing.T, sess *trace.Session, instance string) {
	t.Helper()
	series := func(path string) map[string]string {
		out := map[string]string{}
		re := regexp.MustCompile(`(?m)^maptrace_map_hot_key_ops_total\{key="([^"]*)",map="([^"]*)"\} (\S+)$`)
		for _, m := range re.FindAllStringSubmatch(get(t, "http://"+instance+path), -1) {
			out[m[2]+"\x00"+m[1]] = m[3] // map and key: a class's map label has spaces
		}
		return out
	}
	raw, hashed := series("/metrics"), series("/hashed")
	if len(raw) == 0 || len(raw) != len(hashed) {
		t.Fatalf("hot key series: %d raw, %d hashed", len(raw), len(hashed))
	}
	for mk := range raw {
		m, k, _ := strings.Cut(mk, "\x00")
		if k != metrics.Other {
			k = sess.HashedKey(k)
			if !regexp.MustCompile(`^h:[0-9a-f]{12}$`).MatchString(k) {
				t.Errorf("hashed key %q", k)
			}
		}
		if _, ok := hashed[m+"\x00"+k]; !ok {
			t.Errorf("raw series %s has no hashed series %s %s: %v", mk, m, k, hashed)
		}
	}
}

// dashQuery is one panel target's query.
type dashQuery struct{ where, expr string }

// dashboardQueries reads every target expression of the dashboard.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels json.RawMessage `json:"panels"`
	}
	var walk func(raw json.RawMessage) []dashQuery
	walk = func(raw json.RawMessage) []dashQuery {
		var ps []panel
		if len(raw) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, &ps); err != nil {
			t.Fatalf("%s: %v", dashboardFile, err)
		}
		var out []dashQuery
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Fatalf("%s: panel %q target %s has no expr", dashboardFile, p.Title, tg.RefID)
				}
				out = append(out, dashQuery{fmt.Sprintf("panel %q (%s) target %s", p.Title, p.Type, tg.RefID), tg.Expr})
			}
			out = append(out, walk(p.Panels)...)
		}
		return out
	}
	var d struct {
		Panels json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	qs := walk(d.Panels)
	if len(qs) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
	return qs
}

// prometheus is a running Prometheus server.
type prometheus struct {
	url string
	out *syncBuffer
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort finds a loopback port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPrometheus runs Prometheus scraping instance every second, with the
// rules file loaded, and waits until it is ready.
func startPrometheus(t *testing.T, instance, rules string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: maptrace
    static_configs:
      - targets: [%q]
`, rules, instance)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	out := &syncBuffer{}
	cmd := exec.Command(prometheusBin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", prometheusBin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	p := &prometheus{url: "http://" + addr, out: out}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited: %v\n%s", cmd.ProcessState, out)
		default:
		}
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("prometheus not ready at %s after 20s\n%s", p.url, out)
		}
	}
}

// apiResponse is the envelope of Prometheus's HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *prometheus) api(path string, params url.Values) (json.RawMessage, error) {
	resp, err := http.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: status %s: %s: %s", path, r.Status, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// query runs an instant query and returns how many series (or scalars) it
// gave; an error is a query Prometheus rejected.
func (p *prometheus) query(expr string) (int, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	switch d.ResultType {
	case "vector", "matrix":
		var rs []json.RawMessage
		if err := json.Unmarshal(d.Result, &rs); err != nil {
			return 0, err
		}
		return len(rs), nil
	case "scalar", "string":
		return 1, nil
	}
	return 0, fmt.Errorf("result type %q", d.ResultType)
}

// series runs an instant query for a vector and returns each sample's
// labels, with its value as the label "value".
func (p *prometheus) series(expr string) ([]map[string]string, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result type %q, want vector", d.ResultType)
	}
	var out []map[string]string
	for _, r := range d.Result {
		l := r.Metric
		l["value"] = fmt.Sprint(r.Value[1])
		out = append(out, l)
	}
	return out, nil
}

// waitFor waits until every query returns data.
func (p *prometheus) waitFor(t *testing.T, deadline time.Time, what string, exprs ...string) {
	t.Helper()
	for {
		missing := ""
		for _, e := range exprs {
			n, err := p.query(e)
			if err != nil {
				t.Fatalf("%s: %v", e, err)
			}
			if n == 0 {
				missing = e
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			targets, _ := p.api("/api/v1/targets", nil)
			t.Fatalf("no %s before the deadline: %s has no data\ntargets: %s", what, missing, targets)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkRules waits until every rule of the maptrace group has been
// evaluated and asserts none failed.
func (p *prometheus) checkRules(t *testing.T, deadline time.Time) map[string]string {
	t.Helper()
	type rule struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		State     string `json:"state"`
		Type      string `json:"type"`
	}
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	for {
		raw, err := p.api("/api/v1/rules", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &data); err != nil {
			t.Fatal(err)
		}
		var rules []rule
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		unknown := len(rules) == 0
		for _, r := range rules {
			if r.Health == "unknown" {
				unknown = true
			}
		}
		if !unknown || time.Now().After(deadline) {
			b, err := os.ReadFile(alertsFile)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(regexp.MustCompile(`(?m)^\s*- alert:`).FindAll(b, -1)); len(rules) != want {
				t.Fatalf("prometheus loaded %d rules from %s, want its %d: %s", len(rules), alertsFile, want, raw)
			}
			var states []string
			exprs := map[string]string{}
			for _, r := range rules {
				exprs[r.Name] = r.Query
				if r.Health != "ok" || r.LastError != "" {
					t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
				}
				states = append(states, r.Name+"="+r.State)
			}
			sort.Strings(states)
			t.Logf("alerting rules evaluated: %s", strings.Join(states, " "))
			return exprs
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
