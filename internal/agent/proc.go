package agent

import (
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
)

// Process is a process the agent has seen.
type Process struct {
	PID int
	// Start is when it started (target.StartTime): with the pid, it tells
	// it from a later process given the same pid.
	Start uint64
	// File is the executable it runs: exec changes it, not the pid.
	File symbols.FileID
	// Exe is the executable's path as the process sees it (in its mount
	// namespace), without the " (deleted)" of a replaced file.
	Exe string
	// GoVersion and Module are from the executable's Go build information;
	// empty if it has none.
	GoVersion, Module string
	// ContainerID is its container's, from /proc/PID/cgroup; "" outside
	// containers.
	ContainerID string
	// Namespace, Pod and Container are its Kubernetes pod's and
	// container's names, from containerd's CRI labels; "" outside
	// Kubernetes, or without containerd's socket.
	Namespace, Pod, Container string
	// App is the value of its pod's service label (Config.ServiceLabel);
	// "" without one.
	App string
}

// key identifies a process for as long as it runs one executable.
type key struct {
	pid   int
	start uint64
	file  symbols.FileID
}

func (p *Process) key() key { return key{p.PID, p.Start, p.File} }

// Service is the process's service label: its pod's service label, which
// its owners chose to name it, else its Kubernetes container's name, which
// says what it is in that pod's terms (the executable is often /app or
// /server), else its executable's base name.
func (p *Process) Service() string {
	if p.App != "" {
		return p.App
	}
	if p.Container != "" {
		return p.Container
	}
	return path.Base(p.Exe)
}

// IsGo reports whether the executable has Go build information.
func (p *Process) IsGo() bool { return p.GoVersion != "" }

// exeLink opens the executable in any mount namespace.
func exeLink(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/exe" }

// pids lists the processes in /proc, in order.
func pids() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out, nil
}

// identify reads what tells process pid apart: its start time and
// executable. ok is false for what cannot be traced at all and is not
// worth a word: kernel threads, processes gone already, executables that
// cannot be read.
func identify(pid int) (p Process, ok bool) {
	start, err := target.StartTime(pid)
	if err != nil {
		return p, false
	}
	exe, err := os.Readlink(exeLink(pid))
	if err != nil {
		return p, false
	}
	file, err := symbols.FileIDOf(exeLink(pid))
	if err != nil {
		return p, false
	}
	return Process{PID: pid, Start: start, File: file, Exe: strings.TrimSuffix(exe, " (deleted)")}, true
}

// alive reports whether p still runs: it has not exited, and its pid is
// not another process's.
func alive(p *Process) bool { return target.Running(p.PID, p.Start) }
