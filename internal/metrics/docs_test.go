package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDocsListEveryMetric checks that docs/metrics.md has a row for every
// metric this package exports, naming each of its labels.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile("^\\| `(maptrace_[a-z_]+)` \\|").FindStringSubmatch(l); m != nil {
			rows[m[1]] = l
		}
	}
	// attach's metrics, then the agent's own: the trace metrics the Fleet
	// describes again carry its extra labels, checked below.
	ch := make(chan *prometheus.Desc, 100)
	newCollector(nil, "raw").Describe(ch)
	fleet := make(chan *prometheus.Desc, 100)
	NewFleet("raw", agentLabels...).Describe(fleet)
	close(fleet)
	for d := range fleet {
		if !strings.Contains(d.String(), `fqName: "maptrace_agent_`) {
			continue
		}
		ch <- d
	}
	close(ch)
	// Desc has no accessors: its String() is the one place its name and
	// labels show.
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRE := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	n := 0
	for d := range ch {
		n++
		s := d.String()
		name := nameRE.FindStringSubmatch(s)
		if name == nil {
			t.Fatalf("no name in %s", s)
		}
		row, ok := rows[name[1]]
		if !ok {
			t.Errorf("docs/metrics.md has no row for %s", name[1])
			continue
		}
		if l := labelsRE.FindStringSubmatch(s); l != nil {
			for _, label := range strings.FieldsFunc(l[1], func(r rune) bool { return r == ',' || r == ' ' }) {
				if !strings.Contains(row, "`"+label+"`") {
					t.Errorf("docs/metrics.md: the row of %s does not name its label %s", name[1], label)
				}
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d metrics described", n)
	}
	// The labels every series carries under the agent.
	for _, l := range agentLabels {
		if !regexp.MustCompile("(?m)^\\| `" + l + "` \\|").MatchString(string(b)) {
			t.Errorf("docs/metrics.md: no row for the agent's label %s", l)
		}
	}
}

// agentLabels are the labels maptrace agent adds to every series.
var agentLabels = []string{LabelService, LabelContainerID, LabelNamespace, LabelPod, LabelContainer}
