package testtarget

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDepsToolchains keeps scripts/deps.sh, which downloads the matrix's
// toolchains, in step with Toolchains.
func TestDepsToolchains(t *testing.T) {
	b, err := os.ReadFile("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*toolchains="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal(`scripts/deps.sh: no toolchains="..." line`)
	}
	got := strings.Fields(string(m[1]))
	var want []string
	for _, tc := range Toolchains {
		// go1.19 comes from Debian, local is the Go running the tests
		if tc != "go1.19" && tc != "local" {
			want = append(want, tc)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("scripts/deps.sh downloads %v, the matrix has %v", got, want)
	}
}

// TestUnreadLines checks that a target whose answers no test read, more
// than Proc buffers, is still killed and reaped when its test ends: the
// reader of its stdout is drained to the end, or the test would hang.
func TestUnreadLines(t *testing.T) {
	var p *Proc
	t.Run("unread", func(t *testing.T) {
		p = Start(t, Build(t, "../../testdata/maps", "local"))
		for range 2 * cap(p.lines) {
			p.Send(t, "hotptrs")
		}
		for len(p.lines) < cap(p.lines) {
			time.Sleep(time.Millisecond)
		}
	})
	select {
	case <-p.exited:
	default:
		t.Fatal("the target was not reaped when its test ended")
	}
}
