package probes

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestAttachModes attaches the mutex probes to a real target both ways —
// one uprobe_multi link per program, and one perf-event link per site, the
// fallback for kernels before 6.6 — and checks that every probe fires.
func TestAttachModes(t *testing.T) {
	testtarget.NeedRoot(t)
	exe, bin, off := openTarget(t, "../../testdata/contention")
	for _, multi := range []bool{true, false} {
		name := map[bool]string{true: "multi", false: "perf-event"}[multi]
		t.Run(name, func(t *testing.T) {
			if multi {
				testtarget.NeedFeature(t, preflight.KernelUprobeMulti, features.HaveBPFLinkUprobeMulti())
			} else {
				testtarget.NeedFeature(t, preflight.KernelPerfLink, preflight.ProbeFeatures().PerfLink)
			}
			p := testtarget.Start(t, exe)
			proc, err := target.Find(p.PID())
			if err != nil {
				t.Fatal(err)
			}
			defer proc.Close()
			objs, err := LoadMutex(off, multi)
			if err != nil {
				t.Fatal(err)
			}
			defer objs.Close()
			plan, err := PlanMutex(bin, objs)
			if err != nil {
				t.Fatal(err)
			}
			links, err := Attach(proc.ExeLink, p.PID(), multi, plan.Probes)
			if err != nil {
				t.Fatal(err)
			}
			p.Send(t, "run 500")
			p.Line(t, 30*time.Second)
			if err := links.Close(); err != nil {
				t.Fatal(err)
			}
			for i, fn := range plan.Names {
				if hitCount(t, objs.Hits, plan.Base+i) == 0 {
					t.Errorf("%s: no hits", fn)
				}
			}
		})
	}
}

// openTarget builds the test target in dir with the local Go, and returns
// its path, its symbols (closed with the test) and its goid offset.
func openTarget(t *testing.T, dir string) (string, *symbols.Binary, uint64) {
	t.Helper()
	exe := testtarget.Build(t, dir, "local")
	bin, err := symbols.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bin.Close() })
	off, _, err := bin.GoidOffset()
	if err != nil {
		t.Fatal(err)
	}
	return exe, bin, off
}

// hitCount is a probe's hits in a collection's per-CPU hits table, summed
// over the CPUs.
func hitCount(t *testing.T, hits *ebpf.Map, index int) uint64 {
	t.Helper()
	var per []uint64
	if err := hits.Lookup(uint32(index), &per); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}
