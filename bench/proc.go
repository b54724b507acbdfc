package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/maptrace/maptrace/internal/target"
)

// Proc is a target that takes commands on stdin and answers on stdout, one
// line each (testdata/contention, testdata/maps, bench/targets/locks).
type Proc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	name   string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 { // keep the start: a crash's first lines say why
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc runs bin and waits for its "ready" line.
func startProc(bin string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, in: in, lines: make(chan string, 16), stderr: &lockedBuffer{}, name: bin}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	if l, err := p.line(30 * time.Second); err != nil || l != "ready" {
		p.Close()
		return nil, fmt.Errorf("%s: first line %q, want ready (%v)", bin, l, err)
	}
	return p, nil
}

// PID is the target's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

func (p *Proc) line(timeout time.Duration) (string, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%s exited: %v\n%s", p.name, p.cmd.Wait(), p.stderr.String())
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no answer in %v", p.name, timeout)
	}
}

// Ask sends a command and returns the answer's fields.
func (p *Proc) Ask(cmd string, timeout time.Duration) ([]string, error) {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return nil, fmt.Errorf("%s: send %q: %w", p.name, cmd, err)
	}
	l, err := p.line(timeout)
	if err != nil {
		return nil, err
	}
	return strings.Fields(l), nil
}

// Count sends "VERB MS" and parses the answer "VERB N": work done in about
// MS. elapsed is the time from the command to the answer, measured here: a
// target checks its deadline only between chunks of work, so a run lasts
// MS plus up to one chunk, which is long when every call is probed.
func (p *Proc) Count(verb string, ms int) (n float64, elapsed time.Duration, err error) {
	start := time.Now()
	f, err := p.Ask(fmt.Sprintf("%s %d", verb, ms), time.Duration(ms)*time.Millisecond+60*time.Second)
	elapsed = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if len(f) != 2 || f[0] != verb {
		return 0, 0, fmt.Errorf("%s: answer %q to %s", p.name, strings.Join(f, " "), verb)
	}
	if n, err = strconv.ParseFloat(f[1], 64); err != nil {
		return 0, 0, fmt.Errorf("%s: answer %q: %w", p.name, strings.Join(f, " "), err)
	}
	return n, elapsed, nil
}

// Close ends the target.
func (p *Proc) Close() {
	p.in.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// cpuSplit is a process's user and system CPU time so far, from
// /proc/PID/stat (in USER_HZ ticks, 100 a second).
func cpuSplit(pid int) (user, system time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	if i < 0 || i+2 > len(s) {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(u) * tick, time.Duration(k) * tick, nil
}

// tick is /proc/PID/stat's unit of CPU time (USER_HZ).
const tick = time.Second / 100

// cpuUse is what a process's CPU did while some work ran.
type cpuUse struct {
	// CPU is its CPU time, from its CPUCLOCK_SCHED clock (nanoseconds,
	// every thread): what the budget is a share of.
	CPU time.Duration
	// Kernel is the share of it spent in kernel mode (/proc/PID/stat): a
	// probe hit is kernel time of the thread that hits it, so a traced
	// run's share above an untraced run's is what the probes took,
	// measured apart from maptrace and from how busy the machine is.
	Kernel float64
	// Step is one tick's share of it: /proc/PID/stat counts user and
	// kernel time in whole ticks, so Kernel is that coarse.
	Step float64
}

// measureCPU measures pid's CPU while work runs.
func measureCPU(pid int, work func() error) (cpuUse, error) {
	proc := &target.Process{PID: pid}
	c0, err := proc.CPUTime()
	if err != nil {
		return cpuUse{}, err
	}
	u0, k0, err := cpuSplit(pid)
	if err != nil {
		return cpuUse{}, err
	}
	if err := work(); err != nil {
		return cpuUse{}, err
	}
	c1, err := proc.CPUTime()
	if err != nil {
		return cpuUse{}, err
	}
	u1, k1, err := cpuSplit(pid)
	if err != nil {
		return cpuUse{}, err
	}
	use := cpuUse{CPU: c1 - c0, Kernel: math.NaN(), Step: math.NaN()}
	if u1-u0+k1-k0 > 0 {
		use.Kernel = float64(k1-k0) / float64(u1-u0+k1-k0)
		use.Step = float64(tick) / float64(u1-u0+k1-k0)
	}
	return use, nil
}
