package trace_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestSharded traces two sharded maps used with a skewed key: one of the
// target's own (16 shards of a mutex and a map) and
// github.com/orcaman/concurrent-map/v2 (32). Each must be one row of kind
// sharded with the shard count, the busiest shard the one the target
// counted most operations on, and the skewed key named as what makes it
// busy; the goroutines' own maps of one type are no sharded map. With every
// operation probed the counts are exact; under the default budget, in this
// loop of little but map operations, they are lower bounds, and the
// imbalance must be within 10%.
func TestSharded(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		for _, run := range []struct {
			lib    string
			budget float64
		}{{"own", 100}, {"cmap", 100}, {"own", 5}, {"cmap", 5}} {
			lib, exact := run.lib, run.budget == 100
			t.Run(fmt.Sprintf("%s/%s/budget%g", tc, lib, run.budget), func(t *testing.T) {
				p := testtarget.Start(t, testtarget.Build(t, "../../testdata/sharded", tc))
				// Under the budget, seconds of work: where a probe hit
				// costs tens of microseconds, the scaled counts are lower
				// bounds, and a shard must still count minShardOps. The
				// contended shards' mutex probes are duty-cycled, and the
				// map windows, in the quarter of the budget left them, see
				// a few hundred operations a second: at 25M, over a
				// hundred on each cold shard of cmap's 32.
				n := 20000
				if !exact {
					n = 25000000
				}
				r, answer := mapTrace(t, p, run.budget, fmt.Sprintf("%s %d", lib, n), 60*time.Second)
				var (
					name, hotShard            string
					ops, hotOps, shards, busy uint64
				)
				if _, err := fmt.Sscanf(answer, "%s %d %d %d %s %d", &name, &ops, &hotOps, &shards, &hotShard, &busy); err != nil || name != lib {
					t.Fatalf("target said %q", answer)
				}
				var m *report.Map
				for i := range r.Maps {
					switch {
					case r.Maps[i].Kind == report.KindSharded && m == nil:
						m = &r.Maps[i]
					case r.Maps[i].Kind == report.KindSharded:
						t.Errorf("another sharded map: %s", r.Maps[i].Label())
					}
				}
				if m == nil || m.Sharded == nil {
					for _, x := range r.Maps {
						t.Logf("row %s (%s, %d maps): %d ops", x.Label(), x.Kind, x.Maps, x.Reads+x.Writes)
					}
					t.Fatalf("no sharded map")
				}
				sh := m.Sharded
				t.Logf("%s: %d shards, imbalance %.2f, hot key %q, busiest %+v; target: %d ops, busiest %s×%d, hot key ×%d",
					m.Label(), len(sh.Shards), sh.Imbalance, sh.HotKey, sh.Shards[0], ops, hotShard, busy, hotOps)
				if uint64(m.Maps) != shards || uint64(len(sh.Shards)) != shards || m.Type != "map[string]int" {
					t.Errorf("%d maps, %d shards of %s; want %d of map[string]int", m.Maps, len(sh.Shards), m.Type, shards)
				}
				var sum uint64
				for _, s := range sh.Shards {
					sum += s.Ops
				}
				want := float64(busy) * float64(shards) / float64(ops)
				if sh.Shards[0].Address != hotShard || sh.HotKey != "hot" || len(m.HotKeys) == 0 || m.HotKeys[0].Key != "hot" {
					t.Errorf("busiest shard %s, hot key %q, hot keys %v; the target counted %s busiest, key hot",
						sh.Shards[0].Address, sh.HotKey, m.HotKeys[:min(len(m.HotKeys), 3)], hotShard)
				}
				if exact {
					if m.Reads+m.Writes != ops || m.Deletes != 0 || sum != ops || sh.Shards[0].Ops != busy || m.HotKeys[0].Count != hotOps {
						t.Errorf("%d reads, %d writes, %d deletes, shards' %d, busiest ×%d, hot ×%d; want %d operations, busiest ×%d, hot ×%d",
							m.Reads, m.Writes, m.Deletes, sum, sh.Shards[0].Ops, m.HotKeys[0].Count, ops, busy, hotOps)
					}
					if fmt.Sprintf("%.6f", sh.Imbalance) != fmt.Sprintf("%.6f", want) {
						t.Errorf("imbalance %v, want %v", sh.Imbalance, want)
					}
				} else if math.Abs(sh.Imbalance-want)/want > 0.15 || sum > ops*11/10 {
					// Sampled: the shards' counts are those seen in the windows.
					t.Errorf("imbalance %v, want %v within 15%%; %d shard operations, true %d; map windows %.4f of the time; shards %v",
						sh.Imbalance, want, sum, ops, r.Overhead.MapSamplingFraction, sh.Shards)
				}
				found := false
				for _, f := range r.Findings {
					if strings.HasPrefix(f.Title, m.Label()+": one shard takes") {
						found = true
						if !strings.Contains(f.Detail, `key "hot"`) || !strings.Contains(f.Advice, `take key "hot" out`) {
							t.Errorf("finding %+v: want the hot key named", f)
						}
					}
				}
				if !found {
					t.Errorf("no finding on the busiest shard: %+v", r.Findings)
				}
			})
		}
	}
}
