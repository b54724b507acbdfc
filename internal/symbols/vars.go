package symbols

// Var is a global variable.
type Var struct {
	Name string
	Addr uint64
}

// PointerVars returns the pointer-sized globals, ordered by address. A map
// variable is one of them: its value is the address of the map's header.
func (b *Binary) PointerVars() []Var {
	var out []Var
	for _, g := range b.globals.byAddr {
		if g.size == 8 {
			out = append(out, Var{g.name, g.addr})
		}
	}
	return out
}

// DataRange bounds the package-level variables: [lo, hi), zero if the
// section headers are gone.
func (b *Binary) DataRange() (lo, hi uint64) { return b.dataLo, b.dataHi }

// SyncMapVars returns the globals that are a sync.Map, ordered by address:
// the variable holds the map itself, so its own address is the map's, the
// receiver of its methods. They are found by their DWARF type; without
// DWARF, by size, which may take in other globals of that size: harmless,
// as only addresses that sync.Map operations use are named by them.
func (b *Binary) SyncMapVars() []Var {
	if b.dwarf != nil {
		b.varTypesOnce.Do(b.indexVarTypes)
		var out []Var
		for _, g := range b.globals.byAddr {
			off, ok := b.varTypes[g.name]
			if !ok {
				continue
			}
			if t, err := b.dwarf.Type(off); err == nil && t.Common().Name == "sync.Map" {
				out = append(out, Var{g.name, g.addr})
			}
		}
		return out
	}
	size := uint64(32) // mu, read, dirty, misses
	if b.minor >= 24 {
		size = 48 // internal/sync.HashTrieMap: inited, initMu, root, keyHash, valEqual, seed
	}
	var out []Var
	for _, g := range b.globals.byAddr {
		if g.size == size {
			out = append(out, Var{g.name, g.addr})
		}
	}
	return out
}
