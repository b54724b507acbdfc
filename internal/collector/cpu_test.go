package collector

import (
	"runtime"
	"strings"
	"testing"

	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/symbols"
)

// retAddr is the return address into its caller, as the sampler records
// a map call site.
//
//go:noinline
func retAddr() uint64 {
	var pc [1]uintptr
	runtime.Callers(2, pc[:])
	return uint64(pc[0])
}

// TestCPUSitesByLine: two call sites on one line (a range over a map calls
// two map functions there) are one site, with both their samples.
func TestCPUSitesByLine(t *testing.T) {
	a, b := retAddr(), retAddr()
	c := retAddr()
	if a == b {
		t.Fatal("two calls, one return address")
	}
	bin, err := symbols.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	sym := NewSymbolizer(bin, 0) // a test binary is not position-independent
	got := CPU(&cpuprof.Result{Hz: 100, Samples: 20, Map: 9, Sites: map[uint64]uint64{a: 3, b: 2, c: 4}}, sym)
	if len(got.Sites) != 2 {
		t.Fatalf("sites %+v, want 2: the line of a and b, and c's", got.Sites)
	}
	first, second := got.Sites[0], got.Sites[1]
	if first.Samples != 5 || first.Seconds != 0.05 || second.Samples != 4 {
		t.Errorf("sites %+v, want 5 samples (0.05s) on the first line, then 4", got.Sites)
	}
	for _, s := range got.Sites {
		if !strings.Contains(s.Frame, "TestCPUSitesByLine (") || !strings.Contains(s.Frame, "cpu_test.go:") {
			t.Errorf("frame %q, want this test's function and file", s.Frame)
		}
	}
	if first.Frame == second.Frame {
		t.Errorf("both sites at %q", first.Frame)
	}
}
