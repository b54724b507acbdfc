package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/report"
)

// Tracer is one `maptrace attach` run as a child process, as a user runs it.
type Tracer struct {
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	out      string
	start    time.Time
	attached time.Duration // exec to the "attached to pid" line
	done     chan error

	cpu0 time.Duration // maptrace's CPU time when attached
	t0   time.Time
}

// TraceResult is what one traced run measured about maptrace itself.
type TraceResult struct {
	Report    *report.Report
	Attach    time.Duration // exec to "attached to pid"
	WindowCPU time.Duration // maptrace's CPU time while attached
	Window    time.Duration // wall time from attached to the stop signal
	TotalCPU  time.Duration // user+system of the whole command (getrusage)
	MaxRSS    int64         // peak resident set, bytes (getrusage ru_maxrss)
	JSON      []byte        // the report as maptrace wrote it
}

// traceDuring runs work under `maptrace attach -p pid args...` and returns
// what the trace measured; a failed work kills the trace.
func traceDuring(bin, tmp string, pid int, args []string, work func() error) (*TraceResult, error) {
	t, err := startTrace(bin, tmp, pid, args...)
	if err != nil {
		return nil, err
	}
	if err := work(); err != nil {
		t.Kill()
		return nil, err
	}
	return t.Stop()
}

// startTrace runs `maptrace attach -p pid -f json -o FILE args...` and waits
// until it says the probes are attached.
func startTrace(bin, tmp string, pid int, args ...string) (*Tracer, error) {
	f, err := os.CreateTemp(tmp, "report-*.json")
	if err != nil {
		return nil, err
	}
	f.Close()
	argv := append([]string{"attach", "-p", strconv.Itoa(pid), "-f", "json", "-o", f.Name()}, args...)
	t := &Tracer{cmd: exec.Command(bin, argv...), out: f.Name()}
	if err := t.run("attached to pid"); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("maptrace attach -p %d: %w", pid, err)
	}
	return t, nil
}

// run starts t's command and waits until a line of its standard error
// contains ready.
func (t *Tracer) run(ready string) error {
	errPipe, err := t.cmd.StderrPipe()
	if err != nil {
		return err
	}
	t.stderr, t.done = &lockedBuffer{}, make(chan error, 1)
	attached := make(chan time.Duration, 1)
	t.start = time.Now()
	if err := t.cmd.Start(); err != nil {
		return err
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, ready) {
				select {
				case attached <- time.Since(t.start):
				default:
				}
			}
			fmt.Fprintln(t.stderr, l)
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		t.done <- t.cmd.Wait()
	}()
	select {
	case t.attached = <-attached:
	case err := <-t.done:
		return fmt.Errorf("exited before attaching: %v\n%s", err, t.stderr.String())
	case <-time.After(2 * time.Minute):
		t.cmd.Process.Kill()
		<-t.done
		return fmt.Errorf("not attached after 2 minutes\n%s", t.stderr.String())
	}
	t.t0 = time.Now()
	t.cpu0, _ = processCPU(t.cmd.Process.Pid)
	return nil
}

// Stop ends the trace with SIGINT, as Ctrl-C would, and reads its report.
func (t *Tracer) Stop() (*TraceResult, error) {
	return t.finish(true, 2*time.Minute)
}

// Wait waits for a trace started with -d to end by itself, and reads its
// report.
func (t *Tracer) Wait(timeout time.Duration) (*TraceResult, error) {
	return t.finish(false, timeout)
}

func (t *Tracer) finish(interrupt bool, timeout time.Duration) (*TraceResult, error) {
	pid := t.cmd.Process.Pid
	res := &TraceResult{Attach: t.attached}
	if cpu1, err := processCPU(pid); err == nil {
		res.WindowCPU = cpu1 - t.cpu0
	}
	res.Window = time.Since(t.t0)
	if interrupt {
		t.cmd.Process.Signal(os.Interrupt)
	}
	var err error
	select {
	case err = <-t.done:
	case <-time.After(timeout):
		t.cmd.Process.Kill()
		<-t.done
		return nil, fmt.Errorf("maptrace did not stop within %v\n%s", timeout, t.stderr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("maptrace: %v\n%s", err, t.stderr.String())
	}
	if ru, ok := t.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.TotalCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	if t.out == "" {
		return res, nil // an agent: its report came from /report
	}
	b, err := os.ReadFile(t.out)
	if err != nil {
		return nil, err
	}
	os.Remove(t.out)
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("maptrace report: %w", err)
	}
	res.Report, res.JSON = &r, b
	return res, nil
}

// Kill ends a trace that will not be reported (after a failure).
func (t *Tracer) Kill() {
	t.cmd.Process.Kill()
	<-t.done
	if t.out != "" {
		os.Remove(t.out)
	}
}

// processCPU is a process's CPU time so far, all threads, from its
// CPUCLOCK_SCHED clock (what clock_getcpuclockid(3) returns).
func processCPU(pid int) (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^pid<<3|2), &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
