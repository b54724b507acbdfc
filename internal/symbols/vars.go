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
