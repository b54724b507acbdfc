package collector

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// TestFormatStruct: a struct key's fields as %+v shows them, its strings
// as the probes kept them; a string they did not keep is "?", one longer
// than they keep says how long it is, and the fields past the bytes the
// probe copied are left out.
func TestFormatStruct(t *testing.T) {
	fields := []symbols.Field{
		{Name: "name", Offset: 0, Size: 16, Kind: symbols.KindString},
		{Name: "id", Offset: 16, Size: 4, Kind: symbols.KindInt + 3}, // int32
		{Name: "on", Offset: 20, Size: 1, Kind: symbols.KindBool},
		{Name: "n", Offset: 24, Size: 8, Kind: symbols.KindUint + 4}, // uint64
		{Name: "long", Offset: 32, Size: 16, Kind: symbols.KindString},
		{Name: "empty", Offset: 48, Size: 16, Kind: symbols.KindString},
		{Name: "p", Offset: 64, Size: 8, Kind: symbols.KindPointer}, // past the bytes copied
	}
	k := bpf.MapsMapKey{Len: 72, Kind: keyKindOther}
	binary.LittleEndian.PutUint64(k.Data[0:], 0x1000)
	binary.LittleEndian.PutUint64(k.Data[8:], 6)
	binary.LittleEndian.PutUint32(k.Data[16:], uint32(0xfffffffd)) // -3
	k.Data[20] = 1
	binary.LittleEndian.PutUint64(k.Data[24:], 1<<63)
	binary.LittleEndian.PutUint64(k.Data[32:], 0x2000)
	binary.LittleEndian.PutUint64(k.Data[40:], 100)
	kept := map[uint64]string{0x1000: "user:3", 0x2000: strings.Repeat("a", 64)}
	text := func(hash, n uint64) ([]byte, bool) {
		s, ok := kept[hash]
		return []byte(s), ok
	}
	want := `{name:"user:3" id:-3 on:true n:9223372036854775808 long:"` + strings.Repeat("a", 64) + `"…(100 bytes) empty:"" …}`
	if got := formatStruct(k, fields, text); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	delete(kept, 0x1000)
	if got, want := formatStruct(k, fields[:2], text), `{name:? id:-3}`; got != want {
		t.Errorf("a string not kept: got %s, want %s", got, want)
	}
}
