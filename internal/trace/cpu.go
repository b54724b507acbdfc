package trace

import (
	"sync"
	"time"

	"github.com/maptrace/maptrace/internal/target"
)

// cpuClock follows the target's CPU time through the trace, sampling it
// every 100ms so that a target that exits still has a recent reading.
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
		t := time.NewTicker(100 * time.Millisecond)
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
