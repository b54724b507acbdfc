package main

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

var syncWorkMap sync.Map

// syncWork uses syncWorkMap between stretches of other work, as most
// programs do, for d: of every 10 operations, 8 Loads and 2 Stores, half of
// all of them on key "user:hot" and the rest spread over "user:0".."user:15".
// It answers "syncwork LOADS STORES HOT", what it did.
//
//go:noinline
func syncWork(d time.Duration) {
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	var loads, stores, hot int
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline); {
		for end := i + 100; i < end; i++ {
			k := keys[i&15]
			if i&1 == 0 {
				k = "user:hot"
				hot++
			}
			if i%10 < 2 {
				syncWorkMap.Store(k, i)
				stores++
			} else if v, ok := syncWorkMap.Load(k); ok {
				sink += v.(int)
				loads++
			} else {
				loads++
			}
			for j := 0; j < 6000; j++ {
				sink += j ^ i
			}
		}
	}
	fmt.Printf("syncwork %d %d %d\n", loads, stores, hot)
}
