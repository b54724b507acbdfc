package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// Section 6: real servers under their own load clients, each traced once
// with default flags, and what the report says about them: is it short
// enough to read, does it put the real bottleneck first, did it lose
// events. Everything listens on 127.0.0.1 and every load ends by itself.
const (
	realWarm  = 2 * time.Second  // untraced warm-up, which also sizes etcd's load
	realLoad  = 10 * time.Second // the load run maptrace traces
	realTrace = 8 * time.Second  // maptrace attach -d, inside the load run
)

// The limits a report on a real server must keep (the test of
// servers_test.go asserts them on nats-server; section 6 reports them for
// every server).
const (
	maxFindings  = 15
	maxTextLines = 200
)

// RealServer is one server's traced run.
type RealServer struct {
	Name    string
	Version string // the module version built
	Module  string
	BinSize int64
	Build   string // how long the build took, or "cached"
	Load    string // what the load client does
	Unit    string // what its throughput counts
	// Untraced is the warm-up's throughput; Traced the traced run's, with
	// LoadDetail the client's own breakdown of it.
	Untraced   float64
	Traced     float64
	LoadDetail string
	Attach     time.Duration
	Stats      ReportStats
	Result     *TraceResult
	Text       string // the report as text, rendered from the JSON
}

// ReportStats are what section 6 and the test read off one report.
type ReportStats struct {
	// Findings are those the text report shows (Critical, Warnings and
	// Info of them); Below those under the threshold, kept in the JSON only.
	Findings, Critical, Warnings, Info int
	Below                              int
	First                              string // the first finding's title
	Lost                               uint64
	TextLines                          int
	Maps, Mutexes                      int
	// SharedWriter says a warning calls a map "written by more than one
	// goroutine" without saying that the writes interleaved: the warning
	// that every per-request map raised.
	SharedWriter bool
	// MapWarnings are the titles of the warnings about a map that do not
	// say its writes interleaved.
	MapWarnings []string
	// Top is the mutex with the most total wait, TopWhere the first frame
	// outside sync and the runtime of its longest-waiting waiter stack.
	Top      *report.Mutex
	TopWhere string
	// TopIsBottleneck says Top was waited for where the server's known
	// bottleneck is (serverDef.bottleneck): the load showed it.
	// BottleneckFirst says the first finding names that place.
	TopIsBottleneck, BottleneckFirst bool
}

// statsOf reads a report and its text rendering; bottleneck are the
// functions where the server's known bottleneck is waited for.
func statsOf(r *report.Report, text string, bottleneck []string) ReportStats {
	s := ReportStats{
		Lost:      r.Overhead.LostEvents,
		TextLines: strings.Count(text, "\n"),
		Maps:      len(r.Maps),
		Mutexes:   len(r.Mutexes),
	}
	if len(r.Findings) > 0 {
		s.First = r.Findings[0].Title
	}
	for _, f := range r.Findings {
		if f.BelowThreshold {
			s.Below++
			continue
		}
		s.Findings++
		switch f.Severity {
		case report.SeverityCritical:
			s.Critical++
		case report.SeverityWarning:
			s.Warnings++
		default:
			s.Info++
		}
		if f.Severity != report.SeverityWarning {
			continue
		}
		interleaved := strings.Contains(strings.ToLower(f.Title+" "+f.Detail), "interleav")
		shared := strings.Contains(f.Title, "written by more than one goroutine")
		if shared && !interleaved {
			s.SharedWriter = true
		}
		if (shared || strings.HasPrefix(f.Title, "map ")) && !interleaved {
			s.MapWarnings = append(s.MapWarnings, f.Title)
		}
	}
	for i := range r.Mutexes {
		if m := &r.Mutexes[i]; s.Top == nil || m.WaitNS > s.Top.WaitNS {
			s.Top = m
		}
	}
	if s.Top != nil {
		s.TopWhere = longestWaitSite(*s.Top)
	}
	for _, fn := range bottleneck {
		if strings.Contains(report.FrameFunc(s.TopWhere), fn) {
			s.TopIsBottleneck = true
		}
		if f := r.Findings; len(f) > 0 && strings.Contains(f[0].Title+" "+f[0].Detail, fn) {
			s.BottleneckFirst = true
		}
	}
	return s
}

// longestWaitSite is the code that asked for the lock in the waiter stack
// with the most wait.
func longestWaitSite(m report.Mutex) string {
	var best *report.Waiter
	for i := range m.Waiters {
		if w := &m.Waiters[i]; best == nil || w.WaitNS > best.WaitNS {
			best = w
		}
	}
	if best == nil {
		return ""
	}
	return waitSite(report.Mutex{Waiters: []report.Waiter{*best}})
}

// server is a started server: its processes (the traced one last) and its
// load client.
type server struct {
	procs []*child
	// load runs the load client for about d and returns its throughput and
	// its own breakdown of it.
	load func(d time.Duration) (float64, string, error)
}

func (s *server) pid() int { return s.procs[len(s.procs)-1].cmd.Process.Pid }

func (s *server) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
}

// serverDef is how to build, start and load one server.
type serverDef struct {
	name, module string
	bins         []string // the binaries of build() it needs
	load, unit   string
	// bottleneck are the functions where the lock with the most wait is
	// waited for under this load, read off the reports (see BENCHMARKS.md):
	// the first finding should name one of them.
	bottleneck []string
	start      func(b *Binaries, dir string) (*server, error)
}

var serverDefs = []serverDef{
	{
		name: "nats-server", module: "github.com/nats-io/nats-server/v2", bins: []string{"nats-server", "nats-load"},
		load: fmt.Sprintf("bench/nats/load (nats.go): %d publishers, %d subscribers each receiving every message, %d-byte messages, at most 8192 outstanding",
			natsPubs, natsSubs, natsSize),
		unit: "msgs delivered/s",
		// The subscriber's client.mu, which the publishers' readLoops
		// take to deliver to it and its writeLoop to flush.
		bottleneck: []string{"server.(*client).deliverMsg"},
		start:      startNats,
	},
	{
		name: "etcd", module: "go.etcd.io/etcd/server/v3", bins: []string{"etcd", "etcd-benchmark"},
		load: "etcd's own benchmark tool, two at once: `put` (32 clients on 4 connections, 256-byte values, random keys of 10000) " +
			"and linearizable `range a z --limit 100` (32 clients on 4 connections), in rounds of about 2 s until the run's time is up",
		unit: "requests/s (puts + ranges)",
		// The backend's read path: the shared read transaction's txMu,
		// which every range Locks to open a bolt cursor, and its mu, which
		// ranges RLock while the batch commit holds it. Which of the two
		// has more wait changes from run to run.
		bottleneck: []string{"backend.(*baseReadTx).UnsafeRange"},
		start:      startEtcd,
	},
	{
		name: "caddy", module: "github.com/caddyserver/caddy/v2", bins: []string{"caddy", "hey", "caddy-backend"},
		load: "hey: 32 workers (at most 1000 requests/s each) GET through Caddy's `reverse_proxy` to bench/caddy/backend " +
			"(Go net/http, 512-byte JSON)",
		unit: "requests/s",
		// The proxy's http.Transport idleMu: every request takes an idle
		// upstream connection from the pool and puts it back.
		bottleneck: []string{"http.(*Transport).tryPutIdleConn", "http.(*Transport).queueForIdleConn"},
		start:      startCaddy,
	},
	{
		name: "coredns", module: "github.com/coredns/coredns", bins: []string{"coredns", "dns-load"},
		load: fmt.Sprintf("bench/coredns/load (miekg/dns): %d clients, each on its own UDP socket, query A records of %d hosts of a zone "+
			"(the `file` plugin behind `cache`), the names Zipf-distributed (s = 1.2)", dnsClients, dnsHosts),
		unit: "answers/s",
		// The write lock of the one UDP socket every answer is written to:
		// each write holds it for its system call, waited for in
		// miekg/dns's write below net's.
		bottleneck: []string{"dns.WriteToSessionUDP"},
		start:      startCoreDNS,
	},
}

// serverBins are the binaries every server needs, for build().
func serverBins(names ...string) []string {
	out := []string{"maptrace"}
	for _, d := range serverDefs {
		if len(names) == 0 || slices.Contains(names, d.name) {
			out = append(out, d.bins...)
		}
	}
	return out
}

// measureServers runs section 6 on every server, or the named ones. A
// server that fails is reported and the others still run.
func measureServers(cfg *Config, bins *Binaries, logf func(string, ...any), names ...string) ([]*RealServer, error) {
	var out []*RealServer
	var errs []error
	for _, d := range serverDefs {
		if len(names) > 0 && !slices.Contains(names, d.name) {
			continue
		}
		rs, err := measureServer(cfg, bins, d, logf)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
			logf("real server %s failed: %v", d.name, err)
			continue
		}
		out = append(out, rs)
		if cfg.Reports != "" {
			if err := saveReports(cfg.Reports, rs); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return out, errors.Join(errs...)
}

func measureServer(cfg *Config, bins *Binaries, d serverDef, logf func(string, ...any)) (*RealServer, error) {
	rs := &RealServer{Name: d.name, Module: d.module, Version: bins.Versions[d.bins[0]], Load: d.load, Unit: d.unit}
	bin := binOf(bins, d.bins[0])
	if st, err := os.Stat(bin); err == nil {
		rs.BinSize = st.Size()
	}
	rs.Build = "cached"
	if t, ok := bins.BuildTime[d.bins[0]]; ok {
		rs.Build = t.Round(time.Second).String()
	}
	dir, err := os.MkdirTemp(cfg.Tmp, d.name+"-")
	if err != nil {
		return nil, err
	}
	srv, err := d.start(bins, dir)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if rs.Untraced, _, err = srv.load(realWarm); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	t, err := startTrace(bins.Maptrace, cfg.Tmp, srv.pid(), "-d", realTrace.String())
	if err != nil {
		return nil, err
	}
	type loaded struct {
		v      float64
		detail string
		err    error
	}
	done := make(chan loaded, 1)
	go func() {
		v, detail, err := srv.load(realLoad)
		done <- loaded{v, detail, err}
	}()
	res, err := t.Wait(realTrace + 2*time.Minute)
	l := <-done
	if err != nil {
		return nil, err
	}
	if l.err != nil {
		return nil, fmt.Errorf("traced load: %w", l.err)
	}
	rs.Traced, rs.LoadDetail, rs.Result, rs.Attach = l.v, l.detail, res, res.Attach
	var text bytes.Buffer
	if err := report.WriteText(&text, res.Report); err != nil {
		return nil, err
	}
	rs.Text = text.String()
	rs.Stats = statsOf(res.Report, rs.Text, d.bottleneck)
	s := rs.Stats
	logf("%s: %.0f %s untraced, %.0f traced; %d findings (%d warnings), first %q; %d lost events; %d text lines; %d maps; top mutex waited for in %s",
		d.name, rs.Untraced, d.unit, rs.Traced, s.Findings, s.Warnings, s.First, s.Lost, s.TextLines, s.Maps, s.TopWhere)
	return rs, nil
}

// saveReports writes a server's raw report as JSON and as text into dir.
func saveReports(dir string, rs *RealServer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, rs.Name+".json"), rs.Result.JSON, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, rs.Name+".txt"), []byte(rs.Text), 0o644)
}

func binOf(b *Binaries, name string) string {
	return map[string]string{"nats-server": b.NatsServer, "etcd": b.Etcd, "caddy": b.Caddy, "coredns": b.CoreDNS}[name]
}

// child is a process the harness started and alone stops, by its own pid.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startChild(name, dir string, env []string, bin string, args ...string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	return c, nil
}

// listening waits until every address accepts a connection.
func (c *child) listening(addrs ...string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-c.done:
				return fmt.Errorf("%s exited before listening on %s: %v\n%s", c.name, a, c.cmd.ProcessState, c.out.String())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not listen on %s: %v\n%s", c.name, a, err, c.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// stop ends the child with SIGTERM, which every server here handles as a
// clean shutdown (SIGINT may be ignored when the harness runs in the
// background), and SIGKILL if it is still there after 20s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// runClient runs a load client to its end, killing it (by its pid) if it
// overruns timeout.
func runClient(timeout time.Duration, bin string, args ...string) (string, error) {
	c, err := startChild(filepath.Base(bin), "", nil, bin, args...)
	if err != nil {
		return "", err
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		<-c.done
		return "", fmt.Errorf("%s did not end within %v\n%s", filepath.Base(bin), timeout, c.out.String())
	}
	if !c.cmd.ProcessState.Success() {
		return "", fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), c.cmd.ProcessState, c.out.String())
	}
	return c.out.String(), nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func freePorts(n int) ([]int, error) {
	var ps []int
	seen := map[int]bool{}
	for len(ps) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// nats-server: no monitoring port, no cluster (its defaults), one client
// port on loopback.
func startNats(b *Binaries, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := startChild("nats-server", dir, nil, b.NatsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	s := &server{procs: []*child{srv}}
	if err := srv.listening(loopback(port)); err != nil {
		s.stop()
		return nil, err
	}
	url := "nats://" + loopback(port)
	s.load = func(d time.Duration) (float64, string, error) {
		v, err := natsLoad(b.NatsLoad, url, d.Seconds())
		return v, "", err
	}
	return s, nil
}

// etcd: a single member whose client and peer URLs are on loopback (its
// defaults are localhost:2379 and :2380, which another etcd may hold), its
// data in the run's temporary directory, no metrics listener (the default).
func startEtcd(b *Binaries, dir string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client, peer := "http://"+loopback(ports[0]), "http://"+loopback(ports[1])
	srv, err := startChild("etcd", dir, nil, b.Etcd, "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer, "--initial-cluster-state", "new", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	s := &server{procs: []*child{srv}}
	if err := srv.listening(loopback(ports[0]), loopback(ports[1])); err != nil {
		s.stop()
		return nil, err
	}
	ep := []string{"--endpoints", loopback(ports[0]), "--conns", "4", "--clients", "32"}
	// The benchmark tool stops after a count, not a time: a run is rounds
	// of both commands side by side until d is up, each sized from the
	// command's rate in the round before to last about 2s (the first, of a
	// fixed count, to find the rates). Each round connects anew, as
	// clients of a real etcd come and go.
	var putRate, rangeRate float64
	s.load = func(d time.Duration) (float64, string, error) {
		start := time.Now()
		var puts, ranges int
		for time.Since(start) < d-100*time.Millisecond {
			np, nr := 1000, 2000
			if putRate > 0 {
				left := min(2*time.Second, d-time.Since(start)).Seconds()
				np, nr = max(100, int(putRate*left)), max(100, int(rangeRate*left))
			}
			type ran struct {
				rate float64
				err  error
			}
			run := func(n int, args ...string) chan ran {
				ch := make(chan ran, 1)
				go func() {
					t0 := time.Now()
					args = append(append(append([]string{}, ep...), args...), "--total", strconv.Itoa(n))
					_, err := runClient(d+2*time.Minute, b.EtcdBench, args...)
					ch <- ran{float64(n) / time.Since(t0).Seconds(), err}
				}()
				return ch
			}
			pc := run(np, "put", "--key-size", "8", "--val-size", "256", "--key-space-size", "10000")
			rc := run(nr, "range", "a", "z", "--limit", "100")
			p, r := <-pc, <-rc
			if err := errors.Join(p.err, r.err); err != nil {
				return 0, "", err
			}
			putRate, rangeRate = p.rate, r.rate
			puts, ranges = puts+np, ranges+nr
		}
		secs := time.Since(start).Seconds()
		return float64(puts+ranges) / secs, fmt.Sprintf("%.0f puts/s + %.0f ranges/s", float64(puts)/secs, float64(ranges)/secs), nil
	}
	return s, nil
}

var requestsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// requestsPerSec reads the "Requests/sec:" line that etcd's benchmark tool
// and hey both print.
func requestsPerSec(out string) (float64, error) {
	m := requestsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no Requests/sec in the client's output:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// caddyfile proxies one loopback site to the backend. Caddy's defaults
// would bind every interface, serve the admin API on localhost:2019, and
// try to get certificates; here everything binds 127.0.0.1, there is no
// admin API, no automatic HTTPS, and its storage is the run's directory.
const caddyfile = `{
	admin off
	auto_https off
	default_bind 127.0.0.1
	storage file_system %s
	log {
		level ERROR
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:%d
}
`

func startCaddy(b *Binaries, dir string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	front, back := ports[0], ports[1]
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyfile, filepath.Join(dir, "storage"), front, back)), 0o644); err != nil {
		return nil, err
	}
	s := &server{}
	be, err := startChild("backend", dir, nil, b.Backend, "-addr", loopback(back))
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, be)
	if err := be.listening(loopback(back)); err != nil {
		s.stop()
		return nil, err
	}
	// Caddy keeps its data and autosaved config under HOME and XDG_*: the
	// run's directory, not the user's.
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	cd, err := startChild("caddy", dir, env, b.Caddy, "run", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.procs = append(s.procs, cd)
	if err := cd.listening(loopback(front)); err != nil {
		s.stop()
		return nil, err
	}
	url := "http://" + loopback(front) + "/api/items"
	s.load = func(d time.Duration) (float64, string, error) {
		out, err := runClient(d+time.Minute, b.Hey, "-z", d.String(), "-c", "32", "-q", "1000", url)
		if err != nil {
			return 0, "", err
		}
		if !strings.Contains(out, "[200]") {
			return 0, "", fmt.Errorf("hey: no 200 responses:\n%s", out)
		}
		v, err := requestsPerSec(out)
		detail := ""
		if strings.Contains(out, "Error distribution") {
			detail = "some requests failed"
		}
		return v, detail, err
	}
	return s, nil
}

// CoreDNS's load: clients and the zone's hosts.
const (
	dnsClients = 32
	dnsHosts   = 1000
)

// corefile serves one zone from a file, behind a cache, on one loopback
// UDP and TCP port; nothing else listens (no health, metrics or pprof
// endpoints unless configured).
const corefile = `example.org.:%d {
	bind 127.0.0.1
	cache 30
	file %s example.org.
}
`

func startCoreDNS(b *Binaries, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var zone strings.Builder
	zone.WriteString("$ORIGIN example.org.\n$TTL 3600\n@ IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 3600\n@ IN NS ns.example.org.\nns IN A 127.0.0.1\n")
	for i := range dnsHosts {
		fmt.Fprintf(&zone, "host%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	db, conf := filepath.Join(dir, "db.example.org"), filepath.Join(dir, "Corefile")
	if err := os.WriteFile(db, []byte(zone.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(corefile, port, db)), 0o644); err != nil {
		return nil, err
	}
	srv, err := startChild("coredns", dir, nil, b.CoreDNS, "-conf", conf)
	if err != nil {
		return nil, err
	}
	s := &server{procs: []*child{srv}}
	addr := loopback(port)
	// A UDP server is ready when it answers, not when a port accepts.
	if _, err := runClient(time.Minute, b.DNSLoad, "-addr", addr, "-ready", "30s"); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w\n%s", err, srv.out.String())
	}
	s.load = func(d time.Duration) (float64, string, error) {
		out, err := runClient(d+time.Minute, b.DNSLoad, "-addr", addr, "-c", strconv.Itoa(dnsClients),
			"-names", strconv.Itoa(dnsHosts), "-d", d.String())
		if err != nil {
			return 0, "", err
		}
		var ok, failed int
		var secs, rate float64
		if _, err := fmt.Sscanf(out, "answers %d failed %d seconds %g answers/s %g", &ok, &failed, &secs, &rate); err != nil {
			return 0, "", fmt.Errorf("dns load said %q: %v", out, err)
		}
		detail := ""
		if failed > 0 {
			detail = fmt.Sprintf("%d queries failed", failed)
		}
		return rate, detail, nil
	}
	return s, nil
}
