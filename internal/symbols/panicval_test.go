package symbols

import (
	"math"
	"testing"
)

// TestPanicValue checks the runtime's print of the kinds TestTargetPanics
// cannot make cheaply: every width of integer, NaN and infinities, and the
// float formats before and after Go 1.26.
func TestPanicValue(t *testing.T) {
	f64 := func(v float64) [2]uint64 { return [2]uint64{math.Float64bits(v)} }
	c64 := func(re, im float32) [2]uint64 {
		return [2]uint64{uint64(math.Float32bits(re)) | uint64(math.Float32bits(im))<<32}
	}
	for _, tc := range []struct {
		name  string
		kind  uint8
		minor int
		word  [2]uint64
		text  string
		want  string
	}{
		{"int8", 3, 22, [2]uint64{0xff}, "", "-1"},
		{"int16", 4, 22, [2]uint64{0xfffe}, "", "-2"},
		{"int32", 5, 22, [2]uint64{0xfffffffd}, "", "-3"},
		{"int", 2, 22, [2]uint64{math.MaxUint64}, "", "-1"},
		{"uint8", 8, 22, [2]uint64{0x1ff}, "", "255"},
		{"uint16", 9, 22, [2]uint64{0x1ffff}, "", "65535"},
		{"uint32", 10, 22, [2]uint64{0x1ffffffff}, "", "4294967295"},
		{"uint64", 11, 22, [2]uint64{math.MaxUint64}, "", "18446744073709551615"},
		{"main.mode", 7, 22, [2]uint64{5}, "", "main.mode(5)"},
		{"bool", 1, 22, [2]uint64{0x100}, "", "false"},
		{"float64", 14, 25, f64(-0.000123456789), "", "-1.234568e-004"},
		{"float64", 14, 25, f64(0), "", "+0.000000e+000"},
		{"float64", 14, 25, f64(math.Inf(-1)), "", "-Inf"},
		{"float64", 14, 25, f64(math.NaN()), "", "NaN"},
		{"float64", 14, 26, f64(-0.000123456789), "", "-0.000123456789"},
		{"float64", 14, 26, f64(1e21), "", "1e+21"},
		{"main.ratio", 14, 26, f64(0.25), "", "main.ratio(0.25)"},
		{"float32", 13, 26, [2]uint64{uint64(math.Float32bits(0.1))}, "", "0.1"},
		{"complex64", 15, 25, c64(1, 2), "", "(+1.000000e+000+2.000000e+000i)"},
		{"complex64", 15, 26, c64(1, 2), "", "(1+2i)"},
		{"main.z", 15, 26, c64(-1, -2), "", "main.z(-1-2i)"},
		{"complex128", 16, 26, [2]uint64{math.Float64bits(0.5), math.Float64bits(math.Inf(1))}, "", "(0.5+Infi)"},
		{"string", 24, 22, [2]uint64{}, "out of stock", "out of stock"},
		{"main.label", 24, 22, [2]uint64{}, "out of stock", `main.label("out of stock")`},
		{"main.item", 25, 22, [2]uint64{}, "", "(main.item) 0xc000012345"},
		{"*main.item", 22, 22, [2]uint64{}, "", "(*main.item) 0xc000012345"},
	} {
		if got := panicValue(tc.name, tc.kind, tc.minor, 0xc000012345, tc.word, tc.text); got != tc.want {
			t.Errorf("%s (kind %d, go1.%d) %x: %q, want %q", tc.name, tc.kind, tc.minor, tc.word, got, tc.want)
		}
	}
}
