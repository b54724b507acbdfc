package demo

import (
	"context"
	"testing"
	"time"
)

// TestWorkloadStops runs the workload without ever starting the race (which
// would kill the test binary) and checks it does its work and stops.
func TestWorkloadStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Workload(ctx, Options{Started: make(chan struct{}), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("not ready in 5s")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop within 5s of its context's end")
	}
	ordersMu.Lock()
	n := len(orders)
	ordersMu.Unlock()
	configMu.RLock()
	region := config["region"]
	configMu.RUnlock()
	if n == 0 || region == "" {
		t.Errorf("%d orders, region %q: the workload did nothing", n, region)
	}
	if len(inventory) != 0 {
		t.Errorf("the race ran without the start signal: %d inventory entries", len(inventory))
	}
}

func TestThrottleRamps(t *testing.T) {
	th := &throttle{pause: racePause, next: time.Now().Add(-time.Millisecond)}
	th.tick(1) // not a burst boundary: nothing changes
	if th.pause != racePause {
		t.Fatalf("pause %v after a non-boundary tick", th.pause)
	}
	for i := 0; th.pause >= raceMinPause; i++ {
		th.next = time.Now().Add(-time.Millisecond)
		th.tick(0)
		if i > 20 {
			t.Fatalf("pause stuck at %v", th.pause)
		}
	}
	// The pause halves every raceRamp until it is gone: full speed must
	// come well within the 3s that `maptrace demo -d 5s` gives the race.
	steps := 0
	for p := racePause; p >= raceMinPause; p /= 2 {
		steps++
	}
	if full := time.Duration(steps) * raceRamp; full > 2500*time.Millisecond {
		t.Errorf("full speed only after %v: `maptrace demo -d 5s` might end before the race is caught", full)
	}
}
