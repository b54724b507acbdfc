package cpuprof

import (
	"runtime"
	"slices"
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
// measurement's rate, per second of its CPU time.
func TestMeasureSample(t *testing.T) {
	testtarget.NeedRoot(t)
	cost, err := MeasureSample()
	if err != nil {
		t.Fatal(err)
	}
	if cost <= 0 || cost > time.Millisecond {
		t.Fatalf("a sample costs %v", cost)
	}
	const period = 500 * time.Microsecond
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := threadClock(period)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	n := spinsFor(20 * time.Millisecond)
	var slow []float64
	for range 9 {
		base := timeSpin(n)
		unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0)
		with := timeSpin(n)
		unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
		slow = append(slow, float64(with-base)/float64(with))
	}
	slices.Sort(slow)
	got, want := slow[len(slow)/2], float64(cost)/float64(period)
	t.Logf("a sample costs %v: at 2 kHz, %.2f%% of the thread's CPU time predicted, %.2f%% measured", cost, 100*want, 100*got)
	if d := got - want; d > max(0.5*want, 0.01) || -d > max(0.5*want, 0.01) {
		t.Errorf("sampled at 2 kHz, the thread spent %.2f%% of its CPU time in samples, predicted %.2f%%", 100*got, 100*want)
	}
}
