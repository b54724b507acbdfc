// Package preflight checks that this machine and this process can trace:
// kernel features and privileges. attach stops at the first failure, and
// doctor shows them all.
package preflight

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Check is one preflight check's outcome.
type Check struct {
	Name  string
	OK    bool
	Fatal bool // tracing cannot work without it
	// Fallback marks a feature that is absent but not needed: attach works
	// another way (OK is false, Fatal too).
	Fallback bool
	Detail   string // what was found
	Fix      string // what to do when it failed
}

// Capabilities maptrace needs, when not running with CAP_SYS_ADMIN.
const (
	capBPF      = 39
	capPerfmon  = 38
	capSysAdmin = 21
	capPtrace   = 19
)

// System runs the machine-wide checks. memlock comes before the checks that
// load BPF programs, which need it raised on kernels before 5.11.
func System() []Check {
	cs := []Check{kernel(), privileges(), uprobes(), memlock(), bpfLoad()}
	features := ProbeFeatures().Checks()
	// On a kernel older than MinKernel a missing feature's fix names the
	// kernel, so that attach's one-line error says why without doctor.
	if release, k, err := RunningKernel(); err == nil && !k.AtLeast(MinKernel) {
		for i, c := range features {
			if !c.OK && c.Fatal && strings.HasPrefix(c.Fix, "use kernel ") {
				features[i].Fix += " (this one is " + release + ")"
			}
		}
	}
	cs = append(cs, features...)
	return append(cs, btf())
}

// First returns the first fatal failure as an error, or nil.
func First(checks []Check) error {
	for _, c := range checks {
		if !c.OK && c.Fatal {
			return fmt.Errorf("%s: %s (%s)", c.Name, c.Detail, c.Fix)
		}
	}
	return nil
}

// kernel names the running kernel against MinKernel. An older one is not
// fatal by itself: distributions backport features, and the feature checks
// say what is really missing.
func kernel() Check {
	c := Check{Name: "kernel", OK: true}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		c.Detail = "uname: " + err.Error()
		return c
	}
	release, machine := cstr(u.Release[:]), cstr(u.Machine[:])
	c.Detail = fmt.Sprintf("%s %s (maptrace needs %s or newer)", release, machine, MinKernel)
	if v, err := ParseKernel(release); err == nil && !v.AtLeast(MinKernel) {
		c.OK = false
		c.Fix = "use kernel " + MinKernel.String() + " or newer; the checks below say which features are missing"
	}
	if machine != "x86_64" && machine != "aarch64" {
		c.OK = false
		c.Fix = "maptrace runs on amd64 (x86_64) and arm64 (aarch64), from Linux " + MinKernel.String()
	}
	return c
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func privileges() Check {
	c := Check{Name: "privileges", Fatal: true, Fix: "run as root (sudo), or grant CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE"}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		c.Detail = "capget: " + err.Error()
		return c
	}
	has := func(capability uint) bool { return data[capability/32].Effective&(1<<(capability%32)) != 0 }
	switch {
	case has(capSysAdmin):
		c.OK, c.Detail = true, fmt.Sprintf("uid %d, CAP_SYS_ADMIN", os.Geteuid())
	case has(capBPF) && has(capPerfmon) && has(capPtrace):
		c.OK, c.Detail = true, fmt.Sprintf("uid %d, CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE", os.Geteuid())
	default:
		c.Detail = fmt.Sprintf("uid %d lacks CAP_SYS_ADMIN (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE)", os.Geteuid())
	}
	return c
}

func uprobes() Check {
	c := Check{Name: "uprobes", Fatal: true, Fix: "use a kernel built with CONFIG_UPROBE_EVENTS=y"}
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe"); err == nil {
		c.OK, c.Detail = true, "uprobe PMU present"
		return c
	}
	for _, p := range []string{"/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			c.OK, c.Detail = true, "tracefs uprobe_events ("+p+")"
			return c
		}
	}
	c.Detail = "no uprobe PMU and no tracefs uprobe_events"
	return c
}

func bpfLoad() Check {
	c := Check{Name: "bpf", Fatal: true, Fix: "run as root, and check kernel.unprivileged_bpf_disabled and lockdown"}
	err := features.HaveProgramType(ebpf.Kprobe)
	switch {
	case err == nil:
		c.OK, c.Detail = true, "kprobe/uprobe programs load"
	case errors.Is(err, ebpf.ErrNotSupported):
		c.Detail, c.Fix = "kernel has no kprobe BPF programs", "use a kernel built with CONFIG_BPF_EVENTS=y"
	default:
		c.Detail = err.Error()
	}
	return c
}

// btf is informational: maptrace's programs read only pt_regs and user
// memory, so they need no CO-RE relocations.
func btf() Check {
	c := Check{Name: "btf", OK: true}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
		c.Detail = "present (/sys/kernel/btf/vmlinux)"
	} else {
		c.Detail = "absent; not needed: maptrace's programs use no CO-RE"
	}
	return c
}

func memlock() Check {
	c := Check{Name: "memlock", Fatal: true, Fix: "raise RLIMIT_MEMLOCK (ulimit -l unlimited) or use kernel 5.11+"}
	if err := rlimit.RemoveMemlock(); err != nil {
		c.Detail = err.Error()
		return c
	}
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
	c.OK = true
	if lim.Cur == unix.RLIM_INFINITY {
		c.Detail = "unlimited or memcg-accounted"
	} else {
		c.Detail = strings.TrimSpace(fmt.Sprintf("%d bytes", lim.Cur))
	}
	return c
}
