// Command load drives a bounded publish/subscribe load against a NATS
// server for a fixed time and prints what it delivered as one line:
//
//	load published N delivered M seconds S
//
// Publishers publish as fast as the subscribers keep up: each stops while
// more than -window messages are published but not yet delivered, so the
// load is bounded and no subscriber is dropped as a slow consumer.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "server URL")
	pubs := flag.Int("pubs", 4, "publisher connections")
	subs := flag.Int("subs", 4, "subscriber connections (each receives every message)")
	size := flag.Int("size", 128, "message size in bytes")
	dur := flag.Duration("d", 5*time.Second, "how long to publish")
	window := flag.Int64("window", 8192, "most deliveries outstanding at once")
	flag.Parse()
	if err := run(*url, *pubs, *subs, *size, *dur, *window); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(url string, pubs, subs, size int, dur time.Duration, window int64) error {
	var delivered, published atomic.Int64
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func(name string) (*nats.Conn, error) {
		c, err := nats.Connect(url, nats.Name(name), nats.Timeout(10*time.Second))
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	for i := 0; i < subs; i++ {
		c, err := connect(fmt.Sprintf("sub-%d", i))
		if err != nil {
			return err
		}
		sub, err := c.Subscribe("bench.*", func(*nats.Msg) { delivered.Add(1) })
		if err != nil {
			return err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return err
		}
		if err := c.Flush(); err != nil { // the subscription is in place
			return err
		}
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for i := 0; i < pubs; i++ {
		c, err := connect(fmt.Sprintf("pub-%d", i))
		if err != nil {
			return err
		}
		subject := fmt.Sprintf("bench.%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				for published.Load()*int64(subs)-delivered.Load() > window && !stop.Load() {
					time.Sleep(20 * time.Microsecond)
				}
				if err := c.Publish(subject, payload); err != nil {
					errs <- err
					return
				}
				published.Add(1)
				if n%512 == 511 {
					if err := c.FlushTimeout(10 * time.Second); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	start := time.Now()
	time.Sleep(dur)
	stop.Store(true)
	got, elapsed := delivered.Load(), time.Since(start)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("load published %d delivered %d seconds %.6f\n", published.Load(), got, elapsed.Seconds())
	return nil
}
