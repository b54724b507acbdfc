package live

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/maptrace/maptrace/internal/report"
)

const ms = uint64(time.Millisecond)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func snapshot(seconds float64) *report.Report {
	return &report.Report{
		Version:  report.Version,
		Window:   report.Window{Start: t0, End: t0.Add(time.Duration(seconds * float64(time.Second))), Seconds: seconds},
		Overhead: report.Overhead{MapSamplingFraction: 1, Ratio: 0.0123},
	}
}

func waiter(fn string) []report.Waiter {
	return []report.Waiter{{Stack: []string{"sync.runtime_SemacquireMutex (sema.go:1)", fn + " (x.go:3)"}}}
}

// prevCur: between the snapshots, ordersMu waited 100ms in 10 waits, cfgMu
// (which had waited more before) 20ms, and a new unnamed mutex 300ms;
// the sessions map had 1000 more reads, the cache map 5000 more writes.
func prevCur() (*report.Report, *report.Report) {
	prev := snapshot(5)
	prev.Mutexes = []report.Mutex{
		{Address: "0x1", Name: "github.com/acme/shop/internal/orders.ordersMu", Kind: report.KindMutex, Contentions: 50, WaitNS: 400 * ms},
		{Address: "0x2", Name: "main.cfgMu", Kind: report.KindRWMutexRead, Contentions: 500, WaitNS: 2000 * ms},
	}
	prev.Maps = []report.Map{
		{Address: "0xa", Name: "main.sessions", KeyType: "string", Reads: 9000, Writes: 100,
			HotKeys: []report.HotKey{{Key: "user:1", Count: 100}, {Key: "user:2", Count: 9000}}},
		{Type: "map[int64]int", Class: "main.(*cache).put", Maps: 3, KeyType: "int64", Writes: 100},
	}
	cur := snapshot(10)
	cur.Overhead = report.Overhead{MapSamplingFraction: 0.25, Ratio: 0.031}
	cur.Mutexes = []report.Mutex{
		{Address: "0x2", Name: "main.cfgMu", Kind: report.KindRWMutexRead, Contentions: 502, WaitNS: 2020 * ms},
		{Address: "0x1", Name: "github.com/acme/shop/internal/orders.ordersMu", Kind: report.KindMutex, Contentions: 60, WaitNS: 500 * ms},
		{Address: "0x3", Kind: report.KindMutex, Contentions: 3, WaitNS: 300 * ms, Waiters: waiter("github.com/acme/shop/internal/cache.(*LRU).Get")},
		{Address: "0x4", Name: "main.idle", Kind: report.KindMutex, Contentions: 7, WaitNS: 7 * ms}, // nothing new: 0x4 is new, so all of it is
	}
	cur.Maps = []report.Map{
		{Type: "map[int64]int", Class: "main.(*cache).put", Maps: 3, KeyType: "int64", Writes: 5100,
			Sites: []report.Site{{Stack: []string{"runtime.mapassign_fast64 (map.go:1)", "main.(*cache).put (c.go:9)"}, Op: report.OpWrite}}},
		{Address: "0xa", Name: "main.sessions", KeyType: "string", Reads: 10000, Writes: 100,
			HotKeys: []report.HotKey{{Key: "user:1", Count: 700}, {Key: "user:2", Count: 9400}}},
	}
	return prev, cur
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestSummary(t *testing.T) {
	prev, cur := prevCur()
	var b bytes.Buffer
	Summary(&b, prev, cur, false)
	got := b.String()
	want := `── maptrace 12:00:10 · last 5.0s of 10.0s · probes cost 3.10% · maps sampled 25% (counts scaled) ───
  MUTEX (top by wait in the interval)      KIND             WAITS     WAITED       AVG
  lock in cache.(*LRU).Get                 mutex                3   300.00ms  100.00ms
  orders.ordersMu                          mutex               10   100.00ms   10.00ms
  main.cfgMu                               rwmutex-read         2    20.00ms   10.00ms
  main.idle                                mutex                7     7.00ms    1.00ms
  MAP (top by ops in the interval) KEY        READS    WRITES DELETES  RANGES  TOP KEY
  map[int64]int maps from main.(*… int64          0      5000       0       0
  main.sessions                    string      1000         0       0       0  user:1 60%
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "\x1b") {
		t.Error("colour codes without color")
	}
	checkWidth(t, got)
}

func TestSummaryFirstIntervalRacesAndDeath(t *testing.T) {
	_, cur := prevCur()
	cur.TargetError = "concurrent map writes"
	cur.Races = []report.Race{
		{Map: "0xb", Kind: "write/write", Count: 2},
		{Map: "0xa", Name: "main.sessions", Kind: "read/write", Count: 1},
	}
	var b bytes.Buffer
	Summary(&b, nil, cur, false)
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[0], "── maptrace 12:00:10 · last 10.0s of 10.0s ·") {
		t.Errorf("header %q", lines[0])
	}
	if lines[1] != "TARGET DIED: fatal error: concurrent map writes" {
		t.Errorf("line 2 %q", lines[1])
	}
	if lines[2] != "RACES: 3 so far (3 new): write/write 0xb ×2; read/write main.sessions ×1" {
		t.Errorf("line 3 %q", lines[2])
	}
	// With no previous snapshot, the interval is the whole trace.
	if !strings.Contains(b.String(), "orders.ordersMu                          mutex               60   500.00ms") {
		t.Errorf("cumulative counts expected in the first interval:\n%s", b.String())
	}
	checkWidth(t, b.String())

	// A second summary: no new race.
	prev := cur
	_, cur2 := prevCur()
	cur2.Races = prev.Races
	b.Reset()
	Summary(&b, prev, cur2, false)
	if !strings.Contains(b.String(), "RACES: 3 so far (0 new)") {
		t.Errorf("no new races expected:\n%s", b.String())
	}
}

func TestSummaryQuiet(t *testing.T) {
	prev, _ := prevCur()
	cur := *prev
	cur.Window.Seconds, cur.Window.End = 6, t0.Add(6*time.Second)
	var b bytes.Buffer
	Summary(&b, prev, &cur, false)
	want := `── maptrace 12:00:06 · last 1.0s of 6.0s · probes cost 1.23% · maps: every op ──────────────────────
  mutexes: no waits in this interval
  maps: no operations seen in this interval
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	Summary(&b, nil, nil, false)
	if b.Len() != 0 {
		t.Errorf("nil snapshot wrote %q", b.String())
	}
}

func TestSummaryColor(t *testing.T) {
	prev, cur := prevCur()
	cur.Races = []report.Race{{Map: "0xb", Kind: "write/write", Count: 1}}
	var plain, colored bytes.Buffer
	Summary(&plain, prev, cur, false)
	Summary(&colored, prev, cur, true)
	if !strings.Contains(colored.String(), red) || !strings.Contains(colored.String(), bold) {
		t.Errorf("no colours:\n%q", colored.String())
	}
	// The long wait (0x3: 300ms of a 5s interval is under 10%, none is) is
	// not highlighted; a wait over 10% of the interval is.
	if strings.Contains(colored.String(), yellow) {
		t.Errorf("nothing should be yellow:\n%q", colored.String())
	}
	if got := ansi.ReplaceAllString(colored.String(), ""); got != plain.String() {
		t.Errorf("colour changed the text:\n%s\nvs\n%s", got, plain.String())
	}
	cur.Mutexes[2].WaitNS = 900 * ms
	colored.Reset()
	Summary(&colored, prev, cur, true)
	if !strings.Contains(colored.String(), yellow+"  lock in cache.(*LRU).Get") {
		t.Errorf("long wait not highlighted:\n%q", colored.String())
	}
}

func TestSummaryClipsLongNames(t *testing.T) {
	prev, cur := prevCur()
	long := "main." + strings.Repeat("veryLongVariableName", 8)
	cur.Mutexes[0].Name, prev.Mutexes[1].Name = long, long
	cur.Maps[1].Name, prev.Maps[0].Name = long, long
	cur.Maps[1].HotKeys[0].Key, prev.Maps[0].HotKeys[0].Key = strings.Repeat("k", 80), strings.Repeat("k", 80)
	cur.TargetError = strings.Repeat("x", 200)
	var b bytes.Buffer
	Summary(&b, prev, cur, true)
	checkWidth(t, ansi.ReplaceAllString(b.String(), ""))
}

func checkWidth(t *testing.T, s string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if n := utf8.RuneCountInString(l); n > Width {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
}
