package profiles

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// flamegraphHTML is the page; its script draws the flame graphs from the
// JSON that WriteFlamegraph embeds. Keeping the drawing in the browser means
// that a click can zoom without a server and the file stays small.
//
//go:embed flamegraph.html
var flamegraphHTML string

var flamegraphTmpl = template.Must(template.New("flamegraph").Parse(flamegraphHTML))

// node is one frame of a flame graph: Value is the total of every stack
// through it, so that a child's width is its share of its parent's.
// The short JSON names keep the embedded data small.
type node struct {
	Name     string  `json:"n"`
	Value    uint64  `json:"v"`
	Children []*node `json:"c,omitempty"`
}

// graph is one flame graph of the page. A nil Root renders as "no data".
type graph struct {
	Title string `json:"title"`
	Unit  string `json:"unit"` // "ns" is shown as a duration, anything else as a count of it
	Root  *node  `json:"root"`
}

// WriteFlamegraph writes one self-contained HTML file with three flame
// graphs: mutex waiters by time waited, mutex holders by hand-offs and map
// operation sites by operations. Everything (data, style and script) is
// inline, so the file opens offline and can be attached to a bug report.
// Hovering a frame shows its value and share, clicking zooms into it.
func WriteFlamegraph(w io.Writer, r *report.Report) error {
	return flamegraphTmpl.Execute(w, struct {
		Title, Window string
		Graphs        []graph
	}{
		Title:  pageTitle(r),
		Window: windowText(r.Window),
		Graphs: []graph{
			{Title: "Mutex waiters (time waited)", Unit: "ns", Root: buildTree(waiterStacks(r))},
			{Title: "Mutex holders (hand-offs to waiters)", Unit: "hand-offs", Root: buildTree(holderStacks(r))},
			{Title: "Map operations (by call site)", Unit: "ops", Root: buildTree(siteStacks(r))},
		},
	})
}

// buildTree merges root-first stacks into one tree under a synthetic "all"
// frame, children sorted by name as flamegraph.pl does, so that equal
// reports draw equal pictures. It returns nil when there is nothing to draw.
func buildTree(stacks []weighted) *node {
	root := &node{Name: "all"}
	for _, s := range stacks {
		if s.value == 0 {
			continue
		}
		n := root
		n.Value += s.value
		for _, frame := range s.path {
			i := slices.IndexFunc(n.Children, func(c *node) bool { return c.Name == frame })
			if i < 0 {
				i = len(n.Children)
				n.Children = append(n.Children, &node{Name: frame})
			}
			n = n.Children[i]
			n.Value += s.value
		}
	}
	if root.Value == 0 {
		return nil
	}
	sortTree(root)
	return root
}

func sortTree(n *node) {
	slices.SortFunc(n.Children, func(a, b *node) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range n.Children {
		sortTree(c)
	}
}

// pageTitle names the target as the text report does: exe, pid and Go version.
func pageTitle(r *report.Report) string {
	t := r.Target
	exe := t.Exe
	if exe == "" {
		exe = "unknown executable"
	}
	var parts []string
	if t.PID != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", t.PID))
	}
	if t.GoVersion != "" {
		parts = append(parts, t.GoVersion)
	}
	if len(parts) == 0 {
		return "maptrace: " + exe
	}
	return fmt.Sprintf("maptrace: %s (%s)", exe, strings.Join(parts, ", "))
}

// windowText says when the probes were attached, leaving out what is unknown.
func windowText(win report.Window) string {
	var s string
	if !win.Start.IsZero() {
		s = win.Start.Format(time.RFC3339)
		if !win.End.IsZero() {
			s += " – " + win.End.Format(time.RFC3339)
		}
	}
	if win.Seconds > 0 {
		d := time.Duration(win.Seconds * float64(time.Second)).Round(time.Millisecond)
		if s == "" {
			return "traced for " + d.String()
		}
		s += " (" + d.String() + ")"
	}
	return s
}
