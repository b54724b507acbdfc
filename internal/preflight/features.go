package preflight

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Kernel is a kernel release's major and minor version.
type Kernel [2]int

// MinKernel is the oldest kernel attach works on: it needs BPF cookies on
// its uprobes, which perf-event uprobe links carry from 5.15 on.
var MinKernel = Kernel{5, 15}

// When each feature attach uses came to mainline Linux.
var (
	KernelUprobeMulti = Kernel{6, 6}
	KernelPerfLink    = Kernel{5, 15}
	KernelCookie      = Kernel{5, 15}
	KernelPidfd       = Kernel{5, 3}
)

func (k Kernel) String() string { return fmt.Sprintf("%d.%d", k[0], k[1]) }

// AtLeast reports whether k is min or newer.
func (k Kernel) AtLeast(min Kernel) bool {
	return k[0] > min[0] || k[0] == min[0] && k[1] >= min[1]
}

// ParseKernel reads the major and minor version of a kernel release such
// as "6.18.44-fc" or "5.15".
func ParseKernel(release string) (Kernel, error) {
	var k Kernel
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return k, fmt.Errorf("kernel release %q: no major.minor", release)
	}
	for i := range k {
		digits := parts[i]
		if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
			digits = digits[:j]
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return k, fmt.Errorf("kernel release %q: no major.minor", release)
		}
		k[i] = n
	}
	return k, nil
}

// RunningKernel is the running kernel's release and version.
func RunningKernel() (string, Kernel, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", Kernel{}, fmt.Errorf("uname: %w", err)
	}
	release := cstr(u.Release[:])
	k, err := ParseKernel(release)
	return release, k, err
}

// Features is what the kernel offers attach, each nil where present, an
// error wrapping ebpf.ErrNotSupported where absent, and another error where
// the probe could not tell (without privileges, for one).
type Features struct {
	// UprobeMulti: one link attaches a program to many uprobes (6.6).
	UprobeMulti error
	// PerfLink: BPF links on perf events (5.15), which carry a cookie to a
	// single uprobe: the fallback without UprobeMulti.
	PerfLink error
	// Cookie: the bpf_get_attach_cookie helper in uprobe programs (5.15),
	// by which maptrace's programs tell their probes apart.
	Cookie error
	// Pidfd: pidfd_open (5.3), by which maptrace sees the target exit.
	Pidfd error
}

// ProbeFeatures probes the running kernel. The probes load small BPF
// programs, so they need the privileges attach needs; results are cached.
func ProbeFeatures() Features {
	return Features{
		UprobeMulti: features.HaveBPFLinkUprobeMulti(),
		PerfLink:    havePerfLink(),
		Cookie:      features.HaveProgramHelper(ebpf.Kprobe, asm.FnGetAttachCookie),
		Pidfd:       havePidfd(),
	}
}

// havePerfLink is cilium/ebpf's own probe for BPF perf links, which its
// features package does not export: creating a perf-event link to an fd
// that is no perf event fails with EBADF where the kernel has such links,
// and with EINVAL where it does not know the attach type. Like cilium/ebpf,
// it keeps only a conclusive answer: one without privileges proves nothing.
func havePerfLink() error {
	perfLink.Lock()
	defer perfLink.Unlock()
	if perfLink.done {
		return perfLink.err
	}
	err := probePerfLink()
	if err == nil || errors.Is(err, ebpf.ErrNotSupported) {
		perfLink.done, perfLink.err = true, err
	}
	return err
}

var perfLink struct {
	sync.Mutex
	done bool
	err  error
}

func probePerfLink() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "probe_perf_link",
		Type:         ebpf.Kprobe,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "MIT",
	})
	if err != nil {
		return fmt.Errorf("load a kprobe program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachRawLink(link.RawLinkOptions{Target: 0, Program: prog, Attach: ebpf.AttachPerfEvent})
	switch {
	case err == nil:
		l.Close() // cannot happen: fd 0 is no perf event
		return nil
	case errors.Is(err, unix.EBADF):
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("perf-event BPF links: %w", ebpf.ErrNotSupported)
	}
	return err
}

func havePidfd() error {
	fd, err := unix.PidfdOpen(unix.Getpid(), 0)
	switch {
	case err == nil:
		unix.Close(fd)
		return nil
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("pidfd_open: %w", ebpf.ErrNotSupported)
	}
	return fmt.Errorf("pidfd_open: %w", err)
}

// Checks turns the features into doctor's lines and attach's preconditions:
// attach needs a cookie-carrying way to attach uprobes (uprobe_multi, else
// perf-event links), the cookie helper, and pidfds.
func (f Features) Checks() []Check {
	absent := func(err error) bool { return errors.Is(err, ebpf.ErrNotSupported) }
	// A probe that failed otherwise (no privileges, lockdown) proves
	// nothing: attach tries anyway, and fails with the kernel's own error.
	unknown := func(c *Check, err error) {
		c.Fatal = false
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			c.Detail, c.Fix = "cannot tell: probing it loads a BPF program, which needs privileges", "run as root"
			return
		}
		c.Detail = "cannot tell: " + err.Error()
	}
	since := func(k Kernel) string { return " (" + k.String() + "+)" }

	multi := Check{Name: "uprobe_multi"}
	switch {
	case f.UprobeMulti == nil:
		multi.OK, multi.Detail = true, "yes"+since(KernelUprobeMulti)+": one link attaches a program to all its sites"
	case absent(f.UprobeMulti):
		multi.Fallback = true
		multi.Detail = "no" + since(KernelUprobeMulti) + ": falls back to a perf-event link per site, slower to attach"
	default:
		unknown(&multi, f.UprobeMulti)
	}

	perf := Check{Name: "perf-event links"}
	switch {
	case f.PerfLink == nil && f.UprobeMulti == nil:
		perf.OK, perf.Detail = true, "yes"+since(KernelPerfLink)+": the fallback without uprobe_multi"
	case f.PerfLink == nil:
		perf.OK, perf.Detail = true, "yes"+since(KernelPerfLink)+": a link per site, each with its cookie"
	case absent(f.PerfLink) && f.UprobeMulti == nil:
		perf.Fallback = true
		perf.Detail = "no" + since(KernelPerfLink) + ": not needed, uprobe_multi links are used"
	case absent(f.PerfLink):
		perf.Fatal = true
		perf.Detail = "no" + since(KernelPerfLink) + ", nor uprobe_multi: no way to attach a uprobe with its cookie"
		perf.Fix = "use kernel " + MinKernel.String() + " or newer"
	default:
		unknown(&perf, f.PerfLink)
	}

	cookie := Check{Name: "attach cookies", Fatal: true}
	switch {
	case f.Cookie == nil:
		cookie.OK, cookie.Detail = true, "yes"+since(KernelCookie)+": bpf_get_attach_cookie tells the probes apart"
	case absent(f.Cookie):
		cookie.Detail = "no bpf_get_attach_cookie" + since(KernelCookie) + ": the probes cannot be told apart"
		cookie.Fix = "use kernel " + MinKernel.String() + " or newer"
	default:
		unknown(&cookie, f.Cookie)
	}

	pidfd := Check{Name: "pidfd", Fatal: true}
	switch {
	case f.Pidfd == nil:
		pidfd.OK, pidfd.Detail = true, "yes"+since(KernelPidfd)+": the target's exit is seen at once"
	case absent(f.Pidfd):
		pidfd.Detail = "no pidfd_open" + since(KernelPidfd) + ": the target's exit cannot be watched"
		pidfd.Fix = "use kernel " + MinKernel.String() + " or newer"
	default:
		unknown(&pidfd, f.Pidfd)
	}
	return []Check{multi, perf, cookie, pidfd}
}
