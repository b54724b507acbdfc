package trace

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/target"
)

// cpuClock follows the target's CPU time through the trace, sampling it
// every 250ms so that a target that exits still has a recent reading (and
// seldom enough that the wake-ups cost maptrace little).
type cpuClock struct {
	mu          sync.Mutex
	first, last time.Duration
	quit        chan struct{}
	wg          sync.WaitGroup
}

func newCPUClock(p *target.Process) *cpuClock {
	c := &cpuClock{quit: make(chan struct{})}
	c.first, _ = p.CPUTime()
	c.last = c.first
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			c.sample(p)
			select {
			case <-c.quit:
				c.sample(p)
				return
			case <-t.C:
			}
		}
	}()
	return c
}

func (c *cpuClock) sample(p *target.Process) {
	if now, err := p.CPUTime(); err == nil {
		c.mu.Lock()
		c.last = max(c.last, now)
		c.mu.Unlock()
	}
}

// used is the CPU time the target used since the clock started.
func (c *cpuClock) used() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last - c.first
}

func (c *cpuClock) stop() {
	close(c.quit)
	c.wg.Wait()
}

// ownCPU is maptrace's own CPU time so far, every thread: what
// /proc/self/stat's utime and stime count, from the process's CPU clock,
// to the nanosecond.
func ownCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// userHz is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const userHz = 100

// machineCPU is the machine's idle and busy CPU time so far, summed over
// its CPUs, from /proc/stat: idle and iowait are idle; user, nice, system,
// irq, softirq and steal (time a hypervisor gave to someone else) busy.
func machineCPU() (idle, busy time.Duration, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, errors.New("/proc/stat is empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	var ticks [8]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(fields[1+i], 10, 64); err != nil {
			return 0, 0, err
		}
	}
	const user, nice, system, idl, iowait, irq, softirq, steal = 0, 1, 2, 3, 4, 5, 6, 7
	tick := time.Second / userHz
	idle = time.Duration(ticks[idl]+ticks[iowait]) * tick
	busy = time.Duration(ticks[user]+ticks[nice]+ticks[system]+ticks[irq]+ticks[softirq]+ticks[steal]) * tick
	return idle, busy, nil
}
