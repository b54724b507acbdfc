package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// AgentMemory is section 7: `maptrace agent`'s resident memory tracing
// processes of one binary, where it shares the symbol tables, against
// processes of as many binaries, where it cannot.
type AgentMemory struct {
	Rows []AgentMemoryRow
}

// AgentMemoryRow is one scenario, measured once.
type AgentMemoryRow struct {
	Name      string
	Processes int
	Binaries  int
	RSSKiB    int // VmRSS once every process is traced and has contended
	PeakKiB   int // VmHWM
}

// agentScenarios are the processes each scenario runs: how many, and of how
// many binaries (copies of testdata/contention: the same bytes in other
// files, which the agent cannot tell apart without reading them).
var agentScenarios = []struct {
	name            string
	procs, binaries int
}{
	{"1 process", 1, 1},
	{"20 processes of one binary", 20, 1},
	{"10 processes of 10 binaries", 10, 10},
	{"20 processes of 10 binaries", 20, 10},
}

func measureAgentMemory(cfg *Config, bins *Binaries, logf func(string, ...any)) (*AgentMemory, error) {
	am := &AgentMemory{}
	for _, sc := range agentScenarios {
		row, err := agentMemory(cfg.Tmp, bins, sc.name, sc.procs, sc.binaries)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		logf("agent memory, %s: RSS %d MiB (peak %d MiB)", sc.name, row.RSSKiB>>10, row.PeakKiB>>10)
		am.Rows = append(am.Rows, *row)
	}
	return am, nil
}

// agentMemory starts procs targets of binaries copies of the contention
// target, an agent that traces them, makes each contend for a second, and
// reads the agent's memory.
func agentMemory(tmp string, bins *Binaries, name string, procs, binaries int) (*AgentMemoryRow, error) {
	dir, err := os.MkdirTemp(tmp, "agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src, err := os.ReadFile(bins.Contention)
	if err != nil {
		return nil, err
	}
	var exes []string
	for i := range binaries {
		exe := filepath.Join(dir, fmt.Sprintf("contention-%d", i))
		if err := os.WriteFile(exe, src, 0o755); err != nil {
			return nil, err
		}
		exes = append(exes, exe)
	}
	var ts []*Proc
	defer func() {
		for _, t := range ts {
			t.Close()
		}
	}()
	for i := range procs {
		t, err := startProc(exes[i%binaries])
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	a := &Tracer{cmd: exec.Command(bins.Maptrace, "agent", "--listen", addr, "--match", dir+"/*")}
	if err := a.run(": tracing "); err != nil {
		return nil, fmt.Errorf("maptrace agent: %w", err)
	}
	defer a.Kill()
	for deadline := time.Now().Add(time.Duration(procs)*3*time.Second + 10*time.Second); strings.Count(a.stderr.String(), ": tracing ") < procs; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d processes traced\n%s", strings.Count(a.stderr.String(), ": tracing "), procs, a.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// All at once, as Ask would one after another.
	for _, t := range ts {
		if _, err := fmt.Fprintln(t.in, "run 1000"); err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	for _, t := range ts {
		if l, err := t.line(60 * time.Second); err != nil {
			return nil, err
		} else if !strings.HasPrefix(l, "mutex_wait_seconds ") {
			return nil, fmt.Errorf("%s: answer %q to run", t.name, l)
		}
	}
	// Scraped as Prometheus would, then measured once the heap settled.
	for range 3 {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
		}
		time.Sleep(time.Second)
	}
	rss, peak, err := testtarget.Memory(a.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	return &AgentMemoryRow{Name: name, Processes: procs, Binaries: binaries, RSSKiB: rss, PeakKiB: peak}, nil
}

func renderAgentMemory(p printer, am *AgentMemory) {
	p("## 7. The agent's memory\n\n")
	if am == nil || len(am.Rows) == 0 {
		p("Not measured (see the failures above).\n\n")
		return
	}
	p("`maptrace agent --match DIR/*` tracing copies of testdata/contention, each process made to contend for 1 s and the agent scraped three times; then its resident set (VmRSS) and peak (VmHWM) from /proc. Processes of one binary share its symbol tables (by device and inode); copies of it are other files, so each copy has tables of its own. One CPU sampler serves them all.\n\n")
	p("| processes | binaries | RSS MiB | peak MiB | RSS × one process |\n|---|---|---|---|---|\n")
	one := am.Rows[0].RSSKiB
	for _, r := range am.Rows {
		p("| %d | %d | %.1f | %.1f | %.2f× |\n", r.Processes, r.Binaries, float64(r.RSSKiB)/1024, float64(r.PeakKiB)/1024, float64(r.RSSKiB)/float64(one))
	}
	p("\n")
}
