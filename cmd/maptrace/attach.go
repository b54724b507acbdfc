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

	"github.com/maptrace/maptrace/internal/metrics"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/trace"
)

// traceFlags are the flags attach and demo share.
type traceFlags struct {
	duration time.Duration
	mutex    bool
	noMutex  bool
	maps     bool
	noMaps   bool
	overhead float64
	keys     string
	format   string
	output   string
	listen   string
}

func (f *traceFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVarP(&f.duration, "duration", "d", 0, "stop after this long (0: until Ctrl-C, SIGTERM or the target's exit)")
	fs.BoolVar(&f.mutex, "mutex", true, "trace sync.Mutex / sync.RWMutex contention")
	fs.BoolVar(&f.noMutex, "no-mutex", false, "do not trace mutex contention")
	fs.BoolVar(&f.maps, "maps", true, "trace map operations, hot keys and concurrent map access (under the --overhead budget)")
	fs.BoolVar(&f.noMaps, "no-maps", false, "do not trace map operations")
	fs.Float64Var(&f.overhead, "overhead", 5, "budget, in percent of the target's CPU time, for map probes (100: probe every operation, exact counts)")
	fs.StringVar(&f.keys, "keys", "raw", "how map keys appear: raw, hash (a stable short hash, for keys that are user data) or none")
	fs.StringVarP(&f.format, "format", "f", "text", "report format: text or json")
	fs.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fs.StringVar(&f.listen, "listen", "", "serve Prometheus metrics at http://ADDR/metrics while tracing (e.g. 127.0.0.1:9435)")
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
		Args:  cobra.NoArgs,
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
	r, err := sess.Wait(ctx)
	if werr := writeReport(cmd.OutOrStdout(), f, r); werr != nil {
		return errors.Join(err, werr)
	}
	return err
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
	w := stdout
	if f.output != "" {
		file, err := os.Create(f.output)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	if f.format == "json" {
		return report.WriteJSON(w, r)
	}
	return report.WriteText(w, r)
}
