package cpuprof

import "github.com/cilium/ebpf"

// SetUseLink switches BPF links on or off, returning the old setting.
func SetUseLink(on bool) bool {
	old := useLink
	useLink = on
	return old
}

// Tables is how many binaries' step tables p holds.
func (p *Program) Tables() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tables)
}

// SetPreallocate switches the preallocated tables of kernels before 6.1 on
// or off, returning the old setting.
func SetPreallocate(on bool) bool {
	old := preallocate
	preallocate = on
	return old
}

// ProgramInfo is the kernel's information on p's program.
func (p *Program) ProgramInfo() (*ebpf.ProgramInfo, error) { return p.objs.Prog.Info() }
