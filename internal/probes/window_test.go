package probes

import (
	"testing"
	"time"

	"github.com/cilium/ebpf/features"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/target"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestMapWindowClosed: with window_closed set, as while maptrace detaches
// the map probes, every hit is counted for its cost and none records; once
// cleared, hits record again, and recorded_hits counts them.
func TestMapWindowClosed(t *testing.T) {
	testtarget.NeedRoot(t)
	testtarget.NeedFeature(t, preflight.KernelUprobeMulti, features.HaveBPFLinkUprobeMulti())
	exe, bin, off := openTarget(t, "../../testdata/maps")
	objs, err := LoadMaps(off, LayoutFor(bin.GoVersion), true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	plan, _, err := PlanMaps(bin, objs)
	if err != nil {
		t.Fatal(err)
	}
	p := testtarget.Start(t, exe)
	proc, err := target.Find(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	links, err := Attach(proc.ExeLink, p.PID(), true, plan.Probes)
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	hits := func() uint64 {
		var n uint64
		for i := range plan.Names {
			n += hitCount(t, objs.Hits, plan.Base+i)
		}
		return n
	}
	recorded := func() uint64 { return hitCount(t, objs.RecordedHits, 0) }
	classOps := func() uint64 {
		var n uint64
		var k bpf.MapsClassKey
		var v bpf.MapsClassStat
		it := objs.ClassStats.Iterate()
		for it.Next(&k, &v) {
			for _, o := range v.Ops {
				n += o
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	loop := func() {
		p.Send(t, "loop 50")
		p.Line(t, 30*time.Second)
	}

	if err := objs.WindowClosed.Set(uint32(1)); err != nil {
		t.Fatal(err)
	}
	h0 := hits()
	loop()
	if h := hits() - h0; h == 0 || recorded() != 0 || classOps() != 0 {
		t.Fatalf("window closed: %d hits, %d recorded, %d operations in class_stats; want hits, none recorded", h, recorded(), classOps())
	}
	if err := objs.WindowClosed.Set(uint32(0)); err != nil {
		t.Fatal(err)
	}
	h0 = hits()
	loop()
	h, r, ops := hits()-h0, recorded(), classOps()
	t.Logf("window open: %d hits, %d recorded, %d operations", h, r, ops)
	if r == 0 || r > h || ops == 0 || ops > r {
		t.Errorf("window open: %d hits, %d recorded, %d operations in class_stats; want all recorded, the operations among them", h, r, ops)
	}
}
