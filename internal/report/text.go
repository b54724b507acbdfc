package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// textWidth is the terminal width the text report fits.
const textWidth = 100

// TextOptions shape the text report. The zero value is the default.
type TextOptions struct {
	// Top is how many rows a section shows (0: 10).
	Top int
	// Verbose shows every row, whatever Top says.
	Verbose bool
}

// WriteText writes the report for a person at a terminal, with the default
// TextOptions.
func WriteText(w io.Writer, r *Report) error {
	return WriteTextOptions(w, r, TextOptions{})
}

// WriteTextOptions writes the report for a person at a terminal.
func WriteTextOptions(w io.Writer, r *Report, o TextOptions) error {
	top := o.Top
	if top <= 0 {
		top = topText
	}
	if o.Verbose {
		top = 0 // no limit
	}
	var b strings.Builder
	wrap(&b, fmt.Sprintf("maptrace: pid %d %s (%s %s): %.1fs, ended by %s",
		r.Target.PID, r.Target.Exe, r.Target.GoVersion, r.Target.Arch, r.Window.Seconds, r.EndedBy), "    ")
	if r.TargetError != "" {
		fmt.Fprintf(&b, "TARGET DIED: fatal error: %s\n", r.TargetError)
	}
	fmt.Fprintf(&b, "probes: %d hits, est. cost %s (%.2f%% of the target's CPU time)\n", r.Overhead.ProbeHits,
		Duration(uint64(r.Overhead.EstCostSeconds*1e9)), 100*r.Overhead.Ratio)
	if r.Overhead.LostEvents > 0 {
		fmt.Fprintf(&b, "lost: %d events (stacks not walked or tables full): counts are low by as much\n", r.Overhead.LostEvents)
	}
	if r.Overhead.MapSamplingFraction < 1 {
		fmt.Fprintf(&b, "maps: counts scaled from the %.1f%% of operations probed", 100*r.Overhead.MapSamplingFraction)
		if r.Overhead.MapCountsLowerBound {
			b.WriteString(" (may be undercounted: busy target)")
		}
		b.WriteString("\n")
	}

	writeRaces(&b, r.Races)
	writeMutexes(&b, r.Mutexes, top)
	writeMaps(&b, r.Maps, r.Overhead.MapSamplingFraction, top)
	writeGoroutines(&b, r.Goroutines)
	writeFindings(&b, r.Findings)
	if len(r.Missing) > 0 {
		b.WriteString("\n")
	}
	for _, m := range r.Missing {
		wrap(&b, "not traced: "+m, "    ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// topText is the default number of rows a section shows.
const topText = 10

// writeMutexes writes the top mutexes (all if top is 0).
func writeMutexes(b *strings.Builder, ms []Mutex, top int) {
	if len(ms) == 0 {
		b.WriteString("\nMUTEX CONTENTION: none seen\n")
		return
	}
	fmt.Fprintf(b, "\nMUTEX CONTENTION (%d contended; top by total wait)\n", len(ms))
	fmt.Fprintf(b, "  %-35s %-13s %8s %9s %9s %9s %9s\n", "MUTEX", "KIND", "WAITS", "TOTAL", "P50", "P99", "MAX")
	for i, m := range ms {
		if top > 0 && i == top {
			fmt.Fprintf(b, "  … %d more in the JSON report\n", len(ms)-top)
			break
		}
		fmt.Fprintf(b, "  %-35s %-13s %8s %9s %9s %9s %9s\n", clip(mutexLabel(m), 35), m.Kind, Count(m.Contentions),
			Duration(m.WaitNS), Duration(m.P50NS), Duration(m.P99NS), Duration(m.MaxWaitNS))
		for j, wt := range mergeWaiters(m.Waiters) {
			if j == 3 {
				break
			}
			fmt.Fprintf(b, "      waited %s in %d waits at:\n", Duration(wt.WaitNS), wt.Contentions)
			writeStack(b, wt.Stack, "        ")
		}
		for j, h := range mergeHolders(m.Holders) {
			if j == 2 {
				break
			}
			fmt.Fprintf(b, "      released to waiters %d times by:\n", h.Count)
			writeStack(b, h.Stack, "        ")
		}
	}
}

// mergeWaiters merges waiter stacks that differ only inside the runtime and
// package sync, which the text report does not show.
func mergeWaiters(ws []Waiter) []Waiter {
	out := mergeByUserFrames(ws, func(w Waiter) []string { return w.Stack }, func(dst *Waiter, w Waiter) {
		dst.Contentions += w.Contentions
		dst.WaitNS += w.WaitNS
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].WaitNS > out[j].WaitNS })
	return out
}

// mergeHolders is mergeWaiters for holder stacks.
func mergeHolders(hs []Holder) []Holder {
	out := mergeByUserFrames(hs, func(h Holder) []string { return h.Stack }, func(dst *Holder, h Holder) { dst.Count += h.Count })
	sort.SliceStable(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// mergeByUserFrames merges the elements whose stacks have the same UserFrames.
func mergeByUserFrames[T any](xs []T, stack func(T) []string, add func(*T, T)) []T {
	var out []T
	at := map[string]int{}
	for _, x := range xs {
		k := strings.Join(UserFrames(stack(x)), "\n")
		if i, ok := at[k]; ok {
			add(&out[i], x)
			continue
		}
		at[k] = len(out)
		out = append(out, x)
	}
	return out
}

// mutexLabel names a mutex: its variable, else its address and where it was
// waited for.
func mutexLabel(m Mutex) string {
	if m.Name != "" {
		return Short(m.Name)
	}
	if len(m.Waiters) > 0 {
		if f := UserFrames(m.Waiters[0].Stack); len(f) > 0 {
			return m.Address + " " + Short(FrameFunc(f[0]))
		}
	}
	return m.Address
}

func writeGoroutines(b *strings.Builder, gs []Goroutine) {
	if len(gs) == 0 {
		return
	}
	b.WriteString("\nGOROUTINES (top by mutex wait, then map operations)\n")
	for i, g := range gs {
		if i == 5 {
			break
		}
		fmt.Fprintf(b, "  goroutine %-8d waited %9s in %6s waits; %9s map ops", g.Goid, Duration(g.WaitNS), Count(g.Contentions), Count(g.MapOps))
		if len(g.HotKeys) > 0 {
			keys := make([]string, 0, len(g.HotKeys))
			for _, k := range g.HotKeys {
				keys = append(keys, fmt.Sprintf("%s×%d", k.Key, k.Count))
			}
			fmt.Fprintf(b, "; keys %s", clip(strings.Join(keys, " "), 40))
		}
		b.WriteString("\n")
	}
}

func writeRaces(b *strings.Builder, rs []Race) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(b, "\nCONCURRENT MAP ACCESS (%d): goroutines touched a map at once, one of them writing\n", len(rs))
	for _, r := range rs {
		fmt.Fprintf(b, "  %s on %s, seen %d times\n", r.Kind, mapLabel(r.Name, r.Map), r.Count)
		for _, s := range r.Sides {
			if s.Goid == 0 && len(s.Stack) == 0 {
				fmt.Fprintf(b, "    the other side: a %s not seen (the map probes were off)\n", s.Op)
				continue
			}
			fmt.Fprintf(b, "    goroutine %d %s at:\n", s.Goid, s.Op)
			writeStack(b, s.Stack, "      ")
		}
	}
}

func mapLabel(name, addr string) string {
	if name != "" {
		return Short(name)
	}
	return "map " + addr
}

// writeMaps writes the top maps (all if top is 0).
func writeMaps(b *strings.Builder, ms []Map, fraction float64, top int) {
	if len(ms) == 0 {
		return
	}
	scaled := ""
	if fraction < 1 {
		scaled = fmt.Sprintf("; counts estimated from %.1f%% sampled", 100*fraction)
	}
	fmt.Fprintf(b, "\nHOT MAPS (%d seen; top by operations%s)\n", len(ms), scaled)
	fmt.Fprintf(b, "  %-36s %-7s %10s %10s %8s %8s %5s\n", "MAP", "KEY", "READS", "WRITES", "DELETES", "RANGES", "GOROS")
	for i, m := range ms {
		if top > 0 && i == top {
			fmt.Fprintf(b, "  … %d more in the JSON report\n", len(ms)-top)
			break
		}
		label := Short(m.Name)
		if label == "" {
			label = m.Address
			if len(m.Sites) > 0 {
				if f := UserFrames(m.Sites[0].Stack); len(f) > 0 {
					label += " " + Short(FrameFunc(f[0]))
				}
			}
		}
		fmt.Fprintf(b, "  %-36s %-7s %10s %10s %8s %8s %5s\n", clip(label, 36), m.KeyType, Count(m.Reads), Count(m.Writes),
			Count(m.Deletes), Count(m.Iterations), Count(uint64(m.Goroutines)))
		if len(m.HotKeys) > 0 && i < 5 {
			total := m.Reads + m.Writes + m.Deletes
			keys := make([]string, 0, 5)
			for j, k := range m.HotKeys {
				if j == 5 {
					break
				}
				keys = append(keys, fmt.Sprintf("%s %s", clip(k.Key, 24), share(k.Count, total)))
			}
			fmt.Fprintf(b, "      hot keys: %s\n", strings.Join(keys, ", "))
		}
		for j, s := range m.Sites {
			if j == 2 || i >= 5 {
				break
			}
			if f := UserFrames(s.Stack); len(f) > 0 {
				fmt.Fprintf(b, "      %-6s %9s at %s\n", s.Op, Count(s.Count), clip(ShortFrame(f[0]), textWidth-30))
			}
		}
	}
}

func share(n, total uint64) string {
	if total == 0 {
		return fmt.Sprintf("(%d)", n)
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(total))
}

func writeFindings(b *strings.Builder, fs []Finding) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("\nFINDINGS\n")
	for _, f := range fs {
		wrap(b, "  ["+strings.ToUpper(f.Severity)+"] "+f.Title, "      ")
		if f.Detail != "" {
			wrap(b, "      "+f.Detail, "      ")
		}
		if f.Advice != "" {
			wrap(b, "      fix: "+f.Advice, "           ")
		}
	}
}

// writeStack prints the first frames of a stack above the runtime and sync
// internals where the wait happened.
func writeStack(b *strings.Builder, stack []string, indent string) {
	frames := UserFrames(stack)
	for i, f := range frames {
		if i == 4 {
			fmt.Fprintf(b, "%s…\n", indent)
			break
		}
		fmt.Fprintf(b, "%s%s\n", indent, clip(ShortFrame(f), textWidth-len(indent)))
	}
}

// UserFrames drops the leaf frames inside the runtime and package sync, which
// are the same for every wait or map operation, to start at the code that
// locked or used the map.
func UserFrames(stack []string) []string {
	for i, f := range stack {
		fn := FrameFunc(f)
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "sync.") &&
			!strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "sync/") {
			return stack[i:]
		}
	}
	return stack
}

// FrameFunc is the function of a "function (file:line)" frame.
func FrameFunc(frame string) string {
	if i := strings.LastIndex(frame, " ("); i >= 0 {
		return frame[:i]
	}
	return frame
}

// Short drops a name's import path, keeping its package: "demo.configMu"
// for "github.com/x/y/internal/demo.configMu", as on-call eyes want it. The
// JSON report keeps the full names.
func Short(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 && !strings.Contains(name[:i], "(") {
		return name[i+1:]
	}
	return name
}

// shortFrame is a frame as Short function and file base name.
func ShortFrame(frame string) string {
	fn, loc := frame, ""
	if i := strings.LastIndex(frame, " ("); i >= 0 {
		fn, loc = frame[:i], frame[i+2:len(frame)-1]
	}
	if j := strings.LastIndex(loc, "/"); j >= 0 {
		loc = loc[j+1:]
	}
	if loc == "" {
		return Short(fn)
	}
	return Short(fn) + " (" + loc + ")"
}

// wrap writes text in lines of at most textWidth columns, continuing with indent.
func wrap(b *strings.Builder, text, indent string) {
	line := 0
	for i, word := range strings.Fields(text) {
		n := utf8.RuneCountInString(word)
		switch {
		case i == 0:
			lead := len(text) - len(strings.TrimLeft(text, " "))
			b.WriteString(strings.Repeat(" ", lead))
			line = lead
		case line+1+n > textWidth:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(word)
		line += n
	}
	b.WriteByte('\n')
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}

// Count formats a count to fit a column: exact below a million, then 1.23M,
// 4.56G, 7.89T.
func Count(n uint64) string {
	switch {
	case n < 1e6:
		return fmt.Sprint(n)
	case n < 1e9:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n < 1e12:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	default:
		return fmt.Sprintf("%.2fT", float64(n)/1e12)
	}
}

// Duration formats nanoseconds compactly: 950ns, 12.3µs, 4.56ms, 1.23s.
func Duration(ns uint64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(ns)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
