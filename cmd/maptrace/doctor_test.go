package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// These tests use main_test.go's TestMain (the built maptrace), run and
// oneLine.

var systemChecks = []string{"kernel", "privileges", "uprobes", "memlock", "bpf",
	"uprobe_multi", "perf-event links", "attach cookies", "pidfd", "btf"}

// TestDoctorSystem runs doctor on this machine's kernel, which make
// test-kernels varies: from 6.6 every check passes; before it uprobe_multi
// is a dash (attach falls back to perf-event links) unless backported; and
// before 5.15, without the features attach needs, doctor fails with the
// one-line error attach gives (TestAttachRefusedOnOldKernel), whose fix
// names the kernel.
func TestDoctorSystem(t *testing.T) {
	testtarget.NeedRoot(t)
	release, k, err := preflight.RunningKernel()
	if err != nil {
		t.Fatal(err)
	}
	refused := preflight.First(preflight.System())
	if refused != nil && k.AtLeast(preflight.MinKernel) {
		t.Fatalf("kernel %s is %s or newer, but attach would refuse: %v", release, preflight.MinKernel, refused)
	}
	stdout, stderr, code := run(t, "doctor")
	for _, c := range systemChecks {
		marks := "✓"
		switch {
		case c == "uprobe_multi" && !k.AtLeast(preflight.KernelUprobeMulti):
			marks = "✓–"
		case c == "kernel" && !k.AtLeast(preflight.MinKernel):
			marks = "✗"
		case refused != nil && !k.AtLeast(preflight.KernelPerfLink) && (c == "perf-event links" || c == "attach cookies"):
			marks = "✓✗"
		}
		found := false
		for _, m := range marks {
			found = found || strings.Contains(stdout, "  "+string(m)+" "+c+" ")
		}
		if !found {
			t.Errorf("no %s check marked %s in:\n%s", c, strings.Join(strings.Split(marks, ""), " or "), stdout)
		}
	}
	if refused == nil {
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q; stdout:\n%s", code, stderr, stdout)
		}
		if strings.Contains(stdout, "✗") || !strings.Contains(stdout, "ready:") {
			t.Errorf("want every check passing and ready:\n%s", stdout)
		}
	} else {
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		oneLine(t, stderr, "use kernel "+preflight.MinKernel.String()+" or newer (this one is "+release+")")
		if strings.Contains(stdout, "ready:") {
			t.Errorf("ready on a kernel attach refuses:\n%s", stdout)
		}
	}
	if !strings.Contains(stdout, "(maptrace needs 5.15 or newer)") {
		t.Errorf("the kernel line does not name the minimum kernel:\n%s", stdout)
	}
	if n := strings.Count(stdout, "\n"); n > 24 {
		t.Errorf("%d lines: more than a screen", n)
	}
}

// TestAttachRefusedOnOldKernel: on a kernel without what attach needs (one
// before 5.15, which make test-kernels boots), attach stops before loading
// anything, with doctor's one-line error.
func TestAttachRefusedOnOldKernel(t *testing.T) {
	testtarget.NeedRoot(t)
	refused := preflight.First(preflight.System())
	if refused == nil {
		release, _, _ := preflight.RunningKernel()
		t.Skipf("kernel %s has what attach needs", release)
	}
	doctorOut, doctorErr, _ := run(t, "doctor")
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	start := time.Now()
	_, stderr, code := run(t, "attach", "-p", strconv.Itoa(p.PID()), "-d", "5s")
	if code != 1 || time.Since(start) > 4*time.Second {
		t.Errorf("exit %d after %v: want 1, at once", code, time.Since(start))
	}
	if stderr != doctorErr {
		t.Errorf("attach said %q, doctor %q: want the same line", stderr, doctorErr)
	}
	oneLine(t, stderr, "use kernel "+preflight.MinKernel.String()+" or newer (this one is ")
	t.Logf("attach: %s", strings.TrimSpace(stderr))
	t.Logf("doctor:\n%s", doctorOut)
}

func TestDoctorNotGo(t *testing.T) {
	testtarget.NeedRoot(t)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	pid := strconv.Itoa(sleep.Process.Pid)
	stdout, stderr, code := run(t, "doctor", "-p", pid)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "maptrace: pid " + pid + " (" + exe(t, sleep.Process.Pid) + ") is not a Go program: maptrace traces Go binaries only\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	for _, want := range []string{"  ✓ kernel ", "pid " + pid + ": ", "  ✗ go binary             not a Go binary (no .gopclntab)", "fix: maptrace traces Go programs only"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "ready:") {
		t.Errorf("ready despite the failure:\n%s", stdout)
	}
}

func TestDoctorMissingPID(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(gone.Process.Pid) // reaped: no such process (unless reused at once)
	stdout, stderr, code := run(t, "doctor", "-p", pid)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	oneLine(t, stderr, "pid "+pid+": no such process")
	if stdout != "" {
		t.Errorf("stdout %q on an error", stdout)
	}
}

func TestDoctorGoTargets(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"stripped", []string{"-ldflags=-s -w"}, []string{
			"  ✓ symbols               stripped (no .symtab)",
			"  ✓ pie                   no (position-dependent)",
			"  ✓ goid offset           152 (from maptrace's goid table for go1.26",
		}},
		{"pie with dwarf", []string{"-buildmode=pie"}, []string{
			"  ✓ symbols               not stripped",
			"  ✓ pie                   yes",
			"  ✓ goid offset           152 (from the binary's DWARF)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local", tc.flags...))
			pid := strconv.Itoa(p.PID())
			stdout, stderr, code := run(t, "doctor", "-p", pid)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; stdout:\n%s", code, stderr, stdout)
			}
			want := append([]string{
				"  ✓ go binary             go1.26",
				"  ✓ supported             yes",
				"  ✓ mutex waits           internal/sync.runtime_SemacquireMutex",
				"  ✓ RWMutex read waits    sync.runtime_SemacquireRWMutexR",
				"  ✓ RWMutex write waits   sync.runtime_SemacquireRWMutex",
				"  ✓ fatal errors          fatal, throw",
				"ready: `maptrace attach -p " + pid + "` can trace it",
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(stdout, w) {
					t.Errorf("no %q in:\n%s", w, stdout)
				}
			}
			for _, l := range strings.Split(stdout, "\n") {
				if n := len([]rune(l)); n > 100 {
					t.Errorf("line of %d columns: %q", n, l)
				}
			}
			// A screen: the machine's dozen lines and the target's, a line
			// for each group of probed functions (eleven since file locks).
			if n := strings.Count(stdout, "\n"); n > 32 {
				t.Errorf("%d lines: more than a screen", n)
			}
		})
	}
}

// TestDoctorNotRoot: as nobody, the privilege checks fail with their fixes.
func TestDoctorNotRoot(t *testing.T) {
	stdout, stderr, code := runAs(t, nobody, "doctor")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	oneLine(t, stderr, "privileges: uid 65534 lacks CAP_SYS_ADMIN (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE): run as root")
	for _, want := range []string{"  ✓ kernel ", "  ✗ privileges ", "      fix: run as root"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
}

// TestDoctorKernelFeatures renders the kernel feature checks for kernels
// this machine is not: which features fall back, and which stop attach.
func TestDoctorKernelFeatures(t *testing.T) {
	absent := fmt.Errorf("probe: %w", ebpf.ErrNotSupported)
	eperm := fmt.Errorf("load program: %w", unix.EPERM)
	for _, tc := range []struct {
		name    string
		f       preflight.Features
		want    []string
		wantErr []string // in doctor's one-line error; none: no error
	}{
		{"6.6 and newer", preflight.Features{}, []string{
			"  ✓ uprobe_multi          yes (6.6+)",
			"  ✓ perf-event links      yes (5.15+): the fallback without uprobe_multi",
			"  ✓ attach cookies        yes (5.15+)",
			"  ✓ pidfd                 yes (5.3+)",
		}, nil},
		{"5.15 to 6.5: perf-event links instead of uprobe_multi", preflight.Features{UprobeMulti: absent}, []string{
			"  – uprobe_multi          no (6.6+): falls back to a perf-event link per site",
			"  ✓ perf-event links      yes (5.15+): a link per site, each with its cookie",
			"  ✓ attach cookies        yes (5.15+)",
		}, nil},
		{"uprobe_multi backported without perf-event links", preflight.Features{PerfLink: absent}, []string{
			"  ✓ uprobe_multi          yes (6.6+)",
			"  – perf-event links      no (5.15+): not needed, uprobe_multi links are used",
		}, nil},
		{"5.10", preflight.Features{UprobeMulti: absent, PerfLink: absent, Cookie: absent}, []string{
			"  – uprobe_multi          no (6.6+): falls back",
			"  ✗ perf-event links      no (5.15+), nor uprobe_multi: no way to attach a uprobe with its cookie",
			"      fix: use kernel 5.15 or newer",
			"  ✗ attach cookies        no bpf_get_attach_cookie (5.15+)",
		}, []string{"perf-event links: no (5.15+), nor uprobe_multi: no way to attach a uprobe with its cookie", "use kernel 5.15 or newer"}},
		{"no pidfd", preflight.Features{Pidfd: absent}, []string{
			"  ✗ pidfd                 no pidfd_open (5.3+)",
		}, []string{"pidfd: no pidfd_open (5.3+): the target's exit cannot be watched", "use kernel 5.15 or newer"}},
		{"unprivileged: cannot tell, not fatal", preflight.Features{UprobeMulti: eperm, PerfLink: eperm, Cookie: eperm}, []string{
			"  ✗ uprobe_multi          cannot tell: probing it loads a BPF program, which needs privileges",
			"  ✗ attach cookies        cannot tell",
			"      fix: run as root",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs []doctorCheck
			for _, c := range tc.f.Checks() {
				cs = append(cs, doctorCheck{Check: c, Info: c.Fallback})
			}
			var b strings.Builder
			err := writeChecks(&b, cs, func(c doctorCheck) string { return c.Name + ": " }) // as runDoctor
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in:\n%s", w, b.String())
				}
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("error %q, want none", err)
			case tc.wantErr != nil && err == nil:
				t.Errorf("no error, want one with %q", tc.wantErr)
			case tc.wantErr != nil:
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q, want %q in it", err, w)
					}
				}
			}
			for _, l := range strings.Split(b.String(), "\n") {
				if n := len([]rune(l)); n > 100 {
					t.Errorf("line of %d columns: %q", n, l)
				}
			}
		})
	}
}
