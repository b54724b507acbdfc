//go:build !go1.24

package main

import (
	"fmt"
	"strconv"
	"sync"
	"unsafe"
)

var syncMissMap sync.Map

// syncMapLayout is sync.Map's layout up to Go 1.23, for the target to count
// its own misses, promotions and dirty-map copies.
type syncMapLayout struct {
	mu     sync.Mutex
	read   syncRead
	dirty  map[any]unsafe.Pointer
	misses int
}

// syncMiss stores new keys into syncMissMap and loads each until the dirty
// map is promoted (key i: i+1 loads), then stores one more and ranges,
// watching the map's fields around each call. It answers "syncmiss MISSES
// PROMOTIONS COPIES" as it saw them.
func syncMiss() {
	l := (*syncMapLayout)(unsafe.Pointer(&syncMissMap))
	var misses, promotions, copies int
	store := func(k string, v int) {
		fresh := l.dirty == nil
		syncMissMap.Store(k, v)
		if fresh && l.dirty != nil {
			copies++
		}
	}
	for i := 0; i < 5; i++ {
		k := "miss:" + strconv.Itoa(i)
		store(k, i)
		for n := 0; n < i+1; n++ {
			dirty, before := l.dirty != nil, l.misses
			syncMissMap.Load(k)
			switch {
			case l.misses == before+1:
				misses++
			case dirty && l.dirty == nil && l.misses == 0: // the miss that promoted
				misses++
				promotions++
			}
		}
	}
	store("miss:last", 5)
	dirty := l.dirty != nil
	syncMissMap.Range(func(k, v any) bool { return true }) // promotes a dirty map at once
	if dirty && l.dirty == nil {
		promotions++
	}
	fmt.Printf("syncmiss %d %d %d\n", misses, promotions, copies)
}
