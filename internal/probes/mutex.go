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
)

// A probeGroup is one thing to probe, under the names it has had across Go
// versions; the group is missing when none of them is in the binary.
type probeGroup struct {
	what  string
	names []string
	kind  uint8
	since int // first Go 1.x minor version that has it
}

// Probe the parks, not the lock path: lockSlow spins and retries millions of
// times a second under contention, while a goroutine parks once per wait.
var semacquires = []probeGroup{
	{"mutex waits", []string{"sync.runtime_SemacquireMutex", "internal/sync.runtime_SemacquireMutex"}, KindMutex, 19},
	{"RWMutex read waits", []string{"sync.runtime_SemacquireRWMutexR"}, KindRWRead, 20},
	{"RWMutex write waits", []string{"sync.runtime_SemacquireRWMutex"}, KindRWWrite, 20},
}

// semrelease is where a holder wakes waiters.
var semrelease = probeGroup{"mutex holders", []string{"sync.runtime_Semrelease", "internal/sync.runtime_Semrelease"}, 0, 19}

// wakeup is where a releaser makes a parked waiter runnable, the end of its
// wait: semrelease1's call of readyWithTime (out of line in every Go release
// from 1.19). The call, not readyWithTime's entry: sync.Cond wakes its
// waiters through readyWithTime too, often, and they are not mutex waits.
var wakeup = probeGroup{"mutex wake-ups", []string{"runtime.semrelease1"}, 0, 19}

// Plan is the probes of one BPF collection.
type Plan struct {
	Probes []Probe
	// Names maps a hit counter's index to the probed function.
	Names []string
	// Missing says what could not be probed in this binary, and why.
	Missing []string
}

// add places prog at fn's entry, with its own hit counter.
func (p *Plan) add(fn string, s Sites, prog *ebpf.Program, value uint8) {
	p.Probes = append(p.Probes, entryProbe(fn, s, prog, len(p.Names), value))
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

// PlanMutex places the mutex probes, all on emulated instructions: the
// entries of the semacquire functions (a park starts) and of
// runtime_Semrelease (a holder releases to waiters), and runtime.semrelease1's
// call of runtime.readyWithTime (a waiter is woken: its wait ends).
func PlanMutex(bin *symbols.Binary, objs *bpf.MutexObjects) (*Plan, error) {
	p := &Plan{}
	minor := GoMinor(bin.GoVersion)
	for _, g := range semacquires {
		err := eachName(bin, g, minor, p, func(name string, s Sites) error {
			p.add(name, s, objs.SemaAcquire, g.kind)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := eachName(bin, semrelease, minor, p, func(name string, s Sites) error {
		p.add(name, s, objs.SemaRelease, 0)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachName(bin, wakeup, minor, p, func(name string, s Sites) error {
		ready, ok := bin.Func("runtime.readyWithTime")
		idx := len(p.Names)
		for _, c := range s.Calls {
			if ok && c.Target == ready.Entry {
				p.Probes = append(p.Probes, Probe{Func: name, Offset: c.At, Prog: objs.SemaReady, Cookie: Cookie(idx, 0)})
			}
		}
		if len(p.Probes) == idx {
			p.Missing = append(p.Missing, name+" calls no runtime.readyWithTime (mutex wake-ups), so mutex waits are not timed")
			return nil
		}
		p.Names = append(p.Names, name+" → runtime.readyWithTime")
		return nil
	}); err != nil {
		return nil, err
	}
	return p, nil
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
	if !found && minor >= g.since {
		p.Missing = append(p.Missing, fmt.Sprintf("%s (%s): not in this binary, so not traced", strings.Join(g.names, " / "), g.what))
	}
	return nil
}

// GoMinor returns the minor version of a "go1.N[.P]" string, or 0.
func GoMinor(v string) int {
	v = strings.TrimPrefix(v, "go1.")
	if i := strings.IndexAny(v, ".rcbeta-+ X"); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}
