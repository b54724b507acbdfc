package main

import (
	"fmt"
	"strconv"
	"sync/atomic"
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
