package probes

import (
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/testtarget"
)

func TestFindSitesPrologues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  []byte
		entry uint64
		calls []Call
	}{
		{
			// Go 1.21+: CMPQ SP, 0x10(R14); JBE; PUSHQ BP; MOVQ SP, BP; ...; POPQ BP; RET
			name: "push prologue",
			code: []byte{
				0x49, 0x3b, 0x66, 0x10, // CMPQ SP, 0x10(R14)
				0x76, 0x0a, // JBE +10
				0x55,             // PUSHQ BP
				0x48, 0x89, 0xe5, // MOVQ SP, BP
				0xe8, 0x10, 0x00, 0x00, 0x00, // CALL +0x10
				0xff, 0xd0, // CALL AX (indirect: no target)
				0x5d,                         // POPQ BP
				0xc3,                         // RET
				0xe8, 0xe0, 0xff, 0xff, 0xff, // CALL -0x20 (morestack stand-in)
			},
			entry: 6, calls: []Call{{At: 10, Target: 10 + 5 + 0x10}, {At: 19, Target: ^uint64(7)}}, // 24 - 0x20 = -8: before the function,
		},
		{
			// Go 1.20: CMPQ SP, 0x10(R14); JBE; SUBQ $0x30, SP; ...: the emulated JBE.
			name: "sub prologue",
			code: []byte{
				0x49, 0x3b, 0x66, 0x10, // CMPQ SP, 0x10(R14)
				0x76, 0x2a, // JBE
				0x48, 0x83, 0xec, 0x30, // SUBQ $0x30, SP
				0x48, 0x83, 0xc4, 0x30, // ADDQ $0x30, SP
				0xc3, // RET
			},
			entry: 4,
		},
		{
			// A large frame: LEAQ -0x40(SP), R12; CMPQ R12, 0x10(R14); JBE; PUSHQ BP.
			name: "large frame",
			code: []byte{
				0x4c, 0x8d, 0x64, 0x24, 0xc0, // LEAQ -0x40(SP), R12
				0x4d, 0x3b, 0x66, 0x10, // CMPQ R12, 0x10(R14)
				0x0f, 0x86, 0x3f, 0x05, 0x00, 0x00, // JBE rel32
				0x55, // PUSHQ BP
				0x5d, // POPQ BP
				0xc3, // RET
			},
			entry: 15,
		},
		{
			// No stack check (a NOSPLIT leaf): the first instruction.
			name:  "nosplit leaf",
			code:  []byte{0x48, 0x89, 0xd8, 0xc3}, // MOVQ BX, AX; RET
			entry: 0,
		},
		{
			// The first argument spilled to its slot above the frame
			// (0x18 + saved BP + return address) before the first call;
			// the second call's block does not.
			name: "argument spilled",
			code: []byte{
				0x55,             // PUSHQ BP
				0x48, 0x89, 0xe5, // MOVQ SP, BP
				0x48, 0x83, 0xec, 0x18, // SUBQ $0x18, SP
				0x48, 0x89, 0x44, 0x24, 0x28, // MOVQ AX, 0x28(SP)
				0x48, 0x85, 0xc0, // TESTQ AX, AX
				0xe8, 0, 0, 0, 0, // CALL
				0xb8, 1, 0, 0, 0, // MOVL $1, AX
				0xe8, 0, 0, 0, 0, // CALL
				0xcc, // INT3
			},
			entry: 0, calls: []Call{{At: 16, Target: 21, ArgSpilled: true}, {At: 26, Target: 31}},
		},
		{
			name:  "never returns",
			code:  []byte{0x55, 0x48, 0x89, 0xe5, 0xe8, 0, 0, 0, 0, 0xcc}, // PUSHQ BP; MOVQ SP, BP; CALL; INT3
			entry: 0, calls: []Call{{At: 4, Target: 9}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FindSites(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if s.Entry != tc.entry || s.Branch != (tc.name == "sub prologue") || !reflect.DeepEqual(s.Calls, tc.calls) {
				t.Errorf("FindSites = entry %d calls %v, want entry %d calls %v", s.Entry, s.Calls, tc.entry, tc.calls)
			}
		})
	}
}

func TestFindSitesUndecodable(t *testing.T) {
	if _, err := FindSites([]byte{0x48, 0x8b}); err == nil {
		t.Error("FindSites decoded garbage")
	}
}

// TestFindSitesAgainstObjdump checks the sites of real functions, built with
// an old and a new toolchain, against `go tool objdump`.
func TestFindSitesAgainstObjdump(t *testing.T) {
	for _, tc := range []string{"go1.20.14", "local"} {
		t.Run(tc, func(t *testing.T) {
			exe := testtarget.Build(t, "../../testdata/contention", tc)
			bin, err := symbols.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer bin.Close()
			for _, name := range []string{"main.lockMutex", "runtime.mapaccess1_fast64", "sync.runtime_SemacquireRWMutexR", "runtime.semrelease1"} {
				checkObjdump(t, bin, exe, name)
			}
		})
	}
}

// TestParkSite checks, on the oldest and the newest toolchain, what the park
// probe relies on: semacquire1 spills the semaphore, its first argument,
// before it calls acquireSudog, and calls gopark once, after that.
// TestArm64Sites checks the same on arm64 for every release.
func TestParkSite(t *testing.T) {
	for _, tc := range []string{"go1.19", "local"} {
		t.Run(tc, func(t *testing.T) {
			checkParkSite(t, testtarget.Build(t, "../../testdata/contention", tc))
		})
	}
}

// checkParkSite checks parkSite in exe, and the spill slot it found against
// `go tool objdump`: the store of the first argument register to the slot
// above the frame.
func checkParkSite(t *testing.T, exe string) {
	bin, err := symbols.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	at, slot, err := parkSite(bin)
	if err != nil {
		t.Fatal(err)
	}
	sudog, _ := callSites(bin, "runtime.semacquire1", "runtime.acquireSudog")
	if len(sudog) != 1 || at <= sudog[0].At {
		t.Errorf("park at %#x, acquireSudog calls %+v", at, sudog)
	}
	if _, err := exec.LookPath("go"); err != nil {
		return // make test-kernels' guests have no Go to disassemble with
	}
	insts, _ := objdump(t, exe, "runtime.semacquire1")
	// The slot, from SP once the frame is open: the frame pointer is SP+n
	// on amd64 after PUSHQ BP; SUBQ $n, SP (Go 1.21 on), SP+n-8 before,
	// and SP-8 on arm64.
	var spill string
	switch bin.Arch {
	case "amd64":
		spill = "MOVQ AX, 0x%x(SP)"
	case "arm64":
		spill = "MOVD R0, %d(RSP)"
	}
	found := false
	for _, inst := range insts {
		for _, sp := range spSlots(bin.Arch, insts, slot) {
			if inst == fmt.Sprintf(spill, sp) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("%s: no store of the first argument to the slot %d above the frame pointer in %v", bin.Arch, slot, insts)
	}
}

// spSlots are the SP offsets that frame-pointer offset slot may be, from the
// frame sizes in the prologue of insts.
func spSlots(arch string, insts []string, slot int64) []int64 {
	var out []int64
	for _, inst := range insts[:min(len(insts), 8)] {
		var n int64
		switch {
		case arch == "arm64" && strings.HasPrefix(inst, "MOVD.W R30, -"):
			fmt.Sscanf(inst, "MOVD.W R30, -%d(RSP)", &n)
			out = append(out, slot-8) // FP = SP-8
		case arch == "amd64" && strings.HasPrefix(inst, "SUBQ $0x"):
			fmt.Sscanf(inst, "SUBQ $0x%x, SP", &n)
			out = append(out, slot+n, slot+n-8) // BP pushed above the frame (Go 1.21 on), or saved in it
		}
	}
	return out
}

// objdump returns the instructions of fn in exe as `go tool objdump` prints
// them, and their addresses.
func objdump(t *testing.T, exe, fn string) (insts []string, addrs []uint64) {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(fn)+"$", exe).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^\s+\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(.*)$`)
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		insts = append(insts, strings.TrimSpace(m[2]))
		addrs = append(addrs, addr)
	}
	return insts, addrs
}

func checkObjdump(t *testing.T, bin *symbols.Binary, exe, name string) {
	fn, ok := bin.Func(name)
	if !ok {
		t.Fatalf("%s not found", name)
	}
	code, err := bin.Code(fn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := FindSitesFor(bin.Arch, code)
	if err != nil {
		t.Fatal(err)
	}
	var calls []Call
	var offs []uint64
	insts, addrs := objdump(t, exe, name)
	for i, inst := range insts {
		addr := addrs[i]
		offs = append(offs, addr-fn.Entry)
		// A direct call: CALL pkg.fn(SB), or CALL 0xADDR without a symbol.
		if callee, ok := strings.CutPrefix(inst, "CALL "); ok {
			sym := strings.TrimSuffix(strings.TrimSuffix(callee, "(SB)"), ".abi0") // assembly functions
			if f, ok := bin.Func(sym); ok && strings.HasSuffix(callee, "(SB)") {
				calls = append(calls, Call{At: addr - fn.Entry, Target: f.Entry - fn.Entry})
			} else if a, err := strconv.ParseUint(strings.TrimPrefix(callee, "0x"), 16, 64); err == nil && strings.HasPrefix(callee, "0x") {
				calls = append(calls, Call{At: addr - fn.Entry, Target: a - fn.Entry})
			}
		}
	}
	for i := range s.Calls {
		s.Calls[i].ArgSpilled = false // TestParkSite checks it
	}
	if len(calls) == 0 || !reflect.DeepEqual(s.Calls, calls) {
		t.Errorf("%s: calls %v, objdump says %v", name, s.Calls, calls)
	}
	// The entry site: on amd64, PUSHQ BP after the stack check, else the
	// check's JBE; on arm64 the check's BLS.
	want, branch := uint64(0), false
	switch bin.Arch {
	case "amd64":
		for i, inst := range insts {
			if strings.HasPrefix(inst, "JBE") && i+1 < len(insts) {
				want, branch = offs[i], true
				if insts[i+1] == "PUSHQ BP" {
					want, branch = offs[i+1], false
				}
				break
			}
		}
	case "arm64":
		for i, inst := range insts[:min(len(insts), 4)] {
			if insts[0] == "MOVD 16(R28), R16" && strings.HasPrefix(inst, "BLS ") {
				want, branch = offs[i], true
			}
		}
	}
	if s.Entry != want || s.Branch != branch {
		t.Errorf("%s: entry +%d (branch %v), want +%d (%v) (%v)", name, s.Entry, s.Branch, want, branch, insts[:4])
	}
}
