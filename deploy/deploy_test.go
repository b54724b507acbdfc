package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// decoder decodes manifests as the API server would, but strictly: an
// unknown or duplicated field is an error, not a field silently dropped.
func decoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeAll decodes every document of a YAML stream.
func decodeAll(dec runtime.Decoder, data []byte) ([]runtime.Object, error) {
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d (%v): %w", len(out)+1, gvk, err)
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// manifests decodes every file of kubernetes/, by kind.
func manifests(t *testing.T) map[string]runtime.Object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/ (%v)", err)
	}
	dec := decoder()
	out := map[string]runtime.Object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(dec, data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		addByKind(t, f, out, objs)
	}
	return out
}

// addByKind adds objs to out by kind; a second of a kind is an error of
// where they came from.
func addByKind(t *testing.T, where string, out map[string]runtime.Object, objs []runtime.Object) {
	t.Helper()
	for _, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if _, dup := out[kind]; dup {
			t.Errorf("%s: a second %s", where, kind)
		}
		out[kind] = o
	}
}

// kinds lists the kinds of objs, sorted.
func kinds(objs map[string]runtime.Object) []string {
	var out []string
	for k := range objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// daemonSetCaps are the capabilities the DaemonSet adds, as the kernel
// names them (cap_bpf), in order.
func daemonSetCaps(t *testing.T) []string {
	t.Helper()
	ds := manifests(t)["DaemonSet"].(*appsv1.DaemonSet)
	var caps []string
	for _, c := range ds.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add {
		caps = append(caps, "cap_"+strings.ToLower(string(c)))
	}
	sort.Strings(caps)
	return caps
}

// TestManifests decodes every manifest strictly into the Kubernetes API's
// types (and the Prometheus Operator's, for the PodMonitor), and checks
// that they agree with each other and hold the privileges docs/deploy.md
// explains, no more.
func TestManifests(t *testing.T) {
	objs := manifests(t)
	if want := []string{"DaemonSet", "Namespace", "PodMonitor", "Service", "ServiceAccount"}; !slices.Equal(kinds(objs), want) {
		t.Fatalf("kinds %v, want %v", kinds(objs), want)
	}
	ds := objs["DaemonSet"].(*appsv1.DaemonSet)
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"hostPID", pod.HostPID},
		{"no host network", !pod.HostNetwork},
		{"no host IPC", !pod.HostIPC},
		{"no API token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		{"not privileged", sc.Privileged != nil && !*sc.Privileged},
		{"no privilege escalation", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"read-only root", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"drops every capability", slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"selector matches the pods", ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] == ds.Spec.Template.Labels["app.kubernetes.io/name"]},
		{"image of make image", strings.HasPrefix(c.Image, "localhost/maptrace:")},
	} {
		if !check.ok {
			t.Errorf("DaemonSet: not %s", check.what)
		}
	}
	if got, want := daemonSetCaps(t), []string{"cap_bpf", "cap_perfmon", "cap_sys_ptrace"}; !slices.Equal(got, want) {
		t.Errorf("DaemonSet adds %v, want %v (TestCapabilities shows these suffice)", got, want)
	}
	// The one mount: containerd's socket, read-only.
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/run/containerd" || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("mounts %+v, want /run/containerd read-only alone", c.VolumeMounts)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/run/containerd" {
		t.Errorf("volumes %+v, want the host's /run/containerd alone", pod.Volumes)
	}
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--containerd=/run/containerd/containerd.sock") || !strings.Contains(args, "--listen=:9435") {
		t.Errorf("args %q", args)
	}
	// One port name from the container to the Service and the PodMonitor.
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9435 {
		t.Errorf("container ports %+v, want metrics 9435", c.Ports)
	}
	svc := objs["Service"].(*corev1.Service)
	if svc.Spec.Ports[0].TargetPort.String() != "metrics" || svc.Spec.Selector["app.kubernetes.io/name"] != "maptrace" {
		t.Errorf("Service: %+v", svc.Spec)
	}
	pm := objs["PodMonitor"].(*monitoringv1.PodMonitor)
	ep := pm.Spec.PodMetricsEndpoints
	if len(ep) != 1 || ep[0].Port == nil || *ep[0].Port != "metrics" || !ep[0].HonorLabels ||
		pm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "maptrace" {
		t.Errorf("PodMonitor endpoints %+v selector %+v: want port metrics with honorLabels", ep, pm.Spec.Selector)
	}
	for kind, o := range objs {
		if kind == "Namespace" {
			continue
		}
		if ns := o.(interface{ GetNamespace() string }).GetNamespace(); ns != "maptrace" {
			t.Errorf("%s in namespace %q, want maptrace", kind, ns)
		}
	}
}

// TestManifestsStrict shows the decoding fails on what the API server would
// drop or refuse: a misspelled field, a field at the wrong level, a kind it
// does not know.
func TestManifestsStrict(t *testing.T) {
	data, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"misspelled", "hostPID: true", "hostPid: true"},
		{"wrong level", "      hostPID: true", "      hostPID: true\n      readOnlyRootFilesystem: true"},
		{"unknown kind", "kind: DaemonSet", "kind: DaemonSets"},
		{"duplicate", "      hostPID: true", "      hostPID: true\n      hostPID: false"},
	} {
		bad := strings.Replace(string(data), tc.from, tc.to, 1)
		if bad == string(data) {
			t.Fatalf("%s: %q not in daemonset.yaml", tc.name, tc.from)
		}
		if _, err := decodeAll(decoder(), []byte(bad)); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}
