// Package profiles exports a maptrace report in the formats other tools
// already understand: pprof protobuf (go tool pprof, Pyroscope), folded stacks
// (flamegraph.pl, speedscope, inferno) and a self-contained HTML flame graph
// for people who have none of those tools at hand.
//
// Report stacks are leaf first and each frame is "function (file:line)"; the
// helpers here turn them into the root-first paths all three formats want.
package profiles

import (
	"strings"

	"github.com/maptrace/maptrace/internal/report"
)

// mutexName is how a mutex is labelled everywhere: its resolved symbol when
// the tracer found one, else its address, so that labels are never empty.
func mutexName(m *report.Mutex) string { return nameOr(m.Name, m.Address) }

// mapName is mutexName for maps.
func mapName(m *report.Map) string { return m.ID() }

func nameOr(name, addr string) string {
	switch {
	case name != "":
		return name
	case addr != "":
		return addr
	}
	return "?"
}

// frameCleaner makes a frame safe for the folded format, where ';' separates
// frames and a newline ends a sample.
var frameCleaner = strings.NewReplacer(";", ",", "\r\n", " ", "\n", " ", "\r", " ")

// rootFirst returns stack (leaf first) reversed and cleaned, behind the given
// synthetic root frame.
func rootFirst(root string, stack []string) []string {
	path := make([]string, 0, len(stack)+1)
	path = append(path, frameCleaner.Replace(root))
	for i := len(stack) - 1; i >= 0; i-- {
		path = append(path, frameCleaner.Replace(stack[i]))
	}
	return path
}

// weighted is one root-first stack and its value; the folded and HTML
// writers share it so that both show the same stacks.
type weighted struct {
	path  []string
	value uint64
}

// waiterStacks is every mutex waiter stack, rooted at "mutex:<name>", valued
// in nanoseconds waited.
func waiterStacks(r *report.Report) []weighted {
	var out []weighted
	for i := range r.Mutexes {
		m := &r.Mutexes[i]
		for _, w := range m.Waiters {
			out = append(out, weighted{rootFirst("mutex:"+mutexName(m), w.Stack), w.WaitNS})
		}
	}
	return out
}

// holderStacks is every stack that handed a mutex to waiters, rooted at
// "mutex:<name>", valued in hand-offs.
func holderStacks(r *report.Report) []weighted {
	var out []weighted
	for i := range r.Mutexes {
		m := &r.Mutexes[i]
		for _, h := range m.Holders {
			out = append(out, weighted{rootFirst("mutex:"+mutexName(m), h.Stack), h.Count})
		}
	}
	return out
}

// siteStacks is every map operation site, rooted at "map:<name>", valued in
// operations.
func siteStacks(r *report.Report) []weighted {
	var out []weighted
	for i := range r.Maps {
		m := &r.Maps[i]
		for _, s := range m.Sites {
			out = append(out, weighted{rootFirst("map:"+mapName(m), s.Stack), s.Count})
		}
	}
	return out
}
