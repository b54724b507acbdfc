package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maptrace/maptrace/internal/preflight"
	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
)

// usageError marks errors in how maptrace was called (exit status 2).
type usageError struct{ error }

// flatten is err as the single line maptrace prints: the parts of an
// errors.Join, or of a multi-line error, joined with "; ".
func flatten(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// checkError is a failed preflight check as one line: what is wrong, then
// what to do.
func checkError(prefix string, c preflight.Check) error {
	if c.Fix == "" {
		return fmt.Errorf("%s%s", prefix, c.Detail)
	}
	return fmt.Errorf("%s%s: %s", prefix, c.Detail, c.Fix)
}

// preflightError is the first failed system check that tracing cannot do
// without (privileges, uprobes, BPF), or nil.
func preflightError() error {
	for _, c := range preflight.System() {
		if !c.OK && c.Fatal {
			return checkError(c.Name+": ", c)
		}
	}
	return nil
}

// goVersion finds a Go version in an error's text.
var goVersion = regexp.MustCompile(`(devel )?go1\.[0-9][^ ,;:()]*`)

// targetError is an error about pid — from finding it, reading its
// executable or attaching to it — as the line the user sees: what is wrong
// with the target and what to do. Other errors pass unchanged.
func targetError(pid int, err error) error {
	if err == nil {
		return nil
	}
	exe, exeErr := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	who := fmt.Sprintf("pid %d", pid)
	if exeErr == nil {
		who += " (" + exe + ")"
	}
	detail := func(sentinel error) string {
		_, d, _ := strings.Cut(err.Error(), sentinel.Error()+": ")
		return d
	}
	switch {
	case errors.Is(err, target.ErrNoProcess):
		return fmt.Errorf("pid %d: no such process: check it (`pgrep -a NAME` lists a program's pids)", pid)
	case errors.Is(err, symbols.ErrNotGo):
		return fmt.Errorf("%s is not a Go program: maptrace traces Go binaries only", who)
	case errors.Is(err, symbols.ErrUnsupportedArch):
		arch := ""
		if f := strings.Fields(detail(symbols.ErrUnsupportedArch)); len(f) > 0 {
			arch = " " + f[0]
		}
		return fmt.Errorf("%s: unsupported architecture%s: maptrace traces amd64 and arm64 programs only", who, arch)
	case errors.Is(err, symbols.ErrUnsupportedVersion):
		d := detail(symbols.ErrUnsupportedVersion)
		v := goVersion.FindString(d)
		if strings.Contains(d, "goid table") {
			return fmt.Errorf("%s: unsupported Go version %s, newer than this maptrace knows, in a binary without DWARF: "+
				"use a newer maptrace, or build the program without -ldflags=-w", who, v)
		}
		return fmt.Errorf("%s: unsupported Go version %s: maptrace traces programs built with Go 1.19 or newer", who, v)
	case errors.Is(exeErr, os.ErrNotExist) && exists(fmt.Sprintf("/proc/%d", pid)):
		// Also a target that died while maptrace attached, the likely
		// cause of the error then.
		return fmt.Errorf("pid %d has no executable (a kernel thread, or a process that is exiting): give the pid of a running Go program", pid)
	case errors.Is(exeErr, os.ErrPermission) && os.Geteuid() == 0:
		return fmt.Errorf("pid %d: cannot read its executable, even as root: trace it from its own user namespace (or the host's)", pid)
	case errors.Is(exeErr, os.ErrPermission):
		return fmt.Errorf("pid %d: cannot read its executable: run maptrace as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE)", pid)
	}
	return err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// flagError rewrites a flag-parsing error as one line that says what the
// flag wants and where the help is.
func flagError(cmd *cobra.Command, err error) error {
	help := fmt.Sprintf(" (see `%s --help`)", cmd.CommandPath())
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) {
		f := iv.GetFlag()
		return usageError{fmt.Errorf("--%s %q: want %s%s", f.Name, iv.GetValue(), valueKind(f.Value.Type()), help)}
	}
	var vr *pflag.ValueRequiredError
	if errors.As(err, &vr) {
		f := vr.GetFlag()
		return usageError{fmt.Errorf("--%s needs a value: %s%s", f.Name, valueKind(f.Value.Type()), help)}
	}
	return usageError{fmt.Errorf("%v%s", err, help)}
}

// valueKind describes the values of a flag type.
func valueKind(typ string) string {
	switch typ {
	case "int":
		return "a whole number"
	case "float64":
		return "a number"
	case "duration":
		return "a duration such as 30s or 5m"
	case "bool":
		return "true or false"
	case "string":
		return "a value"
	}
	return "a " + typ
}

// argsError rejects arguments a command does not take, as a usage error.
func argsError(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if !cmd.HasParent() {
		msg := fmt.Sprintf("unknown command %q: `maptrace --help` lists the commands", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg = fmt.Sprintf("unknown command %q: did you mean %s? (`maptrace --help` lists the commands)", args[0], strings.Join(s, " or "))
		}
		return usageError{errors.New(msg)}
	}
	return usageError{fmt.Errorf("%s takes no arguments, got %q (see `%s --help`)", cmd.Name(), strings.Join(args, " "), cmd.CommandPath())}
}
