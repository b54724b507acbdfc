package cpuprof

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// MaxHz is the sampling frequency where a sample costs little: every
	// sample stands for 1/Hz seconds of CPU time. Off round numbers, so as
	// not to beat with timers.
	MaxHz = 499
	// MinHz is the lowest: where samples cost so much that a quarter of
	// the budget buys fewer, the sampler spends more of it.
	MinHz = 19
	// budgetShare is the share of the overhead budget the sampler may
	// take at most, above MinHz: the probes get the rest.
	budgetShare = 0.25
)

// HzFor is the sampling frequency that keeps samples costing cost each
// within a quarter of budget (a share of the target's CPU time), between
// MinHz and MaxHz; MaxHz for a budget of 1 or more (exact counts), none,
// or an unknown cost. The interrupt that takes a sample costs the target from
// under a microsecond on bare metal to tens in some VMs: at MaxHz, from
// nothing to more than a budget of 1%.
func HzFor(budget float64, cost time.Duration) int {
	if budget <= 0 || budget >= 1 || cost <= 0 {
		return MaxHz
	}
	hz := budget * budgetShare / cost.Seconds()
	return int(min(max(hz, MinHz), MaxHz))
}

// The measurement: spins of calSpin of this thread's CPU time, alone and
// with a CPU clock sampling the thread every calPeriod, calRounds times.
const (
	calSpin   = 4 * time.Millisecond
	calPeriod = 100 * time.Microsecond
	calRounds = 7
)

// MeasureSample returns what the interrupt that takes one CPU-clock sample
// costs the thread it interrupts, the sampler's program aside (which times
// itself): this thread's CPU time spinning under a CPU clock at 10 kHz
// against without, per sample. The median of a few rounds, since a VM's
// steal time can distort any one of them. Where the kernel accounts
// interrupts apart from the task they interrupt, what is measured is what
// remains of the cost in the task's CPU time (cold caches), as in the
// target's.
func MeasureSample() (time.Duration, error) {
	var cost time.Duration
	err := onOneCPU(calPeriod, func(fd int) error {
		n := spinsFor(calSpin)
		var costs []time.Duration
		for range calRounds {
			base, with, err := spinClocked(fd, n)
			if err != nil {
				return err
			}
			// with/calPeriod samples took with-base.
			costs = append(costs, time.Duration(float64(max(0, with-base))*float64(calPeriod)/float64(with)))
		}
		slices.Sort(costs)
		cost = costs[calRounds/2]
		return nil
	})
	return cost, err
}

// onOneCPU runs f on a thread of its own, pinned to one CPU, with fd a CPU
// clock on that CPU, disabled, that samples every period with nothing
// attached to take the samples. A clock on the CPU, like the sampler's, not
// on the thread: while any perf event on a thread exists, the kernel patches
// a hook into every context switch, and patching it in and out for each
// trace is work the sampler need not ask of the kernel. The thread is
// never unlocked, so it exits with its goroutine, pinned as it is.
func onOneCPU(period time.Duration, f func(fd int) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			var allowed unix.CPUSet
			if err := unix.SchedGetaffinity(0, &allowed); err != nil {
				return fmt.Errorf("sched_getaffinity: %w", err)
			}
			if allowed.Count() == 0 {
				return errors.New("sched_getaffinity: no CPU allowed")
			}
			cpu := 0
			for !allowed.IsSet(cpu) {
				cpu++
			}
			var one unix.CPUSet
			one.Set(cpu)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				return fmt.Errorf("sched_setaffinity: %w", err)
			}
			fd, err := cpuClock(cpu, uint64(period.Nanoseconds()), 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return f(fd)
		}()
	}()
	return <-errc
}

// spinClocked times n spin iterations of this thread's CPU time with the
// clock fd off, then on.
func spinClocked(fd, n int) (base, with time.Duration, err error) {
	base = timeSpin(n)
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return 0, 0, err
	}
	with = timeSpin(n)
	return base, with, unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
}

// cpuClock opens a CPU clock on cpu, disabled, whatever runs there:
// sampling every sample ns of CPU time, or sample times a second with
// unix.PerfBitFreq in bits.
func cpuClock(cpu int, sample uint64, bits uint64) (int, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: sample,
		Bits:   bits | unix.PerfBitDisabled,
	}
	return unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
}

// spinsFor is how many spin iterations take about d of CPU time.
func spinsFor(d time.Duration) int {
	n := 1 << 16
	for {
		if t := timeSpin(n); t >= d/4 {
			return int(float64(n) * float64(d) / float64(t))
		}
		n *= 2
	}
}

// sink keeps the spin's result, so that it is computed.
var sink uint64

// timeSpin is the thread CPU time of n iterations of arithmetic.
func timeSpin(n int) time.Duration {
	start := threadCPU()
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink += x
	return threadCPU() - start
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}
