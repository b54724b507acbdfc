package cpuprof

import (
	"math/rand"
	"reflect"
	"sort"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// find is bpf/cpu.bpf.c's search, step for step.
func find(tab *[maxSteps]bpf.CpuStep, pc, bias uint64) bpf.CpuStep {
	rel := pc - bias
	i := uint32(0)
	for half := uint32(maxSteps / 2); half > 0; half >>= 1 {
		end := tab[(i+half-1)&(maxSteps-1)].End
		below := uint32(1 - ((rel - end) >> 63))
		i += half * below
	}
	return tab[i&(maxSteps-1)]
}

// TestSteps checks the step table the program searches, built from a real
// binary: kinds, SP deltas, the probe's resume instruction, and that the
// program's branch-free search finds what a binary search does.
func TestSteps(t *testing.T) {
	for _, tc := range []string{"go1.20.14", "local"} {
		t.Run(tc, func(t *testing.T) {
			bin, err := symbols.Open(testtarget.Build(t, "../../testdata/cpusplit", tc))
			if err != nil {
				t.Fatal(err)
			}
			defer bin.Close()
			const bias = 0x10000 // as if PIE
			tab, dropped, err := steps(bin, mapCode(bin))
			if err != nil || len(dropped) > 0 {
				t.Fatalf("steps: %v; dropped %v", err, dropped)
			}
			n := sort.Search(maxSteps, func(i int) bool { return tab[i].End == stepEnd })
			t.Logf("%d steps", n)
			for i := 1; i < maxSteps; i++ {
				if tab[i].End < tab[i-1].End {
					t.Fatalf("step %d ends at %#x, before step %d (%#x)", i, tab[i].End, i-1, tab[i-1].End)
				}
			}
			rng := rand.New(rand.NewSource(1))
			for range 100000 {
				pc := tab[0].End - 0x1000 + uint64(rng.Int63n(int64(tab[n-1].End-tab[0].End+0x2000)))
				want := tab[sort.Search(maxSteps, func(i int) bool { return tab[i].End > pc })]
				if got := find(&tab, pc+bias, bias); got != want {
					t.Fatalf("find(%#x) = %+v, want %+v", pc, got, want)
				}
			}

			// Code below the binary, a shared library's say, is no map code.
			for _, pc := range []uint64{0, bias - 1, 1 << 63} {
				if got := find(&tab, pc, bias); got.Kind != bpf.CpuCodeKindCODE_OTHER {
					t.Errorf("find(%#x) = %+v, want other code", pc, got)
				}
			}

			kind := func(name string) (symbols.Func, bpf.CpuCodeKind, bool) {
				f, ok := bin.Func(name)
				if !ok {
					return f, 0, false
				}
				return f, find(&tab, f.Entry+bias, bias).Kind, true
			}
			if f, k, _ := kind("main.lookups"); k != bpf.CpuCodeKindCODE_OTHER {
				t.Errorf("%s is %v, want other code", f.Name, k)
			}
			for _, name := range []string{"runtime.strhash", "aeshashbody", "memeqbody", "runtime.memequal"} {
				f, k, ok := kind(name)
				if !ok || k != bpf.CpuCodeKindCODE_MAP_WORK {
					t.Errorf("%s: found %v, kind %v, want map work", name, ok, k)
					continue
				}
				// Frameless: the return address is at SP everywhere.
				for pc := f.Entry; pc < f.End; pc++ {
					if s := find(&tab, pc+bias, bias); s.SpDelta != 0 {
						t.Fatalf("%s+%#x: SP delta %d, want 0", name, pc-f.Entry, s.SpDelta)
					}
				}
			}
			entries := 0
			for _, name := range probes.MapFuncs() {
				f, k, ok := kind(name)
				if !ok {
					continue
				}
				entries++
				if k != bpf.CpuCodeKindCODE_MAP_ENTRY || find(&tab, f.Entry+bias, bias).SpDelta != 0 {
					t.Errorf("%s: %+v at its entry, want a map entry with SP delta 0", name, find(&tab, f.Entry+bias, bias))
				}
				// Every pc of the function but where its probe traps and
				// resumes is the entry's, with the runtime's SP delta.
				sp, err := bin.SPSteps(f)
				if err != nil {
					t.Fatal(err)
				}
				marks := entryMarks(bin, f)
				if len(marks) == 0 || marks[len(marks)-1].kind != bpf.CpuCodeKindCODE_PROBE_RESUME {
					t.Errorf("%s: probe marks %+v, want its resume last", name, marks)
				}
				j := 0
				for pc := f.Entry; pc < f.End; pc++ {
					for sp[j].End <= pc {
						j++
					}
					got := find(&tab, pc+bias, bias)
					want := bpf.CpuStep{End: got.End, Kind: bpf.CpuCodeKindCODE_MAP_ENTRY, SpDelta: sp[j].Delta}
					for i, m := range marks {
						if pc == m.at { // one step with the marks after it of its kind
							end := m.at + 1
							for _, n := range marks[i+1:] {
								if n.at == end && n.kind == m.kind {
									end++
								}
							}
							want = bpf.CpuStep{End: end, Kind: m.kind, SpDelta: -1}
						}
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s+%#x: %+v, want %+v", name, pc-f.Entry, got, want)
					}
				}
			}
			if entries < 5 {
				t.Errorf("%d map entry points in the table", entries)
			}
			// Where the mutex probes' calls land, the callee's first
			// instruction, is a mutex probe's resume; the rest is other code.
			calls, callees := probes.MutexCalls(bin)
			for _, name := range callees {
				f, ok := bin.Func(name)
				if !ok {
					t.Errorf("%s not in the binary", name)
					continue
				}
				want := bpf.CpuStep{End: f.Entry + 1, Kind: bpf.CpuCodeKindCODE_MUTEX_RESUME, SpDelta: -1}
				if got := find(&tab, f.Entry+bias, bias); got != want {
					t.Errorf("%s's entry: %+v, want %+v", name, got, want)
				}
				for _, pc := range []uint64{f.Entry - 1, f.Entry + 1, f.End - 1} {
					if got := find(&tab, pc+bias, bias); got.Kind != bpf.CpuCodeKindCODE_OTHER || got.SpDelta != -1 {
						t.Errorf("%s+%d: %+v, want other code", name, int64(pc-f.Entry), got)
					}
				}
			}
			// A probed call's first byte and the one after its int3 are a
			// mutex probe's trap; the rest of the call is other code.
			if len(calls) < 2 {
				t.Errorf("%d calls for the mutex probes, want a park and a wake-up at least", len(calls))
			}
			for _, c := range calls {
				for _, pc := range []uint64{c, c + 1} { // one step of the two
					want := bpf.CpuStep{End: c + 2, Kind: bpf.CpuCodeKindCODE_MUTEX_TRAP, SpDelta: -1}
					if got := find(&tab, pc+bias, bias); got != want {
						t.Errorf("call at %#x, +%d: %+v, want %+v", c, pc-c, got, want)
					}
				}
				for _, pc := range []uint64{c - 1, c + 2, c + 4} {
					if got := find(&tab, pc+bias, bias); got.Kind != bpf.CpuCodeKindCODE_OTHER {
						t.Errorf("call at %#x, %+d: %+v, want other code", c, int64(pc-c), got)
					}
				}
			}
		})
	}
}

// TestStepsArm64 checks, on arm64 builds of every release in the matrix
// (inspected, not run), where the table says a map function's return
// address is, against its instructions: in the link register up to and at
// the store that opens the frame, at SP+0 from the next instruction on and
// at the instruction that pops the frame, in the link register again at
// each RET; in a function that never opens a frame, in the link register
// everywhere.
func TestStepsArm64(t *testing.T) {
	for _, tc := range testtarget.Toolchains {
		t.Run(tc, func(t *testing.T) {
			bin, err := symbols.Open(testtarget.BuildFor(t, "arm64", "../../testdata/cpusplit", tc))
			if err != nil {
				t.Fatal(err)
			}
			defer bin.Close()
			funcs := mapCode(bin)
			tab, dropped, err := steps(bin, funcs)
			if err != nil || len(dropped) > 0 {
				t.Fatalf("steps: %v; dropped %v", err, dropped)
			}
			framed, frameless := 0, 0
			for _, f := range funcs {
				if f.kind == bpf.CpuCodeKindCODE_OTHER {
					continue // only a probe's marks in it: no stack walk from there
				}
				code, err := bin.Code(f.Func)
				if err != nil {
					t.Fatal(err)
				}
				marked := map[uint64]bool{}
				for _, m := range f.marks {
					marked[m.at] = true
				}
				at := func(off int) int32 {
					pc := f.Entry + uint64(off)
					for marked[pc] {
						pc -= 4 // a step of its own, not map code; the one before is alike
					}
					return find(&tab, pc, 0).SpDelta
				}
				opened := -1 // the offset of the frame's opening store
				for off := 0; off+4 <= len(code); off += 4 {
					inst, err := arm64asm.Decode(code[off : off+4])
					if err != nil {
						continue // padding
					}
					want := int32(-3) // not checked
					switch {
					case opensFrame(inst):
						if opened < 0 {
							opened = off
							for o := 0; o <= off; o += 4 {
								if got := at(o); got != retInLR {
									t.Fatalf("%s+%#x, before its frame opens at +%#x: return address at %d, want in LR", f.Name, o, off, got)
								}
							}
							if off+4 < len(code) && at(off+4) != 0 {
								t.Fatalf("%s+%#x, after its frame opens: return address at %d, want SP+0", f.Name, off+4, at(off+4))
							}
						}
					case popsFrame(inst):
						want = 0
					case inst.Op == arm64asm.RET:
						want = retInLR
					}
					if want != -3 {
						if got := at(off); got != want {
							t.Fatalf("%s+%#x (%v): return address at %d, want %d", f.Name, off, inst, got, want)
						}
					}
				}
				if opened >= 0 {
					framed++
					continue
				}
				frameless++
				for off := 0; off+4 <= len(code); off += 4 {
					if got := at(off); got != retInLR {
						t.Fatalf("%s+%#x, no frame: return address at %d, want in LR", f.Name, off, got)
					}
				}
			}
			t.Logf("%d functions with a frame, %d without", framed, frameless)
			if framed < 10 || frameless < 3 {
				t.Errorf("%d map functions with a frame, %d without", framed, frameless)
			}
		})
	}
}

// opensFrame reports whether inst moves SP down to open a Go frame, whose
// bottom word then holds the saved LR: STR X30, [SP, #-N]!, or MOV SP, Rx
// after a large frame's STP through Rx.
func opensFrame(inst arm64asm.Inst) bool {
	sp := arm64asm.RegSP(arm64asm.SP)
	if m, ok := inst.Args[1].(arm64asm.MemImmediate); ok && inst.Op == arm64asm.STR {
		return inst.Args[0] == arm64asm.X30 && m.Base == sp && m.Mode == arm64asm.AddrPreIndex
	}
	return inst.Op == arm64asm.MOV && inst.Args[0] == sp
}

// popsFrame reports whether inst moves SP back up over the frame: LDR X30,
// [SP], #N or ADD SP, SP, ….
func popsFrame(inst arm64asm.Inst) bool {
	sp := arm64asm.RegSP(arm64asm.SP)
	if m, ok := inst.Args[1].(arm64asm.MemImmediate); ok && inst.Op == arm64asm.LDR {
		return inst.Args[0] == arm64asm.X30 && m.Base == sp && m.Mode == arm64asm.AddrPostIndex
	}
	return inst.Op == arm64asm.ADD && inst.Args[0] == sp && inst.Args[1] == sp
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"0":         {0},
		"0-3":       {0, 1, 2, 3},
		"0-1,4,6-7": {0, 1, 4, 6, 7},
	} {
		got, err := parseCPUList(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "3-1", "1-"} {
		if got, err := parseCPUList(in); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", in, got)
		}
	}
}
