package main

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"unsafe"
)

// The copy-on-write snapshots of snapshot: a *map in an atomic.Pointer, the
// map itself in an atomic.Value.
var (
	snapPtr atomic.Pointer[map[string]int]
	snapVal atomic.Value
)

// buildSnapshot makes a new map of n entries: the copy a copy-on-write
// update makes.
//
//go:noinline
func buildSnapshot(n, gen int) map[string]int {
	m := make(map[string]int, n)
	for i := 0; i < n; i++ {
		m["cfg:"+strconv.Itoa(i)] = gen
	}
	return m
}

// snapshot publishes n snapshots of size entries each, in turn through
// snapPtr and snapVal, and reads each reads times: it answers "snapshot
// PUBLISHED ENTRIES READS".
//
//go:noinline
func snapshot(n, size, reads int) {
	for gen := 0; gen < n; gen++ {
		m := buildSnapshot(size, gen)
		if gen%2 == 0 {
			snapPtr.Store(&m)
			for r := 0; r < reads; r++ {
				sink += (*snapPtr.Load())["cfg:"+strconv.Itoa(r%size)]
			}
		} else {
			snapVal.Store(m)
			for r := 0; r < reads; r++ {
				sink += snapVal.Load().(map[string]int)["cfg:"+strconv.Itoa(r%size)]
			}
		}
	}
	fmt.Printf("snapshot %d %d %d\n", n, n*size, n*reads)
}

// shortLived holds the maps of reused while they live.
var shortLived []map[int]int

// header is the size of a map's header (48 bytes, classic or swiss), with
// pointers as it has: another object the allocator can put where a freed
// map's header was.
type header struct {
	a, b, c, d, e *int
	f             uintptr
}

// makeShortLived makes n maps that each see one write.
//
//go:noinline
func makeShortLived(n int) {
	for i := 0; i < n; i++ {
		m := map[int]int{}
		m[i] = i
		shortLived = append(shortLived, m)
	}
}

// reused frees n maps, each written once, and stores into an atomic.Value
// and an atomic.Pointer what the allocator put where their headers were:
// none of it is a map. It answers "reused STORES".
//
//go:noinline
func reused(n int) {
	makeShortLived(n)
	was := map[uintptr]bool{}
	for _, m := range shortLived {
		was[*(*uintptr)(unsafe.Pointer(&m))] = true
	}
	shortLived = nil
	runtime.GC()
	runtime.GC()
	var kept []*header
	var v atomic.Value
	var p atomic.Pointer[*header]
	stores := 0
	for i := 0; i < 100*n && stores < n; i++ {
		h := &header{f: uintptr(i)}
		kept = append(kept, h)
		if was[uintptr(unsafe.Pointer(h))] {
			v.Store(h)
			p.Store(&kept[len(kept)-1])
			stores += 2
		}
	}
	runtime.KeepAlive(kept)
	fmt.Printf("reused %d\n", stores)
}
