package symbols

import (
	"encoding/binary"
	"fmt"
	"iter"
)

// Funcs yields every function of the binary in address order.
func (b *Binary) Funcs() iter.Seq[Func] {
	return func(yield func(Func) bool) {
		for i := 0; i < b.tab.nfunc; i++ {
			if !yield(b.funcAt(i)) {
				return
			}
		}
	}
}

// SPStep is a stretch of a function's code, up to End, at whose
// instructions SP is Delta bytes below where it was at the function's
// entry. On amd64 the return address into the caller is at SP+Delta; on
// arm64 it is in LR while Delta is 0, and at SP once the frame is open.
type SPStep struct {
	End   uint64
	Delta int32
}

// SPSteps decodes f's SP-delta table (the runtime's pcsp, which its own
// unwinder uses) to find the return address at each instruction, also
// before the frame pointer is set up and after it is restored, and in
// functions that never set one up. The last step ends at f.End.
func (b *Binary) SPSteps(f Func) ([]SPStep, error) {
	t := b.tab
	i, ok := t.find(f.Entry)
	if !ok {
		return nil, fmt.Errorf("%s at %#x: not a function entry", f.Name, f.Entry)
	}
	fi, _ := t.funcInfo(i) // checked by index
	if fi.entry != f.Entry || fi.pcsp == 0 || uint64(fi.pcsp) >= uint64(len(t.pctab)) {
		return nil, fmt.Errorf("%s: %w: no SP-delta table", f.Name, errCorrupt)
	}
	// The encoding is pcvalue's: a zig-zag varint value delta, then a
	// varint pc delta in instruction quanta; a zero value delta after the
	// first step ends the table.
	p := t.pctab[fi.pcsp:]
	var steps []SPStep
	cur, val := fi.entry, int32(-1)
	for {
		uv, n := binary.Uvarint(p)
		if n <= 0 {
			return nil, fmt.Errorf("%s: %w: truncated SP-delta table", f.Name, errCorrupt)
		}
		if uv == 0 && cur != fi.entry {
			break
		}
		p = p[n:]
		d := uint32(uv)
		val += int32(-(d & 1) ^ (d >> 1))
		pcd, n := binary.Uvarint(p)
		if n <= 0 {
			return nil, fmt.Errorf("%s: %w: truncated SP-delta table", f.Name, errCorrupt)
		}
		p = p[n:]
		cur += pcd * t.quantum
		if k := len(steps); k > 0 && steps[k-1].Delta == val {
			steps[k-1].End = cur
		} else {
			steps = append(steps, SPStep{End: cur, Delta: val})
		}
		if cur >= f.End {
			break
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%s: %w: empty SP-delta table", f.Name, errCorrupt)
	}
	// Past the table is alignment padding up to the next function.
	steps[len(steps)-1].End = max(steps[len(steps)-1].End, f.End)
	return steps, nil
}
