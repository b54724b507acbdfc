// Package report holds maptrace's report and renders it as text or JSON.
// The JSON form is a contract: docs/report.md says what each field means and
// docs/report.schema.json what a valid report is.
package report

import (
	"encoding/json"
	"io"
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
	// Missing lists probe symbols this binary does not have.
	Missing []string `json:"missing_symbols,omitempty"`
	// TargetError is what the target died of, when it crashed (e.g. "concurrent map writes").
	TargetError string `json:"target_error,omitempty"`
}

// Target identifies the traced process.
type Target struct {
	PID       int    `json:"pid"`
	Exe       string `json:"exe"`
	GoVersion string `json:"go_version"`
	Arch      string `json:"arch"`
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
	// HitCostNS is the calibrated cost of one probe hit.
	HitCostNS float64 `json:"hit_cost_ns"`
	// Ratio is the estimated share of the target's time spent in probes.
	Ratio float64 `json:"ratio"`
	// MutexRatio is the part of Ratio spent in the mutex probes, which
	// stay attached: the budget limits the map probes only.
	MutexRatio float64 `json:"mutex_ratio"`
	// Budget is --overhead as a share of the target's time (0.05 for 5%).
	Budget float64 `json:"budget"`
	// LostEvents counts what the probes could not record: stacks that could
	// not be walked or stored, and updates to a full table.
	LostEvents uint64 `json:"lost_events"`
}

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

// Map is one Go map seen by the map probes.
type Map struct {
	Address    string `json:"address"`
	Name       string `json:"name"`
	KeyType    string `json:"key_type"`
	Reads      uint64 `json:"reads"`
	Writes     uint64 `json:"writes"`
	Deletes    uint64 `json:"deletes"`
	Iterations uint64 `json:"iterations"`
	Goroutines int    `json:"goroutines"`
	// Writers is how many of those goroutines wrote or deleted.
	Writers int      `json:"writers"`
	HotKeys []HotKey `json:"hot_keys"`
	Sites   []Site   `json:"sites"`
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
	Map   string     `json:"map"`
	Name  string     `json:"name"`
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

// Finding is a ranked conclusion with its evidence and a fix.
type Finding struct {
	Severity string `json:"severity"`
	Title    string `json:"title"`
	Detail   string `json:"detail"`
	Advice   string `json:"advice"`
}

// Goroutine is one goroutine's share of the waiting and the map work.
type Goroutine struct {
	Goid        int64    `json:"goid"`
	Contentions uint64   `json:"contentions"`
	WaitNS      uint64   `json:"wait_ns"`
	MapOps      uint64   `json:"map_ops,omitempty"`
	HotKeys     []HotKey `json:"hot_keys,omitempty"`
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
	}
	c.Races = list(c.Races)
	for i := range c.Races {
		rc := &c.Races[i]
		rc.Sides = list(rc.Sides)
		for j := range rc.Sides {
			rc.Sides[j].Stack = list(rc.Sides[j].Stack)
		}
	}
	c.Findings = list(c.Findings)
	c.Goroutines = list(c.Goroutines)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// list returns a copy of s, never nil, so that filling in the lists nested
// in its elements leaves the caller's report as it was.
func list[T any](s []T) []T {
	return append(make([]T, 0, len(s)), s...)
}
