// Command bench measures maptrace's overhead and accuracy against baselines
// measured in the same run, and writes BENCHMARKS.md:
//
//  1. the cost of one probe hit, maptrace's programs against an empty one
//     (and bpftrace, when installed), on the same instruction;
//  2. the slowdown of contended-mutex, read-mostly RWMutex and map-hot
//     workloads traced, against the same untraced and Go's -race build;
//     on one CPU, also against an untraced twin running at once beside
//     the traced copy;
//  3. nats-server's throughput under a publish/subscribe load, traced and
//     untraced, and the mutexes maptrace found contended in it;
//  4. maptrace's own CPU time, memory, attach time and lost events;
//  5. mutex wait against the runtime's own metric, hot-key counts against
//     the truth, and map counts scaled from the windows at a budget
//     against the target's own;
//  6. real servers (nats-server, etcd, Caddy) under their own load clients,
//     traced once each: how many findings, which first, lost events, the
//     text report's length, against the figures before the report was
//     reworked;
//  7. `maptrace agent`'s memory with processes of one binary and of many.
//
// Every figure is min/median/max over -n runs; ratios pair runs of the same
// round, which alternate untraced and traced. Run as root from maptrace's
// module: go run ./bench -out BENCHMARKS.md
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is one benchmark run's settings.
type Config struct {
	N           int
	Quick       bool
	Install     bool
	Out         string
	Keep        bool
	Only        map[int]bool // sections to run; all when empty
	ProbeLoopMS int          // section 1: one timed lookup loop
	WorkMS      int          // section 2: one workload run
	NatsSeconds float64      // section 3: one load run
	AccMS       int          // section 5: one contention run
	Tmp         string
	Command     string // how this run was started, for the report
	Reports     string // section 6: where to save each server's raw report, if set
	// Maptrace, if set, is the maptrace binary to trace with instead of
	// one built from the working tree: an older commit's, for a
	// before/after comparison under the same harness.
	Maptrace string
	// Before, if set, is an older maptrace binary run beside the one under
	// test in sections 2 and 3, every budgeted mode in every round;
	// BeforeVersion is what it says it is.
	Before, BeforeVersion string
}

func parseFlags(args []string) (*Config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &Config{}
	fs.IntVar(&c.N, "n", 3, "runs of every measurement (min/median/max over them)")
	fs.BoolVar(&c.Quick, "quick", false, "one short run of every benchmark (a smoke test, not figures to quote)")
	fs.BoolVar(&c.Install, "install", false, "apt-get install bpftrace for the comparison in section 1 if it is missing (not in -quick)")
	fs.StringVar(&c.Out, "out", "BENCHMARKS.md", "where to write the report (- for standard output)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory with the built binaries")
	only := fs.String("only", "", "run only these sections, e.g. 1,3 (section 4 comes from 2 and 3; 6 is the real servers)")
	fs.StringVar(&c.Reports, "reports", "", "section 6: save each server's report as NAME.json and NAME.txt in this directory")
	fs.StringVar(&c.Before, "before", "", "sections 2 and 3: also trace every budgeted mode with this older maptrace binary, in the same rounds (before/after)")
	fs.StringVar(&c.Maptrace, "maptrace", "", "trace with this maptrace binary instead of building the working tree's (an older commit's, for a before/after comparison)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *only != "" {
		c.Only = map[int]bool{}
		for _, f := range strings.Split(*only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 7 {
				return nil, fmt.Errorf("-only %q: want section numbers 1 to 7", *only)
			}
			c.Only[n] = true
		}
	}
	if c.N < 1 {
		return nil, fmt.Errorf("-n %d: want at least 1", c.N)
	}
	c.ProbeLoopMS, c.WorkMS, c.NatsSeconds, c.AccMS = 400, 2000, 5, 2000
	if c.Quick {
		c.N, c.Install = 1, false
		c.ProbeLoopMS, c.WorkMS, c.NatsSeconds, c.AccMS = 150, 400, 1, 400
	}
	c.Command = strings.TrimSpace("go run ./bench " + strings.Join(args, " "))
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	res, err := Run(cfg, os.Stderr)
	if res != nil && cfg.Out == "-" {
		fmt.Print(renderMarkdown(res))
	} else if res != nil {
		if werr := writeReportFile(cfg.Out, res); werr != nil {
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(os.Stderr, "bench: wrote %s\n", cfg.Out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Results are everything one run measured.
type Results struct {
	Config    *Config
	Machine   Machine
	Load      *Load
	Maptrace  string // maptrace's version (git describe)
	Started   time.Time
	Took      time.Duration
	Builds    *Binaries
	Probe     *ProbeCost
	Slowdowns []*Slowdown
	// Floor is two untraced copies of one program run at once on two
	// CPUs: the ratio of their work per CPU-second, round by round.
	Floor     Dist
	Nats      *Nats
	Collector *Collector
	Accuracy  *Accuracy
	Servers   []*RealServer
	Agent     *AgentMemory
	// Errors are the sections that failed, by section.
	Errors map[string]string
}

// Run builds everything and runs every section. It returns the results
// even when a section failed, with the failures in Errors and err.
func Run(cfg *Config, log io.Writer) (*Results, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "bench: "+format+"\n", args...)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the benchmarks attach uprobes and read BPF maps")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if cfg.Tmp, err = os.MkdirTemp("", "maptrace-bench-"); err != nil {
		return nil, err
	}
	if cfg.Keep {
		logf("binaries in %s", cfg.Tmp)
	} else {
		defer os.RemoveAll(cfg.Tmp)
	}
	res := &Results{Config: cfg, Machine: readMachine(), Started: time.Now(), Errors: map[string]string{}}
	res.Maptrace = gitDescribe(root)
	if cfg.Maptrace != "" {
		v, err := binVersion(&cfg.Maptrace)
		if err != nil {
			return nil, fmt.Errorf("-maptrace: %w", err)
		}
		res.Maptrace = v + " (-maptrace; the harness at " + res.Maptrace + ")"
	}
	if cfg.Before != "" {
		if cfg.BeforeVersion, err = binVersion(&cfg.Before); err != nil {
			return nil, fmt.Errorf("-before: %w", err)
		}
	}
	res.Load = startLoad()
	defer res.Load.end()
	if cfg.Install && !cfg.Quick {
		installBpftrace(logf)
	}
	if res.Builds, err = build(root, cfg.Tmp, logf, cfg.binaries()...); err != nil {
		return nil, err
	}
	if cfg.Maptrace != "" {
		res.Builds.Maptrace = cfg.Maptrace
	}
	var errs []error
	fail := func(section string, err error) {
		res.Errors[section] = err.Error()
		errs = append(errs, fmt.Errorf("%s: %w", section, err))
		logf("%s failed: %v", section, err)
	}
	run := cfg.runs
	if run(1) {
		logf("section 1: probe cost per hit")
		if res.Probe, err = measureProbeCost(cfg, res.Builds, logf); err != nil {
			fail("probe cost", err)
		}
	}
	if run(2) || run(4) {
		logf("section 2: target slowdown")
		if res.Floor, err = measureFloor(cfg, res.Builds); err != nil {
			fail("noise floor", err)
		}
		for _, w := range workloads(res.Builds, cfg.Before, cfg.BeforeVersion) {
			s, err := measureSlowdown(cfg, res.Builds, w, logf)
			if err != nil {
				fail("slowdown: "+w.Name, err)
				continue
			}
			res.Slowdowns = append(res.Slowdowns, s)
		}
	}
	if run(3) || run(4) {
		logf("section 3: nats-server")
		if res.Nats, err = measureNats(cfg, res.Builds, logf); err != nil {
			fail("nats-server", err)
		}
	}
	res.Collector = assembleCollector(res.Slowdowns, res.Nats)
	if run(5) {
		logf("section 5: accuracy")
		if res.Accuracy, err = measureAccuracy(cfg, res.Builds, logf); err != nil {
			fail("accuracy", err)
		}
	}
	if run(6) {
		logf("section 6: real servers")
		if res.Servers, err = measureServers(cfg, res.Builds, logf); err != nil {
			fail("real servers", err)
		}
	}
	if run(7) {
		logf("section 7: the agent's memory")
		if res.Agent, err = measureAgentMemory(cfg, res.Builds, logf); err != nil {
			fail("agent memory", err)
		}
	}
	res.Took = time.Since(res.Started)
	return res, errors.Join(errs...)
}

// runs says whether section n runs. -quick leaves out sections 6 and 7
// unless asked for: building etcd and Caddy takes minutes, and the test of
// servers_test.go already runs it on nats-server; the agent's memory takes a
// minute, and cmd/maptrace's TestAgentMemory measures it too.
func (c *Config) runs(n int) bool {
	if len(c.Only) > 0 {
		return c.Only[n]
	}
	return (n != 6 && n != 7) || !c.Quick
}

// binaries are the ones build() must make for the sections that run.
func (c *Config) binaries() []string {
	core := []string{"maptrace", "contention", "maps", "locks", "maps-race", "locks-race", "nats-server", "nats-load"}
	if c.Maptrace != "" {
		core = core[1:]
	}
	switch {
	case !c.runs(6):
		return core
	case len(c.Only) == 1:
		return serverBins()
	}
	return append(core, serverBins()...)
}

// binVersion makes *bin absolute and asks it its version.
func binVersion(bin *string) (string, error) {
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return "", err
	}
	*bin = abs
	out, err := exec.Command(abs, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %v", abs, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "maptrace ")), nil
}

func gitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// installBpftrace installs Debian's bpftrace when it is missing.
func installBpftrace(logf func(string, ...any)) {
	if _, err := exec.LookPath("bpftrace"); err == nil {
		return
	}
	logf("maptrace bench needs: bpftrace (the comparison of section 1); installing with apt-get (-install)")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "bpftrace"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			logf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
	}
}
