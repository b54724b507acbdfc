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
	// A name is a flag byte, a uvarint length and the bytes.
	hdr, ok := b.bytesAt(b.tab.types+uint64(off), 1+binary.MaxVarintLen16)
	if !ok {
		return ""
	}
	n, w := binary.Uvarint(hdr[1:])
	if w <= 0 || n == 0 || n > maxTypeNameSize {
		return ""
	}
	name, ok := b.bytesAt(b.tab.types+uint64(off)+1+uint64(w), n)
	if !ok {
		return ""
	}
	s := string(name)
	if t[typeTFlagOff]&tflagExtraStar != 0 && len(s) > 0 && s[0] == '*' {
		s = s[1:]
	}
	return s
}
