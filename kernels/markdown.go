package main

import (
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// markdown renders docs/KERNELS.md.
func markdown(results []Result, accel Accel, wall time.Duration) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# maptrace on other kernels\n\n")
	p("Written by `make test-kernels` (kernels/main.go) on %s; do not edit by hand.\n\n", time.Now().UTC().Format("2006-01-02"))
	p("It boots Debian's amd64 kernels and an arm64 one under qemu (2 vCPUs, 1.5 GiB, no network) and\n")
	p("runs maptrace's kernel-dependent tests in each: an initramfs holds busybox-static, maptrace, the\n")
	p("test binaries (`go test -c`) and their targets, built on the host for the kernel's architecture\n")
	p("with %s; tests over the Go toolchain matrix run their `local` subtest only. The arm64\n", runtime.Version())
	p("guest, a Cortex-A57 emulated by TCG, runs a focused subset. It needs `qemu-system-x86`,\n")
	p("`qemu-system-arm` and `busybox-static` (`scripts/deps.sh kernels`, which `make test-kernels`\n")
	p("runs) and downloads the kernel packages and arm64's busybox-static by their exact names into\n")
	p("the user cache directory (`maptrace-kernels`), never installing them.\n\n")
	p("**Wall time: %v** for `make test-kernels` (kernel downloads cached), accelerator **%s**: %s.\n\n",
		wall.Round(time.Second), accel.Name, accel.Why)

	p("## Kernels\n\n| kernel | arch | Debian package | version | stands for | guest wall time |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		k := r.Kernel
		wt := "not run"
		if r.VM.Wall > 0 {
			wt = r.VM.Wall.Round(time.Second).String()
		}
		if r.Err != nil {
			wt += " (" + r.Err.Error() + ")"
		}
		for _, o := range r.Oopses {
			wt += "; the guest kernel said `" + o + "`"
		}
		p("| %s | %s | `%s` (%s) | %s | %s | %s |\n", col(r), k.Arch, orDash(k.Package), k.Suite, orDash(k.Version), k.Why, wt)
	}
	p("\n")

	notes := &footnotes{}
	p("## Tests\n\n")
	p("Each test as `go test -run` names it; skips and failures carry a note with the test's own words.\n")
	p("A test that fails is run once more in a second boot (up to %d of them): a loaded host stalls an\n", maxRerun)
	p("emulated guest's vCPUs, and a timing test can fail on that alone. The first failure stays in the table.\n\n")
	p("| package | test |")
	for _, r := range results {
		p(" %s |", col(r))
	}
	p("\n|---|---|%s\n", strings.Repeat("---|", len(results)))
	for _, row := range rows(results) {
		p("| %s | %s |", shortPkg(row.pkg), row.test)
		for _, r := range results {
			p(" %s |", cell(r, row, notes))
		}
		p("\n")
	}
	p("\n")
	for i, n := range notes.list {
		p("%d. %s\n", i+1, n)
	}
	if len(notes.list) > 0 {
		p("\n")
	}

	p("## Figures the tests logged\n\n")
	p("Under emulation the times are TCG's, not a CPU's: compare within a column, not with BENCHMARKS.md.\n\n| figure |")
	for _, r := range results {
		p(" %s |", col(r))
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(results)))
	for _, f := range figures {
		p("| %s |", f.label)
		for _, r := range results {
			p(" %s |", escape(figure(r, f.pkg, f.test, f.re)))
		}
		p("\n")
	}
	p("\n")

	p("## What each kernel has, by `maptrace doctor`\n\n| check |")
	for _, r := range results {
		p(" %s |", col(r))
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(results)))
	checks := map[string]map[string]Check{}
	var names []string
	for _, r := range results {
		d, _ := r.Guest.section("doctor")
		for _, c := range doctorChecks(d.Text) {
			if checks[c.Name] == nil {
				checks[c.Name] = map[string]Check{}
				names = append(names, c.Name)
			}
			checks[c.Name][col(r)] = c
		}
	}
	for _, n := range names {
		p("| %s |", n)
		for _, r := range results {
			c, ok := checks[n][col(r)]
			if !ok {
				p(" |")
				continue
			}
			p(" %s %s |", c.Mark, escape(firstClause(c.Detail)))
		}
		p("\n")
	}
	p("\n✓ present, – absent but not needed (attach does without it), ✗ absent and needed.\n\n")

	p("## An attach on each kernel\n\n")
	p("`maptrace attach -p PID -d 5s` on the contention target while it contends:\n\n")
	p("| kernel | exit | what it said |\n|---|---|---|\n")
	for _, r := range results {
		s, ok := r.Guest.section("attach")
		if !ok {
			p("| %s | | not run |\n", col(r))
			continue
		}
		p("| %s | %d | %s |\n", col(r), s.RC, escape(attachSummary(s.Text)))
	}
	p("\n")
	b.WriteString(decisions)
	p("\n## Raw output\n\n")
	for _, r := range results {
		for _, name := range []string{"doctor", "attach"} {
			s, ok := r.Guest.section(name)
			if !ok {
				continue
			}
			p("<details><summary>%s: maptrace %s (exit %d)</summary>\n\n```\n%s\n```\n</details>\n\n", col(r), name, s.RC, s.Text)
		}
	}
	return b.String()
}

// decisions is the prose part: what maptrace does where a kernel lacks a
// feature, decided from the tables above.
const decisions = `## Per feature: fall back or refuse

| feature | since | without it | tested on |
|---|---|---|---|
| uprobe_multi links | 6.6 | **falls back** to one perf-event link per probe site, each with its cookie; doctor shows a dash. The same programs and cookies work through either link: only attaching and detaching take a system call per site | 6.1: every attach test passes through the fallback; 6.12: TestAttachModes and TestMeasure run both ways |
| perf-event links with a BPF cookie | 5.15 | **refuses** when uprobe_multi is absent too, before loading anything, with the line doctor ends with: ` + "`perf-event links: no (5.15+), nor uprobe_multi: no way to attach a uprobe with its cookie: use kernel 5.15 or newer (this one is 5.10.0-…)`" + `. The cookie tells a program's probes apart (which function, which call site); without it every site would need a program of its own, another design | 5.10: TestAttachRefusedOnOldKernel, TestDoctorSystem; the attach tests skip, naming the feature |
| bpf_get_attach_cookie | 5.15 | **refuses**, as above (doctor: ✗ attach cookies) | 5.10 |
| perf-event links for the CPU sampler | 5.15 | **falls back** to the PERF_EVENT_IOC_SET_BPF ioctl; closing the event detaches it | 5.10: TestNoMapWork and TestClose (fallen back), TestIoctlAttach |
| hash maps allocated as entries are added, in the CPU sampler's perf_event program | 6.1 | **falls back** to preallocated tables, smaller: map code of 16 binaries, 256 processes; a process beyond them is traced without CPU figures, with a note | 5.10: TestNoMapWork, TestClose, TestIoctlAttach and TestVerifierBudget load that way; TestShared runs both ways on every kernel |
| BPF memory charged to memlock | before 5.11 | the memlock check raises RLIMIT_MEMLOCK, as root | 5.10: doctor's memlock line |
| pidfd_open | 5.3 | **refuses** (every kernel attach works on has it) | — |
| BTF | — | nothing: informational; maptrace's programs read only registers and user memory, no CO-RE | all three have it |

What this matrix found, and what changed:

- **6.1 and 6.12: no CPU sampling.** The sampler's perf_event program walked the stack in a loop
  whose verifier state forked on every frame: 786k instructions processed on 6.18, over the
  million the verifiers of 6.1 and 6.12 allow, so attach went on with ` + "`note: no CPU sampling: … BPF program is too large`" + `
  (and, under emulation, spent three minutes verifying). bpf/cpu.bpf.c now notes each frame's kind
  as bits without a branch: 31k instructions on 6.18, 25k on 6.1 (the table above);
  TestVerifierBudget keeps it under 100k on every kernel.
- **arm64: no CPU sampling.** The sampler refused arm64 targets (attach said ` + "`note: no CPU sampling`" + `):
  it read a leaf's return address, which the frame-pointer walk misses, at SP plus the SP
  delta, where amd64 keeps it; arm64 keeps it in LR until the frame opens, then at SP+0. The
  step table now says which, per architecture (TestStepsArm64 checks it against the
  instructions of every release), and the arm64 guest runs the sampler's tests.
- **Before 6.1: no CPU sampling.** The sampler's tables were hash maps allocated as entries are
  added, which a perf_event program may use only from 6.1 (5.10's verifier: ` + "`perf_event programs can only use preallocated hash map`" + `;
  5.15 to 6.0, Ubuntu 22.04's kernel among them, alike). On that error the sampler now loads
  again with its tables preallocated, and smaller.
- **5.10: attach's error named a feature, not the kernel.** Before 5.15 the fix now says which
  kernel this is (` + "`use kernel 5.15 or newer (this one is 5.10.0-…)`" + `).
- **6.1: doctor -p ran past a screen.** The uprobe_multi fallback line wrapped; it is one line now.
- The tests follow the kernel: those that attach skip before 5.15 saying why
  (testtarget.NeedAttach), TestMeasure skips the link type the kernel lacks, TestDoctorSystem
  expects the dashes and crosses the kernel's age implies, and TestFeaturesMatchKernel checks
  each feature against the release it came with.

**arm64.** Debian 12's arm64 kernel (6.1) boots under ` + "`qemu-system-aarch64 -M virt -cpu cortex-a57`" + `, by TCG
on this amd64 host, from an initramfs of arm64 builds (maptrace, the test binaries, the targets
and Debian's arm64 busybox-static, downloaded like the kernels). It runs a focused subset:
doctor, an attach, the attach modes, the park site, the cost of a hit on each kind of site,
mutex accuracy against the runtime's metric, exact hot keys, the three races, a locked map
that must not race, and the CPU sampler. TestMapCPUWithProbes does 200k lookups there, not
800k: with every map operation probed they took 26 to 45 s of CPU time, against 3 s without.
Their map time came out 1.02 and 2.0 times what it was without probes in two runs (2.47 s
against 2.42 s; 5.8 s against 2.9 s on a busier host), within the test's bound of a quarter
of the probes' estimated cost (22 and 24 s). Not there: PIE targets (a Go PIE names the dynamic loader,
which the guest lacks; the amd64 guests test PIE). Like amd64's 6.1 it has no uprobe_multi, so every probe attaches
through the perf-event fallback. Emulating another instruction set is 10 to 20 times slower
than the amd64 guests: TestMeasure's ceiling is 1 ms a hit there, against 50 µs elsewhere, and
a probe costs the target far more of its CPU than on hardware (the attach above), so read the
arm64 column for what works, not for what it costs.

Under emulation (TCG) on a shared host some figures are looser, not the checks' sense: the mutex
accuracy runs last 3 times longer and accept maptrace ÷ runtime from 0.5 to 1.6 (native: 0.85 to
1.15), because the host stalls the virtual CPUs for tens of milliseconds and the runtime's metric
times one wait in 8 and counts it 8 times, so a stall inside a timed wait counts 8 times over
(ratios from 0.72 to 1.39 were seen, on 6.1 and 6.12 alike); and the sampler's floors on sample
counts are 3/8 of native. The times in the figures above vary as much with the host's load.
TestMapShare does not run here: how samples split between map and other code depends on
the CPU, and TCG, which takes a timer interrupt only between translated blocks, shifts it by 0.1.
`

// figures are numbers the tests log, shown per kernel.
var figures = []struct {
	label, pkg, test string
	re               *regexp.Regexp
}{
	{"probe hit, uprobe_multi link (TestMeasure)", "internal/calibrate", "TestMeasure/multi", regexp.MustCompile(`^(\S+) per hit`)},
	{"probe hit, perf-event link (TestMeasure)", "internal/calibrate", "TestMeasure/perf-event", regexp.MustCompile(`^(\S+) per hit`)},
	{"probe hit on the entry site: PUSHQ BP, B.LS (TestSiteCosts)", "internal/calibrate", "TestSiteCosts", regexp.MustCompile(`entry site (\S+),`)},
	{"probe hit on the first instruction: CMPQ, LDR (TestSiteCosts)", "internal/calibrate", "TestSiteCosts", regexp.MustCompile(`first instruction (\S+),`)},
	{"probe hit on a call: CALL, BL (TestSiteCosts)", "internal/calibrate", "TestSiteCosts", regexp.MustCompile(`call (\S+) per hit`)},
	{"mutex wait, maptrace ÷ runtime/metrics (TestMutexContention)", "internal/trace", "TestMutexContention/local", regexp.MustCompile(`ratio ([0-9.]+)`)},
	{"CPU sampler, instructions verified (TestVerifierBudget)", "internal/cpuprof", "TestVerifierBudget", regexp.MustCompile(`(\d+) instructions verified`)},
}

// figure is the first match of re in a test's log lines on one kernel, or
// its outcome (or its parent's) when it logged none.
func figure(r Result, pkg, test string, re *regexp.Regexp) string {
	for name := test; ; {
		for _, t := range r.Tests {
			if t.Pkg != pkg || t.Test != name {
				continue
			}
			for _, l := range t.Logs {
				if m := re.FindStringSubmatch(l); m != nil && name == test {
					return m[1]
				}
			}
			return t.Action
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			return "—"
		}
		name = name[:i]
	}
}

type row struct{ pkg, test string }

// rows are the tests to show: every leaf test any guest ran, so that a
// test whose subtests ran on one kernel and that skipped as a whole on
// another shows its subtests, the skip applying to each.
func rows(results []Result) []row {
	seen := map[row]bool{}
	var all []row
	for _, r := range results {
		for _, t := range r.Tests {
			k := row{t.Pkg, t.Test}
			if !seen[k] {
				seen[k] = true
				all = append(all, k)
			}
		}
	}
	var leaves []row
	for _, k := range all {
		parent := false
		for o := range seen {
			if o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/") {
				parent = true
			}
		}
		if !parent {
			leaves = append(leaves, k)
		}
	}
	order := map[string]int{}
	for i, s := range Suites {
		if _, ok := order[s.Pkg]; !ok {
			order[s.Pkg] = i
		}
	}
	sort.SliceStable(leaves, func(i, j int) bool {
		if order[leaves[i].pkg] != order[leaves[j].pkg] {
			return order[leaves[i].pkg] < order[leaves[j].pkg]
		}
		return false // the order they ran in
	})
	return leaves
}

// cell is a test's outcome on one kernel: its own, or the nearest parent's
// when the parent skipped or failed before running it.
func cell(r Result, k row, notes *footnotes) string {
	find := func(name string) (TestResult, bool) {
		for _, t := range r.Tests {
			if t.Pkg == k.pkg && t.Test == name {
				return t, true
			}
		}
		return TestResult{}, false
	}
	name := k.test
	for {
		if t, ok := find(name); ok && (name == k.test || t.Action != "pass") {
			switch t.Action {
			case "pass":
				if t.FailedFirst != "" {
					return "pass on a second boot, first " + notes.ref("failed: "+t.FailedFirst)
				}
				return "pass"
			case "skip":
				return "skip " + notes.ref(t.Reason)
			default:
				return "**FAIL** " + notes.ref(t.Reason)
			}
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if r.Err != nil {
		return "not run"
	}
	return "—"
}

type footnotes struct{ list []string }

func (f *footnotes) ref(text string) string {
	text = escape(strings.TrimSpace(text))
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	if text == "" {
		text = "(no message)"
	}
	for i, n := range f.list {
		if n == text {
			return fmt.Sprintf("[%d]", i+1)
		}
	}
	f.list = append(f.list, text)
	return fmt.Sprintf("[%d]", len(f.list))
}

func col(r Result) string {
	if r.Kernel.Version != "" {
		return r.Kernel.Name() + " (" + strings.SplitN(r.Kernel.Version, "-", 2)[0] + ")"
	}
	return r.Kernel.Name()
}

func shortPkg(pkg string) string { return strings.TrimPrefix(pkg, "internal/") }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func escape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// firstClause shortens a doctor detail to what it found: "yes (6.6+)".
func firstClause(s string) string {
	if i := strings.Index(s, ":"); i > 0 {
		return s[:i]
	}
	return s
}

// attachSummary is the lines of an attach's output that say how it went:
// its error, or how many probe hits and what it found.
func attachSummary(text string) string {
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "maptrace: note"), strings.HasPrefix(l, "maptrace: attached"):
		case strings.HasPrefix(l, "maptrace: "), strings.HasPrefix(l, "probes: "),
			strings.HasPrefix(l, "MUTEX CONTENTION"), strings.HasPrefix(l, "cpu: "):
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "<br>")
}
