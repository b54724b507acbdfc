// Package target is the traced process: its executable, where that is
// mapped, and when it exits.
package target

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoProcess means there is no process with the PID.
var ErrNoProcess = errors.New("no such process")

// Process is a running process.
type Process struct {
	PID int
	// Exe is the executable's path as the process sees it (informational:
	// inside a container it names a file of another mount namespace).
	Exe string
	// ExeLink is /proc/PID/exe, which opens the very file the process runs,
	// in any mount namespace; symbols and uprobes use it.
	ExeLink string
	pidfd   int
}

// Find opens process pid. It holds a pidfd so that its exit is seen even if
// the PID is reused.
func Find(pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: pidfd_open: %w", pid, err)
	}
	p := &Process{PID: pid, ExeLink: fmt.Sprintf("/proc/%d/exe", pid), pidfd: fd}
	p.Exe, err = os.Readlink(p.ExeLink)
	if err != nil {
		p.Close()
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("pid %d: cannot read its executable: %w (run as root)", pid, err)
		}
		if errors.Is(err, os.ErrNotExist) {
			// A kernel thread or a zombie has no executable.
			return nil, fmt.Errorf("pid %d: has no executable (kernel thread or exited)", pid)
		}
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// StartTime is when process pid started, in clock ticks since boot
// (/proc/PID/stat's starttime): with the pid, it tells a process from a
// later one given the same pid.
func StartTime(pid int) (uint64, error) {
	start, _, err := stat(pid)
	return start, err
}

// Running reports whether pid is still the process that started at start
// (StartTime) and has not exited: an exited process stays in /proc, as a
// zombie, until its parent reaps it.
func Running(pid int, start uint64) bool {
	st, state, err := stat(pid)
	return err == nil && st == start && state != 'Z' && state != 'X'
}

func stat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat reads state and starttime from a /proc/PID/stat line. The
// command name before them is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseStat(stat string) (start uint64, state byte, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc/PID/stat")
	}
	// Fields from 3 (state) on; starttime is field 22.
	f := strings.Fields(stat[i+1:])
	if len(f) < 20 {
		return 0, 0, errors.New("malformed /proc/PID/stat: too few fields")
	}
	start, err = strconv.ParseUint(f[22-3], 10, 64)
	return start, f[0][0], err
}

// Close releases the pidfd.
func (p *Process) Close() error {
	if p.pidfd < 0 {
		return nil
	}
	err := unix.Close(p.pidfd)
	p.pidfd = -1
	return err
}

// Exited returns a channel closed when the process exits.
func (p *Process) Exited() <-chan struct{} {
	ch := make(chan struct{})
	fd := p.pidfd
	go func() {
		defer close(ch)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				return
			}
		}
	}()
	return ch
}

// Alive reports whether the process still runs: its pidfd turns readable
// when it exits, before its parent reaps it.
func (p *Process) Alive() bool { return !p.ExitsWithin(0) }

// ExitsWithin reports whether the process has exited or exits within d.
func (p *Process) ExitsWithin(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		ms := (time.Until(deadline) + time.Millisecond - 1).Milliseconds() // not less than d
		n, err := unix.Poll(fds, int(max(0, ms)))
		if err == unix.EINTR { // the signal that is ending the trace
			continue
		}
		return err != nil || n > 0
	}
}

// LoadBias returns how far the executable was loaded from its link-time
// addresses: zero unless it is position-independent. firstVaddr is the
// virtual address of the executable's first PT_LOAD segment (file offset 0).
func (p *Process) LoadBias(firstVaddr uint64) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", p.PID))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var exeStat unix.Stat_t
	if err := unix.Stat(p.ExeLink, &exeStat); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		inode, _ := strconv.ParseUint(fields[4], 10, 64)
		off, _ := strconv.ParseUint(fields[2], 16, 64)
		if inode != exeStat.Ino || off != 0 {
			continue
		}
		start, _ := strconv.ParseUint(strings.SplitN(fields[0], "-", 2)[0], 16, 64)
		return start - firstVaddr&^0xfff, nil
	}
	return 0, fmt.Errorf("pid %d: executable not found in /proc/%d/maps", p.PID, p.PID)
}

// ReadMemory reads the target's memory at addr.
func (p *Process) ReadMemory(addr uint64, buf []byte) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", p.PID))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(buf, int64(addr))
	return err
}

// CPUTime is the CPU time all the process's threads have run, read from the
// process's CPU clock, which unlike /proc counters includes the current slice
// of threads running now. Time in uprobe handlers counts: they run in the
// target's threads.
func (p *Process) CPUTime() (time.Duration, error) {
	// clock_getcpuclockid(3): a process's CPUCLOCK_SCHED clock.
	clock := int32(^p.PID<<3 | 2)
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, fmt.Errorf("pid %d: cpu clock: %w", p.PID, err)
	}
	return time.Duration(ts.Nano()), nil
}
