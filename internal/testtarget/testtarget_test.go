package testtarget

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
