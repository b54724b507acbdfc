package cpuprof

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
)

// mapWork are the functions, by name prefix, that do a map operation's work
// below its entry point: hashing and comparing keys, copying keys and
// values, growing. Their time counts as map time only under a map entry
// point, so hash/maphash or a copy in user code does not.
var mapWork = []string{
	// Hashing, by the key type's hasher (aeshashbody and memeqbody are
	// assembly helpers without a package prefix).
	"runtime.memhash", "runtime.strhash", "aeshashbody", "runtime.f32hash", "runtime.f64hash",
	"runtime.c64hash", "runtime.c128hash", "runtime.interhash", "runtime.nilinterhash", "runtime.typehash",
	// Key comparison.
	"runtime.memequal", "memeqbody", "runtime.strequal", "runtime.f32equal", "runtime.f64equal",
	"runtime.c64equal", "runtime.c128equal", "runtime.interequal", "runtime.nilinterequal",
	"runtime.efaceeq", "runtime.ifaceeq",
	// Copying keys and values in, clearing them out.
	"runtime.memmove", "runtime.typedmemmove", "runtime.memclrNoHeapPointers", "runtime.typedmemclr",
	"runtime.memclrHasPointers",
	// Buckets and growth before Go 1.24.
	"runtime.growWork", "runtime.evacuate", "runtime.hashGrow", "runtime.makeBucketArray",
	"runtime.advanceEvacuationMark", "runtime.mapaccessK", "runtime.(*hmap).", "runtime.(*bmap).",
	// Swiss maps from Go 1.24: the implementation behind the runtime.* entry points.
	"internal/runtime/maps.",
	// sync.Map's own work below its probed methods: up to Go 1.23 its
	// helpers and entries (its Go maps count under it, not as maps of
	// their own), from 1.24 the hash-trie behind it.
	"sync.(*Map).", "sync.(*entry).", "sync.newEntry",
	"internal/sync.(*HashTrieMap[", "internal/sync.(*entry[", "internal/sync.(*indirect[",
	"internal/sync.(*node[", "internal/sync.newIndirectNode[", "internal/sync.newEntryNode[",
}

// mapCode lists the map entry points and the map-work functions in bin, in
// address order, with their kind, and the other functions that hold where
// a probe traps or resumes.
func mapCode(bin *symbols.Binary) []codeFunc {
	entries := map[string]bool{}
	for _, n := range append(probes.MapFuncs(), probes.SyncMapFuncs(bin)...) {
		entries[n] = true
	}
	others := probes.OtherEntries()
	calls, callees := probes.MutexCalls(bin)
	var out []codeFunc
	for f := range bin.Funcs() {
		switch {
		case entries[f.Name]:
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_MAP_ENTRY, marks: entryMarks(bin, f)})
		case isMapWork(f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_MAP_WORK})
		case slices.Contains(others, f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_OTHER, marks: entryMarks(bin, f)})
		case slices.Contains(callees, f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_OTHER,
				marks: []mark{{f.Entry, bpf.CpuCodeKindCODE_MUTEX_RESUME}}})
		default:
			var ms []mark
			for _, c := range calls {
				if c >= f.Entry && c < f.End {
					for _, at := range trapsAt(bin.Arch, c) {
						ms = append(ms, mark{at, bpf.CpuCodeKindCODE_MUTEX_TRAP})
					}
				}
			}
			if ms != nil {
				out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_OTHER, marks: ms})
			}
		}
	}
	slices.SortFunc(out, func(a, b codeFunc) int { return cmp.Compare(a.Entry, b.Entry) })
	return out
}

type codeFunc struct {
	symbols.Func
	kind bpf.CpuCodeKind
	// marks are the instructions of the function that are a probe's rather
	// than the function's, in address order: each a step of its own.
	marks []mark
}

// A mark is an instruction where a CPU sample is a probe's time:
//   - where the target resumes from a probe in or into the function (kind
//     CODE_PROBE_RESUME, CODE_MUTEX_RESUME). A clock interrupt that comes
//     while the kernel returns from the probe with interrupts off is taken
//     on that first user instruction, so the sample lands there in user
//     mode. Without probes that instruction (after an entry probe MOVQ SP,
//     BP, on arm64 the frame's store; a probed call's callee's stack check)
//     is a sliver of the function's time.
//   - where the target's saved registers point while the kernel runs the
//     probe (CODE_PROBE_TRAP, CODE_MUTEX_TRAP), when that is not where it
//     resumes: a kernel-mode sample whose user registers point there is the
//     probe's.
type mark struct {
	at   uint64
	kind bpf.CpuCodeKind
}

// trapsAt is where the target's registers point while the kernel runs a
// probe on the instruction at pc: on amd64 past the 1-byte int3 as the trap
// is taken, then on pc while the probe's programs run; on arm64 on the BRK.
func trapsAt(arch string, pc uint64) []uint64 {
	if arch == "arm64" {
		return []uint64{pc}
	}
	return []uint64{pc, pc + 1}
}

// entryMarks returns where the function's entry probe (probes.FindSitesFor)
// traps and resumes: the instruction after it. None if it cannot tell.
func entryMarks(bin *symbols.Binary, f symbols.Func) []mark {
	code, err := bin.Code(f)
	if err != nil {
		return nil
	}
	s, err := probes.FindSitesFor(bin.Arch, code)
	if err != nil || s.Entry >= uint64(len(code)) {
		return nil
	}
	probe := f.Entry + s.Entry
	size := uint64(4) // every arm64 instruction
	if bin.Arch != "arm64" {
		inst, err := x86asm.Decode(code[s.Entry:], 64)
		if err != nil {
			return nil
		}
		size = uint64(inst.Len)
	}
	var ms []mark
	for _, at := range trapsAt(bin.Arch, probe) {
		if at < probe+size { // past a 1-byte PUSHQ BP is where it resumes
			ms = append(ms, mark{at, bpf.CpuCodeKindCODE_PROBE_TRAP})
		}
	}
	return append(ms, mark{probe + size, bpf.CpuCodeKindCODE_PROBE_RESUME})
}

func isMapWork(name string) bool {
	for _, p := range mapWork {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// maxSteps is the size of the program's step table (MAX_STEPS in
// bpf/cpu.bpf.c); the last entry is the sentinel.
const maxSteps = 1 << 12

// stepEnd ends the last step (STEP_END): above any user address, and small
// enough that the program's search can compare by subtracting.
const stepEnd = 1 << 62

// A step's SpDelta: the return address is at SP+SpDelta, or
const (
	retUnknown = -1 // nowhere known
	retInLR    = -2 // in the link register (RET_IN_LR in bpf/cpu.bpf.c)
)

// retAt is where the return address is at an instruction whose SP delta
// (the runtime's pcsp) is spDelta, for the program's sp_delta. An amd64
// CALL pushes it, so it is at SP+spDelta. An arm64 BL leaves it in the link
// register, where it stays while the function has no frame (delta 0: before
// the prologue, after the epilogue, in a frameless leaf); a frame's
// prologue saves it at the frame's bottom word, SP+0.
func retAt(arch string, spDelta int32) int32 {
	switch {
	case arch != "arm64":
		return spDelta
	case spDelta == 0:
		return retInLR
	default:
		return 0
	}
}

// steps lays the map code out as the program's table: ascending stretches of
// code with their kind and where their return address is, the gaps between
// them CODE_OTHER.
// Addresses are file addresses: the program subtracts each process's load
// bias. Functions that do not fit are left out and named in dropped.
func steps(bin *symbols.Binary, funcs []codeFunc) (tab [maxSteps]bpf.CpuStep, dropped []string, err error) {
	n := 0
	push := func(s bpf.CpuStep) {
		if n > 0 && tab[n-1].Kind == s.Kind && tab[n-1].SpDelta == s.SpDelta {
			tab[n-1].End = s.End // contiguous and alike: one step
			return
		}
		tab[n] = s
		n++
	}
	var prevEnd uint64
	for _, f := range funcs {
		sp, err := bin.SPSteps(f.Func)
		if err != nil {
			return tab, nil, fmt.Errorf("map code: %w", err)
		}
		fs := make([]bpf.CpuStep, 0, len(sp)+2*len(f.marks))
		marks, at := f.marks, f.Entry
		for _, s := range sp {
			ret := retAt(bin.Arch, s.Delta)
			if f.kind == bpf.CpuCodeKindCODE_OTHER {
				ret = retUnknown // no stack walk from it: one step with the gaps
			}
			// Each mark is the step [m.at, m.at+1).
			for ; len(marks) > 0 && marks[0].at < s.End; marks = marks[1:] {
				m := marks[0]
				if m.at < at {
					continue
				}
				if m.at > at {
					fs = append(fs, bpf.CpuStep{End: m.at, Kind: f.kind, SpDelta: ret})
				}
				fs = append(fs, bpf.CpuStep{End: m.at + 1, Kind: m.kind, SpDelta: retUnknown})
				at = m.at + 1
			}
			if s.End > at {
				fs = append(fs, bpf.CpuStep{End: s.End, Kind: f.kind, SpDelta: ret})
				at = s.End
			}
		}
		// A gap, the steps and one spare for the sentinel.
		if n+1+len(fs) > maxSteps-1 {
			dropped = append(dropped, f.Name)
			continue
		}
		if f.Entry > prevEnd {
			push(bpf.CpuStep{End: f.Entry, Kind: bpf.CpuCodeKindCODE_OTHER, SpDelta: retUnknown})
		}
		for _, s := range fs {
			push(s)
		}
		prevEnd = f.End
	}
	for i := n; i < maxSteps; i++ {
		tab[i] = bpf.CpuStep{End: stepEnd, Kind: bpf.CpuCodeKindCODE_OTHER, SpDelta: retUnknown}
	}
	return tab, dropped, nil
}
