// Command plain is a test target that uses sync.Mutex and nothing else of
// package sync, so its binary lacks the RWMutex parks maptrace probes.
package main

import (
	"os"
	"sync"
	"time"
)

var mu sync.Mutex

func main() {
	os.Stdout.WriteString("ready\n")
	for i := 0; i < 4; i++ {
		go func() {
			for {
				mu.Lock()
				time.Sleep(time.Millisecond)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Hour)
}
