// Command maps is a test target for map tracing. It reads commands on stdin:
//
//	hot            reads and writes five maps with known key counts
//	hotptrs        prints the keys of hot's pointer-keyed map, in order
//	reused N       stores into atomics what took the place of N freed maps
//	race KIND MS   two goroutines race on one map (KIND: write, read, iterate)
//	locked MS      maps used from many goroutines, but always under a lock, and a busy sync.Map
//	loop MS        a tight map-read loop; prints the lookups done
//	work MS [SPIN]  map reads among other work (SPIN iterations, 12000 by default: ~10µs apart); prints the lookups done
//	synchot        every sync.Map operation on two global sync.Maps, with known key counts
//	syncloop MS    sync.Map loads in a tight loop; prints the loads done
//	syncmiss       sync.Map misses and promotions (up to Go 1.23); prints them as the target saw them
//	twins          two goroutines make the first operations on 2000 maps, two at once on each
//	crash KIND     a goroutine panics and nothing recovers it (KIND: nil, text, error, wrapped, index, value)
//
// and answers each with one line. A race may kill it with the runtime's
// "fatal error: concurrent map …", as it would in production.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

var (
	hotStrings = map[string]int{}
	hotInts    = map[int64]int{}
	hotPtrs    = map[*item]int{}
	hotUints   = map[uint64]int{}
	hotPairs   = map[pair]int{}
	items      [10]item
	pairs      [10]pair
	racy       = map[int]int{}
	guarded    = map[int]int{}
	readMostly = map[string]int{"a": 1}
	loopMap    = map[int64]int64{1: 1, 2: 2, 3: 3}
	guardMu    sync.Mutex
	readMu     sync.RWMutex
	syncMap    sync.Map
	sink       int
)

// item is a pointer key: the runtime writes it as a pointer
// (mapassign_fast64ptr) and reads it as a 64-bit integer (mapaccess1_fast64).
type item struct{ id int }

// pair is a struct key with strings in it: the probes copy the strings'
// headers, not their text. It is 48 bytes long, zone across byte 32.
type pair struct {
	name string
	id   int32
	on   bool
	zone string
	port uint16
}

// hot does, for i in 0..9, (i+1)*10 reads of key "user:i", of key
// int64(1000+i), of key &items[i], of key 1<<63+i (negative as an int64) and
// of key pair{"user:i", -i, i is even, "eu-west-(i%3)", 8000+i}, and one
// write of each beforehand. The pairs it reads by are temporaries, as keys
// built for a lookup are: their names' memory is overwritten once read.
func hot() {
	for i := 0; i < 10; i++ {
		pairs[i] = pair{"user:" + strconv.Itoa(i), int32(-i), i%2 == 0, "eu-west-" + strconv.Itoa(i%3), uint16(8000 + i)}
		hotStrings["user:"+strconv.Itoa(i)] = i
		hotInts[int64(1000+i)] = i
		hotPtrs[&items[i]] = i
		hotUints[1<<63+uint64(i)] = i
		hotPairs[pairs[i]] = i
	}
	for i := 0; i < 10; i++ {
		name := []byte(pairs[i].name)
		ks, ki, kp, ku, kpair := "user:"+strconv.Itoa(i), int64(1000+i), &items[i], 1<<63+uint64(i), pairs[i]
		kpair.name = *(*string)(unsafe.Pointer(&name))
		for n := 0; n < (i+1)*10; n++ {
			sink += hotStrings[ks]
			sink += hotInts[ki]
			sink += hotPtrs[kp]
			sink += hotUints[ku]
			sink += hotPairs[kpair]
		}
		copy(name, "reused")
	}
	fmt.Println("hot done")
}

//go:noinline
func racyWrite(stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		racy[i%64] = i
		if i%16 == 0 {
			time.Sleep(50 * time.Microsecond) // throttled: the race must last to be seen
		}
	}
}

// crashValue is a panic value with no text of its own.
type crashValue struct{ code int }

// Panic values of named basic types: the runtime prints them by value.
type (
	crashCode  int16
	crashLabel string
)

// crash panics with a value of the kind asked for; the process dies of it.
//
//go:noinline
func crash(kind string) {
	var it *item
	switch kind {
	case "nil":
		sink += it.id
	case "text":
		panic("crash: text of " + strconv.Itoa(len(kind)) + " bytes")
	case "error":
		panic(errors.New("crash: error"))
	case "wrapped":
		panic(fmt.Errorf("crash: wrapped: %w", os.ErrClosed))
	case "index":
		s := []int{1, 2, 3}
		sink += s[len(kind)]
	case "value":
		panic(crashValue{code: 7})
	case "int":
		panic(len(kind) * 14)
	case "code":
		panic(crashCode(-len(kind)))
	case "float":
		panic(float64(len(kind)) / 2)
	case "complex":
		panic(complex(1.5, -float32(len(kind))))
	case "label":
		panic(crashLabel("out of " + kind))
	case "flag":
		panic(len(kind) == 4)
	}
}

//go:noinline
func racyRead(stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		sink += racy[i%64]
		if i%16 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

//go:noinline
func racyIterate(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		for k, v := range racy {
			sink += k + v
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func race(kind string, d time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	other := map[string]func(<-chan struct{}){"write": racyWrite, "read": racyRead, "iterate": racyIterate}[kind]
	for _, f := range []func(<-chan struct{}){racyWrite, other} {
		wg.Add(1)
		go func(f func(<-chan struct{})) { defer wg.Done(); f(stop) }(f)
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	fmt.Println("race done")
}

//go:noinline
func lockedWork(stop <-chan struct{}, id int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		guardMu.Lock()
		guarded[i%32] = id
		guardMu.Unlock()
		readMu.RLock()
		sink += readMostly["a"]
		readMu.RUnlock()
		if i%8 == 0 {
			readMu.Lock()
			readMostly["a"] = i
			readMu.Unlock()
		}
		syncMap.Store(i%16, id)
		syncMap.Load((i + 1) % 16)
		if i%16 == 0 {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

func locked(d time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := 0; id < 4; id++ {
		wg.Add(1)
		go func(id int) { defer wg.Done(); lockedWork(stop, id) }(id)
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	fmt.Println("locked done")
}

//go:noinline
func loop(d time.Duration) {
	var ops int
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for i := 0; i < 1000; i++ {
			sink += int(loopMap[int64(i&3)])
		}
		ops += 1000
	}
	fmt.Printf("loop %d\n", ops)
}

// work reads loopMap between stretches of other work, as most programs do.
//
//go:noinline
func work(d time.Duration, spin int) {
	var ops int
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for i := 0; i < 100; i++ {
			sink += int(loopMap[int64(i&3)])
			for j := 0; j < spin; j++ {
				sink += j ^ i
			}
		}
		ops += 100
	}
	fmt.Printf("work %d\n", ops)
}

func main() {
	makeTwins(2000)
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		ms := func(i int) time.Duration {
			n, _ := strconv.Atoi(f[i])
			return time.Duration(n) * time.Millisecond
		}
		switch {
		case len(f) == 1 && f[0] == "hot":
			hot()
		case len(f) == 3 && f[0] == "race":
			race(f[1], ms(2))
		case len(f) == 2 && f[0] == "locked":
			locked(ms(1))
		case len(f) == 2 && f[0] == "reused":
			n, _ := strconv.Atoi(f[1])
			reused(n)
		case len(f) == 1 && f[0] == "hotptrs":
			for i := range items {
				fmt.Printf("%p ", &items[i])
			}
			fmt.Println()
		case len(f) == 2 && f[0] == "loop":
			loop(ms(1))
		case len(f) == 2 && f[0] == "work":
			work(ms(1), 12000)
		case len(f) == 3 && f[0] == "work":
			spin, _ := strconv.Atoi(f[2])
			work(ms(1), spin)
		case len(f) == 1 && f[0] == "synchot":
			syncHot()
		case len(f) == 2 && f[0] == "syncloop":
			syncLoop(ms(1))
		case len(f) == 1 && f[0] == "syncmiss":
			syncMiss()
		case len(f) == 2 && f[0] == "syncwork":
			syncWork(ms(1))
		case len(f) == 1 && f[0] == "twins":
			twinReads()
		case len(f) == 2 && f[0] == "crash":
			go func() { crash(f[1]) }()
		case len(f) == 4 && f[0] == "snapshot":
			n, _ := strconv.Atoi(f[1])
			size, _ := strconv.Atoi(f[2])
			reads, _ := strconv.Atoi(f[3])
			snapshot(n, size, reads)
		}
	}
}
