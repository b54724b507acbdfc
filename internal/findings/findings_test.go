package findings

import (
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

// want is one expected finding: its severity and title exactly, and
// fragments its detail and advice must contain.
type want struct {
	severity, title string
	detail, advice  []string
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
	writeRace := report.Race{
		Map: "0xc000100000", Name: "main.inventory", Kind: "write/write", Count: 3,
		Sides: []report.RaceSide{
			{Goid: 17, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.restock", "main.worker")},
			{Goid: 18, Op: report.OpWrite, Stack: stack("runtime.mapassign_fast64", "main.sell", "main.worker")},
		},
	}
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

	tests := []struct {
		name string
		edit func(r *report.Report)
		want []want
	}{
		{name: "nothing measured", edit: func(*report.Report) {}},
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
					[]string{`"fatal error: concurrent map writes" 3.5s into the trace`},
					[]string{"hold the same lock", "go test -race"}},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory",
					[]string{"goroutine 17 (write at main.restock (x.go:1))", "goroutine 18 (write at main.sell (x.go:1))",
						"seen 3 times", "the runtime killed the process", "100 reads, 900 writes"},
					[]string{"sync.Mutex", "writes are 90%", "shard the map"}},
			},
		},
		{
			name: "read race on a read-mostly map, other side unseen",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{readMostlyMap}
				r.Races = []report.Race{{Map: readMostlyMap.Address, Kind: "read/write", Count: 1, Sides: []report.RaceSide{
					{Goid: 7, Op: report.OpRead, Stack: stack("runtime.mapaccess1_faststr", "main.price")},
					{Op: report.OpWrite},
				}}}
				r.Maps[0].HotKeys = nil
			},
			want: []want{
				{report.SeverityCritical, "concurrent map access (read/write) on map 0xc000200000 (used in main.price)",
					[]string{"goroutine 7 (read at main.price (x.go:1))", "a write not seen (the map probes were off)", "seen 1 time)",
						`"fatal error: concurrent map ...`},
					[]string{"sync.RWMutex", "read 500× as often as written", "sync.Map"}},
			},
		},
		{
			name: "race on a map the report did not list",
			edit: func(r *report.Report) {
				r.Races = []report.Race{{Map: "0xc0000f0000", Kind: "iterate/write", Count: 2, Sides: []report.RaceSide{
					{Goid: 3, Op: report.OpIterate, Stack: stack("runtime.mapIterNext", "main.dump")},
					{Goid: 4, Op: report.OpWrite},
				}}}
				r.TargetError = "concurrent map writes" // another race killed it
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes", nil, nil},
				{report.SeverityCritical, "concurrent map access (iterate/write) on map 0xc0000f0000",
					[]string{"goroutine 3 (iterate at main.dump (x.go:1))", "goroutine 4 (write at an unrecorded stack)", "the runtime kills the process when it catches this"},
					[]string{"sync.Mutex (a sync.RWMutex when reads dominate", "sync.Map", "sharded map"}},
			},
		},
		{
			name: "target died of something else",
			edit: func(r *report.Report) { r.TargetError = "all goroutines are asleep - deadlock!" },
			want: []want{
				{report.SeverityCritical, "target died: fatal error: all goroutines are asleep - deadlock!", nil,
					[]string{"goroutine dump"}},
			},
		},
		{
			name: "contended mutex guarding a read-mostly map with a hot key",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{pricesMu}
				r.Maps = []report.Map{readMostlyMap}
			},
			want: []want{
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it (25% of the 10.0s window)",
					[]string{"mutex: 4000 waits, total 2.50s, p50 500.0µs, p99 8.00ms, max 30.00ms",
						"waited for at main.price (x.go:3) (2.50s in 4000 waits)", "released to waiters by main.price (x.go:2) (3900×)",
						"also use map 0xc000200000 (used in main.price) (50000 reads, 100 writes)"},
					[]string{"read 500× as often as written", "sync.RWMutex and take RLock in the readers (main.price)", "atomic.Pointer", "copy-on-write"}},
				{report.SeverityWarning, `hot key "sku:1" in map 0xc000200000 (used in main.price): 50% of 50100 keyed operations`,
					[]string{`"sku:1" was used 25000 times out of 50100`, "busiest site is a read at main.price (x.go:1) (50000 times)",
						"goroutines that wait for main.pricesMu"},
					[]string{`look key "sku:1" up once`}},
			},
		},
		{
			name: "contended mutex guarding a write-hot map, keys spread",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{ordersMu}
				r.Maps = []report.Map{ordersMap(report.HotKey{Key: "42", Count: 500})}
			},
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 200.00ms for it (2% of the 10.0s window)",
					[]string{"p99 20.00ms"},
					[]string{"map main.orders is write-hot (90% of its operations are writes) with keys spread out: shard it by key hash"}},
			},
		},
		{
			name: "contended mutex guarding a write-hot map, one hot key",
			edit: func(r *report.Report) {
				r.Mutexes = []report.Mutex{ordersMu}
				r.Maps = []report.Map{ordersMap(report.HotKey{Key: "42", Count: 6000})}
			},
			want: []want{
				{report.SeverityWarning, "main.ordersMu: goroutines waited 200.00ms for it (2% of the 10.0s window)", nil,
					[]string{`key "42" takes 60%`, "keep that key's value out of the map", "shard the rest by key hash"}},
				{report.SeverityWarning, `hot key "42" in map main.orders: 60% of 10000 keyed operations`,
					[]string{"goroutines that wait for main.ordersMu"},
					[]string{`give that key its own atomic counter`}},
			},
		},
		{
			name: "contended mutex with no map: shorten the critical section",
			edit: func(r *report.Report) {
				m := ordersMu
				m.Name = ""
				r.Mutexes = []report.Mutex{m}
			},
			want: []want{
				{report.SeverityWarning, "mutex 0x5b0000 (locked in main.record): goroutines waited 200.00ms for it (2% of the 10.0s window)", nil,
					[]string{"shorten the critical section", "Lock/Unlock in main.record (x.go:2) (880×)"}},
			},
		},
		{
			name: "short waits are not a finding",
			edit: func(r *report.Report) {
				m := ordersMu
				m.Contentions, m.WaitNS, m.P99NS = 2, 50*ms, 40*ms // p99 over too few waits, total 0.5%
				r.Mutexes = []report.Mutex{m}
			},
		},
		{
			name: "slow RWMutex writer of a read-mostly map; stacks merged by frame",
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
				{report.SeverityWarning, "main.cfgMu: readers waited 3.00s for RLock (30% of the 10.0s window)",
					[]string{"waited for at main.get (cfg.go:20) (3.00s in 300 waits)", "released to waiters by main.reload (cfg.go:40) (300×)",
						"also use map main.cfg (3000 reads, 100 writes)"},
					[]string{"map main.cfg is read 30× as often as written", "readers and writer wait for each other", "swap it in", "copy-on-write snapshot"}},
			},
		},
		{
			name: "RWMutex writers starve",
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
					[]string{"in main.get (x.go:3) (50×) copy what you need and RUnlock", "atomic.Pointer snapshot"}},
			},
		},
		{
			name: "map written by two goroutines, no race",
			edit: func(r *report.Report) { r.Maps = []report.Map{racedMap} },
			want: []want{
				{report.SeverityWarning, "map main.inventory is written by more than one goroutine: may be unsafe — fine if always under a lock",
					[]string{"2 goroutines wrote it, 2 used it (100 reads, 900 writes, 0 deletes)", "written at main.restock (x.go:1) and main.sell (x.go:1)"},
					[]string{"same mutex", "go test -race"}},
			},
		},
		{
			name: "map written by two goroutines that both lock the same mutex",
			edit: func(r *report.Report) {
				r.Maps = []report.Map{racedMap}
				r.Mutexes = []report.Mutex{{Address: "0x5d0000", Name: "main.invMu", Kind: report.KindMutex, Contentions: 2, WaitNS: 1000,
					Waiters: []report.Waiter{
						{Stack: stack("sync.runtime_SemacquireMutex", "main.restock"), Contentions: 1, WaitNS: 500},
						{Stack: stack("sync.runtime_SemacquireMutex", "main.sell"), Contentions: 1, WaitNS: 500},
					}}}
			},
			want: []want{
				{report.SeverityInfo, "map main.inventory is written by more than one goroutine, apparently under main.invMu",
					[]string{"every writing function also waited for main.invMu"}, []string{"nothing to fix"}},
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
				r.Maps = []report.Map{m1, m2}
			},
		},
		{
			name: "hot key, nothing contended",
			edit: func(r *report.Report) { r.Maps = []report.Map{readMostlyMap} },
			want: []want{
				{report.SeverityInfo, `hot key "sku:1" in map 0xc000200000 (used in main.price): 50% of 50100 keyed operations`, nil, nil},
			},
		},
		{
			name: "many goroutines waiting on one mutex",
			edit: func(r *report.Report) {
				m := ordersMu
				m.WaitNS, m.P99NS, m.Goroutines = 10*ms, ms, 9 // not long
				m2 := m
				m2.Address, m2.Name, m2.Contentions, m2.Goroutines = "0x5e0000", "main.other", 100, 12
				r.Mutexes = []report.Mutex{m, m2}
			},
			want: []want{
				{report.SeverityInfo, "12 goroutines waited for main.other", []string{"12 goroutines blocked on it, 100 waits in all, 10.00ms of waiting"},
					[]string{"worker pool"}},
			},
		},
		{
			name: "few goroutines waiting",
			edit: func(r *report.Report) {
				m := ordersMu
				m.WaitNS, m.P99NS, m.Goroutines = 10*ms, ms, manyWaiters-1
				r.Mutexes = []report.Mutex{m}
			},
		},
		{
			name: "sampled map counts",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.25
				r.Overhead.MapCountsLowerBound = true
				r.Maps = []report.Map{{Address: "0x1", Reads: 10}}
			},
			want: []want{
				{report.SeverityInfo, "map counts are estimates: 25.0% of map operations were probed", []string{"scaled up by 4.0×", "lower bounds"},
					[]string{"--exact"}},
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
				{report.SeverityInfo, "map operations were not traced: the --overhead budget allowed no map probing", nil, []string{"--overhead"}},
			},
		},
		{
			name: "mutex probes over the budget",
			edit: func(r *report.Report) {
				r.Overhead.Budget, r.Overhead.MutexRatio, r.Overhead.HitCostNS = 0.05, 0.077, 6100
			},
			want: []want{
				{report.SeverityWarning, "tracing mutexes cost ~7.7% of the target's CPU, over the 5% --overhead budget", []string{"6.1µs a hit"}, []string{"--no-mutex"}},
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
		{
			name: "ranked: critical, then warnings, then info",
			edit: func(r *report.Report) {
				r.Overhead.MapSamplingFraction = 0.5
				r.Mutexes = []report.Mutex{pricesMu}
				r.Maps = []report.Map{readMostlyMap, racedMap}
				r.Races = []report.Race{writeRace}
				r.TargetError = "concurrent map writes"
			},
			want: []want{
				{report.SeverityCritical, "target died: fatal error: concurrent map writes", nil, nil},
				{report.SeverityCritical, "concurrent map access (write/write) on map main.inventory", nil, nil},
				{report.SeverityWarning, "main.pricesMu: goroutines waited 2.50s for it (25% of the 10.0s window)", nil, nil},
				{report.SeverityWarning, `hot key "sku:1" in map 0xc000200000 (used in main.price): 50% of 50100 keyed operations`, nil, nil},
				{report.SeverityInfo, "map counts are estimates: 50.0% of map operations were probed", nil, nil},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.edit(r)
			got := Analyze(r)
			if len(got) != len(tc.want) {
				t.Errorf("got %d findings, want %d:", len(got), len(tc.want))
				for _, f := range got {
					t.Errorf("  [%s] %s\n      %s\n      fix: %s", f.Severity, f.Title, f.Detail, f.Advice)
				}
				return
			}
			for i, w := range tc.want {
				f := got[i]
				if f.Severity != w.severity || f.Title != w.title {
					t.Errorf("finding %d: [%s] %q\nwant       [%s] %q", i, f.Severity, f.Title, w.severity, w.title)
				}
				for _, s := range w.detail {
					if !strings.Contains(f.Detail, s) {
						t.Errorf("finding %d detail %q\nlacks %q", i, f.Detail, s)
					}
				}
				for _, s := range w.advice {
					if !strings.Contains(f.Advice, s) {
						t.Errorf("finding %d advice %q\nlacks %q", i, f.Advice, s)
					}
				}
				if f.Detail == "" || f.Advice == "" {
					t.Errorf("finding %d has no detail or no advice: %+v", i, f)
				}
			}
		})
	}
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
	} {
		if got := allStdlib(tc.frames); got != tc.want {
			t.Errorf("allStdlib(%q) = %v, want %v", tc.frames, got, tc.want)
		}
	}
}
