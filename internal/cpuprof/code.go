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
// a probe resumes.
func mapCode(bin *symbols.Binary) []codeFunc {
	entries := map[string]bool{}
	for _, n := range append(probes.MapFuncs(), probes.SyncMapFuncs(bin)...) {
		entries[n] = true
	}
	others, callees := probes.OtherResumes()
	var out []codeFunc
	for f := range bin.Funcs() {
		switch {
		case entries[f.Name]:
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_MAP_ENTRY, resume: probeResume(bin, f)})
		case isMapWork(f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_MAP_WORK})
		case slices.Contains(others, f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_OTHER, resume: probeResume(bin, f)})
		case slices.Contains(callees, f.Name):
			out = append(out, codeFunc{Func: f, kind: bpf.CpuCodeKindCODE_OTHER, resume: f.Entry})
		}
	}
	slices.SortFunc(out, func(a, b codeFunc) int { return cmp.Compare(a.Entry, b.Entry) })
	return out
}

type codeFunc struct {
	symbols.Func
	kind bpf.CpuCodeKind
	// resume is where the target resumes from a probe in or into the
	// function, or 0. A clock interrupt that comes while the kernel returns
	// from the probe with interrupts off is taken on that first user
	// instruction, so the sample lands there in user mode: the probe's
	// time, not the function's, and counted with the kernel's. Without
	// probes that instruction (after an entry probe MOVQ SP, BP, on arm64
	// the frame's store; a probed call's callee's stack check) is a sliver
	// of the function's time.
	resume uint64
}

// probeResume returns the address of the instruction after the function's
// entry probe (probes.FindSitesFor), or 0 if it cannot tell.
func probeResume(bin *symbols.Binary, f symbols.Func) uint64 {
	code, err := bin.Code(f)
	if err != nil {
		return 0
	}
	s, err := probes.FindSitesFor(bin.Arch, code)
	if err != nil || s.Entry >= uint64(len(code)) {
		return 0
	}
	if bin.Arch == "arm64" {
		return f.Entry + s.Entry + 4 // every arm64 instruction is 4 bytes
	}
	inst, err := x86asm.Decode(code[s.Entry:], 64)
	if err != nil {
		return 0
	}
	return f.Entry + s.Entry + uint64(inst.Len)
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
		fs := make([]bpf.CpuStep, 0, len(sp)+2)
		for _, s := range sp {
			ret := retAt(bin.Arch, s.Delta)
			if f.kind == bpf.CpuCodeKindCODE_OTHER {
				ret = retUnknown // no stack walk from it: one step with the gaps
			}
			if f.resume != 0 && s.End > f.resume && (len(fs) == 0 || fs[len(fs)-1].End <= f.resume) {
				// The instruction at resume is the step [resume, resume+1).
				if f.resume > f.Entry {
					fs = append(fs, bpf.CpuStep{End: f.resume, Kind: f.kind, SpDelta: ret})
				}
				fs = append(fs, bpf.CpuStep{End: f.resume + 1, Kind: bpf.CpuCodeKindCODE_PROBE_RESUME, SpDelta: retUnknown})
			}
			fs = append(fs, bpf.CpuStep{End: s.End, Kind: f.kind, SpDelta: ret})
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
