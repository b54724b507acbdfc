package collector

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/maptrace/maptrace/bpf"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
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
	otherKeyName = "other"
)

// Maps reads the map programs' maps.
type Maps struct {
	Maps *bpf.MapsMaps
	Sym  *Symbolizer
	Keys string // KeysRaw, KeysHash or KeysNone
	// Name names a map header address (a global map variable), or "".
	Name func(addr uint64) string
	// Scale multiplies observed counts into estimates: 1/sampling fraction.
	Scale float64
}

// MapsResult is what the map programs saw.
type MapsResult struct {
	Maps  []report.Map
	Races []report.Race
	// Goroutines are the goroutines by map operations, with their hot keys.
	Goroutines []report.Goroutine
	// Fatal is what the target died of, if it called runtime.fatal/throw.
	Fatal string
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

// Collect returns the maps by operations, most first, and the races.
func (c *Maps) Collect() (*MapsResult, error) {
	res := &MapsResult{}
	byAddr := map[uint64]*report.Map{}
	var (
		addr uint64
		st   bpf.MapsMapStat
	)
	it := c.Maps.MapStats.Iterate()
	for it.Next(&addr, &st) {
		m := &report.Map{
			Address:    fmt.Sprintf("%#x", addr),
			Name:       c.Name(addr),
			KeyType:    keyType(st.KeyKind, st.KeySize),
			Reads:      c.scale(st.Ops[probes.OpRead]),
			Writes:     c.scale(st.Ops[probes.OpWrite]),
			Deletes:    c.scale(st.Ops[probes.OpDelete]),
			Iterations: c.scale(st.Ops[probes.OpIterate]),
		}
		if st.OtherKeys > 0 && c.Keys != KeysNone {
			m.HotKeys = append(m.HotKeys, report.HotKey{Key: otherKeyName, Count: c.scale(st.OtherKeys)})
		}
		byAddr[addr] = m
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map stats: %w", err)
	}
	if err := c.sites(byAddr); err != nil {
		return nil, err
	}
	if c.Keys != KeysNone {
		if err := c.keys(byAddr); err != nil {
			return nil, err
		}
	}
	gs, err := c.goroutines(byAddr)
	if err != nil {
		return nil, err
	}
	res.Goroutines = gs
	for _, m := range byAddr {
		res.Maps = append(res.Maps, *m)
	}
	sort.Slice(res.Maps, func(i, j int) bool { return mapOps(res.Maps[i]) > mapOps(res.Maps[j]) })
	if res.Races, err = c.races(byAddr); err != nil {
		return nil, err
	}
	res.Fatal = c.fatal(byAddr, &res.Races)
	return res, nil
}

func mapOps(m report.Map) uint64 { return m.Reads + m.Writes + m.Deletes + m.Iterations }

func keyType(kind, size uint32) string {
	switch kind {
	case keyKindStr:
		return "string"
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

func (c *Maps) sites(byAddr map[uint64]*report.Map) error {
	var (
		k bpf.MapsSiteKey
		v bpf.MapsSiteVal
	)
	it := c.Maps.Sites.Iterate()
	for it.Next(&k, &v) {
		m := byAddr[k.Map]
		if m == nil {
			continue
		}
		stack := c.Sym.Stack(k.Caller, stackTrace(c.Maps.Stacks, v.Stackid))
		m.Sites = append(m.Sites, report.Site{Stack: stack, Op: opNames[k.Op], Count: c.scale(v.Count)})
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map sites: %w", err)
	}
	for _, m := range byAddr {
		// Sites are counted by their direct caller, with the stack of the
		// first call; merge those that look the same to the user.
		merged := map[string]*report.Site{}
		var out []report.Site
		for _, s := range m.Sites {
			key := s.Op + "\n" + strings.Join(s.Stack, "\n")
			if x := merged[key]; x != nil {
				x.Count += s.Count
				continue
			}
			out = append(out, s)
			merged[key] = &out[len(out)-1]
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
		m.Sites = out[:min(len(out), topSites)]
	}
	return nil
}

func (c *Maps) keys(byAddr map[uint64]*report.Map) error {
	var (
		k bpf.MapsMapKey
		n uint64
	)
	it := c.Maps.Keys.Iterate()
	for it.Next(&k, &n) {
		if m := byAddr[k.Map]; m != nil {
			m.HotKeys = append(m.HotKeys, report.HotKey{Key: FormatKey(k, c.Keys), Count: c.scale(n)})
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map keys: %w", err)
	}
	for _, m := range byAddr {
		m.HotKeys = topHotKeys(m.HotKeys, topKeys)
	}
	return nil
}

// topHotKeys keeps the n most used keys and folds the rest into "other".
func topHotKeys(ks []report.HotKey, n int) []report.HotKey {
	var other uint64
	var out []report.HotKey
	for _, k := range ks {
		if k.Key == otherKeyName {
			other += k.Count
			continue
		}
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
		out = append(out, report.HotKey{Key: otherKeyName, Count: other})
	}
	return out
}

// FormatKey shows a key as the user wrote it: integers in decimal, strings as
// text, anything else in hex; with KeysHash, as a stable short hash instead.
func FormatKey(k bpf.MapsMapKey, mode string) string {
	n := min(int(k.Len), len(k.Data))
	raw := k.Data[:n]
	if mode == KeysHash {
		sum := sha256.Sum256(raw)
		return "h:" + hex.EncodeToString(sum[:6])
	}
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

func (c *Maps) goroutines(byAddr map[uint64]*report.Map) ([]report.Goroutine, error) {
	var (
		k  bpf.MapsGoroutineKey
		st bpf.MapsGoroutineStat
	)
	perGoid := map[int64]*report.Goroutine{}
	it := c.Maps.Goroutines.Iterate()
	for it.Next(&k, &st) {
		m := byAddr[k.Map]
		if m == nil {
			continue
		}
		m.Goroutines++
		if st.Writes > 0 {
			m.Writers++
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
				key := FormatKey(gk.Key, c.Keys)
				if m := byAddr[gk.Key.Map]; m != nil && m.Name != "" {
					key = m.Name + "[" + key + "]"
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

func (c *Maps) races(byAddr map[uint64]*report.Map) ([]report.Race, error) {
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
			r = &report.Race{Map: fmt.Sprintf("%#x", k.Map), Kind: i.kind}
			if m := byAddr[k.Map]; m != nil {
				r.Name = m.Name
			} else {
				r.Name = c.Name(k.Map)
			}
			agg[i] = r
			order = append(order, i)
		}
		r.Count += v.Count
		if len(r.Sides) == 0 {
			other := report.RaceSide{Goid: v.OtherGoid, Op: sideOp(k.OtherOp)}
			if k.OtherCaller != 0 {
				other.Stack = c.Sym.Stack(k.OtherCaller, stackTrace(c.Maps.Stacks, k.OtherStackid))
			}
			r.Sides = []report.RaceSide{
				{Goid: v.Goid, Op: sideOp(k.Op), Stack: c.Sym.Stack(k.Caller, stackTrace(c.Maps.Stacks, k.Stackid))},
				other,
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map races: %w", err)
	}
	out := make([]report.Race, 0, len(order))
	for _, i := range order {
		out = append(out, *agg[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out, nil
}

// fatal returns the message the target died with, and records the race
// behind a "concurrent map …" death if the entry probes had not seen it.
func (c *Maps) fatal(byAddr map[uint64]*report.Map, races *[]report.Race) string {
	var fi bpf.MapsFatalInfo
	if err := c.Maps.Fatal.Lookup(uint32(0), &fi); err != nil || fi.Len == 0 {
		return ""
	}
	b := make([]byte, 0, len(fi.Msg))
	for _, ch := range fi.Msg[:min(int(fi.Len), len(fi.Msg))] {
		b = append(b, byte(ch))
	}
	msg := string(bytes.TrimRight(b, "\x00"))
	if !strings.HasPrefix(msg, "concurrent map") || fi.Map == 0 {
		return msg
	}
	addr := fmt.Sprintf("%#x", fi.Map)
	kind := "write/write"
	switch {
	case strings.Contains(msg, "read and map write"):
		kind = "read/write"
	case strings.Contains(msg, "iteration and map write"):
		kind = "iterate/write"
	}
	for _, r := range *races {
		if r.Map == addr && r.Kind == kind {
			return msg
		}
	}
	r := report.Race{Map: addr, Kind: kind, Count: 1, Name: c.Name(fi.Map)}
	r.Sides = append(r.Sides, report.RaceSide{Goid: fi.Goid, Op: sideOp(fi.MapOp), Stack: c.Sym.Stack(fi.Caller, stackTrace(c.Maps.Stacks, fi.Stackid))})
	var ws bpf.MapsWriters
	if err := c.Maps.Writers.Lookup(fi.Map, &ws); err == nil {
		for _, w := range []bpf.MapsWriter{ws.Last, ws.Prev} {
			if w.Ns != 0 && w.Goid != fi.Goid {
				r.Sides = append(r.Sides, report.RaceSide{Goid: w.Goid, Op: sideOp(w.Op), Stack: c.Sym.Stack(w.Caller, stackTrace(c.Maps.Stacks, w.Stackid))})
				break
			}
		}
	}
	*races = append(*races, r)
	return msg
}
