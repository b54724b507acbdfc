package trace_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
	"github.com/maptrace/maptrace/internal/trace"
)

// cpuTrace traces p with opts while it answers cmd, and returns the report.
func cpuTrace(t *testing.T, p *testtarget.Proc, opts trace.Options, cmd string) *report.Report {
	t.Helper()
	// millions of probed lookups take minutes in an emulated guest
	r, answer := traceCmd(t, p, opts, cmd, time.Duration(testtarget.Stretch(60000))*time.Millisecond)
	if !strings.HasPrefix(answer, strings.Fields(cmd)[0]+" ") {
		t.Fatalf("target said %q", answer)
	}
	return r
}

// TestMapCPUWithProbes checks that the map CPU time stays what it is without
// map probes when every map operation is probed: a probe's cost is kernel
// time at the map function's entry, and kernel samples are not map time.
// Each lookup hashes and compares a 16 KiB key, so that the map work is
// comparable to the probe's cost and measurable in a few seconds.
func TestMapCPUWithProbes(t *testing.T) {
	testtarget.NeedAttach(t)
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/cpusplit", "local"))
	// Enough CPU time for 100+ map samples on a busy machine; an emulated
	// guest's lookups are slower, its probes far slower, and more so when
	// it emulates another instruction set.
	lookups := 2000000
	switch {
	case testtarget.Emulated() && runtime.GOARCH != "amd64":
		lookups = 200000
	case testtarget.Emulated():
		lookups = 800000
	}
	cmd := fmt.Sprintf("fixed %d", lookups)
	// Mutex probes only: the sampler runs, no map probe does. The unprobed
	// run is repeated after the probed one, and the probed map time is
	// compared with the range of the two, so that a machine that is slower
	// for one run (a first run, a busy neighbour) does not decide the test.
	plain := cpuTrace(t, p, trace.Options{Mutex: true}, cmd)
	probed := cpuTrace(t, p, trace.Options{Mutex: true, Maps: true, Overhead: 100}, cmd)
	again := cpuTrace(t, p, trace.Options{Mutex: true}, cmd)
	for i, r := range []*report.Report{plain, probed, again} {
		c := r.CPU
		top := ""
		if len(c.Sites) > 0 {
			top = c.Sites[0].Frame
		}
		t.Logf("%s: %.2fs CPU (%d samples at %d Hz), %.2fs in maps (%.2f of it), probes %d hits, est. %.2fs; top site %s",
			[]string{"no map probes", "every map operation probed", "no map probes again"}[i], c.Seconds, c.Samples, c.Hz, c.MapSeconds, c.MapSeconds/c.Seconds, r.Overhead.ProbeHits, r.Overhead.EstCostSeconds, top)
		if c.Hz == 0 || c.MapSamples < 100 {
			t.Fatalf("too few map samples: %+v", c)
		}
		if !strings.HasPrefix(top, "main.main ") || c.Sites[0].Samples < c.MapSamples*9/10 {
			t.Errorf("top map CPU site %q with %d of %d samples, want main.main's lookup loop with 90%%+", top, c.Sites[0].Samples, c.MapSamples)
		}
	}
	lo, hi := min(plain.CPU.MapSeconds, again.CPU.MapSeconds), max(plain.CPU.MapSeconds, again.CPU.MapSeconds)
	if probed.Overhead.ProbeHits < uint64(lookups) || probed.Overhead.EstCostSeconds < lo/4 {
		t.Fatalf("map probes did not cost enough to tell: %d hits, est. %.2fs", probed.Overhead.ProbeHits, probed.Overhead.EstCostSeconds)
	}
	// The probes' own cost must not show up as map time: what map time gains
	// with every operation probed stays small beside what the probes cost.
	extra := probed.CPU.MapSeconds - hi
	if ratio := probed.CPU.MapSeconds / lo; ratio < 0.75 || extra > probed.Overhead.EstCostSeconds/4 {
		t.Errorf("map CPU %.2fs with every operation probed, %.2f–%.2fs without (×%.2f of the lower); the probes cost est. %.2fs",
			probed.CPU.MapSeconds, lo, hi, ratio, probed.Overhead.EstCostSeconds)
	}
}
