package probes

import (
	"encoding/binary"
	"os"
	"reflect"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"

	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// words is arm64 machine code from instruction words.
func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func TestFindSitesArm64Prologues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    []byte
		entry   uint64
		branch  bool
		argSlot int64
		calls   []Call
	}{
		{
			name: "small frame",
			code: words(
				0xf9400b90, // MOVD 16(R28), R16
				0xeb3063ff, // CMP R16, RSP
				0x54000149, // BLS 10(PC)
				0xf81b0ffe, // MOVD.W R30, -80(RSP)
				0xf81f83fd, // MOVD R29, -8(RSP)
				0xd10023fd, // SUB $8, RSP, R29
				0xf9002fe0, // MOVD R0, 88(RSP): the first argument's spill slot
				0x94000004, // CALL +4 words
				0xd503201f, // NOOP
				0x97fffffe, // CALL -2 words
				0xd65f03c0, // RET
				0x00000000, // padding: undecodable, skipped
			),
			entry: 8, branch: true, argSlot: 96,
			calls: []Call{{At: 28, Target: 44, ArgSpilled: true}, {At: 36, Target: 28}},
		},
		{
			name: "large frame",
			code: words(
				0xf9400b90, // MOVD 16(R28), R16
				0xd10183f1, // SUB $96, RSP, R17
				0xeb10023f, // CMP R16, R17
				0x54002489, // BLS
				0xf8120ffe, // MOVD.W R30, -224(RSP)
				0xf81f83fd, // MOVD R29, -8(RSP)
				0xd10023fd, // SUB $8, RSP, R29
			),
			entry: 12, branch: true, argSlot: 240,
		},
		{
			name: "huge frame",
			code: words(
				0xd11003f4, // SUB $0x400, RSP, R20
				0xa93ffa9d, // STP (R29, R30), -8(R20)
				0x9100029f, // MOVD R20, RSP
				0xd10023fd, // SUB $8, RSP, R29
				0xf90207e0, // MOVD R0, 0x408(RSP)
				0x94000002, // CALL +2 words
				0xd65f03c0, // RET
			),
			entry: 0, argSlot: 0x410, calls: []Call{{At: 20, Target: 28, ArgSpilled: true}},
		},
		{
			// No stack check (NOSPLIT): the first instruction.
			name:  "nosplit",
			code:  words(0xf81d0ffe, 0xf81f83fd, 0xd10023fd, 0xd65f03c0), // MOVD.W R30, -48(RSP); ...; RET
			entry: 0, argSlot: 64,
		},
		{
			// The spill is in another block than the call.
			name: "spilled in another block",
			code: words(
				0xf81d0ffe, // MOVD.W R30, -48(RSP)
				0xf81f83fd, // MOVD R29, -8(RSP)
				0xd10023fd, // SUB $8, RSP, R29
				0xf9001fe0, // MOVD R0, 56(RSP)
				0xb4000040, // CBZ R0, +2
				0x94000000, // CALL +0
			),
			argSlot: 64, calls: []Call{{At: 20, Target: 20}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FindSitesArm64(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if s.Entry != tc.entry || s.Branch != tc.branch || s.ArgSlot != tc.argSlot || !reflect.DeepEqual(s.Calls, tc.calls) {
				t.Errorf("FindSitesArm64 = entry %d branch %v slot %d calls %v, want entry %d branch %v slot %d calls %v",
					s.Entry, s.Branch, s.ArgSlot, s.Calls, tc.entry, tc.branch, tc.argSlot, tc.calls)
			}
		})
	}
}

// TestArm64Sites checks, on arm64 builds of every release in the matrix
// (not run: inspected), the probe sites of the functions maptrace probes
// against `go tool objdump`, and that each entry probe lands on an
// instruction the kernel simulates (B.LS), or a NOSPLIT function's first.
func TestArm64Sites(t *testing.T) {
	for _, tc := range testtarget.Toolchains {
		t.Run(tc, func(t *testing.T) {
			t.Run("contention", func(t *testing.T) {
				exe := testtarget.BuildFor(t, "arm64", "../../testdata/contention", tc)
				bin, err := symbols.Open(exe)
				if err != nil {
					t.Fatal(err)
				}
				defer bin.Close()
				checkParkSite(t, exe)
				sema := "sync.runtime_SemacquireMutex"
				if _, ok := bin.Func(sema); !ok {
					sema = "internal/sync.runtime_SemacquireMutex"
				}
				for _, name := range []string{"main.lockMutex", "runtime.mapaccess1_fast64", sema, "runtime.semrelease1", "runtime.semacquire1"} {
					checkObjdump(t, bin, exe, name)
				}
				ready, err := callSites(bin, "runtime.semrelease1", "runtime.readyWithTime")
				if err != nil || len(ready) == 0 {
					t.Errorf("semrelease1 → readyWithTime: %v, %v", ready, err)
				}
				calls, err := callSites(bin, sema, "runtime.semacquire1")
				if err != nil || len(calls) == 0 {
					t.Errorf("%s → semacquire1: %v, %v", sema, calls, err)
				}
			})
			t.Run("maps", func(t *testing.T) {
				exe := testtarget.BuildFor(t, "arm64", "../../testdata/maps", tc)
				checkArm64Entries(t, exe)
			})
		})
	}
}

// checkArm64Entries checks the entry site of every map, sync.Map and fatal
// function in exe: it must be a B.LS, read from the file at the probe's
// offset, or a function's first instruction when it has no stack check.
func checkArm64Entries(t *testing.T, exe string) {
	bin, err := symbols.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	file, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	names := append(MapFuncs(), fatalFuncs...)
	sync, _ := syncMapProbes(bin)
	for _, s := range sync {
		names = append(names, s.name)
	}
	n := 0
	for _, name := range names {
		fn, ok := bin.Func(name)
		if !ok {
			continue
		}
		n++
		s, err := FuncSites(bin, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		inst, err := arm64asm.Decode(file[s.Entry : s.Entry+4])
		first, _ := bin.FileOffset(fn.Entry)
		switch {
		case s.Branch:
			c, ok := inst.Args[0].(arm64asm.Cond)
			if err != nil || inst.Op != arm64asm.B || !ok || c.Value != condLS {
				t.Errorf("%s: entry probe at %#x on %v, want B.LS", name, s.Entry, inst)
			}
		case s.Entry != first:
			t.Errorf("%s: entry probe at %#x, neither a B.LS nor the first instruction (%#x)", name, s.Entry, first)
		}
	}
	if n < 8 {
		t.Errorf("only %d map functions in %s", n, exe)
	}
}
