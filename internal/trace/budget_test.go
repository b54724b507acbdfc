package trace_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
	"github.com/maptrace/maptrace/internal/trace"
)

// TestMutexDutyCycled traces the contention target under a budget its mutex
// probes alone exceed: they are attached in windows, the report says its
// mutex figures are scaled estimates, and the scaled total still tracks the
// runtime's own /sync/mutex/wait/total:seconds.
func TestMutexDutyCycled(t *testing.T) {
	testtarget.NeedRoot(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Tens of thousands of parks a second at a microsecond or more a hit
	// is well over 1% of the target's CPU.
	sess, err := trace.Start(trace.Options{PID: p.PID(), Mutex: true, Overhead: 1, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	// Six seconds: the windows cover a few tenths of a percent of them,
	// where a hit costs tens of microseconds.
	p.Send(t, "run 6000")
	line := p.Line(t, time.Minute)
	cancel()
	r, err := sess.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := r.Overhead
	if !o.MutexCountsScaled || o.MutexSamplingFraction <= 0 || o.MutexSamplingFraction >= 0.9 {
		t.Fatalf("mutex counts scaled %v, mutex probes attached %.3f of the time: want duty-cycled", o.MutexCountsScaled, o.MutexSamplingFraction)
	}
	if o.Ratio > 3*o.Budget {
		t.Errorf("estimated cost %.4f of the target's CPU at a budget of %.4f", o.Ratio, o.Budget)
	}
	said := false
	for _, f := range r.Findings {
		said = said || strings.HasPrefix(f.Title, "mutex figures are estimates")
	}
	if !said {
		t.Errorf("no finding says the mutex figures are estimates: %+v", r.Findings)
	}
	if m := findMutex(r, "main.mu", report.KindMutex); m == nil || m.Contentions == 0 || !stackHas(m.Waiters, "main.lockMutex") {
		t.Errorf("main.mu not found with its waiters: %+v", r.Mutexes)
	}
	var total uint64
	for _, m := range r.Mutexes {
		total += m.WaitNS
	}
	if f := strings.Fields(line); len(f) == 2 && f[1] != "none" {
		truth, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		ratio := float64(total) / 1e9 / truth
		t.Logf("attached %.1f%% of the time: scaled total %.3fs, runtime/metrics %.3fs, ratio %.3f", 100*o.MutexSamplingFraction, float64(total)/1e9, truth, ratio)
		// A few windows sample the waits: looser than the 15% of the
		// always-attached probes.
		if math.Abs(ratio-1) > 0.35 {
			t.Errorf("scaled total wait %.3fs vs runtime's %.3fs: ratio %.3f, want within 35%%", float64(total)/1e9, truth, ratio)
		}
	}
}

// cpuTicks is a process's user and system CPU time, from /proc/PID/stat.
func cpuTicks(t *testing.T, pid int) (user, system float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return u, k
}

// TestBurstCut: a target idle under the map probes (attached all the time,
// spending nothing) that starts a tight map loop must be cut within a
// window, and the probes' share of its CPU time after that stay near the
// budget. The share is measured apart from maptrace: a probe hit is kernel
// time of the target, which does no system calls in the loop.
func TestBurstCut(t *testing.T) {
	testtarget.NeedRoot(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", "local"))
	loop := func(ms int) (user, system float64) {
		u0, k0 := cpuTicks(t, p.PID())
		p.Send(t, "loop "+strconv.Itoa(ms))
		if l := p.Line(t, time.Minute); !strings.HasPrefix(l, "loop ") {
			t.Fatalf("target said %q", l)
		}
		u1, k1 := cpuTicks(t, p.PID())
		return u1 - u0, k1 - k0
	}
	// The loop's own kernel share, untraced: the machine's noise in it
	// (interrupts, a hypervisor's) is in the traced loops too.
	bu, bk := loop(2000)
	base := bk / (bu + bk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, err := trace.Start(trace.Options{PID: p.PID(), Mutex: true, Maps: true, Overhead: 5, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // idle: the map windows last their whole periods
	before, err := sess.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fu, fk := loop(1000)
	ru, rk := loop(3000)
	after, err := sess.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := sess.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	first := fk/(fu+fk) - base
	rest := rk/(ru+rk) - base
	hits := after.Overhead.ProbeHits - before.Overhead.ProbeHits
	est := (after.Overhead.EstCostSeconds - before.Overhead.EstCostSeconds) / (after.CPU.Seconds - before.CPU.Seconds)
	t.Logf("kernel share of the target's CPU above the untraced loop's %.1f%%: %.1f%% in the burst's first second, %.1f%% in the next three; %d probe hits, estimate %.1f%%",
		100*base, 100*first, 100*rest, hits, 100*est)
	if hits == 0 {
		t.Fatal("no probe hits in the burst: the map probes were not attached")
	}
	// Uncut, the probes would take most of the loop's time (a hit costs
	// hundreds of lookups). The shares are from tick-based accounting, a
	// hundred ticks a second, on a machine others share: a margin for both.
	if first > 0.15 {
		t.Errorf("probes took %.1f%% of the target's CPU in the burst's first second at a 5%% budget", 100*first)
	}
	if rest > 0.10 {
		t.Errorf("probes took %.1f%% of the target's CPU in the burst's next three seconds at a 5%% budget", 100*rest)
	}
	if est > 0.065 {
		t.Errorf("the report estimates the burst cost %.1f%% of the target's CPU at a 5%% budget", 100*est)
	}
}

// TestSamplerCharged: sampling the target's CPU clock costs it an interrupt
// a sample, up to tens of microseconds in a VM: at the agent's 1% budget
// the samples come only as often as a quarter of the budget pays for, the
// report counts their cost in its estimate, and the estimate stays within
// the budget.
func TestSamplerCharged(t *testing.T) {
	testtarget.NeedRoot(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", "local"))
	r, answer := traceCmd(t, p, trace.Options{Mutex: true, Maps: true, Overhead: 1}, "loop 3000", time.Minute)
	if !strings.HasPrefix(answer, "loop ") {
		t.Fatalf("target said %q", answer)
	}
	o, c := r.Overhead, r.CPU
	share := o.SamplerSeconds / c.Seconds
	t.Logf("%d samples (%d in map code) at %d Hz, %.1fµs each (the program's %.1fµs): %.3f%% of the target's CPU time; estimate %.3f%%",
		c.Samples, c.MapSamples, c.Hz, o.SampleCostNS/1e3, o.SampleProgramNS/1e3, 100*share, 100*o.Ratio)
	if c.Samples == 0 || o.SampleCostNS <= 0 {
		t.Fatalf("no samples, or no cost for them: %+v, %+v", c, o)
	}
	if got := float64(c.Samples) * o.SampleCostNS / 1e9; math.Abs(got-o.SamplerSeconds) > 1e-6+o.SamplerSeconds/100 {
		t.Errorf("%d samples at %.0fns cost %.6fs, the report says %.6fs", c.Samples, o.SampleCostNS, got, o.SamplerSeconds)
	}
	// The program runs on every one of the target's samples and times
	// itself; the interrupt around it costs more than the program.
	if o.SampleProgramNS <= 0 || o.SampleProgramNS >= o.SampleCostNS {
		t.Errorf("the program's part of a sample's cost is %.0fns of %.0fns", o.SampleProgramNS, o.SampleCostNS)
	}
	if o.EstCostSeconds < o.SamplerSeconds {
		t.Errorf("the estimate (%.6fs) leaves out the samples' cost (%.6fs)", o.EstCostSeconds, o.SamplerSeconds)
	}
	// The rate fits a quarter of the budget at the interrupt's cost
	// measured at the start; in the target a sample cost up to twice that
	// (the program's own time, cold caches, a busy machine), which the
	// estimate counts: at most half the budget.
	if c.Hz > cpuprof.MinHz && share > 0.5*o.Budget {
		t.Errorf("samples at %d Hz took %.3f%% of the target's CPU time at a %.0f%% budget, want at most half of it", c.Hz, 100*share, 100*o.Budget)
	}
	if o.Ratio > o.Budget*1.1 {
		t.Errorf("estimate %.3f%% at a %.0f%% budget", 100*o.Ratio, 100*o.Budget)
	}
}
