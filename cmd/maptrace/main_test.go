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

	"github.com/google/pprof/profile"

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
	if prebuilt := os.Getenv("MAPTRACE_BIN"); prebuilt != "" {
		// make test-kernels' VMs have no Go: the binary is built ahead
		maptrace = prebuilt
	} else if out, err := exec.Command("go", "build", "-o", maptrace, ".").CombinedOutput(); err != nil {
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
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	notGo := strconv.Itoa(sleep.Process.Pid)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	gonePID := strconv.Itoa(gone.Process.Pid) // reaped: no such process (unless reused at once)
	zombie := startZombie(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	noKey := filepath.Join(dir, "web-nokey.yml")
	if err := os.WriteFile(noKey, []byte("tls_server_config:\n  cert_file: cert.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notYAML := filepath.Join(dir, "web-bad.yml")
	if err := os.WriteFile(notYAML, []byte("basic_auth_users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
		root bool // the error comes after the privilege check
	}{
		{"no pid", []string{"attach"}, 2, "attach needs -p PID", false},
		{"pid 0", []string{"attach", "-p", "0"}, 2, "-p 0: give the pid of a running Go program", false},
		{"pid not a number", []string{"attach", "-p", "abc"}, 2, `--pid "abc": want a whole number (see ` + "`maptrace attach --help`)", false},
		{"pid without value", []string{"attach", "-p"}, 2, "--pid needs a value", false},
		{"bad duration", []string{"attach", "-p", notGo, "-d", "5"}, 2, `--duration "5": want a duration such as 30s`, false},
		{"bad format", []string{"attach", "-p", notGo, "--format", "xml"}, 2, `--format "xml": want text or json`, false},
		{"bad keys", []string{"attach", "-p", notGo, "--keys", "all"}, 2, `--keys "all": want raw, hash or none`, false},
		{"unknown flag", []string{"attach", "--bogus"}, 2, "unknown flag: --bogus (see `maptrace attach --help`)", false},
		{"extra argument", []string{"attach", "-p", notGo, "now"}, 2, `attach takes no arguments, got "now"`, false},
		{"unknown command", []string{"atach"}, 2, `unknown command "atach": did you mean attach?`, false},
		{"overhead 0", []string{"attach", "-p", notGo, "--overhead", "0"}, 2, "--overhead 0: must be above 0", false},
		{"overhead 100", []string{"attach", "-p", notGo, "--overhead", "100"}, 2, "--overhead 100: at most 25; for exact map counts on a short trace, use --exact", false},
		{"overhead 26", []string{"attach", "-p", notGo, "--overhead", "26"}, 2, "use --exact", false},
		{"exact and overhead", []string{"attach", "-p", notGo, "--exact", "--overhead", "5"}, 2, "--exact and --overhead: give one", false},
		{"exact without maps", []string{"attach", "-p", notGo, "--exact", "--no-maps"}, 2, "--exact counts map operations", false},
		{"nothing to trace", []string{"attach", "-p", notGo, "--no-mutex", "--no-maps"}, 2, "--no-mutex and --no-maps leave nothing to trace", false},
		{"nothing to trace, spelled otherwise", []string{"demo", "--mutex=false", "--maps=false"}, 2, "leave nothing to trace", false},
		{"top 0", []string{"attach", "-p", notGo, "--top", "0"}, 2, "--top 0: want 1 or more (--verbose prints every row)", false},
		{"output in no directory", []string{"attach", "-p", notGo, "-o", "/nonexistent/r.json"}, 2, "-o /nonexistent/r.json: no directory /nonexistent: create it first", false},
		{"output is a directory", []string{"attach", "-p", notGo, "-o", dir}, 2, "-o " + dir + ": is a directory: give a file name", false},
		{"profile in no directory", []string{"attach", "-p", notGo, "--flamegraph", "/nonexistent/f.html"}, 2, "--flamegraph /nonexistent/f.html: no directory", false},
		{"two outputs, one file", []string{"attach", "-p", notGo, "-o", dir + "/x", "--folded", dir + "/x"}, 2, "-o and --folded both name", false},
		{"web config without listen", []string{"attach", "-p", notGo, "--web.config.file", noKey}, 2, "--web.config.file secures --listen: give --listen ADDR too", false},
		{"web config missing", []string{"attach", "-p", notGo, "--listen", "127.0.0.1:0", "--web.config.file", dir + "/none.yml"}, 2, "--web.config.file " + dir + "/none.yml: no such file or directory", false},
		{"web config without key", []string{"attach", "-p", notGo, "--listen", "127.0.0.1:0", "--web.config.file", noKey}, 2, "--web.config.file " + noKey + ": missing one of key or key_file", false},
		{"web config not YAML", []string{"attach", "-p", notGo, "--listen", "127.0.0.1:0", "--web.config.file", notYAML}, 2, "--web.config.file " + notYAML + ": yaml: ", false},
		{"listen address in use", []string{"attach", "-p", notGo, "--listen", busy.Addr().String()}, 2, "--listen " + busy.Addr().String() + ": bind: address already in use: give a free host:port", true},
		{"no such pid", []string{"attach", "-p", "99999999"}, 1, "pid 99999999: no such process: check it", true},
		{"exited pid", []string{"attach", "-p", gonePID}, 1, "pid " + gonePID + ": no such process", true},
		{"not go", []string{"attach", "-p", notGo}, 1, "pid " + notGo + " (" + exe(t, sleep.Process.Pid) + ") is not a Go program: maptrace traces Go binaries only", true},
		{"doctor not go", []string{"doctor", "-p", notGo}, 1, "is not a Go program: maptrace traces Go binaries only", true},
		{"zombie", []string{"attach", "-p", zombie}, 1, "pid " + zombie + " has no executable (a kernel thread, or a process that is exiting): give the pid of a running Go program", true},
		{"doctor no such pid", []string{"doctor", "-p", "99999999"}, 1, "pid 99999999: no such process", false},
		{"agent without listen", []string{"agent"}, 2, "agent needs --listen ADDR, where to serve metrics (or --survey)", false},
		{"agent survey and listen", []string{"agent", "--survey", "--listen", "127.0.0.1:0"}, 2, "--survey and --listen: give one", false},
		{"agent bad pattern", []string{"agent", "--listen", "127.0.0.1:0", "--match", "api-[a"}, 2, `--match "api-[a": syntax error in pattern`, false},
		{"agent empty pattern", []string{"agent", "--survey", "--match", ""}, 2, `--match "": give a pattern`, false},
		{"agent overhead 30", []string{"agent", "--listen", "127.0.0.1:0", "--overhead", "30"}, 2, "--overhead 30: at most 25", false},
		{"agent nothing to trace", []string{"agent", "--listen", "127.0.0.1:0", "--no-maps", "--no-mutex"}, 2, "leave nothing to trace", false},
		{"agent listen address in use", []string{"agent", "--listen", busy.Addr().String()}, 2, "--listen " + busy.Addr().String() + ": bind: address already in use", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testtarget.NeedRoot(t)
			}
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			oneLine(t, stderr, tc.want)
			if stdout != "" && tc.args[0] != "doctor" { // doctor shows its checks
				t.Errorf("stdout %q on an error", stdout)
			}
		})
	}
}

// startZombie starts a process that exits and is not reaped until the test
// ends: it has a pid but no executable, like a kernel thread.
func startZombie(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); running(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs `true`", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return strconv.Itoa(pid)
}

// exe is the executable of a process the test started.
func exe(t *testing.T, pid int) string {
	t.Helper()
	e, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestChecksBeforeAttach: a bad output path fails at once, before the
// probes are attached to the target.
func TestChecksBeforeAttach(t *testing.T) {
	testtarget.NeedRoot(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	start := time.Now()
	_, stderr, code := run(t, "attach", "-p", strconv.Itoa(p.PID()), "-d", "30s", "-f", "json", "--pprof", "/nonexistent/m.pb.gz")
	if code != 2 || strings.Contains(stderr, "attached") || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %v, stderr %q: want exit 2 at once, before attaching", code, time.Since(start), stderr)
	}
	oneLine(t, stderr, "--pprof /nonexistent/m.pb.gz: no directory /nonexistent")
}

// runAs runs maptrace as uid (and gid) and returns its stdout, stderr and
// exit code. It needs root, to switch users.
func runAs(t *testing.T, uid uint32, args ...string) (string, string, int) {
	t.Helper()
	testtarget.NeedRoot(t)
	cmd := exec.Command(maptrace, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		// Not started: no exit status to check (the binary's directory
		// must be reachable by uid).
		t.Fatalf("run %s as uid %d: %v", maptrace, uid, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// nobody is the unprivileged user the not-root tests run maptrace as.
const nobody = 65534

// TestNotRoot runs maptrace as nobody: it says to run as root, before
// looking at the target.
func TestNotRoot(t *testing.T) {
	testtarget.NeedRoot(t) // to switch to nobody
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	for _, args := range [][]string{
		{"attach", "-p", strconv.Itoa(p.PID()), "-d", "1s"},
		{"attach", "-p", "99999999"},
		{"demo", "-d", "1s"},
	} {
		stdout, stderr, code := runAs(t, nobody, args...)
		if code != 1 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want 1 and nothing", args, code, stdout)
		}
		oneLine(t, stderr, "privileges: uid 65534 lacks CAP_SYS_ADMIN (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE): run as root (sudo), or grant")
	}
}

// TestUnsupportedVersion attaches to a Go binary whose build info claims Go 1.17.
func TestUnsupportedVersion(t *testing.T) {
	testtarget.NeedRoot(t)
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
	oneLine(t, stderr, "pid "+strconv.Itoa(p.PID())+" ("+fake+"): unsupported Go version go1.17")
	if !strings.Contains(stderr, "maptrace traces programs built with Go 1.19 or newer") {
		t.Errorf("stderr %q does not say which versions work", stderr)
	}
}

// TestUnsupportedArch attaches to a Go program built for 386, which amd64
// kernels run.
func TestUnsupportedArch(t *testing.T) {
	testtarget.NeedRoot(t)
	bin := filepath.Join(t.TempDir(), "contention-386")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../../testdata/contention"
	build.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A kernel booted with ia32_emulation=off (as some VMs are) runs no
	// 386 process, so there is none to attach to.
	if c := exec.Command(bin); errors.Is(c.Start(), syscall.ENOEXEC) {
		t.Skip("this kernel runs no 386 program (32-bit emulation off)")
	} else if c.Process != nil {
		c.Process.Kill()
		c.Wait()
	}
	p := testtarget.Start(t, bin)
	pid := strconv.Itoa(p.PID())
	want := "pid " + pid + " (" + bin + "): unsupported architecture 386: maptrace traces amd64 and arm64 programs only"
	for _, args := range [][]string{{"attach", "-p", pid, "-d", "1s"}, {"doctor", "-p", pid}} {
		_, stderr, code := run(t, args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		oneLine(t, stderr, want)
	}
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
	testtarget.NeedAttach(t)
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
	testtarget.NeedAttach(t)
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
	testtarget.NeedAttach(t)
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
	testtarget.NeedAttach(t)
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
	// Without --keys raw, /metrics hashes the keys the report shows raw.
	keys := keyLabels(string(body))
	if len(keys) == 0 {
		t.Errorf("no hot key series:\n%.2000s", body)
	}
	for _, k := range keys {
		if k != "other" && !hashedKey.MatchString(k) {
			t.Errorf("key %q on /metrics without --keys raw, want hashed", k)
		}
	}
	m.Process.Signal(os.Interrupt)
	if err := m.Wait(); err != nil {
		t.Errorf("maptrace: %v", err)
	}
}

// hashedKey is a key as --keys hash shows it.
var hashedKey = regexp.MustCompile(`^h:[0-9a-f]{12}$`)

// keyLabels are the key label values of the hot key series in a scrape.
func keyLabels(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^maptrace_map_hot_key_ops_total\{[^}]*key="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestOutputs writes every output format from one trace, and prints the live
// view twice a second.
func TestOutputs(t *testing.T) {
	testtarget.NeedAttach(t)
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
	// Every file is the user's alone: stacks and map keys can be private.
	for _, name := range []string{"r.json", "m.pb.gz", "maps.pb.gz", "f.txt", "f.html"} {
		if fi, err := os.Stat(out(name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", name, fileMode(fi, err))
		}
	}
	// The live view: a summary every 500ms of a run over 1.5s.
	if n := strings.Count(stderr.String(), "── maptrace"); n < 2 {
		t.Errorf("%d live summaries on stderr, want 2 or more:\n%s", n, stderr)
	}
	if !strings.Contains(stderr.String(), "main.mu") {
		t.Errorf("live view never showed main.mu:\n%s", stderr)
	}
}

func fileMode(fi os.FileInfo, err error) any {
	if err != nil {
		return err
	}
	return fi.Mode()
}

// TestExact probes every map operation, and says what that costs.
func TestExact(t *testing.T) {
	testtarget.NeedAttach(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	stdout, stderr, code := run(t, "attach", "-p", strconv.Itoa(p.PID()), "-d", "1s", "-f", "json", "--exact")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "maptrace: --exact: every map operation is probed; a map-heavy loop can run over 1000× slower") {
		t.Errorf("stderr does not say what --exact costs:\n%s", stderr)
	}
	r := parseReport(t, []byte(stdout))
	if r.Overhead.Budget != 1 || r.Overhead.MapSamplingFraction != 1 {
		t.Errorf("budget %v, map sampling fraction %v: want 1 and 1 (every operation)", r.Overhead.Budget, r.Overhead.MapSamplingFraction)
	}
}

// TestReport re-renders a report that attach saved: the text is what
// attach prints for that report, and the profiles are the ones attach wrote.
func TestReport(t *testing.T) {
	testtarget.NeedAttach(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	m, _, _ := attached(t, "attach", "-p", strconv.Itoa(p.PID()), "-f", "json", "-o", out("r.json"),
		"--pprof", out("a.pb.gz"), "--pprof-maps", out("a-maps.pb.gz"), "--folded", out("a.folded"), "--flamegraph", out("a.html"))
	p.Send(t, "run 500")
	p.Line(t, 30*time.Second)
	m.Process.Signal(os.Interrupt)
	if err := m.Wait(); err != nil {
		t.Fatalf("maptrace: %v", err)
	}
	saved, err := os.ReadFile(out("r.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseReport(t, saved)
	if len(r.Mutexes) == 0 {
		t.Fatal("no contention in the report")
	}

	// Text, as attach would have printed it, and with --top/--verbose.
	for _, o := range []report.TextOptions{{}, {Top: 1}, {Verbose: true}} {
		args := []string{"report", out("r.json")}
		if o.Top > 0 {
			args = append(args, "--top", strconv.Itoa(o.Top))
		}
		if o.Verbose {
			args = append(args, "--verbose")
		}
		stdout, stderr, code := run(t, args...)
		var want strings.Builder
		report.WriteTextOptions(&want, r, o)
		if code != 0 || stderr != "" || stdout != want.String() {
			t.Errorf("%v: exit %d, stderr %q, text:\n%s\nwant:\n%s", args, code, stderr, stdout, want.String())
		}
	}
	// JSON: the same bytes.
	if stdout, _, _ := run(t, "report", out("r.json"), "-f", "json"); stdout != string(saved) {
		t.Errorf("report -f json differs from the saved report:\n%s\nsaved:\n%s", stdout, saved)
	}
	// Profiles: the ones attach wrote.
	_, stderr, code := run(t, "report", out("r.json"), "-o", out("r.txt"), "--pprof", out("b.pb.gz"),
		"--pprof-maps", out("b-maps.pb.gz"), "--folded", out("b.folded"), "--flamegraph", out("b.html"))
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"folded", "html"} {
		a, _ := os.ReadFile(out("a." + name))
		b, _ := os.ReadFile(out("b." + name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: attach wrote %d bytes, report %d different ones", name, len(a), len(b))
		}
	}
	for _, name := range []string{".pb.gz", "-maps.pb.gz"} {
		a, b := readProfile(t, out("a"+name)), readProfile(t, out("b"+name))
		// The window's length comes from the monotonic clock in attach, from
		// the wall clock in the JSON.
		if d := a.DurationNanos - b.DurationNanos; d < -1e6 || d > 1e6 {
			t.Errorf("%s: duration %d ns, attach's %d", name, b.DurationNanos, a.DurationNanos)
		}
		a.DurationNanos = b.DurationNanos
		if a.String() != b.String() {
			t.Errorf("%s: report's profile differs from attach's:\n%s\nattach's:\n%s", name, b, a)
		}
	}
	if a := readProfile(t, out("a.pb.gz")); len(a.Sample) == 0 {
		t.Error("attach's contention profile has no samples")
	}
}

func readProfile(t *testing.T, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}
