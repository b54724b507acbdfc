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
// call sites by samples, most first. Sites on one line (a range over a map
// calls two map functions there) are one: a reader acts on lines, not on
// return addresses.
func CPU(res *cpuprof.Result, sym *Symbolizer) report.CPU {
	c := report.CPU{
		Hz:         res.Hz,
		Samples:    res.Samples,
		Seconds:    res.Seconds(res.Samples),
		MapSamples: res.Map,
		MapSeconds: res.Seconds(res.Map),
	}
	byFrame := map[string]int{}
	for pc, n := range res.Sites {
		frame := fmt.Sprintf("%#x", pc)
		if fs := sym.Return(pc); len(fs) > 0 {
			frame = fs[0]
		}
		if i, ok := byFrame[frame]; ok {
			c.Sites[i].Samples += n
			continue
		}
		byFrame[frame] = len(c.Sites)
		c.Sites = append(c.Sites, report.CPUSite{Frame: frame, Samples: n})
	}
	slices.SortFunc(c.Sites, func(a, b report.CPUSite) int {
		if a.Samples != b.Samples {
			return cmp.Compare(b.Samples, a.Samples)
		}
		return cmp.Compare(a.Frame, b.Frame)
	})
	c.Sites = c.Sites[:min(len(c.Sites), topCPUSites)]
	for i := range c.Sites {
		c.Sites[i].Seconds = res.Seconds(c.Sites[i].Samples)
	}
	return c
}

// AttributeCPU sets each map row's CPUSeconds from the sampled map CPU of
// the call sites it was used at. callers[i] are maps[i]'s call sites with
// their counts, keyed by the return address, as the samples are; a site
// shared by several rows (a helper used on maps of several classes) is
// split by their counts there. A sampled site no row was probed at (the
// map probes were off, or the site's first stack was walked elsewhere) is
// matched by function instead.
func AttributeCPU(maps []report.Map, callers []map[uint64]uint64, res *cpuprof.Result, sym *Symbolizer) {
	byPC := map[uint64][]int{}
	byFunc := map[string][]int{}
	for i, cs := range callers {
		for pc := range cs {
			byPC[pc] = append(byPC[pc], i)
			if f := sym.Return(pc); len(f) > 0 {
				fn := report.FrameFunc(f[0])
				if !slices.Contains(byFunc[fn], i) {
					byFunc[fn] = append(byFunc[fn], i)
				}
			}
		}
	}
	for pc, n := range res.Sites {
		rows := byPC[pc]
		weight := func(i int) uint64 { return callers[i][pc] }
		if len(rows) == 0 {
			f := sym.Return(pc)
			if len(f) == 0 {
				continue
			}
			rows = byFunc[report.FrameFunc(f[0])]
			weight = func(i int) uint64 { return mapOps(maps[i]) }
		}
		var total uint64
		for _, i := range rows {
			total += weight(i)
		}
		for _, i := range rows {
			share := 1 / float64(len(rows))
			if total > 0 {
				share = float64(weight(i)) / float64(total)
			}
			maps[i].CPUSeconds += share * res.Seconds(n)
		}
	}
}
