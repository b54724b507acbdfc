package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v2"
	"golang.org/x/term"

	"github.com/maptrace/maptrace/internal/live"
	"github.com/maptrace/maptrace/internal/metrics"
	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/trace"
)

// traceFlags are the flags attach and demo share.
type traceFlags struct {
	outputFlags
	duration  time.Duration
	mutex     bool
	noMutex   bool
	maps      bool
	noMaps    bool
	overhead  float64
	exact     bool
	keys      string
	listen    string
	webConfig string
	interval  time.Duration
}

// maxOverhead caps --overhead: a larger budget is no light touch on a
// production process, and exact counts are asked for with --exact, which
// says what they cost.
const maxOverhead = 25

// exactNote is what --exact costs: BENCHMARKS.md measured a map-hot loop at
// 0.0005× its untraced speed with every map operation probed.
const exactNote = "every map operation is probed; a map-heavy loop can run over 1000× slower — use it for short traces " +
	"on a test or canary process"

func (f *traceFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVarP(&f.duration, "duration", "d", 0, "stop after `D` (0: until Ctrl-C, SIGTERM or the target's exit)")
	fs.BoolVar(&f.mutex, "mutex", true, "trace sync.Mutex / sync.RWMutex contention")
	fs.BoolVar(&f.noMutex, "no-mutex", false, "do not trace mutex contention")
	fs.BoolVar(&f.maps, "maps", true, "trace map operations, hot keys and concurrent map access (under the --overhead budget)")
	fs.BoolVar(&f.noMaps, "no-maps", false, "do not trace map operations")
	fs.Float64Var(&f.overhead, "overhead", 5, fmt.Sprintf("the tracing's budget, `PCT` percent of the target's CPU time (at most %d): "+
		"mutex probes first (duty-cycled beyond three quarters of it, so that the maps are sampled all through the trace), map probes duty-cycled in what is left", maxOverhead))
	fs.BoolVar(&f.exact, "exact", false, "exact map counts: "+exactNote)
	fs.StringVar(&f.keys, "keys", "raw", "how map keys appear: raw, hash (a short hash, the same throughout one trace, for keys that are user data) "+
		"or none; /metrics hashes them unless --keys raw is given")
	fs.StringVar(&f.listen, "listen", "", "serve Prometheus metrics at http://`ADDR`/metrics while tracing (e.g. 127.0.0.1:9435)")
	fs.StringVar(&f.webConfig, "web.config.file", "", "TLS and basic authentication for --listen, from a Prometheus web configuration `FILE`")
	fs.DurationVarP(&f.interval, "interval", "i", 0, "also print a short live summary every `D`")
	f.outputFlags.register(cmd)
}

// check validates the flags and the output paths.
func (f *traceFlags) check(cmd *cobra.Command) error {
	if f.keys != "raw" && f.keys != "hash" && f.keys != "none" {
		return usageError{fmt.Errorf("--keys %q: want raw, hash or none", f.keys)}
	}
	switch {
	case f.overhead <= 0:
		return usageError{fmt.Errorf("--overhead %v: must be above 0", f.overhead)}
	case f.overhead > maxOverhead:
		return usageError{fmt.Errorf("--overhead %v: at most %d; for exact map counts on a short trace, use --exact", f.overhead, maxOverhead)}
	case f.exact && cmd.Flags().Changed("overhead"):
		return usageError{errors.New("--exact and --overhead: give one (--exact has no budget)")}
	}
	mutex, maps := f.mutex && !f.noMutex, f.maps && !f.noMaps
	switch {
	case !mutex && !maps:
		return usageError{errors.New("--no-mutex and --no-maps leave nothing to trace: drop one")}
	case f.exact && !maps:
		return usageError{errors.New("--exact counts map operations: it cannot go with --no-maps")}
	}
	if f.duration < 0 {
		return usageError{fmt.Errorf("--duration %v: must not be negative", f.duration)}
	}
	if f.interval < 0 {
		return usageError{fmt.Errorf("--interval %v: must not be negative", f.interval)}
	}
	if f.webConfig != "" {
		if f.listen == "" {
			return usageError{errors.New("--web.config.file secures --listen: give --listen ADDR too")}
		}
		if err := web.Validate(f.webConfig); err != nil {
			// YAML errors come on several lines.
			msg := strings.Join(strings.Fields(unwrapPath(err).Error()), " ")
			return usageError{fmt.Errorf("--web.config.file %s: %s: fix the file (a Prometheus web configuration)", f.webConfig, msg)}
		}
	}
	return f.outputFlags.check()
}

// prepare checks everything the user and this machine can get wrong before
// anything is attached — flags, output files, privileges, the --listen
// address — so that a mistake fails at once, not after a long trace. The
// caller closes the listener, if any, or gives it to runTrace.
func (f *traceFlags) prepare(cmd *cobra.Command) (net.Listener, error) {
	if err := f.check(cmd); err != nil {
		return nil, err
	}
	if err := preflightError(); err != nil {
		return nil, err
	}
	if f.listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return nil, usageError{fmt.Errorf("--listen %s: %v: give a free host:port, such as 127.0.0.1:9435", f.listen, unwrapNet(err))}
	}
	return ln, nil
}

// unwrapNet drops the "listen tcp ADDR:" of a *net.OpError: the caller
// names the address already.
func unwrapNet(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

func attachCmd() *cobra.Command {
	var (
		pid   int
		flags traceFlags
	)
	cmd := &cobra.Command{
		Use:   "attach -p PID",
		Short: "Trace one running Go process until --duration, Ctrl-C, SIGTERM or its exit",
		Args:  argsError,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("pid") {
				return usageError{errors.New("attach needs -p PID, the process to trace")}
			}
			if pid <= 0 {
				return usageError{fmt.Errorf("-p %d: give the pid of a running Go program", pid)}
			}
			ln, err := flags.prepare(cmd)
			if err != nil {
				return err
			}
			return runTrace(cmd, pid, &flags, ln, nil)
		},
	}
	cmd.Flags().IntVarP(&pid, "pid", "p", 0, "the `PID` of the process to trace")
	flags.register(cmd)
	return cmd
}

// runTrace traces pid and writes the report and profiles. ln, if set, is the
// --listen socket, which runTrace closes; attached, if set, runs once the
// probes are in place.
func runTrace(cmd *cobra.Command, pid int, f *traceFlags, ln net.Listener, attached func()) error {
	if ln != nil {
		defer ln.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	stderr := cmd.ErrOrStderr()
	overhead := f.overhead
	if f.exact {
		overhead = 100 // the governor keeps the map probes attached
		fmt.Fprintf(stderr, "maptrace: --exact: %s\n", exactNote)
	}
	sess, err := trace.Start(trace.Options{
		PID:      pid,
		Duration: f.duration,
		Mutex:    f.mutex && !f.noMutex,
		Maps:     f.maps && !f.noMaps,
		Overhead: overhead,
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
		return targetError(pid, err)
	}
	if ln != nil {
		// Keys can be user data: a scraper sees them as written only when
		// asked for by name.
		keys := metrics.KeysHash
		if cmd.Flags().Changed("keys") {
			keys = f.keys
		}
		stopServing, scheme := serveMetrics(ln, sess, keys, f.webConfig, stderr)
		defer stopServing()
		fmt.Fprintf(stderr, "maptrace: serving metrics at %s://%s/metrics\n", scheme, ln.Addr())
	}
	if f.interval > 0 {
		stopLive := liveView(stderr, sess, f.interval)
		defer stopLive()
	}
	r, err := sess.Wait(ctx)
	if r == nil {
		return err
	}
	return errors.Join(err, f.write(cmd.OutOrStdout(), r))
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

// serveMetrics serves the trace's Prometheus metrics on ln until stop is
// called, with the TLS and basic authentication of webConfig, if given (a
// file check has validated), and says whether it serves http or https.
// The server's own warnings go to stderr, one line each.
func serveMetrics(ln net.Listener, src metrics.Source, keys, webConfig string, stderr io.Writer) (stop func(), scheme string) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.NewHandler(src, keys))
	logger := slog.New(warnings{stderr})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfig}, logger)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("--listen " + ln.Addr().String() + ": " + err.Error())
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, webScheme(webConfig)
}

// webScheme is https if the web configuration turns TLS on.
func webScheme(webConfig string) string {
	var c web.Config
	if b, err := os.ReadFile(webConfig); err == nil && yaml.Unmarshal(b, &c) == nil && c.TLSConfig.IsEnabled() {
		return "https"
	}
	return "http"
}

// warnings is a slog.Handler that writes warnings and errors as maptrace's
// one-line warnings, and drops the rest (the metrics server's notes on
// what it listens on).
type warnings struct{ w io.Writer }

func (h warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h warnings) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("maptrace: warning: metrics: " + strings.TrimSpace(r.Message))
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, ", %s: %v", a.Key, a.Value)
		return true
	})
	_, err := fmt.Fprintln(h.w, strings.ReplaceAll(b.String(), "\n", " "))
	return err
}

func (h warnings) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnings) WithGroup(string) slog.Handler      { return h }

func untilText(d time.Duration) string {
	if d > 0 {
		return fmt.Sprintf(" for %v (Ctrl-C to stop early)", d)
	}
	return " until Ctrl-C, SIGTERM or the target's exit"
}
