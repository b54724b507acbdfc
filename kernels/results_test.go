package main

import (
	"strings"
	"testing"
)

// A guest's second serial port as the tty gives it: CRLF line ends, a step
// whose output does not end in a newline, and a guest that stopped inside
// the last step.
const guestOutput = "@@mt kernel 6.1.0-57-amd64\r\n" +
	"@@mt begin doctor\r\nthis machine\r\n" +
	"  ✓ kernel                6.1.0-57-amd64 x86_64 (maptrace needs 5.15 or newer)\r\n" +
	"  – uprobe_multi          no (6.6+): falls back to a perf-event link per site, slower to\r\n" +
	"                          attach\r\n" +
	"  ✓ perf-event links      yes (5.15+): a link per site, each with its cookie\r\n" +
	"\r\nready: `maptrace demo` shows a trace\r\n" +
	"\r\n@@mt end doctor 0 4.43 4.93\r\n" +
	"@@mt begin test:0\r\n=== RUN   TestA\r\n--- PASS: TestA (0.00s)\r\nPASS" +
	"\r\n@@mt end test:0 0 5.00 5.50\r\n" +
	"@@mt begin test:1\r\n=== RUN   TestB\r\n"

func TestParseOutput(t *testing.T) {
	g := parseOutput([]byte(guestOutput))
	if g.Release != "6.1.0-57-amd64" || g.Done || len(g.Sections) != 3 {
		t.Fatalf("release %q, done %v, %d sections", g.Release, g.Done, len(g.Sections))
	}
	d, ok := g.section("doctor")
	if !ok || d.RC != 0 || d.Seconds < 0.49 || d.Seconds > 0.51 || strings.Contains(d.Text, "\r") {
		t.Errorf("doctor section %+v", d)
	}
	if s, _ := g.section("test:0"); !strings.HasSuffix(s.Text, "PASS") {
		t.Errorf("test:0 text %q", s.Text)
	}
	if s, _ := g.section("test:1"); s.RC != -1 || s.Text != "=== RUN   TestB" {
		t.Errorf("unfinished step %+v", s)
	}
	cs := doctorChecks(d.Text)
	want := []Check{
		{"✓", "kernel", "6.1.0-57-amd64 x86_64 (maptrace needs 5.15 or newer)"},
		{"–", "uprobe_multi", "no (6.6+): falls back to a perf-event link per site, slower to attach"},
		{"✓", "perf-event links", "yes (5.15+): a link per site, each with its cookie"},
	}
	if len(cs) != len(want) {
		t.Fatalf("checks %q, want %q", cs, want)
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("check %d = %q, want %q", i, cs[i], want[i])
		}
	}
}

// A test skipped as a whole on one kernel shows as skipped in the rows of
// the subtests it ran on another.
func TestRowsAndCells(t *testing.T) {
	old := []TestResult{{Pkg: "internal/trace", Test: "TestX", Action: "skip", Reason: "needs kernel 5.15+"}}
	newer := []TestResult{
		{Pkg: "internal/trace", Test: "TestX/local", Action: "pass"},
		{Pkg: "internal/trace", Test: "TestX", Action: "pass"},
		{Pkg: "internal/trace", Test: "TestY", Action: "fail", Reason: "ratio | 0.7"},
	}
	results := []Result{{Tests: old}, {Tests: newer}}
	rs := rows(results)
	if len(rs) != 2 || rs[0].test != "TestX/local" || rs[1].test != "TestY" {
		t.Fatalf("rows %v", rs)
	}
	notes := &footnotes{}
	for _, c := range []struct {
		r    Result
		row  row
		want string
	}{
		{results[0], rs[0], "skip [1]"},
		{results[1], rs[0], "pass"},
		{results[0], rs[1], "—"},
		{results[1], rs[1], "**FAIL** [2]"},
	} {
		if got := cell(c.r, c.row, notes); got != c.want {
			t.Errorf("%s on %v: %q, want %q", c.row.test, c.r.Tests, got, c.want)
		}
	}
	if len(notes.list) != 2 || notes.list[1] != `ratio \| 0.7` {
		t.Errorf("notes %q", notes.list)
	}
}

// TestRerun: the failed leaves are run again alone; one that passes then
// passes with its first failure kept, and so does its parent, which failed
// only by it; one that fails again, and a parent with its own error, fail.
func TestRerun(t *testing.T) {
	first := []TestResult{
		{Pkg: "internal/trace", Test: "TestRaces/local/write", Action: "fail", Reason: "no race"},
		{Pkg: "internal/trace", Test: "TestRaces/local/read", Action: "pass"},
		{Pkg: "internal/trace", Test: "TestRaces/local", Action: "fail"},
		{Pkg: "internal/trace", Test: "TestRaces", Action: "fail"},
		{Pkg: "internal/trace", Test: "TestMutexContention/local", Action: "fail", Reason: "ratio 0.4"},
		{Pkg: "internal/trace", Test: "TestMutexContention", Action: "fail"},
		{Pkg: "cmd/maptrace", Test: "TestEndings/sigint", Action: "fail", Reason: "exit 1"},
		{Pkg: "cmd/maptrace", Test: "TestEndings", Action: "fail", Reason: "left a probe"},
	}
	leaves := failedLeaves(first)
	var names []string
	for _, l := range leaves {
		names = append(names, l.Test)
	}
	if strings.Join(names, " ") != "TestRaces/local/write TestMutexContention/local TestEndings/sigint" {
		t.Fatalf("failed leaves %q", names)
	}
	if s := rerunSuites(leaves)[0]; s.Pkg != "internal/trace" || s.Run != "^TestRaces$/^local$/^write$" {
		t.Errorf("rerun suite %+v", s)
	}
	again := []TestResult{
		{Pkg: "internal/trace", Test: "TestRaces/local/write", Action: "pass"},
		{Pkg: "internal/trace", Test: "TestMutexContention/local", Action: "fail", Reason: "ratio 0.3"},
		{Pkg: "cmd/maptrace", Test: "TestEndings/sigint", Action: "pass"},
	}
	got := map[string]string{}
	for _, r := range mergeRerun(first, again) {
		got[r.Test] = r.Action + " " + r.FailedFirst
		if r.Test == "TestMutexContention/local" && r.Reason != "ratio 0.3" {
			t.Errorf("failed again: reason %q, want the second boot's", r.Reason)
		}
	}
	want := map[string]string{
		"TestRaces/local/write":     "pass no race",
		"TestRaces/local/read":      "pass ",
		"TestRaces/local":           "pass a subtest failed",
		"TestRaces":                 "pass a subtest failed",
		"TestMutexContention/local": "fail ",
		"TestMutexContention":       "fail ",
		"TestEndings/sigint":        "pass exit 1",
		"TestEndings":               "fail ",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}
