package testtarget

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is a containerd of the test's own: its root, state, sockets
// and runc state are in a temporary directory, so that it neither sees nor
// touches another containerd of the machine. The test's end stops it
// and its containers.
type Containerd struct {
	// Address is its gRPC socket, named containerd.sock as on a node, in
	// a directory of the test's own.
	Address string
	dir     string
	runc    string // runc's state (ctr run --runc-root)
}

// StartContainerd starts a containerd (Debian's package; make deps installs
// it) and waits for it to serve. It skips the test without containerd,
// ctr or runc.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	NeedRoot(t)
	for _, tool := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian's containerd and runc packages; make deps installs them)", tool)
		}
	}
	// A short path: a unix socket's is at most 107 bytes.
	dir, err := os.MkdirTemp("", "mt-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Address: filepath.Join(dir, "containerd.sock"), dir: dir, runc: filepath.Join(dir, "runc")}
	// Version 2 of the configuration, which Debian 12's containerd 1.6
	// reads. The CRI plugin is off: it would set up CNI and serve a
	// kubelet; the tests create containers with ctr, carrying the labels
	// the CRI plugin would give them.
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc", filepath.Join(dir, "opt"))
	confFile := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", confFile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		c.removeAll()
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("containerd log:\n%s", tail(string(b), 40))
		}
		// Snapshots may still be mounted if a container would not stop.
		exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if conn, err := net.Dial("unix", c.Address); err == nil {
			conn.Close()
			if _, err := c.run("version"); err == nil {
				return c
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("containerd exited: %s", tail(string(b), 20))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd does not serve after 20s")
		}
	}
}

// Namespace is the containerd namespace the tests use: the CRI plugin's,
// where a kubelet's containers are.
const Namespace = "k8s.io"

// Ctr runs ctr against c in Namespace and returns its output; it fails the
// test if ctr fails.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("ctr %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *Containerd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Address, "--namespace", Namespace}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// RunArgs are the arguments of ctr run that keep a container's runc state
// in c's directory.
func (c *Containerd) RunArgs() []string { return []string{"--runc-root", c.runc} }

// removeAll kills and deletes every container of c.
func (c *Containerd) removeAll() {
	out, _ := c.run("containers", "list", "--quiet")
	for _, id := range strings.Fields(out) {
		c.run("tasks", "kill", "--signal", "SIGKILL", id)
		for i := 0; i < 50; i++ {
			if _, err := c.run("tasks", "delete", id); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.run("containers", "delete", id)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
