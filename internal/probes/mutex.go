package probes

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Mutex kinds, as the mutex programs record them (the low byte of a cookie).
const (
	KindMutex   = 1 // sync.Mutex, or the writers' mutex inside sync.RWMutex
	KindRWRead  = 2 // RWMutex.RLock waiting for a writer
	KindRWWrite = 3 // RWMutex.Lock waiting for readers to drain
	KindFD      = 4 // a file's or socket's lock (internal/poll.fdMutex), or its Close
)

// A probeGroup is one thing to probe, under the names it has had across Go
// versions; the group is missing when none of them is in the binary.
type probeGroup struct {
	what  string
	names []string
	kind  uint8
	since int // first Go 1.x minor version that has it
	// linkedIfUsed: the linker keeps it only in programs that use it, so
	// a binary without it is not missing anything.
	linkedIfUsed bool
}

// The wrappers through which mutexes park, each calling runtime.semacquire1:
// the return address into one tells the mutex kind.
var semacquires = []probeGroup{
	{what: "mutex waits", names: []string{"sync.runtime_SemacquireMutex", "internal/sync.runtime_SemacquireMutex"}, kind: KindMutex, since: 19},
	{what: "RWMutex read waits", names: []string{"sync.runtime_SemacquireRWMutexR"}, kind: KindRWRead, since: 20},
	{what: "RWMutex write waits", names: []string{"sync.runtime_SemacquireRWMutex"}, kind: KindRWWrite, since: 20},
	// Goroutines reading or writing one file or socket at once: a UDP
	// server's handlers writing their answers to its one socket.
	{what: "file lock waits", names: []string{"internal/poll.runtime_Semacquire"}, kind: KindFD, since: 19, linkedIfUsed: true},
}

// park is where a goroutine parks on a semaphore: semacquire1's call of
// gopark. Probe the parks, not the lock path: lockSlow spins and retries
// millions of times a second under contention, the wrappers' entries fire
// for every acquire, and semacquire1's slow path, entered 8× as often as it
// parks in nats-server, mostly finds the semaphore released by then.
var park = probeGroup{what: "mutex parks", names: []string{"runtime.semacquire1"}, since: 19}

// wakeup is where a releaser makes a parked waiter runnable, the end of its
// wait: semrelease1's call of readyWithTime (out of line in every Go release
// from 1.19). The call, not readyWithTime's entry: sync.Cond wakes its
// waiters through readyWithTime too, often, and they are not mutex waits.
var wakeup = probeGroup{what: "mutex wake-ups", names: []string{"runtime.semrelease1"}, since: 19}

// The callees of the probed calls: the kernel emulates a probed call, so the
// target resumes from the probe at the callee's first instruction.
const (
	parkCallee = "runtime.gopark"
	wakeCallee = "runtime.readyWithTime"
)

// MutexCalls returns the addresses of the calls the mutex probes can sit on
// (semacquire1's of gopark, semrelease1's of readyWithTime), and the callees
// the target resumes at from them: a CPU sample taken at either while the
// kernel runs a probe is the mutex probes' time (cpuprof).
func MutexCalls(bin *symbols.Binary) (calls []uint64, callees []string) {
	for _, c := range [][2]string{{park.names[0], parkCallee}, {wakeup.names[0], wakeCallee}} {
		cs, _ := callSites(bin, c[0], c[1]) // none: not probed either
		for _, call := range cs {
			if a, err := bin.VAddr(call.At); err == nil {
				calls = append(calls, a)
			}
		}
	}
	return calls, []string{parkCallee, wakeCallee}
}

// The programs' slots in their collection's prog_time table (PROG_TIME_*
// in bpf/maps.bpf.c and bpf/mutex.bpf.c).
const (
	ProgTimeMapOp      = 0
	ProgTimeMapPublish = 1
	ProgTimePark       = 0
	ProgTimeReady      = 1
)

// Plan is the probes of one BPF collection.
type Plan struct {
	Probes []Probe
	// Names maps a hit counter's index, less Base, to the probed function.
	Names []string
	// Base is the index of Names[0]'s hit counter: plans that share a
	// collection's counters (the map and fatal-error probes) must not
	// share counters.
	Base int
	// Missing says what could not be probed in this binary, and why.
	Missing []string
}

// add places prog at fn's entry, with its own hit counter.
func (p *Plan) add(fn string, s Sites, prog *ebpf.Program, value uint8) {
	p.Probes = append(p.Probes, entryProbe(fn, s, prog, p.Base+len(p.Names), value))
	p.Names = append(p.Names, fn)
}

// LoadMutex loads the mutex programs for a target whose goid is at goidOffset.
func LoadMutex(goidOffset uint64, multi bool) (*bpf.MutexObjects, error) {
	spec, err := bpf.LoadMutex()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["goid_offset"].Set(goidOffset); err != nil {
		return nil, err
	}
	PrepareSpec(spec, multi)
	var objs bpf.MutexObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load mutex programs: %w", err)
	}
	return &objs, nil
}

// PlanMutex places the mutex probes, both on calls, which the kernel
// emulates: runtime.semacquire1's call of runtime.gopark (a park starts)
// and runtime.semrelease1's call of runtime.readyWithTime (a waiter
// is woken: its wait ends). It fills objs' park_callers with the sync
// wrappers that call semacquire1, which tell a mutex's park from others.
func PlanMutex(bin *symbols.Binary, objs *bpf.MutexObjects) (*Plan, error) {
	p := &Plan{}
	minor := GoMinor(bin.GoVersion)
	ready, err := callSites(bin, wakeup.names[0], wakeCallee)
	if err != nil {
		return nil, err
	}
	if len(ready) == 0 {
		p.Missing = append(p.Missing, "runtime.semrelease1 calls no runtime.readyWithTime (mutex wake-ups), so mutex waits are not timed")
		return p, nil
	}
	at, slot, err := parkSite(bin)
	if err != nil {
		p.Missing = append(p.Missing, err.Error()+" (mutex parks), so mutex waits are not traced")
		return p, nil
	}
	for _, g := range semacquires {
		err := eachName(bin, g, minor, p, func(name string, _ Sites) error {
			calls, err := callSites(bin, name, "runtime.semacquire1")
			if err != nil {
				return err
			}
			if len(calls) == 0 {
				p.Missing = append(p.Missing, fmt.Sprintf("%s calls no runtime.semacquire1 (%s), so they are not traced", name, g.what))
			}
			for _, c := range calls {
				dist := int64(c.At+callSize(bin.Arch)) - int64(at)
				if err := objs.ParkCallers.Put(dist, uint32(g.kind)); err != nil {
					return fmt.Errorf("park callers: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	parkProbe := Probe{Func: park.names[0], Offset: at, Prog: objs.SemaPark, Cookie: Cookie(p.Base+len(p.Names), 0) | uint64(slot)<<cookieSlotShift}
	p.Names = append(p.Names, park.names[0]+" → runtime.gopark")

	// The wake-up probes first and the park probe last: attached in this
	// order, every park noted has its wake-up probed, and detached in the
	// reverse (Links.CloseReverse) the parks noted last still end in view.
	idx := p.Base + len(p.Names)
	for _, c := range ready {
		p.Probes = append(p.Probes, Probe{Func: wakeup.names[0], Offset: c.At, Prog: objs.SemaReady, Cookie: Cookie(idx, 0)})
	}
	p.Names = append(p.Names, wakeup.names[0]+" → runtime.readyWithTime")
	p.Probes = append(p.Probes, parkProbe)
	return p, nil
}

// parkSite returns the file offset of semacquire1's call of gopark, where a
// goroutine parks on a semaphore, once it has spilled the semaphore to its
// argument slot (checked at the call of acquireSudog, on the way there), and
// that slot's offset from the frame pointer.
func parkSite(bin *symbols.Binary) (at uint64, slot int64, err error) {
	sudog, err := callSites(bin, "runtime.semacquire1", "runtime.acquireSudog")
	if err != nil {
		return 0, 0, err
	}
	park, err := callSites(bin, park.names[0], parkCallee)
	if err != nil {
		return 0, 0, err
	}
	if len(sudog) != 1 || !sudog[0].ArgSpilled || len(park) != 1 || park[0].At < sudog[0].At {
		return 0, 0, errors.New("runtime.semacquire1 does not spill its semaphore, then call runtime.gopark once")
	}
	s, err := FuncSites(bin, "runtime.semacquire1")
	if err != nil {
		return 0, 0, err
	}
	if s.ArgSlot <= 0 || s.ArgSlot > 0xffff {
		return 0, 0, fmt.Errorf("runtime.semacquire1: spill slot %d out of the cookie's range", s.ArgSlot)
	}
	return park[0].At, s.ArgSlot, nil
}

// callSites returns fn's calls of callee (file offsets); none if either is
// not in the binary.
func callSites(bin *symbols.Binary, fn, callee string) ([]Call, error) {
	s, err := FuncSites(bin, fn)
	if errors.Is(err, ErrNoSymbol) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	target, ok := bin.Func(callee)
	if !ok {
		return nil, nil
	}
	var out []Call
	for _, c := range s.Calls {
		if c.Target == target.Entry {
			out = append(out, c)
		}
	}
	return out, nil
}

// eachName calls f for every name of g present in bin, and records g as
// missing when the binary's Go version should have had one.
func eachName(bin *symbols.Binary, g probeGroup, minor int, p *Plan, f func(name string, s Sites) error) error {
	found := false
	for _, name := range g.names {
		s, err := FuncSites(bin, name)
		if errors.Is(err, ErrNoSymbol) {
			continue
		}
		if err != nil {
			return err
		}
		if err := f(name, s); err != nil {
			return err
		}
		found = true
	}
	if !found && g.expected(minor) {
		p.Missing = append(p.Missing, fmt.Sprintf("%s (%s): not in this binary, so not traced", strings.Join(g.names, " / "), g.what))
	}
	return nil
}

// expected says whether a binary of Go 1.minor must have g.
func (g probeGroup) expected(minor int) bool { return minor >= g.since && !g.linkedIfUsed }

// GoMinor returns the minor version of a "go1.N[.P]" string, or 0.
func GoMinor(v string) int {
	v = strings.TrimPrefix(v, "go1.")
	if i := strings.IndexAny(v, ".rcbeta-+ X"); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}
