package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Global sync.Maps: the variable holds the map itself, so its own address is
// the map's identity.
var (
	syncStrings sync.Map
	syncInts    sync.Map
)

// syncClear clears a sync.Map where the Go version has Clear (1.23 on).
var syncClear func(*sync.Map)

// syncHot does, on syncStrings (keys "user:i") and on syncInts (keys
// 1000+i, type int), for i in 0..9: one Store of key i, then (i+1)*10 Loads
// of it; then 5 LoadOrStores of key 9, 3 Swaps of key 8, 2 CompareAndSwaps
// of key 7, a LoadAndDelete, a Delete and a CompareAndDelete of key 0, two
// Ranges and, from Go 1.23, a Clear (Go 1.19 has no Swap or CompareAnd*:
// syncops_go119.go does a write or a delete of the same kind instead). It answers "synchot done" and whether
// it cleared ("clear" or "noclear"): per map 550 reads, 20 writes (21 with Clear), 3 deletes,
// 2 ranges; key i used (i+1)*10+1 times, plus the extra operations.
func syncHot() {
	for _, tc := range []struct {
		m   *sync.Map
		key func(i int) any
	}{
		{&syncStrings, func(i int) any { return "user:" + strconv.Itoa(i) }},
		{&syncInts, func(i int) any { return 1000 + i }},
	} {
		m, key := tc.m, tc.key
		for i := 0; i < 10; i++ {
			m.Store(key(i), i)
		}
		for i := 0; i < 10; i++ {
			k := key(i)
			for n := 0; n < (i+1)*10; n++ {
				if v, ok := m.Load(k); ok {
					sink += v.(int)
				}
			}
		}
		for n := 0; n < 5; n++ {
			m.LoadOrStore(key(9), n)
		}
		for n := 0; n < 3; n++ {
			syncSwap(m, key(8), 8)
		}
		for n := 0; n < 2; n++ {
			syncCompareAndSwap(m, key(7), 7, 7)
		}
		m.LoadAndDelete(key(0))
		m.Delete(key(0))
		syncCompareAndDelete(m, key(0), 0)
		for n := 0; n < 2; n++ {
			m.Range(func(k, v any) bool { sink += v.(int); return true })
		}
		if syncClear != nil {
			syncClear(m)
		}
	}
	if syncClear != nil {
		fmt.Println("synchot done clear")
	} else {
		fmt.Println("synchot done noclear")
	}
}

var syncLoopMap sync.Map

// syncLoop loads from syncLoopMap in a tight loop for d, with keys long
// enough that hashing them is most of the work; it answers "syncloop N",
// the loads done.
//
//go:noinline
func syncLoop(d time.Duration) {
	keys := make([]string, 4)
	for i := range keys {
		keys[i] = strings.Repeat(strconv.Itoa(i), 512)
		syncLoopMap.Store(keys[i], i)
	}
	var ops int
	for deadline := time.Now().Add(d); time.Now().Before(deadline); ops += 1000 {
		for i := 0; i < 1000; i++ {
			if v, ok := syncLoopMap.Load(keys[i&3]); ok {
				sink += v.(int)
			}
		}
	}
	fmt.Printf("syncloop %d\n", ops)
}
