// Package agent traces every selected Go process of a node for as long as
// it runs, as `maptrace agent` does: it scans /proc, starts a trace
// (package trace, the pipeline attach uses) on each new Go process its
// patterns select, ends it when the process exits, and exports them all
// through one metrics.Fleet.
//
// A process is known by its pid, start time and executable file, so that a
// reused pid or an exec is a new process. Executables are read once each,
// shared by all their processes. The agent never traces itself.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/maptrace/maptrace/internal/calibrate"
	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/metrics"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
	"github.com/maptrace/maptrace/internal/trace"
)

// Config is what the agent traces and how.
type Config struct {
	// Patterns select the processes to trace; none: every Go process.
	Patterns []Pattern
	// Mutex and Maps are what to trace in each, as attach's --mutex and
	// --maps.
	Mutex, Maps bool
	// Overhead is each process's budget, in percent of its CPU time.
	Overhead float64
	// Keys is how map keys are shown (collector.KeysRaw, KeysHash, KeysNone).
	Keys string
	// Log receives one line per event: a trace started or ended, a process
	// that could not be traced.
	Log io.Writer
	// Every is how often /proc is scanned; DefaultEvery if zero.
	Every time.Duration
	// Containerd is the containerd socket the Kubernetes labels of a
	// container's processes are read from; "" reads none.
	Containerd string
	// ServiceLabel is the pod label whose value is a pod's processes'
	// service; "" for none.
	ServiceLabel string
}

// DefaultEvery is the scan period: a process is traced within about that
// long of its start, and a scan of a few hundred processes costs a few
// milliseconds.
const DefaultEvery = 2 * time.Second

// Agent traces the selected processes. Create it with New, run it with Run.
type Agent struct {
	cfg   Config
	self  int
	fleet *metrics.Fleet
	bins  *binaries
	pods  *pods
	log   *lineLog

	mu      sync.Mutex
	traced  map[key]*traced
	skipped map[key]string // processes not traced: the reason, logged once
	waiting map[key]bool   // processes another tracer traces: said once, judged again each scan
	costs   map[costKey]calibrate.Cost
	wg      sync.WaitGroup

	// sampler samples every traced process's CPU time: one program and
	// one clock per CPU for the node, not per process. Nil if it could not
	// start; each trace then tries its own.
	sampler *cpuprof.Program
}

// traced is a process being traced.
type traced struct {
	proc   Process
	sess   *trace.Session
	cancel context.CancelFunc
	noted  bool // its pid was seen reused or exec'd, and said so
}

// costKey is what a probe hit's cost depends on: the calibrated cost of one
// is reused for every binary with the same.
type costKey struct {
	layout probes.MapLayout
	goid   uint64
}

// New returns an agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Every == 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	log := &lineLog{w: cfg.Log}
	return &Agent{
		cfg:  cfg,
		self: os.Getpid(),
		fleet: metrics.NewFleet(cfg.Keys, metrics.LabelService, metrics.LabelContainerID,
			metrics.LabelNamespace, metrics.LabelPod, metrics.LabelContainer),
		bins:    newBinaries(),
		pods:    newPods(cfg.Containerd, cfg.ServiceLabel, log),
		log:     log,
		traced:  map[key]*traced{},
		skipped: map[key]string{},
		waiting: map[key]bool{},
		costs:   map[costKey]calibrate.Cost{},
	}
}

// Run scans and traces until ctx is done, then ends every trace.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Mutex || a.cfg.Maps {
		sp, err := cpuprof.Open(a.cfg.Overhead / 100)
		if err != nil {
			a.log.printf("note: no shared CPU sampling: %v", err)
		} else {
			a.sampler = sp
			defer sp.Close() // after every trace has ended
		}
	}
	sessions, stopAll := context.WithCancel(context.Background())
	defer func() {
		stopAll()
		a.wg.Wait()
		a.pods.close()
	}()
	t := time.NewTicker(a.cfg.Every)
	defer t.Stop()
	for {
		if err := a.scan(ctx, sessions); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scan looks at every process once: it starts tracing the new ones
// selected, and ends the traces of processes that exec'd.
func (a *Agent) scan(ctx, sessions context.Context) error {
	list, err := pids()
	if err != nil {
		return fmt.Errorf("scan processes: %w", err)
	}
	seen := map[key]bool{}
	running := map[symbols.FileID]bool{}
	linked := lazyLinks()
	for _, pid := range list {
		if ctx.Err() != nil {
			return nil
		}
		p, ok := identify(pid)
		if !ok {
			continue
		}
		k := p.key()
		seen[k] = true
		running[p.File] = true
		a.mu.Lock()
		_, isTraced := a.traced[k]
		_, isSkipped := a.skipped[k]
		a.mu.Unlock()
		if isTraced || isSkipped {
			continue
		}
		a.noteReplaced(&p)
		if !a.bins.buildInfo(&p) {
			continue // exited since identify: not worth a word
		}
		v := a.judge(&p, linked)
		if !v.trace {
			a.skip(&p, v)
			continue
		}
		a.attach(sessions, p)
	}
	a.mu.Lock()
	for k := range a.skipped {
		if !seen[k] {
			delete(a.skipped, k)
		}
	}
	for k := range a.waiting {
		if !seen[k] {
			delete(a.waiting, k)
		}
	}
	inContainers := map[string]bool{}
	for _, t := range a.traced {
		inContainers[t.proc.ContainerID] = true
	}
	a.mu.Unlock()
	a.bins.prune(running)
	a.pods.prune(inContainers)
	return nil
}

// noteReplaced ends the trace of a process whose pid p now has: one that
// exec'd another program (same start, another file), whose old trace would
// see nothing more, or one that exited and whose pid was reused.
func (a *Agent) noteReplaced(p *Process) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, t := range a.traced {
		if k.pid != p.PID || t.noted {
			continue
		}
		t.noted = true
		if k.start == p.Start {
			a.log.printf("pid %d (%s) now runs %s: its trace ends", p.PID, t.proc.Service(), p.Exe)
		} else {
			a.log.printf("pid %d (%s) exited and its pid is now %s's: its trace ends", p.PID, t.proc.Service(), p.Exe)
		}
		t.cancel()
	}
}

// verdict is whether to trace a process, and why or why not.
type verdict struct {
	trace  bool
	reason string
	// fail is the metrics.Fail* reason when a selected process cannot be
	// traced (worth a log line), "" when it simply is not selected.
	fail string
	// recheck: the reason may pass (another tracer may detach).
	recheck bool
}

// judge decides whether to trace p, whose build information is read.
func (a *Agent) judge(p *Process, linked func() map[int]bool) verdict {
	if p.PID == a.self {
		return verdict{reason: "maptrace itself"}
	}
	if p.IsGo() || len(a.cfg.Patterns) > 0 {
		p.ContainerID = containerOf(p.PID)
		pd := a.pods.of(p.ContainerID)
		p.Namespace, p.Pod, p.Container, p.App = pd.Namespace, pd.Name, pd.Container, pd.Service
	}
	why := "every Go process (no --match)"
	if len(a.cfg.Patterns) > 0 {
		m, ok := matching(a.cfg.Patterns, p)
		if !ok {
			return verdict{reason: "not matched by --match"}
		}
		why = "matches --match " + string(m)
	}
	if !p.IsGo() {
		if len(a.cfg.Patterns) == 0 {
			return verdict{reason: "not a Go program"}
		}
		return verdict{reason: "not a Go program", fail: metrics.FailNotGo}
	}
	if minor := probes.GoMinor(p.GoVersion); minor > 0 && minor < 19 {
		return verdict{reason: "unsupported Go version " + p.GoVersion + " (maptrace traces Go 1.19 or newer)", fail: metrics.FailUnsupported}
	}
	if linked()[p.PID] && !a.tracing(p.PID) {
		return verdict{reason: "already traced: another tracer's uprobes are on it", recheck: true}
	}
	return verdict{trace: true, reason: why}
}

// tracing reports whether the agent traces a process of pid: its links
// stay until that trace has ended.
func (a *Agent) tracing(pid int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.traced {
		if k.pid == pid {
			return true
		}
	}
	return false
}

// lazyLinks returns linkedPIDs, read on first use: once per scan at most,
// and only if a new Go process is selected.
func lazyLinks() func() map[int]bool {
	var m map[int]bool
	return func() map[int]bool {
		if m == nil {
			m = linkedPIDs()
		}
		return m
	}
}

// skip notes that p is not traced; a selected process that cannot be
// traced gets a log line, once.
func (a *Agent) skip(p *Process, v verdict) {
	if v.fail != "" {
		a.fail(p, v.fail, v.reason)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if v.recheck { // judged again next scan
		if !a.waiting[p.key()] {
			a.waiting[p.key()] = true
			a.log.printf("pid %d (%s): %s: traced once they are gone", p.PID, p.Exe, v.reason)
		}
		return
	}
	a.skipped[p.key()] = v.reason
}

// fail logs and counts a selected process that could not be traced.
func (a *Agent) fail(p *Process, reason, detail string) {
	a.fleet.AttachFailed(reason)
	a.log.printf("pid %d (%s): %s: not traced", p.PID, p.Exe, detail)
}

// attach starts tracing p; its trace ends when p exits, execs, or the agent
// stops.
func (a *Agent) attach(sessions context.Context, p Process) {
	k := p.key()
	bin, err := a.bins.acquire(&p)
	if err != nil {
		a.attachFailed(&p, err)
		return
	}
	goid, _, _ := bin.GoidOffset()
	ck := costKey{probes.LayoutFor(bin.GoVersion), goid}
	a.mu.Lock()
	cost := a.costs[ck]
	a.mu.Unlock()
	sess, err := trace.Start(trace.Options{
		PID:       p.PID,
		Mutex:     a.cfg.Mutex,
		Maps:      a.cfg.Maps,
		Overhead:  a.cfg.Overhead,
		Keys:      a.cfg.Keys,
		Log:       a.log.prefixed(fmt.Sprintf("pid %d (%s)", p.PID, p.Service()), p.Exe),
		Binary:    bin,
		StartTime: p.Start,
		HitCost:   cost,
		Sampler:   a.sampler,
	})
	if err != nil {
		a.bins.release(p.File)
		a.attachFailed(&p, err)
		return
	}
	ctx, cancel := context.WithCancel(sessions)
	t := &traced{proc: p, sess: sess, cancel: cancel}
	member := a.fleet.Add(sess, p.Service(), p.ContainerID, p.Namespace, p.Pod, p.Container)
	a.mu.Lock()
	a.costs[ck] = sess.HitCost()
	a.traced[k] = t
	a.mu.Unlock()
	where := ""
	if p.ContainerID != "" {
		where = ", container " + short(p.ContainerID)
	}
	if p.Pod != "" {
		where += ", pod " + p.Namespace + "/" + p.Pod
	}
	a.log.printf("pid %d (%s%s): tracing %s (%s)", p.PID, p.Service(), where, p.Exe, p.GoVersion)

	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r, err := sess.Wait(ctx)
		member.Remove(r)
		a.bins.release(p.File)
		a.mu.Lock()
		delete(a.traced, k)
		noted := t.noted
		a.mu.Unlock()
		cancel()
		switch {
		case sessions.Err() != nil: // the agent is stopping: no line per trace
		case noted: // said by noteReplaced
		case r != nil && r.TargetError != "":
			a.log.printf("pid %d (%s): died (%s): trace ended", p.PID, p.Service(), r.DiedIn())
		case r != nil && r.EndedBy == report.EndedByTargetExit:
			a.log.printf("pid %d (%s): exited: trace ended", p.PID, p.Service())
		case err != nil:
			a.log.printf("pid %d (%s): trace ended: %v", p.PID, p.Service(), flatten(err))
		}
	}()
}

// errExecd means a process runs another executable than when it was seen.
var errExecd = errors.New("it exec'd another program")

// attachFailed logs and counts a failed attach, once for the process.
func (a *Agent) attachFailed(p *Process, err error) {
	reason, detail := classify(p, err)
	a.fail(p, reason, detail)
	a.mu.Lock()
	a.skipped[p.key()] = detail
	a.mu.Unlock()
}

// classify says why p could not be traced: a metrics.Fail* reason and the
// words for it.
func classify(p *Process, err error) (reason, detail string) {
	switch {
	case !alive(p) || errors.Is(err, target.ErrNoProcess):
		return metrics.FailExited, "exited while maptrace attached"
	case errors.Is(err, errExecd), errors.Is(err, trace.ErrNotSameProcess):
		return metrics.FailExited, "exec'd another program while maptrace attached"
	case errors.Is(err, symbols.ErrNotGo):
		return metrics.FailNotGo, "not a Go program"
	case errors.Is(err, symbols.ErrUnsupportedVersion), errors.Is(err, symbols.ErrUnsupportedArch):
		return metrics.FailUnsupported, unsupported(err)
	}
	return metrics.FailError, "cannot trace it: " + flatten(err)
}

// failDetail is classify's words.
func failDetail(p *Process, err error) string {
	_, d := classify(p, err)
	return d
}

// unsupported is what symbols says after its sentinel: the version or
// architecture, and what is needed.
func unsupported(err error) string {
	for _, s := range []error{symbols.ErrUnsupportedVersion, symbols.ErrUnsupportedArch} {
		if _, d, ok := strings.Cut(err.Error(), s.Error()+": "); ok {
			return s.Error() + " " + d
		}
	}
	return err.Error()
}

// sessionsOf returns the traces whose process matches sel.
func (a *Agent) sessionsOf(sel func(*Process) bool) []*traced {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*traced
	for _, t := range a.traced {
		if sel(&t.proc) {
			out = append(out, t)
		}
	}
	return out
}

// short is a container ID as docker ps shows it.
func short(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}

// flatten is err on one line.
func flatten(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// lineLog writes whole lines, one writer at a time.
type lineLog struct {
	mu    sync.Mutex
	w     io.Writer
	notes map[string]bool // "exe\x00note" said already
}

func (l *lineLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "maptrace: "+format+"\n", args...)
}

// prefixed is a writer for a trace's own warnings ("maptrace: note: …"),
// which names the process after "maptrace: ". A note about the executable
// (symbols it lacks) is said once per executable, not once per process.
func (l *lineLog) prefixed(who, exe string) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			line = strings.TrimPrefix(line, "maptrace: ")
			if strings.HasPrefix(line, "note: ") {
				l.mu.Lock()
				said := l.notes[exe+"\x00"+line]
				if l.notes == nil {
					l.notes = map[string]bool{}
				}
				l.notes[exe+"\x00"+line] = true
				l.mu.Unlock()
				if said {
					continue
				}
			}
			l.printf("%s: %s", who, line)
		}
		return len(b), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
