package cpuprof_test

import (
	"debug/elf"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/maptrace/maptrace/internal/calibrate"
	"github.com/maptrace/maptrace/internal/collector"
	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
	"github.com/maptrace/maptrace/internal/testtarget"
)

func needRoot(t *testing.T) {
	t.Helper()
	testtarget.NeedRoot(t)
	// maptrace's preflight does this before the sampler starts; kernels
	// before 5.11 (make test-kernels' 5.10) charge BPF maps to it.
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
}

// sampled is a target under the sampler, started by the test.
type sampled struct {
	p   *testtarget.Proc
	bin *symbols.Binary
	sym *collector.Symbolizer
	s   *cpuprof.Sampler
}

func startSampled(t *testing.T, toolchain string) *sampled {
	t.Helper()
	return sample(t, startTarget(t, toolchain))
}

// sample starts sampling x.
func sample(t *testing.T, x *sampled) *sampled {
	t.Helper()
	s, err := cpuprof.Start(x.p.PID(), x.bin, x.sym.Bias(), 1)
	if err != nil {
		t.Fatalf("start sampler: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if len(s.Dropped) > 0 {
		t.Errorf("map functions dropped from the table: %v", s.Dropped)
	}
	x.s = s
	return x
}

// startTarget starts the test target and reads its symbols.
func startTarget(t *testing.T, toolchain string) *sampled {
	t.Helper()
	return startBin(t, testtarget.Build(t, "../../testdata/cpusplit", toolchain))
}

// startBin starts the test target bin and reads its symbols.
func startBin(t *testing.T, exe string) *sampled {
	t.Helper()
	p := testtarget.Start(t, exe)
	proc, err := target.Find(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Close() })
	bin, err := symbols.Open(proc.ExeLink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bin.Close() })
	return &sampled{p: p, bin: bin, sym: collector.NewSymbolizer(bin, loadBias(t, proc))}
}

func loadBias(t *testing.T, proc *target.Process) uint64 {
	f, err := elf.Open(proc.ExeLink)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			bias, err := proc.LoadBias(p.Vaddr)
			if err != nil {
				t.Fatal(err)
			}
			return bias
		}
	}
	t.Fatal("no PT_LOAD at offset 0")
	return 0
}

// run sends cmd and returns the target's answer, split in fields, and the
// samples taken while it ran.
func (x *sampled) run(t *testing.T, cmd string) ([]string, *cpuprof.Result) {
	t.Helper()
	before, err := x.s.Read()
	if err != nil {
		t.Fatal(err)
	}
	x.p.Send(t, cmd)
	answer := strings.Fields(x.p.Line(t, 60*time.Second))
	after, err := x.s.Read()
	if err != nil {
		t.Fatal(err)
	}
	return answer, diff(after, before)
}

func diff(a, b *cpuprof.Result) *cpuprof.Result {
	d := &cpuprof.Result{Hz: a.Hz, Samples: a.Samples - b.Samples, User: a.User - b.User, Resume: a.Resume - b.Resume,
		Trap: a.Trap - b.Trap, MutexProbe: a.MutexProbe - b.MutexProbe, Map: a.Map - b.Map, NoCaller: a.NoCaller - b.NoCaller, Lost: a.Lost - b.Lost, Sites: map[uint64]uint64{}}
	for k, n := range a.Sites {
		if n > b.Sites[k] {
			d.Sites[k] = n - b.Sites[k]
		}
	}
	return d
}

// topSite is the function of the call site with the most samples.
func (x *sampled) topSite(r *cpuprof.Result) (fn string, share float64) {
	type site struct {
		pc uint64
		n  uint64
	}
	var ss []site
	for pc, n := range r.Sites {
		ss = append(ss, site{pc, n})
	}
	if len(ss) == 0 {
		return "", 0
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].n > ss[j].n })
	frame := x.sym.Return(ss[0].pc)[0]
	fn, _, _ = strings.Cut(frame, " (")
	return fn, float64(ss[0].n) / float64(r.Map)
}

func nanos(t *testing.T, s string) float64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad answer field %q", s)
	}
	return float64(n)
}

// TestMapShare checks the share of the target's CPU time found in map
// operations against the share the target measured with its own thread
// clock, alternating map lookups with arithmetic, on a swiss-map and a
// classic-map toolchain; and that the lookups' call site is the top one.
func TestMapShare(t *testing.T) {
	needRoot(t)
	// Go 1.20 opens frames without PUSHQ BP, 1.24 brought swiss maps.
	for _, tc := range []string{"go1.20.14", "go1.23.12", "local"} {
		t.Run(tc, func(t *testing.T) {
			x := startSampled(t, tc)
			for _, arith := range []int{300000, 60000} {
				answer, r := x.run(t, fmt.Sprintf("mix 2000 2000 %d", arith))
				if len(answer) != 3 || answer[0] != "mix" {
					t.Fatalf("target said %q", answer)
				}
				mapNS, otherNS := nanos(t, answer[1]), nanos(t, answer[2])
				want := mapNS / (mapNS + otherNS)
				got := float64(r.Map) / float64(r.Samples)
				fn, top := x.topSite(r)
				t.Logf("arith %d: map share %.3f, the target's own %.3f; %d samples (%.2fs; target's clock %.2fs), %d user, %d map, %d without caller, %d lost; top site %s with %.0f%%",
					arith, got, want, r.Samples, r.Seconds(r.Samples), (mapNS+otherNS)/1e9, r.User, r.Map, r.NoCaller, r.Lost, fn, top*100)
				if d := got - want; d < -0.1 || d > 0.1 {
					t.Errorf("arith %d: map share %.3f, want %.3f ± 0.1", arith, got, want)
				}
				if fn != "main.lookups" || top < 0.9 {
					t.Errorf("arith %d: top site %s with %.0f%% of the map samples, want main.lookups with 90%%+", arith, fn, top*100)
				}
				// The sampler sees the target's CPU time: 1/Hz per sample.
				if s, own := r.Seconds(r.Samples), (mapNS+otherNS)/1e9; s < 0.8*own || s > 1.25*own {
					t.Errorf("arith %d: sampled %.2fs of CPU time, the target's clock %.2fs", arith, s, own)
				}
			}
		})
	}
}

// TestNoMapWork checks that a target doing no map operation has no map
// time: neither arithmetic nor the runtime's hash functions called by
// hash/maphash, which are map work only under a map operation.
func TestNoMapWork(t *testing.T) {
	needRoot(t)
	x := startSampled(t, "local")
	for _, cmd := range []string{"arith 1500", "maphash 1500"} {
		answer, r := x.run(t, cmd)
		if len(answer) != 2 {
			t.Fatalf("target said %q", answer)
		}
		share := float64(r.Map) / float64(r.Samples)
		t.Logf("%s: %d samples, %d user, %d map (%.3f), %d without caller", cmd, r.Samples, r.User, r.Map, share, r.NoCaller)
		if r.Samples < atLeast(500) {
			t.Errorf("%s: %d samples in 1.5s of CPU time at %d Hz", cmd, r.Samples, r.Hz)
		}
		if share > 0.01 {
			t.Errorf("%s: map share %.3f, want ≈ 0", cmd, share)
		}
	}
}

// TestCounts checks the governor's cheap read of a target's samples
// against the full one: the same counts, read later, and kernel mode only
// what is not user mode; after Stop, the final counts.
func TestCounts(t *testing.T) {
	needRoot(t)
	x := startSampled(t, "local")
	_, r := x.run(t, "arith 500")
	all, kernel, err := x.s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Read: %d samples, %d user; Counts: %d, %d kernel", r.Samples, r.User, all, kernel)
	if all < r.Samples || all < atLeast(150) {
		t.Errorf("Counts: %d samples, Read %d before it", all, r.Samples)
	}
	if kernel > all || all-kernel < r.User-r.Resume {
		t.Errorf("Counts: %d kernel of %d, Read %d user (%d on a probe's resume) before it", kernel, all, r.User, r.Resume)
	}
	if err := x.s.Stop(); err != nil {
		t.Fatal(err)
	}
	final, err := x.s.Read()
	if err != nil {
		t.Fatal(err)
	}
	all, kernel, err = x.s.Counts()
	if err != nil || all != final.Samples || kernel != final.Kernel() {
		t.Errorf("Counts after Stop: %d, %d kernel, %v; final %d samples, %d kernel", all, kernel, err, final.Samples, final.Kernel())
	}
}

// TestResumeSamples checks that the samples a probe leaves on the
// instruction it resumes at count with the kernel's: with a program at the
// map function's entry site, some of the probes' time is sampled there, in
// user mode; without, next to none of the map's (each lookup hashes a
// 16 KiB key, and that instruction is one of thousands).
func TestResumeSamples(t *testing.T) {
	needRoot(t)
	x := startSampled(t, "local")
	const fn = "runtime.mapaccess1_faststr" // the lookup of "fixed"
	sites, err := probes.FuncSites(x.bin, fn)
	if err != nil {
		t.Fatal(err)
	}
	multi := probes.MultiSupported()
	prog, err := probes.EmptyProgram(multi)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	n := 1000000
	if testtarget.Emulated() {
		n = 100000
	}
	cmd := fmt.Sprintf("fixed %d", n)
	// Five times as long unprobed: a few hundred samples, so that 1% of
	// them is more than the one a chance landing makes.
	_, plain := x.run(t, fmt.Sprintf("fixed %d", 5*n))
	l, err := probes.Attach(fmt.Sprintf("/proc/%d/exe", x.p.PID()), x.p.PID(), multi, []probes.Probe{{Func: fn, Offset: sites.Entry, Prog: prog}})
	if err != nil {
		t.Fatal(err)
	}
	_, probed := x.run(t, cmd)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*cpuprof.Result{plain, probed} {
		t.Logf("%d samples, %d in kernel mode, %d on the resume instruction, %d map", r.Samples, r.Samples-min(r.User, r.Samples), r.Resume, r.Map)
	}
	if plain.Resume*100 > plain.User {
		t.Errorf("without probes, %d of %d user-mode samples on the resume instruction, want under 1%%", plain.Resume, plain.User)
	}
	if k := probed.Kernel(); probed.Resume < 3 || probed.Resume*100 < k {
		t.Errorf("with probes, %d samples on the resume instruction of %d of the kernel's, want at least 3 and 1%%", probed.Resume, k)
	}
	// The loop makes no system calls: its kernel time above the unprobed
	// run's share is the probe's, in its trap or where it resumes.
	extra := float64(probed.Kernel()) - float64(plain.Kernel())/float64(plain.Samples)*float64(probed.Samples)
	mutex, other := probed.ProbeSamples()
	t.Logf("%d samples in the probe, %.0f kernel samples above the unprobed share", other, extra)
	if mutex != 0 || float64(other) < 0.8*extra || float64(other) > 1.2*extra+10 {
		t.Errorf("%d samples in the probe (%d in mutex probes), want 0.8-1.2× the %.0f kernel samples above the unprobed run's share", other, mutex, extra)
	}
}

// TestMutexProbeSamples checks the samples the mutex probes leave: where
// they resume, the first instruction of the callee of the call each sits on
// (the kernel emulates the call), they count as the kernel's; in the kernel
// with the target's registers on the call, as the mutex probes' time, at
// least what a hit's trap and programs take.
func TestMutexProbeSamples(t *testing.T) {
	needRoot(t)
	testtarget.NeedFeature(t, preflight.KernelCookie, preflight.ProbeFeatures().Cookie) // the mutex programs read theirs
	x := sample(t, startBin(t, testtarget.Build(t, "../../testdata/contention", "local")))
	off, _, err := x.bin.GoidOffset()
	if err != nil {
		t.Fatal(err)
	}
	multi := probes.MultiSupported()
	cal, err := calibrate.Measure(off, probes.LayoutFor(x.bin.GoVersion), multi)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := probes.LoadMutex(off, multi)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	plan, err := probes.PlanMutex(x.bin, objs)
	if err != nil || len(plan.Missing) > 0 {
		t.Fatalf("plan: %v; missing %v", err, plan.Missing)
	}
	const cmd = "run 8000" // 150-250k parks here: 10-25 samples where they resume
	_, plain := x.run(t, cmd)
	l, err := probes.Attach(fmt.Sprintf("/proc/%d/exe", x.p.PID()), x.p.PID(), multi, plan.Probes)
	if err != nil {
		t.Fatal(err)
	}
	_, probed := x.run(t, cmd)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var hits uint64
	for _, n := range collector.Hits(objs.Hits, plan) {
		hits += n
	}
	var runs, ns uint64
	for _, slot := range []uint32{probes.ProgTimePark, probes.ProgTimeReady} {
		r, n, err := collector.ProgTime(objs.ProgTime, slot)
		if err != nil {
			t.Fatal(err)
		}
		runs, ns = runs+r, ns+n
	}
	if runs == 0 || hits == 0 {
		t.Fatalf("%d hits, %d timed runs", hits, runs)
	}
	for _, r := range []*cpuprof.Result{plain, probed} {
		t.Logf("%d samples, %d in kernel mode, %d where a probe resumes, %d in a probe's trap, %d of them the mutex probes'",
			r.Samples, r.Samples-min(r.User, r.Samples), r.Resume, r.Trap, r.MutexProbe)
	}
	floor := cal.Trap() + time.Duration(ns/runs)
	perHit := time.Duration(float64(probed.MutexProbe) / float64(probed.Hz) * float64(time.Second) / float64(hits))
	t.Logf("%d mutex probe hits: %v each by the samples; the calibrated trap and the programs' own time %v", hits, perHit, floor)
	if plain.Resume*100 > plain.User || plain.MutexProbe*100 > plain.User {
		t.Errorf("without probes, %d (%d) of %d user-mode samples where the (mutex) probes resume, want under 1%%", plain.Resume, plain.MutexProbe, plain.User)
	}
	if probed.Resume < 5 {
		t.Errorf("with probes (%d hits), %d samples where they resume, want at least 5", hits, probed.Resume)
	}
	if probed.MutexProbe > probed.Resume+probed.Trap {
		t.Errorf("%d samples in the mutex probes, of %d where any probe resumes or traps", probed.MutexProbe, probed.Resume+probed.Trap)
	}
	if perHit < floor*7/10 || perHit > floor*5 {
		t.Errorf("a mutex probe hit takes %v by its samples, want 0.7-5× the calibrated trap and the programs' own time, %v", perHit, floor)
	}
}

// TestClose checks that closing leaves no perf event or BPF program behind,
// and that closing twice is harmless.
func TestClose(t *testing.T) {
	needRoot(t)
	x := startTarget(t, "local")
	before := openFDs(t)
	s, err := cpuprof.Start(x.p.PID(), x.bin, x.sym.Bias(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if during := openFDs(t); during <= before {
		t.Errorf("%d file descriptors open while sampling, %d before", during, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d file descriptors open after Close, %d before Start", after, before)
	}
}

// TestIoctlAttach samples through the ioctl that kernels without BPF
// perf-event links take.
func TestIoctlAttach(t *testing.T) {
	needRoot(t)
	defer cpuprof.SetUseLink(cpuprof.SetUseLink(false))
	x := startSampled(t, "local")
	answer, r := x.run(t, "mix 500 2000 60000")
	if len(answer) != 3 {
		t.Fatalf("target said %q", answer)
	}
	t.Logf("%d samples, %d map", r.Samples, r.Map)
	if r.Samples < atLeast(150) || r.Map == 0 {
		t.Errorf("%d samples, %d in maps, in 0.5s of CPU time at %d Hz", r.Samples, r.Map, r.Hz)
	}
}

// atLeast is the fewest samples a run must get, native on a CPU: 3/8 of
// it under emulation, where a loaded host stalls the virtual CPUs and the
// CPU clock's timer fires late (make test-kernels' guests got 43-100%).
func atLeast(native uint64) uint64 {
	if testtarget.Emulated() {
		return native * 3 / 8
	}
	return native
}

func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestVerifierBudget keeps the sampler cheap to verify. Verifiers before
// Linux 6.18 give up at a million instructions processed, which the stack
// walk once passed on 6.1 and 6.12 (786k on 6.18), leaving maptrace without
// CPU sampling there; and verifying is slow in make test-kernels' emulated
// guests, where it runs on each kernel.
func TestVerifierBudget(t *testing.T) {
	needRoot(t)
	prog, err := cpuprof.Open(1)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer prog.Close()
	info, err := prog.ProgramInfo()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := info.VerifiedInstructions()
	if !ok {
		t.Skip("this kernel does not say how many instructions it verified (5.16+)")
	}
	t.Logf("cpu_sample: %d instructions verified", n)
	if n > 100_000 {
		t.Errorf("cpu_sample: %d instructions verified, want at most 100k: a tenth of the verifier's limit", n)
	}
}

// TestShared samples three targets with one Program, two of them processes
// of one binary: each target's counts are its own, the binary's map code is
// loaded once, and a target that stops leaves the others sampled.
//
// It runs with the tables allocated as entries are added and preallocated,
// as kernels before 6.1 have them.
func TestShared(t *testing.T) {
	for _, pre := range []bool{false, true} {
		t.Run(map[bool]string{false: "allocated", true: "preallocated"}[pre], func(t *testing.T) {
			defer cpuprof.SetPreallocate(cpuprof.SetPreallocate(pre))
			testShared(t)
		})
	}
}

func testShared(t *testing.T) {
	needRoot(t)
	prog, err := cpuprof.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	xs := []*sampled{startTarget(t, "local"), startTarget(t, "go1.20.14")}
	// A second process of the first binary, sharing its symbols as the
	// agent does.
	twin := startTarget(t, "local")
	twin.bin = xs[0].bin
	xs = append(xs, twin)
	before := openFDs(t)
	for _, x := range xs {
		if x.s, err = prog.Add(x.p.PID(), x.bin, x.sym.Bias()); err != nil {
			t.Fatal(err)
		}
	}
	if n := prog.Tables(); n != 2 {
		t.Errorf("%d step tables for 2 binaries", n)
	}
	for i, x := range xs {
		answer, r := x.run(t, "mix 500 2000 60000")
		if len(answer) != 3 {
			t.Fatalf("target %d said %q", i, answer)
		}
		fn, _ := x.topSite(r)
		t.Logf("target %d: %d samples, %d map, top site %s", i, r.Samples, r.Map, fn)
		if r.Samples < atLeast(150) || r.Map == 0 || fn != "main.lookups" {
			t.Errorf("target %d: %d samples, %d in maps, top site %q, in 0.5s of CPU time", i, r.Samples, r.Map, fn)
		}
		for j, y := range xs {
			if j == i {
				continue
			}
			idle, err := y.s.Read()
			if err != nil {
				t.Fatal(err)
			}
			// A target that has not run yet was idle all along.
			if j > i && idle.Samples > 20 {
				t.Errorf("target %d idle while %d ran: %d samples", j, i, idle.Samples)
			}
		}
	}
	// Stopping the first process of the shared binary keeps its table for
	// the twin; the counts stay readable.
	final, _ := xs[0].s.Read()
	if err := xs[0].s.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := xs[0].s.Read(); err != nil || r.Samples != final.Samples {
		t.Errorf("read after close: %+v, %v; want %d samples", r, err, final.Samples)
	}
	if n := prog.Tables(); n != 2 {
		t.Errorf("%d step tables with one process of each binary left", n)
	}
	if _, r := twin.run(t, "mix 300 2000 60000"); r.Map == 0 {
		t.Errorf("the twin is no longer sampled: %+v", r)
	}
	for _, x := range xs[1:] {
		if err := x.s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := prog.Tables(); n != 0 {
		t.Errorf("%d step tables left with no target", n)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d file descriptors open after the targets closed, %d before", after, before)
	}
}
