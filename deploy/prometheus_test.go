package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// upstreamPromtool is Prometheus's own promtool, which make deps builds
// (scripts/deps.sh says which version): Debian's is built without
// Kubernetes service discovery and rejects kubernetes_sd_configs.
func upstreamPromtool(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*promtool=\S+@(v\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/deps.sh names no promtool")
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), "tools", "prometheus-"+string(m[1]), "promtool")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: make deps (scripts/deps.sh test) builds it: %v", bin, err)
	}
	return bin
}

// TestScrapeConfig checks deploy/prometheus/prometheus.yml with promtool
// check config, the alerting rules it loads with it, and that it finds the
// DaemonSet's pods by their namespace and port and keeps the traced pods'
// labels; and that the check fails on a misspelled discovery setting.
func TestScrapeConfig(t *testing.T) {
	promtool := upstreamPromtool(t)
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../dashboards/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	check := func(cfg string) (string, error) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput()
		return string(out), err
	}
	out, err := check(string(cfg))
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))

	s := string(cfg)
	ds := manifests(t)["DaemonSet"].(*appsv1.DaemonSet)
	for _, want := range []string{
		"kubernetes_sd_configs:",
		"honor_labels: true",
		"names: [" + ds.Namespace + "]",
		"label: app.kubernetes.io/name=" + ds.Spec.Template.Labels["app.kubernetes.io/name"],
		"regex: " + ds.Spec.Template.Spec.Containers[0].Ports[0].Name,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("prometheus.yml lacks %q", want)
		}
	}

	bad := strings.Replace(s, "namespaces:", "namespace:", 1)
	if out, err := check(bad); err == nil {
		t.Errorf("promtool check config passed a misspelled namespaces:\n%s", out)
	}
}
