package collector

import (
	"container/heap"
	"sort"
)

// spaceSaving keeps the heaviest keys of a stream of weighted counts in
// bounded memory: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi,
// "Efficient Computation of Frequent and Top-k Elements in Data Streams",
// 2005), with weights. While it has seen at most capacity keys every count is
// exact. Past that, a new key takes the place of the least counted one and
// inherits its count as its error: a kept key's true count lies in
// [count-err, count], and any key with more than total/capacity of the
// weight is kept.
type spaceSaving[K comparable] struct {
	capacity int
	total    uint64 // all weight added
	byKey    map[K]*ssItem[K]
	h        ssHeap[K] // least count first
}

type ssItem[K comparable] struct {
	key   K
	count uint64 // an upper bound of the key's true count
	err   uint64 // count-err is a lower bound
	index int    // in the heap
}

func newSpaceSaving[K comparable](capacity int) *spaceSaving[K] {
	return &spaceSaving[K]{capacity: max(capacity, 1), byKey: map[K]*ssItem[K]{}}
}

// add counts w more for key k.
func (s *spaceSaving[K]) add(k K, w uint64) {
	if w == 0 {
		return
	}
	s.total += w
	if it := s.byKey[k]; it != nil {
		it.count += w
		heap.Fix(&s.h, it.index)
		return
	}
	if len(s.h) < s.capacity {
		it := &ssItem[K]{key: k, count: w}
		s.byKey[k] = it
		heap.Push(&s.h, it)
		return
	}
	it := s.h[0] // the least counted key gives way
	delete(s.byKey, it.key)
	it.key, it.err = k, it.count
	it.count += w
	s.byKey[k] = it
	heap.Fix(&s.h, 0)
}

// ssCount is a kept key with the bounds of its true count.
type ssCount[K comparable] struct {
	key        K
	lower, err uint64 // the true count is in [lower, lower+err]
}

// top returns the kept keys by their guaranteed count (lower), most first:
// that order puts keys that only inherited a count from the keys they
// replaced last.
func (s *spaceSaving[K]) top() []ssCount[K] {
	out := make([]ssCount[K], 0, len(s.h))
	for _, it := range s.h {
		out = append(out, ssCount[K]{key: it.key, lower: it.count - it.err, err: it.err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lower > out[j].lower })
	return out
}

// ssHeap is a min-heap of items by count.
type ssHeap[K comparable] []*ssItem[K]

func (h ssHeap[K]) Len() int           { return len(h) }
func (h ssHeap[K]) Less(i, j int) bool { return h[i].count < h[j].count }
func (h ssHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *ssHeap[K]) Push(x any) {
	it := x.(*ssItem[K])
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *ssHeap[K]) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
