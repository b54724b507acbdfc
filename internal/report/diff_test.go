package report

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stackA, stackB := []string{"main.a (a.go:1)"}, []string{"main.b (b.go:2)"}
	prev := &Report{
		Version: Version,
		Target:  Target{PID: 7, Exe: "/bin/app"},
		Window:  Window{Start: t0, End: t0.Add(10 * time.Second), Seconds: 10},
		Overhead: Overhead{ProbeHits: 100, EstCostSeconds: 0.01, Ratio: 0.01, MutexRatio: 0.005, MapSamplingFraction: 0.5,
			Lost: Lost{Stacks: 1}, LostEvents: 1},
		Mutexes: []Mutex{
			{Address: "0x1", Name: "main.mu", Kind: KindMutex, Contentions: 10, WaitNS: 1000, MaxWaitNS: 500,
				Histogram: []uint64{0, 4, 6},
				Waiters:   []Waiter{{Stack: stackA, Contentions: 10, WaitNS: 1000}},
				Holders:   []Holder{{Stack: stackB, Count: 10}}},
			{Address: "0x2", Name: "main.idle", Kind: KindMutex, Contentions: 3, WaitNS: 30},
		},
		Maps: []Map{
			{Name: "main.m", Reads: 100, Writes: 10, CPUSeconds: 0.5, InterleavedWrites: 2, Interleave: &Interleave{Count: 2},
				HotKeys: []HotKey{{Key: "k", Count: 50}}, Sites: []Site{{Stack: stackA, Op: OpRead, Count: 100}}},
			{Name: "main.still", Reads: 5},
		},
		Races:      []Race{{Map: "0x9", Kind: "write/write", Count: 1}},
		Goroutines: []Goroutine{{Goid: 1, Contentions: 10, WaitNS: 1000}},
		CPU:        CPU{Hz: 100, Samples: 200, Seconds: 2, MapSamples: 50, MapSeconds: 0.5, Sites: []CPUSite{{Frame: "main.a", Samples: 50, Seconds: 0.5}}},
		Findings:   []Finding{{Title: "old"}},
	}
	cur := &Report{
		Version: Version,
		Target:  Target{PID: 7, Exe: "/bin/app"},
		Window:  Window{Start: t0, End: t0.Add(15 * time.Second), Seconds: 15},
		EndedBy: EndedByTargetExit,
		Overhead: Overhead{ProbeHits: 300, EstCostSeconds: 0.03, Ratio: 0.015, MutexRatio: 0.0075, MapSamplingFraction: 0.25,
			Lost: Lost{Stacks: 1, TablesFull: 2}, LostEvents: 3},
		Mutexes: []Mutex{
			{Address: "0x1", Name: "main.mu", Kind: KindMutex, Contentions: 14, WaitNS: 1800, MaxWaitNS: 900, Goroutines: 4,
				Histogram: []uint64{0, 4, 6, 4},
				Waiters:   []Waiter{{Stack: stackA, Contentions: 12, WaitNS: 1200}, {Stack: stackB, Contentions: 2, WaitNS: 600}},
				Holders:   []Holder{{Stack: stackB, Count: 14}}},
			{Address: "0x2", Name: "main.idle", Kind: KindMutex, Contentions: 3, WaitNS: 30},
		},
		Maps: []Map{
			{Name: "main.m", Reads: 160, Writes: 10, CPUSeconds: 0.75, InterleavedWrites: 2, Interleave: &Interleave{Count: 2},
				Goroutines: 3, HotKeys: []HotKey{{Key: "k", Count: 60}, {Key: "new", Count: 5}},
				Sites: []Site{{Stack: stackA, Op: OpRead, Count: 160}}},
			{Name: "main.still", Reads: 5},
		},
		Races:      []Race{{Map: "0x9", Kind: "write/write", Count: 3}},
		Goroutines: []Goroutine{{Goid: 1, Contentions: 14, WaitNS: 1800}, {Goid: 2, MapOps: 5}},
		CPU:        CPU{Hz: 100, Samples: 500, Seconds: 5, MapSamples: 80, MapSeconds: 0.8, Sites: []CPUSite{{Frame: "main.a", Samples: 80, Seconds: 0.8}}},
		Findings:   []Finding{{Title: "new"}},
	}
	d := Diff(prev, cur)

	if want := (Window{Start: t0.Add(10 * time.Second), End: t0.Add(15 * time.Second), Seconds: 5}); d.Window != want {
		t.Errorf("window %+v, want %+v", d.Window, want)
	}
	if d.EndedBy != EndedByTargetExit || d.Target != cur.Target || d.Findings != nil {
		t.Errorf("ended by %q, target %+v, findings %v: want cur's, cur's, none", d.EndedBy, d.Target, d.Findings)
	}
	o := d.Overhead
	// CPU time: 0.01/0.01 = 1s, then 0.03/0.015 = 2s; the window's 0.02s
	// of probes over its 1s, of which mutex probes 0.0075×2 - 0.005×1.
	if o.ProbeHits != 200 || !near(o.EstCostSeconds, 0.02) || !near(o.Ratio, 0.02) || !near(o.MutexRatio, 0.01) ||
		o.MapSamplingFraction != 0.25 || o.Lost != (Lost{TablesFull: 2}) || o.LostEvents != 2 {
		t.Errorf("overhead %+v", o)
	}

	if len(d.Mutexes) != 1 {
		t.Fatalf("mutexes %+v, want main.mu only (main.idle waited no more)", d.Mutexes)
	}
	m := d.Mutexes[0]
	wantM := Mutex{Address: "0x1", Name: "main.mu", Kind: KindMutex, Contentions: 4, WaitNS: 800, MaxWaitNS: 900, Goroutines: 4,
		Histogram: []uint64{0, 0, 0, 4}, P50NS: Percentile([]uint64{0, 0, 0, 4}, 0.5, 900), P99NS: Percentile([]uint64{0, 0, 0, 4}, 0.99, 900),
		Waiters: []Waiter{{Stack: stackA, Contentions: 2, WaitNS: 200}, {Stack: stackB, Contentions: 2, WaitNS: 600}},
		Holders: []Holder{{Stack: stackB, Count: 4}}}
	if !reflect.DeepEqual(m, wantM) {
		t.Errorf("mutex\n got %+v\nwant %+v", m, wantM)
	}

	if len(d.Maps) != 1 {
		t.Fatalf("maps %+v, want main.m only", d.Maps)
	}
	mp := d.Maps[0]
	if mp.Reads != 60 || mp.Writes != 0 || !near(mp.CPUSeconds, 0.25) || mp.InterleavedWrites != 0 || mp.Interleave != nil ||
		mp.Goroutines != 3 || !reflect.DeepEqual(mp.HotKeys, []HotKey{{Key: "k", Count: 10}, {Key: "new", Count: 5}}) ||
		!reflect.DeepEqual(mp.Sites, []Site{{Stack: stackA, Op: OpRead, Count: 60}}) {
		t.Errorf("map %+v", mp)
	}
	if len(d.Races) != 1 || d.Races[0].Count != 2 {
		t.Errorf("races %+v, want one with count 2", d.Races)
	}
	if !reflect.DeepEqual(d.Goroutines, []Goroutine{{Goid: 1, Contentions: 4, WaitNS: 800}, {Goid: 2, MapOps: 5}}) {
		t.Errorf("goroutines %+v", d.Goroutines)
	}
	if c := d.CPU; c.Samples != 300 || !near(c.Seconds, 3) || c.MapSamples != 30 || !near(c.MapSeconds, 0.3) ||
		len(c.Sites) != 1 || c.Sites[0].Samples != 30 || !near(c.Sites[0].Seconds, 0.3) {
		t.Errorf("cpu %+v", c)
	}
	// The inputs are untouched.
	if prev.Mutexes[0].Contentions != 10 || cur.Mutexes[0].Waiters[0].Contentions != 12 || cur.Maps[0].HotKeys[0].Count != 60 {
		t.Error("Diff changed its inputs")
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// TestNewSharded: the busiest shard first, the imbalance, and the hot key
// only where, less it, the busiest shard is like the others.
func TestNewSharded(t *testing.T) {
	shards := func(ops ...uint64) []Shard {
		var out []Shard
		for i, n := range ops {
			out = append(out, Shard{Address: fmt.Sprintf("0x%x", 0x1000*(i+1)), Ops: n})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		shards    []Shard
		hot       []HotKey
		busiest   string
		imbalance float64
		hotKey    string
	}{
		// 4 shards of 100, one with key "hot"'s 500 more: 900 ops, mean 225.
		{"hot key", shards(100, 600, 100, 100), []HotKey{{"hot", 500}, {"k1", 20}, {"other", 280}}, "0x2000", 8.0 / 3, "hot"},
		// The same shard busy with many keys, none of them hot: the hash.
		{"uneven hash", shards(100, 600, 100, 100), []HotKey{{"k7", 60}, {"k1", 50}, {"other", 690}}, "0x2000", 8.0 / 3, ""},
		{"even", shards(200, 210, 190, 200), []HotKey{{"hot", 100}, {"other", 700}}, "0x2000", 1.05, ""},
		{"a hot key in an even map is not the cause", shards(100, 100, 100, 100), []HotKey{{"hot", 90}, {"other", 310}}, "0x1000", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := NewSharded(tc.shards, tc.hot)
			if sh.Shards[0].Address != tc.busiest || math.Abs(sh.Imbalance-tc.imbalance) > 1e-9 || sh.HotKey != tc.hotKey {
				t.Errorf("busiest %s, imbalance %v, hot key %q; want %s, %v, %q", sh.Shards[0].Address, sh.Imbalance, sh.HotKey,
					tc.busiest, tc.imbalance, tc.hotKey)
			}
		})
	}
}

// TestDiffSharded: a sharded map's interval has its shards' counts over
// the interval and their balance over it.
func TestDiffSharded(t *testing.T) {
	row := func(ops [2]uint64, wait uint64, hot uint64) Map {
		return Map{Kind: KindSharded, Class: "main.set", Type: "map[string]int", Maps: 2, Reads: ops[0] + ops[1],
			HotKeys: []HotKey{{"hot", hot}, {"other", ops[0] + ops[1] - hot}},
			Sharded: NewSharded([]Shard{{Address: "0x1", Ops: ops[0], Mutex: "0x9", Contentions: wait / 10, WaitNS: wait}, {Address: "0x2", Ops: ops[1]}},
				[]HotKey{{"hot", hot}})}
	}
	prev := &Report{Maps: []Map{row([2]uint64{100, 100}, 1000, 0)}}
	cur := &Report{Maps: []Map{row([2]uint64{1100, 200}, 5000, 900)}}
	d := Diff(prev, cur)
	if len(d.Maps) != 1 || d.Maps[0].Sharded == nil {
		t.Fatalf("diff maps %+v", d.Maps)
	}
	sh := d.Maps[0].Sharded
	// Over the interval: 1000 and 100 ops, the first shard's 900 of key "hot".
	if sh.Shards[0] != (Shard{Address: "0x1", Ops: 1000, Mutex: "0x9", Contentions: 400, WaitNS: 4000}) || sh.Shards[1].Ops != 100 ||
		math.Abs(sh.Imbalance-2000.0/1100) > 1e-9 || sh.HotKey != "hot" {
		t.Errorf("interval shards %+v", sh)
	}
	if cur.Maps[0].Sharded.Shards[0].Ops != 1100 {
		t.Errorf("Diff changed cur: %+v", cur.Maps[0].Sharded)
	}
}
