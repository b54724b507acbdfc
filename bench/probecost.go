package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/arch/x86/x86asm"

	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
)

// probedFunc is the function section 1 probes: the map read that
// testdata/maps' `loop` does millions of times a second
// (loopMap[int64(k)] on a map[int64]int64).
const probedFunc = "runtime.mapaccess1_fast64"

// ProbeCost is section 1: the cost of one probe hit, by program, at the
// same instruction of the same function.
type ProbeCost struct {
	Func      string
	EntryInsn string // the instruction the entry probes sit on
	StartInsn string // the function's first instruction
	Multi     bool   // attached through uprobe_multi links
	LoopMS    int
	Untraced  Dist // ns per lookup, unprobed
	Rows      []ProbeRow
	// Bpftrace says why there is no bpftrace row, when there is none.
	Bpftrace string
}

// ProbeRow is one program's cost per hit.
type ProbeRow struct {
	Name     string
	Site     string // "entry" or "start"
	Baseline string // the row this one's ratio is against
	PerHit   Dist   // ns added per probed call
	Ratio    Dist   // PerHit / the baseline's PerHit, round by round
}

// probeConfig attaches one way of probing and returns its detach.
type probeConfig struct {
	name, site, baseline string
	attach               func() (func() error, error)
}

// measureProbeCost times testdata/maps' lookup loop unprobed and with each
// program at runtime.mapaccess1_fast64's entry site, as
// internal/calibrate does in-process: the cost of a hit is the time per call
// probed minus the time per call unprobed, measured back to back.
func measureProbeCost(cfg *Config, bins *Binaries, logf func(string, ...any)) (*ProbeCost, error) {
	p, err := startProc(bins.Maps)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	pid := p.PID()
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	bin, err := symbols.Open(exe)
	if err != nil {
		return nil, err
	}
	defer bin.Close()
	goidOff, _, err := bin.GoidOffset()
	if err != nil {
		return nil, err
	}
	multi := probes.MultiSupported()
	res := &ProbeCost{Func: probedFunc, Multi: multi, LoopMS: cfg.ProbeLoopMS}

	fn, ok := bin.Func(probedFunc)
	if !ok {
		return nil, fmt.Errorf("%s not in %s", probedFunc, bins.Maps)
	}
	code, err := bin.Code(fn)
	if err != nil {
		return nil, err
	}
	rel, err := probes.FindSites(code)
	if err != nil {
		return nil, err
	}
	if inst, err := x86asm.Decode(code[rel.Entry:], 64); err == nil {
		res.EntryInsn = fmt.Sprintf("%s at +%#x", x86asm.GoSyntax(inst, fn.Entry+rel.Entry, nil), rel.Entry)
	}
	sites, err := probes.FuncSites(bin, probedFunc)
	if err != nil {
		return nil, err
	}

	// maptrace's own programs, loaded as a trace loads them.
	mapObjs, err := probes.LoadMaps(goidOff, probes.LayoutFor(bin.GoVersion), true, multi)
	if err != nil {
		return nil, err
	}
	defer mapObjs.Close()
	plan, _, err := probes.PlanMaps(bin, mapObjs)
	if err != nil {
		return nil, err
	}
	var mapProbe *probes.Probe
	for i := range plan.Probes {
		if plan.Probes[i].Func == probedFunc {
			mapProbe = &plan.Probes[i]
		}
	}
	if mapProbe == nil || mapProbe.Offset != sites.Entry {
		return nil, fmt.Errorf("maptrace's plan has no probe at %s's entry site", probedFunc)
	}
	mutexObjs, err := probes.LoadMutex(goidOff, multi)
	if err != nil {
		return nil, err
	}
	defer mutexObjs.Close()
	empty, err := probes.EmptyProgram(multi)
	if err != nil {
		return nil, fmt.Errorf("load the empty program: %w", err)
	}
	defer empty.Close()

	start, err := bin.FileOffset(fn.Entry)
	if err != nil {
		return nil, err
	}
	res.StartInsn = "?"
	if inst, err := x86asm.Decode(code, 64); err == nil {
		res.StartInsn = x86asm.GoSyntax(inst, fn.Entry, nil)
	}
	// attachWith places prog at off.
	attachWith := func(multi bool, off uint64, prog *ebpf.Program, cookie uint64) func() (func() error, error) {
		return func() (func() error, error) {
			ps := []probes.Probe{{Func: probedFunc, Offset: off, Prog: prog, Cookie: cookie}}
			l, err := probes.Attach(exe, pid, multi, ps)
			if err != nil {
				return nil, err
			}
			return l.Close, nil
		}
	}
	attach := func(off uint64, prog *ebpf.Program, cookie uint64) func() (func() error, error) {
		return attachWith(multi, off, prog, cookie)
	}
	const (
		emptyEntry = "empty program (return 0)"
		emptyStart = emptyEntry
	)
	e := sites.Entry
	configs := []probeConfig{
		{emptyEntry, "entry", "", attach(e, empty, 0)},
		{"maptrace map_op (maps.bpf.c)", "entry", emptyEntry, attach(e, mapObjs.MapOp, mapProbe.Cookie)},
		// Not a mutex's park or wake-up here: the paths these programs take
		// for the runtime's other semaphores.
		{"maptrace sema_park (mutex.bpf.c), a park not for a mutex", "entry", emptyEntry, attach(e, mutexObjs.SemaPark, probes.Cookie(0, 0))},
		{"maptrace sema_ready (mutex.bpf.c), a wake-up of no traced waiter", "entry", emptyEntry, attach(e, mutexObjs.SemaReady, probes.Cookie(0, 0))},
	}
	// bpftrace can only probe a function's first instruction here (see
	// bpftraceConfig), so it is compared there, with the empty program and
	// maptrace's map program moved to the same instruction.
	if bt, why := bpftraceConfig(cfg, exe, pid, logf); bt != nil {
		bt.baseline = emptyStart
		configs = append(configs,
			probeConfig{emptyStart, "start", "", attach(start, empty, 0)},
			probeConfig{"maptrace map_op (maps.bpf.c)", "start", emptyStart, attach(start, mapObjs.MapOp, mapProbe.Cookie)})
		if multi {
			// bpftrace attaches one perf-event uprobe: so does this row.
			single, err := probes.EmptyProgram(false)
			if err != nil {
				return nil, err
			}
			defer single.Close()
			const emptyPerf = "empty program (return 0), perf-event link like bpftrace's"
			configs = append(configs, probeConfig{emptyPerf, "start", emptyStart, attachWith(false, start, single, 0)})
			bt.baseline = emptyPerf
		}
		configs = append(configs, *bt)
	} else {
		res.Bpftrace = why
	}

	idx := map[string]int{}
	for i, c := range configs {
		idx[c.name+"|"+c.site] = i
	}
	loop := func() (float64, error) {
		n, elapsed, err := p.Count("loop", cfg.ProbeLoopMS)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("loop did no lookups")
		}
		return float64(elapsed.Nanoseconds()) / n, nil
	}
	before, err := loop() // warm up; the untraced time before the first probed loop
	if err != nil {
		return nil, err
	}
	// hit measures one configuration: its loop against the unprobed loops
	// just before and just after it.
	hit := func(c probeConfig) (float64, error) {
		detach, err := c.attach()
		if err != nil {
			return 0, err
		}
		probed, err := loop()
		if derr := detach(); err == nil {
			err = derr
		}
		if err != nil {
			return 0, err
		}
		after, err := loop()
		if err != nil {
			return 0, err
		}
		res.Untraced.Add(after)
		h := probed - (before+after)/2
		before = after
		return h, nil
	}
	perHit := make([]Dist, len(configs))
	ratios := make([]Dist, len(configs))
	failed := map[int]bool{}
	for round := 0; round < cfg.N; round++ {
		// Every program is measured between two measurements of its
		// baseline, so that a ratio compares measurements seconds apart.
		baseHits := make([]Dist, len(configs))
		fresh, freshHit := -1, 0.0 // the baseline measured last, and its hit cost
		for i, c := range configs {
			if c.baseline == "" || failed[i] {
				continue
			}
			b := idx[c.baseline+"|"+c.site]
			err := func() error {
				if fresh != b {
					h, err := hit(configs[b])
					if err != nil {
						return fmt.Errorf("%s: %w", configs[b].name, err)
					}
					baseHits[b].Add(h)
					fresh, freshHit = b, h
				}
				hc, err := hit(c)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				hb, err := hit(configs[b])
				if err != nil {
					return fmt.Errorf("%s: %w", configs[b].name, err)
				}
				baseHits[b].Add(hb)
				perHit[i].Add(hc)
				ratios[i].Add(hc / ((freshHit + hb) / 2))
				freshHit = hb
				return nil
			}()
			if err != nil {
				if !strings.HasPrefix(c.name, "bpftrace") { // maptrace's and the empty programs must work
					return nil, err
				}
				failed[i] = true
				fresh = -1
				res.Bpftrace = fmt.Sprintf("the bpftrace comparison failed: %v", firstLine(err.Error()))
				logf("%s", res.Bpftrace)
			}
		}
		for i, d := range baseHits {
			if len(d) > 0 {
				perHit[i].Add(d.Median())
			}
		}
		logf("probe cost round %d/%d done", round+1, cfg.N)
	}
	for i, c := range configs {
		if failed[i] {
			continue
		}
		res.Rows = append(res.Rows, ProbeRow{Name: c.name, Site: c.site, Baseline: c.baseline, PerHit: perHit[i], Ratio: ratios[i]})
	}
	return res, nil
}

// bpftraceConfig is the bpftrace equivalent of the map program, counting
// calls by map pointer, when bpftrace is installed. Debian's bpftrace 0.17
// refuses probes at an offset into a function ("compiled without (k|u)probe
// offset support"), so it probes the function's first instruction.
func bpftraceConfig(cfg *Config, exe string, pid int, logf func(string, ...any)) (*probeConfig, string) {
	path, err := exec.LookPath("bpftrace")
	if err != nil {
		if cfg.Install {
			return nil, "bpftrace could not be installed (apt-get install -y bpftrace failed)"
		}
		return nil, "bpftrace is not installed (`go run ./bench -install` apt-get installs it)"
	}
	target, err := os.Readlink(exe)
	if err != nil {
		return nil, err.Error()
	}
	script := fmt.Sprintf(`uprobe:%s:%s { @[reg("bx")] = count(); }`, target, probedFunc)
	return &probeConfig{
		name: fmt.Sprintf("%s `@[reg(\"bx\")] = count()`", bpftraceVersion(path)),
		site: "start",
		attach: func() (func() error, error) {
			return startBpftrace(path, pid, script, logf)
		},
	}, ""
}

func bpftraceVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "bpftrace"
	}
	return strings.TrimSpace(string(out))
}

// startBpftrace runs a bpftrace script against pid until the returned stop
// is called. It returns once bpftrace holds a perf event (its uprobe,
// through the kernel's uprobe PMU); stop fails unless bpftrace printed a
// count above zero.
func startBpftrace(path string, pid int, script string, logf func(string, ...any)) (func() error, error) {
	cmd := exec.Command(path, "-p", strconv.Itoa(pid), "-e", script)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	for deadline := time.Now().Add(60 * time.Second); !holdsPerfEvent(cmd.Process.Pid); {
		select {
		case <-exited:
			return nil, fmt.Errorf("bpftrace exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("bpftrace: no probe attached after 60s: %s", out.String())
		}
	}
	time.Sleep(100 * time.Millisecond) // the event is opened just before the program is attached to it
	return func() error {
		stop()
		// The map is printed at exit: "@[824634916864]: 1234567".
		var hits uint64
		for _, l := range strings.Split(out.String(), "\n") {
			if _, v, ok := strings.Cut(l, "]: "); ok && strings.HasPrefix(l, "@[") {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				hits += n
			}
		}
		if hits == 0 {
			return fmt.Errorf("bpftrace counted no hits: %s", strings.TrimSpace(out.String()))
		}
		return nil
	}, nil
}

// holdsPerfEvent says whether process pid has a perf event open.
func holdsPerfEvent(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/" + e.Name()); l == "anon_inode:[perf_event]" {
			return true
		}
	}
	return false
}
