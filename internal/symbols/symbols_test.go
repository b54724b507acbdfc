package symbols

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// toolchain is a Go release the test program is built with.
type toolchain struct {
	name  string // as GOTOOLCHAIN spells it, or "local"
	goCmd string // the go command; "" for the one on PATH
	minor int
}

// toolchains is the release matrix. The versioned ones are fetched by the go
// command on PATH through GOTOOLCHAIN; Go 1.19 predates that and comes from
// Debian's golang-1.19 package.
var toolchains = []toolchain{
	{name: "go1.19", goCmd: "/usr/lib/go-1.19/bin/go", minor: 19},
	{name: "go1.20.14", minor: 20},
	{name: "go1.21.13", minor: 21},
	{name: "go1.22.12", minor: 22},
	{name: "go1.23.12", minor: 23},
	{name: "go1.24.13", minor: 24},
	{name: "go1.25.5", minor: 25},
	{name: "local", minor: goMinor(runtime.Version())},
}

// variants are the ways the tracer meets binaries in the wild.
var variants = []struct {
	name  string
	flags []string
}{
	{"default", nil},
	{"stripped", []string{"-ldflags=-s -w"}}, // no .symtab, no DWARF
	{"nodwarf", []string{"-ldflags=-w"}},     // .symtab but no DWARF
	{"pie", []string{"-buildmode=pie"}},
	// The system linker puts its own code before runtime.text, and before
	// Go 1.26 folds .gopclntab into .data.rel.ro.
	{"extpie", []string{"-buildmode=pie", "-ldflags=-linkmode=external"}},
}

// goCommand returns a command running tc's go in dir, in an environment
// that does not leak the test's own toolchain settings.
func (tc toolchain) goCommand(dir string, args ...string) *exec.Cmd {
	goCmd, gotoolchain := "go", "local"
	if tc.goCmd != "" {
		goCmd = tc.goCmd
	} else if tc.name != "local" {
		gotoolchain = tc.name
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GOROOT", "GOTOOLCHAIN", "GOFLAGS", "GOOS", "GOARCH":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+gotoolchain, "GOFLAGS=-buildvcs=false")
	return cmd
}

// writeModule writes files into a new temporary module, so that old
// toolchains build it regardless of this module's go directive.
func writeModule(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	files["go.mod"] = []byte("module prog\n\ngo 1.19\n")
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// haveCC tells whether the external linker (cc) is available.
var haveCC = func() bool { _, err := exec.LookPath("cc"); return err == nil }()

func TestMatrix(t *testing.T) {
	files := map[string][]byte{}
	for _, name := range []string{"main.go", "fp_amd64.s"} {
		data, err := os.ReadFile(filepath.Join("testdata", "prog", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	src := writeModule(t, files)
	bins := t.TempDir()
	for _, tc := range toolchains {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "local" {
				t.Skip("only the local toolchain in -short mode")
			}
			if tc.goCmd != "" {
				if _, err := os.Stat(tc.goCmd); err != nil {
					t.Fatalf("%s is not installed (make deps installs it): %v", tc.name, err)
				}
			}
			t.Parallel()
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					if v.name == "extpie" && !haveCC {
						t.Fatal("no C toolchain (cc) for external linking")
					}
					bin := filepath.Join(bins, tc.name+"-"+v.name)
					args := append(append([]string{"build", "-o", bin}, v.flags...), ".")
					if out, err := tc.goCommand(src, args...).CombinedOutput(); err != nil {
						t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
					}
					out, err := exec.Command(bin).Output()
					if err != nil {
						t.Fatalf("running %s: %v", bin, err)
					}
					checkBinary(t, tc, v.name, bin, parseTruth(t, out))
				})
			}
		})
	}
}

// truth is what the test program printed about itself.
type truth struct {
	funcs   map[string]uint64 // name -> entry, as runtime.FuncForPC says
	globals [][2]string       // expected name, address
	stacks  []stack
}

type stack struct {
	tag      string
	pcs, raw []uint64 // runtime.Callers; frame-pointer walk
	frames   []Frame  // runtime.CallersFrames(pcs)
}

func parseTruth(t *testing.T, out []byte) truth {
	tr := truth{funcs: map[string]uint64{}}
	hex := func(s string) uint64 {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("bad address %q in program output", s)
		}
		return v
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		var cur *stack
		if n := len(tr.stacks); n > 0 {
			cur = &tr.stacks[n-1]
		}
		switch f[0] {
		case "STACK":
			tr.stacks = append(tr.stacks, stack{tag: f[1]})
		case "PC":
			cur.pcs = append(cur.pcs, hex(f[1]))
		case "RAW":
			cur.raw = append(cur.raw, hex(f[1]))
		case "FRAME":
			line, _ := strconv.Atoi(f[3])
			cur.frames = append(cur.frames, Frame{Func: f[1], File: f[2], Line: line})
		case "FUNC":
			tr.funcs[f[1]] = hex(f[2])
		case "GLOBAL":
			tr.globals = append(tr.globals, [2]string{f[1], f[2]})
		}
	}
	if len(tr.stacks) != 4 || len(tr.funcs) == 0 || len(tr.globals) == 0 {
		t.Fatalf("program output is incomplete:\n%s", out)
	}
	return tr
}

func checkBinary(t *testing.T, tc toolchain, variant, path string, tr truth) {
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	wantVersion := tc.name
	if tc.name == "local" {
		wantVersion = runtime.Version()
	}
	if !strings.HasPrefix(b.GoVersion, wantVersion) || b.Arch != "amd64" ||
		b.Stripped != (variant == "stripped") || b.HasDWARF != (variant == "default" || variant == "pie" || variant == "extpie") || b.PIE != (variant == "pie" || variant == "extpie") {
		t.Errorf("Binary = {GoVersion:%s Arch:%s Stripped:%v HasDWARF:%v PIE:%v}", b.GoVersion, b.Arch, b.Stripped, b.HasDWARF, b.PIE)
	}
	if err := b.CheckSupported(); err != nil {
		t.Errorf("CheckSupported: %v", err)
	}

	// The load bias of this run: zero unless PIE.
	m, ok := b.Func("main.main")
	if !ok {
		t.Fatal(`Func("main.main") not found`)
	}
	bias := tr.funcs["main.main"] - m.Entry
	if !b.PIE && bias != 0 {
		t.Errorf("non-PIE binary loaded with bias %#x", bias)
	}

	checkFuncs(t, b, path, bias, tr.funcs)
	// What the tracer probes for mutex contention: the runtime
	// implementation, under the name it is linked as.
	sema := "sync.runtime_SemacquireMutex"
	if tc.minor >= 24 {
		sema = "internal/sync.runtime_SemacquireMutex"
	}
	if f, ok := b.Func(sema); !ok {
		t.Errorf("Func(%q) not found", sema)
	} else if fr := b.Frames(f.Entry); len(fr) == 0 || fr[0].Func != sema {
		t.Errorf("Frames(%s entry) = %v", sema, fr)
	}
	for _, s := range tr.stacks {
		checkStack(t, b, bias, s)
	}
	checkGlobals(t, b, bias, tr.globals)

	off, source, err := b.GoidOffset()
	wantSource := "table"
	if b.HasDWARF {
		wantSource = "dwarf"
	}
	if err != nil || source != wantSource || off != goidOffsets[tc.minor] {
		t.Errorf("GoidOffset() = %d, %q, %v; want %d, %q (goidOffsets[%d])", off, source, err, goidOffsets[tc.minor], wantSource, tc.minor)
	}
}

func checkFuncs(t *testing.T, b *Binary, path string, bias uint64, funcs map[string]uint64) {
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	text := ef.Section(".text")
	for name, entry := range funcs {
		f, ok := b.Func(name)
		if !ok || f.Entry+bias != entry || f.End <= f.Entry {
			t.Errorf("Func(%q) = %+v, %v; want entry %#x", name, f, ok, entry-bias)
			continue
		}
		for _, pc := range []uint64{f.Entry, f.End - 1} {
			if got, ok := b.FuncAt(pc); got != f || !ok {
				t.Errorf("FuncAt(%#x) = %+v, %v; want %+v", pc, got, ok, f)
			}
		}
		if got, _ := b.FuncAt(f.End); got.Name == name {
			t.Errorf("FuncAt(End %#x) is still %s", f.End, name)
		}
		code, err := b.Code(f)
		if err != nil {
			t.Errorf("Code(%s): %v", name, err)
			continue
		}
		off, err := b.FileOffset(f.Entry)
		if want := text.Offset + f.Entry - text.Addr; err != nil || off != want {
			t.Errorf("FileOffset(%#x) = %#x, %v; want %#x by .text", f.Entry, off, err, want)
			continue
		}
		if !bytes.Equal(code, file[off:off+uint64(len(code))]) || uint64(len(code)) != f.End-f.Entry {
			t.Errorf("Code(%s) is not the %d bytes at FileOffset %#x", name, f.End-f.Entry, off)
		}
	}
	if _, ok := b.FuncAt(0); ok {
		t.Error("FuncAt(0) found a function")
	}
	if fr := b.Frames(0); fr != nil {
		t.Errorf("Frames(0) = %v, want nil", fr)
	}
}

// checkStack compares Frames with runtime.CallersFrames, twice: for each
// pc runtime.Callers returned (one per logical frame, with synthetic pcs
// for inlined calls), and for the raw return addresses of physical frames
// the way the tracer sees them, where Frames must do the inline expansion
// and the wrapper elision that runtime.Callers did.
func checkStack(t *testing.T, b *Binary, bias uint64, s stack) {
	if len(s.pcs) != len(s.frames) {
		t.Fatalf("stack %s: %d pcs but %d frames", s.tag, len(s.pcs), len(s.frames))
	}
	for i, pc := range s.pcs {
		if got := b.Frames(pc - 1 - bias); len(got) == 0 || got[0] != s.frames[i] {
			t.Errorf("stack %s: Frames(%#x)[0] = %v, want %v", s.tag, pc-1-bias, got, s.frames[i])
		}
	}

	// The raw walk starts inside rawStack; from main.capture on it sees the
	// stack Callers saw, but at a later pc in capture itself, so compare
	// from capture's caller on.
	raw := s.raw
	for len(raw) > 0 {
		f, _ := b.FuncAt(raw[0] - 1 - bias)
		raw = raw[1:]
		if f.Name == "main.capture" {
			break
		}
	}
	var got []Frame
	elided := false
	for _, ret := range raw {
		fr := b.Frames(ret - 1 - bias)
		if fr == nil {
			t.Errorf("stack %s: Frames(%#x) = nil", s.tag, ret-1-bias)
		}
		if len(fr) == 0 {
			f, _ := b.FuncAt(ret - 1 - bias)
			elided = elided || f.Name == "main.outer.Do"
		}
		got = append(got, fr...)
	}
	if want := s.frames[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("stack %s: frames of the raw stack differ from CallersFrames\ngot:  %v\nwant: %v", s.tag, got, want)
	}

	// Make sure the program still exercises what it is meant to.
	switch s.tag {
	case "inline":
		if names := funcNames(s.frames); !strings.Contains(names, "main.leaf main.mid main.loop") {
			t.Errorf("stack inline has no inlined calls: %s", names)
		}
	case "wrapper":
		if !elided {
			t.Errorf("stack wrapper: no raw frame in main.outer.Do was elided")
		}
	}
}

func funcNames(frames []Frame) string {
	var names []string
	for _, f := range frames {
		names = append(names, f.Func)
	}
	return strings.Join(names, " ")
}

func checkGlobals(t *testing.T, b *Binary, bias uint64, globals [][2]string) {
	for _, g := range globals {
		want := g[0]
		addr, err := strconv.ParseUint(strings.TrimPrefix(g[1], "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		addr -= bias
		base := want
		if i := strings.IndexAny(want[len("main."):], ".["); i >= 0 {
			base = want[:len("main.")+i]
		}
		baseAddr, baseOK := b.GlobalAddr(base)
		name, ok := b.Global(addr)
		switch {
		case b.Stripped:
			if ok || baseOK {
				t.Errorf("stripped: Global(%#x) = %q, %v; GlobalAddr(%q) = %#x, %v; want nothing", addr, name, ok, base, baseAddr, baseOK)
			}
			continue
		case !baseOK || addr < baseAddr:
			t.Errorf("GlobalAddr(%q) = %#x, %v; want at most %#x", base, baseAddr, baseOK, addr)
			continue
		case base == want && baseAddr != addr:
			t.Errorf("GlobalAddr(%q) = %#x, want %#x", base, baseAddr, addr)
		case !b.HasDWARF && base != want:
			want = fmt.Sprintf("%s+%#x", base, addr-baseAddr)
		}
		if name != want || !ok {
			t.Errorf("Global(%#x) = %q, %v; want %q", addr, name, ok, want)
		}
	}
}

func TestNotGo(t *testing.T) {
	_, err := Open("/bin/true")
	if !errors.Is(err, ErrNotGo) {
		t.Fatalf("Open(/bin/true) = %v, want ErrNotGo", err)
	}
	if !strings.Contains(err.Error(), "/bin/true") {
		t.Errorf("error %q does not name the file", err)
	}
}

// TestArm64 checks arm64 binaries of every release in the matrix, built
// here and not run: they open and symbolize, CheckSupported accepts them,
// and goidOffsets, which stripped binaries depend on, matches the DWARF of
// each release's runtime.g.
func TestArm64(t *testing.T) {
	src := writeModule(t, map[string][]byte{"main.go": []byte("package main\n\nfunc main() {\n\tprintln(\"hello\")\n}\n")})
	for _, tc := range toolchains {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "local" {
				t.Skip("only the local toolchain in -short mode")
			}
			dwarfOff := uint64(0)
			for _, v := range []struct {
				name  string
				flags []string
			}{{"default", nil}, {"stripped", []string{"-ldflags=-s -w"}}} {
				bin := filepath.Join(t.TempDir(), "tiny")
				cmd := tc.goCommand(src, append(append([]string{"build", "-o", bin}, v.flags...), ".")...)
				cmd.Env = append(cmd.Env, "GOARCH=arm64", "CGO_ENABLED=0")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("go build: %v\n%s", err, out)
				}
				b, err := Open(bin)
				if err != nil {
					t.Fatal(err)
				}
				if b.Arch != "arm64" || b.minor != tc.minor {
					t.Errorf("%s: Arch = %q, minor %d", v.name, b.Arch, b.minor)
				}
				if err := b.CheckSupported(); err != nil {
					t.Errorf("%s: CheckSupported() = %v", v.name, err)
				}
				f, ok := b.Func("main.main")
				if !ok {
					t.Fatalf("%s: Func(\"main.main\") not found", v.name)
				}
				if got, _ := b.FuncAt(f.Entry + 4); got != f {
					t.Errorf("%s: FuncAt(%#x) = %+v, want %+v", v.name, f.Entry+4, got, f)
				}
				if fr := b.Frames(f.Entry); len(fr) != 1 || fr[0].Func != "main.main" || filepath.Base(fr[0].File) != "main.go" || fr[0].Line != 3 {
					t.Errorf("%s: Frames(main.main entry) = %v", v.name, fr)
				}
				off, source, err := b.GoidOffset()
				want := "dwarf"
				if !b.HasDWARF {
					want = "table"
				}
				if err != nil || source != want || off != goidOffsets[tc.minor] {
					t.Errorf("%s: GoidOffset() = %d, %q, %v; want %d from %s", v.name, off, source, err, goidOffsets[tc.minor], want)
				}
				if v.name == "default" {
					dwarfOff = off
				}
			}
			if dwarfOff == 0 {
				t.Error("the unstripped build has no goid offset from DWARF")
			}
		})
	}
}

func TestCheckSupportedVersion(t *testing.T) {
	for _, tt := range []struct {
		version  string
		hasDWARF bool
		want     error
	}{
		{"go1.18.10", true, ErrUnsupportedVersion},
		{"go1.19", false, nil},
		{"go1.26.8", false, nil},
		{"go1.99.0", false, ErrUnsupportedVersion}, // not in the goid table
		{"go1.99.0", true, nil},                    // but DWARF has runtime.g
		{"devel go1.99-abcdef Mon Jan 1 00:00:00 2035 +0000", true, nil},
	} {
		b := &Binary{GoVersion: tt.version, Arch: "amd64", HasDWARF: tt.hasDWARF, minor: goMinor(tt.version)}
		if err := b.CheckSupported(); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("CheckSupported(%s, DWARF %v) = %v, want %v", tt.version, tt.hasDWARF, err, tt.want)
		}
	}
}

func TestGoMinor(t *testing.T) {
	for v, want := range map[string]int{
		"go1.26.8":  26,
		"go1.22rc1": 22,
		"go1.21.0":  21,
		"go1.19":    19,
		"devel go1.27-abcdef Mon Jan 1 00:00:00 2035 +0000": 27,
		"gccgo": 0,
	} {
		if got := goMinor(v); got != want {
			t.Errorf("goMinor(%q) = %d, want %d", v, got, want)
		}
	}
}
