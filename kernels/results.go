package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Section is what one step of the guest's /init printed.
type Section struct {
	Name    string
	RC      int
	Seconds float64
	Text    string
}

// GuestRun is a guest's second serial port, parsed.
type GuestRun struct {
	Release  string
	Sections []Section
	Done     bool // /init got to its end
}

// parseOutput reads the markers initScript writes around each step.
func parseOutput(b []byte) GuestRun {
	var g GuestRun
	var cur *Section
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		rest, marker := strings.CutPrefix(line, "@@mt ")
		if !marker {
			if cur != nil {
				text.WriteString(line)
				text.WriteByte('\n')
			}
			continue
		}
		f := strings.Fields(rest)
		switch {
		case len(f) >= 2 && f[0] == "kernel":
			g.Release = f[1]
		case len(f) == 2 && f[0] == "begin":
			cur = &Section{Name: f[1], RC: -1}
			text.Reset()
		case len(f) == 5 && f[0] == "end" && cur != nil && f[1] == cur.Name:
			cur.RC, _ = strconv.Atoi(f[2])
			t0, _ := strconv.ParseFloat(f[3], 64)
			t1, _ := strconv.ParseFloat(f[4], 64)
			cur.Seconds = t1 - t0
			cur.Text = strings.TrimRight(text.String(), "\n")
			g.Sections = append(g.Sections, *cur)
			cur = nil
		case len(f) == 1 && f[0] == "done":
			g.Done = true
		}
	}
	if cur != nil { // the guest stopped inside a step
		cur.Text = strings.TrimRight(text.String(), "\n")
		g.Sections = append(g.Sections, *cur)
	}
	return g
}

func (g GuestRun) section(name string) (Section, bool) {
	for _, s := range g.Sections {
		if s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// TestResult is one test's outcome in one guest.
type TestResult struct {
	Pkg     string
	Test    string
	Action  string // pass, fail or skip
	Reason  string // why it skipped, or its first error
	Elapsed float64
	Logs    []string // its t.Log, t.Skip and t.Error lines
	// FailedFirst is the first boot's failure of a test that passed when
	// run again.
	FailedFirst string
}

// maxRerun is the most failed tests a second boot runs again: more is a
// kernel that breaks maptrace, not a guest stalled by its host.
const maxRerun = 4

// failedLeaves are the failed tests none of whose subtests failed.
func failedLeaves(ts []TestResult) []TestResult {
	var leaves []TestResult
	for _, t := range ts {
		if t.Action != "fail" || t.Test == "(test binary)" {
			continue
		}
		leaf := true
		for _, o := range ts {
			if o.Pkg == t.Pkg && o.Action == "fail" && strings.HasPrefix(o.Test, t.Test+"/") {
				leaf = false
			}
		}
		if leaf {
			leaves = append(leaves, t)
		}
	}
	return leaves
}

// rerunSuites runs each test again, alone: ^TestA$/^sub$ selects it.
func rerunSuites(ts []TestResult) []Suite {
	var ss []Suite
	for _, t := range ts {
		var parts []string
		for _, p := range strings.Split(t.Test, "/") {
			parts = append(parts, "^"+regexp.QuoteMeta(p)+"$")
		}
		run := strings.Join(parts, "/")
		ss = append(ss, Suite{Pkg: t.Pkg, Run: run, Arm64: run})
	}
	return ss
}

// mergeRerun takes the second boot's outcome of each test run again: one
// that passed there passes, with its first failure kept, as do its parents
// that failed only by their subtests once none of those fails any more; one
// that failed again says how it failed the second time.
func mergeRerun(first, again []TestResult) []TestResult {
	for _, a := range again {
		if a.Action != "pass" && a.Action != "fail" {
			continue
		}
		for i, t := range first {
			if t.Pkg != a.Pkg || t.Test != a.Test || t.Action != "fail" {
				continue
			}
			if a.Action == "pass" {
				first[i].Action, first[i].FailedFirst, first[i].Logs = "pass", t.Reason, a.Logs
			} else {
				first[i].Reason, first[i].Logs = a.Reason, a.Logs
			}
		}
	}
	for i, t := range first { // parents end after their subtests
		if t.Action != "fail" {
			continue
		}
		still, had := false, false
		for _, o := range first {
			if o.Pkg == t.Pkg && strings.HasPrefix(o.Test, t.Test+"/") {
				had = had || o.FailedFirst != ""
				still = still || o.Action == "fail"
			}
		}
		if had && !still && t.Reason == "" {
			first[i].Action, first[i].FailedFirst = "pass", "a subtest failed"
		}
	}
	return first
}

// testEvent is a line of `go test -json`.
type testEvent struct {
	Action  string
	Test    string
	Output  string
	Elapsed float64
}

// logLine is a t.Log/t.Skip/t.Error line as -test.v prints it.
var logLine = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: (.*)$`)

// testResults converts a test binary's -test.v=test2json output with the
// host's go tool test2json, and returns each test's outcome. A binary that
// ended badly without failing a test (a panic, a timeout, a guest that
// stopped) counts as a failed "(test binary)".
func testResults(pkg string, s Section) ([]TestResult, error) {
	cmd := exec.Command("go", "tool", "test2json", "-p", pkg)
	cmd.Stdin = strings.NewReader(s.Text + "\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool test2json: %v", err)
	}
	var results []TestResult
	logs := map[string][]string{}
	var last []string // the binary's last lines, for a crash
	failed := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e testEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Action {
		case "output":
			if m := logLine.FindStringSubmatch(strings.TrimRight(e.Output, "\n")); m != nil && e.Test != "" {
				logs[e.Test] = append(logs[e.Test], m[1])
			}
			if l := strings.TrimSpace(e.Output); l != "" {
				last = append(last, l)
				if len(last) > 5 {
					last = last[1:]
				}
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				continue
			}
			r := TestResult{Pkg: pkg, Test: e.Test, Action: e.Action, Elapsed: e.Elapsed, Logs: logs[e.Test]}
			if l := logs[e.Test]; len(l) > 0 {
				switch e.Action {
				case "skip":
					r.Reason = l[len(l)-1]
				case "fail":
					// t.Log and t.Error lines look alike: all of them
					r.Reason = strings.Join(l, " / ")
				}
			}
			failed = failed || e.Action == "fail"
			results = append(results, r)
		}
	}
	if s.RC != 0 && !failed {
		why := fmt.Sprintf("exit status %d", s.RC)
		if s.RC == -1 {
			why = "the guest stopped while it ran"
		}
		results = append(results, TestResult{Pkg: pkg, Test: "(test binary)", Action: "fail",
			Reason: why + ": " + strings.Join(last, " / ")})
	}
	return results, nil
}

// Check is one line of doctor's output.
type Check struct {
	Mark, Name, Detail string
}

// doctorChecks parses doctor's "this machine" lines: "  ✓ " and the name
// padded to 21 columns, then the detail, which may wrap onto lines indented
// to it.
func doctorChecks(text string) []Check {
	var cs []Check
	for _, l := range strings.Split(text, "\n") {
		r := []rune(l)
		switch {
		case len(r) > 26 && string(r[:2]) == "  " && strings.ContainsRune("✓✗–", r[2]) && r[3] == ' ':
			cs = append(cs, Check{string(r[2]), strings.TrimSpace(string(r[4:25])), strings.TrimSpace(string(r[26:]))})
		case len(cs) > 0 && strings.HasPrefix(l, strings.Repeat(" ", 26)):
			cs[len(cs)-1].Detail += " " + strings.TrimSpace(l)
		default:
			if len(cs) > 0 && strings.TrimSpace(l) == "" {
				return cs // the end of "this machine"
			}
		}
	}
	return cs
}
