package probes

import (
	"debug/dwarf"
	"debug/elf"
	"testing"

	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestLayoutDWARF checks LayoutFor, the map internals the map programs read,
// against the DWARF of amd64 and arm64 builds of every release in the matrix
// (the arm64 ones inspected, not run).
func TestLayoutDWARF(t *testing.T) {
	for _, tc := range testtarget.Toolchains {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(tc+"/"+arch, func(t *testing.T) {
				exe := testtarget.BuildFor(t, arch, "../../testdata/maps", tc)
				bin, err := symbols.Open(exe)
				if err != nil {
					t.Fatal(err)
				}
				version := bin.GoVersion
				bin.Close()
				fields := dwarfFields(t, exe)
				l := LayoutFor(version)
				type want struct {
					field string
					off   uint64
				}
				var ws []want
				if GoMinor(version) >= 24 {
					ws = []want{{"internal/runtime/maps.Map.writing", l.FlagsOffset}, {"internal/runtime/maps.Iter.m", l.IterMap}}
				} else {
					ws = []want{{"runtime.hmap.flags", l.FlagsOffset}, {"runtime.hiter.h", l.IterMap}}
				}
				if l.SyncRead != 0 {
					read := l.SyncRead
					if GoMinor(version) < 20 {
						read -= 8 // an atomic.Value: the pointer is its interface's data word
					}
					ws = append(ws, want{"sync.Map.read", read}, want{"sync.Map.dirty", l.SyncDirty},
						want{"sync.Map.misses", l.SyncMisses}, want{"sync.readOnly.amended", l.SyncAmended})
				}
				for _, w := range ws {
					got, ok := fields[w.field]
					if !ok {
						t.Errorf("%s: not in DWARF", w.field)
					} else if got != w.off {
						t.Errorf("%s at %d, LayoutFor(%s) says %d", w.field, got, version, w.off)
					}
				}
			})
		}
	}
}

// dwarfFields maps "type.field" to the field's offset for every struct type
// in exe's DWARF.
func dwarfFields(t *testing.T, exe string) map[string]uint64 {
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			return out
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		typ, err := d.Type(e.Offset)
		if err != nil {
			continue
		}
		if st, ok := typ.(*dwarf.StructType); ok {
			for _, fl := range st.Field {
				out[name+"."+fl.Name] = uint64(fl.ByteOffset)
			}
		}
		r.SkipChildren()
	}
}
