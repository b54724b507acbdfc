// Package symbols reads a Go executable once, at attach time, and answers the
// questions the tracer asks about it afterwards: where functions are (to
// place uprobes), what a sampled user pc means (to symbolize stacks the way
// runtime.CallersFrames would), which global a data address belongs to, and
// where runtime.g keeps the goroutine id.
//
// Everything is derived from the Go runtime's own tables (.gopclntab and the
// moduledata that points into it), so it works on stripped binaries; .symtab
// and DWARF are used only for what those tables lack (global variable names,
// struct field names, the runtime.g layout).
//
// All addresses are link-time virtual addresses: the caller subtracts the
// load bias of a PIE process before asking, and adds it back to answers.
// A Binary is immutable after Open and safe for concurrent use.
package symbols

import (
	"bytes"
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var (
	// ErrNotGo means the file is not a Go executable: it has no Go build
	// information, or no runtime function table (.gopclntab).
	ErrNotGo = errors.New("not a Go binary (no .gopclntab)")
	// ErrUnsupportedVersion means the binary was built by a Go release this
	// package cannot handle: older than Go 1.19, or newer than the goid table
	// while carrying no DWARF to read the runtime.g layout from.
	ErrUnsupportedVersion = errors.New("unsupported Go version")
	// ErrUnsupportedArch means the binary is for an architecture the tracer
	// does not support yet (amd64 and arm64 are).
	ErrUnsupportedArch = errors.New("unsupported architecture")
)

// Binary is a Go executable, read once at attach time. All addresses are
// link-time virtual addresses (the caller subtracts the PIE load bias).
type Binary struct {
	GoVersion string // "go1.26.8", from debug/buildinfo
	Module    string // the main module's path, from debug/buildinfo
	Arch      string // "amd64", "arm64" (GOARCH naming)
	Stripped  bool   // no .symtab
	HasDWARF  bool   // readable DWARF
	PIE       bool   // ELF type ET_DYN
	// File is the file Open read, so that a caller holding a Binary can
	// tell whether a process still runs that very file (zero from parse).
	File FileID

	// data is the whole file: the target may exit, or be replaced on disk,
	// while we still symbolize what it did.
	data  []byte
	segs  []segment
	minor int // x in go1.x; 0 when GoVersion does not parse

	tab     *pclntab
	globals globals
	// dataLo, dataHi bound the sections of package-level variables.
	dataLo, dataHi uint64
	dwarf          *dwarf.Data // nil unless HasDWARF

	// varTypes maps a global's name to its DWARF type; built on first use
	// because walking all of DWARF is only needed to name struct fields.
	varTypesOnce sync.Once
	varTypes     map[string]dwarf.Offset
}

// Func is a function of the binary, as laid out in its text.
type Func struct {
	Name       string // as the runtime's table spells it, e.g. "sync.(*Mutex).Lock"
	Entry, End uint64 // [Entry, End) vaddr
}

// FileID identifies a file on this machine, whatever its name or mount
// namespace: its device and inode.
type FileID struct {
	Dev, Ino uint64
}

// FileIDOf is the identity of the file at path (followed if a symbolic
// link, as /proc/PID/exe is).
func FileIDOf(path string) (FileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileID{}, err
	}
	return fileID(fi), nil
}

func fileID(fi os.FileInfo) FileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}
	}
	return FileID{Dev: uint64(st.Dev), Ino: st.Ino}
}

// Open reads the Go executable at path. The whole file is read into memory,
// so later queries do not depend on the file, or the process, still existing.
func Open(path string) (*Binary, error) {
	// Identity and contents from one open file: the path may be replaced
	// in between.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	data := make([]byte, fi.Size()) // the whole file at once: no growing copies
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	b, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("symbols: %s: %w", path, err)
	}
	b.File = fileID(fi)
	return b, nil
}

func parse(data []byte) (*Binary, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := &Binary{
		data:     data,
		Arch:     goarch(f),
		Stripped: f.Section(".symtab") == nil,
		PIE:      f.Type == elf.ET_DYN,
	}
	b.segs = loadSegments(f, data)
	for _, s := range f.Sections {
		if dataSections[s.Name] && s.Size > 0 {
			if b.dataLo == 0 || s.Addr < b.dataLo {
				b.dataLo = s.Addr
			}
			b.dataHi = max(b.dataHi, s.Addr+s.Size)
		}
	}

	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotGo, err)
	}
	b.GoVersion = bi.GoVersion
	b.Module = bi.Main.Path
	b.minor = goMinor(bi.GoVersion)
	if b.minor != 0 && b.minor < 18 {
		return nil, fmt.Errorf("%w: %s (its function table predates the Go 1.18 format)", ErrUnsupportedVersion, b.GoVersion)
	}
	ptrSize := 8
	if f.Class == elf.ELFCLASS32 {
		ptrSize = 4
	}
	if b.tab, err = b.readPclntab(f.ByteOrder, ptrSize); err != nil {
		return nil, err
	}
	if !b.Stripped {
		if b.globals, err = readGlobals(f); err != nil {
			return nil, err
		}
	}
	// DWARF only refines answers, so a binary whose DWARF cannot be read
	// is treated as having none rather than refused.
	if f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
		if d, err := f.DWARF(); err == nil {
			b.dwarf, b.HasDWARF = d, true
		}
	}
	return b, nil
}

// Close releases the file contents. The Binary must not be used afterwards.
func (b *Binary) Close() error {
	b.data, b.segs, b.tab, b.globals, b.dwarf = nil, nil, nil, globals{}, nil
	return nil
}

// CheckSupported reports whether the tracer can work with this binary:
// ErrUnsupportedArch for anything but amd64 and arm64, ErrUnsupportedVersion for Go
// older than 1.19 or for a release newer than the goid table when there is
// no DWARF to take the runtime.g layout from. Open accepts such binaries
// anyway, so that tools can still inspect them.
func (b *Binary) CheckSupported() error {
	if !supportedArch(b.Arch) {
		return fmt.Errorf("%w: %s (amd64 and arm64 are supported)", ErrUnsupportedArch, b.Arch)
	}
	if b.minor < minGoMinor {
		return fmt.Errorf("%w: %s (need go1.%d or newer)", ErrUnsupportedVersion, b.GoVersion, minGoMinor)
	}
	if _, known := goidOffsets[b.minor]; !known && !b.HasDWARF {
		return fmt.Errorf("%w: %s is newer than the goid table and the binary has no DWARF", ErrUnsupportedVersion, b.GoVersion)
	}
	return nil
}

// supportedArch reports whether maptrace has BPF programs and probe-site
// choice for arch (bpf/common.h, internal/probes).
func supportedArch(arch string) bool { return arch == "amd64" || arch == "arm64" }

// minGoMinor is the oldest Go 1.x release the tracer supports.
const minGoMinor = 19

// goMinor extracts x from a toolchain version such as "go1.21.3",
// "go1.22rc1" or "devel go1.27-abcdef Mon Jan 1"; 0 if there is none.
func goMinor(v string) int {
	_, rest, ok := strings.Cut(v, "go1.")
	if !ok {
		return 0
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0
	}
	return n
}

// goarch names the ELF machine the way GOARCH does.
func goarch(f *elf.File) string {
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_386:
		return "386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_PPC64:
		if f.ByteOrder == binary.LittleEndian {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_LOONGARCH:
		return "loong64"
	}
	return strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_"))
}
