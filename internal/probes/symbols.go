package probes

import (
	"errors"

	"github.com/maptrace/maptrace/internal/symbols"
)

// SymbolStatus is one thing maptrace probes and whether a binary has the
// functions for it.
type SymbolStatus struct {
	What  string   // "mutex waits", "map reads", "fatal errors", …
	Names []string // the functions it is probed at, under every name they have had
	Found []string // those in the binary, with a place to put the probe
	// Errs are found functions no probe can be placed on.
	Errs []error
	// Expected says the binary's Go version has the function whatever the
	// program does; otherwise (map functions) the linker keeps it only when
	// the program uses it, and its absence loses nothing.
	Expected bool
}

// Inventory lists, for each group of probes attach places, which of its
// functions bin has.
func Inventory(bin *symbols.Binary) []SymbolStatus {
	minor := GoMinor(bin.GoVersion)
	var out []SymbolStatus
	for _, g := range append(append([]probeGroup(nil), semacquires...), park, wakeup) {
		out = append(out, inventory(bin, g.what, g.names, g.expected(minor)))
	}
	for _, g := range []struct {
		what string
		ops  []uint8
	}{
		{"map reads", []uint8{OpRead}},
		{"map writes", []uint8{OpWrite}},
		{"map deletes", []uint8{OpDelete}},
		{"map iteration", []uint8{OpIterate, OpIterNext}},
	} {
		var names []string
		for _, f := range mapFuncs {
			for _, op := range g.ops {
				if f.op == op {
					names = append(names, f.name)
				}
			}
		}
		out = append(out, inventory(bin, g.what, names, false))
	}
	out = append(out, inventory(bin, "fatal errors", fatalFuncs, true))
	return out
}

func inventory(bin *symbols.Binary, what string, names []string, expected bool) SymbolStatus {
	s := SymbolStatus{What: what, Names: names, Expected: expected}
	for _, name := range names {
		_, err := FuncSites(bin, name)
		switch {
		case err == nil:
			s.Found = append(s.Found, name)
		case !errors.Is(err, ErrNoSymbol):
			s.Errs = append(s.Errs, err)
		}
	}
	return s
}
