package agent

import (
	"debug/buildinfo"
	"os"
	"sync"

	"github.com/maptrace/maptrace/internal/symbols"
)

// binaries reads each executable once, whatever the number of its
// processes: its Go build information for every executable seen, its
// symbols (the bulk of a trace's memory: the whole file and its tables) for
// the executables traced, shared by their processes and released with the
// last one.
type binaries struct {
	mu   sync.Mutex
	info map[symbols.FileID]buildInfo
	syms map[symbols.FileID]*shared
}

type buildInfo struct {
	goVersion, module string // empty: not a Go program
}

// shared is one executable's symbols and how many traces use them.
type shared struct {
	bin  *symbols.Binary
	refs int
}

func newBinaries() *binaries {
	return &binaries{info: map[symbols.FileID]buildInfo{}, syms: map[symbols.FileID]*shared{}}
}

// buildInfo fills p's Go version and module, read once per executable. ok
// is false if the executable could not be opened: p has exited since it was
// seen, and nothing is kept, so that its exit does not make the executable's
// other processes "not Go".
func (b *binaries) buildInfo(p *Process) (ok bool) {
	b.mu.Lock()
	bi, ok := b.info[p.File]
	b.mu.Unlock()
	if !ok {
		f, err := os.Open(exeLink(p.PID))
		if err != nil {
			return false
		}
		defer f.Close()
		// Only the build information is read, not the whole file: most
		// executables seen are not traced.
		if x, err := buildinfo.Read(f); err == nil {
			bi = buildInfo{goVersion: x.GoVersion, module: x.Main.Path}
		}
		b.mu.Lock()
		b.info[p.File] = bi
		b.mu.Unlock()
	}
	p.GoVersion, p.Module = bi.goVersion, bi.module
	return true
}

// acquire returns the symbols of p's executable, read through p's
// /proc/PID/exe unless another process of it holds them already. The
// caller releases them.
func (b *binaries) acquire(p *Process) (*symbols.Binary, error) {
	b.mu.Lock()
	if s := b.syms[p.File]; s != nil {
		s.refs++
		b.mu.Unlock()
		return s.bin, nil
	}
	b.mu.Unlock()
	// Read without the lock: a large binary takes a while, and releases
	// must not wait for it.
	bin, err := symbols.Open(exeLink(p.PID))
	if err != nil {
		return nil, err
	}
	if bin.File != p.File { // exec'd since it was seen
		bin.Close()
		return nil, errExecd
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.syms[p.File]; s != nil { // read meanwhile by another caller
		bin.Close()
		s.refs++
		return s.bin, nil
	}
	b.syms[p.File] = &shared{bin: bin, refs: 1}
	return bin, nil
}

// release gives back what acquire returned for file; the symbols are
// dropped with the last process.
func (b *binaries) release(file symbols.FileID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.syms[file]
	if s == nil {
		return
	}
	if s.refs--; s.refs == 0 {
		s.bin.Close()
		delete(b.syms, file)
	}
}

// prune forgets the build information of executables no process runs now.
func (b *binaries) prune(running map[symbols.FileID]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for f := range b.info {
		if !running[f] {
			delete(b.info, f)
		}
	}
}
