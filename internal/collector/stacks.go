// Package collector reads what the BPF programs aggregated and turns it into
// the report's mutexes, maps and goroutines, with symbolized stacks.
package collector

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/internal/symbols"
)

// Symbolizer turns the target's runtime addresses into frames
// "function (file:line)", inlined calls expanded.
type Symbolizer struct {
	bin   *symbols.Binary
	bias  uint64
	cache map[uint64][]string
}

// NewSymbolizer symbolizes addresses of bin loaded at bias.
func NewSymbolizer(bin *symbols.Binary, bias uint64) *Symbolizer {
	return &Symbolizer{bin: bin, bias: bias, cache: map[uint64][]string{}}
}

// frames symbolizes one address. A return address points after its call, so
// it is looked up one byte earlier, as runtime.CallersFrames does.
func (s *Symbolizer) frames(pc uint64, isReturn bool) []string {
	if isReturn {
		pc--
	}
	if f, ok := s.cache[pc]; ok {
		return f
	}
	frames := s.bin.Frames(pc - s.bias)
	out := make([]string, 0, len(frames))
	for _, fr := range frames {
		out = append(out, fmt.Sprintf("%s (%s:%d)", fr.Func, fr.File, fr.Line))
	}
	if frames == nil { // in no Go function; an empty list is a wrapper, elided
		out = []string{fmt.Sprintf("%#x", pc)}
	}
	s.cache[pc] = out
	return out
}

// Return symbolizes a return address: the frames of the call before it,
// innermost first.
func (s *Symbolizer) Return(pc uint64) []string { return s.frames(pc, true) }

// Stack symbolizes a stack taken at a function's entry probe: caller is the
// return address read at SP, and walk the kernel's frame-pointer walk, whose
// first address is the probed instruction and whose others are return
// addresses. Leaf first.
func (s *Symbolizer) Stack(caller uint64, walk []uint64) []string {
	var out []string
	for i, pc := range entryStack(caller, walk) {
		out = append(out, s.frames(pc, i > 0)...)
	}
	return out
}

// entryStack puts the direct caller back into a stack walked from a function's
// entry, where the caller has not yet been pushed as a frame. Kernels since
// 6.10 add it themselves when the probe sits on PUSHQ BP; then it is already
// walk[1].
func entryStack(caller uint64, walk []uint64) []uint64 {
	out := make([]uint64, 0, len(walk)+1)
	if len(walk) > 0 {
		out = append(out, walk[0])
	}
	if caller != 0 && (len(walk) < 2 || walk[1] != caller) {
		out = append(out, caller)
	}
	if len(walk) > 1 {
		out = append(out, walk[1:]...)
	}
	return out
}

// Global names a data address of the target, or "".
func (s *Symbolizer) Global(addr uint64) string {
	name, _ := s.bin.Global(addr - s.bias)
	return name
}

// stackTrace reads one stack from a BPF stack trace map; nil if id < 0 or
// the entry is gone.
func stackTrace(m *ebpf.Map, id int64) []uint64 {
	if id < 0 {
		return nil
	}
	var pcs [64]uint64
	if err := m.Lookup(uint32(id), &pcs); err != nil {
		return nil
	}
	n := 0
	for n < len(pcs) && pcs[n] != 0 {
		n++
	}
	return pcs[:n]
}

// Bias is the target's load bias.
func (s *Symbolizer) Bias() uint64 { return s.bias }

// TypeName names the Go type whose descriptor is at the runtime address
// addr, or "".
func (s *Symbolizer) TypeName(addr uint64) string { return s.bin.TypeName(addr - s.bias) }

// PanicValue is what the runtime prints for a panic value of the type at
// the runtime address typ (symbols.Binary.PanicValue).
func (s *Symbolizer) PanicValue(typ, data uint64, word [2]uint64, text string) string {
	return s.bin.PanicValue(typ-s.bias, data, word, text)
}

// MapKeyFields is the fields of the key of the map type at runtime address
// addr, if a struct (symbols.Binary.MapKeyFields).
func (s *Symbolizer) MapKeyFields(addr uint64) ([]symbols.Field, bool) {
	return s.bin.MapKeyFields(addr - s.bias)
}
