package symbols

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PanicValue is what the runtime prints after "panic: " for a value of the
// type whose descriptor is at typ, with data pointer data, the 16 bytes
// there word, and text those bytes read as a string: a number or bool by
// its value, a string as it is, each of a named type wrapped in the type's
// name, anything else as the type in parentheses and the data pointer. ""
// if the type cannot be read.
func (b *Binary) PanicValue(typ, data uint64, word [2]uint64, text string) string {
	name := b.TypeName(typ)
	if name == "" {
		return ""
	}
	return panicValue(name, b.kind(typ), b.minor, data, word, text)
}

// Kinds of Go types printed by value, with the name of the unnamed type of
// each and, for an integer, its width in bits (amd64 and arm64 alike).
var kindNames = map[uint8]struct {
	name string
	bits uint
}{
	KindBool: {"bool", 8}, KindInt: {"int", 64}, KindInt8: {"int8", 8}, KindInt16: {"int16", 16},
	KindInt32: {"int32", 32}, KindInt64: {"int64", 64}, KindUint: {"uint", 64}, KindUint8: {"uint8", 8},
	KindUint16: {"uint16", 16}, KindUint32: {"uint32", 32}, KindUint64: {"uint64", 64}, KindUintptr: {"uintptr", 64},
	KindFloat32: {"float32", 32}, KindFloat64: {"float64", 64}, KindComplex64: {"complex64", 64},
	KindComplex128: {"complex128", 128}, KindString: {"string", 128},
}

// panicValue formats as runtime.printpanicval does in Go 1.minor.
func panicValue(name string, kind uint8, minor int, data uint64, word [2]uint64, text string) string {
	basic, ok := kindNames[kind]
	if !ok {
		return fmt.Sprintf("(%s) %#x", name, data)
	}
	w := word[0]
	var v string
	switch {
	case kind == KindString:
		if name == basic.name {
			return text
		}
		return name + `("` + text + `")`
	case kind == KindBool:
		v = strconv.FormatBool(w&0xff != 0)
	case kind >= KindInt && kind <= KindInt64:
		shift := 64 - basic.bits
		v = strconv.FormatInt(int64(w<<shift)>>shift, 10)
	case kind >= KindUint && kind <= KindUintptr:
		shift := 64 - basic.bits
		v = strconv.FormatUint(w<<shift>>shift, 10)
	case kind == KindFloat32:
		v = printFloat(float64(math.Float32frombits(uint32(w))), 32, minor)
	case kind == KindFloat64:
		v = printFloat(math.Float64frombits(w), 64, minor)
	case kind == KindComplex64:
		v = "(" + printFloat(float64(math.Float32frombits(uint32(w))), 32, minor) +
			signed(printFloat(float64(math.Float32frombits(uint32(w>>32))), 32, minor)) + "i)"
	case kind == KindComplex128:
		v = "(" + printFloat(math.Float64frombits(w), 64, minor) + signed(printFloat(math.Float64frombits(word[1]), 64, minor)) + "i)"
	}
	switch {
	case name == basic.name:
		return v
	case kind == KindComplex64 || kind == KindComplex128: // already in parentheses
		return name + v
	}
	return name + "(" + v + ")"
}

// printFloat formats v as the runtime's print does: the shortest text that
// reads back from Go 1.26 (0 when the version is unknown), and before it a
// sign, seven digits and a three-digit exponent ("+1.500000e+000").
func printFloat(v float64, bits, minor int) string {
	if minor == 0 || minor >= 26 {
		return strconv.FormatFloat(v, 'g', -1, bits)
	}
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(math.Abs(v), 'e', 6, 64) // "1.500000e+00"
	mant, exp, _ := strings.Cut(s, "e")
	sign := "+"
	if math.Signbit(v) {
		sign = "-"
	}
	e, _ := strconv.Atoi(exp)
	esign := "+"
	if e < 0 {
		esign, e = "-", -e
	}
	return fmt.Sprintf("%s%se%s%03d", sign, mant, esign, e)
}

// signed puts a plus sign before a number without a sign, as a complex
// number's imaginary part is printed.
func signed(s string) string {
	if s != "" && s[0] != '-' && s[0] != '+' {
		return "+" + s
	}
	return s
}
