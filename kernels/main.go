// Command kernels runs maptrace's kernel-dependent tests on Debian's amd64
// kernels and its arm64 kernel, each booted under qemu, and writes
// docs/KERNELS.md: a table of kernel × test, what doctor and an attach say
// on each kernel, and the wall time. `make test-kernels` runs it from the module's root:
//
//	go run ./kernels -out docs/KERNELS.md
//
// The kernels are downloaded by exact package name from Debian's registry
// into a cache (never installed), and only their /boot extracted. The guest
// boots from an initramfs of busybox-static, maptrace, the test binaries
// (go test -c) and their targets, all built here for the kernel's
// architecture: the guest has no Go, and no network. It needs
// qemu-system-x86, qemu-system-arm and busybox-static (scripts/deps.sh
// kernels), not root; arm64's busybox-static is downloaded like the kernels.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kernels:", err)
		os.Exit(1)
	}
}

// Result is one kernel's column.
type Result struct {
	Kernel Kernel
	Err    error // not fetched, not booted, or stopped early
	VM     VMResult
	Guest  GuestRun
	Tests  []TestResult
	Oopses []string // the guest kernel's oops or panic, from each boot that had one
}

func run() error {
	start := time.Now()
	out := flag.String("out", "docs/KERNELS.md", "where to write the table (- for standard output)")
	cacheDir := flag.String("cache", "", "where kernels are kept between runs (default: the user cache directory's maptrace-kernels)")
	only := flag.String("kernels", "", "comma-separated kernels to run, e.g. 6.1,6.12,6.1/arm64 (default: all of the matrix)")
	accelFlag := flag.String("accel", "auto", "auto, kvm or tcg")
	timeout := flag.Duration("timeout", 40*time.Minute, "longest a guest may run before its qemu is killed")
	keep := flag.Bool("keep", false, "keep the work directory (initramfs, serial logs)")
	pkgs := flag.String("pkgs", "", "comma-separated packages whose suites to run, e.g. internal/trace (default: all)")
	flag.Parse()

	module, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(module, "go.mod")); err != nil {
		return fmt.Errorf("run it from maptrace's module root: %v", err)
	}
	cache := *cacheDir
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		cache = filepath.Join(uc, "maptrace-kernels")
	}
	accel, err := chooseAccel(*accelFlag)
	if err != nil {
		return err
	}
	kernels := Matrix
	if *only != "" {
		kernels = nil
		for _, s := range strings.Split(*only, ",") {
			found := false
			for _, k := range Matrix {
				if k.Name() == strings.TrimSpace(s) {
					kernels, found = append(kernels, k), true
				}
			}
			if !found {
				return fmt.Errorf("-kernels: no %q in the matrix", s)
			}
		}
	}
	if *pkgs != "" {
		var keep []Suite
		for _, s := range Suites {
			for _, p := range strings.Split(*pkgs, ",") {
				if s.Pkg == strings.TrimSpace(p) {
					keep = append(keep, s)
				}
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("-pkgs %q: no suite runs those packages", *pkgs)
		}
		Suites = keep
	}
	work, err := os.MkdirTemp("", "maptrace-kernels-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Printf("kernels: work directory %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	// Ctrl-C stops the guest (its qemu is killed through the context) and
	// still writes what ran.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	results := make([]Result, len(kernels))
	for i := range kernels {
		results[i].Kernel = kernels[i]
		if err := fetch(cache, &results[i].Kernel, os.Stdout); err != nil {
			results[i].Err = fmt.Errorf("not fetched: %v", err)
			fmt.Printf("kernels: %s: %v\n", kernels[i].Name(), results[i].Err)
		}
	}
	// One initramfs per architecture, built when a kernel needs it.
	initrds := map[string]string{}
	guestFiles := map[string]map[string]string{}
	initrdFor := func(arch string) (string, error) {
		if p, ok := initrds[arch]; ok {
			return p, nil
		}
		busybox := hostBusybox
		if arch != "amd64" {
			var err error
			if busybox, err = fetchBusybox(cache, "bookworm", arch, os.Stdout); err != nil {
				return "", err
			}
		}
		files, err := buildGuest(module, work, arch, busybox, os.Stdout)
		if err != nil {
			return "", err
		}
		p := filepath.Join(work, "initramfs-"+arch+".cpio")
		if err := writeInitramfs(p, files, accel.forArch(arch), arch, Suites); err != nil {
			return "", err
		}
		initrds[arch], guestFiles[arch] = p, files
		return p, nil
	}
	fmt.Printf("kernels: accelerator %s: %s\n", accel.Name, accel.Why)
	for i := range results {
		r := &results[i]
		if r.Err != nil || ctx.Err() != nil {
			continue
		}
		initrd, err := initrdFor(r.Kernel.Arch)
		if err != nil {
			return err
		}
		accel := accel.forArch(r.Kernel.Arch)
		var wall time.Duration // every boot's
		for attempt := 1; ; attempt++ {
			fmt.Printf("kernels: booting %s (%s)\n", r.Kernel.Package, r.Kernel.Version)
			r.VM, r.Guest = bootGuest(ctx, &r.Kernel, initrd, work, accel, *timeout, attempt)
			wall += r.VM.Wall
			r.Err = r.VM.Err
			// Under TCG a guest kernel now and then oopses on an int3 it
			// patched into its own code on another vCPU (seen once in a
			// dozen boots, at boot): once, that is emulation, and the
			// guest runs again; the oops is noted either way.
			oops := kernelOops(r.VM.Console)
			if oops != "" {
				r.Oopses = append(r.Oopses, oops)
			}
			if r.Err == nil || oops == "" || attempt == 2 || ctx.Err() != nil {
				break
			}
			fmt.Printf("kernels: %s: %v, after %q: booting it again\n", r.Kernel.Name(), r.Err, oops)
		}
		r.VM.Wall = wall
		if r.Tests, err = suiteResults(r.Guest, Suites); err != nil {
			return err
		}
		fmt.Printf("kernels: %s: %s in %v%s\n", r.Kernel.Name(), counts(r.Tests), r.VM.Wall.Round(time.Second), errSuffix(r.Err))
		printFailures(r)
		// An emulated guest's vCPUs stall when its host is busy, and a
		// timing test can fail on that alone: a second boot runs the few
		// failed tests again, and the table keeps the first failure.
		if again := failedLeaves(r.Tests); r.Err == nil && ctx.Err() == nil && len(again) > 0 && len(again) <= maxRerun {
			fmt.Printf("kernels: %s: booting again to run the %d failed tests once more\n", r.Kernel.Name(), len(again))
			rerun := rerunSuites(again)
			p := filepath.Join(work, "initramfs-"+r.Kernel.Arch+"-rerun.cpio")
			if err := writeInitramfs(p, guestFiles[r.Kernel.Arch], accel, r.Kernel.Arch, rerun); err != nil {
				return err
			}
			vm, g := bootGuest(ctx, &r.Kernel, p, work, accel, *timeout, 3)
			r.VM.Wall += vm.Wall
			tr, err := suiteResults(g, rerun)
			if err != nil {
				return err
			}
			r.Tests = mergeRerun(r.Tests, tr)
			fmt.Printf("kernels: %s: after the second boot %s%s\n", r.Kernel.Name(), counts(r.Tests), errSuffix(vm.Err))
			printFailures(r)
		}
		if r.Err != nil {
			tail := r.VM.Console
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			fmt.Printf("kernels: %s console's end:\n%s\n", r.Kernel.Name(), tail)
		}
	}
	// Stack traces in the notes name the host's source paths: the doc
	// names them relative to the module and Go's root.
	goroot, _ := exec.Command("go", "env", "GOROOT").Output()
	doc := strings.NewReplacer(module+"/", "", strings.TrimSpace(string(goroot))+"/", "$GOROOT/").Replace(markdown(results, accel, time.Since(start)))
	if *out == "-" {
		_, err = os.Stdout.WriteString(doc)
	} else {
		err = os.WriteFile(*out, []byte(doc), 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Printf("kernels: wall time %v\n", time.Since(start).Round(time.Second))
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("%s: %v", r.Kernel.Name(), r.Err)
		}
		for _, t := range r.Tests {
			if t.Action == "fail" {
				return fmt.Errorf("tests failed (see %s)", *out)
			}
		}
	}
	return ctx.Err()
}

// bootGuest boots a guest and reads what its /init printed; a guest that
// stopped before /init's end failed too.
func bootGuest(ctx context.Context, k *Kernel, initrd, work string, accel Accel, timeout time.Duration, attempt int) (VMResult, GuestRun) {
	vm := boot(ctx, k, initrd, work, accel, timeout, attempt)
	g := parseOutput(vm.Output)
	if vm.Err == nil && !g.Done {
		vm.Err = fmt.Errorf("the guest stopped before its end")
	}
	return vm, g
}

// suiteResults are the tests of each suite the guest ran.
func suiteResults(g GuestRun, suites []Suite) ([]TestResult, error) {
	var ts []TestResult
	for j, s := range suites {
		sec, ok := g.section(fmt.Sprintf("test:%d", j))
		if !ok {
			continue
		}
		tr, err := testResults(s.Pkg, sec)
		if err != nil {
			return nil, err
		}
		ts = append(ts, tr...)
	}
	return ts, nil
}

// printFailures names each failed test and its log where CI shows it, not
// only in the doc.
func printFailures(r *Result) {
	for _, t := range r.Tests {
		if t.Action == "fail" {
			fmt.Printf("kernels: %s: FAIL %s %s\n", r.Kernel.Name(), t.Pkg, t.Test)
			for _, l := range t.Logs {
				fmt.Printf("    %s\n", l)
			}
		}
	}
}

func counts(ts []TestResult) string {
	n := map[string]int{}
	for _, t := range ts {
		n[t.Action]++
	}
	again := 0
	for _, t := range ts {
		if t.FailedFirst != "" {
			again++
		}
	}
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", n["pass"], n["fail"], n["skip"])
	if again > 0 {
		s += fmt.Sprintf(" (%d passed on a second boot)", again)
	}
	return s
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// kernelOops is the first line of a kernel oops or panic on the console.
func kernelOops(console []byte) string {
	for _, l := range strings.Split(string(console), "\n") {
		for _, w := range []string{"Oops:", "Kernel panic", "BUG:"} {
			if i := strings.Index(l, w); i >= 0 {
				return strings.TrimSpace(l[i:])
			}
		}
	}
	return ""
}
