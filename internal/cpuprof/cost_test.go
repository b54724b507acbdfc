package cpuprof

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maptrace/maptrace/internal/testtarget"
)

func TestHzFor(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		budget float64
		cost   time.Duration
		hz     int
	}{
		{0.05, 2 * us, MaxHz},  // bare metal: a quarter of 5% buys 6,250 a second
		{0.05, 25 * us, MaxHz}, // 500 a second
		{0.01, 25 * us, 100},   // a slow VM at the agent's budget
		{0.001, 25 * us, MinHz},
		{1, 25 * us, MaxHz}, // exact counts
		{0.05, 0, MaxHz},    // cost unknown
		{0, 25 * us, MaxHz}, // no budget
	} {
		if hz := HzFor(tc.budget, tc.cost); hz != tc.hz {
			t.Errorf("HzFor(%v, %v) = %d, want %d", tc.budget, tc.cost, hz, tc.hz)
		}
	}
}

// TestMeasureSample checks the measured cost of a sample against what it
// predicts: the slowdown of a thread sampled at 2 kHz, a fifth of the
// measurement's rate, per second of its CPU time. Measurement and check
// alternate, nine pairs, and the median pair decides: a VM's busy spell then
// skews both sides of a pair, not one side of the whole test.
func TestMeasureSample(t *testing.T) {
	testtarget.NeedRoot(t)
	const period = 500 * time.Microsecond
	var pairs [][2]float64 // predicted, measured share of the thread's CPU time
	for range 9 {
		cost, err := MeasureSample()
		if err != nil {
			t.Fatal(err)
		}
		if cost <= 0 || cost > time.Millisecond {
			t.Fatalf("a sample costs %v", cost)
		}
		err = onOneCPU(period, func(fd int) error {
			base, with, err := spinClocked(fd, spinsFor(40*time.Millisecond))
			pairs = append(pairs, [2]float64{float64(cost) / float64(period), float64(with-base) / float64(with)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pinnedThreads(); err != nil {
		t.Error(err)
	}
	slices.SortFunc(pairs, func(a, b [2]float64) int { return cmp.Compare(a[1]-a[0], b[1]-b[0]) })
	want, got := pairs[len(pairs)/2][0], pairs[len(pairs)/2][1]
	t.Logf("median pair: a sample costs %v: at 2 kHz, %.2f%% of the thread's CPU time predicted, %.2f%% measured; all pairs %.3f", time.Duration(want*float64(period)), 100*want, 100*got, pairs)
	if d := got - want; d > max(0.5*want, 0.01) || -d > max(0.5*want, 0.01) {
		t.Errorf("sampled at 2 kHz, the thread spent %.2f%% of its CPU time in samples, predicted %.2f%%", 100*got, 100*want)
	}
}

// pinnedThreads fails when a thread of this process is allowed fewer CPUs
// than the process, within a second: the thread MeasureSample pins to one
// CPU must exit, not run on as one of the runtime's.
func pinnedThreads() error {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(os.Getpid(), &all); err != nil {
		return err
	}
	var pinned []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		pinned = pinned[:0]
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			var set unix.CPUSet
			if unix.SchedGetaffinity(tid, &set) == nil && set.Count() < all.Count() {
				pinned = append(pinned, task.Name())
			}
		}
		if len(pinned) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("threads %v are allowed fewer CPUs than the process's %d", pinned, all.Count())
		}
	}
}
