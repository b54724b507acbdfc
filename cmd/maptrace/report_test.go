package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maptrace/maptrace/internal/report"
)

// handWritten is a report written by hand, with a field no maptrace knows.
const handWritten = "testdata/report.json"

// TestReportCommand re-renders the hand-written report in every form.
func TestReportCommand(t *testing.T) {
	want, err := readReport(handWritten)
	if err != nil {
		t.Fatal(err)
	}
	text := func(o report.TextOptions) string {
		var b strings.Builder
		if err := report.WriteTextOptions(&b, want, o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		args []string
		want string
		has  []string
		not  []string
	}{
		{nil, text(report.TextOptions{}), []string{"cart.pricesMu", "cart.stockMu", "CONCURRENT MAP ACCESS (1)", "FINDINGS"}, []string{"more in the JSON report"}},
		{[]string{"-f", "text", "--top", "1"}, text(report.TextOptions{Top: 1}), []string{"cart.pricesMu", "… 2 more in the JSON report", "… 1 more in the JSON report"}, []string{"cart.stockMu"}},
		{[]string{"--top", "1", "--verbose"}, text(report.TextOptions{Verbose: true}), []string{"cart.stockMu", "lock in cart.restock"}, []string{"more in the JSON report"}},
	} {
		stdout, stderr, code := run(t, append([]string{"report", handWritten}, tc.args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
		if stdout != tc.want {
			t.Errorf("%v: text:\n%s\nwant:\n%s", tc.args, stdout, tc.want)
		}
		for _, s := range tc.has {
			if !strings.Contains(stdout, s) {
				t.Errorf("%v: no %q in:\n%s", tc.args, s, stdout)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(stdout, s) {
				t.Errorf("%v: %q in:\n%s", tc.args, s, stdout)
			}
		}
	}

	// JSON: the same report, and writing it again changes nothing.
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	_, stderr, code := run(t, "report", handWritten, "-f", "json", "-o", out("r.json"),
		"--pprof", out("m.pb.gz"), "--pprof-maps", out("maps.pb.gz"), "--folded", out("f.txt"), "--flamegraph", out("f.html"))
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// Compared as written: the report's lists are [] once written, nil when absent from the hand-written file.
	got := parseReport(t, mustRead(t, out("r.json")))
	var gotJSON, wantJSON strings.Builder
	report.WriteJSON(&gotJSON, got)
	report.WriteJSON(&wantJSON, want)
	if gotJSON.String() != wantJSON.String() {
		t.Errorf("round trip:\n%s\nwant:\n%s", gotJSON.String(), wantJSON.String())
	}
	again, _, _ := run(t, "report", out("r.json"), "-f", "json")
	if again != string(mustRead(t, out("r.json"))) {
		t.Errorf("re-rendering the JSON report changed it:\n%s", again)
	}

	// The profiles, each mode 0600.
	if p := readProfile(t, out("m.pb.gz")); len(p.Sample) != 3 {
		t.Errorf("contention profile: %d samples, want one per waiter stack (3)", len(p.Sample))
	}
	if p := readProfile(t, out("maps.pb.gz")); len(p.Sample) != 1 {
		t.Errorf("map profile: %d samples, want 1", len(p.Sample))
	}
	if f := string(mustRead(t, out("f.txt"))); !strings.Contains(f, "example.com/shop/cart.price (/src/cart/price.go:41)") {
		t.Errorf("folded stacks:\n%s", f)
	}
	if h := mustRead(t, out("f.html")); !bytes.Contains(h, []byte("cart.reprice")) {
		t.Errorf("flame graph of %d bytes lacks the holder cart.reprice", len(h))
	}
	for _, name := range []string{"r.json", "m.pb.gz", "maps.pb.gz", "f.txt", "f.html"} {
		if fi, err := os.Stat(out(name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", name, fileMode(fi, err))
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReportBadFiles: a file that is not a report is one line and exit 2.
func TestReportBadFiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := string(mustRead(t, handWritten))
	const what = "give a file written by `maptrace attach -f json -o FILE`"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no file", []string{"report"}, 2, "report needs one FILE.json, got 0 arguments (see `maptrace report --help`)"},
		{"two files", []string{"report", handWritten, handWritten}, 2, "report needs one FILE.json, got 2 arguments"},
		{"missing", []string{"report", dir + "/nope.json"}, 2, dir + "/nope.json: no such file: " + what},
		{"directory", []string{"report", dir}, 2, dir + " is a directory: " + what},
		{"text report", []string{"report", file("r.txt", "maptrace: pid 1 /bin/x (go1.26.8 amd64): 1.0s, ended by duration\n")}, 2,
			dir + "/r.txt is not a maptrace JSON report: " + what},
		{"gzip", []string{"report", file("m.pb.gz", "\x1f\x8b\x08\x00")}, 2, dir + "/m.pb.gz is not a maptrace JSON report: " + what},
		{"empty", []string{"report", file("empty.json", "")}, 2, "empty.json is not a maptrace JSON report: " + what},
		{"other JSON", []string{"report", file("other.json", `{"name": "x", "items": [1, 2]}`)}, 2, "other.json is not a maptrace JSON report: " + what},
		{"a list", []string{"report", file("list.json", `[{"version": 1}]`)}, 2, "list.json is not a maptrace JSON report"},
		{"cut short", []string{"report", file("short.json", good[:len(good)/2])}, 2,
			"short.json is not a maptrace JSON report (unexpected end of JSON input): " + what},
		{"two reports", []string{"report", file("two.json", good+good)}, 2, "two.json is not a maptrace JSON report (invalid character '{' after top-level value)"},
		{"version 2", []string{"report", file("v2.json", strings.Replace(good, `"version": 1`, `"version": 2`, 1))}, 2,
			"v2.json is a version 2 report; this maptrace reads version 1: use the maptrace that wrote it"},
		{"wrong type", []string{"report", file("type.json", `{"version": 1, "mutexes": "many"}`)}, 2,
			"type.json: a damaged report (json: cannot unmarshal string into Go struct field Report.mutexes of type []report.Mutex): " + what},
		{"bad format", []string{"report", handWritten, "-f", "yaml"}, 2, `--format "yaml": want text or json`},
		{"bad top", []string{"report", handWritten, "--top", "-1"}, 2, "--top -1: want 1 or more"},
		{"output in no directory", []string{"report", handWritten, "-o", "/nonexistent/r.txt"}, 2, "-o /nonexistent/r.txt: no directory /nonexistent: create it first"},
		{"attach's flags", []string{"report", handWritten, "-p", "1"}, 2, "unknown shorthand flag: 'p' in -p (see `maptrace report --help`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, tc.code)
			}
			oneLine(t, stderr, tc.want)
		})
	}
}

// TestReportNewerFields: fields this maptrace does not know are accepted
// (the format only grows) and the rest is read.
func TestReportNewerFields(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(mustRead(t, handWritten), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["overhead"].(map[string]any)["a_field_from_a_newer_maptrace"]; !ok {
		t.Fatal("the hand-written report lost its unknown field")
	}
	r, err := readReport(handWritten)
	if err != nil {
		t.Fatal(err)
	}
	if r.Target.PID != 4242 || len(r.Mutexes) != 3 || r.Overhead.MapSamplingFraction != 0.5 || len(r.Races[0].Sides) != 2 {
		t.Errorf("read %+v", r)
	}
}
