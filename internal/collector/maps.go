package collector

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/symbols"
)

// Key display modes (--keys).
const (
	KeysRaw  = "raw"
	KeysHash = "hash"
	KeysNone = "none"
)

// Bounds on what a map lists.
const (
	topKeys      = 10
	topSites     = 5
	topGoroKeys  = 3
	keyKindInt   = 1
	keyKindUint  = 2
	keyKindStr   = 3
	keyKindPtr   = 4
	keyKindOther = 0 // bpf/maps.bpf.c: bytes, shown in hex
	// syncMapType is the class type of heap sync.Maps, and syncMapGlobal
	// marks that of a global one, its address (bpf/maps.bpf.c
	// SYNC_MAP_TYPE, SYNC_MAP_GLOBAL): their methods are passed no map type.
	syncMapType   = 1
	syncMapGlobal = 1 << 63
	// syncMapInternal is the Go map type inside a sync.Map up to Go 1.23:
	// only package sync can make one (entry is unexported), and its
	// operations are the sync.Map's, counted in the sync.Map's row.
	syncMapInternal = "map[interface {}]*sync.entry"
)

// Maps reads the map programs' maps.
type Maps struct {
	Maps *bpf.MapsMaps
	Sym  *Symbolizer
	Keys string // KeysRaw, KeysHash or KeysNone
	// HotKeys holds the key counts drained from the probes (nil with
	// KeysNone); Hasher hashes keys for KeysHash.
	HotKeys *HotKeys
	Hasher  *KeyHasher
	// Name names a map header address (a global map variable), or "".
	Name func(addr uint64) string
	// Globals lists the target's global map variables by header address.
	Globals func() map[uint64]string
	// Scale multiplies observed counts into estimates: 1/sampling fraction.
	Scale float64
}

// MapsResult is what the map programs saw.
type MapsResult struct {
	// Maps are the rows: named globals one each, heap maps by class.
	Maps  []report.Map
	Races []report.Race
	// Goroutines are the goroutines by map operations, with their hot keys.
	Goroutines []report.Goroutine
	// Fatal is what the target died of, if it did: a fatal error or a panic.
	Fatal Fatal
	// Callers are the return addresses of each row's call sites (Maps[i]'s
	// in Callers[i]) with their counts, to join with CPU samples, which are
	// keyed the same way.
	Callers []map[uint64]uint64
}

var opNames = map[uint32]string{
	probes.OpRead: report.OpRead, probes.OpWrite: report.OpWrite,
	probes.OpDelete: report.OpDelete, probes.OpIterate: report.OpIterate,
}

func (c *Maps) scale(n uint64) uint64 {
	if c.Scale <= 1 {
		return n
	}
	return uint64(float64(n)*c.Scale + 0.5)
}

// row is one report row being built: a named global, or a class of heap
// maps of one type first used in one function.
type row struct {
	m report.Map
	// fields are the key's fields when it is a struct the type data tell.
	fields  []symbols.Field
	callers map[uint64]uint64
	goids   map[int64]bool
	writers map[int64]bool
	il      *report.Interleave
}

// Collect returns the map rows by operations, most first, and the races.
func (c *Maps) Collect() (*MapsResult, error) {
	res := &MapsResult{}
	classes := map[bpf.MapsClassKey]*bpf.MapsClassStat{}
	var (
		ck bpf.MapsClassKey
		st bpf.MapsClassStat
	)
	it := c.Maps.ClassStats.Iterate()
	for it.Next(&ck, &st) {
		s := st
		classes[ck] = &s
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map classes: %w", err)
	}
	// Classes whose maps are global variables: a class all of whose maps are
	// named is reported under the name.
	named := map[bpf.MapsClassKey][]uint64{}
	if c.Globals != nil {
		for addr := range c.Globals() {
			var mi bpf.MapsMapInfo
			if c.Maps.MapClasses.Lookup(addr, &mi) == nil && classes[mi.Class] != nil {
				named[mi.Class] = append(named[mi.Class], addr)
			}
		}
	}
	stacks, err := c.siteStacks()
	if err != nil {
		return nil, err
	}
	isSync := func(k bpf.MapsClassKey) bool { return k.Type == syncMapType || k.Type&syncMapGlobal != 0 }
	groups, err := c.shardGroups(classes, func(k bpf.MapsClassKey) bool { return isSync(k) || len(named[k]) > 0 })
	if err != nil {
		return nil, err
	}
	// A sharded map's row is named by the function that first used its
	// busiest class.
	groupClass := map[*shardGroup]string{}
	for _, g := range groups {
		if _, ok := groupClass[g]; ok {
			continue
		}
		best := g.classes[0]
		for _, k := range g.classes[1:] {
			if classOps(classes[k]) > classOps(classes[best]) {
				best = k
			}
		}
		groupClass[g] = classFunc(c.Sym, best.Site, stacks[best])
	}
	rowGroup := map[*row]*shardGroup{}
	rows := map[string]*row{}
	var order []string
	byClass := map[bpf.MapsClassKey]*row{}
	for k, st := range classes {
		kind, typ := report.KindMap, ""
		if isSync(k) {
			kind, typ = report.KindSyncMap, "sync.Map"
		} else if typ = c.Sym.TypeName(k.Type); typ == syncMapInternal {
			continue
		}
		m := report.Map{
			Kind:              kind,
			Type:              typ,
			Maps:              int(st.Maps),
			KeyType:           keyType(keyKind(typ, st.KeyKind), st.KeySize),
			Reads:             c.scale(st.Ops[probes.OpRead]),
			Writes:            c.scale(st.Ops[probes.OpWrite]),
			Deletes:           c.scale(st.Ops[probes.OpDelete]),
			Iterations:        c.scale(st.Ops[probes.OpIterate]),
			InterleavedWrites: c.scale(st.Interleaved),
		}
		if st.Publishes > 0 {
			m.Snapshots = &report.Snapshots{Published: c.scale(st.Publishes), Entries: c.scale(st.Published)}
		}
		if kind == report.KindSyncMap && (st.Misses > 0 || st.Promotions > 0 || st.DirtyCopies > 0) {
			m.SyncMap = &report.SyncMapStats{Misses: c.scale(st.Misses), Promotions: c.scale(st.Promotions), DirtyCopies: c.scale(st.DirtyCopies)}
		}
		if addrs := named[k]; len(addrs) > 0 && uint64(len(addrs)) >= st.Maps {
			sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
			m.Address = fmt.Sprintf("%#x", addrs[0])
			m.Name = c.Name(addrs[0])
		} else if g := groups[k]; g != nil {
			m.Kind, m.Class = report.KindSharded, groupClass[g]
		} else {
			m.Class = classFunc(c.Sym, k.Site, stacks[k])
		}
		id := m.Kind + "\x00" + m.ID() // a sharded map is not merged with other maps of its type and function
		r := rows[id]
		if r == nil {
			r = &row{m: m, callers: map[uint64]uint64{}, goids: map[int64]bool{}, writers: map[int64]bool{}}
			if kind == report.KindMap {
				r.fields, _ = c.Sym.MapKeyFields(k.Type)
			}
			rows[id] = r
			order = append(order, id)
			if g := groups[k]; g != nil {
				rowGroup[r] = g
			}
		} else { // another first-use instruction in the same function
			mergeMap(&r.m, m)
		}
		byClass[k] = r
	}
	if err := c.sites(byClass); err != nil {
		return nil, err
	}
	if c.Keys != KeysNone && c.HotKeys != nil {
		c.keys(byClass, classes)
	}
	gs, err := c.goroutines(byClass)
	if err != nil {
		return nil, err
	}
	if err := c.interleaves(byClass); err != nil {
		return nil, err
	}
	res.Goroutines = gs
	sort.Slice(order, func(i, j int) bool { return mapOps(rows[order[i]].m) > mapOps(rows[order[j]].m) })
	for _, id := range order {
		r := rows[id]
		r.m.Goroutines, r.m.Writers = len(r.goids), len(r.writers)
		r.m.HotKeys = topHotKeys(r.m.HotKeys, topKeys)
		r.m.Sites = mergeSites(r.m.Sites)
		if g := rowGroup[r]; g != nil {
			r.m.Sharded = c.sharded(g, r.m.HotKeys)
		}
		if r.il != nil {
			r.m.Interleave = r.il
		}
		res.Maps = append(res.Maps, r.m)
		res.Callers = append(res.Callers, r.callers)
	}
	if res.Races, err = c.races(byClass); err != nil {
		return nil, err
	}
	res.Fatal = c.fatal(byClass, &res.Races)
	return res, nil
}

// keyKind is the kind of the keys of maps of type mapType, seen by the
// probes as kind. The runtime's 32- and 64-bit fast paths take every key as
// a signed integer: the map's type tells pointers (reads and deletes, while
// writes take them as pointers), which read better in hex, and unsigned
// integers (a hash shown negative matches nothing the user has).
func keyKind[K uint8 | uint32](mapType string, kind K) K {
	if kind != keyKindInt && kind != keyKindUint && kind != keyKindPtr {
		return kind
	}
	switch {
	case strings.HasPrefix(mapType, "map[*"), strings.HasPrefix(mapType, "map[unsafe.Pointer]"),
		strings.HasPrefix(mapType, "map[chan"):
		return keyKindPtr
	case strings.HasPrefix(mapType, "map[uint"): // uint, uint8…uint64, uintptr
		return keyKindUint
	}
	return kind
}

// mergeMap adds the counts of b, a class of the same row, to a.
func mergeMap(a *report.Map, b report.Map) {
	a.Maps += b.Maps
	a.Reads += b.Reads
	a.Writes += b.Writes
	a.Deletes += b.Deletes
	a.Iterations += b.Iterations
	a.InterleavedWrites += b.InterleavedWrites
	a.HotKeys = append(a.HotKeys, b.HotKeys...)
	if b.SyncMap != nil {
		if a.SyncMap == nil {
			a.SyncMap = &report.SyncMapStats{}
		}
		a.SyncMap.Misses += b.SyncMap.Misses
		a.SyncMap.Promotions += b.SyncMap.Promotions
		a.SyncMap.DirtyCopies += b.SyncMap.DirtyCopies
	}
	if a.KeyType == "other" {
		a.KeyType = b.KeyType
	}
	if b.Snapshots != nil {
		if a.Snapshots == nil {
			a.Snapshots = &report.Snapshots{}
		}
		a.Snapshots.Published += b.Snapshots.Published
		a.Snapshots.Entries += b.Snapshots.Entries
	}
}

func mapOps(m report.Map) uint64 { return m.Reads + m.Writes + m.Deletes + m.Iterations }

func classOps(st *bpf.MapsClassStat) uint64 {
	var n uint64
	for _, o := range st.Ops {
		n += o
	}
	return n
}

// siteStacks are the stacks of each class's first-use site.
func (c *Maps) siteStacks() (map[bpf.MapsClassKey][]uint64, error) {
	out := map[bpf.MapsClassKey][]uint64{}
	var (
		k bpf.MapsSiteKey
		v bpf.MapsSiteVal
	)
	it := c.Maps.Sites.Iterate()
	for it.Next(&k, &v) {
		if k.Caller == k.Class.Site && out[k.Class] == nil {
			out[k.Class] = stackTrace(c.Maps.Stacks, v.Stackid)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map sites: %w", err)
	}
	return out, nil
}

// classFunc names a class by the innermost function of its first-use stack
// that is the program's own or a library's: not the runtime, reflect or a
// generic map helper, which many unrelated maps pass through.
func classFunc(sym *Symbolizer, site uint64, walk []uint64) string {
	stack := sym.Stack(site, walk)
	for _, f := range stack[min(1, len(stack)):] { // [0] is the probed map function
		fn := report.FrameFunc(f)
		if !plumbing(fn) {
			return fn
		}
	}
	if len(stack) > 1 {
		return report.FrameFunc(stack[1])
	}
	return fmt.Sprintf("%#x", site)
}

// plumbing says whether fn only passes maps through for others.
func plumbing(fn string) bool {
	for _, p := range []string{"runtime.", "internal/", "reflect.", "maps.", "sync.", "iter."} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

func keyType(kind, size uint32) string {
	switch kind {
	case keyKindStr:
		return "string"
	case keyKindPtr:
		return "pointer"
	case keyKindInt, keyKindUint:
		prefix := "int"
		if kind == keyKindUint {
			prefix = "uint"
		}
		if size == 4 || size == 8 || size == 2 || size == 1 {
			return prefix + strconv.Itoa(int(size)*8)
		}
	}
	return "other"
}

func (c *Maps) sites(byClass map[bpf.MapsClassKey]*row) error {
	var (
		k bpf.MapsSiteKey
		v bpf.MapsSiteVal
	)
	it := c.Maps.Sites.Iterate()
	for it.Next(&k, &v) {
		r := byClass[k.Class]
		if r == nil {
			continue
		}
		stack := c.Sym.Stack(k.Caller, stackTrace(c.Maps.Stacks, v.Stackid))
		r.m.Sites = append(r.m.Sites, report.Site{Stack: stack, Op: opNames[k.Op], Count: c.scale(v.Count)})
		r.callers[k.Caller] += v.Count
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map sites: %w", err)
	}
	return nil
}

// mergeSites merges sites that look the same to the user (they are counted
// by their direct caller, with the stack of the first call) and keeps the
// busiest.
func mergeSites(sites []report.Site) []report.Site {
	merged := map[string]*report.Site{}
	var out []report.Site
	for _, s := range sites {
		key := s.Op + "\n" + strings.Join(s.Stack, "\n")
		if x := merged[key]; x != nil {
			x.Count += s.Count
			continue
		}
		out = append(out, s)
		merged[key] = &out[len(out)-1]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out[:min(len(out), topSites)]
}

// keys lists each class's kept keys by their guaranteed counts, and as
// "other" the rest of its keyed operations: those of keys not kept, those the
// guaranteed counts leave out, and those the kernel's key table had no room
// for.
func (c *Maps) keys(byClass map[bpf.MapsClassKey]*row, classes map[bpf.MapsClassKey]*bpf.MapsClassStat) {
	for k, r := range byClass {
		kept, total := c.HotKeys.classKeys(k)
		total += classes[k].OtherKeys
		var listed uint64
		for _, e := range kept {
			r.m.HotKeys = append(r.m.HotKeys, report.HotKey{Key: c.showKey(e.key, r), Count: c.scale(e.lower)})
			listed += e.lower
		}
		if total > listed {
			r.m.HotKeys = append(r.m.HotKeys, report.HotKey{Key: report.OtherKey, Count: c.scale(total - listed)})
		}
	}
}

// showKey shows a key of row r per --keys, as its map's type has it: a
// pointer key read as an integer and written as a pointer is one key.
func (c *Maps) showKey(k bpf.MapsMapKey, r *row) string {
	var s string
	if r != nil && r.fields != nil && k.Kind == keyKindOther {
		s = formatStruct(k, r.fields, c.keyText)
	} else {
		if r != nil {
			k.Kind = keyKind(r.m.Type, k.Kind)
		}
		s = FormatKey(k)
	}
	if c.Keys == KeysHash {
		return c.Hasher.Hash(s)
	}
	return s
}

// fieldKeyKind is the key kind FormatKey shows a field of Go kind k by, as
// the probes class a key's kind (go_kind_class in bpf/maps.bpf.c): bytes in
// hex for all but integers and pointers.
func fieldKeyKind(k uint8) uint8 {
	switch {
	case k >= symbols.KindInt && k <= symbols.KindInt64:
		return keyKindInt
	case k >= symbols.KindUint && k <= symbols.KindUintptr:
		return keyKindUint
	case k == symbols.KindPointer || k == symbols.KindUnsafePointer || k == symbols.KindChan:
		return keyKindPtr
	}
	return keyKindOther
}

// keyText is the text of a string in a struct key, by the hash of its text
// the probes put in the key in place of its address and its length: at most
// len(bpf.MapsText{}.B) bytes, false if they did not keep it.
func (c *Maps) keyText(hash, n uint64) ([]byte, bool) {
	var t bpf.MapsText
	if c.Maps == nil || c.Maps.KeyTexts == nil || c.Maps.KeyTexts.Lookup(bpf.MapsTextRef{Hash: hash, Len: n}, &t) != nil {
		return nil, false
	}
	return t.B[:min(n, uint64(len(t.B)))], true
}

// formatStruct shows a struct key as Go's %+v does, strings quoted: the
// fields the probe copied (the first KEY_BYTES of the key), and the text of
// its strings as the probes read it (? where they did not keep it).
func formatStruct(k bpf.MapsMapKey, fields []symbols.Field, text func(hash, n uint64) ([]byte, bool)) string {
	n := uint64(min(int(k.Len), len(k.Data)))
	raw := k.Data[:n]
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if f.Offset+f.Size > n {
			b.WriteString(" …")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Name)
		b.WriteByte(':')
		v := raw[f.Offset : f.Offset+f.Size]
		switch {
		case f.Kind == symbols.KindString && f.Size == 16:
			h, l := binary.LittleEndian.Uint64(v), binary.LittleEndian.Uint64(v[8:])
			var t []byte
			if l > 0 {
				var ok bool
				if t, ok = text(h, l); !ok {
					b.WriteString("?")
					continue
				}
			}
			b.WriteString(strconv.Quote(string(t)))
			if l > uint64(len(t)) {
				fmt.Fprintf(&b, "…(%d bytes)", l)
			}
		case f.Kind == symbols.KindBool && f.Size == 1:
			b.WriteString(strconv.FormatBool(v[0] != 0))
		default: // as a key of the field's type is shown
			fk := bpf.MapsMapKey{Len: uint32(f.Size), Kind: fieldKeyKind(f.Kind)}
			copy(fk.Data[:], v)
			b.WriteString(FormatKey(fk))
		}
	}
	b.WriteByte('}')
	return b.String()
}

// topHotKeys keeps the n most used keys and folds the rest into "other".
// A key counted in several classes of one row is one key.
func topHotKeys(ks []report.HotKey, n int) []report.HotKey {
	var other uint64
	var out []report.HotKey
	at := map[string]int{}
	for _, k := range ks {
		if k.Key == report.OtherKey {
			other += k.Count
			continue
		}
		if i, ok := at[k.Key]; ok {
			out[i].Count += k.Count
			continue
		}
		at[k.Key] = len(out)
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		for _, k := range out[n:] {
			other += k.Count
		}
		out = out[:n]
	}
	if other > 0 {
		out = append(out, report.HotKey{Key: report.OtherKey, Count: other})
	}
	return out
}

// FormatKey shows a key as the user wrote it: integers in decimal, strings as
// text, anything else in hex. KeyHasher hashes what it shows.
func FormatKey(k bpf.MapsMapKey) string {
	n := min(int(k.Len), len(k.Data))
	raw := k.Data[:n]
	switch k.Kind {
	case keyKindStr:
		s := strconv.Quote(string(raw))
		s = s[1 : len(s)-1]
		if int(k.Len) > n {
			s += fmt.Sprintf("…(%d bytes)", k.Len)
		}
		return s
	case keyKindInt, keyKindUint:
		var buf [8]byte
		copy(buf[:], raw)
		v := binary.LittleEndian.Uint64(buf[:])
		if k.Kind == keyKindUint {
			return strconv.FormatUint(v, 10)
		}
		shift := 64 - 8*uint(min(n, 8))
		return strconv.FormatInt(int64(v<<shift)>>shift, 10)
	case keyKindPtr:
		return fmt.Sprintf("%#x", binary.LittleEndian.Uint64(k.Data[:8]))
	}
	s := "0x" + hex.EncodeToString(raw)
	if int(k.Len) > n {
		s += fmt.Sprintf("…(%d bytes)", k.Len)
	}
	return s
}

func (c *Maps) goroutines(byClass map[bpf.MapsClassKey]*row) ([]report.Goroutine, error) {
	var (
		k  bpf.MapsGoroutineKey
		st bpf.MapsGoroutineStat
	)
	perGoid := map[int64]*report.Goroutine{}
	it := c.Maps.Goroutines.Iterate()
	for it.Next(&k, &st) {
		r := byClass[k.Class]
		if r == nil {
			continue
		}
		r.goids[k.Goid] = true
		if st.Writes > 0 {
			r.writers[k.Goid] = true
		}
		g := perGoid[k.Goid]
		if g == nil {
			g = &report.Goroutine{Goid: k.Goid}
			perGoid[k.Goid] = g
		}
		g.MapOps += c.scale(st.Ops)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map goroutines: %w", err)
	}
	if c.Keys != KeysNone {
		var (
			gk bpf.MapsGkeyKey
			n  uint64
		)
		it := c.Maps.GoroutineKeys.Iterate()
		for it.Next(&gk, &n) {
			if g := perGoid[gk.Goid]; g != nil {
				r := byClass[gk.Key.Class]
				key := c.showKey(gk.Key, r)
				if r != nil && r.m.Name != "" {
					key = r.m.Name + "[" + key + "]"
				}
				g.HotKeys = append(g.HotKeys, report.HotKey{Key: key, Count: c.scale(n)})
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read goroutine keys: %w", err)
		}
	}
	out := make([]report.Goroutine, 0, len(perGoid))
	for _, g := range perGoid {
		g.HotKeys = topHotKeys(g.HotKeys, topGoroKeys)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MapOps > out[j].MapOps })
	return out[:min(len(out), topGoroutines)], nil
}

// interleaves keeps, per row, the pair of write sites that interleaved most.
func (c *Maps) interleaves(byClass map[bpf.MapsClassKey]*row) error {
	var (
		k bpf.MapsInterleaveKey
		v bpf.MapsInterleaveVal
	)
	it := c.Maps.Interleaves.Iterate()
	for it.Next(&k, &v) {
		r := byClass[k.Class]
		if r == nil {
			continue
		}
		n := c.scale(v.Count)
		if r.il != nil && r.il.Count >= n {
			continue
		}
		r.il = &report.Interleave{
			Count: n,
			Sides: []report.RaceSide{
				{Goid: v.Goid, Op: report.OpWrite, Stack: c.Sym.Stack(k.Caller, stackTrace(c.Maps.Stacks, v.Stackid))},
				{Goid: v.OtherGoid, Op: report.OpWrite, Stack: c.Sym.Stack(k.OtherCaller, stackTrace(c.Maps.Stacks, v.OtherStackid))},
			},
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read interleaved writes: %w", err)
	}
	return nil
}

// rowOf is the row of the map at addr, if its class is known.
func (c *Maps) rowOf(byClass map[bpf.MapsClassKey]*row, addr uint64) *row {
	var mi bpf.MapsMapInfo
	if c.Maps.MapClasses.Lookup(addr, &mi) != nil {
		return nil
	}
	return byClass[mi.Class]
}

// raceMap fills a race's map identity: the map's own address, and the name
// or class of its row.
func (c *Maps) raceMap(byClass map[bpf.MapsClassKey]*row, addr uint64, r *report.Race) {
	r.Map = fmt.Sprintf("%#x", addr)
	r.Name = c.Name(addr)
	if row := c.rowOf(byClass, addr); row != nil {
		r.MapID = row.m.ID()
		if r.Name == "" {
			r.Name = row.m.Name
		}
	}
}

// raceKind names a race by its two operations; the other side is the write.
func raceKind(op uint32) string {
	switch op {
	case probes.OpRead:
		return "read/write"
	case probes.OpIterate, probes.OpIterNext:
		return "iterate/write"
	}
	return "write/write"
}

func sideOp(op uint32) string {
	if op == probes.OpIterNext {
		return report.OpIterate
	}
	return opNames[op]
}

func (c *Maps) races(byClass map[bpf.MapsClassKey]*row) ([]report.Race, error) {
	var (
		k bpf.MapsRaceKey
		v bpf.MapsRaceVal
	)
	type id struct {
		addr uint64
		kind string
	}
	agg := map[id]*report.Race{}
	var order []id
	it := c.Maps.Races.Iterate()
	for it.Next(&k, &v) {
		i := id{k.Map, raceKind(k.Op)}
		r := agg[i]
		if r == nil {
			r = &report.Race{Kind: i.kind}
			c.raceMap(byClass, k.Map, r)
			agg[i] = r
			order = append(order, i)
		}
		r.Count += v.Count
		// The sides of a record that saw the writer, if any did: a writer
		// whose write began more than the BPF side's freshness limit ago
		// is not named there.
		if len(r.Sides) == 0 || (len(r.Sides) == 1 && k.OtherCaller != 0) {
			r.Sides = []report.RaceSide{{Goid: v.Goid, Op: sideOp(k.Op), Stack: c.Sym.Stack(k.Caller, stackTrace(c.Maps.Stacks, k.Stackid))}}
			if k.OtherCaller != 0 {
				r.Sides = append(r.Sides, report.RaceSide{Goid: v.OtherGoid, Op: sideOp(k.OtherOp), Stack: c.Sym.Stack(k.OtherCaller, stackTrace(c.Maps.Stacks, k.OtherStackid))})
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map races: %w", err)
	}
	out := make([]report.Race, 0, len(order))
	for _, i := range order {
		r := agg[i]
		if len(r.Sides) == 1 {
			r.Sides = c.withWriter(i.addr, r.Sides)
		}
		if len(r.Sides) == 1 { // a write not seen: the reports say so
			r.Sides = append(r.Sides, report.RaceSide{Op: report.OpWrite})
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out, nil
}

// Fatal is how the target died.
type Fatal struct {
	Crash string   // "fatal error" (the runtime's) or "panic" (one nothing recovered)
	Error string   // what the runtime printed after it
	Stack []string // the goroutine that died
}

// fatal returns what the target died of, and records the race behind a
// "concurrent map …" death if the entry probes had not seen it.
func (c *Maps) fatal(byClass map[bpf.MapsClassKey]*row, races *[]report.Race) Fatal {
	var fi bpf.MapsFatalInfo
	if err := c.Maps.Fatal.Lookup(uint32(0), &fi); err != nil || fi.Len == 0 {
		return Fatal{}
	}
	b := make([]byte, 0, len(fi.Msg))
	for _, ch := range fi.Msg[:min(int(fi.Len), len(fi.Msg))] {
		b = append(b, byte(ch))
	}
	msg := string(bytes.TrimRight(b, "\x00"))
	if int(fi.Len) > len(fi.Msg) {
		msg += "…"
	}
	stack := c.Sym.Stack(fi.Caller, stackTrace(c.Maps.Stacks, fi.Stackid))
	if fi.PanicType != 0 {
		return Fatal{Crash: "panic", Error: c.panicText(&fi, msg), Stack: stack}
	}
	f := Fatal{Crash: "fatal error", Error: msg, Stack: stack}
	kind := report.FatalRaceKind(msg)
	if kind == "" || fi.Map == 0 {
		return f
	}
	addr := fmt.Sprintf("%#x", fi.Map)
	for _, r := range *races {
		if r.Map == addr && r.Kind == kind {
			return f
		}
	}
	r := report.Race{Kind: kind, Count: 1}
	c.raceMap(byClass, fi.Map, &r)
	r.Sides = c.withWriter(fi.Map, []report.RaceSide{{Goid: fi.Goid, Op: sideOp(fi.MapOp), Stack: stack}})
	*races = append(*races, r)
	return f
}

// panicText is what the runtime prints after "panic: " for the value the
// probe read: by then the runtime has replaced an error or Stringer with
// its text, a string.
func (c *Maps) panicText(fi *bpf.MapsFatalInfo, msg string) string {
	if v := c.Sym.PanicValue(fi.PanicType, fi.PanicData, fi.PanicWord, msg); v != "" {
		return v
	}
	return "(a value of unknown type)"
}

// withWriter adds to a race's one known side the latest goroutine seen
// writing the map, other than that side's: the writer in the race, unless
// the map had writers the probes did not see.
func (c *Maps) withWriter(m uint64, sides []report.RaceSide) []report.RaceSide {
	var ws bpf.MapsWriters
	if err := c.Maps.Writers.Lookup(m, &ws); err != nil {
		return sides
	}
	var o *bpf.MapsWriter
	for i, w := range ws.W {
		if w.Ns != 0 && w.Goid != sides[0].Goid && (o == nil || w.Ns > o.Ns) {
			o = &ws.W[i]
		}
	}
	if o == nil {
		return sides
	}
	return append(sides, report.RaceSide{Goid: o.Goid, Op: sideOp(o.Op), Stack: c.Sym.Stack(o.Caller, stackTrace(c.Maps.Stacks, o.Stackid))})
}
