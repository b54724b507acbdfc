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
// each.
var kindNames = map[uint8]string{
	1: "bool", 2: "int", 3: "int8", 4: "int16", 5: "int32", 6: "int64",
	7: "uint", 8: "uint8", 9: "uint16", 10: "uint32", 11: "uint64", 12: "uintptr",
	13: "float32", 14: "float64", 15: "complex64", 16: "complex128", 24: "string",
}

// panicValue formats as runtime.printpanicval does in Go 1.minor.
func panicValue(name string, kind uint8, minor int, data uint64, word [2]uint64, text string) string {
	basic, ok := kindNames[kind]
	if !ok {
		return fmt.Sprintf("(%s) %#x", name, data)
	}
	w := word[0]
	var v string
	switch kind {
	case KindString:
		if name == basic {
			return text
		}
		return name + `("` + text + `")`
	case KindBool:
		v = strconv.FormatBool(w&0xff != 0)
	case 2, 6: // int, int64
		v = strconv.FormatInt(int64(w), 10)
	case 3:
		v = strconv.FormatInt(int64(int8(w)), 10)
	case 4:
		v = strconv.FormatInt(int64(int16(w)), 10)
	case 5:
		v = strconv.FormatInt(int64(int32(w)), 10)
	case 7, 11, 12: // uint, uint64, uintptr
		v = strconv.FormatUint(w, 10)
	case 8:
		v = strconv.FormatUint(w&0xff, 10)
	case 9:
		v = strconv.FormatUint(w&0xffff, 10)
	case 10:
		v = strconv.FormatUint(w&0xffffffff, 10)
	case 13:
		v = printFloat(float64(math.Float32frombits(uint32(w))), 32, minor)
	case 14:
		v = printFloat(math.Float64frombits(w), 64, minor)
	case 15:
		v = "(" + printFloat(float64(math.Float32frombits(uint32(w))), 32, minor) +
			signed(printFloat(float64(math.Float32frombits(uint32(w>>32))), 32, minor)) + "i)"
	case 16:
		v = "(" + printFloat(math.Float64frombits(w), 64, minor) + signed(printFloat(math.Float64frombits(word[1]), 64, minor)) + "i)"
	}
	switch {
	case name == basic:
		return v
	case kind == 15 || kind == 16: // already in parentheses
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
