package preflight_test

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestFeaturesMatchKernel probes the running kernel and checks each feature
// against the release it came with: a kernel that new must have it (an
// older one may, backported), and attach's verdict must follow from them.
// make test-kernels runs it on each kernel of the matrix.
func TestFeaturesMatchKernel(t *testing.T) {
	testtarget.NeedRoot(t)
	release, k, err := preflight.RunningKernel()
	if err != nil {
		t.Fatal(err)
	}
	f := preflight.ProbeFeatures()
	for _, c := range []struct {
		name  string
		since preflight.Kernel
		err   error
	}{
		{"uprobe_multi", preflight.KernelUprobeMulti, f.UprobeMulti},
		{"perf-event links", preflight.KernelPerfLink, f.PerfLink},
		{"attach cookies", preflight.KernelCookie, f.Cookie},
		{"pidfd", preflight.KernelPidfd, f.Pidfd},
	} {
		switch {
		case c.err == nil:
			t.Logf("%s: yes (%s+)", c.name, c.since)
		case !errors.Is(c.err, ebpf.ErrNotSupported):
			t.Errorf("%s: cannot tell: %v", c.name, c.err)
		case k.AtLeast(c.since):
			t.Errorf("kernel %s should have %s (%s+): %v", release, c.name, c.since, c.err)
		default:
			t.Logf("%s: no, as before %s: %v", c.name, c.since, c.err)
		}
	}
	canAttach := (f.UprobeMulti == nil || f.PerfLink == nil) && f.Cookie == nil && f.Pidfd == nil
	switch err := preflight.First(f.Checks()); {
	case canAttach && err != nil:
		t.Errorf("kernel %s has what attach needs, but: %v", release, err)
	case !canAttach && err == nil:
		t.Errorf("kernel %s lacks what attach needs, but no check fails", release)
	case err != nil:
		t.Logf("attach refuses: %v", err)
	}
	if k.AtLeast(preflight.MinKernel) && !canAttach {
		t.Errorf("kernel %s is %s or newer, but attach cannot work on it", release, preflight.MinKernel)
	}
}
