// Command contention is a test target: on "run MS" from stdin it contends
// a sync.Mutex and both sides of a sync.RWMutex for MS milliseconds (and
// uses a small sharded map, without contending it), then
// prints the runtime's own count of mutex wait over that run, the ground
// truth maptrace is checked against. On "fdwrite MS ROUNDS" goroutines wait
// MS for a pipe's write lock, ROUNDS times, and it prints how long. On "exec PATH" it execs PATH, which
// keeps its pid and start time: another program in the same process.
package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	mu sync.Mutex
	rw sync.RWMutex
	// cache's mutex is a field: maptrace names it main.cache.mu from DWARF.
	cache struct {
		hits int
		mu   sync.Mutex
	}
	counter int
	shared  = map[int]int{}
)

// jitter yields the processor 0 to 3 times.
func jitter() {
	for i := rand.Intn(4); i > 0; i-- {
		runtime.Gosched()
	}
}

//go:noinline
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// lockMutex holds mu briefly, over and over, with other goroutines doing the same.
//
//go:noinline
func lockMutex(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		jitter()
		mu.Lock()
		counter++
		spin(50 * time.Microsecond)
		mu.Unlock()
		spin(10 * time.Microsecond)
	}
}

//go:noinline
func readShared(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		jitter()
		rw.RLock()
		_ = shared[1]
		time.Sleep(200 * time.Microsecond)
		rw.RUnlock()
	}
}

//go:noinline
func writeShared(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		jitter()
		rw.Lock()
		shared[1]++
		time.Sleep(300 * time.Microsecond)
		rw.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// mutexWait is the runtime's own total of time goroutines spent blocked on
// mutexes (Go 1.20 on).
// touchCache holds cache.mu for a while, against another goroutine doing the same.
//
//go:noinline
func touchCache(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		jitter()
		cache.mu.Lock()
		cache.hits++
		time.Sleep(500 * time.Microsecond)
		cache.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
	}
}

// shard is a shard of a sharded map: a mutex and a map.
type shard struct {
	mu sync.Mutex
	m  map[int]int
}

var shards = func() []*shard {
	s := make([]*shard, 4)
	for i := range s {
		s[i] = &shard{m: map[int]int{}}
	}
	return s
}()

// useShards counts keys in the sharded map, each key's shard picked by the
// key, at a gentle pace: maptrace shows the shards as one sharded map.
//
//go:noinline
func useShards(stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		s := shards[i%len(shards)]
		s.mu.Lock()
		s.m[i%8]++ // 8 keys: every one of them a hot key series
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func mutexWait() (float64, bool) {
	s := []metrics.Sample{{Name: "/sync/mutex/wait/total:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0, false
	}
	return s[0].Value.Float64(), true
}

func run(d time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := func(f func(<-chan struct{})) {
		wg.Add(1)
		go func() { defer wg.Done(); f(stop) }()
	}
	before, ok := mutexWait()
	for i := 0; i < 3; i++ {
		start(lockMutex)
	}
	for i := 0; i < 3; i++ {
		start(readShared)
	}
	for i := 0; i < 2; i++ {
		start(writeShared)
		start(touchCache)
	}
	start(useShards)
	time.Sleep(d)
	close(stop)
	wg.Wait()
	after, _ := mutexWait()
	if !ok {
		fmt.Println("mutex_wait_seconds none") // Go 1.19 lacks the metric
		return
	}
	fmt.Printf("mutex_wait_seconds %.9f\n", after-before)
}

// pipes stay open while the process runs: a report names a file's lock by
// the file, which must still be there when it is written.
var pipes []*os.File

// fdWrite has a write to a pipe hold the pipe's write lock (internal/poll's
// fdMutex) while the pipe is full, and four goroutines wait for that lock
// for d, rounds times. It prints the time they waited, as they timed it
// themselves, how many waits, and the pipe's write end.
func fdWrite(d time.Duration, rounds int) {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Println("fdwrite:", err)
		return
	}
	pipes = append(pipes, r, w)
	const waiters = 4
	big := make([]byte, 1<<20) // many times a pipe's buffer: its write blocks, holding the lock
	var waited time.Duration
	var mu sync.Mutex
	for i := 0; i < rounds; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.Write(big) }()
		time.Sleep(20 * time.Millisecond) // the pipe is full, the lock held
		for j := 0; j < waiters; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				w.Write([]byte{1})
				mu.Lock()
				waited += time.Since(start)
				mu.Unlock()
			}()
		}
		time.Sleep(d)
		buf := make([]byte, 64<<10)
		for n := 0; n < len(big)+waiters; {
			k, err := r.Read(buf)
			if err != nil {
				fmt.Println("fdwrite:", err)
				return
			}
			n += k
		}
		wg.Wait()
	}
	fmt.Printf("fd_wait_seconds %.9f waits %d fd %d\n", waited.Seconds(), waiters*rounds, w.Fd())
}

func main() {
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "run" {
			ms, _ := strconv.Atoi(f[1])
			run(time.Duration(ms) * time.Millisecond)
		}
		if len(f) == 3 && f[0] == "fdwrite" {
			ms, _ := strconv.Atoi(f[1])
			rounds, _ := strconv.Atoi(f[2])
			fdWrite(time.Duration(ms)*time.Millisecond, rounds)
		}
		if len(f) == 2 && f[0] == "exec" {
			err := syscall.Exec(f[1], f[1:], os.Environ())
			fmt.Println("exec:", err)
		}
	}
}
