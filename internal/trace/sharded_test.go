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
// sharded with the shard count (under the budget, at least the shards its
// windows all but surely saw), the busiest shard the one the target
// counted most operations on, and the skewed key named as what makes it
// busy; the goroutines' own maps of one type are no sharded map. With every
// operation probed the counts are exact; under the default budget, in this
// loop of little but map operations, they are lower bounds, and the
// imbalance must be within 15%.
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
				// map windows, in what they leave of the budget, probe
				// from one to a few tens of operations on each cold shard
				// of cmap's 32 (fewestSeen).
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
				var sum uint64
				for _, s := range sh.Shards {
					sum += s.Ops
				}
				// Every shard, where every operation is probed; under the
				// budget, a shard no window saw is not in the report.
				least := shards
				if !exact {
					perCold := float64(report.Probed(sum-sh.Shards[0].Ops, r.Overhead.MapSamplingFraction)) / float64(shards-1)
					least = uint64(fewestSeen(int(shards), perCold))
					t.Logf("%.1f operations probed on each cold shard: at least %d shards of %d seen", perCold, least, shards)
				}
				if uint64(m.Maps) != uint64(len(sh.Shards)) || uint64(len(sh.Shards)) < least || uint64(len(sh.Shards)) > shards || m.Type != "map[string]int" {
					t.Errorf("%d maps, %d shards of %s; want %d to %d of map[string]int", m.Maps, len(sh.Shards), m.Type, least, shards)
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

// fewestSeen is how many of a sharded map's shards, the busiest and
// shards-1 cold ones, windows that probe perCold operations on each cold
// shard on average see in all but one run in 10,000: each cold shard is
// missed with the Poisson chance exp(-perCold), and the number missed is
// binomial.
func fewestSeen(shards int, perCold float64) int {
	n, p := shards-1, math.Exp(-perCold)
	if p >= 1 {
		return 1
	}
	pmf := math.Pow(1-p, float64(n)) // of missing none
	tail := 1 - pmf                  // of missing more than k
	for k := 0; k < n; k++ {
		if tail < 1e-4 {
			return shards - k
		}
		pmf *= float64(n-k) / float64(k+1) * p / (1 - p)
		tail -= pmf
	}
	return 1
}

func TestFewestSeen(t *testing.T) {
	for _, tc := range []struct {
		perCold float64
		want    int
	}{
		{20, 32}, // exp(-20)×31: none missed
		{10, 31}, // 31×exp(-10) = 0.0014 of a shard: one, at most
		{2, 20},  // 4.2 missed on average
		{0, 1},
	} {
		if got := fewestSeen(32, tc.perCold); got != tc.want {
			t.Errorf("fewestSeen(32, %g) = %d, want %d", tc.perCold, got, tc.want)
		}
	}
}
