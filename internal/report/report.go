// Package report holds maptrace's report and renders it as text or JSON.
// The JSON form is a contract: docs/report.md says what each field means and
// docs/report.schema.json what a valid report is.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Version is the JSON report's schema version.
const Version = 1

// How a trace ended.
const (
	EndedByDuration   = "duration"
	EndedBySignal     = "signal"
	EndedByTargetExit = "target-exit"
)

// Mutex kinds.
const (
	KindMutex        = "mutex"
	KindRWMutexRead  = "rwmutex-read"
	KindRWMutexWrite = "rwmutex-write"
	// The lock of a file or socket (internal/poll's): reads of one take
	// its read lock, writes its write lock, and Close waits for both.
	KindFDRead  = "fd-read"
	KindFDWrite = "fd-write"
	KindFDClose = "fd-close"
)

// FileLock says whether a mutex kind is a file's or socket's lock.
func FileLock(kind string) bool {
	return kind == KindFDRead || kind == KindFDWrite || kind == KindFDClose
}

// Map kinds.
const (
	KindMap     = "map"
	KindSyncMap = "sync.Map"
	KindSharded = "sharded"
)

// Map operations.
const (
	OpRead    = "read"
	OpWrite   = "write"
	OpDelete  = "delete"
	OpIterate = "iterate"
)

// Finding severities, most severe first.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Report is everything one trace observed.
type Report struct {
	Version    int         `json:"version"`
	Target     Target      `json:"target"`
	Window     Window      `json:"window"`
	EndedBy    string      `json:"ended_by"`
	Overhead   Overhead    `json:"overhead"`
	Mutexes    []Mutex     `json:"mutexes"`
	Maps       []Map       `json:"maps"`
	Races      []Race      `json:"races"`
	Findings   []Finding   `json:"findings"`
	Goroutines []Goroutine `json:"goroutines"`
	// CPU is the target's CPU time in the window, from CPU-clock sampling, and the part of it in map operations.
	CPU CPU `json:"cpu"`
	// Missing lists probe symbols this binary does not have.
	Missing []string `json:"missing_symbols,omitempty"`
	// TargetError is what the target died of, when it crashed (e.g. "concurrent map writes").
	TargetError string `json:"target_error,omitempty"`
	// TargetCrash says how: "fatal error" or "panic" (one nothing recovered).
	TargetCrash string `json:"target_crash,omitempty"`
	// TargetStack is the stack of the goroutine that crashed.
	TargetStack []string `json:"target_stack,omitempty"`
}

// DiedOf is the line the runtime printed when the target crashed ("fatal
// error: concurrent map writes", "panic: runtime error: …"), or "".
func (r *Report) DiedOf() string {
	if r.TargetError == "" {
		return ""
	}
	crash := r.TargetCrash
	if crash == "" { // reports from before target_crash
		crash = "fatal error"
	}
	return crash + ": " + r.TargetError
}

// DiedAt is the code the crashing goroutine was in ("main.handle
// (server.go:42)"), or "" when its stack is not known.
func (r *Report) DiedAt() string {
	if len(r.TargetStack) == 0 {
		return ""
	}
	return ShortFrame(UserFrames(r.TargetStack)[0])
}

// DiedIn is DiedOf with DiedAt, when known: "panic: … in main.handle
// (server.go:42)".
func (r *Report) DiedIn() string {
	died := r.DiedOf()
	if at := r.DiedAt(); died != "" && at != "" {
		died += " in " + at
	}
	return died
}

// FatalRaceKind is the race kind of the runtime's "concurrent map …" fatal
// error msg, or "" for any other message.
func FatalRaceKind(msg string) string {
	switch {
	case !strings.HasPrefix(msg, "concurrent map"):
		return ""
	case strings.Contains(msg, "read and map write"):
		return "read/write"
	case strings.Contains(msg, "iteration and map write"):
		return "iterate/write"
	}
	return "write/write"
}

// Target identifies the traced process.
type Target struct {
	PID       int    `json:"pid"`
	Exe       string `json:"exe"`
	GoVersion string `json:"go_version"`
	Arch      string `json:"arch"`
	// Module is the main module's path ("go.etcd.io/etcd/server/v3"):
	// the program's own code, as against its libraries'.
	Module string `json:"module"`
	// CPUs is how many CPUs the target may run on: with the window, the
	// goroutine time lock waits are measured against.
	CPUs int `json:"cpus"`
}

// Window is the time the probes were attached.
type Window struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
}

// Overhead says what tracing cost the target and how much of it was sampled.
type Overhead struct {
	ProbeHits           uint64  `json:"probe_hits"`
	EstCostSeconds      float64 `json:"est_cost_seconds"`
	MapSamplingFraction float64 `json:"map_sampling_fraction"`
	// MapCountsLowerBound says the scaled map counts are lower bounds: the
	// probes took most of the sampled windows (a loop doing little but map
	// operations), so the target's work in them could not be measured.
	MapCountsLowerBound bool `json:"map_counts_lower_bound"`
	// MapCountsLowerBoundWhy says why (LowerBound*). Empty when the counts
	// are not lower bounds, and in reports from before.
	MapCountsLowerBoundWhy string `json:"map_counts_lower_bound_why,omitempty"`
	// HitCostNS is the calibrated cost of one probe hit.
	HitCostNS float64 `json:"hit_cost_ns"`
	// HitCostFactor is a hit's cost measured in the target (its extra
	// kernel-mode CPU samples while probes were attached) over HitCostNS,
	// at least 1; 0 in reports from before it was measured.
	HitCostFactor float64 `json:"hit_cost_factor,omitempty"`
	// MapHitCostNS and MutexHitCostNS are what a hit of the map and of the
	// mutex probes costs in this target, before HitCostFactor: the trap
	// (HitCostNS less the calibrated program's own time) plus their
	// programs' average run time in the target, as the programs time
	// themselves (one run in 16); or, where more, their time in the
	// target's CPU-clock samples taken while the kernel ran them, over
	// HitCostFactor. 0 in reports from before.
	MapHitCostNS   float64 `json:"map_hit_cost_ns,omitempty"`
	MutexHitCostNS float64 `json:"mutex_hit_cost_ns,omitempty"`
	// OwnCPUSeconds is maptrace's own CPU time while tracing, and
	// OwnChargedSeconds the part of it counted in EstCostSeconds: what the
	// machine's idle CPU time could not cover, in the target's share.
	OwnCPUSeconds     float64 `json:"own_cpu_seconds,omitempty"`
	OwnChargedSeconds float64 `json:"own_charged_seconds,omitempty"`
	// SamplerSeconds is what sampling the target's CPU clock (the cpu
	// section) cost it, counted in EstCostSeconds: its samples at
	// SampleCostNS each, the interrupt that takes one as measured on this
	// machine at the start and the program's own time on it.
	SamplerSeconds float64 `json:"sampler_seconds,omitempty"`
	SampleCostNS   float64 `json:"sample_cost_ns,omitempty"`
	// SampleProgramNS is the part of SampleCostNS that is the program's
	// own time; the rest, the interrupt, falls on whatever runs on the CPU.
	SampleProgramNS float64 `json:"sample_program_ns,omitempty"`
	// Ratio is the estimated share of the target's time spent in probes,
	// in taking its CPU samples and in maptrace's charged CPU time:
	// EstCostSeconds over the target's CPU time.
	Ratio float64 `json:"ratio"`
	// MutexRatio is the part of Ratio spent in the mutex probes, which
	// spend the budget first.
	MutexRatio float64 `json:"mutex_ratio"`
	// MutexBudget is the share of the target's CPU time the mutex probes
	// may spend: Budget less the fixed costs' share, less the quarter the
	// map windows keep when maps are traced too. 0 with no budget, and in
	// reports from before.
	MutexBudget float64 `json:"mutex_budget,omitempty"`
	// MutexCountsScaled says the mutex probes alone cost more than their
	// budget and were duty-cycled: mutex counts and wait times are
	// estimates, scaled up from the waits seen in their windows, attached
	// MutexSamplingFraction of the time (1 when always attached).
	MutexCountsScaled     bool    `json:"mutex_counts_scaled,omitempty"`
	MutexSamplingFraction float64 `json:"mutex_sampling_fraction,omitempty"`
	// Budget is --overhead as a share of the target's time (0.05 for 5%).
	Budget float64 `json:"budget"`
	// LostEvents counts what the probes could not record: stacks that could
	// not be walked or stored, and updates to a full table.
	LostEvents uint64 `json:"lost_events"`
	// Lost says what the lost events were.
	Lost Lost `json:"lost"`
}

// Lost are lost events by cause.
type Lost struct {
	// Stacks the kernel could not walk or store: their counts are kept
	// under an empty stack.
	Stacks uint64 `json:"stacks"`
	// InFlight are parks not timed: no room to note the waiting goroutine.
	InFlight uint64 `json:"in_flight"`
	// TablesFull are updates dropped because a table was full.
	TablesFull uint64 `json:"tables_full"`
	// Keys are map-key operations the kernel's key table had no room for
	// between two drains: they count in their map's "other" hot key only,
	// so a hot key may be missing.
	Keys uint64 `json:"keys"`
}

// Add adds o's counts to l.
func (l *Lost) Add(o Lost) {
	l.Stacks += o.Stacks
	l.InFlight += o.InFlight
	l.TablesFull += o.TablesFull
	l.Keys += o.Keys
}

// Total is all lost events.
func (l Lost) Total() uint64 { return l.Stacks + l.InFlight + l.TablesFull + l.Keys }

// Mutex is one contended sync.Mutex or sync.RWMutex (one side of it).
type Mutex struct {
	Address     string `json:"address"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Contentions uint64 `json:"contentions"`
	WaitNS      uint64 `json:"wait_ns"`
	MaxWaitNS   uint64 `json:"max_wait_ns"`
	// Goroutines is how many distinct goroutines waited (a lower bound past
	// 16384 pairs of semaphore and goroutine).
	Goroutines int      `json:"goroutines"`
	P50NS      uint64   `json:"p50_ns"`
	P99NS      uint64   `json:"p99_ns"`
	Waiters    []Waiter `json:"waiters"`
	Holders    []Holder `json:"holders"`
	// Histogram counts parks by log2 of their nanoseconds: bucket i holds parks of [2^i, 2^(i+1)).
	Histogram []uint64 `json:"histogram_log2_ns,omitempty"`
}

// Label names a mutex for a person: its variable or field, else the
// function that locked it (where the top waiter waited), else its address.
func (m Mutex) Label() string {
	if m.Name != "" {
		return Short(m.Name)
	}
	if len(m.Waiters) > 0 {
		if f := UserFrames(m.Waiters[0].Stack); len(f) > 0 {
			return "lock in " + Short(FrameFunc(f[0]))
		}
	}
	return "mutex " + m.Address
}

// GroupMutexes merges the unnamed mutexes of one kind that were waited for
// in the same function — one lock field of many objects, like a per-client
// lock — into one, whose Name says how many there are. Named ones stay.
func GroupMutexes(ms []Mutex) []Mutex {
	var out []Mutex
	count := map[int]int{}
	at := map[string]int{}
	for _, m := range ms {
		key := m.Label() + "\x00" + m.Kind
		if m.Name != "" {
			key = m.Address + "\x00" + m.Name + "\x00" + m.Kind
		}
		i, ok := at[key]
		if !ok {
			at[key] = len(out)
			count[len(out)] = 1
			m.Waiters = append([]Waiter(nil), m.Waiters...)
			m.Holders = append([]Holder(nil), m.Holders...)
			out = append(out, m)
			continue
		}
		g := &out[i]
		count[i]++
		g.Contentions += m.Contentions
		g.WaitNS += m.WaitNS
		g.MaxWaitNS = max(g.MaxWaitNS, m.MaxWaitNS)
		g.P50NS = max(g.P50NS, m.P50NS)
		g.P99NS = max(g.P99NS, m.P99NS)
		g.Goroutines += m.Goroutines
		g.Waiters = append(g.Waiters, m.Waiters...)
		g.Holders = append(g.Holders, m.Holders...)
	}
	for i, n := range count {
		if n > 1 {
			out[i].Name = fmt.Sprintf("%s (%d mutexes)", out[i].Label(), n)
		}
	}
	return out
}

// Waiter is a stack that waited for a mutex.
type Waiter struct {
	Stack       []string `json:"stack"`
	Contentions uint64   `json:"contentions"`
	WaitNS      uint64   `json:"wait_ns"`
}

// Holder is a stack that handed a mutex to waiting goroutines: Count hand-offs.
type Holder struct {
	Stack []string `json:"stack"`
	Count uint64   `json:"count"`
}

// Map is one Go map seen by the map probes — a named global — or a class
// of heap maps: maps of one type first used in one function.
type Map struct {
	// Address is a named map's header address; empty for a class.
	Address string `json:"address"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	// Class is the function that first used the class's maps (the innermost
	// frame outside the runtime, reflect and generic map helpers); empty for
	// a named global.
	Class string `json:"class"`
	// Maps is how many maps the row stands for.
	Maps int `json:"maps"`
	// Type is the maps' Go type: "http.Header", "map[string]int".
	Type       string `json:"type"`
	KeyType    string `json:"key_type"`
	Reads      uint64 `json:"reads"`
	Writes     uint64 `json:"writes"`
	Deletes    uint64 `json:"deletes"`
	Iterations uint64 `json:"iterations"`
	Goroutines int    `json:"goroutines"`
	// Writers is how many of those goroutines wrote or deleted.
	Writers int `json:"writers"`
	// InterleavedWrites counts writes by a goroutine after another
	// goroutine's write that followed its own, on one map, within 10ms:
	// the map is shared by writers rather than handed from one to another.
	InterleavedWrites uint64 `json:"interleaved_writes"`
	// Interleave is the pair of write sites that interleaved most.
	Interleave *Interleave `json:"interleave,omitempty"`
	// CPUSeconds is the target's CPU time in these maps' operations, from
	// CPU-clock sampling of the call sites.
	CPUSeconds float64  `json:"cpu_seconds"`
	HotKeys    []HotKey `json:"hot_keys"`
	Sites      []Site   `json:"sites"`
	// SyncMap is a sync.Map's slow paths, up to Go 1.23; nil otherwise.
	SyncMap *SyncMapStats `json:"sync_map,omitempty"`
	// Sharded is a sharded map's shards, for a row of kind sharded; nil otherwise.
	Sharded *Sharded `json:"sharded,omitempty"`
	// Snapshots are the row's maps published as copy-on-write snapshots; nil if none was.
	Snapshots *Snapshots `json:"snapshots,omitempty"`
}

// Snapshots are maps stored into an atomic.Pointer or atomic.Value once
// built: copy-on-write snapshots, each replacing the one before.
type Snapshots struct {
	// Published is how many maps were stored.
	Published uint64 `json:"published"`
	// Entries is their entries when stored, all of them: what building
	// them copied.
	Entries uint64 `json:"entries"`
}

// Sharded is how a sharded map's operations spread over its shards: maps of
// one type used at the same call sites, each goroutine's operations hopping
// between them as its keys pick them.
type Sharded struct {
	// Imbalance is the busiest shard's operations over the mean: 1 is even.
	Imbalance float64 `json:"imbalance"`
	// HotKey is the key whose operations make the busiest shard busy: the
	// shard, less that key, is no busier than the others. Empty when the
	// shards are even, or when no one key explains the busiest one (then
	// the keys hash unevenly).
	HotKey string `json:"hot_key"`
	// Shards are the shards, busiest first.
	Shards []Shard `json:"shards"`
}

// hotKeyExcess: a hot key makes the busiest shard busy when, less that
// key's operations, the shard is no busier than hotKeyExcess times the mean
// of the rest, and busier than that with them.
const hotKeyExcess = 1.5

// NewSharded sorts shards busiest first and works out their imbalance and
// the hot key (of hot, a map's hot keys, most used first) that makes the
// busiest shard busy, if one does: none where the keys are used alike.
func NewSharded(shards []Shard, hot []HotKey) *Sharded {
	sh := &Sharded{Shards: shards}
	sort.SliceStable(sh.Shards, func(i, j int) bool { return sh.Shards[i].Ops > sh.Shards[j].Ops })
	var total uint64
	for _, s := range shards {
		total += s.Ops
	}
	n := float64(len(shards))
	if total == 0 || n < 2 {
		return sh
	}
	busiest := shards[0].Ops
	sh.Imbalance = float64(busiest) * n / float64(total)
	if len(hot) > 1 && KeysAlike(Map{HotKeys: hot}) {
		return sh // no key is hot: the shards' imbalance is the hash's
	}
	for _, k := range hot {
		if k.Key == OtherKey {
			continue
		}
		if k.Count < total && k.Count <= busiest {
			rest := float64(total-k.Count) / n
			if float64(busiest-k.Count) <= hotKeyExcess*rest && float64(busiest) > hotKeyExcess*rest {
				sh.HotKey = k.Key
			}
		}
		break // the most used key only
	}
	return sh
}

// Shard is one map of a sharded map and the mutex beside it.
type Shard struct {
	// Address is the shard map's header address.
	Address string `json:"address"`
	Ops     uint64 `json:"ops"`
	// Mutex is the address of the shard's own mutex when it was contended
	// (found next to the shard's map in memory); empty otherwise.
	Mutex       string `json:"mutex"`
	Contentions uint64 `json:"contentions"`
	WaitNS      uint64 `json:"wait_ns"`
}

// SyncMapStats are the slow paths of a sync.Map up to Go 1.23, whose
// lock-free reads see only its read map: a key stored since the last
// promotion is found in the dirty map under the lock (a miss); once the
// misses reach the dirty map's length it becomes the read map (a
// promotion); the next new key copies the read map into a new dirty map.
type SyncMapStats struct {
	Misses      uint64 `json:"misses"`
	Promotions  uint64 `json:"promotions"`
	DirtyCopies uint64 `json:"dirty_copies"`
}

// Interleave is the evidence of interleaved writes: the goroutine that
// wrote again and the one that wrote in between.
type Interleave struct {
	Count uint64     `json:"count"`
	Sides []RaceSide `json:"sides"`
}

// ID identifies a row within a report and across reports of one trace.
func (m Map) ID() string {
	switch {
	case m.Name != "":
		return m.Name
	case m.Class != "":
		return m.Type + " from " + m.Class
	}
	return m.Address
}

// KeyedOps is the map's keyed operations: its hot keys' counts, the rest
// folded into "other".
func (m Map) KeyedOps() uint64 {
	var n uint64
	for _, k := range m.HotKeys {
		n += k.Count
	}
	return n
}

// KeysProbed is how many of the map's keyed operations were probed, where
// its counts were scaled up from those probed at fraction: fewer than
// FewProbed tell no key apart.
func (m Map) KeysProbed(fraction float64) uint64 {
	return Probed(m.KeyedOps(), fraction)
}

// Label names a row for a person: the variable, or "TYPE maps from FUNC".
func (m Map) Label() string {
	switch {
	case m.Name != "":
		return Short(m.Name)
	case m.Class != "" && m.Kind == KindSharded:
		return fmt.Sprintf("%s sharded map (%d shards) from %s", ShortType(m.Type), m.Maps, Short(m.Class))
	case m.Class != "":
		t := m.Type
		if t == "" {
			t = "map"
		}
		what := "maps"
		if m.Maps == 1 {
			what = "map"
		}
		return fmt.Sprintf("%s %s from %s", ShortType(t), what, Short(m.Class))
	}
	return "map " + m.Address
}

// OtherKey is the hot key that stands for the keys not listed.
const OtherKey = "other"

// KeysAlike says whether a map's keys were used about alike: its most used
// key had under 1.5 times the operations of the next, or was its only key.
// Such a map has no hot key, however few its keys: four subscribers'
// clients at 25% each are not four hot keys, nor a map's top twenty keys at
// 5% each twenty.
func KeysAlike(m Map) bool {
	var first, second uint64
	n, other := 0, false
	for _, k := range m.HotKeys {
		switch {
		case k.Key == OtherKey:
			other = true
			continue
		case k.Count > first:
			first, second = k.Count, first
		case k.Count > second:
			second = k.Count
		}
		n++
	}
	if n == 1 {
		return !other
	}
	return n > 1 && 2*first < 3*second
}

// FewProbed is how many probed operations a map's keys need to be told
// apart: scaled up from fewer (a busy server's maps probed at 0.1%, each
// record standing for a thousand operations), a key's share is noise.
const FewProbed = 10

// Probed is how many of n operations, scaled up from those probed at
// fraction, were probed.
func Probed(n uint64, fraction float64) uint64 {
	if fraction <= 0 || fraction >= 1 {
		return n
	}
	return uint64(math.Round(float64(n) * fraction))
}

// HotKey is a frequently used map key.
type HotKey struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// Site is a call site of a map operation.
type Site struct {
	Stack []string `json:"stack"`
	Op    string   `json:"op"`
	Count uint64   `json:"count"`
}

// Race is a map touched by two goroutines at once, one of them writing.
type Race struct {
	Map  string `json:"map"`
	Name string `json:"name"`
	// MapID is the ID of the map's row in maps, when it is known.
	MapID string     `json:"map_id,omitempty"`
	Kind  string     `json:"kind"`
	Count uint64     `json:"count"`
	Sides []RaceSide `json:"sides"`
}

// RaceSide is one goroutine of a race.
type RaceSide struct {
	Goid  int64    `json:"goid"`
	Op    string   `json:"op"`
	Stack []string `json:"stack"`
}

// Why scaled map counts are lower bounds.
const (
	// LowerBoundSlowed: the probes slowed the target's work while
	// attached, so the windows covered less of it than was measured.
	LowerBoundSlowed = "slowed"
	// LowerBoundShortWindows: the windows were cut too soon after their
	// attach to be measured, and the time they recorded in stands for them.
	LowerBoundShortWindows = "short-windows"
)

// Finding classes: what a finding is about.
const (
	ClassCorrectness = "correctness" // the target died, or a map was raced
	ClassCost        = "cost"        // time the target lost: mutex waits, CPU in map operations
	ClassRisk        = "risk"        // may be wrong, not seen to be
	ClassTracing     = "tracing"     // about the trace itself, not the target
	ClassNote        = "note"        // about the trace, and said in the report's header
)

// Finding is a ranked conclusion with its evidence and a fix.
type Finding struct {
	Severity string `json:"severity"`
	// Class is what the finding is about (Class*); empty in reports from
	// before it was kept.
	Class  string `json:"class,omitempty"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Advice string `json:"advice"`
	// CostSeconds is what the finding cost over the window: goroutine-time
	// blocked for a mutex, CPU time for map work; 0 for correctness.
	CostSeconds float64 `json:"cost_seconds"`
	// BelowThreshold marks a cost under 1% of the window's goroutine time
	// or CPU time: left out of the text report.
	BelowThreshold bool `json:"below_threshold"`
}

// Goroutine is one goroutine's share of the waiting and the map work.
type Goroutine struct {
	Goid        int64    `json:"goid"`
	Contentions uint64   `json:"contentions"`
	WaitNS      uint64   `json:"wait_ns"`
	MapOps      uint64   `json:"map_ops,omitempty"`
	HotKeys     []HotKey `json:"hot_keys,omitempty"`
}

// CPU is the target's CPU time, sampled with the CPU clock at Hz on every
// CPU: each sample stands for 1/Hz seconds. Zero when sampling was off.
type CPU struct {
	Hz      int     `json:"sample_hz"`
	Samples uint64  `json:"samples"` // target samples, user and kernel
	Seconds float64 `json:"seconds"` // Samples / Hz
	// MapSamples are the user-mode samples inside a map operation: in a map
	// function, or in its hashing, comparing or growing. Kernel mode never
	// counts, so the map probes' own cost is not in it.
	MapSamples uint64  `json:"map_samples"`
	MapSeconds float64 `json:"map_seconds"`
	// Sites is map CPU per calling line, as "function (file:line)", most
	// first.
	Sites []CPUSite `json:"map_sites"`
}

// CPUSite is the map CPU time of the map calls on one line.
type CPUSite struct {
	Frame   string  `json:"frame"`
	Samples uint64  `json:"samples"`
	Seconds float64 `json:"seconds"`
}

// WriteJSON writes r as indented JSON. Lists are written as [] when empty,
// nested ones too, so that consumers never see null where the schema
// (docs/report.schema.json) promises a list; r itself is not changed.
func WriteJSON(w io.Writer, r *Report) error {
	c := *r
	c.Mutexes = list(c.Mutexes)
	for i := range c.Mutexes {
		m := &c.Mutexes[i]
		m.Waiters = list(m.Waiters)
		for j := range m.Waiters {
			m.Waiters[j].Stack = list(m.Waiters[j].Stack)
		}
		m.Holders = list(m.Holders)
		for j := range m.Holders {
			m.Holders[j].Stack = list(m.Holders[j].Stack)
		}
	}
	c.Maps = list(c.Maps)
	for i := range c.Maps {
		m := &c.Maps[i]
		m.HotKeys = list(m.HotKeys)
		m.Sites = list(m.Sites)
		for j := range m.Sites {
			m.Sites[j].Stack = list(m.Sites[j].Stack)
		}
		if m.Sharded != nil {
			sh := *m.Sharded
			sh.Shards = list(sh.Shards)
			m.Sharded = &sh
		}
		if m.Interleave != nil {
			il := *m.Interleave
			il.Sides = sides(il.Sides)
			m.Interleave = &il
		}
	}
	c.CPU.Sites = list(c.CPU.Sites)
	c.Races = list(c.Races)
	for i := range c.Races {
		c.Races[i].Sides = sides(c.Races[i].Sides)
	}
	c.Findings = list(c.Findings)
	c.Goroutines = list(c.Goroutines)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// importPath matches the import paths inside a type name.
var importPath = regexp.MustCompile(`[A-Za-z0-9_.~\-]+/`)

// ShortType drops the import paths inside a type name, keeping packages:
// "map[string]*server.client" for
// "map[string]*github.com/nats-io/nats-server/v2/server.client".
func ShortType(t string) string { return importPath.ReplaceAllString(t, "") }

// sides is list for race sides, their stacks too.
func sides(ss []RaceSide) []RaceSide {
	out := list(ss)
	for i := range out {
		out[i].Stack = list(out[i].Stack)
	}
	return out
}

// list returns a copy of s, never nil, so that filling in the lists nested
// in its elements leaves the caller's report as it was.
func list[T any](s []T) []T {
	return append(make([]T, 0, len(s)), s...)
}
