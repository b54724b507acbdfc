package deploy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// capBits are the kernel's numbers of the capabilities the agent holds
// (linux/capability.h).
var capBits = map[string]uint{"cap_sys_ptrace": 19, "cap_perfmon": 38, "cap_bpf": 39}

// nobody is the uid and gid the agent runs as here: not root, so that only
// the capabilities given count, and not the target's owner (root), so that
// reading the target needs CAP_SYS_PTRACE as it does on a node.
const nobody = "65534"

// TestCapabilities runs the agent as nobody with exactly the DaemonSet's
// capabilities (setpriv, from Debian's util-linux) against a target the test
// started as root, and shows it attaches; with any one of them left out, it
// refuses to start.
func TestCapabilities(t *testing.T) {
	testtarget.NeedAttach(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (Debian's util-linux; make deps installs it)")
	}
	caps := daemonSetCaps(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // nobody runs the agent from it
	agent := filepath.Join(dir, "maptrace")
	if out, err := exec.Command("go", "build", "-o", agent, "../cmd/maptrace").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	src, err := os.ReadFile(testtarget.Build(t, "../testdata/contention", "local"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "contention-caps")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	target := testtarget.Start(t, bin) // as root

	run := func(caps []string) *exec.Cmd {
		set := "-all"
		for _, c := range caps {
			set += ",+" + strings.TrimPrefix(c, "cap_")
		}
		// Inheritable and ambient: what an exec'd non-root program keeps;
		// bounding: nothing else can be gained.
		return exec.Command(setpriv, "--reuid="+nobody, "--regid="+nobody, "--clear-groups",
			"--inh-caps="+set, "--ambient-caps="+set, "--bounding-set="+set,
			agent, "agent", "--listen", "127.0.0.1:0", "--match", bin, "--containerd", "")
	}

	cmd := run(caps)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	serving := regexp.MustCompile(`serving metrics at http://(\S+)/metrics`)
	tracing := fmt.Sprintf("pid %d (contention-caps): tracing %s", target.PID(), bin)
	addr, traced := "", false
	deadline := time.After(20 * time.Second)
	var said []string
	for !traced {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("agent exited: %s", strings.Join(said, "\n"))
			}
			said = append(said, l)
			if m := serving.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
			traced = traced || strings.Contains(l, tracing)
		case <-deadline:
			t.Fatalf("agent has not traced the target after 20s:\n%s", strings.Join(said, "\n"))
		}
	}
	// What it runs with, as the kernel sees it (setpriv has exec'd it).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range caps {
		want |= 1 << capBits[c]
	}
	if eff := field(t, status, "CapEff"); eff != want {
		t.Errorf("agent's effective capabilities %#x, want %#x (%v)", eff, want, caps)
	}
	if uid := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindSubmatch(status); uid == nil || string(uid[1]) != nobody || string(uid[2]) != nobody {
		t.Errorf("agent's uids: %q, want %s", uid, nobody)
	}

	// Its series, with the probes' counts: the probes are in place.
	var metrics string
	for end := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		if regexp.MustCompile(`(?m)^maptrace_target_up\{[^}]*service="contention-caps"[^}]*\} 1$`).MatchString(metrics) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no maptrace_target_up 1 for the target:\n%s", metrics)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("as uid %s with %v: %s", nobody, caps, tracing)

	// Each one left out: the agent says which are needed, and exits 1.
	for i := range caps {
		less := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		out, err := run(less).CombinedOutput()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 1 || !strings.Contains(string(out), "lacks CAP_SYS_ADMIN (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE)") {
			t.Errorf("without %s: exit %d (%v): %s", caps[i], code, err, out)
		}
	}
}

// field reads a hexadecimal field of /proc/PID/status.
func field(t *testing.T, status []byte, name string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `:\s+([0-9a-f]+)$`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no %s in /proc/PID/status", name)
	}
	v, err := strconv.ParseUint(string(m[1]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
