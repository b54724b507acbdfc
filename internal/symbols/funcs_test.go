package symbols

import (
	"os"
	"testing"
)

// TestSPSteps decodes the SP deltas of this test binary's functions and
// checks them against pcvalue's decoding of the same table, and the shapes
// of a frameless assembly function and of a Go function with a frame.
func TestSPSteps(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for f := range b.Funcs() {
		i, _ := b.tab.find(f.Entry)
		fi, _ := b.tab.funcInfo(i)
		steps, err := b.SPSteps(f)
		if fi.pcsp == 0 { // a marker such as go:textfipsstart: no code, no table
			if err == nil {
				t.Errorf("%s: no table, but steps %+v", f.Name, steps)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if last := steps[len(steps)-1].End; last != f.End {
			t.Fatalf("%s: steps end at %#x, the function at %#x", f.Name, last, f.End)
		}
		prev := f.Entry
		for _, s := range steps {
			if s.End <= prev {
				t.Fatalf("%s: step ends at %#x, after %#x", f.Name, s.End, prev)
			}
			// Past the table (padding) pcvalue has no value.
			for pc := prev; pc < s.End; pc++ {
				if v := b.tab.pcvalue(fi, fi.pcsp, pc); v != -1 && v != s.Delta {
					t.Fatalf("%s+%#x: step delta %d, pcvalue %d", f.Name, pc-f.Entry, s.Delta, v)
				}
			}
			prev = s.End
		}
		n++
	}
	if n < 1000 {
		t.Errorf("%d functions", n)
	}
	// runtime.memhash has no frame: the return address is always at SP.
	f, _ := b.Func("runtime.memhash")
	if steps, err := b.SPSteps(f); err != nil || len(steps) != 1 || steps[0].Delta != 0 {
		t.Errorf("%s: %+v, %v; want one step with delta 0", f.Name, steps, err)
	}
	// A Go function with a frame: 0 at its entry, 8 once BP is pushed,
	// then the whole frame.
	f, _ = b.Func("github.com/maptrace/maptrace/internal/symbols.(*Binary).SPSteps")
	if steps, err := b.SPSteps(f); err != nil || len(steps) < 3 || steps[0].Delta != 0 || steps[1].Delta != 8 || steps[2].Delta <= 8 {
		t.Errorf("%s: %+v, %v; want delta 0 at entry, 8 after PUSHQ BP, then the frame", f.Name, steps, err)
	}
}
