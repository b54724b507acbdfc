package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/maptrace/maptrace/internal/live"
	"github.com/maptrace/maptrace/internal/metrics"
	"github.com/maptrace/maptrace/internal/profiles"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/trace"
)

// traceFlags are the flags attach and demo share.
type traceFlags struct {
	duration   time.Duration
	mutex      bool
	noMutex    bool
	maps       bool
	noMaps     bool
	overhead   float64
	keys       string
	format     string
	output     string
	listen     string
	pprof      string
	pprofMaps  string
	folded     string
	flamegraph string
	interval   time.Duration
}

func (f *traceFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVarP(&f.duration, "duration", "d", 0, "stop after this long (0: until Ctrl-C, SIGTERM or the target's exit)")
	fs.BoolVar(&f.mutex, "mutex", true, "trace sync.Mutex / sync.RWMutex contention")
	fs.BoolVar(&f.noMutex, "no-mutex", false, "do not trace mutex contention")
	fs.BoolVar(&f.maps, "maps", true, "trace map operations, hot keys and concurrent map access (under the --overhead budget)")
	fs.BoolVar(&f.noMaps, "no-maps", false, "do not trace map operations")
	fs.Float64Var(&f.overhead, "overhead", 5, "budget, in percent of the target's CPU time, for the probes: mutex probes first, map probes duty-cycled in what is left (100: probe every map operation, exact counts)")
	fs.StringVar(&f.keys, "keys", "raw", "how map keys appear: raw, hash (a stable short hash, for keys that are user data) or none")
	fs.StringVarP(&f.format, "format", "f", "text", "report format: text or json")
	fs.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fs.StringVar(&f.listen, "listen", "", "serve Prometheus metrics at http://ADDR/metrics while tracing (e.g. 127.0.0.1:9435)")
	fs.StringVar(&f.pprof, "pprof", "", "write the contention profile (gzip profile.proto, for go tool pprof) to FILE")
	fs.StringVar(&f.pprofMaps, "pprof-maps", "", "write the map-operations profile (gzip profile.proto) to FILE")
	fs.StringVar(&f.folded, "folded", "", "write folded stacks (flamegraph.pl, speedscope) to FILE")
	fs.StringVar(&f.flamegraph, "flamegraph", "", "write a self-contained HTML flame graph to FILE")
	fs.DurationVarP(&f.interval, "interval", "i", 0, "also print a short live summary every D")
}

func (f *traceFlags) check() error {
	if f.format != "text" && f.format != "json" {
		return usageError{fmt.Errorf("--format %q: want text or json", f.format)}
	}
	if f.keys != "raw" && f.keys != "hash" && f.keys != "none" {
		return usageError{fmt.Errorf("--keys %q: want raw, hash or none", f.keys)}
	}
	if f.overhead <= 0 {
		return usageError{fmt.Errorf("--overhead %v: must be above 0 (100 probes everything)", f.overhead)}
	}
	if f.duration < 0 {
		return usageError{fmt.Errorf("--duration %v: must not be negative", f.duration)}
	}
	if f.interval < 0 {
		return usageError{fmt.Errorf("--interval %v: must not be negative", f.interval)}
	}
	return nil
}

func attachCmd() *cobra.Command {
	var (
		pid   int
		flags traceFlags
	)
	cmd := &cobra.Command{
		Use:   "attach -p PID",
		Short: "Trace one running Go process until --duration, Ctrl-C, SIGTERM or its exit",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("pid") {
				return usageError{errors.New("attach needs -p PID")}
			}
			return runTrace(cmd, pid, &flags, nil)
		},
	}
	cmd.Flags().IntVarP(&pid, "pid", "p", 0, "the process to trace")
	flags.register(cmd)
	return cmd
}

// runTrace traces pid and writes the report and profiles. attached, if set,
// runs once the probes are in place.
func runTrace(cmd *cobra.Command, pid int, f *traceFlags, attached func()) error {
	if err := f.check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	stderr := cmd.ErrOrStderr()
	sess, err := trace.Start(trace.Options{
		PID:      pid,
		Duration: f.duration,
		Mutex:    f.mutex && !f.noMutex,
		Maps:     f.maps && !f.noMaps,
		Overhead: f.overhead,
		Keys:     f.keys,
		Log:      stderr,
		Attached: func() {
			fmt.Fprintf(stderr, "maptrace: attached to pid %d; tracing%s\n", pid, untilText(f.duration))
			if attached != nil {
				attached()
			}
		},
	})
	if err != nil {
		return err
	}
	if f.listen != "" {
		stopServing, err := serveMetrics(f.listen, sess, f.keys)
		if err != nil {
			sess.Wait(canceled())
			return err
		}
		defer stopServing()
		fmt.Fprintf(stderr, "maptrace: serving metrics at http://%s/metrics\n", f.listen)
	}
	if f.interval > 0 {
		stopLive := liveView(stderr, sess, f.interval)
		defer stopLive()
	}
	r, err := sess.Wait(ctx)
	return errors.Join(err, writeReport(cmd.OutOrStdout(), f, r), writeProfiles(f, r))
}

// liveView prints a summary of each interval until stopped.
func liveView(w io.Writer, sess *trace.Session, every time.Duration) (stop func()) {
	color := false
	if f, ok := w.(*os.File); ok {
		color = term.IsTerminal(int(f.Fd()))
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var prev *report.Report
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			cur, err := sess.Snapshot()
			if err != nil {
				continue
			}
			live.Summary(w, prev, cur, color)
			prev = cur
		}
	}()
	return func() { close(quit); <-done }
}

// writeProfiles writes the profile files the flags ask for.
func writeProfiles(f *traceFlags, r *report.Report) error {
	var errs []error
	for _, out := range []struct {
		path  string
		write func(io.Writer, *report.Report) error
	}{
		{f.pprof, profiles.WritePprof},
		{f.pprofMaps, profiles.WritePprofMaps},
		{f.folded, profiles.WriteFolded},
		{f.flamegraph, profiles.WriteFlamegraph},
	} {
		if out.path != "" {
			errs = append(errs, writeFile(out.path, func(w io.Writer) error { return out.write(w, r) }))
		}
	}
	return errors.Join(errs...)
}

// writeFile writes a file through write, reporting a failed close too.
func writeFile(path string, write func(io.Writer) error) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(file); err != nil {
		file.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return file.Close()
}

// serveMetrics serves the trace's Prometheus metrics until stop is called.
func serveMetrics(addr string, src metrics.Source, keys string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.NewHandler(src, keys))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// canceled is a done context: Wait with it detaches at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func untilText(d time.Duration) string {
	if d > 0 {
		return fmt.Sprintf(" for %v (Ctrl-C to stop early)", d)
	}
	return " until Ctrl-C, SIGTERM or the target's exit"
}

// writeReport writes the report where the flags say.
func writeReport(stdout io.Writer, f *traceFlags, r *report.Report) error {
	write := report.WriteText
	if f.format == "json" {
		write = report.WriteJSON
	}
	if f.output == "" {
		return write(stdout, r)
	}
	return writeFile(f.output, func(w io.Writer) error { return write(w, r) })
}
