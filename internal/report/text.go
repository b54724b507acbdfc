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

// TextOptions say how much the text report shows.
type TextOptions struct {
	// Top is the rows per section (default 10).
	Top int
	// Verbose shows everything: every row, finding and stack.
	Verbose bool
}

// DefaultTop is the rows per section of the text report.
const DefaultTop = 10

// detailed findings show their evidence and fix in the text report; the
// rest show their titles.
const detailed = 5

// WriteText writes the report for a person at a terminal, with the default
// options.
func WriteText(w io.Writer, r *Report) error { return WriteTextOptions(w, r, TextOptions{}) }

// WriteTextOptions writes the report for a person at a terminal: a summary
// of the top problems with what each costs, then the sections.
func WriteTextOptions(w io.Writer, r *Report, o TextOptions) error {
	if o.Top <= 0 {
		o.Top = DefaultTop
	}
	t := &text{o: o}
	b := &t.b
	wrap(b, fmt.Sprintf("maptrace: pid %d %s (%s %s): %.1fs, ended by %s",
		r.Target.PID, r.Target.Exe, r.Target.GoVersion, r.Target.Arch, r.Window.Seconds, r.EndedBy), "    ")
	if r.TargetError != "" {
		wrap(b, "TARGET DIED: "+r.DiedIn(), "    ")
	}
	over := ""
	if o := r.Overhead; o.Budget > 0 && o.Budget < 1 && o.Ratio > o.Budget {
		// Said in words: a short trace cannot repay its first windows.
		over = fmt.Sprintf(", over the %g%% budget", 100*o.Budget)
	}
	fmt.Fprintf(b, "probes: %d hits, est. cost %s (%.2f%% of the target's CPU time%s)\n", r.Overhead.ProbeHits,
		Duration(uint64(r.Overhead.EstCostSeconds*1e9)), 100*r.Overhead.Ratio, over)
	if r.Overhead.LostEvents > 0 {
		l := r.Overhead.Lost
		line := fmt.Sprintf("lost: %d events (%d stacks not walked, %d parks not timed, %d updates to full tables, "+
			"%d key operations the key table had no room for)", r.Overhead.LostEvents, l.Stacks, l.InFlight, l.TablesFull, l.Keys)
		if l.Keys > 0 {
			line += `: those count only in their map's "other" key, so a hot key may be missing`
		}
		wrap(b, line, "    ")
	}
	if r.CPU.Samples > 0 {
		fmt.Fprintf(b, "cpu: the target used %s of CPU (%.2f cores); %s (%.1f%%) in map operations\n",
			Duration(uint64(r.CPU.Seconds*1e9)), r.CPU.Seconds/max(r.Window.Seconds, 1e-9),
			Duration(uint64(r.CPU.MapSeconds*1e9)), 100*r.CPU.MapSeconds/r.CPU.Seconds)
	}
	if r.Overhead.MutexCountsScaled {
		wrap(b, fmt.Sprintf("mutexes: counts and waits scaled from the %.1f%% of the time the mutex probes were attached (their cost exceeded their part of the budget)",
			100*r.Overhead.MutexSamplingFraction), "    ")
	}
	if f := r.Overhead.MapSamplingFraction; f == 0 {
		b.WriteString("maps: no operation probed within the budget")
		if r.CPU.Samples > 0 {
			b.WriteString(" (map CPU time is from samples)")
		}
		b.WriteString("\n")
	} else if f < 1 {
		line := fmt.Sprintf("maps: counts scaled from the %.1f%% of operations probed", 100*f)
		switch {
		case r.Overhead.MapCountsLowerBoundWhy == LowerBoundShortWindows:
			line += " (lower bounds: windows too short to measure)"
		case r.Overhead.MapCountsLowerBound:
			line += " (lower bounds: the probes slowed the target; compare maps by CPU)"
		}
		wrap(b, line, "    ")
	}

	t.summary(r.Findings)
	t.races(r.Races)
	t.mutexes(r.Mutexes)
	t.maps(r.Maps, r.Overhead.MapSamplingFraction)
	t.goroutines(r.Goroutines)
	t.findings(r.Findings)
	if len(r.Missing) > 0 {
		b.WriteString("\n")
	}
	for _, m := range r.Missing {
		wrap(b, "not traced: "+m, "    ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// text is a text report being written.
type text struct {
	b strings.Builder
	o TextOptions
}

// limit is how many of n rows a section shows, stacks of rows included.
func (t *text) limit(n, top int) int {
	if t.o.Verbose {
		return n
	}
	return min(n, top)
}

// more says how many rows the section left out.
func (t *text) more(n, shown int) {
	if n > shown {
		fmt.Fprintf(&t.b, "  … %d more in the JSON report (-f json) or with --verbose\n", n-shown)
	}
}

// shown are the findings the text report shows: all with --verbose, else
// those at or above the threshold.
func (t *text) shown(fs []Finding) []Finding {
	if t.o.Verbose {
		return fs
	}
	var out []Finding
	for _, f := range fs {
		if !f.BelowThreshold {
			out = append(out, f)
		}
	}
	return out
}

// summary is one line for each of the target's top problems, with its
// cost: not what the findings say about the trace itself.
func (t *text) summary(all []Finding) {
	var fs []Finding
	for _, f := range t.shown(all) {
		if f.Class != ClassTracing && f.Class != ClassNote {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		t.b.WriteString("\nSUMMARY: nothing costs 1% of the window or more; no race seen\n")
		return
	}
	t.b.WriteString("\nSUMMARY (top problems; cost over the window)\n")
	for i, f := range fs[:min(len(fs), 5)] {
		c := ClassCorrectness
		switch {
		case f.CostSeconds > 0:
			c = Duration(uint64(f.CostSeconds * 1e9))
		case f.Class == ClassRisk:
			c = ClassRisk
		}
		prefix := fmt.Sprintf("  %d. %-11s ", i+1, c)
		t.b.WriteString(prefix)
		wrapFrom(&t.b, f.Title, strings.Repeat(" ", len(prefix)), len(prefix))
	}
}

func (t *text) mutexes(ms []Mutex) {
	b := &t.b
	if len(ms) == 0 {
		b.WriteString("\nMUTEX CONTENTION: none seen\n")
		return
	}
	n0 := len(ms)
	if !t.o.Verbose {
		ms = GroupMutexes(ms) // one lock field of many objects: one row
		sort.SliceStable(ms, func(i, j int) bool { return ms[i].WaitNS > ms[j].WaitNS })
	}
	fmt.Fprintf(b, "\nMUTEX CONTENTION (%d contended; top by total wait)\n", n0)
	fmt.Fprintf(b, "  %-35s %-13s %8s %9s %9s %9s %9s\n", "MUTEX", "KIND", "WAITS", "TOTAL", "P50", "P99", "MAX")
	n := t.limit(len(ms), t.o.Top)
	for i, m := range ms[:n] {
		label := m.Label()
		if len(label) > 35 {
			fmt.Fprintf(b, "  %s\n", clip(label, textWidth-2))
			label = ""
		}
		fmt.Fprintf(b, "  %-35s %-13s %8s %9s %9s %9s %9s\n", label, m.Kind, Count(m.Contentions),
			Duration(m.WaitNS), Duration(m.P50NS), Duration(m.P99NS), Duration(m.MaxWaitNS))
		if i >= t.limit(n, 3) {
			continue // stacks for the top few
		}
		for _, wt := range mergeWaiters(m.Waiters)[:t.limit(len(mergeWaiters(m.Waiters)), 1)] {
			fmt.Fprintf(b, "      waited %s in %d waits at:\n", Duration(wt.WaitNS), wt.Contentions)
			t.stack(wt.Stack, "        ")
		}
		for _, h := range mergeHolders(m.Holders)[:t.limit(len(mergeHolders(m.Holders)), 1)] {
			fmt.Fprintf(b, "      released to waiters %d times by:\n", h.Count)
			t.stack(h.Stack, "        ")
		}
	}
	t.more(len(ms), n)
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

func (t *text) goroutines(gs []Goroutine) {
	if len(gs) == 0 {
		return
	}
	b := &t.b
	b.WriteString("\nGOROUTINES (top by mutex wait, then map operations)\n")
	for _, g := range gs[:t.limit(len(gs), 5)] {
		fmt.Fprintf(b, "  goroutine %-8d waited %9s in %6s waits", g.Goid, Duration(g.WaitNS), Count(g.Contentions))
		if g.MapOps > 0 { // a waiter's map operations may all fall between the map windows
			fmt.Fprintf(b, "; %9s map ops", Count(g.MapOps))
		}
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

func (t *text) races(rs []Race) {
	if len(rs) == 0 {
		return
	}
	b := &t.b
	fmt.Fprintf(b, "\nCONCURRENT MAP ACCESS (%d): goroutines touched a map at once, one of them writing\n", len(rs))
	n := t.limit(len(rs), t.o.Top)
	for _, r := range rs[:n] {
		label := Short(r.Name)
		if label == "" {
			label = r.MapID
		}
		if label == "" {
			label = "map " + r.Map
		}
		fmt.Fprintf(b, "  %s on %s, seen %s\n", r.Kind, clip(label, textWidth-40), Times(r.Count))
		for _, s := range r.Sides {
			if s.Goid == 0 && len(s.Stack) == 0 {
				fmt.Fprintf(b, "    the other side: a %s not seen (the map probes were off)\n", s.Op)
				continue
			}
			fmt.Fprintf(b, "    goroutine %d %s at:\n", s.Goid, s.Op)
			t.stack(s.Stack, "      ")
		}
	}
	t.more(len(rs), n)
}

func (t *text) maps(ms []Map, fraction float64) {
	if len(ms) == 0 {
		return
	}
	b := &t.b
	scaled := ""
	if fraction < 1 {
		scaled = fmt.Sprintf("; %.1f%% sampled", 100*fraction)
	}
	nmaps := 0
	for _, m := range ms {
		nmaps += max(m.Maps, 1)
	}
	fmt.Fprintf(b, "\nHOT MAPS (%d rows for %d maps, heap maps by type and first user; top by CPU, ops%s)\n", len(ms), nmaps, scaled)
	fmt.Fprintf(b, "  %-40s %-7s %8s %8s %8s %7s %5s %7s\n", "MAP", "KEY", "READS", "WRITES", "DELETES", "RANGES", "GOROS", "CPU")
	n := t.limit(len(ms), t.o.Top)
	for i, m := range ms[:n] {
		cpu := "-"
		if m.CPUSeconds > 0 {
			cpu = Duration(uint64(m.CPUSeconds * 1e9))
		}
		label := m.Label()
		if m.Kind == KindSyncMap && m.Name != "" { // a class's label has the type already
			label += " (sync.Map)"
		}
		if len(label) > 40 { // the whole label on a line of its own
			fmt.Fprintf(b, "  %s\n", clip(label, textWidth-2))
			label = ""
		}
		fmt.Fprintf(b, "  %-40s %-7s %8s %8s %8s %7s %5s %7s\n", label, clip(m.KeyType, 7), Count(m.Reads), Count(m.Writes),
			Count(m.Deletes), Count(m.Iterations), Count(uint64(m.Goroutines)), cpu)
		if i >= t.limit(n, 5) {
			continue
		}
		if sm := m.SyncMap; sm != nil {
			fmt.Fprintf(b, "      sync.Map slow paths: %s misses, %s promotions, %s dirty-map copies\n",
				Count(sm.Misses), Count(sm.Promotions), Count(sm.DirtyCopies))
		}
		if sn := m.Snapshots; sn != nil {
			fmt.Fprintf(b, "      copy-on-write snapshots: %s published, %s entries copied\n", Count(sn.Published), Count(sn.Entries))
		}
		probed := m.KeysProbed(fraction)
		if sh := m.Sharded; sh != nil && len(sh.Shards) > 0 {
			line := fmt.Sprintf("      shards: busiest %s with %s ops, %.1f× the mean", sh.Shards[0].Address, Count(sh.Shards[0].Ops), sh.Imbalance)
			if sh.Shards[0].Mutex != "" {
				line += fmt.Sprintf(", its mutex waited %s", Duration(sh.Shards[0].WaitNS))
			}
			if sh.HotKey != "" && probed >= FewProbed {
				line += fmt.Sprintf("; hot key %s makes it busy", clip(sh.HotKey, 24))
			}
			wrap(b, line, "        ")
		}
		if len(m.HotKeys) > 0 && probed < FewProbed {
			fmt.Fprintf(b, "      keys: too few operations probed (%d) to tell\n", probed)
		} else if len(m.HotKeys) > 0 {
			// A key under 5% of the operations is not hot: a map of
			// one-off keys (IDs, hashes) has none, nor one of a hundred
			// keys used alike (1% each), and says so. A few keys used
			// alike are listed, but not as hot.
			total := m.Reads + m.Writes + m.Deletes
			keys := make([]string, 0, 5)
			hot := false
			for _, k := range m.HotKeys {
				if len(keys) == 5 || total > 0 && k.Count*20 < total {
					break // most used first
				}
				keys = append(keys, fmt.Sprintf("%s %s", clip(k.Key, 40), share(k.Count, total)))
				hot = hot || k.Key != OtherKey
			}
			switch {
			case hot && KeysAlike(m):
				wrap(b, "      keys: "+strings.Join(keys, ", "), "        ")
			case hot:
				wrap(b, "      hot keys: "+strings.Join(keys, ", "), "        ")
			default:
				b.WriteString("      no hot key: each has under 5% of the operations\n")
			}
		}
		for _, s := range m.Sites[:t.limit(len(m.Sites), 2)] {
			if f := UserFrames(s.Stack); len(f) > 0 {
				fmt.Fprintf(b, "      %-6s %9s at %s\n", s.Op, Count(s.Count), clip(ShortFrame(f[0]), textWidth-30))
			}
		}
	}
	t.more(len(ms), n)
}

func share(n, total uint64) string {
	if total == 0 {
		return fmt.Sprintf("(%d)", n)
	}
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(total))
}

func (t *text) findings(all []Finding) {
	fs := t.shown(all)
	if len(all) == 0 {
		return
	}
	b := &t.b
	fmt.Fprintf(b, "\nFINDINGS (%d; most urgent first)\n", len(fs))
	n := t.limit(len(fs), t.o.Top)
	for i, f := range fs[:n] {
		title := "  [" + strings.ToUpper(f.Severity) + "] " + f.Title
		if f.CostSeconds > 0 {
			title += " — costs " + Duration(uint64(f.CostSeconds*1e9))
		}
		wrap(b, title, "      ")
		if i >= t.limit(n, detailed) {
			continue // the title only: the evidence is in the JSON, or with --verbose
		}
		if f.Detail != "" {
			wrap(b, "      "+f.Detail, "      ")
		}
		if f.Advice != "" {
			wrap(b, "      fix: "+f.Advice, "           ")
		}
	}
	t.more(len(fs), n)
	if below := len(all) - len(fs); below > 0 {
		fmt.Fprintf(b, "  %d more below 1%% of the window in the JSON report (-f json) or with --verbose\n", below)
	}
}

// stack prints the first frames of a stack above the runtime and sync
// internals where the wait happened.
func (t *text) stack(stack []string, indent string) {
	b := &t.b
	frames := UserFrames(stack)
	if n := len(frames); n > 1 && FrameFunc(frames[n-1]) == "runtime.goexit" {
		frames = frames[:n-1] // every goroutine's outermost frame
	}
	for i, f := range frames {
		if i == t.limit(len(frames), 3) {
			fmt.Fprintf(b, "%s…\n", indent)
			break
		}
		fmt.Fprintf(b, "%s%s\n", indent, clip(ShortFrame(f), textWidth-len(indent)))
	}
}

// UserFrames drops the leaf frames inside the runtime and package sync, which
// are the same for every wait or map operation, and the program's own lock
// wrappers (a Lock or Unlock method that locks a field: etcd's
// readTx.RLock), to start at the code that locked or used the map. Below a
// file's lock (internal/poll) it drops the net and os methods that read or
// write it too, to start at the code that did: CoreDNS's writes to its UDP
// socket all pass through net.(*netFD).writeMsg.
func UserFrames(stack []string) []string {
	file := false
	for i, f := range stack {
		fn := FrameFunc(f)
		file = file || strings.HasPrefix(fn, "internal/poll.")
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "sync.") &&
			!strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "sync/") {
			for i+1 < len(stack) && (lockWrapper(FrameFunc(stack[i])) || file && fileMethod(FrameFunc(stack[i]))) {
				i++
			}
			return stack[i:]
		}
	}
	return stack
}

// fileMethod says whether fn is one of package net's or os's, which wrap
// internal/poll's file descriptors.
func fileMethod(fn string) bool {
	return strings.HasPrefix(fn, "net.") || strings.HasPrefix(fn, "os.")
}

// lockWrapper says whether fn is named as a lock's method is.
func lockWrapper(fn string) bool {
	switch fn[strings.LastIndex(fn, ".")+1:] {
	case "Lock", "Unlock", "RLock", "RUnlock", "TryLock", "TryRLock":
		return true
	}
	return false
}

// Times says how often something was seen: "once", or "N times".
func Times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
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
	lead := len(text) - len(strings.TrimLeft(text, " "))
	b.WriteString(strings.Repeat(" ", lead))
	wrapFrom(b, text, indent, lead)
}

// wrapFrom is wrap continuing a line already col columns long.
func wrapFrom(b *strings.Builder, text, indent string, col int) {
	line := col
	for i, word := range strings.Fields(text) {
		n := utf8.RuneCountInString(word)
		switch {
		case i == 0:
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

// clip shortens s to n columns by cutting its middle, keeping the start
// (the type or package) and the end (the function or name).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
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
