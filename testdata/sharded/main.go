// Command sharded is a test target: two sharded maps, one of its own (16
// shards, each a mutex and a map, picked by FNV-1a of the key) and one of
// github.com/orcaman/concurrent-map/v2 (32 shards), used with a skewed key.
// On "own N" or "cmap N" four goroutines do N operations each on that map —
// 7 reads to 3 writes, half of them on key "hot", the rest spread over 1000
// keys — and it answers what it counted itself:
//
//	own|cmap OPS HOTKEYOPS SHARDS HOTSHARD HOTSHARDOPS
//
// with HOTSHARD the address of the busiest shard's map header.
package main

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	cmap "github.com/orcaman/concurrent-map/v2"
)

var sink int

type shard struct {
	mu sync.Mutex
	m  map[string]int
}

// sharded is the array-of-{mutex; map} that concurrent-map libraries build.
type sharded struct{ shards []*shard }

func newSharded(n int) *sharded {
	s := &sharded{shards: make([]*shard, n)}
	for i := range s.shards {
		s.shards[i] = &shard{m: make(map[string]int)}
	}
	return s
}

func (s *sharded) shard(key string) *shard {
	h := fnv.New32a()
	h.Write([]byte(key))
	return s.shards[h.Sum32()%uint32(len(s.shards))]
}

//go:noinline
func (s *sharded) get(key string) int {
	sh := s.shard(key)
	sh.mu.Lock()
	v := sh.m[key]
	sh.mu.Unlock()
	return v
}

//go:noinline
func (s *sharded) set(key string, v int) {
	sh := s.shard(key)
	sh.mu.Lock()
	sh.m[key] = v
	sh.mu.Unlock()
}

// mapAddr is the map header address a map variable holds: what the probes see.
func mapAddr(m *map[string]int) uintptr { return *(*uintptr)(unsafe.Pointer(m)) }

// run has four goroutines do n operations each through get and set, with
// shardOf naming the shard's map header of a key; it answers the counts.
func run(name string, n int, get func(string) int, set func(string, int), shardOf func(string) uintptr, shards int) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	var (
		mu      sync.Mutex
		perMap  = map[uintptr]int{}
		hotOps  int
		wg      sync.WaitGroup
		workers = 4
	)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := map[uintptr]int{}
			hot := 0
			x := uint32(g*7919 + 1)
			for i := 0; i < n; i++ {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				k := keys[x%uint32(len(keys))]
				if i%2 == 0 {
					k = "hot"
					hot++
				}
				if i%10 < 3 {
					set(k, i)
				} else {
					sink += get(k)
				}
				mine[shardOf(k)]++
			}
			mu.Lock()
			for a, c := range mine {
				perMap[a] += c
			}
			hotOps += hot
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	var busiest uintptr
	for a, c := range perMap {
		if c > perMap[busiest] {
			busiest = a
		}
	}
	fmt.Printf("%s %d %d %d %#x %d\n", name, workers*n, hotOps, shards, busiest, perMap[busiest])
}

func main() {
	own := newSharded(16)
	cm := cmap.New[int]()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "own":
			run("own", n, own.get, own.set, func(k string) uintptr { return mapAddr(&own.shard(k).m) }, len(own.shards))
		case "cmap":
			// A shard's map is its first field.
			run("cmap", n, func(k string) int { v, _ := cm.Get(k); return v }, func(k string, v int) { cm.Set(k, v) },
				func(k string) uintptr { return mapAddr((*map[string]int)(unsafe.Pointer(cm.GetShard(k)))) }, cmap.SHARD_COUNT)
		}
	}
}
