package profiles

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/maptrace/maptrace/internal/report"
)

// sample is a small report with two mutexes (one unnamed), two maps (one
// unnamed) and frames the tracer could not symbolize.
func sample() *report.Report {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &report.Report{
		Version: report.Version,
		Target:  report.Target{PID: 4242, Exe: "/srv/bin/shop", GoVersion: "go1.26.8", Arch: "amd64"},
		Window:  report.Window{Start: start, End: start.Add(10 * time.Second), Seconds: 10},
		EndedBy: report.EndedByDuration,
		Mutexes: []report.Mutex{
			{
				Address: "0xc000010000", Name: "main.cacheMu", Kind: report.KindMutex,
				Contentions: 7, WaitNS: 9000,
				Waiters: []report.Waiter{
					{Stack: []string{"sync.(*Mutex).Lock (sync/mutex.go:90)", "main.getCached (/src/shop/cache.go:31)", "main.handle (/src/shop/main.go:12)"}, Contentions: 5, WaitNS: 6000},
					{Stack: []string{"sync.(*Mutex).Lock (sync/mutex.go:90)", "main.putCached (/src/shop/cache.go:44)", "main.handle (/src/shop/main.go:14)"}, Contentions: 2, WaitNS: 3000},
				},
				Holders: []report.Holder{
					{Stack: []string{"sync.(*Mutex).Unlock (sync/mutex.go:210)", "main.refresh (/src/shop/cache.go:60)"}, Count: 4},
				},
			},
			{
				Address: "0xc000020000", Kind: report.KindRWMutexWrite, Contentions: 1, WaitNS: 500,
				Waiters: []report.Waiter{{Stack: []string{"?", "0x4a1b2c", "main.flush;now (/src/shop/io.go:7)"}, Contentions: 1, WaitNS: 500}},
			},
		},
		Maps: []report.Map{
			{
				Address: "0xc000abc000", Name: "main.sessions", KeyType: "string", Reads: 30, Writes: 3,
				Sites: []report.Site{
					{Stack: []string{"runtime.mapaccess1_faststr (runtime/map_faststr.go:13)", "main.lookup (/src/shop/session.go:20)"}, Op: report.OpRead, Count: 30},
					{Stack: []string{"runtime.mapassign_faststr (runtime/map_faststr.go:200)", "main.login (/src/shop/session.go:40)"}, Op: report.OpWrite, Count: 3},
				},
			},
			{Address: "0xc000def000", KeyType: "int64", Deletes: 2,
				Sites: []report.Site{{Stack: []string{"runtime.mapdelete_fast64 (runtime/map_fast64.go:90)", "main.evict (/src/shop/cache.go:80)"}, Op: report.OpDelete, Count: 2}}},
		},
	}
}

func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		frame, name, file string
		line              int64
	}{
		{"main.(*T).run (/a/b.go:12)", "main.(*T).run", "/a/b.go", 12},
		{"main.f.func1 (C:/x y/b.go:3)", "main.f.func1", "C:/x y/b.go", 3},
		{"?", "?", "", 0},
		{"0x4a1b2c", "0x4a1b2c", "", 0},
		{"main.f (b.go)", "main.f", "b.go", 0},
	} {
		name, file, line := parseFrame(tc.frame)
		if name != tc.name || file != tc.file || line != tc.line {
			t.Errorf("parseFrame(%q) = %q, %q, %d; want %q, %q, %d", tc.frame, name, file, line, tc.name, tc.file, tc.line)
		}
	}
}

func TestWritePprof(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := WritePprof(&buf, r); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := valueTypes(p.SampleType); got != "contentions/count delay/nanoseconds" {
		t.Errorf("sample types = %s", got)
	}
	var contentions, delay, wantContentions, wantDelay int64
	for _, m := range r.Mutexes {
		for _, w := range m.Waiters {
			wantContentions += int64(w.Contentions)
			wantDelay += int64(w.WaitNS)
		}
	}
	labels := map[string]bool{}
	for _, s := range p.Sample {
		contentions += s.Value[0]
		delay += s.Value[1]
		labels[s.Label["mutex"][0]+"/"+s.Label["kind"][0]] = true
	}
	if contentions != wantContentions || delay != wantDelay {
		t.Errorf("totals = %d contentions, %d ns; want %d, %d", contentions, delay, wantContentions, wantDelay)
	}
	for _, l := range []string{"main.cacheMu/mutex", "0xc000020000/rwmutex-write"} {
		if !labels[l] {
			t.Errorf("no sample labelled %s; have %v", l, labels)
		}
	}
	// The Lock frame is shared by two stacks and must be one location.
	if len(p.Location) != 8 {
		t.Errorf("%d locations, want 8 (one per distinct frame)", len(p.Location))
	}
	leaf := p.Sample[0].Location[0].Line[0]
	if leaf.Function.Name != "sync.(*Mutex).Lock" || leaf.Function.Filename != "sync/mutex.go" || leaf.Line != 90 {
		t.Errorf("leaf = %s %s:%d", leaf.Function.Name, leaf.Function.Filename, leaf.Line)
	}

	out := pprofTop(t, buf.Bytes())
	for _, want := range []string{"sync.(*Mutex).Lock", "main.flush;now", "0x4a1b2c"} {
		if !strings.Contains(out, want) {
			t.Errorf("go tool pprof -top does not show %q:\n%s", want, out)
		}
	}
}

func TestWritePprofMaps(t *testing.T) {
	r := sample()
	r.Overhead.MapSamplingFraction = 0.25
	var buf bytes.Buffer
	if err := WritePprofMaps(&buf, r); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := valueTypes(p.SampleType); got != "ops/count" {
		t.Errorf("sample types = %s", got)
	}
	ops := map[string]int64{}
	for _, s := range p.Sample {
		ops[s.Label["map"][0]+"/"+s.Label["op"][0]] += s.Value[0]
	}
	want := map[string]int64{"main.sessions/read": 30, "main.sessions/write": 3, "0xc000def000/delete": 2}
	if len(ops) != len(want) {
		t.Errorf("ops = %v, want %v", ops, want)
	}
	for k, v := range want {
		if ops[k] != v {
			t.Errorf("ops[%s] = %d, want %d", k, ops[k], v)
		}
	}
	if len(p.Comments) != 1 || !strings.Contains(p.Comments[0], "0.25") {
		t.Errorf("comments = %q, want the sampling fraction", p.Comments)
	}
	if out := pprofTop(t, buf.Bytes()); !strings.Contains(out, "runtime.mapaccess1_faststr") {
		t.Errorf("go tool pprof -top does not show the leaf:\n%s", out)
	}
}

func TestWriteFolded(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFolded(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	want := `map:0xc000def000;main.evict (/src/shop/cache.go:80);runtime.mapdelete_fast64 (runtime/map_fast64.go:90) 2
map:main.sessions;main.login (/src/shop/session.go:40);runtime.mapassign_faststr (runtime/map_faststr.go:200) 3
map:main.sessions;main.lookup (/src/shop/session.go:20);runtime.mapaccess1_faststr (runtime/map_faststr.go:13) 30
mutex:0xc000020000;main.flush,now (/src/shop/io.go:7);0x4a1b2c;? 500
mutex:main.cacheMu;main.handle (/src/shop/main.go:12);main.getCached (/src/shop/cache.go:31);sync.(*Mutex).Lock (sync/mutex.go:90) 6000
mutex:main.cacheMu;main.handle (/src/shop/main.go:14);main.putCached (/src/shop/cache.go:44);sync.(*Mutex).Lock (sync/mutex.go:90) 3000
`
	if got := buf.String(); got != want {
		t.Errorf("folded:\n%s\nwant:\n%s", got, want)
	}

	buf.Reset()
	if err := WriteFolded(&buf, &report.Report{}); err != nil || buf.Len() != 0 {
		t.Errorf("empty report: %q, %v; want nothing", buf.String(), err)
	}
}

func TestWriteFlamegraph(t *testing.T) {
	r := sample()
	r.Maps = nil // the map section must say "no data"
	dom := renderDOM(t, r)
	for _, want := range []string{
		"<title>maptrace: /srv/bin/shop (pid 4242, go1.26.8)</title>",
		"2026-03-01T12:00:00Z – 2026-03-01T12:00:10Z (10s)",
		"Mutex waiters", "Mutex holders", "Map operations",
		// Rendered frames: an SVG group with a <title> tooltip (value and share), a rect and a label.
		"<title>sync.(*Mutex).Lock (sync/mutex.go:90)\n6.00 µs (63.16% of total)</title><rect",
		"<title>main.refresh (/src/shop/cache.go:60)\n4 hand-offs (100.00% of total)</title><rect",
		"<title>?\n500 ns (5.26% of total)</title><rect",
		`<text x="`, ">sync.(*Mutex).Lock (sync/mutex.go:90)</text>",
		`<p class="nodata">no data</p>`,
		"Reset zoom",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	if n := strings.Count(dom, "<rect"); n < 12 {
		t.Errorf("%d rects rendered, want a frame for every node", n)
	}

	dom = renderDOM(t, &report.Report{})
	if n := strings.Count(dom, `<p class="nodata">no data</p>`); n != 3 {
		t.Errorf("empty report: %d sections say no data, want 3", n)
	}
}

func valueTypes(vts []*profile.ValueType) string {
	var s []string
	for _, vt := range vts {
		s = append(s, vt.Type+"/"+vt.Unit)
	}
	return strings.Join(s, " ")
}

// pprofTop runs go tool pprof -top on a profile, as a user would.
func pprofTop(t *testing.T, prof []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "profile.pb.gz")
	if err := os.WriteFile(file, prof, 0o644); err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run go tool pprof")
	}
	cmd := exec.Command(goBin, "tool", "pprof", "-top", file)
	cmd.Env = append(os.Environ(), "PPROF_TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	return string(out)
}

// renderDOM writes the flame graph page and returns its DOM after its
// scripts ran in headless Chromium, which is what a user's browser shows.
func renderDOM(t *testing.T, r *report.Report) string {
	t.Helper()
	chromium := findChromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "flamegraph.html")
	var buf bytes.Buffer
	if err := WriteFlamegraph(&buf, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,900",
		"--dump-dom", "file://"+page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --dump-dom: %v\n%s", chromium, err, stderr.Bytes())
	}
	return string(out)
}

// findChromium fails rather than skips: CI installs Chromium, so a missing
// browser is a broken environment, not an optional check.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is needed to render the flame graph: install it (Debian: apt-get install -y chromium)")
	return ""
}
