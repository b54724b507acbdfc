// Command cpusplit is a test target for CPU sampling: it splits its CPU time
// between map lookups and other work, and measures the split itself with its
// thread's CPU clock. It reads commands on stdin:
//
//	mix MS LOOKUPS ARITH  rounds of LOOKUPS map lookups (in lookups) then ARITH
//	                      steps of arithmetic (in arith), for MS ms of CPU time;
//	                      prints "mix MAP_NS OTHER_NS": the CPU time of each
//	arith MS              arithmetic only; prints "arith NS"
//	maphash MS            hash/maphash on strings (the runtime's hash
//	                      functions, called outside any map); prints "maphash NS"
//	fixed N               N lookups of a 16 KiB string key; prints "fixed NS"
//
// All of it runs on one locked thread, so that the thread's CPU clock is the
// work's.
package main

import (
	"bufio"
	"fmt"
	"hash/maphash"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const nkeys = 1 << 18

var (
	keys  []string
	table = map[string]int{}
	// big has one 16 KiB key; bigKey is an equal string in other memory,
	// so that every lookup hashes and compares all of it.
	big    = map[string]int{}
	bigKey string
	sink   int
)

// threadCPU is the calling thread's CPU time.
func threadCPU() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// lookups looks n keys up. The keys are read in the order they were made,
// which the CPU's prefetcher follows; the table's slots for them are spread
// by their hashes, so the misses in the caches are the map's. The values are
// not read: before Go 1.24 a value sits past its bucket's keys, and reading
// it misses the cache in this function, after the map call.
//
//go:noinline
func lookups(n, start int) {
	for i := 0; i < n; i++ {
		if _, ok := table[keys[(start+i)&(nkeys-1)]]; ok {
			sink++
		}
	}
}

// arith is work in no map.
//
//go:noinline
func arith(n int) {
	x := sink
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	sink = x
}

//go:noinline
func hashes(seed maphash.Seed, n int) {
	for i := 0; i < n; i++ {
		sink += int(maphash.String(seed, keys[i&(nkeys-1)]))
	}
}

func mix(ms int64, nl, na int) {
	var mapNS, otherNS int64
	done := 0
	for mapNS+otherNS < ms*1e6 {
		t0 := threadCPU()
		lookups(nl, done)
		t1 := threadCPU()
		arith(na)
		t2 := threadCPU()
		mapNS += t1 - t0
		otherNS += t2 - t1
		done += nl
	}
	fmt.Printf("mix %d %d\n", mapNS, otherNS)
}

func main() {
	runtime.LockOSThread()
	keys = make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%08d", i)
		table[keys[i]] = i
	}
	b := strings.Repeat("k", 16<<10)
	big[b] = 1
	bigKey = string([]byte(b))
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		arg := func(i int) int {
			n, _ := strconv.Atoi(f[i])
			return n
		}
		switch {
		case len(f) == 4 && f[0] == "mix":
			mix(int64(arg(1)), arg(2), arg(3))
		case len(f) == 2 && f[0] == "arith":
			t0 := threadCPU()
			for threadCPU()-t0 < int64(arg(1))*1e6 {
				arith(100000)
			}
			fmt.Printf("arith %d\n", threadCPU()-t0)
		case len(f) == 2 && f[0] == "maphash":
			t0 := threadCPU()
			seed := maphash.MakeSeed()
			for threadCPU()-t0 < int64(arg(1))*1e6 {
				hashes(seed, 10000)
			}
			fmt.Printf("maphash %d\n", threadCPU()-t0)
		case len(f) == 2 && f[0] == "fixed":
			t0 := threadCPU()
			for i := arg(1); i > 0; i-- {
				sink += big[bigKey]
			}
			fmt.Printf("fixed %d\n", threadCPU()-t0)
		}
	}
}
