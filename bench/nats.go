package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// NatsLoad is the load section 3 drives.
const (
	natsPubs = 4
	natsSubs = 4
	natsSize = 128
)

// Nats is section 3: nats-server under a publish/subscribe load, untraced
// and traced, interleaved.
type Nats struct {
	Version  string
	BinSize  int64
	Seconds  float64
	Untraced Dist // messages delivered per second, every untraced run
	Modes    []NatsMode
	// Control is an untraced run in a traced run's place: what the
	// measurement says with nothing traced.
	Control NatsMode
	Top     []NatsMutex // from the default mode's reports
}

// NatsMode is nats-server traced one way.
type NatsMode struct {
	Mode   TraceMode
	Traced Dist // messages delivered per second
	Ratio  Dist // traced / the untraced run just before it
	// CPURatio is the same per second of nats-server's CPU time
	// (TracedRuns.CPURatio).
	CPURatio Dist
	Kernel   Dist // nats-server's kernel share traced less untraced (TracedRuns.Kernel)
	// KernelStep is one tick's share of the traced run's CPU time
	// (TracedRuns.KernelStep).
	KernelStep Dist
	Results    []*TraceResult
}

// natsModes are the ways nats-server is traced: as a user would, then with
// either kind of probe alone, to tell which costs what.
var natsModes = []TraceMode{
	defaultMode,
	overhead1Mode,
	{Name: "--no-maps (mutex probes only)", Args: []string{"--no-maps"}},
	{Name: "--no-mutex (map probes only, --overhead 5)", Args: []string{"--no-mutex"}},
	agentMode,
}

// NatsMutex is one mutex maptrace found contended in nats-server, summed
// over the traced runs.
type NatsMutex struct {
	Name        string // the report's name, else where it was waited for
	Kind        string
	Contentions uint64
	WaitNS      uint64
	MaxWaitNS   uint64
	Where       string // the first frame outside sync and the runtime of the top waiter
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func measureNats(cfg *Config, bins *Binaries, logf func(string, ...any)) (*Nats, error) {
	n := &Nats{Version: bins.NatsVersion, Seconds: cfg.NatsSeconds}
	if st, err := os.Stat(bins.NatsServer); err == nil {
		n.BinSize = st.Size()
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv := exec.Command(bins.NatsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	srvErr := &lockedBuffer{}
	srv.Stdout, srv.Stderr = srvErr, srvErr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nats-server did not listen on %s: %v\n%s", addr, err, srvErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	url := "nats://" + addr
	load := func(seconds float64) (float64, error) { return natsLoad(bins.NatsLoad, url, seconds) }
	if _, err := load(0.5); err != nil { // warm up: connections, buffers
		return nil, err
	}
	pid := srv.Process.Pid
	for _, m := range withBefore(natsModes, cfg.Before, cfg.BeforeVersion) {
		n.Modes = append(n.Modes, NatsMode{Mode: m})
	}
	n.Control.Mode = TraceMode{Name: "untraced again (a control: no maptrace, in a traced run's place)"}
	// run is one run of the load, traced by mode (nil: untraced).
	type run struct {
		msgs float64
		cpu  cpuUse
		res  *TraceResult
	}
	runLoad := func(nm *NatsMode) (r run, err error) {
		work := func() (err error) {
			r.cpu, err = measureCPU(pid, func() (err error) {
				r.msgs, err = load(cfg.NatsSeconds)
				return err
			})
			return err
		}
		switch {
		case nm == nil || nm == &n.Control:
			err = work()
		case nm.Mode.Agent:
			r.res, err = agentDuring(nm.Mode.bin(bins.Maptrace), bins.NatsServer, cfg.NatsSeconds, work)
		default:
			r.res, err = traceDuring(nm.Mode.bin(bins.Maptrace), cfg.Tmp, pid, nm.Mode.Args, work)
		}
		return r, err
	}
	perCPU := func(r run) float64 { return r.msgs / r.cpu.CPU.Seconds() }
	// Each traced run is set against the untraced runs just before and
	// after it, so that a server slowing down or speeding up over a round
	// moves both alike; every other round takes the modes in reverse order.
	order := []*NatsMode{&n.Control}
	for i := range n.Modes {
		order = append(order, &n.Modes[i])
	}
	for round := 0; round < cfg.N; round++ {
		if round > 0 {
			slices.Reverse(order)
		}
		before, err := runLoad(nil)
		if err != nil {
			return nil, err
		}
		n.Untraced.Add(before.msgs)
		for _, nm := range order {
			t, err := runLoad(nm)
			if err != nil {
				return nil, err
			}
			after, err := runLoad(nil)
			if err != nil {
				return nil, err
			}
			n.Untraced.Add(after.msgs)
			u := (before.msgs + after.msgs) / 2
			nm.Traced.Add(t.msgs)
			nm.Ratio.Add(t.msgs / u)
			cpuRatio := math.NaN()
			if t.cpu.CPU > 0 && before.cpu.CPU > 0 && after.cpu.CPU > 0 {
				cpuRatio = perCPU(t) / ((perCPU(before) + perCPU(after)) / 2)
				nm.CPURatio.Add(cpuRatio)
			}
			nm.Kernel.Add(t.cpu.Kernel - (before.cpu.Kernel+after.cpu.Kernel)/2)
			nm.KernelStep.Add(t.cpu.Step)
			attach := "no maptrace"
			if t.res != nil {
				nm.Results = append(nm.Results, t.res)
				attach = "attach " + t.res.Attach.Round(time.Millisecond).String()
			}
			logf("nats round %d/%d, %s: %.0f and %.0f msgs/s untraced, %.0f traced (%.3f; %.3f per CPU-second), %s",
				round+1, cfg.N, nm.Mode.Name, before.msgs, after.msgs, t.msgs, t.msgs/u, cpuRatio, attach)
			before = after
		}
	}
	n.Top = topMutexes(n.Modes[0].Results, 5)
	return n, nil
}

// topMutexes sums the traced runs' mutexes by name (or, unnamed, by where
// they were waited for) and kind, most wait first.
func topMutexes(rs []*TraceResult, k int) []NatsMutex {
	by := map[string]*NatsMutex{}
	for _, r := range rs {
		for _, m := range r.Report.Mutexes {
			where := waitSite(m)
			name := m.Name
			if name == "" {
				name = "(unnamed)"
			}
			key := name + "|" + m.Kind + "|" + where
			if m.Name != "" {
				key = m.Name + "|" + m.Kind
			}
			x := by[key]
			if x == nil {
				x = &NatsMutex{Name: name, Kind: m.Kind, Where: where}
				by[key] = x
			}
			x.Contentions += m.Contentions
			x.WaitNS += m.WaitNS
			x.MaxWaitNS = max(x.MaxWaitNS, m.MaxWaitNS)
		}
	}
	var out []NatsMutex
	for _, x := range by {
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].WaitNS != out[j].WaitNS {
			return out[i].WaitNS > out[j].WaitNS
		}
		return out[i].Name < out[j].Name
	})
	return out[:min(k, len(out))]
}

// waitSite is where a mutex's top waiter asked for the lock: the first
// frame the report shows of its stack (report.UserFrames).
func waitSite(m report.Mutex) string {
	for _, w := range m.Waiters {
		if len(w.Stack) > 0 {
			return report.UserFrames(w.Stack)[0]
		}
	}
	return ""
}

// natsLoad runs bench/nats/load against url for seconds and returns the
// messages it delivered per second.
func natsLoad(bin, url string, seconds float64) (float64, error) {
	d := time.Duration(seconds * float64(time.Second))
	cmd := exec.Command(bin, "-url", url, "-pubs", strconv.Itoa(natsPubs), "-subs", strconv.Itoa(natsSubs),
		"-size", strconv.Itoa(natsSize), "-d", d.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("nats load: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 7 || f[0] != "load" || f[3] != "delivered" || f[5] != "seconds" {
		return 0, fmt.Errorf("nats load said %q", out)
	}
	msgs, err1 := strconv.ParseFloat(f[4], 64)
	secs, err2 := strconv.ParseFloat(f[6], 64)
	if err1 != nil || err2 != nil || secs <= 0 {
		return 0, fmt.Errorf("nats load said %q", out)
	}
	return msgs / secs, nil
}
