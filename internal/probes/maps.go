package probes

import (
	"errors"
	"fmt"
	"strings"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Map operations, as the map programs record them (bpf/maps.bpf.c OP_*).
const (
	OpRead     = 1
	OpWrite    = 2
	OpDelete   = 3
	OpIterate  = 4
	OpIterNext = 5
	OpMiss     = 6 // sync.Map up to Go 1.23: counted per class only
	OpDirty    = 7
)

// How a map function receives its key (bpf/maps.bpf.c KEY_*).
const (
	keyNone   = 0
	keyU32    = 1
	keyU64    = 2
	keyStr    = 3
	keyPtr    = 4
	keyU64Ptr = 5
	keyIface  = 6
)

// Flags of a map probe's cookie value (bpf/maps.bpf.c SYNC_MAP, DICT).
const (
	flagSyncMap = 1 << 6 // a sync.Map operation: the receiver is the map
	flagDict    = 1 << 7 // a generic method: a dictionary before the key
)

// mapFunc is a probed map operation: its op and how it receives its key.
type mapFunc struct {
	name    string
	op, key uint8
}

// mapFuncs are the runtime's map entry points, classic and swiss alike (the
// swiss implementation keeps the runtime.* names through linkname).
var mapFuncs = []mapFunc{
	{"runtime.mapaccess1", OpRead, keyPtr},
	{"runtime.mapaccess2", OpRead, keyPtr},
	{"runtime.mapaccess1_fat", OpRead, keyPtr},
	{"runtime.mapaccess2_fat", OpRead, keyPtr},
	{"runtime.mapaccess1_fast32", OpRead, keyU32},
	{"runtime.mapaccess2_fast32", OpRead, keyU32},
	{"runtime.mapaccess1_fast64", OpRead, keyU64},
	{"runtime.mapaccess2_fast64", OpRead, keyU64},
	{"runtime.mapaccess1_faststr", OpRead, keyStr},
	{"runtime.mapaccess2_faststr", OpRead, keyStr},
	{"runtime.mapassign", OpWrite, keyPtr},
	{"runtime.mapassign_fast32", OpWrite, keyU32},
	{"runtime.mapassign_fast64", OpWrite, keyU64},
	{"runtime.mapassign_fast64ptr", OpWrite, keyU64Ptr},
	{"runtime.mapassign_faststr", OpWrite, keyStr},
	{"runtime.mapdelete", OpDelete, keyPtr},
	{"runtime.mapdelete_fast32", OpDelete, keyU32},
	{"runtime.mapdelete_fast64", OpDelete, keyU64},
	{"runtime.mapdelete_faststr", OpDelete, keyStr},
	{"runtime.mapclear", OpWrite, keyNone},
	{"runtime.mapiterinit", OpIterate, keyNone},  // before Go 1.24
	{"runtime.mapIterStart", OpIterate, keyNone}, // Go 1.24 on
	{"runtime.mapiternext", OpIterNext, keyNone},
	{"runtime.mapIterNext", OpIterNext, keyNone},
}

// syncMapFuncs are sync.Map's operations up to Go 1.23: methods of
// sync.(*Map), which take the key as an `any`. Store (from Go 1.20) and
// Delete only call Swap and LoadAndDelete, usually inlined into the caller:
// probing them too would count their calls twice. Swap and the CompareAnd*
// methods are from Go 1.20, Clear from 1.23.
var syncMapFuncs = []mapFunc{
	{"sync.(*Map).Load", OpRead, keyIface},
	{"sync.(*Map).LoadOrStore", OpWrite, keyIface},
	{"sync.(*Map).Swap", OpWrite, keyIface},
	{"sync.(*Map).CompareAndSwap", OpWrite, keyIface},
	{"sync.(*Map).LoadAndDelete", OpDelete, keyIface},
	{"sync.(*Map).CompareAndDelete", OpDelete, keyIface},
	{"sync.(*Map).Range", OpIterate, keyNone},
	{"sync.(*Map).Clear", OpWrite, keyNone},
	// The slow paths: never inlined (they are called from several methods).
	{"sync.(*Map).missLocked", OpMiss, keyNone},
	{"sync.(*Map).dirtyLocked", OpDirty, keyNone},
}

// syncMapStore119 is Go 1.19's Store, which has no Swap to call.
var syncMapStore119 = mapFunc{"sync.(*Map).Store", OpWrite, keyIface}

// hashTrieMap is the instantiation behind sync.Map from Go 1.24: sync.Map's
// methods are one-line wrappers of it, inlined or not, so its methods are
// probed instead (HashTrieMap's own Store and Delete only call Swap and
// LoadAndDelete). A generic method takes its shape dictionary after the
// receiver.
const hashTrieMap = "internal/sync.(*HashTrieMap[go.shape.interface {},go.shape.interface {}])."

var hashTrieMapFuncs = []mapFunc{
	{hashTrieMap + "Load", OpRead, keyIface},
	{hashTrieMap + "LoadOrStore", OpWrite, keyIface},
	{hashTrieMap + "Swap", OpWrite, keyIface},
	{hashTrieMap + "CompareAndSwap", OpWrite, keyIface},
	{hashTrieMap + "LoadAndDelete", OpDelete, keyIface},
	{hashTrieMap + "CompareAndDelete", OpDelete, keyIface},
	{hashTrieMap + "Range", OpIterate, keyNone},
	{hashTrieMap + "Clear", OpWrite, keyNone},
}

// syncMapProbes returns the sync.Map operations of bin with their cookie
// flags: HashTrieMap's methods where the binary has them (Go 1.24 on, unless
// built with GOEXPERIMENT=nosynchashtriemap), else sync.(*Map)'s. Which of
// them are linked in depends on what the program calls.
func syncMapProbes(bin *symbols.Binary) (funcs []mapFunc, flags uint8) {
	for _, f := range hashTrieMapFuncs {
		if _, ok := bin.Func(f.name); ok {
			return hashTrieMapFuncs, flagSyncMap | flagDict
		}
	}
	funcs = syncMapFuncs
	if _, ok := bin.Func("sync.(*Map).Swap"); !ok {
		funcs = append(funcs[:len(funcs):len(funcs)], syncMapStore119)
	}
	return funcs, flagSyncMap
}

// SyncMapFuncs are the names of the sync.Map operations (not their slow
// paths) the map probes
// attach to in bin, where it has them, whose callers are the call sites the
// map programs record for sync.Maps.
func SyncMapFuncs(bin *symbols.Binary) []string {
	funcs, _ := syncMapProbes(bin)
	var names []string
	for _, f := range funcs {
		if _, ok := bin.Func(f.name); ok && f.op <= OpIterate {
			names = append(names, f.name)
		}
	}
	return names
}

// MapFuncs are the names of the map entry points the map probes attach to,
// whose callers are the call sites the map programs record.
func MapFuncs() []string {
	names := make([]string, len(mapFuncs))
	for i, f := range mapFuncs {
		names[i] = f.name
	}
	return names
}

// publishFuncs store a pointer or an `any` atomically: a map stored by them
// is a copy-on-write snapshot being published (bpf/maps.bpf.c map_publish;
// the value says where the new value is, PUB_*). atomic.Pointer's methods
// are one-line wrappers of the *Pointer functions, which the compiler
// leaves as calls (they are the runtime's, for the write barrier). Only
// user code calls them, rarely next to map operations.
var publishFuncs = []struct {
	name  string
	value uint8
}{
	{"sync/atomic.StorePointer", 1},
	{"sync/atomic.SwapPointer", 1},
	{"sync/atomic.CompareAndSwapPointer", 2},
	{"sync/atomic.(*Value).Store", 3},
	{"sync/atomic.(*Value).Swap", 3},
	{"sync/atomic.(*Value).CompareAndSwap", 4},
}

// fatalFuncs never return; their entry says the target is dying and why:
// a fatal error, or a panic nothing recovered (fatalpanic).
var fatalFuncs = []string{"runtime.fatal", "runtime.throw", "runtime.fatalpanic"}

// MapLayout is where the map programs find Go's map internals.
type MapLayout struct {
	FlagsOffset uint64 // hmap.flags, or maps.Map.writing for swiss maps
	SeedOffset  uint64 // hmap.hash0, or maps.Map.seed: drawn anew for each map and on clear
	WritingMask uint8  // hashWriting, or the toggled writing byte
	IterMap     uint64 // hiter.h / maps.Iter.m
	PanicArg    uint64 // _panic.arg, the value a panic was given
	// DataLo, DataHi bound the target's package-level variables (run-time
	// addresses): a sync.Map there is a global, counted on its own rather
	// than with the other sync.Maps first used at the same call site.
	DataLo, DataHi uint64
	// SyncRead, SyncDirty, SyncMisses and SyncAmended are the offsets of
	// the pointer to sync.Map's read-only part, of its dirty and misses,
	// and of readOnly.amended, up to Go 1.23; zero where not known.
	SyncRead, SyncDirty, SyncMisses, SyncAmended uint64
}

// LayoutFor returns the map layout of a Go version: swiss maps from 1.24.
func LayoutFor(goVersion string) MapLayout {
	minor := GoMinor(goVersion)
	if minor >= 24 {
		l := MapLayout{FlagsOffset: 34, SeedOffset: 8, WritingMask: 1, IterMap: 24, PanicArg: 8}
		if minor >= 26 { // _panic lost its first field, argp
			l.PanicArg = 0
		}
		return l
	}
	l := MapLayout{FlagsOffset: 8, SeedOffset: 12, WritingMask: 4, IterMap: 24, PanicArg: 8}
	// sync.Map is mu Mutex, read, dirty, misses. From Go 1.20 read is an
	// atomic.Pointer[readOnly]; in 1.19 an atomic.Value, whose interface
	// holds a pointer to a readOnly in its second word.
	if minor >= 20 {
		l.SyncRead, l.SyncDirty, l.SyncMisses, l.SyncAmended = 8, 16, 24, 8
	} else {
		l.SyncRead, l.SyncDirty, l.SyncMisses, l.SyncAmended = 16, 24, 32, 8
	}
	return l
}

// LoadMaps loads the map programs for a target.
func LoadMaps(goidOffset uint64, l MapLayout, keys bool, multi bool) (*bpf.MapsObjects, error) {
	spec, err := bpf.LoadMaps()
	if err != nil {
		return nil, err
	}
	collect := uint8(0)
	if keys {
		collect = 1
	}
	for name, v := range map[string]any{
		"goid_offset":         goidOffset,
		"map_flags_offset":    l.FlagsOffset,
		"map_seed_offset":     l.SeedOffset,
		"map_writing_mask":    l.WritingMask,
		"iter_map_offset":     l.IterMap,
		"panic_arg_offset":    l.PanicArg,
		"data_lo":             l.DataLo,
		"data_hi":             l.DataHi,
		"sync_read_offset":    l.SyncRead,
		"sync_dirty_offset":   l.SyncDirty,
		"sync_misses_offset":  l.SyncMisses,
		"sync_amended_offset": l.SyncAmended,
		"collect_keys":        collect,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if !keys {
		// No key is counted: the key tables need no room (they take ~8 MB of kernel memory each).
		for _, name := range []string{bpf.MapsMapKeysA, bpf.MapsMapKeysB} {
			spec.Maps[name].MaxEntries = 1
		}
	}
	PrepareSpec(spec, multi)
	var objs bpf.MapsObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load map programs: %w", err)
	}
	return &objs, nil
}

// PlanMaps places an entry probe on every map function in bin, and on the
// fatal-error functions. Map functions a program does not use are not linked
// into it; they are listed in Missing as not probed.
func PlanMaps(bin *symbols.Binary, objs *bpf.MapsObjects) (maps, fatal *Plan, err error) {
	maps, fatal = &Plan{}, &Plan{}
	var absent []string
	for _, f := range mapFuncs {
		s, err := FuncSites(bin, f.name)
		if err != nil {
			if errors.Is(err, ErrNoSymbol) {
				absent = append(absent, strings.TrimPrefix(f.name, "runtime."))
				continue
			}
			return nil, nil, err
		}
		maps.add(f.name, s, objs.MapOp, f.op|f.key<<3)
	}
	if len(absent) > 0 {
		maps.Missing = append(maps.Missing, "map functions not linked into this binary (unused by it): "+strings.Join(absent, ", "))
	}
	// sync.Map operations the program does not use are not linked in
	// either; that is not worth a note.
	syncFuncs, flags := syncMapProbes(bin)
	for _, f := range syncFuncs {
		s, err := FuncSites(bin, f.name)
		if errors.Is(err, ErrNoSymbol) {
			continue
		}
		if err != nil { // sync.Map is a bonus: the maps are still traced
			maps.Missing = append(maps.Missing, fmt.Sprintf("sync.Map operation not probed: %v", err))
			continue
		}
		maps.add(f.name, s, objs.MapOp, f.op|f.key<<3|flags)
	}
	// Atomic stores a program does not use are not linked in either.
	for _, f := range publishFuncs {
		s, err := FuncSites(bin, f.name)
		if errors.Is(err, ErrNoSymbol) {
			continue
		}
		if err != nil { // snapshots are a bonus: the maps are still traced
			maps.Missing = append(maps.Missing, fmt.Sprintf("map snapshots not seen: %v", err))
			continue
		}
		maps.add(f.name, s, objs.MapPublish, f.value)
	}
	fatal.Base = len(maps.Names) // the same hit counters: the ones after the map probes'
	for _, name := range fatalFuncs {
		s, err := FuncSites(bin, name)
		if err != nil {
			fatal.Missing = append(fatal.Missing, fmt.Sprintf("%v: the target's fatal errors are not caught", err))
			continue
		}
		prog := objs.FatalEnter
		if name == "runtime.fatalpanic" {
			prog = objs.PanicEnter
		}
		fatal.add(name, s, prog, 0)
	}
	return maps, fatal, nil
}

// Fast64ReadCookie is the cookie of a map probe on runtime.mapaccess1_fast64
// with hit counter index: a read by a uint64 key, the commonest map
// operation.
func Fast64ReadCookie(index int) uint64 { return Cookie(index, OpRead|keyU64<<3) }
