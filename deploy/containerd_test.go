package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/maptrace/maptrace/internal/image"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// ctrDefaultCaps are the capabilities ctr run gives a container unless
// told otherwise (containerd 1.6's default spec; its ctr has no
// --cap-drop ALL): dropped one by one, as the DaemonSet drops ALL.
var ctrDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// TestDaemonSetInContainerd runs the agent as the DaemonSet does, from the
// image make image builds, in a containerd of the test's own: uid 0 with
// only the DaemonSet's capabilities, the runtime's default seccomp profile,
// a read-only root, the host's pid namespace, and containerd's socket
// directory mounted read-only at /run/containerd, with the DaemonSet's
// arguments. It traces a target on the host and one in a container that
// carries a pod's CRI labels, which its series get.
func TestDaemonSetInContainerd(t *testing.T) {
	testtarget.NeedAttach(t)
	c := testtarget.StartContainerd(t)
	ds := manifests(t)["DaemonSet"].(*appsv1.DaemonSet)
	spec := ds.Spec.Template.Spec
	agent := spec.Containers[0]
	dir := t.TempDir()

	// The agent's image, as make image builds it.
	bin := filepath.Join(dir, "maptrace")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/maptrace")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	tarFile := filepath.Join(dir, "maptrace.tar")
	if out, err := exec.Command("go", "run", "../cmd/mkimage", "-bin", bin, "-version", "dstest", "-tar", tarFile).CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v: %s", err, out)
	}
	c.Ctr(t, "images", "import", tarFile)

	// A target on the host, started as root.
	target := testtarget.Build(t, "../testdata/contention", "local")
	data, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	hostBin := filepath.Join(dir, "contention-host")
	if err := os.WriteFile(hostBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	testtarget.Start(t, hostBin)

	// A target in a pod: a container with the labels a kubelet gives it.
	img, err := image.Build(image.Config{Files: []image.File{{Path: "/contention", Mode: 0o755, Data: data}}, Entrypoint: []string{"/contention"}})
	if err != nil {
		t.Fatal(err)
	}
	podTar := filepath.Join(dir, "contention.tar")
	if err := image.WriteTarball(podTar, "localhost/maptrace-test-contention:1", img); err != nil {
		t.Fatal(err)
	}
	c.Ctr(t, "images", "import", podTar)
	id := randomHex(t, 32)
	namespace := "shop-" + id[:8]
	run := append([]string{"--address", c.Address, "--namespace", testtarget.Namespace, "run"}, c.RunArgs()...)
	testtarget.Start(t, "ctr", append(run,
		"--label", "io.kubernetes.pod.namespace="+namespace,
		"--label", "io.kubernetes.pod.name=web-0",
		"--label", "io.kubernetes.container.name=api",
		"localhost/maptrace-test-contention:1", id)...)

	// The agent, with the DaemonSet's settings.
	port := freePort(t)
	opts := []string{}
	sc := agent.SecurityContext
	if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault {
		opts = append(opts, "--seccomp")
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		opts = append(opts, "--read-only")
	}
	if spec.HostPID {
		opts = append(opts, "--with-ns", "pid:/proc/self/ns/pid")
	}
	for _, cp := range ctrDefaultCaps {
		opts = append(opts, "--cap-drop", "CAP_"+cp)
	}
	for _, cp := range sc.Capabilities.Add {
		opts = append(opts, "--cap-add", "CAP_"+string(cp))
	}
	for _, m := range agent.VolumeMounts {
		if m.MountPath != "/run/containerd" || !m.ReadOnly {
			t.Fatalf("mount %+v: this test knows /run/containerd read-only", m)
		}
		// The node's /run/containerd is this containerd's directory.
		opts = append(opts, "--mount", "type=bind,src="+filepath.Dir(c.Address)+",dst=/run/containerd,options=rbind:ro")
	}
	// The test scrapes it on the loopback: a pod has an address of its own.
	opts = append(opts, "--net-host")
	args := []string{}
	for _, a := range agent.Args {
		if strings.HasPrefix(a, "--listen=") {
			a = fmt.Sprintf("--listen=127.0.0.1:%d", port)
		}
		args = append(args, a)
	}
	args = append(args, "--match", hostBin, "--match", namespace+"/web-*")
	agentID := "maptrace-" + randomHex(t, 8)
	cmd := exec.Command("ctr", append(append(append(run, opts...), "localhost/maptrace:dstest", agentID, "/maptrace"), args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent's output:\n%s", stderr.String())
		}
	})
	start := time.Now()

	up := func(labels string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^maptrace_target_up\{` + labels + `\} 1$`)
	}
	want := []*regexp.Regexp{
		up(`container="",container_id="",namespace="",pod="",service="contention-host"`),
		up(`container="api",container_id="` + id + `",namespace="` + namespace + `",pod="web-0",service="api"`),
	}
	var metrics string
	for {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
		ok := true
		for _, re := range want {
			ok = ok && re.MatchString(metrics)
		}
		if ok {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("after 30s, /metrics lacks %v:\n%s", want, grep(metrics, "maptrace_target_up"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("both targets traced with their labels %v after the agent's container started", time.Since(start).Round(time.Millisecond))

	// What the agent ran with, as the kernel sees it.
	pid := taskPID(t, c, agentID)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var caps uint64
	for _, cp := range daemonSetCaps(t) {
		caps |= 1 << capBits[cp]
	}
	if eff := field(t, status, "CapEff"); eff != caps {
		t.Errorf("agent's effective capabilities %#x, want %#x", eff, caps)
	}
	if !regexp.MustCompile(`(?m)^Seccomp:\s+2$`).Match(status) {
		t.Errorf("agent runs without a seccomp filter:\n%s", grep(string(status), "Seccomp"))
	}
	if !regexp.MustCompile(`(?m)^Uid:\s+0\s`).Match(status) {
		t.Errorf("agent's uid:\n%s", grep(string(status), "Uid"))
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("the agent warned:\n%s", stderr.String())
	}
}

// taskPID is the host pid of a container's task.
func taskPID(t *testing.T, c *testtarget.Containerd, id string) int {
	t.Helper()
	for _, l := range strings.Split(c.Ctr(t, "tasks", "list"), "\n") {
		var name string
		var pid int
		if n, _ := fmt.Sscanf(l, "%s %d", &name, &pid); n == 2 && name == id {
			return pid
		}
	}
	t.Fatalf("no task %s", id)
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func grep(s, what string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, what) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
