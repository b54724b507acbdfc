// Package probes finds where in a Go binary maptrace's uprobes go and
// attaches them to one process.
package probes

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"

	"github.com/maptrace/maptrace/internal/symbols"
)

// Probe is one uprobe: a program at an instruction of the executable.
type Probe struct {
	Func   string // the probed function, for messages
	Offset uint64 // file offset of the instruction
	Prog   *ebpf.Program
	Cookie uint64
}

// Cookie packs a probe's index (its hit counter) and a program-specific value,
// as bpf/common.h unpacks them.
func Cookie(index int, value uint8) uint64 {
	return uint64(index&0xff)<<8 | uint64(value)
}

// cookieAtBranch marks an entry probe on the stack check's conditional jump
// (COOKIE_AT_BRANCH in bpf/common.h).
const cookieAtBranch = 1 << 16

// cookieSlotShift places an offset from the frame pointer in a cookie's
// bits 32..47 (COOKIE_SLOT in bpf/common.h).
const cookieSlotShift = 32

// entryProbe is the probe at a function's entry site.
func entryProbe(fn string, s Sites, prog *ebpf.Program, index int, value uint8) Probe {
	c := Cookie(index, value)
	if s.Branch {
		c |= cookieAtBranch
	}
	return Probe{Func: fn, Offset: s.Entry, Prog: prog, Cookie: c}
}

// MultiSupported reports whether the kernel attaches many uprobes through one
// uprobe_multi link, which attaches and detaches in one system call.
func MultiSupported() bool {
	return features.HaveBPFLinkUprobeMulti() == nil
}

// OtherEntries names the functions outside the map entry points (MapFuncs,
// SyncMapFuncs) whose entries maptrace probes: the snapshot stores. A CPU
// sample taken where the target resumes from one is the probe's time
// (cpuprof).
func OtherEntries() []string {
	var out []string
	for _, f := range publishFuncs {
		out = append(out, f.name)
	}
	return out
}

// EmptyProgram loads the least a uprobe can run, return 0, attachable as
// Attach attaches with multi: the baseline of what a probe's hit costs.
func EmptyProgram(multi bool) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{
		Name:         "empty",
		Type:         ebpf.Kprobe,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}
	if multi {
		spec.AttachType = ebpf.AttachTraceUprobeMulti
	}
	return ebpf.NewProgram(spec)
}

// PrepareSpec sets the attach type the programs of spec need for the way
// they will be attached.
func PrepareSpec(spec *ebpf.CollectionSpec, multi bool) {
	if !multi {
		return
	}
	for _, p := range spec.Programs {
		if p.Type == ebpf.Kprobe {
			p.AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
}

// Links are attached probes. They are owned by file descriptors, so even a
// killed maptrace leaves none behind.
type Links struct {
	links []link.Link
}

// Attach places probes in process pid, whose executable is exe (a
// /proc/PID/exe path works for processes in other mount namespaces). With
// multi, the programs must come from a spec prepared with PrepareSpec.
// On error nothing stays attached.
func Attach(exe string, pid int, multi bool, ps []Probe) (*Links, error) {
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		return nil, err
	}
	ls := &Links{}
	if multi {
		err = ls.attachMulti(ex, pid, ps)
	} else {
		err = ls.attachEach(ex, pid, ps)
	}
	if err != nil {
		ls.Close()
		return nil, err
	}
	return ls, nil
}

func (ls *Links) attachEach(ex *link.Executable, pid int, ps []Probe) error {
	for _, p := range ps {
		l, err := ex.Uprobe("", p.Prog, &link.UprobeOptions{Address: p.Offset, PID: pid, Cookie: p.Cookie})
		if err != nil {
			return fmt.Errorf("uprobe %s at %#x: %w", p.Func, p.Offset, err)
		}
		ls.links = append(ls.links, l)
	}
	return nil
}

func (ls *Links) attachMulti(ex *link.Executable, pid int, ps []Probe) error {
	type group struct {
		addrs, cookies []uint64
	}
	groups := map[*ebpf.Program]*group{}
	var order []*ebpf.Program
	for _, p := range ps {
		g := groups[p.Prog]
		if g == nil {
			g = &group{}
			groups[p.Prog] = g
			order = append(order, p.Prog)
		}
		g.addrs = append(g.addrs, p.Offset)
		g.cookies = append(g.cookies, p.Cookie)
	}
	for _, prog := range order {
		g := groups[prog]
		l, err := ex.UprobeMulti(nil, prog, &link.UprobeMultiOptions{Addresses: g.addrs, Cookies: g.cookies, PID: uint32(pid)})
		if err != nil {
			return fmt.Errorf("uprobe_multi %s (%d sites): %w", prog, len(g.addrs), err)
		}
		ls.links = append(ls.links, l)
	}
	return nil
}

// Close detaches every probe.
func (ls *Links) Close() error {
	var errs []error
	for _, l := range ls.links {
		errs = append(errs, l.Close())
	}
	ls.links = nil
	return errors.Join(errs...)
}

// CloseReverse detaches every probe, in the reverse order of attaching,
// and says how long detaching the last attached link took: the time the
// others stayed attached after it began.
func (ls *Links) CloseReverse() (time.Duration, error) {
	var errs []error
	var first time.Duration
	for i := len(ls.links) - 1; i >= 0; i-- {
		start := time.Now()
		errs = append(errs, ls.links[i].Close())
		if i == len(ls.links)-1 {
			first = time.Since(start)
		}
	}
	ls.links = nil
	return first, errors.Join(errs...)
}

// Count is the number of links held.
func (ls *Links) Count() int { return len(ls.links) }

// FuncSites finds a function's probe sites, as file offsets; call targets
// are addresses, comparable with bin.Func's entries.
func FuncSites(bin *symbols.Binary, name string) (Sites, error) {
	fn, ok := bin.Func(name)
	if !ok {
		return Sites{}, fmt.Errorf("%s: %w", name, ErrNoSymbol)
	}
	code, err := bin.Code(fn)
	if err != nil {
		return Sites{}, fmt.Errorf("%s: %w", name, err)
	}
	s, err := FindSitesFor(bin.Arch, code)
	if err != nil {
		return Sites{}, fmt.Errorf("%s: %w", name, err)
	}
	if s.Entry, err = bin.FileOffset(fn.Entry + s.Entry); err != nil {
		return Sites{}, fmt.Errorf("%s: %w", name, err)
	}
	for i, c := range s.Calls {
		s.Calls[i].Target = fn.Entry + c.Target
		if s.Calls[i].At, err = bin.FileOffset(fn.Entry + c.At); err != nil {
			return Sites{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return s, nil
}

// FindSitesFor picks the probe sites of a function of arch: FindSites or
// FindSitesArm64.
func FindSitesFor(arch string, code []byte) (Sites, error) {
	if arch == "arm64" {
		return FindSitesArm64(code)
	}
	return FindSites(code)
}

// ErrNoSymbol means the binary lacks a function maptrace probes.
var ErrNoSymbol = errors.New("symbol not in binary")
