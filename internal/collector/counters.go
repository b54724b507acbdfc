package collector

import (
	"errors"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
)

// lookuper is a BPF array map.
type lookuper interface {
	Lookup(key, value any) error
}

// Lost reads a collection's error counters (STAT_* in bpf/common.h): lost
// stacks, goroutines with no room to wait in, full tables.
func Lost(stats lookuper) report.Lost {
	sum := func(i uint32) uint64 {
		n, _ := Counter(stats, i)
		return n
	}
	return report.Lost{Stacks: sum(statStackLost), InFlight: sum(statInflightFull), TablesFull: sum(statAggFull),
		Keys: sum(statKeysFull)}
}

// The error counters' slots (STAT_* in bpf/common.h).
const (
	statStackLost    = 0
	statInflightFull = 1
	statAggFull      = 2
	statKeysFull     = 3
)

// Counter is counter i of a per-CPU array of counters, summed over the CPUs.
func Counter(m lookuper, i uint32) (uint64, error) {
	var per []uint64
	if err := m.Lookup(i, &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Hits sums the hit counters of a plan's probes, by probed function.
func Hits(m lookuper, plan *probes.Plan) map[string]uint64 {
	out := map[string]uint64{}
	for i, name := range plan.Names {
		if n, err := Counter(m, uint32(plan.Base+i)); err == nil {
			out[name] += n
		}
	}
	return out
}

// HitSum sums the hit counters of plans of one collection, in one system
// call where the kernel reads arrays in batches (Linux 5.6+): the governor
// reads them every few milliseconds.
type HitSum struct {
	m       *ebpf.Map
	idx     []int // counter indexes to sum
	keys    []uint32
	vals    []uint64
	perCPU  int
	noBatch bool
}

// NewHitSum sums the counters of plans in m.
func NewHitSum(m *ebpf.Map, plans ...*probes.Plan) *HitSum {
	h := &HitSum{m: m}
	n := 0
	for _, p := range plans {
		for i := range p.Names {
			h.idx = append(h.idx, p.Base+i)
			n = max(n, p.Base+i+1)
		}
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil || n == 0 {
		h.noBatch = true
		return h
	}
	h.perCPU = cpus
	h.keys = make([]uint32, n)
	h.vals = make([]uint64, n*cpus)
	return h
}

// Sum is the counters' total.
func (h *HitSum) Sum() uint64 {
	if !h.noBatch {
		var cursor ebpf.MapBatchCursor
		got, err := h.m.BatchLookup(&cursor, h.keys, h.vals, nil)
		if err == nil || errors.Is(err, ebpf.ErrKeyNotExist) && got == len(h.keys) {
			var n uint64
			for _, i := range h.idx {
				for _, v := range h.vals[i*h.perCPU : (i+1)*h.perCPU] {
					n += v
				}
			}
			return n
		}
		h.noBatch = true // not supported here: one lookup a counter from now on
	}
	var n uint64
	for _, i := range h.idx {
		c, _ := Counter(h.m, uint32(i))
		n += c
	}
	return n
}

// ProgTime reads a program's timed runs and their total nanoseconds from a
// collection's prog_time table (bpf/common.h): every 16th run is timed.
func ProgTime(m *ebpf.Map, slot uint32) (runs, ns uint64, err error) {
	var per []bpf.MapsProgTime
	if err := m.Lookup(slot, &per); err != nil {
		return 0, 0, err
	}
	for _, p := range per {
		runs += p.Runs
		ns += p.Ns
	}
	return runs, ns, nil
}
