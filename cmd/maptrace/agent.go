package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/maptrace/maptrace/internal/agent"
)

// agentOverhead is the agent's default budget: it traces every process of
// a node, all the time.
const agentOverhead = 1

func agentCmd() *cobra.Command {
	var (
		listen   string
		match    []string
		survey   bool
		overhead float64
		mutex    bool
		noMutex  bool
		maps     bool
		noMaps   bool
		keys     string
		ctrd     string
		svcLabel string
	)
	cmd := &cobra.Command{
		Use:   "agent --listen ADDR [--match PATTERN]...",
		Short: "Trace every (matched) Go process of this node while it runs, and serve their metrics",
		Long: "Trace every Go process of this node, or those a --match selects, from its start (within a few\n" +
			"seconds) to its exit, and serve their metrics at http://ADDR/metrics and a report of one of\n" +
			"them at http://ADDR/report?service=NAME&seconds=N. --survey lists what would be traced, and why.",
		Args: argsError,
		RunE: func(cmd *cobra.Command, _ []string) error {
			patterns, err := agent.ParsePatterns(match)
			if err != nil {
				return usageError{err}
			}
			switch {
			case survey && listen != "":
				return usageError{errors.New("--survey and --listen: give one (--survey lists the processes and exits)")}
			case !survey && listen == "":
				return usageError{errors.New("agent needs --listen ADDR, where to serve metrics (or --survey)")}
			case keys != "raw" && keys != "hash" && keys != "none":
				return usageError{fmt.Errorf("--keys %q: want raw, hash or none", keys)}
			case overhead <= 0:
				return usageError{fmt.Errorf("--overhead %v: must be above 0", overhead)}
			case overhead > maxOverhead:
				return usageError{fmt.Errorf("--overhead %v: at most %d", overhead, maxOverhead)}
			case !(mutex && !noMutex) && !(maps && !noMaps):
				return usageError{errors.New("--no-mutex and --no-maps leave nothing to trace: drop one")}
			case svcLabel != "" && !labelKey.MatchString(svcLabel):
				return usageError{fmt.Errorf("--service-label %q: not a Kubernetes label key: give one such as %s (\"\" for none)", svcLabel, agent.DefaultServiceLabel)}
			}
			cfg := agent.Config{
				Patterns:     patterns,
				Mutex:        mutex && !noMutex,
				Maps:         maps && !noMaps,
				Overhead:     overhead,
				Keys:         keys,
				Log:          cmd.ErrOrStderr(),
				Containerd:   ctrd,
				ServiceLabel: svcLabel,
			}
			if survey {
				return runSurvey(cmd, cfg)
			}
			return runAgent(cmd, cfg, listen)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "", "serve /metrics and /report at `ADDR` (e.g. 127.0.0.1:9435)")
	fs.StringArrayVar(&match, "match", nil, "trace the processes `PATTERN` selects: a glob on the executable's name or path or the Go module, "+
		"a container ID, or namespace/pod; repeat for more (default: every Go process)")
	fs.BoolVar(&survey, "survey", false, "list the Go processes the agent would trace, and why or why not, then exit")
	fs.Float64Var(&overhead, "overhead", agentOverhead, fmt.Sprintf("each process's probe budget, `PCT` percent of its CPU time (at most %d)", maxOverhead))
	fs.BoolVar(&mutex, "mutex", true, "trace sync.Mutex / sync.RWMutex contention")
	fs.BoolVar(&noMutex, "no-mutex", false, "do not trace mutex contention")
	fs.BoolVar(&maps, "maps", true, "trace map operations under the --overhead budget")
	fs.BoolVar(&noMaps, "no-maps", false, "do not trace map operations")
	fs.StringVar(&ctrd, "containerd", agent.DefaultContainerd, "read the Kubernetes pod and container names of containers from containerd's `SOCKET` (\"\" for none)")
	fs.StringVar(&svcLabel, "service-label", agent.DefaultServiceLabel, "name a pod's processes' service by the value of its pod label `KEY`, "+
		"when it has one, before its container's name (\"\" for none)")
	fs.StringVar(&keys, "keys", "hash", "how map keys appear on /metrics and in reports: hash (a stable short hash), raw or none")
	return cmd
}

// labelKey is a Kubernetes label key: an optional DNS-subdomain prefix and
// a slash, then a name of at most 63 letters, digits, '-', '_' or '.',
// alphanumeric at both ends.
var labelKey = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

func runSurvey(cmd *cobra.Command, cfg agent.Config) error {
	if os.Geteuid() != 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "maptrace: not root: only the processes whose executable this user can read are listed")
	}
	rows, err := agent.New(cfg).Survey()
	if err != nil {
		return err
	}
	return agent.WriteSurvey(cmd.OutOrStdout(), rows)
}

func runAgent(cmd *cobra.Command, cfg agent.Config, listen string) error {
	if err := preflightError(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %s: %v: give a free host:port, such as 127.0.0.1:9435", listen, unwrapNet(err))}
	}
	defer ln.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	a := agent.New(cfg)
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "maptrace: agent: serving metrics at http://%s/metrics\n", ln.Addr())
	err = a.Run(ctx)
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	fmt.Fprintln(stderr, "maptrace: agent: stopped; every probe is detached")
	return err
}
