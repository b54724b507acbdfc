// Package demo is the workload `maptrace demo` traces: a small Go program
// with the problems maptrace is for — a contended mutex, an RWMutex with a
// slow writer, a map with a hot key, and a map two goroutines write without a
// lock. It runs inside the maptrace binary (a hidden subcommand), so the demo
// needs no Go toolchain.
package demo

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The workload's state. Globals, so that maptrace names the mutexes
// (github.com/maptrace/maptrace/internal/demo.ordersMu and .configMu).
var (
	// ordersMu guards orders, which workers update with keys spread over
	// 256 ids while holding the lock too long (now and then sleeping under
	// it, as code doing I/O under a lock does).
	ordersMu sync.Mutex
	orders   = map[int64]int64{}

	// configMu guards config: read all the time, key "region" in half of
	// the lookups, and rewritten now and then by a slow writer.
	configMu sync.RWMutex
	config   = map[string]string{}

	// inventory is written by two goroutines with no lock at all: Go's
	// runtime kills the process when it catches them at it.
	inventory = map[int64]int64{}

	sink atomic.Int64
)

// Options shape the workload.
type Options struct {
	// Started, when not nil, delays the race's clock until it is closed
	// (maptrace closes it once its probes are attached).
	Started <-chan struct{}
	// RaceAfter is how long after the start the unguarded writes begin, so
	// that contention and hot keys are measured before the race can kill
	// the process. 0 means 2s.
	RaceAfter time.Duration
	// Ready, when not nil, is called once every goroutine runs.
	Ready func()
}

// Tunables: the demo must show contention on a 2-CPU machine without
// taking it over, with few enough lock waits and map operations that the
// probes cost the target little.
const (
	orderWorkers  = 6
	orderKeys     = 256
	holdSpin      = 200 * time.Microsecond // bookkeeping under ordersMu
	slowHold      = 8 * time.Millisecond   // every slowEvery-th order, a slow call under ordersMu
	slowEvery     = 4
	orderPause    = 30 * time.Millisecond
	configReaders = 3
	configFlags   = 20
	readPause     = 4 * time.Millisecond
	reloadEvery   = 100 * time.Millisecond
	reloadHold    = 15 * time.Millisecond // the slow writer holds configMu this long

	// The race writes raceBurst times between pauses; the pause starts at
	// racePause and halves every raceRamp, down to none once under
	// raceMinPause: gentle at first, so that the runtime usually catches it
	// a second or two in, not at once, and certainly within 3s.
	raceBurst      = 4
	racePause      = 4 * time.Millisecond
	raceRamp       = 300 * time.Millisecond
	raceMinPause   = 50 * time.Microsecond
	defaultRaceDly = 2 * time.Second
)

// Workload runs until ctx is done, or until the runtime kills the process
// for the unguarded map writes ("fatal error: concurrent map writes"),
// which is expected.
func Workload(ctx context.Context, opts Options) {
	if opts.RaceAfter <= 0 {
		opts.RaceAfter = defaultRaceDly
	}
	config["region"] = "eu-west-1"
	for i := 0; i < configFlags; i++ {
		config[flagKey(i)] = "off"
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	for i := 0; i < orderWorkers; i++ {
		run(recordOrders)
	}
	for i := 0; i < configReaders; i++ {
		run(readConfig)
	}
	run(reloadConfig)
	run(func(ctx context.Context) {
		if opts.Started != nil {
			select {
			case <-opts.Started:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-time.After(opts.RaceAfter):
		case <-ctx.Done():
			return
		}
		var race sync.WaitGroup
		race.Add(2)
		go func() { defer race.Done(); restock(ctx) }()
		go func() { defer race.Done(); sell(ctx) }()
		race.Wait()
	})
	if opts.Ready != nil {
		opts.Ready()
	}
	wg.Wait()
}

var flagKeys = func() []string {
	ks := make([]string, configFlags)
	for i := range ks {
		ks[i] = "flag:" + strconv.Itoa(i)
	}
	return ks
}()

// done polls ctx without taking its lock (cancelCtx.Err locks a mutex,
// which would add a contended mutex of its own to the demo).
func done(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

func flagKey(i int) string { return flagKeys[i%configFlags] }

//go:noinline
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// recordOrders counts orders by id under ordersMu, holding it for the
// bookkeeping and now and then for a slow call.
//
//go:noinline
func recordOrders(ctx context.Context) {
	for i := 0; !done(ctx); i++ {
		id := rand.Int64N(orderKeys)
		ordersMu.Lock()
		orders[id]++
		if i%slowEvery == 0 {
			time.Sleep(slowHold) // e.g. a write to a log, under the lock
		} else {
			spin(holdSpin)
		}
		ordersMu.Unlock()
		time.Sleep(orderPause)
	}
}

// readConfig looks settings up under the read lock: "region" in half of
// the lookups.
//
//go:noinline
func readConfig(ctx context.Context) {
	for i := 0; !done(ctx); i++ {
		key := "region"
		if i%2 == 1 {
			key = flagKey(i / 2)
		}
		configMu.RLock()
		v := config[key]
		configMu.RUnlock()
		sink.Add(int64(len(v)))
		time.Sleep(readPause)
	}
}

// reloadConfig rewrites the settings under the write lock, slowly.
//
//go:noinline
func reloadConfig(ctx context.Context) {
	t := time.NewTicker(reloadEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		configMu.Lock()
		for i := 0; i < 2; i++ {
			config[flagKey(n*2+i)] = strconv.Itoa(n)
		}
		time.Sleep(reloadHold) // e.g. parsing a file while holding the lock
		configMu.Unlock()
	}
}

// restock and sell write inventory with no lock: a data race, throttled so
// that it lasts a while before the runtime catches it.
//
//go:noinline
func restock(ctx context.Context) {
	th := newThrottle()
	for i := 0; !done(ctx); i++ {
		inventory[int64(i%64)] += 10
		th.tick(i)
	}
}

//go:noinline
func sell(ctx context.Context) {
	th := newThrottle()
	for i := 0; !done(ctx); i++ {
		inventory[int64(i%64)]--
		th.tick(i)
	}
}

// throttle paces a racing goroutine: a pause every raceBurst writes, halved
// every raceRamp.
type throttle struct {
	pause time.Duration
	next  time.Time
}

func newThrottle() *throttle { return &throttle{pause: racePause, next: time.Now().Add(raceRamp)} }

func (t *throttle) tick(i int) {
	if i%raceBurst != 0 {
		return
	}
	if t.pause >= raceMinPause {
		time.Sleep(t.pause)
	} else {
		runtime.Gosched()
	}
	if now := time.Now(); now.After(t.next) {
		t.pause /= 2
		t.next = now.Add(raceRamp)
	}
}
