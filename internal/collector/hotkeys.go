package collector

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/bpf"
)

// Bounds and timing of the hot key summaries.
const (
	// HotKeyCapacity is how many keys each class's summary keeps: counts are
	// exact while a class has no more distinct keys, and a key with more than
	// 1/HotKeyCapacity of a class's keyed operations is always kept.
	HotKeyCapacity = 64
	// DrainInterval is how often Run empties the kernel's key table, or
	// sooner once it is half full: Run looks at half the time the table
	// would take to be half full at the rate keys came in since it last
	// looked, pollMin to pollMax apart (each look wakes maptrace up, and
	// its CPU time counts against the budget where it competes with the
	// target). pollMax lets an --exact map loop add ~20k keys between
	// two looks, well under half the table.
	DrainInterval = 250 * time.Millisecond
	pollMin       = 10 * time.Millisecond
	pollMax       = 50 * time.Millisecond
	// drainGrace is how long a probe that chose a table just before the
	// flip may still be counting into it: a probe runs for microseconds, so
	// this is ample; a later straggler's count stays in the table for the
	// next drain of it.
	drainGrace = 5 * time.Millisecond
	// drainBatch is how many entries one batch syscall moves.
	drainBatch = 4096
)

// HotKeys finds each map class's most used keys. The probes count keys
// exactly in a kernel hash table, which alone would fill with the first
// keys seen and never find a key that becomes hot later. So there are two
// tables: the probes count into one while Drain empties the other into a
// Space-Saving summary per class, in bounded memory, and the next Drain
// swaps them.
type HotKeys struct {
	tables [2]*ebpf.Map
	side   *ebpf.Variable    // keys_side: which table the probes count into
	added  [2]*ebpf.Variable // keys_added_a/b: keys added since the table's drain

	mu      sync.Mutex
	cur     uint32 // the probes' table
	noBatch bool   // the kernel has no batch lookup-and-delete
	byClass map[bpf.MapsClassKey]*spaceSaving[bpf.MapsMapKey]
}

// NewHotKeys drains the key tables of a loaded map collection.
func NewHotKeys(m *bpf.MapsMaps, v *bpf.MapsVariables) *HotKeys {
	return &HotKeys{
		tables:  [2]*ebpf.Map{m.KeysA, m.KeysB},
		side:    v.KeysSide,
		added:   [2]*ebpf.Variable{v.KeysAddedA, v.KeysAddedB},
		byClass: map[bpf.MapsClassKey]*spaceSaving[bpf.MapsMapKey]{},
	}
}

// Drain turns the probes to the other table and folds the one they left
// into the summaries.
func (h *HotKeys) Drain() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur
	if err := h.side.Set(old ^ 1); err != nil {
		return fmt.Errorf("switch key tables: %w", err)
	}
	h.cur = old ^ 1
	time.Sleep(drainGrace)
	err := h.fold(h.tables[old])
	if serr := h.added[old].Set(uint64(0)); err == nil {
		err = serr
	}
	return err
}

// fill is how many keys the probes' table has had added since its last
// drain, and half its size.
func (h *HotKeys) fill() (n, half uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.added[h.cur].Get(&n) != nil {
		return 0, 0 // unknown: drain at once
	}
	return n, uint64(h.tables[h.cur].MaxEntries() / 2)
}

// DrainAll folds both tables, for when no probe is attached any more.
func (h *HotKeys) DrainAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, t := range h.tables {
		errs = append(errs, h.fold(t))
	}
	return errors.Join(errs...)
}

// Run drains every DrainInterval, or as soon as the probes' table is half
// full, until quit is closed. The first error goes to warn; draining goes on.
func (h *HotKeys) Run(quit <-chan struct{}, warn func(error)) {
	last, warned := time.Now(), false
	prevN, prevT := uint64(0), last
	wait := pollMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-quit:
			t.Stop()
			return
		case <-t.C:
		}
		n, half := h.fill()
		now := time.Now()
		if now.Sub(last) >= DrainInterval || n >= half {
			err := h.Drain()
			last, n = time.Now(), 0
			if err != nil && !warned {
				warn(err)
				warned = true
			}
		}
		wait = pollMax
		if n > prevN && half > n {
			rate := float64(n-prevN) / now.Sub(prevT).Seconds()
			wait = time.Duration(float64(half-n) / rate / 2 * float64(time.Second))
		}
		wait = min(max(wait, pollMin), pollMax, max(pollMin, DrainInterval-time.Since(last)))
		prevN, prevT = n, time.Now()
	}
}

// keyCount is one entry of a kernel key table.
type keyCount struct {
	key bpf.MapsMapKey
	n   uint64
}

// fold reads and deletes every entry of t into the summaries.
func (h *HotKeys) fold(t *ebpf.Map) error {
	entries, err := h.takeAll(t)
	byClass := map[bpf.MapsClassKey][]keyCount{}
	for _, e := range entries {
		byClass[e.key.Class] = append(byClass[e.key.Class], e)
	}
	for c, es := range byClass {
		// Heaviest first: a key that is hot in this interval enters the
		// summary before the interval's one-off keys raise its least count.
		sort.Slice(es, func(i, j int) bool { return es[i].n > es[j].n })
		s := h.byClass[c]
		if s == nil {
			s = newSpaceSaving[bpf.MapsMapKey](HotKeyCapacity)
			h.byClass[c] = s
		}
		for _, e := range es {
			s.add(e.key, e.n)
		}
	}
	return err
}

// takeAll reads and deletes every entry of t: in batches where the kernel
// can (5.6+), else one by one.
func (h *HotKeys) takeAll(t *ebpf.Map) ([]keyCount, error) {
	if !h.noBatch {
		out, err := takeBatches(t)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return out, err
		}
		h.noBatch = true
	}
	var (
		out []keyCount
		k   bpf.MapsMapKey
		n   uint64
	)
	it := t.Iterate()
	for it.Next(&k, &n) {
		out = append(out, keyCount{k, n})
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("read map keys: %w", err)
	}
	// Only stragglers write this table now: deleting after reading loses
	// at most their counts.
	for _, e := range out {
		if err := t.Delete(e.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, fmt.Errorf("delete map key: %w", err)
		}
	}
	return out, nil
}

// takeBatches is takeAll with batch lookup-and-delete; ErrNotSupported
// means the kernel has none, and nothing was taken.
func takeBatches(t *ebpf.Map) ([]keyCount, error) {
	var out []keyCount
	keys := make([]bpf.MapsMapKey, drainBatch)
	vals := make([]uint64, drainBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.BatchLookupAndDelete(&cursor, keys, vals, nil)
		for i := range n {
			out = append(out, keyCount{keys[i], vals[i]})
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return out, nil
		case errors.Is(err, ebpf.ErrNotSupported) && len(out) == 0:
			return nil, err
		case err != nil:
			return out, fmt.Errorf("drain map keys: %w", err)
		}
	}
}

// classKeys returns the keys kept for class c, by guaranteed count, and the
// keyed operations folded for it.
func (h *HotKeys) classKeys(c bpf.MapsClassKey) ([]ssCount[bpf.MapsMapKey], uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.byClass[c]
	if s == nil {
		return nil, 0
	}
	return s.top(), s.total
}
