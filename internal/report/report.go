// Package report holds maptrace's report — the JSON contract of
// ../shared/CONTRACT.md — and renders it as text or JSON.
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
	// CPU is the target's CPU time in the window, from CPU-clock sampling, and the part of it in map operations.
	CPU CPU `json:"cpu"`
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
	// Sites is map CPU per call site (the return address into the caller), leaf frame as "function (file:line)", most first.
	Sites []CPUSite `json:"map_sites"`
}

// CPUSite is the map CPU time of one call site.
type CPUSite struct {
	// Caller is the return address into the calling function, as the map
	// probes record a site's caller: the key to join the two.
	Caller  uint64  `json:"-"`
	Frame   string  `json:"frame"`
	Samples uint64  `json:"samples"`
	Seconds float64 `json:"seconds"`
}

// WriteJSON writes r as indented JSON. Empty lists are written as [] so that
// consumers never see null where the contract promises a list.
func WriteJSON(w io.Writer, r *Report) error {
	c := *r
	if c.Mutexes == nil {
		c.Mutexes = []Mutex{}
	}
	if c.Maps == nil {
		c.Maps = []Map{}
	}
	if c.Races == nil {
		c.Races = []Race{}
	}
	if c.Findings == nil {
		c.Findings = []Finding{}
	}
	if c.Goroutines == nil {
		c.Goroutines = []Goroutine{}
	}
	if c.CPU.Sites == nil {
		c.CPU.Sites = []CPUSite{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}
