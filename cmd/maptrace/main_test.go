package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// maptrace is the command under test, built once.
var maptrace string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "maptrace-cli-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // TestNotRoot runs it as nobody
	maptrace = filepath.Join(dir, "maptrace")
	if out, err := exec.Command("go", "build", "-o", maptrace, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs maptrace and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(maptrace, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// oneLine checks that stderr is one line containing want.
func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "maptrace: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q: want one line with %q", stderr, want)
	}
}

func TestBadInput(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no pid", []string{"attach"}, 2, "attach needs -p PID"},
		{"bad flag", []string{"attach", "-p", "1", "--format", "xml"}, 2, "--format"},
		{"unknown flag", []string{"attach", "--bogus"}, 2, "unknown flag"},
		{"no such pid", []string{"attach", "-p", "99999999"}, 1, "no such process"},
		{"not go", []string{"attach", "-p", strconv.Itoa(sleep.Process.Pid)}, 1, "not a Go binary"},
		{"kernel thread", []string{"attach", "-p", "2"}, 1, "no executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			oneLine(t, stderr, tc.want)
			if stdout != "" {
				t.Errorf("stdout %q on an error", stdout)
			}
		})
	}
}

// TestNotRoot runs maptrace as nobody.
func TestNotRoot(t *testing.T) {
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	cmd := exec.Command(maptrace, "attach", "-p", strconv.Itoa(p.PID()), "-d", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", err)
	}
	oneLine(t, stderr.String(), "root")
}

// TestUnsupportedVersion attaches to a Go binary whose build info claims Go 1.17.
func TestUnsupportedVersion(t *testing.T) {
	bin := testtarget.Build(t, "../../testdata/contention", "local")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	v := bi.GoVersion
	bi.Close()
	old := strings.Replace(v, "go1."+strconv.Itoa(probes.GoMinor(v)), "go1.17", 1)
	if len(old) != len(v) {
		old = "go1.17" + strings.Repeat(".", len(v)-len("go1.17"))
	}
	n := bytes.Count(b, []byte(v))
	if n == 0 {
		t.Fatalf("no %q in %s", v, bin)
	}
	b = bytes.ReplaceAll(b, []byte(v), []byte(old))
	fake := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	p := testtarget.Start(t, fake)
	_, stderr, code := run(t, "attach", "-p", strconv.Itoa(p.PID()), "-d", "1s")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	oneLine(t, stderr, "unsupported Go version")
}

// lines collects a command's stderr lines as they come.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}

// attached starts maptrace and waits for its "attached" line. It returns the
// command, its stdout, and its stderr so far (still growing).
func attached(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *lines) {
	t.Helper()
	cmd := exec.Command(maptrace, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	stderr := &lines{}
	ok := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(errPipe)
		seen := false
		for sc.Scan() {
			stderr.add(sc.Text())
			if strings.Contains(sc.Text(), "attached to pid") && !seen {
				seen = true
				ok <- true
			}
		}
		if !seen {
			ok <- false
		}
	}()
	select {
	case good := <-ok:
		if !good {
			<-done
			t.Fatalf("maptrace ended without attaching: %s", stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("maptrace did not attach in 30s")
	}
	return cmd, &stdout, stderr
}

func parseReport(t *testing.T, b []byte) *report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return &r
}

// TestEndings: a report is written on SIGINT, SIGTERM and the target's exit.
func TestEndings(t *testing.T) {
	bin := testtarget.Build(t, "../../testdata/contention", "local")
	for _, tc := range []struct {
		name string
		end  func(maptrace *exec.Cmd, target *testtarget.Proc)
		want string
	}{
		{"sigint", func(m *exec.Cmd, _ *testtarget.Proc) { m.Process.Signal(os.Interrupt) }, report.EndedBySignal},
		{"sigterm", func(m *exec.Cmd, _ *testtarget.Proc) { m.Process.Signal(syscall.SIGTERM) }, report.EndedBySignal},
		{"target exit", func(_ *exec.Cmd, p *testtarget.Proc) { p.Cmd.Process.Kill() }, report.EndedByTargetExit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testtarget.Start(t, bin)
			m, stdout, _ := attached(t, "attach", "-p", strconv.Itoa(p.PID()), "-f", "json")
			p.Send(t, "run 300")
			p.Line(t, 30*time.Second)
			tc.end(m, p)
			if err := m.Wait(); err != nil {
				t.Fatalf("maptrace: %v", err)
			}
			r := parseReport(t, stdout.Bytes())
			if r.EndedBy != tc.want || len(r.Mutexes) == 0 {
				t.Errorf("ended by %q with %d mutexes, want %q with contention", r.EndedBy, len(r.Mutexes), tc.want)
			}
		})
	}
}

// TestKilledLeavesNoProbe kills maptrace with SIGKILL and checks that the
// breakpoints it placed in the target's code are gone: the links are owned
// by its file descriptors.
func TestKilledLeavesNoProbe(t *testing.T) {
	bin := testtarget.Build(t, "../../testdata/contention", "local")
	p := testtarget.Start(t, bin)
	sb, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	// The park probe: semacquire1's call of gopark, always attached.
	fn, ok := sb.Func("runtime.semacquire1")
	gopark, ok2 := sb.Func("runtime.gopark")
	if !ok || !ok2 {
		t.Fatal("no runtime.semacquire1 or runtime.gopark")
	}
	code, _ := sb.Code(fn)
	s, err := probes.FindSites(code)
	if err != nil {
		t.Fatal(err)
	}
	var site uint64
	for _, c := range s.Calls {
		if fn.Entry+c.Target == gopark.Entry {
			site = fn.Entry + c.At // not PIE: no load bias
		}
	}
	if site == 0 {
		t.Fatal("semacquire1 does not call gopark")
	}
	readSite := func() byte {
		mem, err := os.Open("/proc/" + strconv.Itoa(p.PID()) + "/mem")
		if err != nil {
			t.Fatal(err)
		}
		defer mem.Close()
		b := make([]byte, 1)
		if _, err := mem.ReadAt(b, int64(site)); err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	orig := readSite()
	m, _, _ := attached(t, "attach", "-p", strconv.Itoa(p.PID()))
	if got := readSite(); got != 0xcc {
		t.Fatalf("while attached the site holds %#x, want the int3 breakpoint 0xcc", got)
	}
	m.Process.Kill()
	m.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for readSite() != orig && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := readSite(); got != orig {
		t.Errorf("after SIGKILL the site holds %#x, want the original %#x", got, orig)
	}
	p.Send(t, "run 100")
	if l := p.Line(t, 30*time.Second); !strings.HasPrefix(l, "mutex_wait_seconds") {
		t.Errorf("target after maptrace was killed: %q", l)
	}
}

// TestMissingSymbols traces a program without sync.RWMutex: maptrace says
// which probes it could not place and traces the rest.
func TestMissingSymbols(t *testing.T) {
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/plain", "local"))
	stdout, stderr, code := run(t, "attach", "-p", strconv.Itoa(p.PID()), "-d", "1s", "-f", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"sync.runtime_SemacquireRWMutexR (RWMutex read waits)", "sync.runtime_SemacquireRWMutex (RWMutex write waits)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr)
		}
	}
	r := parseReport(t, []byte(stdout))
	if len(r.Mutexes) == 0 || r.Mutexes[0].Name != "main.mu" {
		t.Errorf("mutexes %+v: want main.mu traced anyway", r.Mutexes)
	}
	if len(r.Missing) < 2 {
		t.Errorf("missing_symbols %v", r.Missing)
	}
}

// TestListen serves metrics while tracing and scrapes them.
func TestListen(t *testing.T) {
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, _, _ := attached(t, "attach", "-p", strconv.Itoa(p.PID()), "--listen", addr)
	p.Send(t, "run 300")
	p.Line(t, 30*time.Second)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"maptrace_target_info{", `maptrace_mutex_contentions_total{kind="mutex",mutex="main.mu"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%.2000s", want, body)
		}
	}
	m.Process.Signal(os.Interrupt)
	if err := m.Wait(); err != nil {
		t.Errorf("maptrace: %v", err)
	}
}

// TestOutputs writes every output format from one trace, and prints the live
// view twice a second.
func TestOutputs(t *testing.T) {
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	m, _, stderr := attached(t, "attach", "-p", strconv.Itoa(p.PID()), "-f", "json", "-o", out("r.json"),
		"--pprof", out("m.pb.gz"), "--pprof-maps", out("maps.pb.gz"), "--folded", out("f.txt"),
		"--flamegraph", out("f.html"), "-i", "500ms")
	p.Send(t, "run 1500")
	p.Line(t, 30*time.Second)
	m.Process.Signal(os.Interrupt)
	if err := m.Wait(); err != nil {
		t.Fatalf("maptrace: %v", err)
	}
	b, err := os.ReadFile(out("r.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseReport(t, b)
	if len(r.Mutexes) == 0 {
		t.Fatal("no contention in the report")
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=delay", out("m.pb.gz")).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "main.lockMutex") {
		t.Errorf("pprof -top: %v\n%s", err, top)
	}
	folded, _ := os.ReadFile(out("f.txt"))
	if !strings.Contains(string(folded), "main.lockMutex") {
		t.Errorf("folded stacks lack main.lockMutex:\n%.1000s", folded)
	}
	html, _ := os.ReadFile(out("f.html"))
	if !bytes.Contains(html, []byte("main.lockMutex")) || regexp.MustCompile(`(src|href)=["']?(https?:)?//`).Match(html) {
		t.Errorf("flame graph: %d bytes, without main.lockMutex or loading something from the network", len(html))
	}
	if _, err := os.Stat(out("maps.pb.gz")); err != nil {
		t.Error(err)
	}
	// The live view: a summary every 500ms of a run over 1.5s.
	if n := strings.Count(stderr.String(), "── maptrace"); n < 2 {
		t.Errorf("%d live summaries on stderr, want 2 or more:\n%s", n, stderr)
	}
	if !strings.Contains(stderr.String(), "main.mu") {
		t.Errorf("live view never showed main.mu:\n%s", stderr)
	}
}
