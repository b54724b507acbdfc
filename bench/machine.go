package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Machine names what the figures were measured on.
type Machine struct {
	Kernel   string // /proc/sys/kernel/osrelease
	CPU      string // model name in /proc/cpuinfo
	Cores    int    // processors in /proc/cpuinfo
	MemTotal string // /proc/meminfo
	Go       string // the toolchain that built the targets
	Virt     string // systemd-detect-virt, when it says
}

// Load is how busy the machine was, from /proc: the benchmarks share it
// with whatever else runs.
type Load struct {
	AvgStart, AvgEnd string  // /proc/loadavg, 1 5 15 minutes
	Busy             float64 // share of all CPUs' time not idle over the run (/proc/stat), benchmarks included
	// Others is the share of all CPUs' time that processes other than the
	// benchmark and its children used: Busy less this process's and its
	// children's getrusage.
	Others float64
	start  [2]uint64
	own0   float64
}

// userHZ is the unit of /proc/stat, fixed by the kernel's ABI on Linux.
const userHZ = 100

func ownCPU() float64 {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	t := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
	}
	return t(self) + t(kids)
}

func cpuTimes() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func startLoad() *Load {
	l := &Load{AvgStart: loadavg()}
	l.start[0], l.start[1] = cpuTimes()
	l.own0 = ownCPU()
	return l
}

func (l *Load) end() {
	l.AvgEnd = loadavg()
	b, t := cpuTimes()
	if t > l.start[1] {
		l.Busy = float64(b-l.start[0]) / float64(t-l.start[1])
		own := (ownCPU() - l.own0) * userHZ
		l.Others = max(0, float64(b-l.start[0])-own) / float64(t-l.start[1])
	}
}

func readMachine() Machine {
	var m Machine
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.Cores++
			case "model name":
				if m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.Go = runtime.Version()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("systemd-detect-virt").Output(); err == nil {
		m.Virt = strings.TrimSpace(string(out))
	}
	return m
}
