package collector

import (
	"encoding/binary"
	"fmt"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/report"
)

// A sharded map — N maps of one type, each with its own mutex, the key's
// hash picking the map, as concurrent-map libraries build it — is told from
// other maps of one type by what its shards share:
//   - they are used at the same call sites (classes of one type that share a
//     call site are one candidate);
//   - they live as long as the trace: every map of the candidate is still
//     the map first seen at its address (no other map was made there, none
//     was cleared), with minShardOps operations each on average over the
//     trace (an estimate when the map probes were duty-cycled: scaled from
//     those seen in their windows, of which at least minShardSeen each);
//   - the goroutines using them hop between them, key by key: hopShare of
//     the operations are by a goroutine whose last operation on a map of
//     that type was on another one. A map per request, or per connection,
//     stays with its goroutine.
const (
	minShards   = 2
	maxShards   = 1024
	minShardOps = 100
	// minShardSeen is 5, not more: where a probe hit costs tens of
	// microseconds and a contended sharded map's mutex probes spend the
	// budget first, a trace's windows saw 310–420 operations of a
	// 32-shard map; its hops, 97% of them, say what it is.
	minShardSeen = 5
	hopShare     = 0.25
)

// shardGroup is the classes of one sharded map and its shards.
type shardGroup struct {
	classes []bpf.MapsClassKey
	shards  []shardMap
}

type shardMap struct {
	addr, ops uint64
}

// shardGroups finds the sharded maps among the classes that are not named
// globals or sync.Maps, and returns each member class's group.
func (c *Maps) shardGroups(classes map[bpf.MapsClassKey]*bpf.MapsClassStat, skip func(bpf.MapsClassKey) bool) (map[bpf.MapsClassKey]*shardGroup, error) {
	// The maps of each class, as first seen at their addresses.
	maps := map[bpf.MapsClassKey][]shardMap{}
	var (
		addr uint64
		mi   bpf.MapsMapInfo
	)
	it := c.Maps.MapClasses.Iterate()
	for it.Next(&addr, &mi) {
		if st := classes[mi.Class]; st != nil && st.Maps <= maxShards && !skip(mi.Class) {
			maps[mi.Class] = append(maps[mi.Class], shardMap{addr, mi.Ops})
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map addresses: %w", err)
	}
	// Classes of one type that share a call site are one candidate.
	parent := map[bpf.MapsClassKey]bpf.MapsClassKey{}
	var find func(k bpf.MapsClassKey) bpf.MapsClassKey
	find = func(k bpf.MapsClassKey) bpf.MapsClassKey {
		if p, ok := parent[k]; ok && p != k {
			r := find(p)
			parent[k] = r
			return r
		}
		return k
	}
	type typeSite struct{ typ, caller uint64 }
	first := map[typeSite]bpf.MapsClassKey{}
	var (
		sk bpf.MapsSiteKey
		sv bpf.MapsSiteVal
	)
	sit := c.Maps.Sites.Iterate()
	for sit.Next(&sk, &sv) {
		if maps[sk.Class] == nil {
			continue
		}
		ts := typeSite{sk.Class.Type, sk.Caller}
		if f, ok := first[ts]; ok {
			if a, b := find(f), find(sk.Class); a != b {
				parent[b] = a
			}
		} else {
			first[ts] = sk.Class
		}
	}
	if err := sit.Err(); err != nil {
		return nil, fmt.Errorf("read map sites: %w", err)
	}
	groups := map[bpf.MapsClassKey]*shardGroup{}
	for k := range maps {
		r := find(k)
		g := groups[r]
		if g == nil {
			g = &shardGroup{}
			groups[r] = g
		}
		g.classes = append(g.classes, k)
		g.shards = append(g.shards, maps[k]...)
	}
	out := map[bpf.MapsClassKey]*shardGroup{}
	for _, g := range groups {
		var seen, ops, hops, observed uint64
		for _, k := range g.classes {
			st := classes[k]
			seen += st.Maps
			hops += st.Hops
			for _, n := range st.Ops {
				ops += n
			}
		}
		for _, s := range g.shards {
			observed += s.ops
		}
		n := uint64(len(g.shards))
		if n < minShards || n > maxShards || seen != n || c.scale(observed) < minShardOps*n || observed < minShardSeen*n ||
			float64(hops) < hopShare*float64(ops) {
			continue
		}
		for _, k := range g.classes {
			out[k] = g
		}
	}
	return out, nil
}

// sharded describes a sharded map's shards from their counts and the row's
// hot keys.
func (c *Maps) sharded(g *shardGroup, hot []report.HotKey) *report.Sharded {
	shards := make([]report.Shard, 0, len(g.shards))
	for _, s := range g.shards {
		shards = append(shards, report.Shard{Address: fmt.Sprintf("%#x", s.addr), Ops: c.scale(s.ops)})
	}
	return report.NewSharded(shards, hot)
}

// ShardMutexes gives each shard of the sharded maps its contended mutex,
// found next to the shard's map pointer in the target's memory (a shard is
// a struct of a mutex and a map, in either order), and that mutex's waits.
// read reads the target's memory; a shard whose mutex was not contended, or
// a target that cannot be read any more, has none.
func ShardMutexes(maps []report.Map, mutexes []report.Mutex, read func(addr uint64, buf []byte) error) {
	type waits struct{ contentions, ns uint64 }
	byAddr := map[string]*waits{}
	var addrs []string
	for _, m := range mutexes {
		w := byAddr[m.Address]
		if w == nil {
			w = &waits{}
			byAddr[m.Address] = w
			addrs = append(addrs, m.Address)
		}
		w.contentions += m.Contentions
		w.ns += m.WaitNS
	}
	shards := map[uint64]*report.Shard{}
	for i := range maps {
		if sh := maps[i].Sharded; sh != nil {
			for j := range sh.Shards {
				var a uint64
				if _, err := fmt.Sscanf(sh.Shards[j].Address, "0x%x", &a); err == nil {
					shards[a] = &sh.Shards[j]
				}
			}
		}
	}
	if len(shards) == 0 {
		return
	}
	// The map field sits within a word or four of its mutex (an RWMutex
	// is three words).
	const before, span = 32, 32 + 24 + 32
	buf := make([]byte, span)
	for _, a := range addrs {
		var mu uint64
		if _, err := fmt.Sscanf(a, "0x%x", &mu); err != nil || mu < before {
			continue
		}
		if read(mu-before, buf) != nil {
			continue
		}
		for off := 0; off+8 <= span; off += 8 {
			if s := shards[binary.LittleEndian.Uint64(buf[off:])]; s != nil && s.Mutex == "" {
				w := byAddr[a]
				s.Mutex, s.Contentions, s.WaitNS = a, w.contentions, w.ns
				break
			}
		}
	}
}
