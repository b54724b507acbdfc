package findings

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// stack builds a leaf-first stack: runtime/sync frames, then user frames.
func stack(frames ...string) []string {
	var out []string
	for i, f := range frames {
		out = append(out, f+" (x.go:"+string(rune('0'+i%10))+")")
	}
	return out
}

const ms = uint64(time.Millisecond)

func base() *report.Report {
	return &report.Report{
		Version:  report.Version,
		Window:   report.Window{Seconds: 10},
		Overhead: report.Overhead{MapSamplingFraction: 1},
	}
}

// want is one expected finding: its severity and title exactly, fragments
// its detail and advice must contain (a fragment starting with "!" must not
// be there), its cost in seconds and whether it is below threshold.
type want struct {
	severity, title string
	detail, advice  []string
	cost            float64
	below           bool
}

// check compares got with ws, in order.
func check(t *testing.T, got []report.Finding, ws []want) {
	t.Helper()
	if len(got) != len(ws) {
		t.Errorf("got %d findings, want %d:", len(got), len(ws))
		for _, f := range got {
			t.Errorf("  [%s] %s (cost %gs, below %v)\n      %s\n      fix: %s", f.Severity, f.Title, f.CostSeconds, f.BelowThreshold, f.Detail, f.Advice)
		}
		return
	}
	contains := func(i int, what, text string, frags []string) {
		for _, s := range frags {
			if no, ok := strings.CutPrefix(s, "!"); ok {
				if strings.Contains(text, no) {
					t.Errorf("finding %d %s %q\nhas %q", i, what, text, no)
				}
			} else if !strings.Contains(text, s) {
				t.Errorf("finding %d %s %q\nlacks %q", i, what, text, s)
			}
		}
	}
	for i, w := range ws {
		f := got[i]
		if f.Severity != w.severity || f.Title != w.title {
			t.Errorf("finding %d: [%s] %q\nwant       [%s] %q", i, f.Severity, f.Title, w.severity, w.title)
		}
		contains(i, "detail", f.Detail, w.detail)
		contains(i, "advice", f.Advice, w.advice)
		if math.Abs(f.CostSeconds-w.cost) > 1e-9 {
			t.Errorf("finding %d %q: cost %gs, want %gs", i, f.Title, f.CostSeconds, w.cost)
		}
		if f.BelowThreshold != w.below {
			t.Errorf("finding %d %q: below threshold %v, want %v", i, f.Title, f.BelowThreshold, w.below)
		}
		if f.Detail == "" || f.Advice == "" {
			t.Errorf("finding %d has no detail or no advice: %+v", i, f)
		}
	}
}

func TestAnalyze(t *testing.T) {
	racedMap := report.Map{
		Address: "0xc000100000", Name: "main.inventory", KeyType: "int64",
		Reads: 100, Writes: 900, Goroutines: 2, Writers: 2,
		Sites: []report.Site{
			{Stack: stack("runtime.mapassign_fast64", "main.restock", "main.worker"), Op: report.OpWrite, Count: 500},
			{Stack: stack("runtime.mapassign_fast64", "main.sell", "main.worker"), Op: report.OpWrite, Count: 400},
		},
	}
	writeSides := []report.RaceSide{
		{Goid: 17, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.restock", "main.worker")},
		{Goid: 18, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.sell", "main.worker")},
	}
	writeRace := report.Race{Map: "0xc000100000", Name: "main.inventory", MapID: "main.inventory", Kind: "write/write", Count: 3, Sides: writeSides}
	// interleavedMap is racedMap written in turn by restock and sell, with no race seen.
	interleavedMap := racedMap
	interleavedMap.InterleavedWrites = 12
	interleavedMap.Interleave = &report.Interleave{Count: 12, Sides: writeSides}
	readMostlyMap := report.Map{
		Address: "0xc000200000", KeyType: "string",
		Reads: 50000, Writes: 100, Goroutines: 6,
		HotKeys: []report.HotKey{{Key: "sku:1", Count: 25000}, {Key: "sku:2", Count: 5000}, {Key: "other", Count: 20100}},
		Sites: []report.Site{
			{Stack: stack("runtime.mapaccess1_faststr", "main.price", "main.serve"), Op: report.OpRead, Count: 50000},
			{Stack: stack("runtime.mapassign_faststr", "main.setPrice", "main.admin"), Op: report.OpWrite, Count: 100},
		},
	}
	pricesMu := report.Mutex{
		Address: "0x5a0000", Name: "main.pricesMu", Kind: report.KindMutex,
		Contentions: 4000, WaitNS: 2500 * ms, MaxWaitNS: 30 * ms, P50NS: ms / 2, P99NS: 8 * ms,
		Waiters: []report.Waiter{{Stack: stack("internal/sync.runtime_SemacquireMutex", "internal/sync.(*Mutex).lockSlow", "sync.(*Mutex).Lock", "main.price", "main.serve"), Contentions: 4000, WaitNS: 2500 * ms}},
		Holders: []report.Holder{{Stack: stack("internal/sync.runtime_Semrelease", "sync.(*Mutex).Unlock", "main.price", "main.serve"), Count: 3900}},
	}
	ordersMap := func(hot report.HotKey) report.Map {
		return report.Map{
			Address: "0xc000300000", Name: "main.orders", KeyType: "int64",
			Reads: 1000, Writes: 9000, Goroutines: 8,
			HotKeys: []report.HotKey{hot, {Key: "other", Count: 10000 - hot.Count}},
			Sites:   []report.Site{{Stack: stack("runtime.mapassign_fast64", "main.record", "main.worker"), Op: report.OpWrite, Count: 9000}},
		}
	}
	ordersMu := report.Mutex{
		Address: "0x5b0000", Name: "main.ordersMu", Kind: report.KindMutex,
		Contentions: 900, WaitNS: 200 * ms, MaxWaitNS: 60 * ms, P50NS: ms, P99NS: 20 * ms,
		Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).lockSlow", "main.record", "main.worker"), Contentions: 900, WaitNS: 200 * ms}},
		Holders: []report.Holder{{Stack: stack("sync.runtime_Semrelease", "sync.(*Mutex).unlockSlow", "main.record", "main.worker"), Count: 880}},
	}
	// shortMu is a mutex whose waits are short (p99 1ms) and add up to wait.
	shortMu := func(wait uint64) report.Mutex {
		m := ordersMu
		m.WaitNS, m.P99NS, m.MaxWaitNS = wait, ms, 2*ms
		return m
	}
	// classMap is a class of heap maps: 5000 map[string]string made in main.handle.
	classMap := report.Map{
		Class: "main.handle", Type: "map[string]string", Maps: 5000, KeyType: "string",
		Reads: 20000, Writes: 30000, Goroutines: 40, Writers: 40, CPUSeconds: 0.8,
		Sites: []report.Site{{Stack: stack("runtime.mapassign_faststr", "main.handle", "main.serve"), Op: report.OpWrite, Count: 30000}},
	}
	// lockedMap is written in turn by push and pop, which both wait for queueMu.
	lockedMap := report.Map{
		Address: "0xc000600000", Name: "main.queue", Reads: 10, Writes: 4000, Deletes: 3900, Goroutines: 2, Writers: 2,
		InterleavedWrites: 300,
		Interleave: &report.Interleave{Count: 300, Sides: []report.RaceSide{
			{Goid: 5, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.push")},
			{Goid: 6, Op: report.OpDelete, Stack: stack("runtime.mapdelete_fast64", "main.pop")},
		}},
	}
	queueMu := report.Mutex{Address: "0x5d0000", Name: "main.queueMu", Kind: report.KindMutex, Contentions: 40, WaitNS: 20 * ms, P99NS: ms,
		Waiters: []report.Waiter{
			{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock", "main.push"), Contentions: 20, WaitNS: 10 * ms},
			{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock", "main.pop"), Contentions: 20, WaitNS: 10 * ms},
		}}

	tests := []struct {
		name string
		edit func(r *report.Report)
		want []want
	}{
		{name: "nothing measured", edit: func(*report.Report) {}},

		// Correctness.
		{
			name: "target died of a write race",
			edit: func(r *report.Report) {
				r.TargetError = "concurrent map writes"
				r.Window.Seconds = 3.5
				r.Maps = []report.Map{racedMap}
				r.Races = []report.Race{writeRace}
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes",
					[]string{`"fatal error: concurrent map writes", 3.5s into the trace`, "not safe for concurrent use"},
					[]string{"hold the same lock", "see the race finding", "go test -race"}, 0, false},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory",
					[]string{"goroutine 17 (write at main.restock (x.go:1))", "goroutine 18 (write at main.sell (x.go:1))",
						"seen 3 times", "the runtime killed the process", "The map had 100 reads, 900 writes, 0 deletes, 0 iterations from 2 goroutines"},
					[]string{"sync.Mutex", "writes are 90%", "shard the map"}, 0, false},
			},
		},
		{
			name: "target died of a write race the probes did not see",
			edit: func(r *report.Report) {
				r.TargetError = "concurrent map writes"
				r.TargetStack = stack("runtime.fatal", "main.sell")
				r.Window.Seconds = 3.5
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes",
					[]string{`in main.sell (x.go:1)`, "not safe for concurrent use"},
					[]string{"the map it died on", "saw neither side", "only the goroutine that died", "go test -race", "!race finding"}, 0, false},
			},
		},
		{
			name: "read race on a read-mostly map, other side unseen",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{readMostlyMap}
				r.Races = []report.Race{{Map: readMostlyMap.Address, MapID: readMostlyMap.ID(), Kind: "read/write", Count: 1, Sides: []report.RaceSide{
					{Goid: 7, Op: report.OpRead, Stack: stack("runtime.mapaccess1_faststr", "main.price")},
					{Op: report.OpWrite},
				}}}
				r.Maps[0].HotKeys = nil
			},
			want: []want{
				{report.SeverityCritical, "concurrent map access (read/write) on map 0xc000200000",
					[]string{"goroutine 7 (read at main.price (x.go:1))", "a write not seen (the map probes were off)", "seen once)",
						`"fatal error: concurrent map ...`, "The map had 50000 reads, 100 writes"},
					[]string{"sync.RWMutex", "read 500× as often as written", "sync.Map"}, 0, false},
			},
		},
		{
			name: "race on a class of heap maps, matched by row ID",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{{Class: "main.handle", Type: "map[string]int", Maps: 40, Reads: 10, Writes: 30, Goroutines: 3}}
				r.Races = []report.Race{{Map: "0xc000a00000", MapID: "map[string]int from main.handle", Kind: "write/write", Count: 1, Sides: writeSides}}
			},
			want: []want{
				{report.SeverityCritical, "concurrent map access (write/write) on map[string]int maps from main.handle",
					[]string{"The map had 10 reads, 30 writes, 0 deletes, 0 iterations from 3 goroutines"},
					[]string{"writes are 75%"}, 0, false},
			},
		},
		{
			name: "race on a map the report did not list; a row at the same address is not matched without its ID",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{{Address: "0xc0000f0000", Reads: 10}}
				r.Races = []report.Race{{Map: "0xc0000f0000", Kind: "iterate/write", Count: 2, Sides: []report.RaceSide{
					{Goid: 3, Op: report.OpIterate, Stack: stack("runtime.mapIterNext", "main.dump")},
					{Goid: 4, Op: report.OpWrite},
				}}}
				r.TargetError = "concurrent map writes" // another race killed it
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes", nil, nil, 0, false},
				{report.SeverityCritical, "concurrent map access (iterate/write) on map 0xc0000f0000",
					[]string{"goroutine 3 (iterate at main.dump (x.go:1))", "goroutine 4 (write at an unrecorded stack)",
						"the runtime kills the process when it catches this", "!The map had"},
					[]string{"sync.Mutex (a sync.RWMutex when reads dominate", "sync.Map", "sharded map"}, 0, false},
			},
		},
		{
			name: "the runtime's iterate/write fatal error is the iterate/write race",
			edit: func(r *report.Report) {
				r.TargetError = "concurrent map iteration and map write"
				r.Races = []report.Race{{Map: "0xc0000f0000", Kind: "iterate/write", Count: 1, Sides: writeSides}}
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map iteration and map write", nil, []string{"hold the same lock"}, 0, false},
				{report.SeverityCritical, "concurrent map access (iterate/write) on map 0xc0000f0000",
					[]string{"the runtime killed the process for it"}, nil, 0, false},
			},
		},
		{
			name: "target died of something else",
			edit: func(r *report.Report) { r.TargetError = "all goroutines are asleep - deadlock!" },
			want: []want{
				{report.SeverityCritical, "target died: fatal error: all goroutines are asleep - deadlock!",
					[]string{"!not safe for concurrent use"}, []string{"goroutine dump"}, 0, false},
			},
		},
		{
			name: "a panic in one side of a race is the race's",
			edit: func(r *report.Report) {
				r.TargetCrash, r.TargetError = "panic", "runtime error: invalid memory address or nil pointer dereference"
				r.TargetStack = stack("runtime.gopanic", "runtime.panicmem", "runtime.sigpanic", "main.sell", "main.worker")
				r.Maps = []report.Map{racedMap}
				r.Races = []report.Race{writeRace}
			},
			want: []want{
				{report.SeverityCritical, "target died: panic: runtime error: invalid memory address or nil pointer dereference",
					[]string{"dereference\" in main.sell (x.go:3), 10.0s", "main.sell was one side of the write/write race on map main.inventory"},
					[]string{"fix the race first"}, 0, false},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory",
					[]string{"the runtime kills the process when it catches this"}, nil, 0, false},
			},
		},
		{
			name: "a panic elsewhere, with a race seen",
			edit: func(r *report.Report) {
				r.TargetCrash, r.TargetError = "panic", "boom"
				r.TargetStack = stack("runtime.gopanic", "main.handle")
				r.Maps = []report.Map{racedMap}
				r.Races = []report.Race{writeRace}
			},
			want: []want{
				{report.SeverityCritical, "target died: panic: boom",
					[]string{"\"panic: boom\" in main.handle (x.go:1)", "also saw a map race", "!was one side"}, []string{"goroutine dump"}, 0, false},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory", nil, nil, 0, false},
			},
		},

		// Interleaved writes.
		{
			name: "map written by goroutines in turn, no lock seen",
			edit: func(r *report.Report) { r.Maps = []report.Map{interleavedMap} },
			want: []want{
				{report.SeverityWarning, "main.inventory is written by goroutines in turn (interleaved writes, 12 times): a race if no lock guards it",
					[]string{"then the first again, within 10ms, 12 times",
						"goroutine 17 (write at main.restock (x.go:1)) and goroutine 18 (write at main.sell (x.go:1))",
						"(100 reads, 900 writes, 0 deletes by 2 goroutines)", "!waited for"},
					[]string{"same mutex", "go test -race", "one map per goroutine"}, 0, false},
			},
		},
		{
			name: "map written by goroutines in turn, both waiting for the same mutex",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{interleavedMap}
				r.Mutexes = []report.Mutex{{Address: "0x5d0000", Name: "main.invMu", Kind: report.KindMutex, Contentions: 2, WaitNS: 1000,
					Waiters: []report.Waiter{
						{Stack: stack("sync.runtime_SemacquireMutex", "main.restock"), Contentions: 1, WaitNS: 500},
						{Stack: stack("sync.runtime_SemacquireMutex", "main.sell"), Contentions: 1, WaitNS: 500},
					}}}
			},
			want: []want{
				// The tracing kind: not a cost, never below threshold. The mutex's 1µs of waits is no finding.
				{report.SeverityInfo, "main.inventory is written by goroutines in turn, apparently under main.invMu",
					[]string{"12 times", "every writing function also waited for main.invMu"}, []string{"nothing to fix", "main.invMu"}, 0, false},
			},
		},
		{
			name: "map written in turn; the mutex is waited for by one writer only, or is an RWMutex's read side",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{interleavedMap}
				r.Mutexes = []report.Mutex{
					{Address: "0x5d0000", Name: "main.invMu", Kind: report.KindMutex, Contentions: 1, WaitNS: 500,
						Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireMutex", "main.restock"), Contentions: 1, WaitNS: 500}}},
					{Address: "0x5e0000", Name: "main.rw", Kind: report.KindRWMutexRead, Contentions: 2, WaitNS: 1000,
						Waiters: []report.Waiter{
							{Stack: stack("sync.runtime_SemacquireRWMutexR", "main.restock"), Contentions: 1, WaitNS: 500},
							{Stack: stack("sync.runtime_SemacquireRWMutexR", "main.sell"), Contentions: 1, WaitNS: 500},
						}},
				}
			},
			want: []want{
				{report.SeverityWarning, "main.inventory is written by goroutines in turn (interleaved writes, 12 times): a race if no lock guards it",
					[]string{"!waited for"}, nil, 0, false},
			},
		},
		{
			name: "map written in turn under a mutex, full import paths",
			edit: func(r *report.Report) {
				add := []string{"runtime.mapassign_faststr (/go/src/runtime/map.go:1)", "github.com/acme/app/store.(*S).put (/src/app/store/s.go:10)"}
				del := []string{"runtime.mapdelete_faststr (/go/src/runtime/map.go:2)", "github.com/acme/app/store.(*S).evict (/src/app/store/s.go:30)"}
				r.Maps = []report.Map{{Address: "0xc000700000", Name: "github.com/acme/app/store.cache", Writes: 50, Deletes: 50, Goroutines: 2, Writers: 2,
					InterleavedWrites: 4, Interleave: &report.Interleave{Count: 4, Sides: []report.RaceSide{
						{Goid: 8, Op: report.OpWrite, Stack: add}, {Goid: 9, Op: report.OpDelete, Stack: del}}}}}
				wait := func(f string) []string {
					return []string{"sync.runtime_SemacquireMutex (/go/src/sync/sema.go:1)", "sync.(*Mutex).Lock (/go/src/sync/mutex.go:2)", f}
				}
				r.Mutexes = []report.Mutex{{Address: "0x5f0000", Name: "github.com/acme/app/store.mu", Kind: report.KindMutex, Contentions: 2, WaitNS: 1000,
					Waiters: []report.Waiter{
						{Stack: wait("github.com/acme/app/store.(*S).put (/src/app/store/s.go:9)"), Contentions: 1, WaitNS: 500},
						{Stack: wait("github.com/acme/app/store.(*S).evict (/src/app/store/s.go:29)"), Contentions: 1, WaitNS: 500},
					}}}
			},
			want: []want{
				{report.SeverityInfo, "store.cache is written by goroutines in turn, apparently under store.mu",
					[]string{"goroutine 8 (write at store.(*S).put (s.go:10)) and goroutine 9 (delete at store.(*S).evict (s.go:30))"}, nil, 0, false},
			},
		},
		{
			name: "maps written in turn by the standard library only are not a finding; a user package named like one is",
			edit: func(r *report.Report) {
				sides := func(a, b string) *report.Interleave {
					return &report.Interleave{Count: 5, Sides: []report.RaceSide{
						{Goid: 3, Op: report.OpWrite, Stack: []string{"runtime.mapassign_faststr (/go/src/runtime/map.go:1)", a}},
						{Goid: 4, Op: report.OpWrite, Stack: []string{"runtime.mapassign_faststr (/go/src/runtime/map.go:1)", b}},
					}}
				}
				r.Maps = []report.Map{
					{Address: "0xc000800000", Name: "os/signal.handlers", Writes: 20, Goroutines: 2, Writers: 2, InterleavedWrites: 5,
						Interleave: sides("os/signal.Notify (/go/src/os/signal/signal.go:150)", "os/signal.process (/go/src/os/signal/signal.go:240)")},
					{Address: "0xc000810000", Class: "net/http.(*Transport).roundTrip", Type: "map[string]int", Maps: 3, Writes: 20, Goroutines: 2, Writers: 2, InterleavedWrites: 5,
						Interleave: sides("net/http.(*Transport).roundTrip (/go/src/net/http/transport.go:600)", "net/http.(*persistConn).readLoop (/go/src/net/http/transport.go:2200)")},
					{Address: "0xc000820000", Name: "github.com/acme/app/log.sinks", Writes: 20, Goroutines: 2, Writers: 2, InterleavedWrites: 5,
						Interleave: sides("github.com/acme/app/log.(*L).add (/src/app/log/log.go:10)", "github.com/acme/app/log.(*L).drop (/src/app/log/log.go:20)")},
				}
			},
			want: []want{
				{report.SeverityWarning, "log.sinks is written by goroutines in turn (interleaved writes, 5 times): a race if no lock guards it",
					[]string{"goroutine 3 (write at log.(*L).add (log.go:10)) and goroutine 4 (write at log.(*L).drop (log.go:20))"}, nil, 0, false},
			},
		},
		{
			name: "a map handed from one goroutine to another is not a finding",
			edit: func(r *report.Report) {
				handed := racedMap // two writers, one after the other: no interleaving
				noEvidence := racedMap
				noEvidence.Name, noEvidence.Address, noEvidence.InterleavedWrites = "main.other", "0xc000110000", 3 // count without its sides
				r.Maps = []report.Map{handed, noEvidence}
			},
		},
		{
			name: "a raced map written in turn: the race alone",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{interleavedMap}
				r.Races = []report.Race{writeRace}
			},
			want: []want{
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory", nil, nil, 0, false},
			},
		},

		// Mutexes.
		{
			name: "contended mutex guarding a read-mostly map with a hot key",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{pricesMu}
				r.Maps = []report.Map{readMostlyMap}
			},
			want: []want{
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it in 10.0s",
					[]string{"mutex: 4000 waits, p50 500.0µs, p99 8.00ms, max 30.00ms;",
						"waited for at main.price (x.go:3) (2.50s in 4000 waits)", "released to waiters by main.price (x.go:2) (3900×)",
						"also use map 0xc000200000 (50000 reads, 100 writes)"},
					[]string{"read 500× as often as written", "sync.RWMutex and take RLock in the readers (main.price)", "atomic.Pointer", "copy-on-write"},
					2.5, false},
				{report.SeverityWarning, `hot key "sku:1" in map 0xc000200000, used under contended main.pricesMu: 50% of 50100 keyed operations`,
					[]string{`"sku:1" was used 25000 times out of 50100`, "busiest site is a read at main.price (x.go:1) (50000 times)",
						"goroutines that wait for main.pricesMu"},
					[]string{`look key "sku:1" up once`, "atomic.Pointer"},
					25000.0 / 50100 * 2.5, false},
			},
		},
		{
			name: "contended mutex guarding a write-hot map, keys spread",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{ordersMu}
				r.Maps = []report.Map{ordersMap(report.HotKey{Key: "42", Count: 500})}
			},
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s",
					[]string{"p99 20.00ms", "also use main.orders (1000 reads, 9000 writes)"},
					[]string{"main.orders is write-hot (90% of its operations are writes) with keys spread out: shard it by key hash"},
					0.2, false},
			},
		},
		{
			name: "contended mutex guarding a write-hot map, one hot key",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{ordersMu}
				r.Maps = []report.Map{ordersMap(report.HotKey{Key: "42", Count: 6000})}
			},
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s", nil,
					[]string{`key "42" takes 60%`, "keep that key's value out of the map", "shard the rest by key hash"}, 0.2, false},
				{report.SeverityWarning, `hot key "42" in main.orders, used under contended main.ordersMu: 60% of 10000 keyed operations`,
					[]string{"goroutines that wait for main.ordersMu"},
					[]string{`give that key its own atomic counter`}, 0.6 * 0.2, false},
			},
		},
		{
			// Three keys at a third each: none is hot, and sharding by
			// key spreads them.
			name: "contended mutex guarding a write-hot map of keys used alike",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{ordersMu}
				m := ordersMap(report.HotKey{Key: "41", Count: 3400})
				m.HotKeys = []report.HotKey{m.HotKeys[0], {Key: "42", Count: 3300}, {Key: "43", Count: 3300}}
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s", nil,
					[]string{"write-hot (90% of its operations are writes) with keys spread out"}, 0.2, false},
			},
		},
		{
			// CoreDNS's: its handlers write their answers to its one UDP socket.
			name: "goroutines waiting for a socket's write lock",
			edit: func(r *report.Report) {
				m := ordersMu
				m.Name, m.Kind, m.WaitNS = "fd 8 (udp 127.0.0.1:53)", report.KindFDWrite, 2*1000*ms
				m.Waiters = []report.Waiter{{Stack: stack("runtime.semacquire1", "internal/poll.(*fdMutex).rwlock", "net.(*netFD).writeMsg",
					"net.(*UDPConn).WriteMsgUDP", "dns.(*response).WriteMsg"), Contentions: 900, WaitNS: 2 * 1000 * ms}}
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityWarning, "fd 8 (udp 127.0.0.1:53): writers waited 2.00s for its write lock in 10.0s", []string{"fd-write: 900 waits"},
					[]string{"every write to fd 8 (udp 127.0.0.1:53) holds its write lock", "SO_REUSEPORT"}, 2, false},
			},
		},
		{
			name: "contended mutex with no map and no name: shorten the critical section",
			edit: func(r *report.Report) {
				m := ordersMu
				m.Name = ""
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityWarning, "lock in main.record: goroutines waited 200.00ms for it in 10.0s", nil,
					[]string{"shorten the critical section", "Lock/Unlock in main.record (x.go:2) (880×)"}, 0.2, false},
			},
		},
		{
			name: "short waits that add up to 2% of the window: info",
			edit: func(r *report.Report) { r.Mutexes = []report.Mutex{shortMu(200 * ms)} },
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s", []string{"p99 1.00ms"}, nil, 0.2, false},
			},
		},
		{
			name: "short waits that add up to over 10% of the window: warning",
			edit: func(r *report.Report) { r.Mutexes = []report.Mutex{shortMu(1100 * ms)} },
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 1.10s for it in 10.0s", nil, nil, 1.1, false},
			},
		},
		{
			name: "a p99 over 10ms from fewer than 3 waits is not long",
			edit: func(r *report.Report) {
				m := ordersMu
				m.Contentions, m.WaitNS, m.P99NS = 2, 80*ms, 40*ms
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 80.00ms for it in 10.0s", []string{"mutex: 2 waits"}, nil, 0.08, true},
			},
		},
		{
			name: "many goroutines waiting: said in the mutex's finding",
			edit: func(r *report.Report) {
				m := shortMu(300 * ms)
				m.Goroutines = 12
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 300.00ms for it in 10.0s",
					[]string{"mutex: 900 waits, p50 1.00ms, p99 1.00ms, max 2.00ms, by 12 goroutines;"}, nil, 0.3, false},
			},
		},
		{
			name: "a few goroutines waiting: not said",
			edit: func(r *report.Report) {
				m := shortMu(300 * ms)
				m.Goroutines = manyWaiters - 1
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 300.00ms for it in 10.0s", []string{"!goroutines;", "!by 7"}, nil, 0.3, false},
			},
		},
		{
			name: "slow RWMutex readers of a read-mostly map; stacks merged by frame",
			edit: func(r *report.Report) {
				rd := []string{"sync.runtime_SemacquireRWMutexR", "sync.(*RWMutex).RLock (/go/src/sync/rwmutex.go:74)", "main.get (/src/app/cfg.go:20)", "main.serve (/src/app/main.go:9)"}
				rd2 := append([]string{}, rd...)
				rd2[3] = "main.other (/src/app/main.go:30)"
				wr := []string{"sync.runtime_Semrelease", "sync.(*RWMutex).Unlock (/go/src/sync/rwmutex.go:200)", "main.reload (/src/app/cfg.go:40)"}
				r.Mutexes = []report.Mutex{{Address: "0x5c0000", Name: "main.cfgMu", Kind: report.KindRWMutexRead,
					Contentions: 300, WaitNS: 3000 * ms, MaxWaitNS: 15 * ms, P50NS: 10 * ms, P99NS: 15 * ms,
					Waiters: []report.Waiter{{Stack: rd, Contentions: 200, WaitNS: 2000 * ms}, {Stack: rd2, Contentions: 100, WaitNS: 1000 * ms}},
					Holders: []report.Holder{{Stack: wr, Count: 250}, {Stack: append(append([]string{}, wr...), "main.loop (/src/app/cfg.go:50)"), Count: 50}}}}
				r.Maps = []report.Map{{Address: "0xc000500000", Name: "main.cfg", Reads: 3000, Writes: 100, Goroutines: 4,
					Sites: []report.Site{{Stack: []string{"runtime.mapaccess1_faststr (/go/src/runtime/map.go:1)", "main.get (/src/app/cfg.go:21)"}, Op: report.OpRead, Count: 3000}}}}
			},
			want: []want{
				{report.SeverityWarning, "main.cfgMu: readers waited 3.00s for RLock in 10.0s",
					[]string{"rwmutex-read: 300 waits", "waited for at main.get (cfg.go:20) (3.00s in 300 waits)", "released to waiters by main.reload (cfg.go:40) (300×)",
						"also use main.cfg (3000 reads, 100 writes)"},
					[]string{"main.cfg is read 30× as often as written", "readers and writer wait for each other", "swap it in", "copy-on-write snapshot"},
					3, false},
			},
		},
		{
			// nats-server: flushClients locks each client it flushes and
			// empties a map of its own, which deliverMsg's callee fills
			// 3.4M times; client.mu does not guard that map.
			name: "a waiting function also uses a map, used mostly elsewhere: not the lock's map",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{{Address: "0x5c0000", Kind: report.KindMutex,
					Contentions: 300, WaitNS: 3000 * ms, MaxWaitNS: 15 * ms, P50NS: 10 * ms, P99NS: 15 * ms,
					Waiters: []report.Waiter{
						{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock", "main.deliver"), Contentions: 250, WaitNS: 2500 * ms},
						{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock", "main.flush"), Contentions: 50, WaitNS: 500 * ms}},
					Holders: []report.Holder{{Stack: stack("sync.runtime_Semrelease", "sync.(*Mutex).Unlock", "main.deliver"), Count: 300}}}}
				r.Maps = []report.Map{{Class: "main.addPending", Maps: 137, Type: "map[*main.client]struct {}", Reads: 34000, Writes: 180, Deletes: 146, Iterations: 36, Goroutines: 4,
					Sites: []report.Site{
						{Stack: stack("runtime.mapaccess2_fast64", "main.addPending", "main.deliver"), Op: report.OpRead, Count: 34000},
						{Stack: stack("runtime.mapassign_fast64ptr", "main.addPending", "main.deliver"), Op: report.OpWrite, Count: 180},
						{Stack: stack("runtime.mapdelete_fast64", "main.flush"), Op: report.OpDelete, Count: 146},
						{Stack: stack("runtime.mapIterStart", "main.flush"), Op: report.OpIterate, Count: 36}}}}
			},
			want: []want{
				{report.SeverityWarning, "lock in main.deliver: goroutines waited 3.00s for it in 10.0s",
					[]string{"mutex: 300 waits", "!also use"},
					[]string{"shorten the critical section", "!read 1"}, 3, false},
			},
		},
		{
			name: "a waiting function uses a map far less often than it waits: not the lock's map",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{{Address: "0x5c0000", Kind: report.KindMutex,
					Contentions: 10000, WaitNS: 3000 * ms, MaxWaitNS: 15 * ms, P50NS: ms / 10, P99NS: 15 * ms,
					Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock", "main.flush"), Contentions: 10000, WaitNS: 3000 * ms}},
					Holders: []report.Holder{{Stack: stack("sync.runtime_Semrelease", "sync.(*Mutex).Unlock", "main.deliver"), Count: 10000}}}}
				r.Maps = []report.Map{{Class: "main.flush", Maps: 9, Type: "map[*main.client]struct {}", Reads: 2040, Writes: 680, Deletes: 680, Iterations: 1105, Goroutines: 4,
					Sites: []report.Site{
						{Stack: stack("runtime.mapaccess2_fast64", "main.addPending", "main.deliver"), Op: report.OpRead, Count: 2040},
						{Stack: stack("runtime.mapIterStart", "main.flush"), Op: report.OpIterate, Count: 1105},
						{Stack: stack("runtime.mapassign_fast64ptr", "main.addPending", "main.deliver"), Op: report.OpWrite, Count: 680},
						{Stack: stack("runtime.mapdelete_fast64", "main.flush"), Op: report.OpDelete, Count: 680}}}}
			},
			want: []want{
				{report.SeverityWarning, "lock in main.flush: goroutines waited 3.00s for it in 10.0s",
					[]string{"mutex: 10000 waits", "!also use"},
					[]string{"shorten the critical section", "!shard"}, 3, false},
			},
		},
		{
			name: "RWMutex writers starve; the readers' own short waits are below threshold",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{
					{Address: "0x5c0000", Name: "main.cfgMu", Kind: report.KindRWMutexWrite, Contentions: 50, WaitNS: 900 * ms, MaxWaitNS: 80 * ms, P99NS: 60 * ms,
						Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireRWMutex", "sync.(*RWMutex).Lock", "main.reload"), Contentions: 50, WaitNS: 900 * ms}},
						Holders: []report.Holder{{Stack: stack("sync.runtime_Semrelease", "sync.(*RWMutex).rUnlockSlow", "sync.(*RWMutex).RUnlock", "main.get"), Count: 50}}},
					{Address: "0x5c0000", Name: "main.cfgMu", Kind: report.KindRWMutexRead, Contentions: 400, WaitNS: 40 * ms, MaxWaitNS: 2 * ms, P99NS: 1 * ms},
				}
			},
			want: []want{
				{report.SeverityWarning, "main.cfgMu: writers wait for readers (writer p99 60.00ms, reader p99 1.00ms)",
					[]string{"Lock waited 50 times for readers to leave, 900.00ms in all (max 80.00ms), 9% of the 10.0s window",
						"readers waited 400 times, 40.00ms in all", "the writer waits at main.reload (x.go:2)", "the last reader out was main.get (x.go:3) (50×)"},
					[]string{"in main.get (x.go:3) (50×) copy what you need and RUnlock", "atomic.Pointer snapshot"}, 0.9, false},
				{report.SeverityInfo, "main.cfgMu: readers waited 40.00ms for RLock in 10.0s", []string{"rwmutex-read: 400 waits"}, nil, 0.04, true},
			},
		},
		{
			name: "RWMutex writers with long waits but under 0.1% of the goroutine time: no finding",
			edit: func(r *report.Report) {
				r.Target.CPUs = 64 // 640s of goroutine time: 0.1% is 640ms
				r.Mutexes = []report.Mutex{
					{Address: "0x5c0000", Name: "main.cfgMu", Kind: report.KindRWMutexWrite, Contentions: 3, WaitNS: 60 * ms, MaxWaitNS: 25 * ms, P99NS: 25 * ms,
						Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireRWMutex", "sync.(*RWMutex).Lock", "main.reload"), Contentions: 3, WaitNS: 60 * ms}}},
				}
			},
		},

		// Thresholds: lock waits against the window times the CPUs.
		{
			name: "a mutex at 0.5% of the window is below threshold",
			edit: func(r *report.Report) { r.Mutexes = []report.Mutex{shortMu(50 * ms)} },
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 50.00ms for it in 10.0s", nil, nil, 0.05, true},
			},
		},
		{
			name: "a mutex at 2% of the window is not below threshold",
			edit: func(r *report.Report) { r.Mutexes = []report.Mutex{shortMu(200 * ms)} },
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s", nil, nil, 0.2, false},
			},
		},
		{
			name: "with 4 CPUs the same 2% of the window is 0.5% of the goroutine time: below threshold",
			edit: func(r *report.Report) {
				r.Target.CPUs = 4
				r.Mutexes = []report.Mutex{shortMu(200 * ms)}
			},
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 200.00ms for it in 10.0s", nil, nil, 0.2, true},
			},
		},
		{
			name: "a mutex at 0.1% is a finding; at 0.05% it is not",
			edit: func(r *report.Report) {
				m2 := shortMu(5 * ms)
				m2.Address, m2.Name = "0x5b1000", "main.tinyMu"
				r.Mutexes = []report.Mutex{shortMu(10 * ms), m2}
			},
			want: []want{
				{report.SeverityInfo, "main.ordersMu: goroutines waited 10.00ms for it in 10.0s", nil, nil, 0.01, true},
			},
		},
		{
			name: "with 4 CPUs, 0.1% of the window is under 0.1% of the goroutine time: no finding",
			edit: func(r *report.Report) {
				r.Target.CPUs = 4
				r.Mutexes = []report.Mutex{shortMu(10 * ms)}
			},
		},
		{
			name: "a hot key under a minor lock is below threshold too",
			edit: func(r *report.Report) {
				m := pricesMu
				m.WaitNS, m.P99NS = 50*ms, ms
				r.Mutexes = []report.Mutex{m}
				r.Maps = []report.Map{readMostlyMap}
			},
			want: []want{
				{report.SeverityInfo, "main.pricesMu: goroutines waited 50.00ms for it in 10.0s", nil, nil, 0.05, true},
				{report.SeverityWarning, `hot key "sku:1" in map 0xc000200000, used under contended main.pricesMu: 50% of 50100 keyed operations`,
					nil, nil, 25000.0 / 50100 * 0.05, true},
			},
		},

		// Hot keys without a contended lock.
		{
			name: "a read-only lookup table with a hot key, no CPU, no lock: no finding",
			edit: func(r *report.Report) {
				m := readMostlyMap
				m.Writes = 0
				r.Maps = []report.Map{m}
			},
		},
		{
			// A busy server's maps probed at 0.01%: five records scaled
			// up to 50100 operations say nothing of which key is hot.
			name: "a key seen in too few probed operations is not hot",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.0001
				r.Mutexes = []report.Mutex{pricesMu}
				r.Maps = []report.Map{readMostlyMap}
			},
			want: []want{
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it in 10.0s", nil, nil, 2.5, false},
				{report.SeverityInfo, "map counts are estimates: 0.0% of map operations were probed", nil, nil, 0, true},
			},
		},
		{
			name: "a key under the share or with few operations is not hot",
			edit: func(r *report.Report) {
				m1 := readMostlyMap
				m1.HotKeys = []report.HotKey{{Key: "a", Count: 2900}, {Key: "other", Count: 7100}}
				m2 := readMostlyMap
				m2.Address = "0xc000400000"
				m2.HotKeys = []report.HotKey{{Key: "a", Count: 90}, {Key: "b", Count: 9}}
				r.Mutexes = []report.Mutex{pricesMu}
				r.Maps = []report.Map{m1, m2}
			},
			want: []want{
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it in 10.0s", nil, nil, 2.5, false},
			},
		},

		// CPU in map operations, against the target's CPU time.
		{
			name: "many short-lived maps cost CPU",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				r.Maps = []report.Map{classMap}
			},
			want: []want{
				{report.SeverityWarning, "map[string]string maps from main.handle: 800.00ms of CPU in map operations (8.0% of the target's CPU)",
					[]string{"20000 reads, 30000 writes, 0 deletes, 0 iterations over 5000 maps", "the busiest site is a write at main.handle (x.go:1) (30000 times)"},
					[]string{"short-lived maps (5000 of them): allocate fewer", "make(map[K]V, n)"}, 0.8, false},
			},
		},
		{
			name: "a read-mostly map with a hot key costs CPU",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := readMostlyMap
				m.CPUSeconds = 0.3
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityInfo, "map 0xc000200000: 300.00ms of CPU in map operations (3.0% of the target's CPU)",
					[]string{"50000 reads, 100 writes, 0 deletes, 0 iterations;", "!over", `key "sku:1" takes 50% of the keyed operations`},
					[]string{"read 500× as often as written", `key "sku:1" dominates: look it up once`}, 0.3, false},
			},
		},
		{
			name: "a read-mostly map with keys spread costs CPU",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := readMostlyMap
				m.CPUSeconds, m.HotKeys = 0.5, []report.HotKey{{Key: "a", Count: 100}, {Key: "other", Count: 900}}
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityWarning, "map 0xc000200000: 500.00ms of CPU in map operations (5.0% of the target's CPU)",
					[]string{"!takes"}, []string{"cache lookups the caller repeats", "smaller key"}, 0.5, false},
			},
		},
		{
			// nats-server's per-client set of the clients to flush,
			// map[*client]struct{}: four keys, no string to shorten.
			name: "a read-mostly map of a few pointer keys costs CPU: a slice, not a smaller key",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := readMostlyMap
				m.KeyType, m.CPUSeconds, m.Deletes, m.Iterations = "pointer", 0.2, 20, 900
				m.HotKeys = []report.HotKey{{Key: "0xc1", Count: 25}, {Key: "0xc2", Count: 25}, {Key: "0xc3", Count: 25}, {Key: "0xc4", Count: 25}}
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityInfo, "map 0xc000200000: 200.00ms of CPU in map operations (2.0% of the target's CPU)",
					[]string{"50000 reads, 100 writes, 20 deletes, 900 iterations"},
					[]string{"(50900 reads and iterations, 120 writes and deletes)", "with only 4 keys seen, a slice scanned in order", "!smaller key"}, 0.2, false},
			},
		},
		{
			// The same at 0.5%: its 100 keyed operations are one probed,
			// which says nothing of how many keys it holds.
			name: "a read-mostly map of keys too little probed costs CPU: no slice advice",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				r.Overhead.MapSamplingFraction = 0.005
				m := readMostlyMap
				m.KeyType, m.CPUSeconds = "pointer", 0.2
				m.HotKeys = []report.HotKey{{Key: "0xc1", Count: 100}}
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityInfo, "map 0xc000200000: 200.00ms of CPU in map operations (2.0% of the target's CPU)",
					nil, []string{"cache lookups the caller repeats: look each key up once", "!slice"}, 0.2, false},
				{report.SeverityInfo, "map counts are estimates: 0.5% of map operations were probed", nil, nil, 0, true},
			},
		},
		{
			name: "a read-mostly map of many int keys costs CPU: cache lookups, not a smaller key",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := readMostlyMap
				m.KeyType, m.CPUSeconds, m.HotKeys = "int64", 0.2, []report.HotKey{{Key: "1", Count: 100}, {Key: "other", Count: 900}}
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityInfo, "map 0xc000200000: 200.00ms of CPU in map operations (2.0% of the target's CPU)",
					nil, []string{"(50000 reads, 100 writes)", "cache lookups the caller repeats: look each key up once", "!smaller key", "!slice"}, 0.2, false},
			},
		},
		{
			name: "a named map of writes costs CPU; one named map of a class is not short-lived",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := ordersMap(report.HotKey{Key: "42", Count: 6000})
				m.CPUSeconds, m.Maps = 0.2, 1
				r.Maps = []report.Map{m}
			},
			want: []want{
				// A hot key in a map that costs CPU is in the map's finding, not one of its own.
				{report.SeverityInfo, "main.orders: 200.00ms of CPU in map operations (2.0% of the target's CPU)",
					[]string{`key "42" takes 60%`, "a write at main.record (x.go:1) (9000 times)"},
					[]string{"writes dominate (90% of its operations)", "!short-lived"}, 0.2, false},
			},
		},
		{
			// Reads and writes mixed (Prometheus's registry builds a map
			// per scrape): the writes are a large share, not most.
			name: "a map of mixed reads and writes costs CPU: its writes' share, not that they dominate",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m := ordersMap(report.HotKey{Key: "42", Count: 100})
				m.Reads, m.Writes, m.CPUSeconds, m.Maps = 5900, 4100, 0.2, 1
				r.Maps = []report.Map{m}
			},
			want: []want{
				{report.SeverityInfo, "main.orders: 200.00ms of CPU in map operations (2.0% of the target's CPU)",
					[]string{"5900 reads, 4100 writes"}, []string{"writes are 41% of its operations", "!dominate"}, 0.2, false},
			},
		},
		{
			name: "map CPU under 1% of the target's CPU is below threshold; under 0.1% it is no finding",
			edit: func(r *report.Report) {
				r.CPU.Seconds = 10
				m1, m2 := classMap, classMap
				m1.CPUSeconds = 0.05
				m2.Class, m2.CPUSeconds = "main.other", 0.009
				r.Maps = []report.Map{m1, m2}
			},
			want: []want{
				{report.SeverityInfo, "map[string]string maps from main.handle: 50.00ms of CPU in map operations (0.5% of the target's CPU)",
					nil, nil, 0.05, true},
			},
		},
		{
			name: "with no CPU samples, map CPU is against the window times the CPUs",
			edit: func(r *report.Report) {
				r.Target.CPUs = 2 // 20s
				m1, m2 := classMap, classMap
				m1.CPUSeconds = 0.3                         // 1.5%
				m2.Class, m2.CPUSeconds = "main.other", 0.1 // 0.5%
				r.Maps = []report.Map{m2, m1}
			},
			want: []want{
				{report.SeverityInfo, "map[string]string maps from main.handle: 300.00ms of CPU in map operations (1.5% of the target's CPU)",
					nil, nil, 0.3, false},
				{report.SeverityInfo, "map[string]string maps from main.other: 100.00ms of CPU in map operations (0.5% of the target's CPU)",
					nil, nil, 0.1, true},
			},
		},

		// About the trace.
		{
			name: "sampled map counts: a note, always below threshold",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.25
				r.Overhead.MapCountsLowerBound, r.Overhead.MapCountsLowerBoundWhy = true, "slowed"
				r.Maps = []report.Map{{Address: "0x1", Reads: 10}}
			},
			want: []want{
				{report.SeverityInfo, "map counts are estimates: 25.0% of map operations were probed",
					[]string{"scaled up by 4.0×", "slowed its work there", "lower bounds"}, []string{"--exact"}, 0, true},
			},
		},
		{
			name: "sampled map counts from windows too short to measure",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.004
				r.Overhead.MapCountsLowerBound, r.Overhead.MapCountsLowerBoundWhy = true, "short-windows"
				r.Maps = []report.Map{{Address: "0x1", Reads: 10}}
			},
			want: []want{
				{report.SeverityInfo, "map counts are estimates: 0.4% of map operations were probed",
					[]string{"scaled up by 250.0×", "cut at its first check", "lower bounds"}, []string{"--exact"}, 0, true},
			},
		},
		{
			name: "sampled, but no maps seen: no note",
			edit: func(r *report.Report) { r.Overhead.MapSamplingFraction = 0.25 },
		},
		{
			// Caddy's: cut for a moment, scaled by under 1%.
			name: "mutex probes attached 99.2% of the time: no finding",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexBudget, r.Overhead.MutexRatio, r.Overhead.HitCostNS = 0.05, 0.0266, 0.013, 8000
				r.Overhead.MutexCountsScaled, r.Overhead.MutexSamplingFraction = true, 0.992
			},
		},
		{
			name: "a sampling fraction that rounds to 100% is not worth a note",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.9996
				r.Maps = []report.Map{{Address: "0x1", Reads: 10}}
			},
		},
		{
			name: "no map probing at all",
			edit: func(r *report.Report) { r.Overhead.MapSamplingFraction = 0 },
			want: []want{
				{report.SeverityInfo, "map operations were not traced: the --overhead budget allowed no map probing", nil, []string{"--overhead"}, 0, false},
			},
		},
		{
			name: "mutex probes over the budget",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexRatio, r.Overhead.HitCostNS, r.Overhead.EstCostSeconds = 0.05, 0.077, 6100, 0.8
			},
			want: []want{
				{report.SeverityWarning, "tracing mutexes cost ~7.7% of the target's CPU, over the 5% --overhead budget", []string{"6.1µs a hit"},
					[]string{"--no-mutex"}, 0.8, false},
			},
		},
		{
			name: "mutex probes duty-cycled",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexRatio, r.Overhead.HitCostNS, r.Overhead.HitCostFactor = 0.05, 0.04, 5000, 1.2
				r.Overhead.MutexCountsScaled, r.Overhead.MutexSamplingFraction = true, 0.4
			},
			want: []want{
				{report.SeverityInfo, "mutex figures are estimates: the mutex probes were attached 40.0% of the time to stay within the budget",
					[]string{"6.0µs a hit", "~10.0% of the target's CPU", "scaled up"}, []string{"--overhead"}, 0, false},
			},
		},
		{
			name: "mutex probes duty-cycled within their part of the budget",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexBudget, r.Overhead.MutexRatio, r.Overhead.HitCostNS, r.Overhead.HitCostFactor = 0.05, 0.0375, 0.02, 5000, 1
				r.Overhead.MutexCountsScaled, r.Overhead.MutexSamplingFraction, r.Overhead.MapHitCostNS = true, 0.5, 5000
			},
			want: []want{
				{report.SeverityInfo, "mutex figures are estimates: the mutex probes were attached 50.0% of the time to stay within the budget",
					[]string{"~4.0% of the target's CPU, over the 3.75% of the 5% --overhead budget left to them (the map probes keep a quarter of the rest)"},
					[]string{"--overhead"}, 0, false},
			},
		},
		{
			// The demo's: the samples take their share first, and the
			// contention comes in bursts.
			name: "mutex probes duty-cycled in bursts, after the samples",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexBudget, r.Overhead.MutexRatio, r.Overhead.HitCostNS, r.Overhead.HitCostFactor = 0.05, 0.0264, 0.01, 8000, 1
				r.Overhead.MutexCountsScaled, r.Overhead.MutexSamplingFraction, r.Overhead.MapHitCostNS = true, 0.45, 8000
				r.Overhead.EstCostSeconds, r.Overhead.Ratio, r.Overhead.SamplerSeconds = 0.0094, 0.0376, 0.0036
			},
			want: []want{
				{report.SeverityInfo, "mutex figures are estimates: the mutex probes were attached 45.0% of the time to stay within the budget",
					[]string{"~2.2% of the target's CPU over the trace, within the 2.64% of the 5% --overhead budget left to them " +
						"(the CPU-clock samples took 1.44% of the target's CPU; the map probes keep a quarter of the rest), but more in its busiest stretches"},
					[]string{"--overhead"}, 0, false},
			},
		},
		{
			name: "mutex probes duty-cycled by maptrace's own CPU time",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexBudget, r.Overhead.MutexRatio, r.Overhead.HitCostNS, r.Overhead.HitCostFactor = 0.01, 0.001, 0.0001, 1000, 1
				r.Overhead.MutexCountsScaled, r.Overhead.MutexSamplingFraction = true, 0.05
				r.Overhead.EstCostSeconds, r.Overhead.Ratio, r.Overhead.OwnChargedSeconds = 0.1, 0.01, 0.09
			},
			want: []want{
				{report.SeverityInfo, "mutex figures are estimates: the mutex probes were attached 5.0% of the time to stay within the budget",
					[]string{"~0.2% of the target's CPU, over the 0.1% of the 1% --overhead budget left to them (maptrace's own CPU time 0.90%, as the machine had no idle CPU)", "scaled up"}, []string{"a CPU to spare"}, 0, false},
			},
		},
		{
			name: "mutex probes within the budget, or no budget",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexRatio = 0.05, 0.049
			},
		},
		{
			name: "--overhead 100",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexRatio = 1, 0.2
			},
		},

		// Ranking.
		{
			name: "ranked: correctness by severity, then cost, then risk, then tracing, then below threshold",
			edit: func(r *report.Report) {
				r.TargetError = "concurrent map writes"
				r.Overhead.MapSamplingFraction = 0.5
				r.CPU.Seconds = 10
				stock := interleavedMap
				stock.Name, stock.Address = "main.stock", "0xc000900000"
				stock.Sites = nil
				stock.Interleave = &report.Interleave{Count: 7, Sides: []report.RaceSide{
					{Goid: 21, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.fill")},
					{Goid: 22, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.drain")},
				}}
				stock.InterleavedWrites = 7
				logMu := shortMu(900 * ms) // 9%, short waits: info, yet it costs more than the map CPU warning
				logMu.Address, logMu.Name = "0x5e0000", "main.logMu"
				logMu.Waiters = []report.Waiter{{Stack: stack("sync.runtime_SemacquireMutex", "main.log"), Contentions: 900, WaitNS: 900 * ms}}
				logMu.Holders = nil
				// Added in the reverse of the order they rank in, where the analysis allows.
				r.Maps = []report.Map{lockedMap, classMap, stock, readMostlyMap, racedMap}
				r.Mutexes = []report.Mutex{queueMu, logMu, pricesMu}
				r.Races = []report.Race{writeRace}
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes", nil, nil, 0, false},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory", nil, nil, 0, false},
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it in 10.0s", nil, nil, 2.5, false},
				{report.SeverityWarning, `hot key "sku:1" in map 0xc000200000, used under contended main.pricesMu: 50% of 50100 keyed operations`, nil, nil, 25000.0 / 50100 * 2.5, false},
				{report.SeverityInfo, "main.logMu: goroutines waited 900.00ms for it in 10.0s", nil, nil, 0.9, false},
				{report.SeverityWarning, "map[string]string maps from main.handle: 800.00ms of CPU in map operations (8.0% of the target's CPU)", nil, nil, 0.8, false},
				{report.SeverityWarning, "main.stock is written by goroutines in turn (interleaved writes, 7 times): a race if no lock guards it", nil, nil, 0, false},
				{report.SeverityInfo, "main.queue is written by goroutines in turn, apparently under main.queueMu", nil, nil, 0, false},
				{report.SeverityInfo, "main.queueMu: goroutines waited 20.00ms for it in 10.0s", nil, nil, 0.02, true},
				{report.SeverityInfo, "map counts are estimates: 50.0% of map operations were probed", nil, nil, 0, true},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.edit(r)
			check(t, Analyze(r), tc.want)
		})
	}
}

// TestBelowThresholdCap: at most maxBelow findings below threshold are
// kept, the costliest; those at or above it are all kept.
func TestBelowThresholdCap(t *testing.T) {
	r := base()
	r.TargetError = "concurrent map writes"
	const n = maxBelow + 5
	for i := range n { // 11ms..45ms of a 10s window: between 0.1% and 1%
		r.Mutexes = append(r.Mutexes, report.Mutex{Address: fmt.Sprintf("0x%x", 0x1000+i), Name: fmt.Sprintf("main.mu%d", i),
			Kind: report.KindMutex, Contentions: 10, WaitNS: uint64(11+i) * ms, P99NS: ms})
	}
	for i := range 3 { // 1.5s, 1.6s, 1.7s
		r.Mutexes = append(r.Mutexes, report.Mutex{Address: fmt.Sprintf("0x%x", 0x2000+i), Name: fmt.Sprintf("main.big%d", i),
			Kind: report.KindMutex, Contentions: 10, WaitNS: uint64(1500+100*i) * ms, P99NS: ms})
	}
	got := Analyze(r)
	if len(got) != 1+3+maxBelow {
		t.Fatalf("got %d findings, want %d", len(got), 1+3+maxBelow)
	}
	if got[0].Title != "target died: fatal error: concurrent map writes" || got[0].BelowThreshold {
		t.Errorf("finding 0 is %q (below %v), want the target's death", got[0].Title, got[0].BelowThreshold)
	}
	for i, name := range []string{"main.big2", "main.big1", "main.big0"} {
		if f := got[1+i]; !strings.HasPrefix(f.Title, name+":") || f.BelowThreshold {
			t.Errorf("finding %d is %q (below %v), want %s above threshold", 1+i, f.Title, f.BelowThreshold, name)
		}
	}
	for i, f := range got[4:] {
		// The costliest first: mu34 (45ms) down to mu5 (16ms); mu0..mu4 are left out.
		name := fmt.Sprintf("main.mu%d", n-1-i)
		if !strings.HasPrefix(f.Title, name+":") || !f.BelowThreshold {
			t.Errorf("finding %d is %q (below %v), want %s below threshold", 4+i, f.Title, f.BelowThreshold, name)
		}
	}
}

// TestAnalyzeNoWindow: with no window there is nothing to measure a cost
// against: every cost finding is below threshold, and correctness is not.
func TestAnalyzeNoWindow(t *testing.T) {
	r := base()
	r.Window.Seconds = 0
	r.TargetError = "concurrent map writes"
	r.Mutexes = []report.Mutex{{Address: "0x1", Name: "main.mu", Kind: report.KindMutex, Contentions: 3, WaitNS: 30 * ms, P99NS: 20 * ms}}
	check(t, Analyze(r), []want{
		{report.SeverityCritical, "target died: fatal error: concurrent map writes", nil, nil, 0, false},
		{report.SeverityWarning, "main.mu: goroutines waited 30.00ms for it", nil, nil, 0.03, true},
	})
}

func TestAnalyzeNil(t *testing.T) {
	if got := Analyze(nil); got != nil {
		t.Fatalf("Analyze(nil) = %v", got)
	}
}

func TestAllStdlib(t *testing.T) {
	for _, tc := range []struct {
		frames []string
		want   bool
	}{
		{[]string{"os/signal.process (signal.go:1)", "sync.(*Map).Store (map.go:2)"}, true},
		{[]string{"os/signal.process (signal.go:1)", "main.run (main.go:2)"}, false},
		{[]string{"github.com/acme/x.F (x.go:1)"}, false},
		{[]string{"example.com/y.G (y.go:1)", "net/http.(*Server).Serve (server.go:3)"}, false},
		{[]string{"net/http.(*Transport).roundTrip (transport.go:1)"}, true},
		{[]string{"myapp/store.(*S).put (s.go:1)", "os.f (x.go:1)"}, false},
		{[]string{"github.com/acme/app/log.(*L).add (log.go:1)"}, false},
	} {
		if got := allStdlib(tc.frames); got != tc.want {
			t.Errorf("allStdlib(%q) = %v, want %v", tc.frames, got, tc.want)
		}
	}
}

// TestGroupMutexes: one lock field of many objects (four clients' locks,
// waited for in the same function) is one finding with the sum of their
// waits; a named mutex stays on its own.
func TestGroupMutexes(t *testing.T) {
	r := base()
	r.Target.CPUs = 2
	for i := range 4 {
		r.Mutexes = append(r.Mutexes, report.Mutex{
			Address: fmt.Sprintf("0xc0000%d0000", i+1), Kind: report.KindRWMutexWrite,
			Contentions: 100, WaitNS: 500 * ms, MaxWaitNS: uint64(10+i) * ms, P50NS: ms, P99NS: uint64(5+i) * ms, Goroutines: 3,
			Waiters: []report.Waiter{{Stack: stack("sync.(*RWMutex).Lock", "server.(*client).deliverMsg"), Contentions: 100, WaitNS: 500 * ms}},
		})
	}
	r.Mutexes = append(r.Mutexes, report.Mutex{Address: "0x5a0000", Name: "main.mu", Kind: report.KindMutex,
		Contentions: 10, WaitNS: 300 * ms, Waiters: []report.Waiter{{Stack: stack("server.(*client).deliverMsg"), Contentions: 10, WaitNS: 300 * ms}}})
	fs := Analyze(r)
	if len(fs) != 2 {
		t.Fatalf("%d findings, want 2: %+v", len(fs), fs)
	}
	if want := "lock in server.(*client).deliverMsg (4 mutexes): writers waited 2.00s for Lock in 10.0s"; fs[0].Title != want {
		t.Errorf("title %q, want %q", fs[0].Title, want)
	}
	if fs[0].CostSeconds != 2 || !strings.Contains(fs[0].Detail, "400 waits") || !strings.Contains(fs[0].Detail, "max 13.00ms") ||
		!strings.Contains(fs[0].Detail, "by 12 goroutines") {
		t.Errorf("cost %v, detail %q: want 2s, 400 waits, max 13ms, 12 goroutines", fs[0].CostSeconds, fs[0].Detail)
	}
	if !strings.HasPrefix(fs[1].Title, "main.mu:") {
		t.Errorf("second finding %q, want main.mu's own", fs[1].Title)
	}
}

// TestWritersWaitForWriters: an RWMutex whose waiting writers are handed
// the lock by other writers' Unlock, not by readers' RUnlock, is plain
// contention, not writers starved by readers.
func TestWritersWaitForWriters(t *testing.T) {
	handoff := func(release string, n uint64) report.Holder {
		return report.Holder{Count: n, Stack: stack("runtime.semrelease1", release, "main.rangeKeys")}
	}
	for _, tc := range []struct {
		name    string
		holders []report.Holder
		starve  bool
	}{
		{"writers hand to writers", []report.Holder{handoff("sync.(*RWMutex).Unlock", 70), handoff("sync.(*RWMutex).RUnlock", 30)}, false},
		{"readers hand to writers", []report.Holder{handoff("sync.(*RWMutex).Unlock", 30), handoff("sync.(*RWMutex).rUnlockSlow", 70)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.Mutexes = []report.Mutex{
				{Address: "0x1", Name: "main.txMu", Kind: report.KindRWMutexWrite, Contentions: 100, WaitNS: 3000 * ms, P99NS: 40 * ms, MaxWaitNS: 50 * ms,
					Holders: tc.holders},
				{Address: "0x1", Name: "main.txMu", Kind: report.KindRWMutexRead, Contentions: 10, WaitNS: 20 * ms, P99NS: ms},
			}
			fs := Analyze(r)
			if len(fs) == 0 {
				t.Fatal("no finding")
			}
			if got := strings.Contains(fs[0].Title, "writers wait for readers"); got != tc.starve {
				t.Errorf("first finding %q: starvation %v, want %v", fs[0].Title, got, tc.starve)
			}
		})
	}
}

// TestInterleavedInLibraries: interleaved writes are the program's to fix
// only where its own code writes; a library's maps are the library's.
func TestInterleavedInLibraries(t *testing.T) {
	for _, tc := range []struct {
		module, fn string
		warn       bool
	}{
		{"example.com/app", "google.golang.org/grpc/internal/transport.(*http2Server).deleteStream", false},
		{"example.com/app", "example.com/app/store.(*Store).put", true},
		{"example.com/app", "main.handle", true},
		{"", "google.golang.org/grpc/internal/transport.(*http2Server).deleteStream", true},
	} {
		r := base()
		r.Target.Module = tc.module
		side := func(goid int64) report.RaceSide {
			return report.RaceSide{Goid: goid, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast32", tc.fn)}
		}
		r.Maps = []report.Map{{Kind: report.KindMap, Class: tc.fn, Type: "map[uint32]int", Maps: 40, Writes: 900, Goroutines: 30, Writers: 30,
			InterleavedWrites: 50, Interleave: &report.Interleave{Count: 50, Sides: []report.RaceSide{side(7), side(9)}}}}
		fs := Analyze(r)
		warned := len(fs) > 0 && strings.Contains(fs[0].Title, "interleaved writes")
		if warned != tc.warn {
			t.Errorf("module %q, writes in %s: warned %v, want %v (%+v)", tc.module, tc.fn, warned, tc.warn, fs)
		}
	}
}

// TestHotKeyNeedsManyKeys: in a map used with one or two keys, under a
// contended lock, the "hot" key is just the key: no finding for it.
func TestHotKeyNeedsManyKeys(t *testing.T) {
	for _, tc := range []struct {
		keys []report.HotKey
		want bool
	}{
		{[]report.HotKey{{Key: "1", Count: 5000}}, false},
		{[]report.HotKey{{Key: "1", Count: 4900}, {Key: "2", Count: 100}}, false},
		{[]report.HotKey{{Key: "1", Count: 4000}, {Key: "2", Count: 500}, {Key: "3", Count: 500}}, true},
		{[]report.HotKey{{Key: "1", Count: 4000}, {Key: "other", Count: 1000}}, true},
	} {
		r := base()
		r.Mutexes = []report.Mutex{{Address: "0x1", Name: "main.mu", Kind: report.KindMutex, Contentions: 100, WaitNS: 3000 * ms,
			P99NS: 40 * ms, Waiters: []report.Waiter{{Stack: stack("sync.(*Mutex).Lock", "main.get"), Contentions: 100, WaitNS: 3000 * ms}}}}
		r.Maps = []report.Map{{Address: "0x2", Name: "main.buckets", Kind: report.KindMap, Maps: 1, Reads: 5000, HotKeys: tc.keys,
			Sites: []report.Site{{Stack: stack("runtime.mapaccess1_fast64", "main.get"), Op: report.OpRead, Count: 5000}}}}
		hot := false
		for _, f := range Analyze(r) {
			hot = hot || strings.HasPrefix(f.Title, "hot key")
		}
		if hot != tc.want {
			t.Errorf("keys %v: hot-key finding %v, want %v", tc.keys, hot, tc.want)
		}
	}
}

// TestLibraryLock: a lock inside the standard library, contended through
// the program's own code, is named with where the program reaches it.
func TestLibraryLock(t *testing.T) {
	r := base()
	r.Target.Module = "example.com/proxy"
	r.Mutexes = []report.Mutex{{Address: "0xc000100000", Kind: report.KindMutex, Contentions: 900, WaitNS: 2000 * ms, P99NS: 20 * ms,
		Waiters: []report.Waiter{{Contentions: 900, WaitNS: 2000 * ms, Stack: stack("sync.(*Mutex).Lock",
			"net/http.(*Transport).tryPutIdleConn", "net/http.(*persistConn).readLoop", "example.com/proxy/upstream.(*Pool).roundTrip")}}}}
	fs := Analyze(r)
	if len(fs) != 1 {
		t.Fatalf("%d findings: %+v", len(fs), fs)
	}
	for _, want := range []string{"this lock is http's, not your code's", "upstream.(*Pool).roundTrip"} {
		if !strings.Contains(fs[0].Advice, want) {
			t.Errorf("advice %q lacks %q", fs[0].Advice, want)
		}
	}
	r.Target.Module = "example.com/other" // the waiting code is nobody's own: no such advice
	if fs := Analyze(r); strings.Contains(fs[0].Advice, "not your code's") {
		t.Errorf("advice %q without the program's own frame", fs[0].Advice)
	}
}

// TestSyncMapFit: a sync.Map whose keys keep changing is told what suits
// it, with its measured mix; one used as its documentation intends — keys
// written once and read many times, or disjoint keys overwritten by their
// goroutines — is not.
func TestSyncMapFit(t *testing.T) {
	sessions := func(reads, writes, deletes uint64, sm *report.SyncMapStats) report.Map {
		return report.Map{
			Address: "0x6a0000", Name: "main.sessions", Kind: report.KindSyncMap, Type: "sync.Map", Maps: 1, KeyType: "string",
			Reads: reads, Writes: writes, Deletes: deletes, Goroutines: 8, Writers: 8, CPUSeconds: 1, SyncMap: sm,
			Sites: []report.Site{{Stack: stack("sync.(*Map).Load", "main.lookup", "main.serve"), Op: report.OpRead, Count: reads}},
		}
	}
	for _, tc := range []struct {
		name string
		m    report.Map
		want []want
	}{
		{
			name: "Go 1.23: new keys stored all along, stores dominate",
			m:    sessions(4000, 5000, 1000, &report.SyncMapStats{Misses: 1200, Promotions: 40, DirtyCopies: 40}),
			want: []want{{report.SeverityWarning, "main.sessions: sync.Map does not suit this mix, its keys keep changing",
				[]string{"40% loads, 50% stores, 10% deletes of 10000 operations", "1200 misses (30% of loads", "40 promotions and 40 dirty-map copies"},
				[]string{"sharded map", "!RWMutex"}, 1, false}},
		},
		{
			name: "Go 1.23: reads dominate but miss: RWMutex + map",
			m:    sessions(9000, 1000, 0, &report.SyncMapStats{Misses: 2000, Promotions: 3, DirtyCopies: 3}),
			want: []want{{report.SeverityWarning, "main.sessions: sync.Map does not suit this mix, its keys keep changing",
				[]string{"90% loads, 10% stores, 0% deletes", "2000 misses (22% of loads"},
				[]string{"sync.RWMutex", "!sharded"}, 1, false}},
		},
		{
			name: "Go 1.24 (no slow-path counts): keys deleted and stored all along",
			m:    sessions(2000, 5000, 3000, nil),
			want: []want{{report.SeverityWarning, "main.sessions: sync.Map does not suit this mix, its keys keep changing",
				[]string{"20% loads, 50% stores, 30% deletes of 10000 operations", "!misses"},
				[]string{"sharded map"}, 1, false}},
		},
		{
			name: "must not fire: keys written once, read many (a few promotions while filling)",
			m:    sessions(99000, 1000, 0, &report.SyncMapStats{Misses: 900, Promotions: 9, DirtyCopies: 9}),
			want: []want{{report.SeverityWarning, "main.sessions: 1.00s of CPU in map operations (10.0% of the target's CPU)",
				nil, []string{"read 99× as often as written", "!sharded", "!RWMutex"}, 1, false}},
		},
		{
			name: "must not fire: goroutines overwriting disjoint keys, stores dominate",
			m:    sessions(2000, 8000, 0, &report.SyncMapStats{}),
			want: []want{{report.SeverityWarning, "main.sessions: 1.00s of CPU in map operations (10.0% of the target's CPU)",
				nil, []string{"writes dominate", "!sharded", "!sync.Map"}, 1, false}},
		},
		{
			name: "short-lived sync.Maps: their own finding, not this one",
			m: func() report.Map {
				m := sessions(2000, 5000, 3000, nil)
				m.Name, m.Address, m.Class, m.Maps = "", "", "main.handle", 500
				return m
			}(),
			want: []want{{report.SeverityWarning, "sync.Map maps from main.handle: 1.00s of CPU in map operations (10.0% of the target's CPU)",
				nil, []string{"short-lived sync.Maps (500 of them)", "!sharded"}, 1, false}},
		},
		{
			name: "must not fire: too few operations to judge",
			m:    sessions(100, 500, 300, nil),
			want: []want{{report.SeverityWarning, "main.sessions: 1.00s of CPU in map operations (10.0% of the target's CPU)",
				nil, nil, 1, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.CPU = report.CPU{Seconds: 10}
			r.Maps = []report.Map{tc.m}
			check(t, Analyze(r), tc.want)
		})
	}
}

// TestRWMutexReadMostly: a plain map read far more than written under a
// contended RWMutex is pointed to sync.Map or a snapshot when its keys are
// stable (none deleted), and to a snapshot alone when they are not. Writers
// that wait more often than the map is written lock it for something else,
// as etcd's ranges lock txMu to open a bolt cursor and write its map of
// buckets only on a miss: no map advice, but the critical section.
func TestRWMutexReadMostly(t *testing.T) {
	rw := report.Mutex{
		Address: "0x5c0000", Name: "main.routesMu", Kind: report.KindRWMutexRead,
		Contentions: 300, WaitNS: 3000 * ms, MaxWaitNS: 40 * ms, P50NS: 8 * ms, P99NS: 30 * ms,
		Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireRWMutexR", "sync.(*RWMutex).RLock", "main.route", "main.serve"), Contentions: 300, WaitNS: 3000 * ms}},
		Holders: []report.Holder{{Stack: stack("sync.runtime_Semrelease", "sync.(*RWMutex).Unlock", "main.reload"), Count: 300}},
	}
	routes := report.Map{
		Address: "0xc000400000", Name: "main.routes", Kind: report.KindMap, KeyType: "string",
		Reads: 60000, Goroutines: 9, Writers: 1,
		Sites: []report.Site{
			{Stack: stack("runtime.mapaccess1_faststr", "main.route", "main.serve"), Op: report.OpRead, Count: 60000},
			{Stack: stack("runtime.mapassign_faststr", "main.reload"), Op: report.OpWrite},
		},
	}
	readers, writers := "main.routesMu: readers waited 3.00s for RLock in 10.0s", "main.routesMu: writers waited 3.00s for Lock in 10.0s"
	for _, tc := range []struct {
		name            string
		kind            string
		writes, deletes uint64
		title           string
		advice          []string
	}{
		{"stable keys: sync.Map or a snapshot", report.KindRWMutexRead, 200, 0, readers,
			[]string{"read 300× as often as written", "no key was deleted", "a sync.Map fits keys written once", "copy-on-write snapshot"}},
		{"must not suggest sync.Map: keys deleted", report.KindRWMutexRead, 200, 100, readers,
			[]string{"swap it in under a short Lock", "copy-on-write snapshot", "!sync.Map"}},
		{"writers that write the map at least every other wait: the map's advice", report.KindRWMutexWrite, 150, 0, writers,
			[]string{"a sync.Map fits keys written once", "copy-on-write snapshot"}},
		{"writers that wait more often than the map is written: the critical section", report.KindRWMutexWrite, 20, 0, writers,
			[]string{"shorten the critical section", "main.reload", "!sync.Map", "!copy-on-write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.Target.CPUs = 2
			m := routes
			m.Writes, m.Deletes = tc.writes, tc.deletes
			m.Sites = append([]report.Site(nil), m.Sites...)
			m.Sites[1].Count = tc.writes
			mu := rw
			mu.Kind = tc.kind
			r.Maps = []report.Map{m}
			r.Mutexes = []report.Mutex{mu}
			check(t, Analyze(r), []want{{report.SeverityWarning, tc.title, []string{"the waiting functions also use main.routes"}, tc.advice, 3, false}})
		})
	}
}

// TestShardBalance: a sharded map with one busy shard is put down to its
// hot key, or to the hash when no key explains it, or to neither where its
// keys are too few probed or not recorded; an even one raises
// nothing of its own, and the lock of one of its shards is not told to
// shard again.
func TestShardBalance(t *testing.T) {
	sharded := func(hotKey string, hot uint64, ops ...uint64) report.Map {
		var shards []report.Shard
		var total uint64
		for i, n := range ops {
			shards = append(shards, report.Shard{Address: fmt.Sprintf("0xc0000%d0000", i+1), Ops: n})
			total += n
		}
		shards[0].Mutex, shards[0].Contentions, shards[0].WaitNS = "0xc000900008", 400, 2000*ms
		sh := report.NewSharded(shards, []report.HotKey{{Key: "hot", Count: hot}})
		sh.HotKey = hotKey
		return report.Map{
			Kind: report.KindSharded, Class: "cmap.ConcurrentMap[...].Set", Type: "map[string]int", Maps: len(ops), KeyType: "string",
			Reads: total * 7 / 10, Writes: total - total*7/10, Goroutines: 8, Writers: 8, Sharded: sh,
			HotKeys: []report.HotKey{{Key: "hot", Count: hot}, {Key: "other", Count: total - hot}},
			Sites:   []report.Site{{Stack: stack("runtime.mapassign_faststr", "cmap.ConcurrentMap[...].Set", "main.worker"), Op: report.OpWrite, Count: total / 2}},
		}
	}
	shardMu := report.Mutex{
		Address: "0xc000900008", Kind: report.KindMutex, Contentions: 400, WaitNS: 2000 * ms, MaxWaitNS: 30 * ms, P50NS: 4 * ms, P99NS: 20 * ms,
		Waiters: []report.Waiter{{Stack: stack("sync.runtime_SemacquireMutex", "sync.(*Mutex).lockSlow", "cmap.ConcurrentMap[...].Set", "main.worker"), Contentions: 400, WaitNS: 2000 * ms}},
	}
	label := "map[string]int sharded map (4 shards) from cmap.ConcurrentMap[...].Set"
	mutexTitle := "lock in cmap.ConcurrentMap[...].Set: goroutines waited 2.00s for it in 10.0s"
	noKeys := sharded("", 5000, 6000, 1000, 1000, 1000)
	noKeys.HotKeys = nil
	for _, tc := range []struct {
		name     string
		m        report.Map
		fraction float64 // of the map operations probed, if not all
		want     []want
	}{
		{
			name: "a hot key makes one shard hot",
			m:    sharded("hot", 5000, 6000, 1000, 1000, 1000),
			want: []want{
				{report.SeverityWarning, mutexTitle, nil, []string{"guards a shard of " + label, "2.7× the mean", "!N maps"}, 2, false},
				{report.SeverityWarning, label + ": one shard takes 67% of its operations (2.7× the mean shard)",
					[]string{"map 0xc000010000, had 6000 of 9000 operations over 4 shards", "its mutex (0xc000900008) waited 2.00s in 400 waits",
						`key "hot" had 5000 operations`, "a hot key, not the hash"},
					[]string{`take key "hot" out of the sharded map`, "!hash"}, 2, false},
			},
		},
		{
			name: "keys hash unevenly",
			m:    sharded("", 5000, 6000, 1000, 1000, 1000),
			want: []want{
				{report.SeverityWarning, mutexTitle, nil, nil, 2, false},
				{report.SeverityWarning, label + ": one shard takes 67% of its operations (2.7× the mean shard)",
					[]string{"no one key accounts for it, so the keys hash unevenly"}, []string{"fix the shard hash", "!take key"}, 2, false},
			},
		},
		{
			// 9 operations probed: the hot key is one record scaled up.
			name:     "too few probed to tell",
			m:        sharded("hot", 5000, 6000, 1000, 1000, 1000),
			fraction: 0.001,
			want: []want{
				{report.SeverityWarning, mutexTitle, nil, nil, 2, false},
				{report.SeverityWarning, label + ": one shard takes 67% of its operations (2.7× the mean shard)",
					[]string{"too few of its operations were probed (9) to tell a hot key from an uneven hash", "!key \"hot\""},
					[]string{"trace it for longer", "!take key", "!fix the shard hash"}, 2, false},
				{report.SeverityInfo, "map counts are estimates: 0.1% of map operations were probed", nil, nil, 0, true},
			},
		},
		{
			name: "keys not recorded",
			m:    noKeys,
			want: []want{
				{report.SeverityWarning, mutexTitle, nil, nil, 2, false},
				{report.SeverityWarning, label + ": one shard takes 67% of its operations (2.7× the mean shard)",
					[]string{"its keys were not recorded", "!hash unevenly"}, []string{"--keys hash", "!fix the shard hash"}, 2, false},
			},
		},
		{
			name: "must not fire: even shards",
			m:    sharded("", 1000, 2600, 2500, 2400, 2500),
			want: []want{
				{report.SeverityWarning, mutexTitle, nil, []string{"whose shards are even", "more shards"}, 2, false},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.Target.CPUs = 2
			r.Maps = []report.Map{tc.m}
			r.Mutexes = []report.Mutex{shardMu}
			if tc.fraction > 0 {
				r.Overhead.MapSamplingFraction = tc.fraction
			}
			check(t, Analyze(r), tc.want)
		})
	}
}

// TestSnapshots: copy-on-write snapshots that copy more entries than they
// are read are pointed to a lock; snapshots read far more than rebuilt, as
// they are meant to be, raise nothing of their own.
func TestSnapshots(t *testing.T) {
	snap := func(published, entries, reads uint64) report.Map {
		return report.Map{
			Class: "main.buildConfig", Type: "map[string]string", Maps: int(published), KeyType: "string",
			Reads: reads, Writes: entries, Goroutines: 6, Writers: 1, CPUSeconds: 1,
			Snapshots: &report.Snapshots{Published: published, Entries: entries},
		}
	}
	for _, tc := range []struct {
		name string
		m    report.Map
		want []want
	}{
		{
			name: "rebuilt more than read",
			m:    snap(400, 20000, 5000),
			want: []want{{report.SeverityWarning, "map[string]string maps from main.buildConfig: copy-on-write snapshots rebuilt 400 times copy more than they are read",
				[]string{"400 maps were built", "20000 entries in all (50 each on average)", "read 5000 times: 4.0 entries copied per read"},
				[]string{"sync.RWMutex", "rebuild the snapshot less often"}, 1, false}},
		},
		{
			name: "must not fire: read far more than rebuilt",
			m:    snap(40, 2000, 500000),
			want: []want{{report.SeverityWarning, "map[string]string maps from main.buildConfig: 1.00s of CPU in map operations (10.0% of the target's CPU)",
				nil, []string{"!snapshot"}, 1, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.CPU = report.CPU{Seconds: 10}
			r.Maps = []report.Map{tc.m}
			check(t, Analyze(r), tc.want)
		})
	}
}
