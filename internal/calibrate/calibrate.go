// Package calibrate measures what one uprobe hit costs on this machine, for
// the overhead estimate and the governor: the cost varies 30× with the
// probed instruction and 10× between VMs and bare metal, so it is measured,
// not assumed.
package calibrate

import (
	"fmt"
	"os"
	"slices"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Costs are the measured costs of one probe hit.
type Costs struct {
	Entry time.Duration // an entry probe on an emulated instruction (PUSHQ BP)
	Ret   time.Duration // a probe on a RET, which the kernel single-steps
}

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

// Measure times calls of a function of this process with the map program
// at its entry site and the mutex return program at its RETs, against the
// same calls unprobed. It loads its own copies of the programs, so that the
// trace's maps stay clean.
func Measure(goidOffset uint64, layout probes.MapLayout, multi bool) (Costs, error) {
	maps, err := probes.LoadMaps(goidOffset, layout, true, multi)
	if err != nil {
		return Costs{}, err
	}
	defer maps.Close()
	mutex, err := probes.LoadMutex(goidOffset, multi)
	if err != nil {
		return Costs{}, err
	}
	defer mutex.Close()
	return measure(maps.MapOp, mutex.SemaAcquired, probes.Cookie(0, probes.OpRead), multi)
}

func measure(entry, ret *ebpf.Program, entryCookie uint64, multi bool) (Costs, error) {
	bin, err := symbols.Open("/proc/self/exe")
	if err != nil {
		return Costs{}, err
	}
	defer bin.Close()
	name := "github.com/maptrace/maptrace/internal/calibrate.probed"
	sites, err := probes.FuncSites(bin, name)
	if err != nil {
		return Costs{}, err
	}
	var fake [64]byte // a map header with no flags set
	run := func() time.Duration {
		for i := 0; i < calls/10; i++ { // warm up: fault in the probed page
			probed(unsafe.Pointer(&fake), unsafe.Pointer(&fake), uint64(i))
		}
		start := time.Now()
		for i := 0; i < calls; i++ {
			probed(unsafe.Pointer(&fake), unsafe.Pointer(&fake), uint64(i))
		}
		return time.Since(start)
	}
	// The median of a few rounds: one round is a few milliseconds, and a
	// VM's steal time or a migration can distort any one of them.
	measure := func(ps []probes.Probe) (time.Duration, error) {
		base := run()
		l, err := probes.Attach("/proc/self/exe", os.Getpid(), multi, ps)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		var costs []time.Duration
		for i := 0; i < rounds; i++ {
			// Each call hits the entry probe, or exactly one RET.
			costs = append(costs, max(0, run()-base)/calls)
		}
		slices.Sort(costs)
		return costs[rounds/2], nil
	}
	var c Costs
	if c.Entry, err = measure([]probes.Probe{{Func: name, Offset: sites.Entry, Prog: entry, Cookie: entryCookie}}); err != nil {
		return Costs{}, fmt.Errorf("calibrate entry probe: %w", err)
	}
	var ps []probes.Probe
	for _, r := range sites.Rets {
		ps = append(ps, probes.Probe{Func: name, Offset: r, Prog: ret})
	}
	if c.Ret, err = measure(ps); err != nil {
		return Costs{}, fmt.Errorf("calibrate return probe: %w", err)
	}
	return c, nil
}
