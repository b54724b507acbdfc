package collector

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
)

// topStacks bounds the waiter and holder stacks kept per mutex.
const topStacks = 5

// Mutexes reads the mutex programs' maps.
type Mutexes struct {
	Maps *bpf.MutexMaps
	Plan *probes.Plan
	Sym  *Symbolizer
	// File, if set, names the file or socket of the internal/poll.FD at an
	// address: a file's lock has no variable to be named by.
	File func(fd uint64) string
	// Share, if set, is the share of the trace in which a wait of a given
	// length could be seen, the mutex probes having been duty-cycled
	// (governor.MutexShare): counts and wait times are scaled up by it,
	// each wait by its length's.
	Share func(time.Duration) float64
}

// mutexID is one side of one mutex: where it is and how it was waited for.
type mutexID struct {
	addr uint64
	kind string
}

type mutexAgg struct {
	m          report.Mutex
	countScale float64 // 0: not scaled
	hist       [len(bpf.MutexWaitVal{}.Hist)]uint64
	semas      map[uint64]bool
	waiters    map[string]*report.Waiter
}

// Collect returns the contended mutexes, most waited-on first, and the
// goroutines that waited, most waiting first.
func (c *Mutexes) Collect() ([]report.Mutex, []report.Goroutine, error) {
	aggs := map[mutexID]*mutexAgg{}
	var (
		key  bpf.MutexWaitKey
		vals []bpf.MutexWaitVal
	)
	it := c.Maps.Waits.Iterate()
	for it.Next(&key, &vals) {
		walk := stackTrace(c.Maps.Stacks, key.Stackid)
		stack := c.Sym.Stack(0, walk)
		id := c.classify(key, walk)
		a := aggs[id]
		if a == nil {
			a = &mutexAgg{
				m: report.Mutex{
					Address: fmt.Sprintf("%#x", id.addr),
					Name:    c.name(id),
					Kind:    id.kind,
				},
				semas:   map[uint64]bool{},
				waiters: map[string]*report.Waiter{},
			}
			aggs[id] = a
		}
		a.semas[key.Sema] = true
		sk := strings.Join(stack, "\n")
		w := a.waiters[sk]
		if w == nil {
			w = &report.Waiter{Stack: stack}
			a.waiters[sk] = w
		}
		for _, v := range vals {
			a.m.Contentions += v.Count
			a.m.WaitNS += v.TotalNs
			a.m.MaxWaitNS = max(a.m.MaxWaitNS, v.MaxNs)
			w.Contentions += v.Count
			w.WaitNS += v.TotalNs
			for i, n := range v.Hist {
				a.hist[i] += n
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("read mutex waits: %w", err)
	}

	holders, err := c.holders()
	if err != nil {
		return nil, nil, err
	}
	goids, err := c.waiterGoids()
	if err != nil {
		return nil, nil, err
	}

	out := make([]report.Mutex, 0, len(aggs))
	var all [len(bpf.MutexWaitVal{}.Hist)]uint64
	for _, a := range aggs {
		for i, n := range a.hist {
			all[i] += n
		}
		if c.Share != nil {
			a.scale(c.Share)
		}
	}
	for _, a := range aggs {
		m := a.m
		m.P50NS = report.Percentile(a.hist[:], 0.50, m.MaxWaitNS)
		m.P99NS = report.Percentile(a.hist[:], 0.99, m.MaxWaitNS)
		m.Histogram = append([]uint64(nil), a.hist[:]...)
		for _, w := range a.waiters {
			m.Waiters = append(m.Waiters, *w)
		}
		sort.Slice(m.Waiters, func(i, j int) bool { return m.Waiters[i].WaitNS > m.Waiters[j].WaitNS })
		m.Waiters = m.Waiters[:min(len(m.Waiters), topStacks)]
		m.Holders = topHolders(holders, a.semas)
		for i := range m.Holders {
			m.Holders[i].Count = scaled(m.Holders[i].Count, a.countScale)
		}
		seen := map[int64]bool{}
		for sema := range a.semas {
			for _, g := range goids[sema] {
				seen[g] = true
			}
		}
		m.Goroutines = len(seen)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WaitNS > out[j].WaitNS })

	gs, err := c.goroutines()
	if c.Share != nil {
		count, wait, _ := scales(all[:], c.Share)
		for i := range gs {
			gs[i].Contentions = scaled(gs[i].Contentions, count)
			gs[i].WaitNS = scaled(gs[i].WaitNS, wait)
		}
	}
	return out, gs, err
}

// name is a mutex's variable, or a file lock's file or socket.
func (c *Mutexes) name(id mutexID) string {
	switch {
	case id.kind == report.KindFDRead || id.kind == report.KindFDWrite:
		if c.File != nil {
			return c.File(id.addr)
		}
		return ""
	case report.FileLock(id.kind):
		return "" // Close's semaphore: where its FD starts is not known
	}
	return c.Sym.Global(id.addr)
}

// scale scales a mutex's counts, wait times and histogram up for the waits
// the duty-cycled probes could not see, by share.
func (a *mutexAgg) scale(share func(time.Duration) float64) {
	count, wait, hist := scales(a.hist[:], share)
	copy(a.hist[:], hist)
	a.countScale = count
	a.m.Contentions = scaled(a.m.Contentions, count)
	a.m.WaitNS = scaled(a.m.WaitNS, wait)
	for _, w := range a.waiters {
		w.Contentions = scaled(w.Contentions, count)
		w.WaitNS = scaled(w.WaitNS, wait)
	}
}

// scales are how much a histogram's waits are scaled up, as counts and as
// wait time, and the scaled histogram: the waits of bucket i (2^i to
// 2^(i+1) ns) by one over the share of the trace in which a wait of that
// length could be seen.
func scales(hist []uint64, share func(time.Duration) float64) (count, wait float64, out []uint64) {
	out = make([]uint64, len(hist))
	var n, sn, w, sw float64
	for i, k := range hist {
		lo := math.Ldexp(1, i)
		sh := share(time.Duration(1.5 * lo))
		if sh <= 0 { // seen, so at least its bucket's shortest could be
			sh = share(time.Duration(lo))
		}
		if sh <= 0 {
			sh = 1
		}
		x := float64(k) / sh
		out[i] = uint64(math.Round(x))
		d := 1.5 * lo
		n, sn, w, sw = n+float64(k), sn+x, w+float64(k)*d, sw+x*d
	}
	if n == 0 {
		return 1, 1, out
	}
	return sn / n, sw / w, out
}

func scaled(v uint64, by float64) uint64 {
	if by == 0 {
		return v
	}
	return uint64(math.Round(float64(v) * by))
}

// classify finds which mutex a park was for and how, from the sync wrapper
// that parked (the key's kind) and the frames that called it. sync.Mutex is
// {state int32; sema uint32}, and sync.RWMutex is {w Mutex; writerSem,
// readerSem uint32; …}: the mutex's address follows from its semaphore's.
// Before Go 1.20 every park went through runtime_SemacquireMutex, so the
// caller tells the RWMutex cases apart.
func (c *Mutexes) classify(key bpf.MutexWaitKey, walk []uint64) mutexID {
	switch key.Kind {
	case probes.KindRWRead:
		return mutexID{key.Sema - 12, report.KindRWMutexRead}
	case probes.KindRWWrite:
		return mutexID{key.Sema - 8, report.KindRWMutexWrite}
	case probes.KindFD:
		return c.fileLock(key.Sema, walk)
	}
	// Above the park: lockSlow and the inlined Lock for a mutex, or, before
	// Go 1.20, RWMutex.RLock/Lock parking directly.
	viaMutex := false
	for _, f := range c.callerFrames(walk) {
		fn := report.FrameFunc(f)
		if strings.HasSuffix(fn, "(*Mutex).lockSlow") || strings.HasSuffix(fn, "(*Mutex).Lock") {
			viaMutex = true
			continue
		}
		switch {
		case fn == "sync.(*RWMutex).Lock" && viaMutex:
			return mutexID{key.Sema - 4, report.KindRWMutexWrite}
		case fn == "sync.(*RWMutex).Lock":
			return mutexID{key.Sema - 8, report.KindRWMutexWrite}
		case fn == "sync.(*RWMutex).RLock" && !viaMutex:
			return mutexID{key.Sema - 12, report.KindRWMutexRead}
		}
		break
	}
	return mutexID{key.Sema - 4, report.KindMutex}
}

// fileLock is the side of a file's or socket's lock (internal/poll.FD,
// which starts with its fdMutex{state uint64; rsema, wsema uint32}) that a
// park through poll's semaphore was for: the read side's semaphore is
// 8-aligned, the write side's not, as the FD is. A park not in
// fdMutex.rwlock is Close's, waiting for the file's other users.
func (c *Mutexes) fileLock(sema uint64, walk []uint64) mutexID {
	if f := c.callerFrames(walk); len(f) == 0 || report.FrameFunc(f[0]) != "internal/poll.(*fdMutex).rwlock" {
		return mutexID{sema, report.KindFDClose}
	}
	if sema%8 == 0 {
		return mutexID{sema - 8, report.KindFDRead}
	}
	return mutexID{sema - 12, report.KindFDWrite}
}

// callerFrames is the stack above the sync wrapper that parked: walk starts
// in runtime.semacquire1, then the wrapper.
func (c *Mutexes) callerFrames(walk []uint64) []string {
	var out []string
	for _, pc := range walk[min(2, len(walk)):] {
		out = append(out, c.Sym.frames(pc, true)...)
	}
	return out
}

type holderStack struct {
	sema  uint64
	stack []string
	count uint64
}

func (c *Mutexes) holders() ([]holderStack, error) {
	var (
		key  bpf.MutexReleaseKey
		vals []uint64
		out  []holderStack
	)
	it := c.Maps.Releases.Iterate()
	for it.Next(&key, &vals) {
		h := holderStack{sema: key.Sema, stack: c.Sym.Stack(0, stackTrace(c.Maps.Stacks, key.Stackid))}
		for _, v := range vals {
			h.count += v
		}
		out = append(out, h)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read mutex releases: %w", err)
	}
	return out, nil
}

// waiterGoids returns the goroutines that waited on each semaphore.
func (c *Mutexes) waiterGoids() (map[uint64][]int64, error) {
	var (
		key bpf.MutexWaiterKey
		v   uint8
	)
	out := map[uint64][]int64{}
	it := c.Maps.WaiterGoids.Iterate()
	for it.Next(&key, &v) {
		out[key.Sema] = append(out[key.Sema], key.Goid)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read mutex waiters: %w", err)
	}
	return out, nil
}

// topHolders merges the release stacks of a mutex's semaphores.
func topHolders(all []holderStack, semas map[uint64]bool) []report.Holder {
	byStack := map[string]*report.Holder{}
	var out []report.Holder
	for _, h := range all {
		if !semas[h.sema] {
			continue
		}
		k := strings.Join(h.stack, "\n")
		if x := byStack[k]; x != nil {
			x.Count += h.count
			continue
		}
		byStack[k] = &report.Holder{Stack: h.stack, Count: h.count}
	}
	for _, h := range byStack {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out[:min(len(out), topStacks)]
}

// topGoroutines bounds the goroutines listed.
const topGoroutines = 10

func (c *Mutexes) goroutines() ([]report.Goroutine, error) {
	var (
		goid int64
		vals []bpf.MutexGoroutineVal
		out  []report.Goroutine
	)
	it := c.Maps.Goroutines.Iterate()
	for it.Next(&goid, &vals) {
		g := report.Goroutine{Goid: goid}
		for _, v := range vals {
			g.Contentions += v.Count
			g.WaitNS += v.TotalNs
		}
		out = append(out, g)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read goroutine waits: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WaitNS > out[j].WaitNS })
	return out[:min(len(out), topGoroutines)], nil
}
