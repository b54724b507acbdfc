package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// Suite is one run of a test binary in the guest: a package and the tests
// it runs there (-test.run). Only the local toolchain's targets are
// prebuilt (the guest has no Go), so tests over the toolchain matrix run
// their "local" subtest.
type Suite struct {
	Pkg string // relative to the module, without ./
	Run string
	// Arm64 is what runs on arm64, under TCG emulating another instruction
	// set: a focused subset of Run; "" runs nothing there.
	Arm64 string
}

// Suites are the tests that depend on the kernel: attach modes, the cost of
// a hit, mutex accuracy against the runtime's metric, exact hot keys, races,
// the CPU sampler (a perf_event program, the verifier's hardest), and what
// the command line says and does, doctor included.
//
// On arm64 a focused subset: attaching, the cost of a hit, mutex accuracy,
// hot keys and races, the CPU sampler, and doctor.
var Suites = []Suite{
	{"internal/preflight", "^TestFeaturesMatchKernel$", "^TestFeaturesMatchKernel$"},
	{"internal/probes", "^(TestAttachModes|TestInventory)$", "^(TestAttachModes|TestInventory)$"},
	{"internal/probes", "^TestParkSite$/^local$", "^TestParkSite$/^local$"},
	{"internal/calibrate", "^(TestMeasure|TestSiteCosts)$", "^(TestMeasure|TestSiteCosts)$"},
	{"internal/trace", "^(TestMutexContention|TestStrippedAndPIE|TestHotKeysExact|TestRaces|TestTargetPanics|TestLockedMapsNoRaces|TestMapCPUWithProbes)$/^local$",
		"^(TestMutexContention|TestHotKeysExact|TestRaces|TestTargetPanics|TestLockedMapsNoRaces|TestMapCPUWithProbes)$/^local$"},
	// Not TestMapShare: how samples split between map and other code
	// depends on the CPU, not the kernel, and under TCG, which delivers a
	// timer interrupt only between translated blocks, it is off by 0.1.
	{"internal/cpuprof", "^(TestVerifierBudget|TestIoctlAttach|TestClose|TestNoMapWork|TestResumeSamples|TestMutexProbeSamples)$",
		"^(TestVerifierBudget|TestIoctlAttach|TestClose|TestNoMapWork|TestResumeSamples|TestMutexProbeSamples)$"},
	{"cmd/maptrace", "^(TestDoctorSystem|TestAttachRefusedOnOldKernel|TestDoctorGoTargets|TestChecksBeforeAttach|TestEndings|TestKilledLeavesNoProbe|TestExact)$",
		"^TestDoctorSystem$"},
}

// runFor is what suite s runs on arch; "" is nothing.
func (s Suite) runFor(arch string) string {
	if arch == "arm64" {
		return s.Arm64
	}
	return s.Run
}

// targetFlags are the builds of each testdata program prebuilt for the
// guest: the ones the suites' tests ask testtarget.Build for.
var targetFlags = [][]string{nil, {"-ldflags=-s -w"}, {"-buildmode=pie"}, {"-buildmode=pie", "-ldflags=-s -w"}}

// Guest paths.
const (
	guestRoot    = "/maptrace"
	guestBin     = guestRoot + "/bin/maptrace"
	guestTargets = guestRoot + "/targets"
	guestTests   = guestRoot + "/tests"
	guestSrc     = guestRoot + "/src" // package directories, the tests' working directories
)

// testBinary is where a package's test binary goes in the guest.
func testBinary(pkg string) string {
	return guestTests + "/" + strings.ReplaceAll(pkg, "/", "_") + ".test"
}

// buildGuest builds what a guest of arch runs into files (guest path → host
// path): maptrace, the test binaries and the targets, all static. busybox
// is the guest's shell, built for arch.
func buildGuest(module, work, arch, busybox string, log io.Writer) (map[string]string, error) {
	files := map[string]string{}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOARCH="+arch)
	gobuild := func(guest string, args ...string) error {
		host := filepath.Join(work, "build-"+arch, strings.TrimPrefix(guest, "/"))
		cmd := exec.Command("go", append(args[:1:1], append([]string{"-o", host}, args[1:]...)...)...)
		cmd.Dir, cmd.Env = module, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		files[guest] = host
		return nil
	}
	fmt.Fprintf(log, "kernels: building maptrace, the test binaries and the targets for %s\n", arch)
	if err := gobuild(guestBin, "build", "./cmd/maptrace"); err != nil {
		return nil, err
	}
	for _, s := range Suites {
		if _, ok := files[testBinary(s.Pkg)]; ok || s.runFor(arch) == "" {
			continue
		}
		if err := gobuild(testBinary(s.Pkg), "test", "-c", "./"+s.Pkg); err != nil {
			return nil, err
		}
	}
	srcs, err := filepath.Glob(filepath.Join(module, "testdata", "*", "go.mod"))
	if err != nil {
		return nil, err
	}
	for _, gomod := range srcs {
		src := filepath.Dir(gomod)
		for _, flags := range targetFlags {
			if arch != "amd64" && slices.Contains(flags, "-buildmode=pie") {
				continue // a PIE needs arch's dynamic loader, which the guest lacks
			}
			guest := guestTargets + "/" + testtarget.PrebuiltName(src, "local", flags...)
			host := filepath.Join(work, "build-"+arch, strings.TrimPrefix(guest, "/"))
			if err := testtarget.CompileFor(arch, src, "local", host, flags...); err != nil {
				return nil, err
			}
			files[guest] = host
		}
	}
	if err := staticBusybox(busybox); err != nil {
		return nil, err
	}
	files["/bin/busybox"] = busybox
	if arch == "amd64" {
		// Go links a PIE with the dynamic loader as its interpreter, cgo
		// or not; it needs no library.
		files[loader] = loader
	}
	return files, nil
}

// loader is the dynamic loader PIE targets name, on the host and the guest.
const loader = "/lib64/ld-linux-x86-64.so.2"

// hostBusybox is where Debian's busybox-static installs busybox.
const hostBusybox = "/bin/busybox"

// staticBusybox checks that path is a static busybox, Debian's
// busybox-static: the guest has no libc.
func staticBusybox(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%v: install busybox-static (make test-kernels does)", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install busybox-static (make test-kernels does)", path)
		}
	}
	return nil
}

// initScript is the guest's /init: it mounts what maptrace needs (proc,
// sysfs, debugfs and tracefs for uprobes, bpffs), runs doctor, one attach
// and the suites, each between markers on the second serial port (the
// first is the kernel's console), and powers off. On arm64 qemu's virt
// machine has one serial port, and Debian builds the virtio console as a
// module the guest cannot load: the markers share the console, with the
// kernel's messages cut to emergencies.
func initScript(accel Accel, arch string, suites []Suite) string {
	emulated := "0"
	if accel.Name == "tcg" {
		emulated = "1"
	}
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:` + guestRoot + `/bin HOME=/root TMPDIR=/tmp
export MAPTRACE_BIN=` + guestBin + ` MAPTRACE_TARGETS=` + guestTargets + ` ` + testtarget.EmulatedEnv + `=` + emulated + `
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mkdir -p /root
` + serialSetup(arch) + `
now() { cut -d' ' -f1 /proc/uptime; }
step() {
	name=$1; shift
	echo "@@mt begin $name"
	t0=$(now)
	"$@"
	rc=$?
	echo
	echo "@@mt end $name $rc $t0 $(now)"
}
# A trace of a few seconds, as a user would start one: the contention
# target contends while maptrace attaches.
attach() {
	mkfifo /tmp/cmds
	` + guestTargets + `/` + testtarget.PrebuiltName("contention", "local") + ` </tmp/cmds >/tmp/target.out &
	pid=$!
	exec 3>/tmp/cmds
	echo "run 60000" >&3
	maptrace attach -p $pid -d 5s --top 3
	rc=$?
	exec 3>&-
	kill $pid
	wait $pid 2>/dev/null
	return $rc
}
echo "@@mt kernel $(uname -r)"
step doctor maptrace doctor
step attach attach
`)
	for i, s := range suites {
		run := s.runFor(arch)
		if run == "" {
			continue
		}
		fmt.Fprintf(&b, "mkdir -p %s/%s && cd %s/%s\n", guestSrc, s.Pkg, guestSrc, s.Pkg)
		fmt.Fprintf(&b, "step test:%d %s -test.v=test2json -test.count=1 -test.timeout=20m -test.run '%s'\n", i, testBinary(s.Pkg), run)
	}
	b.WriteString("cd /\necho \"@@mt done\"\nreboot -f\n")
	return b.String()
}

// serialSetup sends /init's output to the port the host reads it from.
func serialSetup(arch string) string {
	if arch == "arm64" {
		return "echo 1 >/proc/sys/kernel/printk\nstty -F /dev/ttyAMA0 raw -echo\nexec >/dev/ttyAMA0 2>&1"
	}
	return "stty -F /dev/ttyS1 raw -echo\nexec >/dev/ttyS1 2>&1"
}

// writeInitramfs writes an uncompressed newc cpio archive of the files and
// /init: the kernel unpacks it faster than a compressed one, which matters
// under emulation.
func writeInitramfs(path string, files map[string]string, accel Accel, arch string, suites []Suite) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := &cpioWriter{w: f}
	dirs := map[string]bool{}
	var names []string
	for guest := range files {
		names = append(names, guest)
	}
	sort.Strings(names)
	mkdirs := func(p string) {
		var parts []string
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if !dirs[d] {
				dirs[d] = true
				w.entry(d, 0o40755, nil)
			}
		}
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/root", "/sys/fs/bpf"} {
		mkdirs(d + "/x")
	}
	for _, guest := range names {
		mkdirs(guest)
		data, err := os.ReadFile(files[guest])
		if err != nil {
			f.Close()
			return err
		}
		w.entry(guest, 0o100755, data)
	}
	w.entry("/init", 0o100755, []byte(initScript(accel, arch, suites)))
	w.entry("TRAILER!!!", 0, nil)
	if w.err != nil {
		f.Close()
		return w.err
	}
	return f.Close()
}

// cpioWriter writes the newc format the kernel's initramfs unpacker reads.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) entry(name string, mode int, data []byte) {
	if c.err != nil {
		return
	}
	name = strings.TrimPrefix(name, "/")
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	if _, c.err = c.w.Write(b.Bytes()); c.err != nil {
		return
	}
	if _, c.err = c.w.Write(data); c.err != nil {
		return
	}
	if pad := (4 - len(data)%4) % 4; pad > 0 {
		_, c.err = c.w.Write(make([]byte, pad))
	}
}

// Accel is how qemu runs the guest.
type Accel struct {
	Name string // kvm or tcg
	Args []string
	Why  string
}

// chooseAccel prefers KVM on a host whose KVM is hardware virtualization.
// Under kvm_pvm (a host that is itself a VM without nested VMX, as this
// project's machines are) /dev/kvm works but runs a stock kernel's
// privileged code by emulation: Debian's kernels did not get past their
// decompressor in 5 minutes, and one stopped on a VEX-encoded instruction
// the emulator lacks. TCG boots them in seconds.
func chooseAccel(want string) (Accel, error) {
	kvm := Accel{Name: "kvm", Args: []string{"-enable-kvm", "-cpu", "host"}}
	tcg := Accel{Name: "tcg", Args: []string{"-accel", "tcg,thread=multi", "-cpu", "max"}}
	hw := ""
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			hw = m
		}
	}
	usable := false
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		usable = true
	}
	switch want {
	case "kvm":
		kvm.Why = "asked for (-accel kvm)"
		return kvm, nil
	case "tcg":
		tcg.Why = "asked for (-accel tcg)"
		return tcg, nil
	case "", "auto":
	default:
		return Accel{}, fmt.Errorf("-accel %q: want auto, kvm or tcg", want)
	}
	switch {
	case usable && hw != "":
		kvm.Why = "/dev/kvm is hardware virtualization (" + hw + ")"
		return kvm, nil
	case usable:
		_, pvm := os.Stat("/sys/module/kvm_pvm")
		tcg.Why = "/dev/kvm is not hardware virtualization"
		if pvm == nil {
			tcg.Why = "/dev/kvm is kvm_pvm, which boots Debian's stock kernels only by emulating them, far slower than TCG"
		}
		return tcg, nil
	default:
		tcg.Why = "no usable /dev/kvm"
		return tcg, nil
	}
}

// forArch is the accelerator for a guest of arch: an arm64 guest on this
// amd64 host is always emulated, by TCG, as a Cortex-A57 (a CPU with
// pointer authentication would emulate it too, slowly).
func (a Accel) forArch(arch string) Accel {
	if arch != "arm64" {
		return a
	}
	return Accel{Name: "tcg", Args: []string{"-accel", "tcg,thread=multi", "-M", "virt", "-cpu", "cortex-a57"},
		Why: "arm64 on an amd64 host"}
}

// VMResult is one guest's run.
type VMResult struct {
	Output  []byte        // the second serial port: the markers and what ran between them
	Console []byte        // the kernel's console
	Wall    time.Duration // qemu start to exit
	Err     error         // qemu failed or timed out
}

// boot runs a guest of 2 vCPUs and 1.5 GiB with no network device, and
// waits for it to power off, killing the qemu it started at the deadline.
func boot(ctx context.Context, k *Kernel, initrd, work string, accel Accel, timeout time.Duration, attempt int) VMResult {
	name := strings.ReplaceAll(k.Name(), "/", "-")
	out := filepath.Join(work, fmt.Sprintf("out-%s-%d.log", name, attempt))
	con := filepath.Join(work, fmt.Sprintf("console-%s-%d.log", name, attempt))
	qemu, serial, console := "qemu-system-x86_64", []string{"-serial", "file:" + con, "-serial", "file:" + out}, "ttyS0"
	if k.Arch == "arm64" {
		// One serial port (initScript): console and markers in one file.
		qemu, serial, console, con = "qemu-system-aarch64", []string{"-serial", "file:" + out}, "ttyAMA0", out
	}
	args := append(append(append([]string{}, accel.Args...),
		"-smp", "2", "-m", "1536", "-nographic", "-no-reboot", "-net", "none", "-monitor", "none"), serial...)
	args = append(args, "-kernel", k.Vmlinuz, "-initrd", initrd,
		"-append", "console="+console+" rdinit=/init panic=-1 quiet")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	err := cmd.Run() // CommandContext kills this qemu, by its pid, at the deadline
	r := VMResult{Wall: time.Since(start)}
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		r.Err = fmt.Errorf("no power-off in %v: killed", timeout)
	case ctx.Err() != nil:
		r.Err = ctx.Err()
	case err != nil:
		r.Err = fmt.Errorf("qemu: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	r.Output, _ = os.ReadFile(out)
	r.Console, _ = os.ReadFile(con)
	return r
}
