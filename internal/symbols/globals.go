package symbols

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"sort"
)

// globals are the variables of the binary, from the ELF symbol table
// (the runtime's own tables do not name data).
type globals struct {
	byAddr []global // sorted by addr, sized ones only
	byName map[string]uint64
}

type global struct {
	name       string
	addr, size uint64
}

// dataSections are where the Go linker puts package-level variables.
var dataSections = map[string]bool{".data": true, ".bss": true, ".noptrdata": true, ".noptrbss": true}

func readGlobals(f *elf.File) (globals, error) {
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return globals{}, fmt.Errorf("reading .symtab: %w", err)
	}
	g := globals{byName: make(map[string]uint64)}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_OBJECT || int(s.Section) >= len(f.Sections) || !dataSections[f.Sections[s.Section].Name] {
			continue
		}
		g.byName[s.Name] = s.Value
		if s.Size > 0 {
			g.byAddr = append(g.byAddr, global{s.Name, s.Value, s.Size})
		}
	}
	sort.Slice(g.byAddr, func(i, j int) bool { return g.byAddr[i].addr < g.byAddr[j].addr })
	return g, nil
}

// GlobalAddr returns the address of the global variable called name, e.g.
// "main.sessions". It needs .symtab.
func (b *Binary) GlobalAddr(name string) (uint64, bool) {
	addr, ok := b.globals.byName[name]
	return addr, ok
}

// Global names the data at addr: "main.mu" for a global itself, and for an
// address inside one the path to the field or element there, e.g.
// "main.cfg.mu" or "main.shards[2].mu", as far as DWARF describes the type,
// with any rest as an offset ("main.cfg+0x10" without DWARF). It names the
// outermost object starting at addr: &cfg is "main.cfg", not its first
// field. ok is false for a stripped binary or an address in no global.
func (b *Binary) Global(addr uint64) (name string, ok bool) {
	vars := b.globals.byAddr
	i := sort.Search(len(vars), func(i int) bool { return vars[i].addr > addr }) - 1
	if i < 0 || addr-vars[i].addr >= vars[i].size {
		return "", false
	}
	v := vars[i]
	path, rest := b.fieldPath(v.name, int64(addr-v.addr))
	name = v.name + path
	if rest > 0 {
		name += fmt.Sprintf("+%#x", rest)
	}
	return name, true
}

// fieldPath descends through the DWARF type of global name towards off,
// returning the field and index path and the offset left within it.
func (b *Binary) fieldPath(name string, off int64) (path string, rest int64) {
	if off == 0 || b.dwarf == nil {
		return "", off
	}
	b.varTypesOnce.Do(b.indexVarTypes)
	typOff, ok := b.varTypes[name]
	if !ok {
		return "", off
	}
	typ, err := b.dwarf.Type(typOff)
	if err != nil {
		return "", off
	}
	for off > 0 {
		switch t := unwrapTypedef(typ).(type) {
		case *dwarf.StructType:
			f := fieldAt(t, off)
			if f == nil {
				return path, off
			}
			path += "." + f.Name
			off -= f.ByteOffset
			typ = f.Type
		case *dwarf.ArrayType:
			size := t.Type.Size()
			if size <= 0 || (t.Count >= 0 && off/size >= t.Count) {
				return path, off
			}
			path += fmt.Sprintf("[%d]", off/size)
			off %= size
			typ = t.Type
		default:
			return path, off
		}
	}
	return path, 0
}

// fieldAt returns the field of t whose bytes include off; zero-sized
// fields hold no bytes and are never it.
func fieldAt(t *dwarf.StructType, off int64) *dwarf.StructField {
	for _, f := range t.Field {
		if size := f.Type.Size(); off >= f.ByteOffset && off-f.ByteOffset < size {
			return f
		}
	}
	return nil
}

func unwrapTypedef(t dwarf.Type) dwarf.Type {
	for {
		td, ok := t.(*dwarf.TypedefType)
		if !ok {
			return t
		}
		t = td.Type
	}
}

// indexVarTypes maps every global variable DWARF describes to its type.
// Go emits them as direct children of their compile unit.
func (b *Binary) indexVarTypes() {
	b.varTypes = make(map[string]dwarf.Offset)
	r := b.dwarf.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			return
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			continue // descend into its children
		case dwarf.TagVariable:
			name, _ := e.Val(dwarf.AttrName).(string)
			if typ, ok := e.Val(dwarf.AttrType).(dwarf.Offset); ok && name != "" {
				b.varTypes[name] = typ
			}
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}
