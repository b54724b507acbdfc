// Command load queries a DNS server from several clients at once, each on
// its own UDP socket, for names drawn from a Zipf distribution over a zone's
// hosts, as a cache in front of many clients sees them; it prints the
// answers per second. With -ready it only waits for the server to answer.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:53", "the server's UDP address")
	zone := flag.String("zone", "example.org.", "the zone whose hosts are host0 … hostN-1")
	names := flag.Int("names", 1000, "distinct host names")
	clients := flag.Int("c", 32, "concurrent clients")
	d := flag.Duration("d", 10*time.Second, "how long to query")
	s := flag.Float64("s", 1.2, "Zipf exponent of the names' popularity")
	ready := flag.Duration("ready", 0, "only wait up to this long for an answer, then exit")
	flag.Parse()
	if *ready > 0 {
		os.Exit(waitReady(*addr, *zone, *ready))
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(*d)
	for i := range *clients {
		wg.Go(func() {
			z := rand.NewZipf(rand.New(rand.NewSource(int64(i))), *s, 1, uint64(*names-1))
			c := &dns.Client{Timeout: time.Second}
			conn, err := c.Dial(*addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				failed.Add(1)
				return
			}
			defer conn.Close()
			for time.Now().Before(end) {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("host%d.%s", z.Uint64(), *zone), dns.TypeA)
				if in, _, err := c.ExchangeWithConn(m, conn); err != nil || in.Rcode != dns.RcodeSuccess {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("answers %d failed %d seconds %.3f answers/s %.1f\n", ok.Load(), failed.Load(), secs, float64(ok.Load())/secs)
	if ok.Load() == 0 {
		os.Exit(1)
	}
}

// waitReady asks for the zone's first host until it is answered.
func waitReady(addr, zone string, within time.Duration) int {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("host0."+zone, dns.TypeA)
	var err error
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var in *dns.Msg
		if in, _, err = c.Exchange(m, addr); err == nil && in.Rcode == dns.RcodeSuccess {
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "no answer from %s within %v: %v\n", addr, within, err)
	return 1
}
