package collector

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// TestFormatStruct: a struct key's fields as %+v shows them, its strings
// read from the target; a string the target no longer has is "?", and the
// fields past the bytes the probe copied are left out.
func TestFormatStruct(t *testing.T) {
	fields := []symbols.Field{
		{Name: "name", Offset: 0, Size: 16, Kind: symbols.KindString},
		{Name: "id", Offset: 16, Size: 4, Kind: symbols.KindInt + 3}, // int32
		{Name: "on", Offset: 20, Size: 1, Kind: symbols.KindBool},
		{Name: "n", Offset: 24, Size: 8, Kind: symbols.KindUint + 4}, // uint64
		{Name: "p", Offset: 32, Size: 8, Kind: symbols.KindPointer},
	}
	k := bpf.MapsMapKey{Len: 40, Kind: keyKindOther}
	binary.LittleEndian.PutUint64(k.Data[0:], 0x1000)
	binary.LittleEndian.PutUint64(k.Data[8:], 6)
	binary.LittleEndian.PutUint32(k.Data[16:], uint32(0xfffffffd)) // -3
	k.Data[20] = 1
	binary.LittleEndian.PutUint64(k.Data[24:], 1<<63)
	text := map[uint64]string{0x1000: "user:3"}
	read := func(addr uint64, buf []byte) error {
		s, ok := text[addr]
		if !ok || len(s) < len(buf) {
			return errors.New("no such memory")
		}
		copy(buf, s)
		return nil
	}
	if got, want := formatStruct(k, fields, read), `{name:"user:3" id:-3 on:true n:9223372036854775808 …}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := formatStruct(k, fields[:2], nil), `{name:? id:-3}`; got != want {
		t.Errorf("the target gone: got %s, want %s", got, want)
	}
	text[0x1000] = "\x00\x00\x15\r\x00\x00" // freed, and reused by other data
	if got, want := formatStruct(k, fields[:1], read), `{name:?}`; got != want {
		t.Errorf("the text gone: got %s, want %s", got, want)
	}
}
