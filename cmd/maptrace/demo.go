package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/maptrace/maptrace/internal/demo"
)

// demoWorkloadCmd is the hidden subcommand `maptrace demo` runs as its
// target: the demo workload is part of the maptrace binary.
const demoWorkloadCmd = "__demo-workload"

// demoDuration is how long `maptrace demo` traces without -d.
const demoDuration = 10 * time.Second

func demoCmd() *cobra.Command {
	var flags traceFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a built-in Go workload (contention, a hot key, a racy map) and trace it",
		Long: "demo starts a small Go program built into maptrace — a contended sync.Mutex, an RWMutex with a slow\n" +
			"writer, a map with a hot key, and two goroutines writing a map without a lock (from 2s in; the Go\n" +
			"runtime usually kills it for that, as it would in production) — traces it like `attach` does, and\n" +
			"prints the report. It needs what attach needs: root (or CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE).",
		Args: argsError,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("duration") {
				flags.duration = demoDuration
			}
			// Fail before starting anything if the flags are wrong or
			// tracing cannot work here.
			ln, err := flags.prepare(cmd)
			if err != nil {
				return err
			}
			return runDemo(cmd, &flags, ln)
		},
	}
	flags.register(cmd)
	return cmd
}

// workloadCmd runs the demo workload in this process.
func workloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:    demoWorkloadCmd,
		Short:  "The workload `maptrace demo` traces",
		Hidden: true,
		Args:   argsError,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGUSR1: the tracer is attached; start the race's clock. Run
			// by hand, the race starts anyway after a while.
			started := make(chan struct{})
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			go func() {
				select {
				case <-usr1:
				case <-time.After(10 * time.Second):
				}
				close(started)
			}()
			demo.Workload(ctx, demo.Options{
				Started: started,
				Ready:   func() { fmt.Fprintln(cmd.OutOrStdout(), "ready") },
			})
			return nil
		},
	}
}

// runDemo starts the workload as a child process, traces it with attach's
// code path, and stops it. ln is the --listen socket, if any.
func runDemo(cmd *cobra.Command, f *traceFlags, ln net.Listener) error {
	if ln != nil {
		defer ln.Close() // if the workload does not start
	}
	stderr := cmd.ErrOrStderr()
	// The child dies with this thread (PR_SET_PDEATHSIG), so keep the
	// thread for as long as the demo runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	child := exec.Command("/proc/self/exe", demoWorkloadCmd)
	// The workload says "ready" on stdout, then nothing more.
	out, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer out.Close()
	child.Stdout = outW
	// The child's stderr only matters if it crashes: keep its start, where
	// the runtime writes "fatal error: …", and drop the goroutine dump.
	errBuf := &headBuffer{max: 64 << 10}
	child.Stderr = errBuf
	child.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true, // Ctrl-C stops the trace, not the workload: its end is the report's
		Pdeathsig: syscall.SIGKILL,
	}
	err = child.Start()
	outW.Close()
	if err != nil {
		return fmt.Errorf("demo: start the workload: %w", err)
	}
	pid := child.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = child.Wait()
		close(exited)
	}()
	defer func() {
		child.Process.Kill()
		<-exited
	}()

	// Wait for "ready": every goroutine of the workload runs.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
		io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-exited
			return fmt.Errorf("demo: the workload (pid %d) did not start: %v %s", pid, waitErr, firstLine(errBuf.String()))
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("demo: the workload (pid %d) did not start within 30s", pid)
	}
	fmt.Fprintf(stderr, "maptrace: demo: started workload pid %d: a contended mutex, an RWMutex with a slow writer, "+
		"a hot key, and unguarded map writes from 2s after attach\n", pid)

	err = runTrace(cmd, pid, f, ln, func() {
		// Probes are in place: start the race's clock.
		child.Process.Signal(syscall.SIGUSR1)
	})

	if !running(pid) {
		// It died: the trace saw it exit; Wait reaps it in a moment.
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
	select {
	case <-exited:
		msg := fatalMessage(errBuf.String())
		switch {
		case strings.HasPrefix(msg, "concurrent map"):
			fmt.Fprintf(stderr, "maptrace: demo: workload pid %d crashed as expected: %s\n", pid, msg)
		case msg != "":
			fmt.Fprintf(stderr, "maptrace: demo: workload pid %d crashed: %s\n", pid, msg)
		default:
			fmt.Fprintf(stderr, "maptrace: demo: workload pid %d exited: %v\n", pid, waitErr)
		}
	default:
	}
	return err
}

// running says whether pid is alive and not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st != 'Z' && st != 'X' && st != 'x'
}

// fatalMessage is what a Go program died of: the text after "fatal error: ".
func fatalMessage(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if m, ok := strings.CutPrefix(line, "fatal error: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}
