package main

import (
	"os"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestAgentMemory measures the agent's resident memory tracing one process
// and twenty processes of one binary, which share its symbol tables, and
// checks that the twenty cost at most 1.5× the one. Copies of the binary
// and binaries of many toolchains, which share nothing, are measured by
// the bench (section 7).
func TestAgentMemory(t *testing.T) {
	testtarget.NeedRoot(t)
	local := testtarget.Build(t, "../../testdata/contention", "local")
	type scenario struct {
		name string
		exes func(dir string) []string // one per process
	}
	same := func(n int) func(string) []string {
		return func(dir string) []string {
			exe := copyExe(t, local, dir, "contention")
			out := make([]string, n)
			for i := range out {
				out[i] = exe
			}
			return out
		}
	}
	rss := map[string][2]int{}
	for _, sc := range []scenario{
		{"1 process", same(1)},
		{"20 processes, one binary", same(20)},
	} {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			var procs []*testtarget.Proc
			for _, exe := range sc.exes(dir) {
				procs = append(procs, testtarget.Start(t, exe))
			}
			a := startAgent(t, "--match", dir+"/*")
			deadline := time.Now().Add(time.Duration(len(procs))*3*time.Second + 10*time.Second)
			for traced(t, a) < len(procs) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d processes traced", traced(t, a), len(procs))
				}
				time.Sleep(200 * time.Millisecond)
			}
			// Contention in every target, scraped as Prometheus would;
			// then the memory once the Go heap has settled.
			for _, p := range procs {
				p.Send(t, "run 1000")
			}
			for _, p := range procs {
				p.Line(t, 60*time.Second)
			}
			for i := 0; i < 5; i++ {
				a.scrape(t)
				time.Sleep(time.Second)
			}
			cur, peak, err := testtarget.Memory(a.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			rss[sc.name] = [2]int{cur, peak}
			t.Logf("%s: RSS %d MiB (peak %d MiB)", sc.name, cur>>10, peak>>10)
		})
	}
	one, twenty := rss["1 process"][0], rss["20 processes, one binary"][0]
	if one == 0 || twenty == 0 {
		t.Fatal("not measured")
	}
	t.Logf("20 processes of one binary: %.2f× the RSS of one", float64(twenty)/float64(one))
	if float64(twenty) > 1.5*float64(one) {
		t.Errorf("20 processes of one binary: RSS %d KiB, over 1.5× that of one (%d KiB)", twenty, one)
	}
}

// traced is maptrace_agent_targets.
func traced(t *testing.T, a *agentProc) int {
	fams := a.scrape(t)
	return int(fams["maptrace_agent_targets"].GetMetric()[0].GetGauge().GetValue())
}
