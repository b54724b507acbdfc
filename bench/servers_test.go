package main

import (
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestRealServerReport traces nats-server under its publish/subscribe load
// as section 6 does, and asserts what a report on a real server must be:
// short, the bottleneck first, nothing lost, and no warning that a map is
// written by several goroutines unless their writes were seen to
// interleave. nats-server is the cheapest of section 6's servers to build
// and to load, and TestQuick builds it already (the build is cached).
func TestRealServerReport(t *testing.T) {
	testtarget.NeedRoot(t)
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Tmp: t.TempDir()}
	logf := func(format string, args ...any) { t.Logf(format, args...) }
	bins, err := build(root, cfg.Tmp, logf, serverBins("nats-server")...)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := measureServers(cfg, bins, logf, "nats-server")
	if err != nil {
		t.Fatal(err)
	}
	rs := ss[0]
	st, r := rs.Stats, rs.Result.Report
	t.Logf("traced %.0f %s; %d findings, %d lost events, %d text lines, %d maps; took %v",
		rs.Traced, rs.Unit, st.Findings, st.Lost, st.TextLines, st.Maps, time.Since(start).Round(time.Second))

	// The premise: under this load nats-server's bottleneck is the
	// subscriber's client lock (client.mu), which the publishers' readLoops
	// wait for in deliverMsg; it has the most wait of all mutexes.
	if !st.TopIsBottleneck {
		t.Fatalf("the mutex with the most wait was waited for in %q, want server.(*client).deliverMsg: the load no longer shows nats-server's bottleneck", st.TopWhere)
	}
	failed := false
	fail := func(format string, args ...any) { t.Errorf(format, args...); failed = true }
	if st.Findings > maxFindings {
		fail("%d findings, want at most %d", st.Findings, maxFindings)
	}
	if !st.BottleneckFirst {
		fail("first finding %q, want the client lock waited for in deliverMsg (the mutex with the most wait, %s)",
			st.First, time.Duration(st.Top.WaitNS).Round(time.Millisecond))
	}
	if st.Lost != 0 {
		fail("overhead.lost_events = %d, want 0", st.Lost)
	}
	if st.TextLines > maxTextLines {
		fail("text report of %d lines, want at most %d", st.TextLines, maxTextLines)
	}
	for _, w := range st.MapWarnings {
		fail("a warning about a map that does not say its writes interleaved: %q", w)
	}
	if failed {
		for i, f := range r.Findings {
			if i == 40 {
				t.Logf("… %d more", len(r.Findings)-40)
				break
			}
			t.Logf("finding %d: [%s] %s", i+1, f.Severity, f.Title)
		}
	}
}
