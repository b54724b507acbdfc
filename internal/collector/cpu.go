package collector

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/maptrace/maptrace/internal/cpuprof"
	"github.com/maptrace/maptrace/internal/report"
)

// topCPUSites bounds the map call sites a report lists by CPU time.
const topCPUSites = 50

// CPU turns the sampler's counts into the report's CPU time, with the map
// call sites by samples, most first.
func CPU(res *cpuprof.Result, sym *Symbolizer) report.CPU {
	c := report.CPU{
		Hz:         res.Hz,
		Samples:    res.Samples,
		Seconds:    res.Seconds(res.Samples),
		MapSamples: res.Map,
		MapSeconds: res.Seconds(res.Map),
	}
	for pc, n := range res.Sites {
		c.Sites = append(c.Sites, report.CPUSite{Caller: pc, Samples: n, Seconds: res.Seconds(n)})
	}
	slices.SortFunc(c.Sites, func(a, b report.CPUSite) int {
		if a.Samples != b.Samples {
			return cmp.Compare(b.Samples, a.Samples)
		}
		return cmp.Compare(a.Caller, b.Caller)
	})
	c.Sites = c.Sites[:min(len(c.Sites), topCPUSites)]
	for i := range c.Sites {
		c.Sites[i].Frame = fmt.Sprintf("%#x", c.Sites[i].Caller)
		if fs := sym.Return(c.Sites[i].Caller); len(fs) > 0 {
			c.Sites[i].Frame = fs[0]
		}
	}
	return c
}
