package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/probes"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
)

// doctorCheck is one line of doctor's screen.
type doctorCheck struct {
	preflight.Check
	// Info marks a line that is neither a pass nor a failure (a probe that
	// this program does not need).
	Info bool
	// Err, when set, is the one-line error for this failure instead of
	// "prefix: detail: fix".
	Err error
}

func doctorCmd() *cobra.Command {
	var pid int
	cmd := &cobra.Command{
		Use:   "doctor [-p PID]",
		Short: "Check that this machine, and with -p the target binary, can be traced",
		Long: "doctor runs attach's preflight checks — kernel, privileges, uprobes, memlock, BPF, the kernel\n" +
			"features attach uses (uprobe_multi and perf-event links, attach cookies, pidfd: Linux 5.15 or newer,\n" +
			"on amd64 or arm64)\n" +
			"and BTF — and shows them all, with a fix for each failure. With -p it also checks the target: is it\n" +
			"a Go binary, which Go version, stripped or not, PIE or not, which probed functions it has, and where\n" +
			"the goroutine id offset comes from. It exits 1 if a check that tracing cannot do without fails.",
		Args: argsError,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var proc *target.Process
			if cmd.Flags().Changed("pid") {
				var err error
				if proc, err = target.Find(pid); err != nil {
					return targetError(pid, err)
				}
				defer proc.Close()
			}
			return runDoctor(cmd.OutOrStdout(), proc)
		},
	}
	cmd.Flags().IntVarP(&pid, "pid", "p", 0, "also check this process's executable")
	return cmd
}

// runDoctor writes the checks and returns the first fatal failure.
func runDoctor(w io.Writer, proc *target.Process) error {
	var b strings.Builder
	b.WriteString("this machine\n")
	var system []doctorCheck
	for _, c := range preflight.System() {
		// a feature attach can do without shows as a dash, not a failure
		system = append(system, doctorCheck{Check: c, Info: c.Fallback})
	}
	firstErr := writeChecks(&b, system, func(c doctorCheck) string { return c.Name + ": " })
	if proc != nil {
		fmt.Fprintf(&b, "\npid %d: %s\n", proc.PID, proc.Exe)
		err := writeChecks(&b, targetChecks(proc), func(doctorCheck) string { return fmt.Sprintf("pid %d: ", proc.PID) })
		if firstErr == nil {
			firstErr = err
		}
	}
	switch {
	case firstErr != nil:
	case proc != nil:
		fmt.Fprintf(&b, "\nready: `maptrace attach -p %d` can trace it\n", proc.PID)
	default:
		b.WriteString("\nready: `maptrace demo` shows a trace; `maptrace doctor -p PID` checks a target\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return firstErr
}

// writeChecks writes one line per check, and a fix under each failure; it
// returns the first fatal failure, as the one-line error doctor exits with.
func writeChecks(b *strings.Builder, cs []doctorCheck, prefixOf func(doctorCheck) string) error {
	var first error
	for _, c := range cs {
		mark := "✓"
		switch {
		case c.Info:
			mark = "–"
		case !c.OK:
			mark = "✗"
		}
		fmt.Fprintf(b, "  %s %-21s %s\n", mark, c.Name, wrap(c.Detail, detailWidth, strings.Repeat(" ", 100-detailWidth)))
		if !c.OK && !c.Info && c.Fix != "" {
			fmt.Fprintf(b, "      fix: %s\n", wrap(c.Fix, 100-11, strings.Repeat(" ", 11)))
		}
		if !c.OK && !c.Info && c.Fatal && first == nil {
			first = c.Err
			if first == nil {
				first = checkError(prefixOf(c), c.Check)
			}
		}
	}
	return first
}

// targetChecks inspects the process's executable.
func targetChecks(proc *target.Process) []doctorCheck {
	fail := func(name, detail, fix string) doctorCheck {
		return doctorCheck{Check: preflight.Check{Name: name, Fatal: true, Detail: detail, Fix: fix}}
	}
	ok := func(name, detail string) doctorCheck {
		return doctorCheck{Check: preflight.Check{Name: name, OK: true, Detail: detail}}
	}
	// A failure here is the same one line attach would print.
	bin, err := symbols.Open(proc.ExeLink)
	switch {
	case errors.Is(err, symbols.ErrNotGo):
		c := fail("go binary", symbols.ErrNotGo.Error(), "maptrace traces Go programs only")
		c.Err = targetError(proc.PID, err)
		return []doctorCheck{c}
	case errors.Is(err, symbols.ErrUnsupportedVersion):
		c := fail("go binary", strings.TrimPrefix(err.Error(), "symbols: "+proc.ExeLink+": "), "rebuild it with Go 1.19 or newer")
		c.Err = targetError(proc.PID, err)
		return []doctorCheck{c}
	case errors.Is(err, os.ErrPermission):
		return []doctorCheck{fail("go binary", "cannot read "+proc.ExeLink+": permission denied", "run as root")}
	case err != nil:
		return []doctorCheck{fail("go binary", strings.TrimPrefix(err.Error(), "symbols: "), "")}
	}
	defer bin.Close()

	var cs []doctorCheck
	cs = append(cs, ok("go binary", fmt.Sprintf("%s %s", bin.GoVersion, bin.Arch)))
	if err := bin.CheckSupported(); err != nil {
		fix := "maptrace supports Go 1.19 and newer on amd64 and arm64"
		if errors.Is(err, symbols.ErrUnsupportedVersion) && !bin.HasDWARF {
			fix = "build the target without -ldflags=-w (keep DWARF), or use a maptrace that knows this Go release"
		}
		c := fail("supported", err.Error(), fix)
		c.Err = targetError(proc.PID, err)
		cs = append(cs, c)
	} else {
		cs = append(cs, ok("supported", "yes"))
	}
	if bin.Stripped {
		cs = append(cs, ok("symbols", "stripped (no .symtab): mutexes and maps show as addresses, not names"))
	} else {
		cs = append(cs, ok("symbols", "not stripped: mutexes and maps are named after their global variables"))
	}
	if bin.PIE {
		cs = append(cs, ok("pie", "yes (position-independent: addresses are rebased on the load address)"))
	} else {
		cs = append(cs, ok("pie", "no (position-dependent)"))
	}
	if off, source, err := bin.GoidOffset(); err != nil {
		cs = append(cs, fail("goid offset", strings.TrimPrefix(err.Error(), "symbols: "),
			"build the target with DWARF (without -ldflags=-w), so its runtime.g layout can be read"))
	} else if source == "dwarf" {
		cs = append(cs, ok("goid offset", fmt.Sprintf("%d (from the binary's DWARF)", off)))
	} else {
		cs = append(cs, ok("goid offset", fmt.Sprintf("%d (from maptrace's goid table for %s: the binary has no DWARF)", off, bin.GoVersion)))
	}
	for _, s := range probes.Inventory(bin) {
		cs = append(cs, probeCheck(s))
	}
	return cs
}

// probeCheck shows which functions of a probe group are present. Missing
// probe functions are not fatal: attach traces what it can and says what it
// could not.
func probeCheck(s probes.SymbolStatus) doctorCheck {
	name, note, _ := strings.Cut(s.What, " (")
	c := doctorCheck{Check: preflight.Check{Name: name}}
	if note != "" {
		note = " (" + note
	}
	short := func(names []string) string {
		var out []string
		for _, n := range names {
			out = append(out, strings.TrimPrefix(n, "runtime."))
		}
		return strings.Join(out, ", ")
	}
	switch {
	case len(s.Errs) > 0:
		c.Detail = fmt.Sprintf("cannot place a probe: %v", s.Errs[0])
		c.Fix = "not traced; please report this binary's Go version"
	case len(s.Found) == 0 && s.Expected:
		c.Detail = "not in this binary (" + short(s.Names) + "): not traced"
		c.Fix = "none needed if the program does not use it; otherwise rebuild it with a supported Go"
	case len(s.Found) == 0:
		c.Info, c.Detail = true, "none linked: the program does not use them"
	case len(s.Found) < len(s.Names) && !s.Expected:
		found := map[string]bool{}
		for _, n := range s.Found {
			found[n] = true
		}
		var absent []string
		for _, n := range s.Names {
			if !found[n] {
				absent = append(absent, n)
			}
		}
		head := fmt.Sprintf("%d of %d linked; unused, so absent: ", len(s.Found), len(s.Names))
		c.OK, c.Detail = true, head+clipText(short(absent), detailWidth-len(head))
	default:
		c.OK, c.Detail = true, clipText(short(s.Found), detailWidth)
	}
	if !c.OK && !c.Info {
		c.Detail += strings.TrimSuffix(note, ")") + ")"
		if note == "" {
			c.Detail = strings.TrimSuffix(c.Detail, ")")
		}
	}
	return c
}

// detailWidth keeps doctor's lines within 100 columns.
const detailWidth = 100 - 26

// wrap breaks s into lines of at most n columns, the later ones indented.
func wrap(s string, n int, indent string) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > n {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	lines = append(lines, line)
	return strings.Join(lines, "\n"+indent)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
