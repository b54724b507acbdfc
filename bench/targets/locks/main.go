// Command locks is a benchmark target for maptrace's mutex probes. It reads
// commands on stdin and answers each with one line:
//
//	mutex MS    three goroutines contend one sync.Mutex (hold ~50µs, pause
//	            ~10µs), the shape of testdata/contention; prints the critical
//	            sections done
//	rwread MS   read-mostly sync.RWMutex: four readers look a key up under
//	            RLock, one writer updates it under Lock every ~2ms; prints the
//	            reads done
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	mu      sync.Mutex
	counter int

	rw     sync.RWMutex
	config = map[string]int{"limit": 1}
	sink   atomic.Int64
)

//go:noinline
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

//go:noinline
func lockLoop(stop *atomic.Bool, done *atomic.Int64) {
	for !stop.Load() {
		mu.Lock()
		counter++
		spin(50 * time.Microsecond)
		mu.Unlock()
		done.Add(1)
		spin(10 * time.Microsecond)
	}
}

//go:noinline
func readLoop(stop *atomic.Bool, done *atomic.Int64) {
	var n int64
	for !stop.Load() {
		for i := 0; i < 64; i++ {
			rw.RLock()
			v := config["limit"]
			rw.RUnlock()
			sink.Add(int64(v) & 1)
		}
		n += 64
	}
	done.Add(n)
}

//go:noinline
func writeLoop(stop *atomic.Bool) {
	for i := 0; !stop.Load(); i++ {
		rw.Lock()
		config["limit"] = i
		spin(20 * time.Microsecond)
		rw.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// run starts the goroutines, lets them work for d and returns the count.
func run(d time.Duration, workers int, work func(*atomic.Bool, *atomic.Int64), extra func(*atomic.Bool)) int64 {
	var stop atomic.Bool
	var done atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); work(&stop, &done) }()
	}
	if extra != nil {
		wg.Add(1)
		go func() { defer wg.Done(); extra(&stop) }()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return done.Load()
}

func main() {
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		ms, _ := strconv.Atoi(f[1])
		d := time.Duration(ms) * time.Millisecond
		switch f[0] {
		case "mutex":
			fmt.Printf("mutex %d\n", run(d, 3, lockLoop, nil))
		case "rwread":
			fmt.Printf("rwread %d\n", run(d, 4, readLoop, writeLoop))
		}
	}
}
