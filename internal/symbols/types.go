package symbols

import "encoding/binary"

// Offsets in the runtime's _type (internal/abi.Type), the same from Go 1.18
// to 1.26 on 64-bit: tflag at 20, str (a nameOff from moduledata.types) at 40.
const (
	typeTFlagOff    = 20
	typeStrOff      = 40
	tflagExtraStar  = 1 << 1
	maxTypeNameSize = 512
)

// TypeName returns the name of the Go type whose descriptor is at vaddr
// ("http.Header", "map[string]int"), or "" if it cannot be read.
func (b *Binary) TypeName(vaddr uint64) string {
	if b.tab == nil || b.tab.types == 0 {
		return ""
	}
	t, ok := b.bytesAt(vaddr, typeStrOff+4)
	if !ok {
		return ""
	}
	off := int32(b.tab.order.Uint32(t[typeStrOff:]))
	if off <= 0 {
		return ""
	}
	s := b.name(b.tab.types+uint64(off), maxTypeNameSize)
	if t[typeTFlagOff]&tflagExtraStar != 0 && len(s) > 0 && s[0] == '*' {
		s = s[1:]
	}
	return s
}

// Offsets in the runtime's type descriptors on 64-bit, the same from Go
// 1.19 to 1.26: a type's size at 0 and kind at 23 (its low 5 bits); a map
// type's key type at 48; a struct type's fields (a slice of name, type,
// offset) at 56.
const (
	typeSizeOff  = 0
	typeKindOff  = 23
	kindMask     = 1<<5 - 1
	mapKeyOff    = 48
	structFields = 56
	structField  = 24 // bytes a field takes
	maxKeyFields = 16
	maxFieldName = 64
)

// Kinds of Go types (internal/abi.Kind).
const (
	KindBool = 1 + iota
	KindInt
	KindInt8
	KindInt16
	KindInt32
	KindInt64
	KindUint
	KindUint8
	KindUint16
	KindUint32
	KindUint64
	KindUintptr
	KindFloat32
	KindFloat64
	KindComplex64
	KindComplex128
	KindArray
	KindChan
	KindFunc
	KindInterface
	KindMap
	KindPointer
	KindSlice
	KindString
	KindStruct
	KindUnsafePointer
)

// A Field is a field of a struct type.
type Field struct {
	Name         string
	Offset, Size uint64
	Kind         uint8
}

// MapKeyFields returns the fields of the key type of the map type whose
// descriptor is at vaddr, if the key is a struct; false if it is not, or
// cannot be read (a position-independent binary's pointers are relocated
// only in memory).
func (b *Binary) MapKeyFields(vaddr uint64) ([]Field, bool) {
	if b.tab == nil || b.tab.types == 0 {
		return nil, false
	}
	key, ok := b.word(vaddr + mapKeyOff)
	if !ok || b.kind(key) != KindStruct {
		return nil, false
	}
	fs, ok1 := b.word(key + structFields)
	n, ok2 := b.word(key + structFields + 8)
	if !ok1 || !ok2 || n == 0 || n > maxKeyFields {
		return nil, false
	}
	out := make([]Field, 0, n)
	for i := range n {
		f := fs + i*structField
		name, ok1 := b.word(f)
		typ, ok2 := b.word(f + 8)
		off, ok3 := b.word(f + 16)
		size, ok4 := b.word(typ + typeSizeOff)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, false
		}
		out = append(out, Field{Name: b.name(name, maxFieldName), Offset: off, Size: size, Kind: b.kind(typ)})
	}
	return out, true
}

// word reads the 64-bit word at vaddr.
func (b *Binary) word(vaddr uint64) (uint64, bool) {
	w, ok := b.bytesAt(vaddr, 8)
	if !ok {
		return 0, false
	}
	return b.tab.order.Uint64(w), true
}

// kind is the kind of the type whose descriptor is at vaddr, or 0.
func (b *Binary) kind(vaddr uint64) uint8 {
	k, ok := b.bytesAt(vaddr+typeKindOff, 1)
	if !ok {
		return 0
	}
	return k[0] & kindMask
}

// name reads an abi.Name at vaddr, a flag byte, a uvarint length and the
// bytes; "" if it cannot or it is longer than max.
func (b *Binary) name(vaddr, max uint64) string {
	hdr, ok := b.bytesAt(vaddr, 1+binary.MaxVarintLen16)
	if !ok {
		return ""
	}
	n, w := binary.Uvarint(hdr[1:])
	if w <= 0 || n > max {
		return ""
	}
	s, ok := b.bytesAt(vaddr+1+uint64(w), n)
	if !ok {
		return ""
	}
	return string(s)
}
