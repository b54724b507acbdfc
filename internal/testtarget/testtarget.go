// Package testtarget builds and runs the Go programs maptrace's tests trace,
// with the Go toolchains of the supported-version matrix.
package testtarget

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/internal/preflight"
)

// Toolchains is the matrix: one release of every supported Go version.
// "local" is the Go that runs the tests; go1.19 is Debian's golang-1.19-go
// (the module proxy serves toolchains from 1.21 on, and 1.20.14).
var Toolchains = []string{"go1.19", "go1.20.14", "go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.5", "local"}

// go119 is where Debian installs Go 1.19.
const go119 = "/usr/lib/go-1.19/bin/go"

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// PrebuiltEnv names a directory of targets built ahead of time, for test
// binaries that run where there is no Go (make test-kernels' VMs): Build
// takes its targets from there, by PrebuiltName, and skips a test whose
// target was not built.
const PrebuiltEnv = "MAPTRACE_TARGETS"

// PrebuiltName is the file name of src's target built with toolchain and
// flags in a PrebuiltEnv directory.
func PrebuiltName(src, toolchain string, flags ...string) string {
	name := filepath.Base(src) + "-" + toolchain
	for _, f := range flags {
		name += "-" + strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-=.", r) {
				return r
			}
			return '_'
		}, f)
	}
	return name
}

// Build builds the program in src (a directory with its own go.mod) with a
// toolchain from Toolchains and extra `go build` flags, once per test binary.
func Build(t testing.TB, src, toolchain string, flags ...string) string {
	t.Helper()
	return BuildFor(t, "", src, toolchain, flags...)
}

// BuildFor is Build for another architecture (GOARCH goarch; "" is the
// host's): a target to inspect, not to run.
func BuildFor(t testing.TB, goarch, src, toolchain string, flags ...string) string {
	t.Helper()
	if dir := os.Getenv(PrebuiltEnv); dir != "" && goarch == "" {
		out := filepath.Join(dir, PrebuiltName(src, toolchain, flags...))
		if _, err := os.Stat(out); err != nil {
			t.Skipf("target %s not prebuilt (%s=%s): only the local toolchain's targets are", filepath.Base(out), PrebuiltEnv, dir)
		}
		return out
	}
	src, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Join(append([]string{src, toolchain, goarch}, flags...), " ")
	mu.Lock()
	if dir == "" {
		if dir, err = os.MkdirTemp("", "maptrace-targets-"); err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
	}
	out, ok := built[key]
	if !ok {
		out = filepath.Join(dir, fmt.Sprintf("%s-%s%s-%d", filepath.Base(src), toolchain, goarch, len(built)))
		built[key] = out
	}
	mu.Unlock()
	if ok {
		return out
	}
	if err := CompileFor(goarch, src, toolchain, out, flags...); err != nil {
		mu.Lock()
		delete(built, key)
		mu.Unlock()
		t.Fatal(err)
	}
	return out
}

// Compile builds the program in src into out, as Build does.
func Compile(src, toolchain, out string, flags ...string) error {
	return CompileFor("", src, toolchain, out, flags...)
}

// CompileFor is Compile for GOARCH goarch ("" is the host's).
func CompileFor(goarch, src, toolchain, out string, flags ...string) error {
	goCmd, env := "go", []string{"GOTOOLCHAIN=" + toolchain}
	if toolchain == "go1.19" {
		goCmd, env = go119, []string{"GOTOOLCHAIN=local"}
	}
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command(goCmd, append(args, ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), append(env, "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")...)
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s with %s: %v\n%s", src, toolchain, err, b)
	}
	return nil
}

// EmulatedEnv is set (to 1) where the tests run under emulation: make
// test-kernels' guests, under qemu's TCG. There a run does less work in the
// same time and a loaded host stalls the virtual CPUs, so tests whose
// figures depend on the CPU rather than the kernel lengthen their runs
// (Stretch) or lower their floors.
const EmulatedEnv = "MAPTRACE_EMULATED"

// Emulated reports whether EmulatedEnv is set.
func Emulated() bool { return os.Getenv(EmulatedEnv) == "1" }

// Stretch is how long a timed run that is compared with a sampled figure
// lasts: ms, or 3 times that under emulation, where a run holds fewer waits
// and the runtime's mutex wait metric, which times one wait in 8 and scales
// it, is noisier.
func Stretch(ms int) int {
	if Emulated() {
		return 3 * ms
	}
	return ms
}

// NeedRoot skips the test, saying why in one line, unless it runs as root:
// loading BPF programs, attaching uprobes and running a command as another
// user need it (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE would do for the
// first two, but the tests do not tell them apart).
func NeedRoot(t testing.TB) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("needs root (running as uid %d): it loads BPF programs, attaches uprobes or runs as another user; run `sudo make test`", uid)
	}
}

// NeedFeature skips the test when the kernel lacks a feature that came with
// kernel minKernel, and fails it when the kernel is that new and still lacks
// it, or when the probe could not tell. probeErr is a feature probe's
// result, as cilium/ebpf's features package returns it (nil: present).
func NeedFeature(t testing.TB, minKernel preflight.Kernel, probeErr error) {
	t.Helper()
	if probeErr == nil {
		return
	}
	if !errors.Is(probeErr, ebpf.ErrNotSupported) {
		t.Fatalf("feature probe failed: %v", probeErr)
	}
	release, k, err := preflight.RunningKernel()
	if err != nil {
		t.Fatal(err)
	}
	if k.AtLeast(minKernel) {
		t.Fatalf("kernel %s should have it (%s+), but: %v", release, minKernel, probeErr)
	}
	t.Skipf("needs kernel %s+ (this one is %s): %v", minKernel, release, probeErr)
}

// NeedAttach is NeedRoot for the tests that attach uprobes: it also skips
// them on a kernel that lacks what attach needs and came before it (older
// than preflight.MinKernel: maptrace refuses there, and
// TestAttachRefusedOnOldKernel checks how), and fails them on a kernel new
// enough that lacks it all the same.
func NeedAttach(t testing.TB) {
	t.Helper()
	NeedRoot(t)
	f := preflight.ProbeFeatures()
	if f.UprobeMulti != nil {
		NeedFeature(t, preflight.KernelPerfLink, f.PerfLink)
	}
	NeedFeature(t, preflight.KernelCookie, f.Cookie)
	NeedFeature(t, preflight.KernelPidfd, f.Pidfd)
}

// Proc is a running target that takes commands on stdin and answers on stdout.
type Proc struct {
	Cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer
	exited chan struct{} // closed once Wait returned: stderr is whole
}

// Start runs bin and waits for its first line ("ready"). It is killed when the
// test ends.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The target's stderr (a crash's goroutine dump) is shown only when the
	// test fails.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, in: in, lines: make(chan string, 100), stderr: &stderr, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		go func() {
			for range p.lines { // lines no test read: the reader must reach EOF to reap it
			}
		}()
		<-p.exited
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", bin, stderr.Bytes())
		}
	})
	if l := p.Line(t, 30*time.Second); l != "ready" {
		t.Fatalf("%s: first line %q, want ready", bin, l)
	}
	return p
}

// Send writes one command line.
func (p *Proc) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
}

// Line waits for the next output line.
func (p *Proc) Line(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.exited
			t.Fatalf("target exited: %v", p.Cmd.ProcessState)
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("no output from target in %v", timeout)
	}
	return ""
}

// Exited waits for the target to exit and returns what it wrote to stderr.
func (p *Proc) Exited(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case <-p.exited:
		return p.stderr.String()
	case <-time.After(timeout):
		t.Fatalf("target still running after %v", timeout)
	}
	return ""
}

// PID is the target's process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// TryLine waits for the next output line; ok is false if the target exited
// or stayed silent.
func (p *Proc) TryLine(timeout time.Duration) (line string, ok bool) {
	select {
	case l, ok := <-p.lines:
		return l, ok
	case <-time.After(timeout):
		return "", false
	}
}

// Memory reads a process's resident set and its peak (VmRSS, VmHWM), in
// KiB.
func Memory(pid int) (rss, peak int, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak, nil
}
