// Package cpuprof samples the target's CPU time with the kernel's CPU clock
// and counts the samples that land in Go map operations, by the operation's
// call site. Unlike the map probes it costs nothing per map operation: a
// sample every 1/Hz seconds of CPU time, on each CPU, whatever runs there;
// Hz is chosen so that the samples fit a share of the overhead budget.
//
// A sample counts as map time when it is taken in user mode in a map
// function: an entry point the map probes attach to, or a function doing its
// work (hashing, comparing, growing) called from one. Samples in kernel mode
// never do, so the traps of maptrace's own map probes, which run at the map
// functions' entries, add nothing to the map time.
//
// Needs perf events (CAP_PERFMON) and a BPF perf-event link (Linux 5.15+;
// older kernels attach through an ioctl).
package cpuprof

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Result is what the samples say, counted since Start.
type Result struct {
	Hz int
	// Samples are the target's samples, in user and kernel mode.
	Samples uint64
	// User are the samples taken in user mode.
	User uint64
	// Resume are the user-mode samples where a probe resumes (the
	// instruction after an entry probe, a probed call's callee): the
	// probe's time, taken as the kernel returned from it.
	Resume uint64
	// Trap are the kernel-mode samples whose user registers point where a
	// probe traps or resumes: the kernel running the probe.
	Trap uint64
	// MutexProbe are the samples of Resume and Trap at the mutex probes.
	MutexProbe uint64
	// Map are the user-mode samples inside a map operation.
	Map uint64
	// NoCaller are samples in map code whose stack ended before the map
	// operation's caller: in Map if an entry point was seen, else in no count.
	NoCaller uint64
	// Sites are Map's samples by call site: the return address into the
	// map operation's caller, which the map probes record as a site's caller.
	Sites map[uint64]uint64
	// Lost counts stacks that could not be read and samples whose site did
	// not fit the table.
	Lost uint64
	// Program is the time the sampling program ran on the target's
	// samples, as it times itself.
	Program time.Duration
}

// Kernel is the samples of the kernel's time: in kernel mode, or where a
// probe resumes.
func (r *Result) Kernel() uint64 {
	// A CPU's user count may be read newer than its total, and its resume
	// count newer than its user count.
	user := min(r.User, r.Samples)
	return r.Samples - user + min(r.Resume, user)
}

// ProbeSamples are the samples in maptrace's probes (in their traps, or
// where they resume): the mutex probes', and the others'.
func (r *Result) ProbeSamples() (mutex, other uint64) {
	// A CPU's mutex count may be read older than the two it is part of.
	all := r.Resume + r.Trap
	return min(r.MutexProbe, all), all - min(r.MutexProbe, all)
}

// Seconds turns samples into CPU seconds.
func (r *Result) Seconds(samples uint64) float64 { return float64(samples) / float64(r.Hz) }

// Cost is what the samples cost the target: the interrupts that took them,
// at interrupt each, and the program's run time on them.
func (r *Result) Cost(interrupt time.Duration) time.Duration {
	return time.Duration(r.Samples)*interrupt + r.Program
}

// Program is the sampling program on a CPU clock on every online CPU. One
// Program samples every target added to it: the agent's many cost one
// program to verify, and one run per sample, not one per target.
type Program struct {
	objs   objects
	events []event
	hz     int
	// sampleCost is what the interrupt that takes a sample costs the
	// thread it interrupts (MeasureSample).
	sampleCost time.Duration

	mu     sync.Mutex
	tables map[*symbols.Binary]*table // step tables by binary, shared by its processes
	nextID uint32
}

// table is a binary's map code in the program's step_tables.
type table struct {
	id      uint32
	refs    int
	dropped []string
}

// objects are the parts of bpf.CpuObjects the program uses: common.h's
// stack and hit maps are left unloaded.
type objects struct {
	Prog    *ebpf.Program `ebpf:"cpu_sample"`
	Targets *ebpf.Map     `ebpf:"targets"`
	Tables  *ebpf.Map     `ebpf:"step_tables"`
	Sites   *ebpf.Map     `ebpf:"map_cpu_sites"`
}

// event is one CPU's clock and the program on it.
type event struct {
	fd   int
	link link.Link // nil when attached by ioctl, which closing the fd undoes
}

// Open measures what a sample costs, loads the program and starts the CPU
// clocks at the frequency that keeps that cost within a share of budget
// (HzFor). It samples nothing until a target is added. On error nothing
// stays open.
func Open(budget float64) (*Program, error) {
	// Samples are matched by the pid the kernel's initial namespace gives
	// the target, which is the one maptrace knows only if it runs there.
	if ino, err := pidNamespace(); err != nil {
		return nil, err
	} else if ino != initPIDNamespace {
		return nil, errors.New("maptrace runs in a PID namespace of its own: samples cannot be matched to the target")
	}
	cost, err := MeasureSample()
	if err != nil {
		return nil, fmt.Errorf("perf_event_open cpu-clock: %w", err)
	}
	p := &Program{tables: map[*symbols.Binary]*table{}, hz: HzFor(budget, cost), sampleCost: cost}
	err = p.load(preallocate)
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && !preallocate {
		// Before Linux 6.1 a perf_event program may use preallocated hash
		// maps only.
		if err2 := p.load(true); err2 == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load sampler program: %w", err)
	}
	if err := p.open(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Preallocated, the tables are allocated whole when loaded, so they hold
// fewer: step tables of 64 KiB for this many binaries, and this many
// targets.
const (
	preallocTables  = 16
	preallocTargets = 256
)

// preallocate loads the tables preallocated, as kernels before 6.1 need;
// tests set it to try that path on newer ones.
var preallocate = false

// load loads the program and its maps into p.objs, the tables
// preallocated (and smaller) if prealloc is set.
func (p *Program) load(prealloc bool) error {
	spec, err := bpf.LoadCpu()
	if err != nil {
		return err
	}
	if prealloc {
		for name, max := range map[string]uint32{"step_tables": preallocTables, "targets": preallocTargets} {
			m := spec.Maps[name]
			m.Flags &^= unix.BPF_F_NO_PREALLOC
			m.MaxEntries = max
		}
	}
	var objs objects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return err
	}
	p.objs = objs
	return nil
}

// open opens a CPU clock on every online CPU, attaches the program to each,
// then enables them all.
func (p *Program) open() error {
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	for _, cpu := range cpus {
		// System-wide on the CPU, filtered by pid in the program: clocks
		// on the target's threads would cost it a stop and a start at each
		// of its context switches, which the budget cannot see. Disabled
		// until the program is attached: no sample goes unseen.
		fd, err := cpuClock(cpu, uint64(p.hz), unix.PerfBitFreq)
		if errors.Is(err, unix.ENODEV) {
			continue // went offline since the list was read
		}
		if err != nil {
			return fmt.Errorf("perf_event_open cpu-clock on cpu %d: %w", cpu, err)
		}
		p.events = append(p.events, event{fd: fd}) // closed by Close from here on
		if err := p.attach(&p.events[len(p.events)-1]); err != nil {
			return fmt.Errorf("attach sampler on cpu %d: %w", cpu, err)
		}
	}
	if len(p.events) == 0 {
		return errors.New("no online CPU to sample")
	}
	for _, ev := range p.events {
		if err := unix.IoctlSetInt(ev.fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
			return fmt.Errorf("enable cpu-clock event: %w", err)
		}
	}
	return nil
}

// useLink attaches through BPF links; tests turn it off to try the ioctl.
var useLink = true

// attach puts the program on an event: through a BPF link (Linux 5.15+),
// which detaches with its fd, else through the ioctl older kernels take,
// which closing the event undoes.
func (p *Program) attach(ev *event) error {
	lerr := errors.New("not tried")
	if useLink {
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: ev.fd, Program: p.objs.Prog, Attach: ebpf.AttachPerfEvent})
		if err == nil {
			ev.link = l
			return nil
		}
		lerr = err
	}
	if err := unix.IoctlSetInt(ev.fd, unix.PERF_EVENT_IOC_SET_BPF, p.objs.Prog.FD()); err != nil {
		return fmt.Errorf("link: %w; ioctl: %w", lerr, err)
	}
	return nil
}

// Close stops the clocks and frees the program and its maps.
func (p *Program) Close() error {
	var errs []error
	for _, ev := range p.events {
		if ev.link != nil {
			errs = append(errs, ev.link.Close())
		}
		errs = append(errs, unix.Close(ev.fd))
	}
	p.events = nil
	errs = append(errs, p.objs.Prog.Close()) // nil-safe: a failed load leaves some nil
	for _, m := range []*ebpf.Map{p.objs.Targets, p.objs.Tables, p.objs.Sites} {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Add starts sampling process pid, whose executable bin is loaded at bias,
// until the Sampler is stopped or closed.
func (p *Program) Add(pid int, bin *symbols.Binary, bias uint64) (*Sampler, error) {
	tab, err := p.table(bin)
	if err != nil {
		return nil, err
	}
	s := &Sampler{prog: p, bin: bin, tgid: uint32(pid), hz: p.hz, sampleCost: p.sampleCost, Dropped: tab.dropped}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		p.release(bin)
		return nil, err
	}
	per := make([]bpf.CpuTarget, ncpu)
	for i := range per {
		per[i] = bpf.CpuTarget{Bias: bias, Table: tab.id}
	}
	if err := p.objs.Targets.Update(s.tgid, per, ebpf.UpdateNoExist); err != nil {
		p.release(bin)
		return nil, fmt.Errorf("sample pid %d: %w", pid, err)
	}
	return s, nil
}

// table returns bin's step table, writing it into the program first if no
// other process of bin has.
func (p *Program) table(bin *symbols.Binary) (*table, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tables[bin]; t != nil {
		t.refs++
		return t, nil
	}
	steps, dropped, err := steps(bin, mapCode(bin))
	if err != nil {
		return nil, err
	}
	t := &table{id: p.nextID, refs: 1, dropped: dropped}
	if err := p.objs.Tables.Update(t.id, &bpf.CpuSteps{S: steps}, ebpf.UpdateNoExist); err != nil {
		return nil, fmt.Errorf("load map code: %w", err)
	}
	p.nextID++
	p.tables[bin] = t
	return t, nil
}

// release drops a process's hold on bin's step table; the last one frees it.
func (p *Program) release(bin *symbols.Binary) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tables[bin]
	if t == nil {
		return nil
	}
	if t.refs--; t.refs > 0 {
		return nil
	}
	delete(p.tables, bin)
	return p.objs.Tables.Delete(t.id)
}

// Hz is the sampling frequency on each CPU: every sample stands for 1/Hz
// seconds of CPU time.
func (p *Program) Hz() int { return p.hz }

// Start samples process pid alone, with a Program of its own (Open's
// budget) that the Sampler closes.
func Start(pid int, bin *symbols.Binary, bias uint64, budget float64) (*Sampler, error) {
	p, err := Open(budget)
	if err != nil {
		return nil, err
	}
	s, err := p.Add(pid, bin, bias)
	if err != nil {
		p.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Sampler is one target's share of a Program.
type Sampler struct {
	prog  *Program
	bin   *symbols.Binary
	tgid  uint32
	owned bool // Close closes prog
	// The Program's, kept for the counts once it is closed.
	hz         int
	sampleCost time.Duration
	final      *Result // the counts when stopped
	// Dropped names map functions left out for want of room in the
	// program's table: their samples count as not in a map operation.
	Dropped []string
}

// Stop ends sampling the target; the counts stay readable.
func (s *Sampler) Stop() error {
	if s.final != nil || s.prog == nil {
		return nil
	}
	r, err := s.read()
	if err != nil {
		r = &Result{Hz: s.hz, Sites: map[uint64]uint64{}}
	}
	s.final = r
	return errors.Join(err, s.remove())
}

// remove takes the target and its sites out of the program's tables.
func (s *Sampler) remove() error {
	m := s.prog.objs
	err := m.Targets.Delete(s.tgid)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	var keys []bpf.CpuSite
	var k bpf.CpuSite
	var n uint64
	it := m.Sites.Iterate()
	for it.Next(&k, &n) {
		if k.Tgid == s.tgid {
			keys = append(keys, k)
		}
	}
	errs := []error{err, it.Err(), s.prog.release(s.bin)}
	for _, k := range keys {
		if err := m.Sites.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops sampling; a Sampler from Start also closes its Program.
func (s *Sampler) Close() error {
	if s.prog == nil {
		return nil
	}
	err := s.Stop()
	if s.owned {
		err = errors.Join(err, s.prog.Close())
	}
	s.prog = nil
	return err
}

// Read returns the counts so far.
func (s *Sampler) Read() (*Result, error) {
	if s.final != nil {
		return s.final, nil
	}
	if s.prog == nil {
		return nil, errors.New("sampler closed")
	}
	return s.read()
}

func (s *Sampler) read() (*Result, error) {
	n, err := s.counts()
	if err != nil {
		return nil, err
	}
	r := countsResult(n, s.hz)
	r.Sites = map[uint64]uint64{}
	var k bpf.CpuSite
	var c uint64
	it := s.prog.objs.Sites.Iterate()
	for it.Next(&k, &c) {
		if k.Tgid == s.tgid {
			r.Sites[k.Caller] = c
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map CPU sites: %w", err)
	}
	return &r, nil
}

// Counts returns the target's samples so far, all and those of the kernel
// (in kernel mode, or where a probe resumes): cheap enough to
// read at every window's edges (one lookup of the target's per-CPU counts,
// not its sites).
func (s *Sampler) Counts() (all, kernel uint64, err error) {
	r, err := s.current()
	return r.Samples, r.Kernel(), err
}

// ProbeSamples returns the target's samples so far in maptrace's probes (in
// their traps, or where they resume): the mutex probes', and the others'.
// As cheap as Counts.
func (s *Sampler) ProbeSamples() (mutex, other uint64, err error) {
	r, err := s.current()
	mutex, other = r.ProbeSamples()
	return mutex, other, err
}

// current is the target's counts so far, without its sites.
func (s *Sampler) current() (Result, error) {
	if s.final != nil {
		return *s.final, nil
	}
	if s.prog == nil {
		return Result{}, errors.New("sampler closed")
	}
	n, err := s.counts()
	if err != nil {
		return Result{}, err
	}
	return countsResult(n, s.hz), nil
}

// Cost is what sampling cost the target so far: the interrupts that took
// its samples, at the cost measured when the Program was opened, and the
// program's run time on them.
func (s *Sampler) Cost() (time.Duration, error) {
	r, err := s.current()
	if err != nil {
		return 0, err
	}
	return s.CostOf(&r), nil
}

// CostOf is what the samples in r, read from s, cost the target.
func (s *Sampler) CostOf(r *Result) time.Duration { return r.Cost(s.sampleCost) }

// Hz is the frequency the target is sampled at.
func (s *Sampler) Hz() int { return s.hz }

// countsResult is what the target's counters say, without its sites.
func countsResult(n [bpf.CpuSampleCountSAMPLES_MAX]uint64, hz int) Result {
	return Result{
		Hz:         hz,
		Program:    time.Duration(n[bpf.CpuSampleCountSAMPLES_NS]),
		Samples:    n[bpf.CpuSampleCountSAMPLES_TOTAL],
		User:       n[bpf.CpuSampleCountSAMPLES_USER],
		Resume:     n[bpf.CpuSampleCountSAMPLES_RESUME],
		Trap:       n[bpf.CpuSampleCountSAMPLES_TRAP],
		MutexProbe: n[bpf.CpuSampleCountSAMPLES_MUTEX_PROBE],
		Map:        n[bpf.CpuSampleCountSAMPLES_MAP],
		NoCaller:   n[bpf.CpuSampleCountSAMPLES_NO_CALLER],
		Lost:       n[bpf.CpuSampleCountLOST_STACK] + n[bpf.CpuSampleCountLOST_SITES],
	}
}

// counts sums the target's counters over the CPUs: one lookup.
func (s *Sampler) counts() (n [bpf.CpuSampleCountSAMPLES_MAX]uint64, err error) {
	var per []bpf.CpuTarget
	if err := s.prog.objs.Targets.Lookup(s.tgid, &per); err != nil {
		return n, fmt.Errorf("read samples of pid %d: %w", s.tgid, err)
	}
	for _, c := range per {
		for i, v := range c.N {
			n[i] += v
		}
	}
	return n, nil
}

// initPIDNamespace is the inode of the kernel's initial PID namespace
// (PROC_PID_INIT_INO).
const initPIDNamespace = 0xeffffffc

func pidNamespace() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, fmt.Errorf("read own PID namespace: %w", err)
	}
	return st.Ino, nil
}

// onlineCPUs parses /sys/devices/system/cpu/online, e.g. "0-3,6".
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("list online CPUs: %w", err)
	}
	cpus, err := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("list online CPUs: %w", err)
	}
	return cpus, nil
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU list %q", s)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
