// Package cpuprof samples the target's CPU time with the kernel's CPU clock
// and counts the samples that land in Go map operations, by the operation's
// call site. Unlike the map probes it costs nothing per map operation: a
// sample every 1/Hz seconds of CPU time, on each CPU, whatever runs there.
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
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Hz is the sampling frequency on each CPU: every sample stands for 1/Hz
// seconds of CPU time. Off round numbers, so as not to beat with timers.
const Hz = 499

// Result is what the samples say, counted since Start.
type Result struct {
	Hz int
	// Samples are the target's samples, in user and kernel mode.
	Samples uint64
	// User are the samples taken in user mode.
	User uint64
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
}

// Seconds turns samples into CPU seconds.
func (r *Result) Seconds(samples uint64) float64 { return float64(samples) / float64(r.Hz) }

// Sampler samples one process on every online CPU.
type Sampler struct {
	objs   objects
	events []event
	// Dropped names map functions left out for want of room in the
	// program's table: their samples count as not in a map operation.
	Dropped []string
}

// objects are the parts of bpf.CpuObjects the program uses: common.h's
// stack and hit maps are left unloaded.
type objects struct {
	Prog    *ebpf.Program `ebpf:"cpu_sample"`
	Samples *ebpf.Map     `ebpf:"samples"`
	Sites   *ebpf.Map     `ebpf:"map_cpu_sites"`
	Stats   *ebpf.Map     `ebpf:"stats"`
}

// ErrUnsupportedArch means the target's architecture has no CPU sampler.
var ErrUnsupportedArch = errors.New("unsupported architecture")

// event is one CPU's clock and the program on it.
type event struct {
	fd   int
	link link.Link // nil when attached by ioctl, which closing the fd undoes
}

// Start samples process pid, whose executable bin is loaded at bias, until
// Stop or Close. On error nothing stays open.
func Start(pid int, bin *symbols.Binary, bias uint64) (*Sampler, error) {
	// Where a sampled leaf keeps its return address is worked out from
	// amd64 code (code.go); an arm64 leaf keeps it in LR until its
	// prologue saves it, which the program does not read yet.
	if bin.Arch != "amd64" {
		return nil, fmt.Errorf("%w: the CPU sampler reads amd64 code only, not %s", ErrUnsupportedArch, bin.Arch)
	}
	// Samples are matched by the pid the kernel's initial namespace gives
	// the target, which is the one maptrace knows only if it runs there.
	if ino, err := pidNamespace(); err != nil {
		return nil, err
	} else if ino != initPIDNamespace {
		return nil, errors.New("maptrace runs in a PID namespace of its own: samples cannot be matched to the target")
	}
	tab, dropped, err := steps(bin, mapCode(bin), bias)
	if err != nil {
		return nil, err
	}
	spec, err := bpf.LoadCpu()
	if err != nil {
		return nil, fmt.Errorf("load sampler spec: %w", err)
	}
	for name, v := range map[string]any{bpf.CpuVarSteps: tab, bpf.CpuVarTargetTgid: uint32(pid)} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	// The sampler walks its stacks itself: the stack map every program gets
	// from common.h would only take kernel memory.
	spec.Maps[bpf.CpuMapStacks].MaxEntries = 1
	s := &Sampler{Dropped: dropped}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("load sampler program: %w", err)
	}
	if err := s.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open opens a CPU clock on every online CPU, attaches the program to each,
// then enables them all.
func (s *Sampler) open() error {
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: Hz,
		// Disabled until the program is attached: no sample goes unseen.
		Bits: unix.PerfBitFreq | unix.PerfBitDisabled,
	}
	for _, cpu := range cpus {
		// System-wide on the CPU, filtered by pid in the program: a
		// per-thread event would miss the threads the target starts later.
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if errors.Is(err, unix.ENODEV) {
			continue // went offline since the list was read
		}
		if err != nil {
			return fmt.Errorf("perf_event_open cpu-clock on cpu %d: %w", cpu, err)
		}
		s.events = append(s.events, event{fd: fd}) // closed by Stop from here on
		if err := s.attach(&s.events[len(s.events)-1]); err != nil {
			return fmt.Errorf("attach sampler on cpu %d: %w", cpu, err)
		}
	}
	if len(s.events) == 0 {
		return errors.New("no online CPU to sample")
	}
	for _, ev := range s.events {
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
func (s *Sampler) attach(ev *event) error {
	lerr := errors.New("not tried")
	if useLink {
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: ev.fd, Program: s.objs.Prog, Attach: ebpf.AttachPerfEvent})
		if err == nil {
			ev.link = l
			return nil
		}
		lerr = err
	}
	if err := unix.IoctlSetInt(ev.fd, unix.PERF_EVENT_IOC_SET_BPF, s.objs.Prog.FD()); err != nil {
		return fmt.Errorf("link: %w; ioctl: %w", lerr, err)
	}
	return nil
}

// Stop ends sampling; the counts stay readable until Close.
func (s *Sampler) Stop() error {
	var errs []error
	for _, ev := range s.events {
		if ev.link != nil {
			errs = append(errs, ev.link.Close())
		}
		errs = append(errs, unix.Close(ev.fd))
	}
	s.events = nil
	return errors.Join(errs...)
}

// Close stops sampling and frees the program and its maps.
func (s *Sampler) Close() error {
	errs := []error{s.Stop(), s.objs.Prog.Close()}
	for _, m := range []*ebpf.Map{s.objs.Samples, s.objs.Sites, s.objs.Stats} {
		errs = append(errs, m.Close()) // nil-safe: a failed load leaves some nil
	}
	return errors.Join(errs...)
}

// Read returns the counts so far.
func (s *Sampler) Read() (*Result, error) {
	r := &Result{Hz: Hz, Sites: map[uint64]uint64{}}
	for _, c := range []struct {
		idx bpf.CpuSampleCount
		dst *uint64
	}{
		{bpf.CpuSampleCountSAMPLES_TOTAL, &r.Samples},
		{bpf.CpuSampleCountSAMPLES_USER, &r.User},
		{bpf.CpuSampleCountSAMPLES_MAP, &r.Map},
		{bpf.CpuSampleCountSAMPLES_NO_CALLER, &r.NoCaller},
	} {
		n, err := sumPerCPU(s.objs.Samples, uint32(c.idx))
		if err != nil {
			return nil, fmt.Errorf("read sample count %d: %w", c.idx, err)
		}
		*c.dst = n
	}
	var caller, n uint64
	it := s.objs.Sites.Iterate()
	for it.Next(&caller, &n) {
		r.Sites[caller] = n
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map CPU sites: %w", err)
	}
	info, err := s.objs.Stats.Info()
	if err != nil {
		return nil, fmt.Errorf("read sampler stats: %w", err)
	}
	for i := uint32(0); i < info.MaxEntries; i++ {
		n, err := sumPerCPU(s.objs.Stats, i)
		if err != nil {
			return nil, fmt.Errorf("read sampler stats: %w", err)
		}
		r.Lost += n
	}
	return r, nil
}

func sumPerCPU(m *ebpf.Map, idx uint32) (uint64, error) {
	var per []uint64
	if err := m.Lookup(idx, &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
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
