package symbols

import (
	"debug/elf"
	"fmt"
)

// segment is the file-backed part of a PT_LOAD program header: the only
// bytes of the image that exist in the file (the rest is zero-filled bss).
type segment struct {
	vaddr, off, filesz uint64
	flags              elf.ProgFlag
}

// loadSegments lists the PT_LOAD segments whose bytes are all in data.
func loadSegments(f *elf.File, data []byte) []segment {
	var segs []segment
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 && p.Off <= uint64(len(data)) && p.Filesz <= uint64(len(data))-p.Off {
			segs = append(segs, segment{vaddr: p.Vaddr, off: p.Off, filesz: p.Filesz, flags: p.Flags})
		}
	}
	return segs
}

// FileOffset translates a vaddr into an offset in the file, through the
// PT_LOAD segments; uprobes are placed by file offset, not by address.
func (b *Binary) FileOffset(vaddr uint64) (uint64, error) {
	for _, s := range b.segs {
		if vaddr >= s.vaddr && vaddr-s.vaddr < s.filesz {
			return s.off + (vaddr - s.vaddr), nil
		}
	}
	return 0, fmt.Errorf("symbols: address %#x is not in a file-backed PT_LOAD segment", vaddr)
}

// VAddr is FileOffset's inverse: the vaddr of an offset in the file.
func (b *Binary) VAddr(off uint64) (uint64, error) {
	for _, s := range b.segs {
		if off >= s.off && off-s.off < s.filesz {
			return s.vaddr + (off - s.off), nil
		}
	}
	return 0, fmt.Errorf("symbols: file offset %#x is not in a PT_LOAD segment", off)
}

// bytesAt returns the n bytes of the image at vaddr, as stored in the file,
// or false if they are not all in one file-backed segment.
func (b *Binary) bytesAt(vaddr, n uint64) ([]byte, bool) {
	for _, s := range b.segs {
		if vaddr >= s.vaddr && vaddr-s.vaddr < s.filesz {
			off := vaddr - s.vaddr
			if n > s.filesz-off {
				return nil, false
			}
			return b.data[s.off+off : s.off+off+n], true
		}
	}
	return nil, false
}

// Code returns a copy of the machine code of f, for the caller to
// disassemble (to find, say, the return instructions to probe).
func (b *Binary) Code(f Func) ([]byte, error) {
	if f.End <= f.Entry {
		return nil, fmt.Errorf("symbols: %s: empty range [%#x, %#x)", f.Name, f.Entry, f.End)
	}
	code, ok := b.bytesAt(f.Entry, f.End-f.Entry)
	if !ok {
		return nil, fmt.Errorf("symbols: %s: [%#x, %#x) is not in the file", f.Name, f.Entry, f.End)
	}
	return append([]byte(nil), code...), nil
}
