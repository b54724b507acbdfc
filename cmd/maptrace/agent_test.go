package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maptrace/maptrace/internal/image"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// agentProc is a running maptrace agent and its stderr.
type agentProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lines
	done   chan struct{} // stderr closed
}

// startAgent runs maptrace agent on a free loopback port and waits for it
// to serve.
func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(maptrace, append([]string{"agent", "--listen", "127.0.0.1:0"}, args...)...)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, stderr: &lines{}, done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.stderr)
		}
	})
	serving := regexp.MustCompile(`serving metrics at http://(\S+)/metrics`)
	addr := make(chan string, 1)
	go func() {
		defer close(a.done)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			a.stderr.add(sc.Text())
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a.addr = <-addr:
	case <-a.done:
		t.Fatalf("agent exited: %s", a.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("agent does not serve after 20s: %s", a.stderr)
	}
	return a
}

// scrape reads /metrics.
func (a *agentProc) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// services are the service labels of maptrace_target_up 1, with each one's
// container_id.
func services(fams map[string]*dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for _, m := range fams["maptrace_target_up"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if m.GetGauge().GetValue() == 1 {
			out[l["service"]] = l["container_id"]
		}
	}
	return out
}

// waitServices scrapes until every one of want is traced, or fails after d.
func (a *agentProc) waitServices(t *testing.T, d time.Duration, want ...string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		fams := a.scrape(t)
		have := services(fams)
		missing := []string{}
		for _, s := range want {
			if _, ok := have[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, /metrics has no service %v (has %v)", d, missing, have)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLine waits for a stderr line containing all of parts.
func (a *agentProc) waitLine(t *testing.T, d time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, l := range strings.Split(a.stderr.String(), "\n") {
			if containsAll(l, parts...) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agent line with %q in %v", parts, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// linksOn counts the uprobe_multi links attached to process pid.
func linksOn(t *testing.T, pid int) int {
	t.Helper()
	n := 0
	for _, l := range uprobeLinks(t) {
		if l.pid == pid {
			n++
		}
	}
	return n
}

// uprobeLink is an uprobe_multi link: the process it is for and the
// executable it probes.
type uprobeLink struct {
	pid  int
	file string
}

// uprobeLinks lists the machine's uprobe_multi links.
func uprobeLinks(t *testing.T) []uprobeLink {
	t.Helper()
	var out []uprobeLink
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.UprobeMultiType {
			continue
		}
		um := info.UprobeMulti()
		p, _ := um.Pid()
		out = append(out, uprobeLink{pid: int(p), file: um.File})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list BPF links: %v", err)
	}
	return out
}

// linesOf returns the agent's lines about process pid, but for notes about
// its executable (said once per executable, whatever the process).
func (a *agentProc) linesOf(pid int) []string {
	var out []string
	for _, l := range strings.Split(a.stderr.String(), "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("maptrace: pid %d ", pid)) && !strings.Contains(l, "): note: ") {
			out = append(out, l)
		}
	}
	return out
}

// hasService reports whether any series of fams has service=name.
func hasService(fams map[string]*dto.MetricFamily, name string) bool {
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == name {
					return true
				}
			}
		}
	}
	return false
}

// copyExe copies an executable to dir/name: the test's own programs, under
// names and in a directory no other process on the machine has.
func copyExe(t *testing.T, src, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestAgent runs the agent on the test's own targets (selected by --match
// on their directory: it never looks at another process of the machine as
// a target): both are traced within 5s with their service labels, a third
// started later too, one killed is gone from the next scrape with its
// probes, a matched program that is not Go gets one log line, the survey
// says why of each, /report reports on one, and SIGTERM detaches all.
func TestAgent(t *testing.T) {
	testtarget.NeedRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	contention := copyExe(t, testtarget.Build(t, "../../testdata/contention", "local"), dir, "contention")
	maps := copyExe(t, testtarget.Build(t, "../../testdata/maps", "local"), dir, "maps")
	plain := copyExe(t, testtarget.Build(t, "../../testdata/plain", "local"), dir, "plain")
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	sleep := copyExe(t, sleepBin, dir, "sleep")
	execd := copyExe(t, contention, dir, "execd")
	match := dir + "/*"

	c := testtarget.Start(t, contention)
	m := testtarget.Start(t, maps)
	started := time.Now()
	a := startAgent(t, "--match", match)
	a.waitServices(t, 5*time.Second, "contention", "maps")
	t.Logf("two targets traced %v after the agent started", time.Since(started).Round(time.Millisecond))

	// A third, a program that is not Go, and a shell that the agent sees
	// before it execs a Go program: the same process, a new executable.
	started = time.Now()
	p := testtarget.Start(t, plain)
	s := exec.Command(sleep, "60")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Process.Kill(); s.Wait() })
	e := exec.Command("/bin/sh", "-c", "sleep 2.5; exec "+execd)
	eIn, err := e.StdinPipe() // kept open: the target exits at EOF
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eIn.Close(); e.Process.Kill(); e.Wait() })
	a.waitServices(t, 5*time.Second, "contention", "maps", "plain")
	t.Logf("a third target traced %v after its start", time.Since(started).Round(time.Millisecond))
	fams := a.waitServices(t, 2500*time.Millisecond+5*time.Second, "contention", "maps", "plain", "execd")
	t.Logf("a shell that exec'd a Go program traced %v after the exec", (time.Since(started) - 2500*time.Millisecond).Round(time.Millisecond))
	if id := services(fams)["plain"]; id != "" {
		t.Errorf("plain: container_id %q outside any container", id)
	}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pid" {
					t.Errorf("%s has a pid label", name)
				}
			}
		}
	}
	notGo := a.waitLine(t, 5*time.Second, fmt.Sprintf("pid %d ", s.Process.Pid), "not a Go program")
	t.Logf("not Go: %s", notGo)

	// The survey, while the agent runs: its targets are traced already.
	survey := func() map[int]string {
		t.Helper()
		out, stderr, code := run(t, "agent", "--survey", "--match", match)
		if code != 0 {
			t.Fatalf("survey: exit %d: %s", code, stderr)
		}
		rows := map[int]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				if pid, err := strconv.Atoi(f[0]); err == nil {
					rows[pid] = l
				}
			}
		}
		return rows
	}
	rows := survey()
	itself := false
	for _, r := range rows {
		itself = itself || containsAll(r, maptrace, "maptrace itself")
	}
	if !itself {
		t.Error("the survey does not list itself as maptrace itself")
	}
	for _, tc := range []struct {
		pid  int
		want []string
	}{
		{c.PID(), []string{" no ", contention, "already traced"}},
		{p.PID(), []string{" no ", plain, "already traced"}},
		{s.Process.Pid, []string{" no ", sleep, "not a Go program"}},
	} {
		if !containsAll(rows[tc.pid], tc.want...) {
			t.Errorf("survey row of pid %d: %q, want %q", tc.pid, rows[tc.pid], tc.want)
		}
	}

	// A report of one of them over a second, while it works.
	c.Send(t, "run 1500")
	resp, err := http.Get("http://" + a.addr + "/report?service=contention&seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/report: %s: %s", resp.Status, body)
	}
	r := parseReport(t, body)
	if r.Target.PID != c.PID() || r.Window.Seconds < 0.9 || r.Window.Seconds > 3 {
		t.Errorf("/report: pid %d over %.2fs, want pid %d over about 1s", r.Target.PID, r.Window.Seconds, c.PID())
	}
	// Sampled by the agent's one CPU sampler, shared with the other targets.
	if r.CPU.Samples == 0 {
		t.Errorf("/report: no CPU samples of a busy target: %+v", r.CPU)
	}
	c.Line(t, 10*time.Second)

	// Killed: gone from the next scrape, its probes with it.
	m.Cmd.Process.Kill()
	m.Exited(t, 10*time.Second)
	a.waitLine(t, 5*time.Second, fmt.Sprintf("pid %d (maps): exited", m.PID()))
	fams = a.scrape(t)
	if hasService(fams, "maps") {
		t.Error("service=\"maps\" still on /metrics after it was killed")
	}
	if n := linksOn(t, m.PID()); n != 0 {
		t.Errorf("%d uprobe links left on the killed process", n)
	}
	if got := services(fams); len(got) != 3 {
		t.Errorf("services after the kill: %v, want contention, plain and execd", got)
	}
	if n := strings.Count(a.stderr.String(), fmt.Sprintf("pid %d ", s.Process.Pid)); n != 1 {
		t.Errorf("%d lines about the program that is not Go, want 1:\n%s", n, a.stderr)
	}

	// SIGTERM: every probe detached, exit 0.
	if n := linksOn(t, c.PID()); n == 0 {
		t.Error("no uprobe links on a traced process")
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.done
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("agent after SIGTERM: %v\n%s", err, a.stderr)
	}
	for _, pid := range []int{c.PID(), p.PID()} {
		if n := linksOn(t, pid); n != 0 {
			t.Errorf("%d uprobe links left on pid %d after the agent stopped", n, pid)
		}
	}

	// The survey without the agent: they would be traced, and why.
	rows = survey()
	for _, tc := range []struct {
		pid  int
		want []string
	}{
		{c.PID(), []string{" yes ", "go1.", contention, "matches --match " + match}},
		{p.PID(), []string{" yes ", plain, "matches --match"}},
		{s.Process.Pid, []string{" no ", "not a Go program"}},
	} {
		if !containsAll(rows[tc.pid], tc.want...) {
			t.Errorf("survey row of pid %d: %q, want %q", tc.pid, rows[tc.pid], tc.want)
		}
	}
}

// TestAgentExec: a traced Go process that execs another Go program keeps
// its pid and start time, but is another program: its old trace ends, its
// series and probes with it, and the new program is traced under its own
// service.
func TestAgentExec(t *testing.T) {
	testtarget.NeedRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	before := copyExe(t, testtarget.Build(t, "../../testdata/contention", "local"), dir, "before")
	after := copyExe(t, testtarget.Build(t, "../../testdata/maps", "local"), dir, "after")
	p := testtarget.Start(t, before)
	a := startAgent(t, "--match", dir+"/*")
	a.waitServices(t, 5*time.Second, "before")
	pid := p.PID()
	if linksOn(t, pid) == 0 {
		t.Fatal("no uprobe links on the traced process")
	}

	p.Send(t, "exec "+after)
	if l := p.Line(t, 10*time.Second); l != "ready" {
		t.Fatalf("after exec: %q, want ready", l)
	}
	execd := time.Now()
	a.waitServices(t, 5*time.Second, "after")
	t.Logf("the exec'd program traced %v after the exec", time.Since(execd).Round(time.Millisecond))
	a.waitLine(t, 5*time.Second, fmt.Sprintf("pid %d (before) now runs %s: its trace ends", pid, after))
	for deadline := time.Now().Add(5 * time.Second); hasService(a.scrape(t), "before"); {
		if time.Now().After(deadline) {
			t.Fatal("service=\"before\" still on /metrics 5s after the exec")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var files []string
	for _, l := range uprobeLinks(t) {
		if l.pid == pid {
			files = append(files, l.file)
		}
	}
	if len(files) == 0 {
		t.Error("no uprobe links on the exec'd program")
	}
	for _, f := range files {
		if f != after {
			t.Errorf("an uprobe link of pid %d on %s, want only %s's", pid, f, after)
		}
	}
	want := []string{
		fmt.Sprintf("pid %d (before): tracing %s", pid, before),
		fmt.Sprintf("pid %d (before) now runs %s: its trace ends", pid, after),
		fmt.Sprintf("pid %d (after): tracing %s", pid, after),
	}
	got := a.linesOf(pid)
	if len(got) != len(want) {
		t.Errorf("agent lines about pid %d:\n%s\nwant %d, starting %q", pid, strings.Join(got, "\n"), len(want), want)
	}
	for i := range min(len(got), len(want)) {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("line %d about pid %d: %q, want %q", i+1, pid, got[i], want[i])
		}
	}
}

// TestAgentDyingTargets starts short-lived Go targets, a few alive at a
// time, for a few seconds, so that some exit while the agent attaches:
// each gets one line saying so, or the two of a trace that started and
// ended; none leaves a probe or a series; the agent's failure count agrees
// with its lines, and it keeps tracing and serving a long-lived target.
func TestAgentDyingTargets(t *testing.T) {
	testtarget.NeedRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	src := testtarget.Build(t, "../../testdata/contention", "local")
	steady := copyExe(t, src, dir, "steady")
	brief := copyExe(t, src, dir, "brief")
	testtarget.Start(t, steady)
	a := startAgent(t, "--match", dir+"/*")
	a.waitServices(t, 5*time.Second, "steady")

	// One started every 60ms, each living 150ms to 1.5s (it exits when its
	// stdin closes): a dozen alive at a time, over two scans or more.
	var pids []int
	var exited []chan struct{}
	for i := 0; time.Duration(i)*60*time.Millisecond < 5*time.Second; i++ {
		cmd := exec.Command(brief)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		life := time.Duration(150+(i*170)%1400) * time.Millisecond
		go func() {
			time.Sleep(life)
			in.Close()
			cmd.Wait()
			close(done)
		}()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		pids = append(pids, cmd.Process.Pid)
		exited = append(exited, done)
		time.Sleep(60 * time.Millisecond)
	}
	for _, done := range exited {
		<-done
	}

	// Every trace that started ends within a few seconds of its exit.
	deadline := time.Now().Add(10 * time.Second)
	var traced, failed, unseen int
	for _, pid := range pids {
		for {
			l := a.linesOf(pid)
			if len(l) != 1 || !strings.Contains(l[0], "): tracing ") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		got := a.linesOf(pid)
		switch {
		case len(got) == 0:
			unseen++
		case len(got) == 1 && strings.HasSuffix(got[0], fmt.Sprintf("pid %d (%s): exited while maptrace attached: not traced", pid, brief)):
			failed++
		case len(got) == 2 && strings.Contains(got[0], fmt.Sprintf("pid %d (brief): tracing %s", pid, brief)) &&
			strings.HasSuffix(got[1], fmt.Sprintf("pid %d (brief): exited: trace ended", pid)):
			traced++
		default:
			t.Errorf("agent lines about pid %d:\n%s\nwant none, one saying it exited while maptrace attached, or a trace's start and end", pid, strings.Join(got, "\n"))
		}
	}
	t.Logf("%d short-lived targets: %d traced, %d exited while the agent attached, %d gone before a scan saw them", len(pids), traced, failed, unseen)
	if traced+failed == 0 {
		t.Error("the agent saw none of the short-lived targets")
	}

	for _, l := range uprobeLinks(t) {
		if l.file == brief {
			t.Errorf("an uprobe link of pid %d left on %s after it exited", l.pid, brief)
		}
	}
	fams := a.waitServices(t, 5*time.Second, "steady")
	if hasService(fams, "brief") {
		t.Error("service=\"brief\" on /metrics after every one of its processes exited")
	}
	var counted float64
	for _, m := range fams["maptrace_agent_attach_failures_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && l.GetValue() == "exited" {
				counted = m.GetCounter().GetValue()
			}
		}
	}
	if int(counted) != failed {
		t.Errorf("maptrace_agent_attach_failures_total{reason=\"exited\"} %v, want %d, the lines saying so", counted, failed)
	}
}

// TestAgentContainer traces a Go program in a plain runc container, selected
// by its container ID, and labels it with that ID.
func TestAgentContainer(t *testing.T) {
	testtarget.NeedRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian's runc package; make deps installs it)")
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test targets are static (CGO_ENABLED=0): the binary is the rootfs.
	copyExe(t, testtarget.Build(t, "../../testdata/contention", "local"), rootfs, "contention")
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	editJSON(t, filepath.Join(bundle, "config.json"), func(c map[string]any) {
		p := c["process"].(map[string]any)
		p["args"] = []string{"/contention"}
		p["terminal"] = false
		c["root"] = map[string]any{"path": "rootfs", "readonly": true}
	})
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(raw[:]) // as Docker's, and so the test's own
	state := t.TempDir()             // runc's state, apart from any other runc user's
	testtarget.Start(t, runc, "--root", state, "run", "--bundle", bundle, id)
	t.Cleanup(func() {
		exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
		exec.Command(runc, "--root", state, "delete", "--force", id).Run()
	})

	// No containerd at the socket: one warning, and the container_id label.
	missing := filepath.Join(t.TempDir(), "containerd.sock")
	a := startAgent(t, "--match", id[:12], "--containerd", missing)
	fams := a.waitServices(t, 10*time.Second, "contention")
	if got := services(fams)["contention"]; got != id {
		t.Errorf("container_id %q, want %q", got, id)
	}
	a.waitLine(t, 5*time.Second, "(contention, container "+id[:12]+"): tracing /contention")
	if n := strings.Count(a.stderr.String(), "warning: containerd at "+missing); n != 1 {
		t.Errorf("%d warnings about the missing containerd socket, want 1:\n%s", n, a.stderr)
	}
}

// TestAgentPod traces Go programs in containers of a containerd of the
// test's own, created as containerd's CRI plugin creates a pod's (a sandbox
// container with the pod's labels, an app container with the kubelet's
// labels and an annotation naming its sandbox), from an image the test
// builds and imports: selected by namespace/pod, their series carry
// namespace, pod and container, and their service is the pod's
// app.kubernetes.io/name label, else the container's name.
func TestAgentPod(t *testing.T) {
	testtarget.NeedRoot(t)
	c := testtarget.StartContainerd(t)
	data, err := os.ReadFile(testtarget.Build(t, "../../testdata/contention", "local"))
	if err != nil {
		t.Fatal(err)
	}
	// The test targets are static (CGO_ENABLED=0): the binary is the image.
	img, err := image.Build(image.Config{
		Files:      []image.File{{Path: "/contention", Mode: 0o755, Data: data}},
		Entrypoint: []string{"/contention"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(t.TempDir(), "contention.tar")
	ref := "localhost/maptrace-test-contention:1"
	if err := image.WriteTarball(tarFile, ref, img); err != nil {
		t.Fatal(err)
	}
	c.Ctr(t, "images", "import", tarFile)

	newID := func() string {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(raw[:]) // as CRI's: the test's own
	}
	// runPod creates pod's sandbox with the pod's labels (CRI passes the
	// kubelet's and the pod's own), and runs its container "api" in it.
	namespace := "shop-" + newID()[:8]
	runPod := func(pod string, podLabels ...string) (id string) {
		sandbox, id := newID(), newID()
		args := []string{"containers", "create",
			"--label", "io.cri-containerd.kind=sandbox",
			"--label", "io.kubernetes.pod.namespace=" + namespace,
			"--label", "io.kubernetes.pod.name=" + pod}
		for _, l := range podLabels {
			args = append(args, "--label", l)
		}
		c.Ctr(t, append(args, ref, sandbox)...)
		args = append([]string{"--address", c.Address, "--namespace", testtarget.Namespace, "run"}, c.RunArgs()...)
		args = append(args,
			"--label", "io.cri-containerd.kind=container",
			"--label", "io.kubernetes.pod.namespace="+namespace,
			"--label", "io.kubernetes.pod.name="+pod,
			"--label", "io.kubernetes.container.name=api",
			"--annotation", "io.kubernetes.cri.container-type=container",
			"--annotation", "io.kubernetes.cri.sandbox-id="+sandbox,
			ref, id)
		testtarget.Start(t, "ctr", args...) // stdin stays open: the target exits at EOF
		return id
	}
	pod := "web-0"
	id := runPod(pod, "app=web") // not the service label
	labeled := runPod("web-1", "app.kubernetes.io/name=storefront")

	started := time.Now()
	a := startAgent(t, "--containerd", c.Address, "--match", namespace+"/web-*")
	fams := a.waitServices(t, 10*time.Second, "api", "storefront")
	t.Logf("the pods' processes traced %v after the agent started", time.Since(started).Round(time.Millisecond))
	want := map[string]map[string]string{
		id:      {"service": "api", "container_id": id, "namespace": namespace, "pod": pod, "container": "api"},
		labeled: {"service": "storefront", "container_id": labeled, "namespace": namespace, "pod": "web-1", "container": "api"},
	}
	for _, m := range fams["maptrace_target_up"].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want[got["container_id"]] {
			if got[k] != v {
				t.Errorf("maptrace_target_up: %s=%q, want %q (labels %v)", k, got[k], v, got)
			}
		}
	}
	if n := len(fams["maptrace_target_up"].GetMetric()); n != 2 {
		t.Errorf("%d maptrace_target_up series, want 2", n)
	}
	a.waitLine(t, 5*time.Second, "(api, container "+id[:12]+", pod "+namespace+"/"+pod+"): tracing /contention")
	a.waitLine(t, 5*time.Second, "(storefront, container "+labeled[:12]+", pod "+namespace+"/web-1): tracing /contention")
	if strings.Contains(a.stderr.String(), "warning: containerd") {
		t.Errorf("a warning about containerd:\n%s", a.stderr)
	}

	resp, err := http.Get("http://" + a.addr + "/report?namespace=" + namespace + "&pod=" + pod + "&seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/report of the pod: %s: %s", resp.Status, body)
	}
	if r := parseReport(t, body); r.Target.Exe != "/contention" {
		t.Errorf("/report of the pod: %s, want /contention", r.Target.Exe)
	}
}

// editJSON rewrites a JSON object file through edit.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if b, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
