package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// modulePath is maptrace's module, whose root the harness builds from.
const modulePath = "github.com/maptrace/maptrace"

// repoRoot finds maptrace's module root from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && moduleOf(b) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s in the working directory or above it", modulePath)
		}
		dir = parent
	}
}

func moduleOf(gomod []byte) string {
	for _, l := range strings.Split(string(gomod), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// Binaries are everything the benchmarks run, built for this run.
type Binaries struct {
	Maptrace   string
	Contention string // testdata/contention
	Maps       string // testdata/maps
	Locks      string // bench/targets/locks
	MapsRace   string // the same, built with -race
	LocksRace  string
	NatsServer string
	NatsLoad   string
	Etcd       string // etcd and its benchmark tool (bench/etcd)
	EtcdBench  string
	Caddy      string // Caddy, hey and the backend it proxies to (bench/caddy)
	Hey        string
	Backend    string
	CoreDNS    string // CoreDNS and its load client (bench/coredns)
	DNSLoad    string
	// NatsVersion is the nats-server module version built.
	NatsVersion string
	// Versions are the third-party module versions built, by binary.
	Versions map[string]string
	// BuildTime is how long each build took; Cached says which third-party
	// binaries came from the cache instead.
	BuildTime map[string]time.Duration
	Cached    map[string]bool
}

// goBuild runs `go build` in dir with extra environment.
func goBuild(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out.Bytes())
	}
	return nil
}

// buildStep is one binary the harness builds.
type buildStep struct {
	name string
	out  *string
	dir  string // relative to the repository root
	env  []string
	args []string
	// module is set for third-party programs, built from the version
	// pinned in dir's go.mod (through the module proxy into the module
	// cache, never vendored here) into a cache directory that outlives the
	// run: Caddy alone takes minutes to build on two cores.
	module string
}

// build builds maptrace, the targets and the servers into tmp, or only the
// named ones.
func build(root, tmp string, logf func(string, ...any), only ...string) (*Binaries, error) {
	b := &Binaries{BuildTime: map[string]time.Duration{}, Cached: map[string]bool{}, Versions: map[string]string{}}
	local := []string{"GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false"}
	plain := append(local, "CGO_ENABLED=0")
	race := append(local, "CGO_ENABLED=1")
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv("CC") == "" {
		if _, err := exec.LookPath("clang"); err == nil {
			race = append(race, "CC=clang") // -race needs cgo, and cgo a C compiler
		}
	}
	mod := []string{"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false", "CGO_ENABLED=0"}
	steps := []buildStep{
		{"maptrace", &b.Maptrace, ".", local, []string{"./cmd/maptrace"}, ""},
		{"contention", &b.Contention, "testdata/contention", plain, []string{"."}, ""},
		{"maps", &b.Maps, "testdata/maps", plain, []string{"."}, ""},
		{"locks", &b.Locks, "bench/targets/locks", plain, []string{"."}, ""},
		{"maps-race", &b.MapsRace, "testdata/maps", race, []string{"-race", "."}, ""},
		{"locks-race", &b.LocksRace, "bench/targets/locks", race, []string{"-race", "."}, ""},
		{"nats-server", &b.NatsServer, "bench/nats", mod, []string{"github.com/nats-io/nats-server/v2"}, "github.com/nats-io/nats-server/v2"},
		{"nats-load", &b.NatsLoad, "bench/nats", mod, []string{"./load"}, "github.com/nats-io/nats.go"},
		{"etcd", &b.Etcd, "bench/etcd", mod, []string{"go.etcd.io/etcd/server/v3"}, "go.etcd.io/etcd/server/v3"},
		{"etcd-benchmark", &b.EtcdBench, "bench/etcd", mod, []string{"go.etcd.io/etcd/v3/tools/benchmark"}, "go.etcd.io/etcd/v3"},
		{"caddy", &b.Caddy, "bench/caddy", mod, []string{"github.com/caddyserver/caddy/v2/cmd/caddy"}, "github.com/caddyserver/caddy/v2"},
		{"hey", &b.Hey, "bench/caddy", mod, []string{"github.com/rakyll/hey"}, "github.com/rakyll/hey"},
		{"caddy-backend", &b.Backend, "bench/caddy", mod, []string{"./backend"}, "github.com/maptrace/maptrace/bench/caddy"},
		{"coredns", &b.CoreDNS, "bench/coredns", mod, []string{"github.com/coredns/coredns"}, "github.com/coredns/coredns"},
		{"dns-load", &b.DNSLoad, "bench/coredns", mod, []string{"./load"}, "github.com/miekg/dns"},
	}
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	for _, s := range steps {
		if len(only) > 0 && !want[s.name] {
			continue
		}
		dir := filepath.Join(root, s.dir)
		out := filepath.Join(tmp, s.name)
		if s.module != "" {
			b.Versions[s.name] = moduleVersion(dir, s.module)
			var err error
			if out, err = cachedPath(dir, s.name, s.args); err != nil {
				return nil, err
			}
			if _, err := os.Stat(out); err == nil {
				*s.out, b.Cached[s.name] = out, true
				logf("%s %s: built before, %s", s.name, b.Versions[s.name], out)
				continue
			}
		}
		start := time.Now()
		// A cached binary is built beside its place and renamed into it, so
		// that a run stopped halfway, or another worktree building the same
		// one, never leaves a half-written binary to be reused.
		dst := out
		if s.module != "" {
			dst = fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
		}
		args := append([]string{"-o", dst}, s.args...)
		if err := goBuild(dir, s.env, args...); err != nil {
			if strings.HasSuffix(s.name, "-race") {
				return nil, fmt.Errorf("the -race comparison needs cgo and a C compiler: %w", err)
			}
			return nil, err
		}
		if dst != out {
			if err := os.Rename(dst, out); err != nil {
				return nil, err
			}
		}
		b.BuildTime[s.name] = time.Since(start)
		*s.out = out
		logf("built %s in %v", s.name, time.Since(start).Round(time.Millisecond))
	}
	b.NatsVersion = b.Versions["nats-server"]
	return b, nil
}

// cachedPath is where a third-party binary built in dir is kept: the
// user's cache directory, under a name that changes with dir's go.mod and
// go.sum, the Go version and the package, so that a new pin rebuilds.
func cachedPath(dir, name string, args []string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the server builds: %w", err)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	fmt.Fprintln(h, goVersion(), args)
	for _, a := range args { // our own load clients: their source is part of the key
		if !strings.HasPrefix(a, "./") {
			continue
		}
		srcs, _ := filepath.Glob(filepath.Join(dir, a, "*.go"))
		for _, f := range srcs {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			h.Write(b)
		}
	}
	d := filepath.Join(cache, "maptrace-bench")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(d, fmt.Sprintf("%s-%x", name, h.Sum(nil)[:8])), nil
}

// moduleVersion asks the go command which version of a module dir's build uses.
func moduleVersion(dir, mod string) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", mod)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// goVersion is the version of the go command that builds (GOTOOLCHAIN=local).
var goVersion = sync.OnceValue(func() string {
	cmd := exec.Command("go", "env", "GOVERSION")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})
