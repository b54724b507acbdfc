package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const (
	dashboardPath  = "../../dashboards/maptrace.json"
	alertsPath     = "../../dashboards/alerts.yml"
	alertTestsPath = "../../dashboards/alerts_test.yml"
	promtoolPath   = "/usr/bin/promtool"
)

// grafanaUnits are the Grafana unit ids the dashboard may use.
var grafanaUnits = map[string]bool{
	"none": true, "short": true, "percent": true, "percentunit": true,
	"ns": true, "µs": true, "ms": true, "s": true,
	"ops": true, "cps": true, "reqps": true, "bytes": true,
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Datasource  json.RawMessage `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return &d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// usesDatasourceVar says whether a panel or target datasource is the
// ${datasource} variable (as a string or as {"uid": ...}).
func usesDatasourceVar(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "${datasource}" || s == "$datasource"
	}
	var o struct {
		UID string `json:"uid"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.UID == "${datasource}" || o.UID == "$datasource"
	}
	return false
}

var (
	// every selector of a metric: name{...}
	selectorRE = regexp.MustCompile(`\b(maptrace_[a-z_]+)\s*(\{[^}]*\})?`)
	// range functions and their windows
	rangeFnRE = regexp.MustCompile(`\b(rate|irate|increase|[a-z]+_over_time)\s*\(`)
	windowRE  = regexp.MustCompile(`\[([^\]]*)\]`)
	// metric names of the contract (and the extras this package exports)
	contractNames = map[string]bool{
		"maptrace_mutex_wait_seconds": true, "maptrace_mutex_contentions_total": true,
		"maptrace_map_ops_total": true, "maptrace_map_hot_key_ops_total": true, "maptrace_map_races_total": true,
		"maptrace_probe_hits_total": true, "maptrace_overhead_ratio": true, "maptrace_map_sampling_fraction": true,
		"maptrace_target_info": true, "maptrace_findings": true, "maptrace_target_up": true,
		"maptrace_map_cpu_seconds_total": true, "maptrace_target_cpu_seconds_total": true,
		"maptrace_map_shards": true, "maptrace_map_shard_imbalance": true,
	}
)

// TestDashboardLint checks the dashboard-linter conventions: a datasource
// variable, job and instance variables, every panel on ${datasource} with a
// unit, every query filtered by job and instance, $__rate_interval in every
// rate and increase, and only the exported metric names.
func TestDashboardLint(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want at least 36", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var o struct {
				Query string `json:"query"`
			}
			json.Unmarshal(v.Query, &o)
			q = o.Query
		}
		vars[v.Name] = v.Type + " " + q
		if v.Type == "query" && !usesDatasourceVar(v.Datasource) {
			t.Errorf("variable %s: datasource %s, want ${datasource}", v.Name, v.Datasource)
		}
	}
	for name, want := range map[string]string{
		"datasource": "datasource prometheus",
		"job":        "query label_values(maptrace_target_info, job)",
		"instance":   `query label_values(maptrace_target_info{job=~"$job"}, instance)`,
	} {
		if vars[name] != want {
			t.Errorf("variable %s is %q, want %q", name, vars[name], want)
		}
	}

	exprs := 0
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		where := p.Type + " " + `"` + p.Title + `"`
		if u := p.FieldConfig.Defaults.Unit; !grafanaUnits[u] {
			t.Errorf("%s: unit %q, want one of Grafana's (fieldConfig.defaults.unit)", where, u)
		}
		if !usesDatasourceVar(p.Datasource) {
			t.Errorf("%s: datasource %s, want ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		for _, tg := range p.Targets {
			exprs++
			for _, p := range exprProblems(tg.Expr) {
				t.Errorf("%s %s: %s", where, tg.RefID, p)
			}
			if !usesDatasourceVar(tg.Datasource) {
				t.Errorf("%s %s: datasource %s, want ${datasource}", where, tg.RefID, tg.Datasource)
			}
		}
	}
	if exprs < 10 {
		t.Errorf("only %d queries", exprs)
	}
}

// exprProblems lists what breaks the conventions in one query.
func exprProblems(expr string) []string {
	var out []string
	sels := selectorRE.FindAllStringSubmatch(expr, -1)
	if len(sels) == 0 {
		out = append(out, fmt.Sprintf("no maptrace_ metric in %q", expr))
	}
	for _, s := range sels {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s[1], "_bucket"), "_sum"), "_count")
		if !contractNames[name] && !contractNames[s[1]] {
			out = append(out, fmt.Sprintf("%s is not an exported metric", s[1]))
		}
		if !strings.Contains(s[2], `job=~"$job"`) || !strings.Contains(s[2], `instance=~"$instance"`) {
			out = append(out, fmt.Sprintf("selector %s lacks job=~\"$job\", instance=~\"$instance\"", s[0]))
		}
	}
	fns := rangeFnRE.FindAllStringIndex(expr, -1)
	windows := windowRE.FindAllStringSubmatch(expr, -1)
	for _, w := range windows {
		if w[1] != "$__rate_interval" {
			out = append(out, fmt.Sprintf("range [%s], want [$__rate_interval] in %q", w[1], expr))
		}
	}
	if len(fns) != len(windows) {
		out = append(out, fmt.Sprintf("%d range functions but %d windows in %q", len(fns), len(windows), expr))
	}
	return out
}

// TestCheckExpr makes sure the checks catch what they are for.
func TestCheckExpr(t *testing.T) {
	for _, bad := range []string{
		`sum(rate(maptrace_map_ops_total{job=~"$job", instance=~"$instance"}[5m]))`,
		`sum(rate(maptrace_map_ops_total{job=~"$job"}[$__rate_interval]))`,
		`sum(maptrace_map_ops_total)`,
		`sum(maptrace_nonesuch{job=~"$job", instance=~"$instance"})`,
		`sum(rate(maptrace_map_ops_total{job=~"$job", instance=~"$instance"}[$__rate_interval])) / sum(rate(maptrace_map_ops_total{job=~"$job", instance=~"$instance"}))`,
	} {
		if len(exprProblems(bad)) == 0 {
			t.Errorf("exprProblems accepts %q", bad)
		}
	}
	good := `sum by (le) (increase(maptrace_mutex_wait_seconds_bucket{job=~"$job", instance=~"$instance", mutex=~"$mutex"}[$__rate_interval]))`
	if p := exprProblems(good); len(p) != 0 {
		t.Errorf("exprProblems(%q) = %q", good, p)
	}
}

// TestAlertRules checks the alerting rules with promtool and runs their unit
// tests (dashboards/alerts_test.yml: races that appear already counted,
// races that grow, resolution, a mutex over and one under the threshold).
func TestAlertRules(t *testing.T) {
	if _, err := os.Stat(promtoolPath); err != nil {
		t.Fatalf("%s is missing: install Debian's prometheus package (apt-get install -y prometheus): %v", promtoolPath, err)
	}
	if out, err := exec.Command(promtoolPath, "check", "rules", alertsPath).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", alertsPath, err, out)
	}
	if out, err := exec.Command(promtoolPath, "test", "rules", alertTestsPath).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", alertTestsPath, err, out)
	}
}
