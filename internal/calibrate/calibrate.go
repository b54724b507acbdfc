// Package calibrate measures what one uprobe hit costs on this machine, for
// the overhead estimate and the governor: the cost varies 30× with the
// probed instruction and 10× between VMs and bare metal, so it is measured,
// not assumed.
package calibrate

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/collector"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
)

// measuring serializes Measure.
var measuring sync.Mutex

// calls is how many probed calls a measurement makes: enough to average out
// timer noise, few enough to take milliseconds even at 20µs a hit.
const calls = 2000

// rounds is how many times the probed calls are timed.
const rounds = 5

//go:noinline
func probed(t, m unsafe.Pointer, k uint64) uint64 {
	return leaf(k) + uint64(uintptr(t)) + uint64(uintptr(m))
}

//go:noinline
func leaf(k uint64) uint64 { return k * 3 }

// Cost is what a probe hit costs on this machine.
type Cost struct {
	// Hit is a whole hit of the map program: the trap, the kernel's
	// uprobe dispatch and the program.
	Hit time.Duration
	// Program is the program's part of it, timed by the program itself.
	Program time.Duration
}

// Trap is what a hit costs besides its program: what every probe pays,
// whatever its program does.
func (c Cost) Trap() time.Duration { return max(0, c.Hit-c.Program) }

// Measure returns the cost of one hit of the map program on an entry site
// (PUSHQ BP on amd64, B.LS on arm64, which the kernel emulates, as every
// maptrace probe's is), from calls of a function of this process timed
// probed and unprobed. The probe is a map read's by a uint64 key, hot keys
// counted: the commonest hit. It loads its own copy of the program, so that
// the trace's maps stay clean.
//
// Measurements run one at a time: two probes on the one probed function
// would each count the other's hits.
func Measure(goidOffset uint64, layout probes.MapLayout, multi bool) (Cost, error) {
	costs, err := measureSites(goidOffset, layout, multi, func(s probes.Sites, _ uint64) []uint64 { return []uint64{s.Entry} })
	if err != nil {
		return Cost{}, err
	}
	return costs[0], nil
}

// probedName is the function Measure probes.
const probedName = "github.com/maptrace/maptrace/internal/calibrate.probed"

// measureSites measures a hit at each of the file offsets in probed that
// pick returns, given its sites and its first instruction's offset.
func measureSites(goidOffset uint64, layout probes.MapLayout, multi bool, pick func(s probes.Sites, first uint64) []uint64) ([]Cost, error) {
	measuring.Lock()
	defer measuring.Unlock()
	maps, err := probes.LoadMaps(goidOffset, layout, true, multi)
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	bin, err := symbols.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer bin.Close()
	sites, err := probes.FuncSites(bin, probedName)
	if err != nil {
		return nil, err
	}
	fn, _ := bin.Func(probedName)
	first, err := bin.FileOffset(fn.Entry)
	if err != nil {
		return nil, err
	}

	// The calls are timed on this thread's CPU clock, which a hit's kernel
	// work is charged to, so that a busy machine (the target under load,
	// during an incident) does not inflate the cost by descheduling us.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var fake [64]byte // a map header with no flags set
	run := func() time.Duration {
		for i := 0; i < calls/10; i++ { // warm up: fault in the probed page
			probed(unsafe.Pointer(&fake), unsafe.Pointer(&fake), uint64(i&3))
		}
		start := threadCPU()
		for i := 0; i < calls; i++ {
			probed(unsafe.Pointer(&fake), unsafe.Pointer(&fake), uint64(i&3))
		}
		return threadCPU() - start
	}
	base := run()
	var out []Cost
	for _, off := range pick(sites, first) {
		l, err := probes.Attach("/proc/self/exe", os.Getpid(), multi,
			[]probes.Probe{{Func: probedName, Offset: off, Prog: maps.MapOp, Cookie: probes.Fast64ReadCookie(0)}})
		if err != nil {
			return nil, fmt.Errorf("calibrate the probe cost: %w", err)
		}
		runs0, ns0, _ := collector.ProgTime(maps.ProgTime, probes.ProgTimeMapOp)
		// The median of a few rounds: a VM's steal time or a migration can
		// distort any one of them.
		var costs []time.Duration
		for i := 0; i < rounds; i++ {
			costs = append(costs, max(0, run()-base)/calls)
		}
		l.Close()
		slices.Sort(costs)
		c := Cost{Hit: costs[rounds/2]}
		// The program's own time at this site: its timed runs since attaching.
		if runs, ns, err := collector.ProgTime(maps.ProgTime, probes.ProgTimeMapOp); err == nil && runs > runs0 {
			c.Program = min(c.Hit, time.Duration((ns-ns0)/(runs-runs0)))
		}
		out = append(out, c)
	}
	return out, nil
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}
