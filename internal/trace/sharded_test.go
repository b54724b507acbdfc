package trace_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestSharded traces two sharded maps used with a skewed key, every
// operation probed: one of the target's own (16 shards of a mutex and a
// map) and github.com/orcaman/concurrent-map/v2 (32). Each must be one row
// of kind sharded with the shard count, the busiest shard the one the
// target counted most operations on, exactly, and the skewed key named as
// what makes it busy; the goroutines' own maps of one type are no sharded
// map.
func TestSharded(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		for _, lib := range []string{"own", "cmap"} {
			t.Run(tc+"/"+lib, func(t *testing.T) {
				p := testtarget.Start(t, testtarget.Build(t, "../../testdata/sharded", tc))
				r, answer := mapTrace(t, p, 100, lib+" 20000", 60*time.Second)
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
				if m.Reads+m.Writes != ops || m.Deletes != 0 {
					t.Errorf("%d reads, %d writes, %d deletes; want %d operations", m.Reads, m.Writes, m.Deletes, ops)
				}
				var sum uint64
				for _, s := range sh.Shards {
					sum += s.Ops
				}
				if sum != ops {
					t.Errorf("shard operations add up to %d, want %d", sum, ops)
				}
				if sh.Shards[0].Address != hotShard || sh.Shards[0].Ops != busy {
					t.Errorf("busiest shard %s×%d, the target counted %s×%d", sh.Shards[0].Address, sh.Shards[0].Ops, hotShard, busy)
				}
				if want := float64(busy) * float64(shards) / float64(ops); fmt.Sprintf("%.6f", sh.Imbalance) != fmt.Sprintf("%.6f", want) {
					t.Errorf("imbalance %v, want %v", sh.Imbalance, want)
				}
				if sh.HotKey != "hot" || len(m.HotKeys) == 0 || m.HotKeys[0] != (report.HotKey{Key: "hot", Count: hotOps}) {
					t.Errorf("hot key %q, hot keys %v; want hot×%d", sh.HotKey, m.HotKeys[:min(len(m.HotKeys), 3)], hotOps)
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
