package agent

import (
	"fmt"
	"path"
	"strings"
)

// Pattern is one --match: it selects a process when it matches any of
//
//   - the executable's base name or full path, as a glob (path.Match: `*`
//     stops at `/`);
//   - the Go main module's path, as a glob;
//   - the container ID, in full or by a prefix of at least 12 digits (as
//     docker ps shows it);
//   - namespace/pod on Kubernetes, as a glob, for a container whose pod
//     containerd's CRI labels name.
type Pattern string

// minIDPrefix is the shortest container ID prefix a pattern may give: the
// short IDs docker and crictl print.
const minIDPrefix = 12

// ParsePatterns checks the --match patterns.
func ParsePatterns(ps []string) ([]Pattern, error) {
	out := make([]Pattern, 0, len(ps))
	for _, p := range ps {
		if p == "" {
			return nil, fmt.Errorf("--match \"\": give a pattern (an executable name or path, a module path, a container ID or namespace/pod)")
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("--match %q: %v", p, err)
		}
		out = append(out, Pattern(p))
	}
	return out, nil
}

// Match reports whether p selects the process.
func (p Pattern) Match(pr *Process) bool {
	s := string(p)
	glob := func(name string) bool {
		ok, _ := path.Match(s, name)
		return name != "" && ok
	}
	switch {
	case glob(path.Base(pr.Exe)), glob(pr.Exe), glob(pr.Module):
		return true
	case pr.ContainerID != "" && len(s) >= minIDPrefix && strings.HasPrefix(pr.ContainerID, s):
		return true
	case pr.Namespace != "" && pr.Pod != "" && glob(pr.Namespace+"/"+pr.Pod):
		return true
	}
	return false
}

// matching returns the first pattern that selects pr, if any.
func matching(ps []Pattern, pr *Process) (Pattern, bool) {
	for _, p := range ps {
		if p.Match(pr) {
			return p, true
		}
	}
	return "", false
}
