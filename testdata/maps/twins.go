package main

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// twins are maps that no operation has touched before "twins": the trace,
// attached by then, sees each first in two goroutines at once.
var twins []map[int32]int

func makeTwins(n int) {
	twins = make([]map[int32]int, n)
	for i := range twins {
		twins[i] = map[int32]int{int32(i): i}
	}
}

// twinRead is the one call site of the twins' reads.
//
//go:noinline
func twinRead(m map[int32]int, k int32) int { return m[k] }

// twinReads has two goroutines read each twin map in turn, starting each
// read together after a spinning barrier, so that both first operations on
// a map are probed on two CPUs at once. It answers "twins MAPS READS", the
// reads that found their map's one key.
func twinReads() {
	var (
		arrived atomic.Int64
		reads   atomic.Int64
		wg      sync.WaitGroup
	)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, m := range twins {
				for arrived.Add(1); arrived.Load() < int64(2*(i+1)); {
				}
				if twinRead(m, int32(i)) == i {
					reads.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("twins %d %d\n", len(twins), reads.Load())
}
