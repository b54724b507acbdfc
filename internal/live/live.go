// Package live prints the short summary `maptrace attach --interval D`
// shows every D while it traces: what happened between two cumulative
// snapshots of the report.
package live

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/maptrace/maptrace/internal/report"
)

// Width is the widest line Summary writes, in columns.
const Width = 100

// top is how many mutexes and maps a summary lists.
const top = 5

// ANSI styles, used only when asked for.
const (
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

// Summary writes what changed between prev and cur, two cumulative
// snapshots of one trace (prev nil: since the start): the mutexes waited on
// most and the maps used most in the interval, the races so far, what the
// probes cost and how much of the map traffic they saw. Lines fit Width
// columns; color adds ANSI colours. Write errors are ignored: the summary
// is a progress display, and the final report reports its own.
func Summary(w io.Writer, prev, cur *report.Report, color bool) {
	if cur == nil {
		return
	}
	if prev == nil {
		prev = &report.Report{}
	}
	s := &summary{color: color}
	s.header(prev, cur)
	if cur.TargetError != "" {
		s.line(red+bold, "TARGET DIED: "+cur.DiedIn())
	}
	s.races(prev, cur)
	s.mutexes(prev, cur)
	s.maps(prev, cur)
	io.WriteString(w, s.b.String())
}

type summary struct {
	b     strings.Builder
	color bool
}

// line writes one line, clipped to Width, in style.
func (s *summary) line(style, text string) {
	text = strings.TrimRight(clip(text, Width), " ")
	if s.color && style != "" {
		text = style + text + reset
	}
	s.b.WriteString(text)
	s.b.WriteByte('\n')
}

func (s *summary) header(prev, cur *report.Report) {
	interval := cur.Window.Seconds - prev.Window.Seconds
	h := "── maptrace"
	if !cur.Window.End.IsZero() {
		h += " " + cur.Window.End.Format("15:04:05")
	}
	h += fmt.Sprintf(" · last %.1fs of %.1fs · probes cost %.2f%%", interval, cur.Window.Seconds, 100*cur.Overhead.Ratio)
	switch f := cur.Overhead.MapSamplingFraction; {
	case f <= 0:
		h += " · maps not probed"
	case f < 1:
		h += fmt.Sprintf(" · maps sampled %.0f%% (counts scaled)", 100*f)
	default:
		h += " · maps: every op"
	}
	h += " "
	if n := Width - utf8.RuneCountInString(h); n > 0 {
		h += strings.Repeat("─", n)
	}
	s.line(bold, h)
}

func (s *summary) races(prev, cur *report.Report) {
	if len(cur.Races) == 0 {
		return
	}
	before := map[string]uint64{}
	for _, r := range prev.Races {
		before[r.Map+" "+r.Kind] = r.Count
	}
	var total, fresh uint64
	var names []string
	for _, r := range cur.Races {
		total += r.Count
		if d := r.Count - min(r.Count, before[r.Map+" "+r.Kind]); d > 0 {
			fresh += d
		}
		if len(names) < 3 {
			names = append(names, fmt.Sprintf("%s %s ×%d", r.Kind, shortName(label(r.Name, r.Map)), r.Count))
		}
	}
	text := fmt.Sprintf("RACES: %d so far (%d new): %s", total, fresh, strings.Join(names, "; "))
	if len(cur.Races) > len(names) {
		text += fmt.Sprintf("; %d more", len(cur.Races)-len(names))
	}
	s.line(red+bold, text)
}

type mutexDelta struct {
	label, kind   string
	waits, waitNS uint64
}

func (s *summary) mutexes(prev, cur *report.Report) {
	type key struct{ addr, kind string }
	before := map[key]report.Mutex{}
	for _, m := range prev.Mutexes {
		before[key{m.Address, m.Kind}] = m
	}
	var ds []mutexDelta
	for _, m := range cur.Mutexes {
		p := before[key{m.Address, m.Kind}]
		d := mutexDelta{label: mutexLabel(m), kind: m.Kind, waits: sub(m.Contentions, p.Contentions), waitNS: sub(m.WaitNS, p.WaitNS)}
		if d.waits > 0 || d.waitNS > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		s.line("", "  mutexes: no waits in this interval")
		return
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].waitNS > ds[j].waitNS })
	interval := (cur.Window.Seconds - prev.Window.Seconds) * 1e9
	s.line(bold, fmt.Sprintf("  %-40s %-13s %8s %10s %9s", "MUTEX (top by wait in the interval)", "KIND", "WAITS", "WAITED", "AVG"))
	for i, d := range ds {
		if i == top {
			s.line("", fmt.Sprintf("  … %d more", len(ds)-top))
			break
		}
		avg := uint64(0)
		if d.waits > 0 {
			avg = d.waitNS / d.waits
		}
		style := ""
		if interval > 0 && float64(d.waitNS) > 0.1*interval {
			style = yellow
		}
		s.line(style, fmt.Sprintf("  %-40s %-13s %8d %10s %9s", clip(d.label, 40), d.kind, d.waits,
			report.Duration(d.waitNS), report.Duration(avg)))
	}
}

type mapDelta struct {
	label, keyType                 string
	reads, writes, deletes, ranges uint64
	topKey                         string
}

func (d mapDelta) ops() uint64 { return d.reads + d.writes + d.deletes + d.ranges }

func (s *summary) maps(prev, cur *report.Report) {
	before := map[string]report.Map{}
	for _, m := range prev.Maps {
		before[m.ID()] = m
	}
	var ds []mapDelta
	for _, m := range cur.Maps {
		p := before[m.ID()]
		d := mapDelta{
			label: mapLabel(m), keyType: m.KeyType,
			reads: sub(m.Reads, p.Reads), writes: sub(m.Writes, p.Writes),
			deletes: sub(m.Deletes, p.Deletes), ranges: sub(m.Iterations, p.Iterations),
			topKey: topKey(p.HotKeys, m.HotKeys),
		}
		if d.ops() > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		if len(cur.Maps) > 0 || cur.Overhead.MapSamplingFraction > 0 {
			s.line("", "  maps: no operations seen in this interval")
		}
		return
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].ops() > ds[j].ops() })
	s.line(bold, fmt.Sprintf("  %-32s %-6s %9s %9s %7s %7s  %s", "MAP (top by ops in the interval)", "KEY", "READS", "WRITES", "DELETES", "RANGES", "TOP KEY"))
	for i, d := range ds {
		if i == top {
			s.line("", fmt.Sprintf("  … %d more", len(ds)-top))
			break
		}
		s.line("", fmt.Sprintf("  %-32s %-6s %9d %9d %7d %7d  %s", clip(d.label, 32), clip(d.keyType, 6), d.reads, d.writes,
			d.deletes, d.ranges, clip(d.topKey, 20)))
	}
}

// topKey is the key used most in the interval, with its share of the
// interval's keyed operations.
func topKey(prev, cur []report.HotKey) string {
	before := map[string]uint64{}
	for _, k := range prev {
		before[k.Key] = k.Count
	}
	var best report.HotKey
	var total uint64
	for _, k := range cur {
		d := sub(k.Count, before[k.Key])
		total += d
		if k.Key != "other" && d > best.Count {
			best = report.HotKey{Key: k.Key, Count: d}
		}
	}
	if best.Count == 0 || total == 0 {
		return ""
	}
	return fmt.Sprintf("%s %.0f%%", clip(best.Key, 14), 100*float64(best.Count)/float64(total))
}

// sub is a-b, or 0: scaled estimates can shrink when the sampling changes.
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func label(name, addr string) string {
	if name != "" {
		return name
	}
	return addr
}

func mutexLabel(m report.Mutex) string { return m.Label() }

func mapLabel(m report.Map) string { return m.Label() }

// shortName drops the import path before a symbol's package:
// "github.com/x/y/internal/demo.ordersMu" is "demo.ordersMu".
func shortName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// clip shortens s to n columns, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
