package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	// NatsVersion is the nats-server module version built.
	NatsVersion string
	// BuildTime is how long each build took.
	BuildTime map[string]time.Duration
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

// build builds maptrace, the targets and nats-server into tmp.
func build(root, tmp string, logf func(string, ...any)) (*Binaries, error) {
	b := &Binaries{BuildTime: map[string]time.Duration{}}
	local := []string{"GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false"}
	plain := append(local, "CGO_ENABLED=0")
	race := append(local, "CGO_ENABLED=1")
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv("CC") == "" {
		if _, err := exec.LookPath("clang"); err == nil {
			race = append(race, "CC=clang") // -race needs cgo, and cgo a C compiler
		}
	}
	steps := []struct {
		name string
		out  *string
		dir  string
		env  []string
		args []string
	}{
		{"maptrace", &b.Maptrace, root, local, []string{"./cmd/maptrace"}},
		{"contention", &b.Contention, filepath.Join(root, "testdata/contention"), plain, []string{"."}},
		{"maps", &b.Maps, filepath.Join(root, "testdata/maps"), plain, []string{"."}},
		{"locks", &b.Locks, filepath.Join(root, "bench/targets/locks"), plain, []string{"."}},
		{"maps-race", &b.MapsRace, filepath.Join(root, "testdata/maps"), race, []string{"-race", "."}},
		{"locks-race", &b.LocksRace, filepath.Join(root, "bench/targets/locks"), race, []string{"-race", "."}},
		// nats-server is a module dependency of bench/nats, fetched through
		// the module proxy into the module cache, never vendored here.
		{"nats-server", &b.NatsServer, filepath.Join(root, "bench/nats"), []string{"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false", "CGO_ENABLED=0"}, []string{"github.com/nats-io/nats-server/v2"}},
		{"nats-load", &b.NatsLoad, filepath.Join(root, "bench/nats"), []string{"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false", "CGO_ENABLED=0"}, []string{"./load"}},
	}
	for _, s := range steps {
		out := filepath.Join(tmp, s.name)
		start := time.Now()
		args := append([]string{"-o", out}, s.args...)
		if err := goBuild(s.dir, s.env, args...); err != nil {
			if strings.HasSuffix(s.name, "-race") {
				return nil, fmt.Errorf("the -race comparison needs cgo and a C compiler: %w", err)
			}
			return nil, err
		}
		b.BuildTime[s.name] = time.Since(start)
		*s.out = out
		logf("built %s in %v", s.name, time.Since(start).Round(time.Millisecond))
	}
	b.NatsVersion = moduleVersion(filepath.Join(root, "bench/nats"), "github.com/nats-io/nats-server/v2")
	return b, nil
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
