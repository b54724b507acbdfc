package report

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShortFrame(t *testing.T) {
	for in, want := range map[string]string{
		"main.f (/a/b/c.go:12)":                   "main.f (c.go:12)",
		"pkg.(*T).m (c.go:1)":                     "pkg.(*T).m (c.go:1)",
		"github.com/x/y/z.(*T).m (/src/z/t.go:9)": "z.(*T).m (t.go:9)",
		"main.g":   "main.g",
		"":         "",
		"0x4a41da": "0x4a41da",
	} {
		if got := ShortFrame(in); got != want {
			t.Errorf("ShortFrame(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTextWidth checks that the text report fits a 100-column terminal, even
// with long names.
func TestTextWidth(t *testing.T) {
	long := "github.com/some-company/some-service/internal/very/deep/package/name"
	stack := []string{"runtime.x (/usr/local/go/src/runtime/x.go:1)", long + ".(*Server).handleRequestWithAVeryLongName (" + long + "/server.go:1234)", long + ".main (/src/main.go:1)"}
	r := &Report{
		Target:  Target{PID: 123456, Exe: "/opt/" + long + "/bin/server", GoVersion: "go1.26.8", Arch: "amd64"},
		EndedBy: EndedByDuration,
		Overhead: Overhead{ProbeHits: 123456789, EstCostSeconds: 12.5, Ratio: 0.05, MapSamplingFraction: 0.123, MapCountsLowerBound: true,
			LostEvents: 123456789, Lost: Lost{Keys: 123456789}},
		Mutexes: []Mutex{{Address: "0xc000123456", Name: long + ".globalStateMutexWithALongName", Kind: KindRWMutexWrite,
			Contentions: 123456789, WaitNS: 123456789012, MaxWaitNS: 9e9, P50NS: 1e9, P99NS: 8e9,
			Waiters: []Waiter{{Stack: stack, Contentions: 1, WaitNS: 1}}, Holders: []Holder{{Stack: stack, Count: 1}}}},
		Maps: []Map{{Address: "0xc000abcdef", Name: long + ".sessionsByUserID", KeyType: "string", Reads: 1e12, Writes: 1e12, Deletes: 1e9, Iterations: 1e9, Goroutines: 12345,
			HotKeys: []HotKey{{Key: "user:a-very-long-key-that-goes-on-and-on-and-on", Count: 1e11}},
			Sites:   []Site{{Stack: stack, Op: OpRead, Count: 1e12}}}},
		Races:      []Race{{Map: "0xc000abcdef", Name: long + ".sessionsByUserID", Kind: "write/write", Count: 3, Sides: []RaceSide{{Goid: 1234567, Op: OpWrite, Stack: stack}}}},
		Goroutines: []Goroutine{{Goid: 123456789, Contentions: 1e9, WaitNS: 1e15, MapOps: 1e12, HotKeys: []HotKey{{Key: "k", Count: 1}}}},
		Findings:   []Finding{{Severity: SeverityCritical, Title: strings.Repeat("title ", 30), Detail: strings.Repeat("detail ", 40), Advice: strings.Repeat("advice ", 40)}},
		Missing:    []string{strings.Repeat("runtime.mapaccess1_fat, ", 10)},
	}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), "so a hot key may be missing") {
		t.Errorf("no line on the lost key operations:\n%s", b.String())
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if n := utf8.RuneCountInString(l); n > textWidth {
			t.Errorf("%d columns: %s", n, l)
		}
	}
}

// TestTextOptions: Top limits the rows of the mutex and map sections (10 by
// default), Verbose lifts the limit.
func TestTextOptions(t *testing.T) {
	r := &Report{EndedBy: EndedByDuration, Overhead: Overhead{MapSamplingFraction: 1}}
	for i := range 12 {
		r.Mutexes = append(r.Mutexes, Mutex{Address: "0x1", Name: fmt.Sprintf("main.mu%02d", i), Kind: KindMutex})
		r.Maps = append(r.Maps, Map{Address: "0x2", Name: fmt.Sprintf("main.map%02d", i), KeyType: "int64"})
	}
	for _, tc := range []struct {
		o          TextOptions
		rows, more int
	}{
		{TextOptions{}, 10, 2},
		{TextOptions{Top: 3}, 3, 9},
		{TextOptions{Top: 12}, 12, 0},
		{TextOptions{Top: 3, Verbose: true}, 12, 0},
	} {
		var b strings.Builder
		if err := WriteTextOptions(&b, r, tc.o); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, kind := range []string{"main.mu", "main.map"} {
			if n := strings.Count(out, "  "+kind); n != tc.rows {
				t.Errorf("%+v: %d %s rows, want %d", tc.o, n, kind, tc.rows)
			}
		}
		more := fmt.Sprintf("  … %d more in the JSON report (-f json) or with --verbose\n", tc.more)
		if n := strings.Count(out, more); (tc.more > 0 && n != 2) || (tc.more == 0 && strings.Contains(out, "more in the JSON")) {
			t.Errorf("%+v: want %q in both sections:\n%s", tc.o, more, out)
		}
	}
	var def, zero strings.Builder
	WriteText(&def, r)
	WriteTextOptions(&zero, r, TextOptions{})
	if def.String() != zero.String() {
		t.Error("WriteText differs from WriteTextOptions with the zero TextOptions")
	}
}

// TestTextSharded: a sharded map's row names its shard count, and its busiest
// shard with its lock wait and the hot key behind it; no key where the keys
// are used alike (two metrics' label hashes at half each).
func TestTextSharded(t *testing.T) {
	for _, tc := range []struct {
		hot  []HotKey
		want []string
	}{
		{[]HotKey{{"hot", 40000}, {"k2", 20000}, {"k3", 20000}}, []string{"545.3µs; hot key\n", "hot makes it busy\n"}},
		{[]HotKey{{"hot", 40000}, {"k2", 40000}}, []string{"545.3µs\n"}},
	} {
		r := &Report{Version: Version, Overhead: Overhead{MapSamplingFraction: 1}, Maps: []Map{{
			Kind: KindSharded, Class: "main.(*shards).set", Type: "map[string]int", Maps: 16, KeyType: "string", Reads: 56000, Writes: 24000,
			HotKeys: tc.hot,
			Sharded: NewSharded([]Shard{{Address: "0xc000070150", Ops: 42437, Mutex: "0xc0000140b0", Contentions: 4, WaitNS: 545278},
				{Address: "0xc000070250", Ops: 37563}}, tc.hot),
		}}}
		var b strings.Builder
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		for _, want := range append([]string{"map[string]int sharded map (16 shards) from main.(*shards).set",
			"shards: busiest 0xc000070150 with 42437 ops, 1.1× the mean, its mutex waited 545.3µs"}, tc.want...) {
			if !strings.Contains(b.String(), want) {
				t.Errorf("text report lacks %q:\n%s", want, b.String())
			}
		}
	}
}

// TestTextFewProbed: a map's keys are not listed from fewer than FewProbed
// probed operations (etcd's maps at 0.1%: "keys: 1 100%" from one record).
func TestTextFewProbed(t *testing.T) {
	for _, tc := range []struct {
		fraction float64
		want     string
		hotShard bool // the busiest shard put down to the key
	}{
		{0.000887, "      keys: too few operations probed (1) to tell\n", false},
		{0.05, "      keys: 1 100%\n", true},
	} {
		r := &Report{Overhead: Overhead{MapSamplingFraction: tc.fraction}, Maps: []Map{{
			Address: "0xc000100000", KeyType: "uint32", Writes: 1128, HotKeys: []HotKey{{"1", 1128}},
			Sharded: &Sharded{Shards: []Shard{{Address: "0x1", Ops: 1000}, {Address: "0x2", Ops: 128}}, Imbalance: 1.8, HotKey: "1"},
		}}}
		var b strings.Builder
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), "hot key 1 makes it busy") != tc.hotShard {
			t.Errorf("fraction %v: want %q, and the busiest shard's key named: %v, in:\n%s", tc.fraction, tc.want, tc.hotShard, b.String())
		}
	}
}

// TestTextOverBudget: an estimate over the budget is said in words; within
// it, and under --exact (budget 1), nothing is added.
func TestTextOverBudget(t *testing.T) {
	for _, tc := range []struct {
		budget, ratio float64
		want          bool
	}{{0.05, 0.083, true}, {0.05, 0.049, false}, {1, 0.9, false}} {
		r := &Report{Overhead: Overhead{Budget: tc.budget, Ratio: tc.ratio}}
		var b strings.Builder
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "over the 5% budget"); got != tc.want {
			t.Errorf("budget %v, estimate %v: %q, want the words %v", tc.budget, tc.ratio, firstLines(b.String(), 3), tc.want)
		}
	}
}

// TestTextMapFraction: the maps line says how much was probed, and that
// nothing was where no window fit the budget, not "scaled from 0.0%".
func TestTextMapFraction(t *testing.T) {
	for _, tc := range []struct {
		fraction float64
		lower    bool
		why      string
		want     string
	}{
		{1, false, "", ""},
		{0.121, false, "", "maps: counts scaled from the 12.1% of operations probed\n"},
		{0.022, true, "slowed", "maps: counts scaled from the 2.2% of operations probed (lower bounds: the probes slowed the target;\n    compare maps by CPU)\n"},
		{0.003, true, "short-windows", "maps: counts scaled from the 0.3% of operations probed (lower bounds: windows too short to measure)\n"},
		{0, false, "", "maps: no operation probed within the budget (map CPU time is from samples)\n"},
	} {
		r := &Report{Overhead: Overhead{MapSamplingFraction: tc.fraction, MapCountsLowerBound: tc.lower, MapCountsLowerBoundWhy: tc.why},
			CPU: CPU{Samples: 100, Seconds: 1}}
		var b strings.Builder
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		var got string
		for _, l := range strings.SplitAfter(b.String(), "\n") {
			if strings.HasPrefix(l, "maps: ") || got != "" && strings.HasPrefix(l, "    ") {
				got += l
			} else if got != "" {
				break
			}
		}
		if got != tc.want {
			t.Errorf("fraction %v: %q, want %q", tc.fraction, got, tc.want)
		}
	}
}

func firstLines(s string, n int) string {
	ls := strings.SplitN(s, "\n", n+1)
	return strings.Join(ls[:min(n, len(ls))], "\n")
}

// TestTextHotKeys: keys under 5% of a map's operations are not listed as hot,
// and a map of one-off keys, or of a hundred keys used alike, says it has none.
func TestTextHotKeys(t *testing.T) {
	r := &Report{Version: Version, Overhead: Overhead{MapSamplingFraction: 1}, Maps: []Map{
		{Name: "main.spread", Type: "map[uint64]chan int", KeyType: "uint64", Reads: 9000, Writes: 1000,
			HotKeys: []HotKey{{"4710380653236398450", 3}, {"4710380653236398453", 3}, {OtherKey, 9994}}},
		{Name: "main.skewed", Type: "map[string]int", KeyType: "string", Reads: 9000, Writes: 1000,
			HotKeys: []HotKey{{"region", 4000}, {OtherKey, 5550}, {"zone", 450}}},
		{Name: "main.families", Type: "map[string]int", KeyType: "string", Reads: 6000, Writes: 4000,
			HotKeys: []HotKey{{"net_conntrack_dialer_conn_failed_total", 100}, {"go_goroutines", 100}, {OtherKey, 9800}}},
		// nats-server's: each of four subscribers' clients at 25%.
		{Type: "map[*server.client]struct {}", KeyType: "pointer", Reads: 9600, Writes: 400,
			HotKeys: []HotKey{{"0x14cc0bbec08", 2510}, {"0x14cc0bc0708", 2500}, {"0x14cc0c65608", 2500}, {"0x14cc0c67108", 2490}}},
		// nats-server's subjects: every key listed, one used twice as much as the mean.
		{Type: "map[string]*server.SublistResult", KeyType: "string", Reads: 10000,
			HotKeys: []HotKey{{"bench.0", 4550}, {"bench.2", 2740}, {"bench.3", 1490}, {"bench.1", 1010}, {"$SYS.ACCOUNT.$G.CONN", 210}}},
	}}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no hot key: each has under 5% of the operations", "hot keys: region 40%, other 56%\n",
		"      keys: 0x14cc0bbec08 25%, 0x14cc0bc0708 25%, 0x14cc0c65608 25%, 0x14cc0c67108 25%\n",
		"hot keys: bench.0 46%, bench.2 27%, bench.3 15%, bench.1 10%\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "no hot key"); n != 2 {
		t.Errorf("text report says no hot key for %d maps, want 2:\n%s", n, b.String())
	}
	for _, not := range []string{"4710380653236398450", "zone", "net_conntrack"} {
		if strings.Contains(b.String(), not) {
			t.Errorf("text report lists %q, under 5%% of its map's operations:\n%s", not, b.String())
		}
	}
	r.Maps = []Map{
		// Many keys, the top ones at 5–6% each: none stands out.
		{Type: "map[string]int", KeyType: "string", Reads: 10000,
			HotKeys: []HotKey{{"tenant-a", 560}, {"tenant-b", 520}, {"tenant-c", 500}, {OtherKey, 8420}}},
		// One key only.
		{Type: "map[string]*server.node", KeyType: "string", Reads: 891, HotKeys: []HotKey{{"bench", 891}}},
	}
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"      keys: tenant-a 6%, tenant-b 5%, tenant-c 5%, other 84%\n", "      keys: bench 100%\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestTextSummary: the summary lists the target's problems, by cost or
// class, and not what the findings say about the trace (nats-server's
// third line was "correctness mutex figures are estimates").
func TestTextSummary(t *testing.T) {
	r := &Report{Version: Version, Overhead: Overhead{MapSamplingFraction: 1}, Findings: []Finding{
		{Severity: SeverityCritical, Class: ClassCorrectness, Title: "concurrent map access (write/write) on main.m"},
		{Severity: SeverityWarning, Class: ClassCost, Title: "main.mu: goroutines waited 3.69s for it in 8.0s", CostSeconds: 3.69},
		{Severity: SeverityWarning, Class: ClassRisk, Title: "main.n is written by goroutines in turn"},
		{Severity: SeverityInfo, Class: ClassTracing, Title: "mutex figures are estimates"},
		{Severity: SeverityInfo, Class: ClassNote, Title: "map counts are estimates"},
	}}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	want := "SUMMARY (top problems; cost over the window)\n" +
		"  1. correctness concurrent map access (write/write) on main.m\n" +
		"  2. 3.69s       main.mu: goroutines waited 3.69s for it in 8.0s\n" +
		"  3. risk        main.n is written by goroutines in turn\n\n"
	if !strings.Contains(text, want) {
		t.Errorf("text report lacks\n%s\n%s", want, text)
	}
	if !strings.Contains(text, "[INFO] mutex figures are estimates") {
		t.Errorf("the tracing finding is not among the findings:\n%s", text)
	}
	r.Findings = r.Findings[3:]
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "SUMMARY: nothing costs 1% of the window or more; no race seen\n") {
		t.Errorf("only findings about the trace, but a summary of problems:\n%s", b.String())
	}
}

// TestTextGoroutines: a goroutine's map operations are shown where some were
// seen, and not as "0 map ops" for a waiter whose map operations all fell
// between the map windows (every row of nats-server's, etcd's and Caddy's).
func TestTextGoroutines(t *testing.T) {
	r := &Report{Version: Version, Overhead: Overhead{MapSamplingFraction: 0.008}, Goroutines: []Goroutine{
		{Goid: 99, Contentions: 2070, WaitNS: 899571379},
		{Goid: 9, Contentions: 11, WaitNS: 377614, MapOps: 3056},
	}}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  goroutine 99       waited  899.57ms in   2070 waits\n",
		"  goroutine 9        waited   377.6µs in     11 waits;      3056 map ops\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestLockWrappers: a program's own Lock and Unlock methods, which lock a
// field, are not where to look: etcd's readers wait in readTx.RLock, called
// from backend.ConcurrentReadTx, and batchTxBuffered.commit releases them
// through readTx.Unlock. Nor are net's methods below a file's lock.
func TestLockWrappers(t *testing.T) {
	const pkg = "go.etcd.io/etcd/server/v3/storage/backend"
	m := Mutex{Address: "0xc0001", Kind: KindRWMutexRead, Waiters: []Waiter{{Stack: []string{
		"sync.runtime_SemacquireRWMutexR (/go/src/runtime/sema.go:100)",
		"sync.(*RWMutex).RLock (/go/src/sync/rwmutex.go:72)",
		pkg + ".(*readTx).RLock (/x/read_tx.go:130)",
		pkg + ".(*backend).ConcurrentReadTx (/x/backend.go:270)",
	}}}}
	if got, want := m.Label(), "lock in backend.(*backend).ConcurrentReadTx"; got != want {
		t.Errorf("label %q, want %q", got, want)
	}
	for _, tc := range []struct {
		stack []string
		want  string
	}{
		{[]string{"sync.(*RWMutex).Unlock (/s.go:1)", pkg + ".(*readTx).Unlock (/x/read_tx.go:129)", pkg + ".(*batchTxBuffered).commit (/x/batch_tx.go:358)"},
			pkg + ".(*batchTxBuffered).commit (/x/batch_tx.go:358)"},
		// Wrappers all the way: the last one is where the stack ends.
		{[]string{"sync.(*Mutex).Lock (/s.go:1)", "main.Lock (/m.go:3)"}, "main.Lock (/m.go:3)"},
		// Only a method named so: MyLock is the program's own code.
		{[]string{"sync.(*Mutex).Lock (/s.go:1)", "main.(*T).MyLock (/m.go:3)", "main.run (/m.go:9)"}, "main.(*T).MyLock (/m.go:3)"},
		// A file's lock: the net methods that write the socket are not
		// where to look either, the code that wrote is.
		{[]string{"internal/poll.(*fdMutex).rwlock (/p.go:1)", "internal/poll.(*FD).WriteMsg (/p.go:2)", "net.(*netFD).writeMsg (/n.go:3)",
			"net.(*UDPConn).WriteMsgUDP (/n.go:4)", "github.com/miekg/dns.(*response).WriteMsg (/d.go:5)"},
			"github.com/miekg/dns.(*response).WriteMsg (/d.go:5)"},
		// Without internal/poll below them, net's functions are the code.
		{[]string{"sync.(*Mutex).Lock (/s.go:1)", "net.(*Resolver).lookupIP (/n.go:1)", "main.run (/m.go:9)"}, "net.(*Resolver).lookupIP (/n.go:1)"},
	} {
		if got := UserFrames(tc.stack)[0]; got != tc.want {
			t.Errorf("UserFrames(%q)[0] = %q, want %q", tc.stack, got, tc.want)
		}
	}
}
