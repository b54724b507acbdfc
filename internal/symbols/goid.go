package symbols

import (
	"debug/dwarf"
	"fmt"
)

// goidOffsets is the offset of goid in runtime.g on amd64 and arm64, by Go
// 1.x minor version, for binaries without DWARF. Measured from the DWARF of
// binaries built by go1.19.8, 1.20.14, 1.21.13, 1.22.12, 1.23.12, 1.24.13,
// 1.25.5 and 1.26.8 (the tests check it against each release's DWARF, for
// both architectures: nothing before goid depends on the architecture). Go
// 1.23 added g.syscallbp before goid; 1.25 dropped gobuf.ret from g.sched.
var goidOffsets = map[int]uint64{
	19: 152,
	20: 152,
	21: 152,
	22: 152,
	23: 160,
	24: 160,
	25: 152,
	26: 152,
}

// GoidOffset returns the offset of the goid field in runtime.g, which the
// eBPF side reads to tell goroutines apart. source says where it came from:
// "dwarf" (the binary's own runtime.g) or "table" (goidOffsets, when DWARF
// was stripped).
func (b *Binary) GoidOffset() (off uint64, source string, err error) {
	if b.dwarf != nil {
		off, err := dwarfGoidOffset(b.dwarf)
		if err != nil {
			return 0, "", fmt.Errorf("symbols: %w", err)
		}
		return off, "dwarf", nil
	}
	if !supportedArch(b.Arch) {
		return 0, "", fmt.Errorf("symbols: %w: no DWARF, and the goid table is for amd64 and arm64, not %s", ErrUnsupportedArch, b.Arch)
	}
	off, ok := goidOffsets[b.minor]
	if !ok {
		return 0, "", fmt.Errorf("symbols: %w: no DWARF, and the goid table does not know %s", ErrUnsupportedVersion, b.GoVersion)
	}
	return off, "table", nil
}

// dwarfGoidOffset reads the offset of runtime.g's goid member.
func dwarfGoidOffset(d *dwarf.Data) (uint64, error) {
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return 0, fmt.Errorf("reading DWARF: %w", err)
		}
		if e == nil {
			return 0, fmt.Errorf("DWARF has no runtime.g")
		}
		if e.Tag == dwarf.TagCompileUnit {
			continue
		}
		if e.Tag == dwarf.TagStructType && e.Val(dwarf.AttrName) == "runtime.g" {
			t, err := d.Type(e.Offset)
			if err != nil {
				return 0, fmt.Errorf("reading runtime.g: %w", err)
			}
			if st, ok := t.(*dwarf.StructType); ok {
				for _, f := range st.Field {
					if f.Name == "goid" {
						return uint64(f.ByteOffset), nil
					}
				}
			}
			return 0, fmt.Errorf("DWARF runtime.g has no goid field")
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}
