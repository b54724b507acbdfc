package report

import (
	"math"
	"sort"
	"strings"
)

// Diff is what one trace saw between two of its cumulative reports, prev
// taken before cur: a report whose window runs from prev's end to cur's,
// whose counts are cur's less prev's, and which leaves out the rows with
// nothing new. What cannot be subtracted is cur's, as of the window's end:
// a mutex's longest wait and its count of goroutines, a map row's
// goroutines, writers and maps, the races' stacks, the map sampling
// fraction. A mutex's p50 and p99 come from the window's histogram. The
// findings are left empty for the caller to analyze again.
func Diff(prev, cur *Report) *Report {
	d := *cur
	d.Findings = nil
	d.Window = Window{Start: prev.Window.End, End: cur.Window.End, Seconds: max(0, cur.Window.Seconds-prev.Window.Seconds)}
	d.Overhead = diffOverhead(prev.Overhead, cur.Overhead)
	d.Mutexes = diffMutexes(prev.Mutexes, cur.Mutexes)
	d.Maps = diffMaps(prev.Maps, cur.Maps)
	d.Races = diffRaces(prev.Races, cur.Races)
	d.Goroutines = diffGoroutines(prev.Goroutines, cur.Goroutines)
	d.CPU = diffCPU(prev.CPU, cur.CPU)
	return &d
}

// sub is a-b for counts that only grow, 0 should b be larger (a row that
// left a top-N list and came back).
func sub(a, b uint64) uint64 { return a - min(a, b) }

func stackKey(s []string) string { return strings.Join(s, "\n") }

func diffOverhead(p, c Overhead) Overhead {
	d := c
	d.ProbeHits = sub(c.ProbeHits, p.ProbeHits)
	d.EstCostSeconds = max(0, c.EstCostSeconds-p.EstCostSeconds)
	d.Lost = Lost{Stacks: sub(c.Lost.Stacks, p.Lost.Stacks), InFlight: sub(c.Lost.InFlight, p.Lost.InFlight),
		TablesFull: sub(c.Lost.TablesFull, p.Lost.TablesFull)}
	d.LostEvents = d.Lost.Total()
	// The ratios are cost over the target's CPU time, which each report
	// holds as cost / ratio.
	if p.Ratio > 0 && c.Ratio > 0 {
		if used := c.EstCostSeconds/c.Ratio - p.EstCostSeconds/p.Ratio; used > 0 {
			d.Ratio = d.EstCostSeconds / used
			d.MutexRatio = (c.MutexRatio*c.EstCostSeconds/c.Ratio - p.MutexRatio*p.EstCostSeconds/p.Ratio) / used
			d.MutexRatio = max(0, min(d.MutexRatio, d.Ratio))
		}
	}
	return d
}

func diffMutexes(prev, cur []Mutex) []Mutex {
	key := func(m Mutex) string { return m.Address + " " + m.Kind + " " + m.Name }
	before := map[string]Mutex{}
	for _, m := range prev {
		before[key(m)] = m
	}
	var out []Mutex
	for _, m := range cur {
		p := before[key(m)]
		d := m
		d.Contentions = sub(m.Contentions, p.Contentions)
		d.WaitNS = sub(m.WaitNS, p.WaitNS)
		if d.Contentions == 0 && d.WaitNS == 0 {
			continue
		}
		d.Histogram = make([]uint64, len(m.Histogram))
		for i, n := range m.Histogram {
			if i < len(p.Histogram) {
				n = sub(n, p.Histogram[i])
			}
			d.Histogram[i] = n
		}
		d.P50NS = Percentile(d.Histogram, 0.50, m.MaxWaitNS)
		d.P99NS = Percentile(d.Histogram, 0.99, m.MaxWaitNS)
		waited := map[string]Waiter{}
		for _, w := range p.Waiters {
			waited[stackKey(w.Stack)] = w
		}
		d.Waiters = nil
		for _, w := range m.Waiters {
			o := waited[stackKey(w.Stack)]
			w.Contentions, w.WaitNS = sub(w.Contentions, o.Contentions), sub(w.WaitNS, o.WaitNS)
			if w.Contentions > 0 || w.WaitNS > 0 {
				d.Waiters = append(d.Waiters, w)
			}
		}
		held := map[string]uint64{}
		for _, h := range p.Holders {
			held[stackKey(h.Stack)] = h.Count
		}
		d.Holders = nil
		for _, h := range m.Holders {
			if h.Count = sub(h.Count, held[stackKey(h.Stack)]); h.Count > 0 {
				d.Holders = append(d.Holders, h)
			}
		}
		out = append(out, d)
	}
	return out
}

func diffMaps(prev, cur []Map) []Map {
	before := map[string]Map{}
	for _, m := range prev {
		before[m.ID()] = m
	}
	var out []Map
	for _, m := range cur {
		p := before[m.ID()]
		d := m
		d.Reads, d.Writes = sub(m.Reads, p.Reads), sub(m.Writes, p.Writes)
		d.Deletes, d.Iterations = sub(m.Deletes, p.Deletes), sub(m.Iterations, p.Iterations)
		d.CPUSeconds = max(0, m.CPUSeconds-p.CPUSeconds)
		if d.Reads+d.Writes+d.Deletes+d.Iterations == 0 && d.CPUSeconds == 0 {
			continue
		}
		d.InterleavedWrites = sub(m.InterleavedWrites, p.InterleavedWrites)
		if d.InterleavedWrites == 0 {
			d.Interleave = nil
		}
		if m.SyncMap != nil {
			var ps SyncMapStats
			if p.SyncMap != nil {
				ps = *p.SyncMap
			}
			d.SyncMap = &SyncMapStats{Misses: sub(m.SyncMap.Misses, ps.Misses), Promotions: sub(m.SyncMap.Promotions, ps.Promotions),
				DirtyCopies: sub(m.SyncMap.DirtyCopies, ps.DirtyCopies)}
		}
		keys := map[string]uint64{}
		for _, k := range p.HotKeys {
			keys[k.Key] = k.Count
		}
		d.HotKeys = nil
		for _, k := range m.HotKeys {
			if k.Count = sub(k.Count, keys[k.Key]); k.Count > 0 {
				d.HotKeys = append(d.HotKeys, k)
			}
		}
		if m.Sharded != nil {
			d.Sharded = diffShards(p.Sharded, m.Sharded, d.HotKeys)
		}
		if m.Snapshots != nil {
			var ps Snapshots
			if p.Snapshots != nil {
				ps = *p.Snapshots
			}
			d.Snapshots = &Snapshots{Published: sub(m.Snapshots.Published, ps.Published), Entries: sub(m.Snapshots.Entries, ps.Entries)}
		}
		sites := map[string]uint64{}
		for _, s := range p.Sites {
			sites[s.Op+"\n"+stackKey(s.Stack)] = s.Count
		}
		d.Sites = nil
		for _, s := range m.Sites {
			if s.Count = sub(s.Count, sites[s.Op+"\n"+stackKey(s.Stack)]); s.Count > 0 {
				d.Sites = append(d.Sites, s)
			}
		}
		out = append(out, d)
	}
	return out
}

func diffRaces(prev, cur []Race) []Race {
	before := map[string]uint64{}
	for _, r := range prev {
		before[r.Map+" "+r.Kind] = r.Count
	}
	var out []Race
	for _, r := range cur {
		if r.Count = sub(r.Count, before[r.Map+" "+r.Kind]); r.Count > 0 {
			out = append(out, r)
		}
	}
	return out
}

func diffGoroutines(prev, cur []Goroutine) []Goroutine {
	before := map[int64]Goroutine{}
	for _, g := range prev {
		before[g.Goid] = g
	}
	var out []Goroutine
	for _, g := range cur {
		p := before[g.Goid]
		g.Contentions, g.WaitNS, g.MapOps = sub(g.Contentions, p.Contentions), sub(g.WaitNS, p.WaitNS), sub(g.MapOps, p.MapOps)
		if g.Contentions > 0 || g.WaitNS > 0 || g.MapOps > 0 {
			g.HotKeys = nil // per goroutine keys are not kept apart by window
			out = append(out, g)
		}
	}
	return out
}

func diffCPU(p, c CPU) CPU {
	d := c
	d.Samples, d.MapSamples = sub(c.Samples, p.Samples), sub(c.MapSamples, p.MapSamples)
	d.Seconds, d.MapSeconds = 0, 0
	if c.Hz > 0 {
		d.Seconds = float64(d.Samples) / float64(c.Hz)
		d.MapSeconds = float64(d.MapSamples) / float64(c.Hz)
	}
	before := map[string]uint64{}
	for _, s := range p.Sites {
		before[s.Frame] = s.Samples
	}
	d.Sites = nil
	for _, s := range c.Sites {
		if s.Samples = sub(s.Samples, before[s.Frame]); s.Samples > 0 {
			if c.Hz > 0 {
				s.Seconds = float64(s.Samples) / float64(c.Hz)
			}
			d.Sites = append(d.Sites, s)
		}
	}
	return d
}

// Percentile estimates the q-quantile of a log2 histogram (bucket i holds
// values in [2^i, 2^(i+1))), interpolating inside the bucket; never above
// maxNS.
func Percentile(hist []uint64, q float64, maxNS uint64) uint64 {
	var total uint64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range hist {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo := math.Ldexp(1, i)
			v := uint64(lo + lo*(rank-cum)/float64(n))
			return min(v, maxNS)
		}
		cum += float64(n)
	}
	return maxNS
}

// diffShards is a sharded map's shards over the interval, their balance
// worked out again from its counts.
func diffShards(prev, cur *Sharded, hot []HotKey) *Sharded {
	before := map[string]Shard{}
	if prev != nil {
		for _, s := range prev.Shards {
			before[s.Address] = s
		}
	}
	shards := make([]Shard, 0, len(cur.Shards))
	for _, s := range cur.Shards {
		p := before[s.Address]
		s.Ops, s.Contentions, s.WaitNS = sub(s.Ops, p.Ops), sub(s.Contentions, p.Contentions), sub(s.WaitNS, p.WaitNS)
		shards = append(shards, s)
	}
	sorted := append([]HotKey(nil), hot...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Count > sorted[j].Count })
	return NewSharded(shards, sorted)
}
