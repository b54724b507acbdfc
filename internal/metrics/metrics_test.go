package metrics

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maptrace/maptrace/internal/report"
)

// fakeSource serves a fixed report and counts the snapshots taken.
type fakeSource struct {
	mu    sync.Mutex
	r     *report.Report
	err   error
	calls int
}

func (f *fakeSource) Snapshot() (*report.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.r, f.err
}

// HashedKey marks the key rather than hash it, so tests can see which was.
func (f *fakeSource) HashedKey(key string) string { return "h:" + key }

// scrape serves one /metrics request and parses the text exposition.
func scrape(t *testing.T, h http.Handler) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams, body
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func matches(m *dto.Metric, want map[string]string) bool {
	got := labelsOf(m)
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// find returns the one metric of family name with exactly these labels.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, lbl map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
	var found *dto.Metric
	for _, m := range f.GetMetric() {
		if matches(m, lbl) {
			if found != nil {
				t.Fatalf("%s%v: two series", name, lbl)
			}
			found = m
		}
	}
	if found == nil {
		var have []string
		for _, m := range f.GetMetric() {
			have = append(have, fmt.Sprint(labelsOf(m)))
		}
		t.Fatalf("%s%v: no such series; have %s", name, lbl, strings.Join(have, " "))
	}
	return found
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, lbl map[string]string) float64 {
	t.Helper()
	m := find(t, fams, name, lbl)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither counter nor gauge", name, lbl)
	return 0
}

func sumOf(fams map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return s
}

func count(fams map[string]*dto.MetricFamily, name string) int {
	if f := fams[name]; f != nil {
		return len(f.GetMetric())
	}
	return 0
}

func eq(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func hist(n int, at map[int]uint64) []uint64 {
	h := make([]uint64, n)
	for i, c := range at {
		h[i] = c
	}
	return h
}

func stack(user ...string) []string {
	s := []string{"runtime.semacquire1 (sema.go:160)", "internal/sync.(*Mutex).lockSlow (mutex.go:149)", "sync.(*Mutex).Lock (mutex.go:46)"}
	for _, f := range user {
		s = append(s, f+" (main.go:10)")
	}
	return s
}

// sample is a small report with one of everything.
func sample() *report.Report {
	return &report.Report{
		Version: report.Version,
		Target:  report.Target{PID: 4242, Exe: "/srv/bin/app", GoVersion: "go1.26.8", Arch: "amd64"},
		Overhead: report.Overhead{ProbeHits: 1234, EstCostSeconds: 0.01, MapSamplingFraction: 0.25,
			HitCostNS: 80, Ratio: 0.015},
		Mutexes: []report.Mutex{
			{
				Address: "0xc000010000", Name: "main.mu", Kind: report.KindMutex,
				Contentions: 3, WaitNS: 7000, MaxWaitNS: 4000,
				Waiters: []report.Waiter{
					{Stack: stack("main.small", "main.main"), Contentions: 1, WaitNS: 1000},
					{Stack: stack("main.lockMutex", "main.main.func1"), Contentions: 2, WaitNS: 6000},
				},
				Histogram: hist(40, map[int]uint64{10: 2, 12: 1}),
			},
			{
				Address: "0xc0000a0000", Kind: report.KindRWMutexWrite,
				Contentions: 5, WaitNS: 3_000_000_000,
				Waiters:   []report.Waiter{{Stack: stack("main.(*Store).Put", "main.main"), Contentions: 5, WaitNS: 3e9}},
				Histogram: hist(40, map[int]uint64{0: 1, 29: 4}),
			},
		},
		Maps: []report.Map{
			{
				Address: "0xc000100000", Name: "main.sessions", KeyType: "string",
				Reads: 1000, Writes: 200, Deletes: 30, Iterations: 4, Goroutines: 8, CPUSeconds: 0.75,
				HotKeys: []report.HotKey{{Key: "user:42", Count: 500}, {Key: "other", Count: 77}, {Key: "user:7", Count: 100}},
			},
			{Address: "0xc000200000", KeyType: "int64", Reads: 5, Writes: 1},
		},
		CPU: report.CPU{Hz: 99, Seconds: 3.5, MapSeconds: 0.75},
		Races: []report.Race{
			{Map: "0xc000100000", Name: "main.sessions", Kind: "write/write", Count: 2,
				Sides: []report.RaceSide{{Goid: 17, Op: "write"}, {Goid: 18, Op: "write"}}},
			{Map: "0xc000200000", Kind: "read/write", Count: 1,
				Sides: []report.RaceSide{{Goid: 19, Op: "read"}, {Goid: 20, Op: "write"}}},
		},
		Findings: []report.Finding{
			{Severity: report.SeverityCritical, Title: "concurrent map writes"},
			{Severity: report.SeverityWarning, Title: "a"},
			{Severity: report.SeverityWarning, Title: "b"},
		},
		Goroutines: []report.Goroutine{{Goid: 17, Contentions: 3, WaitNS: 7000}},
	}
}

func TestMetricsValues(t *testing.T) {
	fams, body := scrape(t, NewHandler(&fakeSource{r: sample()}, "raw"))

	eq(t, "up", value(t, fams, "maptrace_target_up", nil), 1)
	eq(t, "target_info", value(t, fams, "maptrace_target_info", map[string]string{"exe": "/srv/bin/app", "go_version": "go1.26.8"}), 1)
	eq(t, "probe hits", value(t, fams, "maptrace_probe_hits_total", map[string]string{"probe": "all"}), 1234)
	eq(t, "overhead", value(t, fams, "maptrace_overhead_ratio", nil), 0.015)
	eq(t, "sampling", value(t, fams, "maptrace_map_sampling_fraction", nil), 0.25)
	eq(t, "critical findings", value(t, fams, "maptrace_findings", map[string]string{"severity": "critical"}), 1)
	eq(t, "warning findings", value(t, fams, "maptrace_findings", map[string]string{"severity": "warning"}), 2)
	eq(t, "info findings", value(t, fams, "maptrace_findings", map[string]string{"severity": "info"}), 0)

	// mutexes: site is the top waiter's (most wait) first frame outside runtime/sync
	mu := map[string]string{"mutex": "main.mu", "kind": "mutex", "site": "main.lockMutex"}
	eq(t, "main.mu contentions", value(t, fams, "maptrace_mutex_contentions_total", mu), 3)
	h := find(t, fams, "maptrace_mutex_wait_seconds", mu).GetHistogram()
	if h == nil {
		t.Fatal("maptrace_mutex_wait_seconds is not a histogram")
	}
	eq(t, "main.mu wait sum", h.GetSampleSum(), 7000e-9)
	if h.GetSampleCount() != 3 {
		t.Errorf("main.mu wait count = %d, want 3", h.GetSampleCount())
	}
	if len(h.GetBucket()) != 41 {
		t.Errorf("%d buckets, want 40 (one per log2 bucket) and +Inf", len(h.GetBucket()))
	}
	// bucket i holds [2^i, 2^(i+1)) ns: le = 2^(i+1) ns, cumulative
	for _, b := range h.GetBucket() {
		le := b.GetUpperBound()
		if math.IsInf(le, 1) {
			if b.GetCumulativeCount() != 3 {
				t.Errorf("main.mu +Inf bucket = %d, want 3", b.GetCumulativeCount())
			}
			continue
		}
		i := int(math.Round(math.Log2(le*1e9))) - 1
		eq(t, "bucket bound", le, math.Ldexp(1, i+1)/1e9)
		var want uint64
		switch {
		case i >= 12:
			want = 3
		case i >= 10:
			want = 2
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("main.mu bucket le=%g (i=%d) = %d, want %d", le, i, b.GetCumulativeCount(), want)
		}
	}
	rw := map[string]string{"mutex": "0xc0000a0000", "kind": "rwmutex-write", "site": "main.(*Store).Put"}
	eq(t, "rw contentions", value(t, fams, "maptrace_mutex_contentions_total", rw), 5)
	h = find(t, fams, "maptrace_mutex_wait_seconds", rw).GetHistogram()
	eq(t, "rw wait sum", h.GetSampleSum(), 3)
	for _, b := range h.GetBucket() {
		var want uint64
		switch le := b.GetUpperBound(); {
		case le >= math.Ldexp(1, 30)/1e9:
			want = 5
		case le >= 2e-9:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("rw bucket le=%g = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if !strings.Contains(body, `le="2e-09"`) || !strings.Contains(body, `le="1.073741824"`) {
		t.Errorf("exposition lacks the bounds 2ns and 2^30ns:\n%s", body)
	}

	// maps
	for op, n := range map[string]float64{"read": 1000, "write": 200, "delete": 30, "iterate": 4} {
		eq(t, "sessions "+op, value(t, fams, "maptrace_map_ops_total", map[string]string{"map": "main.sessions", "op": op}), n)
	}
	eq(t, "anon map reads", value(t, fams, "maptrace_map_ops_total", map[string]string{"map": "0xc000200000", "op": "read"}), 5)
	eq(t, "anon map iterate", value(t, fams, "maptrace_map_ops_total", map[string]string{"map": "0xc000200000", "op": "iterate"}), 0)
	eq(t, "hot key", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": "main.sessions", "key": "user:42"}), 500)
	eq(t, "hot key 2", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": "main.sessions", "key": "user:7"}), 100)
	eq(t, "other keys", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": "main.sessions", "key": "other"}), 77)

	// CPU: the target's, and each map's
	eq(t, "target cpu", value(t, fams, "maptrace_target_cpu_seconds_total", nil), 3.5)
	eq(t, "sessions cpu", value(t, fams, "maptrace_map_cpu_seconds_total", map[string]string{"map": "main.sessions"}), 0.75)
	eq(t, "anon map cpu", value(t, fams, "maptrace_map_cpu_seconds_total", map[string]string{"map": "0xc000200000"}), 0)

	// races, by map name (else address) and kind
	eq(t, "races ww", value(t, fams, "maptrace_map_races_total", map[string]string{"map": "main.sessions", "kind": "write/write"}), 2)
	eq(t, "races rw", value(t, fams, "maptrace_map_races_total", map[string]string{"map": "0xc000200000", "kind": "read/write"}), 1)

	assertNoIDs(t, fams)
	lint(t, body)
}

// assertNoIDs checks that no label names a process or goroutine.
func assertNoIDs(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name, f := range fams {
		if !strings.HasPrefix(name, "maptrace_") {
			t.Errorf("metric %s lacks the maptrace_ prefix", name)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				n := strings.ToLower(l.GetName())
				if strings.Contains(n, "pid") || strings.Contains(n, "goid") || strings.Contains(n, "goroutine") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
				if l.GetValue() == "4242" {
					t.Errorf("%s has the pid as label %s", name, l.GetName())
				}
			}
		}
	}
}

// lint runs client_golang's metric linter over the exposition.
func lint(t *testing.T, body string) {
	t.Helper()
	probs, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestKeysNone(t *testing.T) {
	fams, _ := scrape(t, NewHandler(&fakeSource{r: sample()}, "none"))
	if n := count(fams, "maptrace_map_hot_key_ops_total"); n != 0 {
		t.Errorf("--keys none: %d hot key series", n)
	}
	if n := count(fams, "maptrace_map_ops_total"); n != 8 {
		t.Errorf("%d map op series, want 8", n)
	}
}

// TestKeysHashed checks that /metrics hashes keys unless told raw: a report's
// raw keys go through the source's hash, "other" stays as it is.
func TestKeysHashed(t *testing.T) {
	for _, mode := range []string{KeysHash, ""} {
		fams, body := scrape(t, NewHandler(&fakeSource{r: sample()}, mode))
		for _, want := range []struct {
			key string
			n   float64
		}{{"h:user:42", 500}, {"h:user:7", 100}, {Other, 77}} {
			eq(t, fmt.Sprintf("mode %q key %s", mode, want.key), value(t, fams, "maptrace_map_hot_key_ops_total",
				map[string]string{"map": "main.sessions", "key": want.key}), want.n)
		}
		if strings.Contains(body, `key="user:`) {
			t.Errorf("mode %q: a raw key on /metrics:\n%s", mode, body)
		}
	}
}

func TestEmptyReport(t *testing.T) {
	fams, body := scrape(t, NewHandler(&fakeSource{r: &report.Report{Overhead: report.Overhead{MapSamplingFraction: 1}}}, "raw"))
	eq(t, "up", value(t, fams, "maptrace_target_up", nil), 1)
	eq(t, "sampling", value(t, fams, "maptrace_map_sampling_fraction", nil), 1)
	eq(t, "info findings", value(t, fams, "maptrace_findings", map[string]string{"severity": "info"}), 0)
	for _, n := range []string{"maptrace_mutex_wait_seconds", "maptrace_map_ops_total", "maptrace_map_races_total"} {
		if count(fams, n) != 0 {
			t.Errorf("empty report has %s", n)
		}
	}
	lint(t, body)
}

func TestSnapshotError(t *testing.T) {
	src := &fakeSource{r: sample(), err: errors.New("read map stats: boom")}
	fams, _ := scrape(t, NewHandler(src, "raw"))
	eq(t, "up", value(t, fams, "maptrace_target_up", nil), 0)
	if len(fams) != 1 {
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		t.Errorf("a failed snapshot exports %v, want maptrace_target_up only", names)
	}
}

func TestSnapshotCached(t *testing.T) {
	src := &fakeSource{r: sample()}
	c := newCollector(src, "raw")
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	h := c.handler()
	scrape(t, h)
	scrape(t, h)
	now = now.Add(999 * time.Millisecond)
	scrape(t, h)
	if src.calls != 1 {
		t.Errorf("3 scrapes within a second took %d snapshots, want 1", src.calls)
	}
	now = now.Add(time.Millisecond)
	scrape(t, h)
	if src.calls != 2 {
		t.Errorf("a scrape a second later took %d snapshots in all, want 2", src.calls)
	}
}

// TestCardinality checks the top-K bounds and that folding into "other"
// keeps every sum.
func TestCardinality(t *testing.T) {
	kinds := []string{report.KindMutex, report.KindRWMutexRead, report.KindRWMutexWrite}
	r := &report.Report{Target: report.Target{PID: 99, Exe: "/x", GoVersion: "go1.26.8"}, Overhead: report.Overhead{MapSamplingFraction: 1}}
	var wantCont, wantWaitNS, wantHist uint64
	for i := range 50 {
		m := report.Mutex{
			Address:     fmt.Sprintf("0xc%09x", i*64),
			Kind:        kinds[i%3],
			Contentions: uint64(i + 1),
			WaitNS:      uint64(1000 * (i + 1)), // mutex 49 waits most
			Waiters:     []report.Waiter{{Stack: stack(fmt.Sprintf("main.worker%d", i)), Contentions: uint64(i + 1), WaitNS: uint64(1000 * (i + 1))}},
			Histogram:   hist(40, map[int]uint64{i % 40: uint64(i + 1)}),
		}
		if i%2 == 0 {
			m.Name = fmt.Sprintf("main.mu%d", i)
		}
		wantCont += m.Contentions
		wantWaitNS += m.WaitNS
		wantHist += m.Contentions
		r.Mutexes = append(r.Mutexes, m)
	}
	var wantOps, wantKeys float64
	for i := range 50 {
		m := report.Map{Address: fmt.Sprintf("0xd%09x", i*64), Reads: uint64(10 * (i + 1)), Writes: uint64(i), Deletes: 1, Iterations: 2}
		for k := range 15 {
			m.HotKeys = append(m.HotKeys, report.HotKey{Key: fmt.Sprintf("k%d", k), Count: uint64(100 - k)})
		}
		m.HotKeys = append(m.HotKeys, report.HotKey{Key: "other", Count: 5})
		for _, k := range m.HotKeys {
			wantKeys += float64(k.Count)
		}
		wantOps += float64(m.Reads + m.Writes + m.Deletes + m.Iterations)
		r.Maps = append(r.Maps, m)
		r.Races = append(r.Races, report.Race{Map: m.Address, Kind: "write/write", Count: uint64(i + 1)},
			report.Race{Map: m.Address, Kind: "read/write", Count: 1})
	}
	// the source's order must not matter: shuffle it
	sort.Slice(r.Mutexes, func(i, j int) bool { return r.Mutexes[i].Address > r.Mutexes[j].Address })

	fams, body := scrape(t, NewHandler(&fakeSource{r: r}, "raw"))

	// mutexes: the 20 with the most wait, plus other per kind
	if n := count(fams, "maptrace_mutex_contentions_total"); n != TopMutexes+3 {
		t.Errorf("%d mutex series, want %d", n, TopMutexes+3)
	}
	if n := count(fams, "maptrace_mutex_wait_seconds"); n != TopMutexes+3 {
		t.Errorf("%d mutex wait series, want %d", n, TopMutexes+3)
	}
	eq(t, "contentions sum", sumOf(fams, "maptrace_mutex_contentions_total"), float64(wantCont))
	var sum float64
	var cnt uint64
	var inf uint64
	for _, m := range fams["maptrace_mutex_wait_seconds"].GetMetric() {
		h := m.GetHistogram()
		sum += h.GetSampleSum()
		cnt += h.GetSampleCount()
		b := h.GetBucket()
		inf += b[len(b)-1].GetCumulativeCount()
		l := labelsOf(m)
		if l["mutex"] == Other {
			if l["site"] != Other {
				t.Errorf("folded mutexes have site %q", l["site"])
			}
			continue
		}
		// top 20 are mutexes 30..49
		var i int
		if _, err := fmt.Sscanf(l["site"], "main.worker%d", &i); err != nil || i < 30 {
			t.Errorf("series %v is not one of the top 20 by wait", l)
		}
	}
	eq(t, "wait sum", sum, float64(wantWaitNS)/1e9)
	if cnt != wantCont || inf != wantHist {
		t.Errorf("histogram count %d, top buckets %d; want %d, %d", cnt, inf, wantCont, wantHist)
	}
	// other, kind mutex: mutexes 0..29 with i%3==0
	var otherMutex float64
	for i := 0; i < 30; i += 3 {
		otherMutex += float64(i + 1)
	}
	eq(t, "other mutex contentions", value(t, fams, "maptrace_mutex_contentions_total",
		map[string]string{"mutex": Other, "kind": "mutex", "site": Other}), otherMutex)

	// maps: 20 maps × 4 ops plus other × 4
	if n := count(fams, "maptrace_map_ops_total"); n != (TopMaps+1)*4 {
		t.Errorf("%d map op series, want %d", n, (TopMaps+1)*4)
	}
	eq(t, "map ops sum", sumOf(fams, "maptrace_map_ops_total"), wantOps)
	// keys: 10 per top map plus other, and other/other for the folded maps
	if n := count(fams, "maptrace_map_hot_key_ops_total"); n != TopMaps*(TopKeys+1)+1 {
		t.Errorf("%d hot key series, want %d", n, TopMaps*(TopKeys+1)+1)
	}
	eq(t, "hot key sum", sumOf(fams, "maptrace_map_hot_key_ops_total"), wantKeys)
	top := fmt.Sprintf("0xd%09x", 49*64)
	eq(t, "top map's other keys", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": top, "key": Other}), 5+90+89+88+87+86)
	eq(t, "top map's key k9", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": top, "key": "k9"}), 91)
	// races: 20 maps × 2 kinds plus other × 2
	if n := count(fams, "maptrace_map_races_total"); n != (TopRaces+1)*2 {
		t.Errorf("%d race series, want %d", n, (TopRaces+1)*2)
	}
	eq(t, "race sum", sumOf(fams, "maptrace_map_races_total"), float64(50*51/2+50))

	assertNoIDs(t, fams)
	lint(t, body)
	if n := strings.Count(body, "\nmaptrace_"); n > 2000 {
		t.Errorf("%d sample lines", n)
	}
}

func TestInvalidUTF8Key(t *testing.T) {
	r := sample()
	r.Maps[0].HotKeys = append(r.Maps[0].HotKeys, report.HotKey{Key: "\xff\xfe", Count: 1})
	fams, _ := scrape(t, NewHandler(&fakeSource{r: r}, "raw"))
	eq(t, "bad key", value(t, fams, "maptrace_map_hot_key_ops_total", map[string]string{"map": "main.sessions", "key": "\uFFFD"}), 1)
}

func TestSite(t *testing.T) {
	for _, tc := range []struct {
		m    report.Mutex
		want string
	}{
		{report.Mutex{}, ""},
		{report.Mutex{Waiters: []report.Waiter{{Stack: stack("main.f")}}}, "main.f"},
		{report.Mutex{Waiters: []report.Waiter{{Stack: []string{"runtime.semacquire1 (sema.go:1)"}}}}, "runtime.semacquire1"},
		{report.Mutex{Waiters: []report.Waiter{{Stack: stack("main.(*T).g", "main.main"), WaitNS: 1}}}, "main.(*T).g"},
	} {
		if got := Site(tc.m); got != tc.want {
			t.Errorf("Site(%v) = %q, want %q", tc.m.Waiters, got, tc.want)
		}
	}
}

// TestShardGauges: a sharded map has its shard count and imbalance; a plain
// map has neither.
func TestShardGauges(t *testing.T) {
	r := sample()
	r.Maps = append(r.Maps, report.Map{Kind: report.KindSharded, Class: "main.(*shards).set", Type: "map[string]int", Maps: 16,
		Reads: 700, Writes: 300, Sharded: &report.Sharded{Imbalance: 8.5, HotKey: "hot"}})
	fams, _ := scrape(t, NewHandler(&fakeSource{r: r}, "raw"))
	sharded := map[string]string{"map": "map[string]int from main.(*shards).set"}
	eq(t, "shards", value(t, fams, "maptrace_map_shards", sharded), 16)
	eq(t, "imbalance", value(t, fams, "maptrace_map_shard_imbalance", sharded), 8.5)
	for _, name := range []string{"maptrace_map_shards", "maptrace_map_shard_imbalance"} {
		if n := len(fams[name].GetMetric()); n != 1 {
			t.Errorf("%s: %d series, want the sharded map's only", name, n)
		}
	}
}
