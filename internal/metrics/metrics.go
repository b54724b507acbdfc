// Package metrics exports a running trace as Prometheus metrics: the
// maptrace_* series that docs/metrics.md lists, served at /metrics while
// maptrace attach --listen runs.
//
// Every scrape reads the trace's cumulative report (at most once a second)
// and turns it into constant metrics. The counters only grow while one trace
// runs, because the report's counts are totals since attach. Labels never
// carry a pid or a goroutine id, and their values are bounded: the top
// TopMutexes mutexes, TopMaps maps and TopKeys keys per map keep their own
// label values, the rest are summed into the label value Other, so that sums
// over a metric are the report's totals.
package metrics

import (
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maptrace/maptrace/internal/report"
)

// Source gives the trace's cumulative report so far (counts since attach).
type Source interface {
	Snapshot() (*report.Report, error)
	// HashedKey is a map key, as the report shows it, as --keys hash
	// shows it in the same trace.
	HashedKey(key string) string
}

// Label bounds.
const (
	TopMutexes = 20 // mutexes with their own mutex label value
	TopMaps    = 20 // maps with their own map label value (ops and hot keys)
	TopRaces   = 20 // maps with their own map label value in the race counter
	TopKeys    = 10 // keys with their own key label value, per map
	// Other is the label value of everything beyond the top K.
	Other = "other"
	// MinInterval is how long a snapshot serves scrapes before the next one.
	MinInterval = time.Second
	// Key modes of NewHandler, as --keys names them.
	KeysRaw  = "raw"
	KeysHash = "hash"
	KeysNone = "none"
)

// The metric names, which docs/metrics.md lists: add, never rename.
const (
	nameMutexWait        = "maptrace_mutex_wait_seconds"
	nameMutexContentions = "maptrace_mutex_contentions_total"
	nameMapOps           = "maptrace_map_ops_total"
	nameHotKeyOps        = "maptrace_map_hot_key_ops_total"
	nameRaces            = "maptrace_map_races_total"
	nameProbeHits        = "maptrace_probe_hits_total"
	nameOverheadRatio    = "maptrace_overhead_ratio"
	nameSamplingFraction = "maptrace_map_sampling_fraction"
	nameTargetInfo       = "maptrace_target_info"
	nameFindings         = "maptrace_findings"
	nameTargetUp         = "maptrace_target_up"
)

var (
	descMutexWait = prometheus.NewDesc(nameMutexWait,
		"Time goroutines spent waiting for a contended mutex, by mutex (variable name or address), kind and the function that waited most.",
		[]string{"mutex", "kind", "site"}, nil)
	descMutexContentions = prometheus.NewDesc(nameMutexContentions,
		"Contended acquisitions of a mutex (waits), by mutex, kind and the function that waited most.",
		[]string{"mutex", "kind", "site"}, nil)
	descMapOps = prometheus.NewDesc(nameMapOps,
		"Map operations by map (variable name or address) and op (read, write, delete, iterate); scaled estimates when maps are sampled.",
		[]string{"map", "op"}, nil)
	descHotKeyOps = prometheus.NewDesc(nameHotKeyOps,
		"Operations on a map's hot keys, keys shown per --keys; the rest of a map's keys are key=\"other\".",
		[]string{"map", "key"}, nil)
	descRaces = prometheus.NewDesc(nameRaces,
		"Concurrent map accesses: two goroutines in one map at once, one of them writing.",
		[]string{"map", "kind"}, nil)
	descProbeHits = prometheus.NewDesc(nameProbeHits,
		"Times the probes ran in the target.",
		[]string{"probe"}, nil)
	descOverheadRatio = prometheus.NewDesc(nameOverheadRatio,
		"Estimated share of the target's CPU time spent in maptrace's probes.",
		nil, nil)
	descSamplingFraction = prometheus.NewDesc(nameSamplingFraction,
		"Share of the target's map operations the map probes saw (1: all; below 1, map counts are scaled estimates).",
		nil, nil)
	descTargetInfo = prometheus.NewDesc(nameTargetInfo,
		"The traced program: its executable and Go version (always 1).",
		[]string{"exe", "go_version"}, nil)
	descFindings = prometheus.NewDesc(nameFindings,
		"Findings of the trace so far, by severity.",
		[]string{"severity"}, nil)
	descTargetUp = prometheus.NewDesc(nameTargetUp,
		"1 if the trace's report could be read at the last scrape, else 0.",
		nil, nil)
)

// NewHandler returns the /metrics handler: a collector on its own registry
// that reads src.Snapshot() at most once per MinInterval. keys is how hot
// keys become label values: KeysRaw as the report shows them, KeysHash
// hashed as --keys hash shows them, KeysNone not at all (no hot key series).
// Anything else is KeysHash: a scraper sees raw keys only when asked to.
func NewHandler(src Source, keys string) http.Handler {
	return newCollector(src, keys).handler()
}

func (c *collector) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// collector is a prometheus.Collector over a Source.
type collector struct {
	src  Source
	keys string
	now  func() time.Time

	mu  sync.Mutex
	at  time.Time // when r and err were read; zero: never
	r   *report.Report
	err error
}

func newCollector(src Source, keys string) *collector {
	return &collector{src: src, keys: keys, now: time.Now}
}

// Describe sends the fixed set of descriptors.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMutexWait, descMutexContentions, descMapOps, descHotKeyOps,
		descRaces, descProbeHits, descOverheadRatio, descSamplingFraction, descTargetInfo, descFindings, descTargetUp} {
		ch <- d
	}
}

// snapshot returns the cached report, reading a new one when the cached one
// is MinInterval old.
func (c *collector) snapshot() (*report.Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.at.IsZero() || now.Sub(c.at) >= MinInterval || now.Before(c.at) {
		c.r, c.err = c.src.Snapshot()
		c.at = now
	}
	return c.r, c.err
}

// Collect turns the snapshot into metrics. When the snapshot fails only
// maptrace_target_up 0 is sent: a partial report could make counters shrink.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r, err := c.snapshot()
	if err != nil || r == nil {
		ch <- gauge(descTargetUp, 0)
		return
	}
	ch <- gauge(descTargetUp, 1)
	emit := func(m prometheus.Metric, err error) {
		if err != nil {
			m = prometheus.NewInvalidMetric(descTargetUp, err)
		}
		ch <- m
	}
	emit(prometheus.NewConstMetric(descTargetInfo, prometheus.GaugeValue, 1,
		label(r.Target.Exe), label(r.Target.GoVersion)))
	// One probe value for now: the report has the total only. Per-probe
	// counts (the collector's Hits per probe name) can be added as more
	// values of the probe label without changing the metric.
	emit(prometheus.NewConstMetric(descProbeHits, prometheus.CounterValue, float64(r.Overhead.ProbeHits), "all"))
	ch <- gauge(descOverheadRatio, r.Overhead.Ratio)
	ch <- gauge(descSamplingFraction, r.Overhead.MapSamplingFraction)
	for _, f := range findings(r.Findings) {
		emit(prometheus.NewConstMetric(descFindings, prometheus.GaugeValue, float64(f.n), f.severity))
	}
	for _, m := range mutexFold(r.Mutexes) {
		emit(prometheus.NewConstHistogram(descMutexWait, m.count, m.sum, m.buckets(), m.mutex, m.kind, m.site))
		emit(prometheus.NewConstMetric(descMutexContentions, prometheus.CounterValue, float64(m.contentions), m.mutex, m.kind, m.site))
	}
	for _, m := range mapOpSeries(r.Maps) {
		emit(prometheus.NewConstMetric(descMapOps, prometheus.CounterValue, float64(m.n), m.labels[0], m.labels[1]))
	}
	if c.keys != KeysNone {
		hash := c.src.HashedKey
		if c.keys == KeysRaw {
			hash = nil
		}
		for _, k := range hotKeySeries(r.Maps, hash) {
			emit(prometheus.NewConstMetric(descHotKeyOps, prometheus.CounterValue, float64(k.n), k.labels[0], k.labels[1]))
		}
	}
	for _, rc := range raceSeries(r.Races) {
		emit(prometheus.NewConstMetric(descRaces, prometheus.CounterValue, float64(rc.n), rc.labels[0], rc.labels[1]))
	}
}

func gauge(d *prometheus.Desc, v float64) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}

// label makes s a valid label value: raw map keys may be any bytes.
func label(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

type severityCount struct {
	severity string
	n        int
}

// findings counts findings by severity; the three known severities are
// always there, so dashboards see zeros rather than no data.
func findings(fs []report.Finding) []severityCount {
	n := map[string]int{report.SeverityCritical: 0, report.SeverityWarning: 0, report.SeverityInfo: 0}
	for _, f := range fs {
		n[label(f.Severity)]++
	}
	out := make([]severityCount, 0, len(n))
	for s, k := range n {
		out = append(out, severityCount{s, k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].severity < out[j].severity })
	return out
}

// mutexSeries is one label set of the mutex metrics, possibly the sum of
// several mutexes.
type mutexSeries struct {
	mutex, kind, site string
	contentions       uint64
	waitNS            uint64
	sum               float64 // seconds
	count             uint64
	hist              []uint64 // log2 buckets, as report.Mutex.Histogram
}

// buckets turns the log2 histogram into Prometheus's cumulative buckets:
// bucket i holds waits in [2^i, 2^(i+1)) ns, so its upper bound is 2^(i+1) ns.
func (m *mutexSeries) buckets() map[float64]uint64 {
	out := make(map[float64]uint64, len(m.hist))
	var cum uint64
	for i, n := range m.hist {
		cum += n
		out[math.Ldexp(1, i+1)/1e9] = cum
	}
	return out
}

func (m *mutexSeries) add(x report.Mutex) {
	m.contentions += x.Contentions
	m.waitNS += x.WaitNS
	for len(m.hist) < len(x.Histogram) {
		m.hist = append(m.hist, 0)
	}
	var inHist uint64
	for i, n := range x.Histogram {
		m.hist[i] += n
		inHist += n
	}
	// count is the contentions; should the histogram hold more waits than
	// that, count covers them so that no bucket exceeds it.
	m.count += max(x.Contentions, inHist)
	m.sum = float64(m.waitNS) / 1e9
}

// Site is the function, outside the runtime and package sync, that waited
// longest for a mutex: the first user frame of its top waiter stack.
func Site(m report.Mutex) string {
	if len(m.Waiters) == 0 {
		return ""
	}
	top := m.Waiters[0]
	for _, w := range m.Waiters[1:] {
		if w.WaitNS > top.WaitNS {
			top = w
		}
	}
	f := report.UserFrames(top.Stack)
	if len(f) == 0 {
		return ""
	}
	return report.FrameFunc(f[0])
}

// mutexName is a mutex's label value: its variable, else its address.
func mutexName(m report.Mutex) string {
	if m.Name != "" {
		return m.Name
	}
	return m.Address
}

// mutexFold keeps the TopMutexes mutexes with the most wait under their
// own labels and sums the rest into mutex="other", site="other" per kind.
func mutexFold(ms []report.Mutex) []*mutexSeries {
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := ms[order[a]], ms[order[b]]
		if x.WaitNS != y.WaitNS {
			return x.WaitNS > y.WaitNS
		}
		return x.Contentions > y.Contentions
	})
	type key struct{ mutex, kind, site string }
	by := map[key]*mutexSeries{}
	var out []*mutexSeries
	for rank, i := range order {
		m := ms[i]
		k := key{label(mutexName(m)), label(m.Kind), label(Site(m))}
		if rank >= TopMutexes {
			k.mutex, k.site = Other, Other
		}
		s := by[k]
		if s == nil {
			s = &mutexSeries{mutex: k.mutex, kind: k.kind, site: k.site}
			by[k] = s
			out = append(out, s)
		}
		s.add(m)
	}
	return out
}

// counterSeries is one label set of a two-label counter.
type counterSeries struct {
	labels [2]string
	n      uint64
}

// series sums counts by label set, keeping the order of first appearance.
type series struct {
	by  map[[2]string]*counterSeries
	out []*counterSeries
}

func (s *series) add(a, b string, n uint64) {
	if s.by == nil {
		s.by = map[[2]string]*counterSeries{}
	}
	k := [2]string{label(a), label(b)}
	c := s.by[k]
	if c == nil {
		c = &counterSeries{labels: k}
		s.by[k] = c
		s.out = append(s.out, c)
	}
	c.n += n
}

// mapName is a map row's label value: its variable, else its class.
func mapName(m report.Map) string { return m.ID() }

func mapOps(m report.Map) uint64 { return m.Reads + m.Writes + m.Deletes + m.Iterations }

// topMaps ranks maps by operations and names each: its own label value for
// the first TopMaps, Other for the rest.
func topMaps(ms []report.Map) (order []int, names []string) {
	order = make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return mapOps(ms[order[a]]) > mapOps(ms[order[b]]) })
	names = make([]string, len(ms))
	for rank, i := range order {
		names[i] = mapName(ms[i])
		if rank >= TopMaps {
			names[i] = Other
		}
	}
	return order, names
}

// mapOpSeries is maptrace_map_ops_total: every op of every map, the maps
// beyond the top TopMaps summed into map="other".
func mapOpSeries(ms []report.Map) []*counterSeries {
	order, names := topMaps(ms)
	var s series
	for _, i := range order {
		m := ms[i]
		s.add(names[i], report.OpRead, m.Reads)
		s.add(names[i], report.OpWrite, m.Writes)
		s.add(names[i], report.OpDelete, m.Deletes)
		s.add(names[i], report.OpIterate, m.Iterations)
	}
	return s.out
}

// hotKeySeries is maptrace_map_hot_key_ops_total: the TopKeys keys of each
// of the top maps, their other keys as key="other"; the maps beyond the top
// have all their key counts under map="other", key="other". hash, if set,
// hashes each key.
func hotKeySeries(ms []report.Map, hash func(string) string) []*counterSeries {
	order, names := topMaps(ms)
	var s series
	for _, i := range order {
		m := ms[i]
		keys := append([]report.HotKey(nil), m.HotKeys...)
		sort.SliceStable(keys, func(a, b int) bool {
			// the collector's own fold ("other") goes last
			if (keys[a].Key == Other) != (keys[b].Key == Other) {
				return keys[b].Key == Other
			}
			return keys[a].Count > keys[b].Count
		})
		for j, k := range keys {
			key := k.Key
			switch {
			case names[i] == Other || j >= TopKeys || key == Other:
				key = Other
			case hash != nil:
				key = hash(key)
			}
			s.add(names[i], key, k.Count)
		}
	}
	return s.out
}

// raceSeries is maptrace_map_races_total by map and kind, the maps beyond
// the TopRaces with the most races summed into map="other".
func raceSeries(rs []report.Race) []*counterSeries {
	byMap := map[string]uint64{}
	var maps []string
	for _, r := range rs {
		name := raceMap(r)
		if _, ok := byMap[name]; !ok {
			maps = append(maps, name)
		}
		byMap[name] += r.Count
	}
	sort.SliceStable(maps, func(a, b int) bool { return byMap[maps[a]] > byMap[maps[b]] })
	top := map[string]bool{}
	for i, m := range maps {
		if i < TopRaces {
			top[m] = true
		}
	}
	var s series
	for _, r := range rs {
		name := raceMap(r)
		if !top[name] {
			name = Other
		}
		s.add(name, r.Kind, r.Count)
	}
	return s.out
}

func raceMap(r report.Race) string {
	switch {
	case r.Name != "":
		return r.Name
	case r.MapID != "": // a heap map: its class, as in maptrace_map_ops_total
		return r.MapID
	}
	return r.Map
}
