package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// helmCmd is Helm, run from its module at a fixed version: the test needs
// no Helm installed, and go.mod does not depend on it.
const helmCmd = "helm.sh/helm/v4/cmd/helm@v4.3.2"

// podMonitorAPI is what a cluster with the Prometheus Operator serves; the
// chart renders its PodMonitor only there.
const podMonitorAPI = "monitoring.coreos.com/v1/PodMonitor"

// helmTemplate renders the chart with helm template and decodes the
// objects strictly, by kind.
func helmTemplate(t *testing.T, args ...string) map[string]runtime.Object {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("go", append([]string{"run", helmCmd, "template", "maptrace", "helm/maptrace"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("go run %s template %s: %v", helmCmd, strings.Join(args, " "), time.Since(start).Round(10*time.Millisecond))
	objs, err := decodeAll(decoder(), out)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	byKind := map[string]runtime.Object{}
	addByKind(t, "helm template", byKind, objs)
	return byKind
}

// TestHelmChart renders deploy/helm/maptrace with Helm itself: with its
// default values (on a cluster with the Prometheus Operator) it is
// deploy/kubernetes/ object for object, so that the two cannot drift; its
// values change what they say.
func TestHelmChart(t *testing.T) {
	want := manifests(t)
	got := helmTemplate(t, "--api-versions", podMonitorAPI)
	if !slices.Equal(kinds(got), kinds(want)) {
		t.Fatalf("the chart renders %v, deploy/kubernetes has %v", kinds(got), kinds(want))
	}
	for kind, w := range want {
		wj, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		gj, err := json.Marshal(got[kind])
		if err != nil {
			t.Fatal(err)
		}
		if string(gj) != string(wj) {
			t.Errorf("the chart's %s is not deploy/kubernetes's:\nchart:    %s\nmanifest: %s", kind, gj, wj)
		}
	}

	values := filepath.Join(t.TempDir(), "values.yaml")
	err := os.WriteFile(values, []byte(`image: registry.example.com/maptrace:v1.2.3
extraArgs: ["--match=shop/*", "--service-label=app"]
nodeSelector:
  kubernetes.io/os: linux
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	got = helmTemplate(t, "-f", values) // a cluster without the Prometheus Operator
	if _, ok := got["PodMonitor"]; ok {
		t.Error("a PodMonitor rendered for a cluster without its API")
	}
	ds, ok := got["DaemonSet"].(*appsv1.DaemonSet)
	if !ok {
		t.Fatalf("no DaemonSet rendered: %v", kinds(got))
	}
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "registry.example.com/maptrace:v1.2.3" {
		t.Errorf("image %q, want the values'", c.Image)
	}
	if want := []string{"agent", "--listen=:9435", "--containerd=/run/containerd/containerd.sock", "--match=shop/*", "--service-label=app"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if pod.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector %v, want the values'", pod.NodeSelector)
	}
}
