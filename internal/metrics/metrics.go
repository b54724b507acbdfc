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
	nameShards           = "maptrace_map_shards"
	nameShardImbalance   = "maptrace_map_shard_imbalance"
	nameProbeHits        = "maptrace_probe_hits_total"
	nameOverheadRatio    = "maptrace_overhead_ratio"
	nameSamplingFraction = "maptrace_map_sampling_fraction"
	nameTargetInfo       = "maptrace_target_info"
	nameFindings         = "maptrace_findings"
	nameTargetUp         = "maptrace_target_up"
	nameMapCPU           = "maptrace_map_cpu_seconds_total"
	nameTargetCPU        = "maptrace_target_cpu_seconds_total"
)

// descs are the descriptors of the trace metrics, with the label names
// every series of an exporter adds (Fleet's; none for NewHandler).
type descs struct {
	mutexWait, mutexContentions, mapOps, hotKeyOps, races, shards, shardImbalance, probeHits,
	overheadRatio, samplingFraction, targetInfo, findings, targetUp,
	mapCPU, targetCPU *prometheus.Desc
}

func newDescs(extra []string) *descs {
	with := func(labels ...string) []string { return append(labels, extra...) }
	return &descs{
		mutexWait: prometheus.NewDesc(nameMutexWait,
			"Time goroutines spent waiting for a contended mutex, by mutex (variable name or address), kind and the function that waited most.",
			with("mutex", "kind", "site"), nil),
		mutexContentions: prometheus.NewDesc(nameMutexContentions,
			"Contended acquisitions of a mutex (waits), by mutex, kind and the function that waited most.",
			with("mutex", "kind", "site"), nil),
		mapOps: prometheus.NewDesc(nameMapOps,
			"Map operations by map (variable name or address) and op (read, write, delete, iterate); scaled estimates when maps are sampled.",
			with("map", "op"), nil),
		hotKeyOps: prometheus.NewDesc(nameHotKeyOps,
			"Operations on a map's hot keys, keys shown per --keys; the rest of a map's keys are key=\"other\".",
			with("map", "key"), nil),
		races: prometheus.NewDesc(nameRaces,
			"Concurrent map accesses: two goroutines in one map at once, one of them writing.",
			with("map", "kind"), nil),
		shards: prometheus.NewDesc(nameShards,
			"Shards of a sharded map (maps of one type used at the same call sites, each behind its own mutex), by map.",
			with("map"), nil),
		shardImbalance: prometheus.NewDesc(nameShardImbalance,
			"A sharded map's busiest shard's operations over the mean shard's since attach (1 is even), by map.",
			with("map"), nil),
		probeHits: prometheus.NewDesc(nameProbeHits,
			"Times the probes ran in the target.",
			with("probe"), nil),
		overheadRatio: prometheus.NewDesc(nameOverheadRatio,
			"Estimated share of the target's CPU time spent in maptrace's probes.",
			with(), nil),
		samplingFraction: prometheus.NewDesc(nameSamplingFraction,
			"Share of the target's map operations the map probes saw (1: all; below 1, map counts are scaled estimates).",
			with(), nil),
		targetInfo: prometheus.NewDesc(nameTargetInfo,
			"The traced program: its executable and Go version (always 1).",
			with("exe", "go_version"), nil),
		findings: prometheus.NewDesc(nameFindings,
			"Findings of the trace so far, by severity.",
			with("severity"), nil),
		targetUp: prometheus.NewDesc(nameTargetUp,
			"1 if the trace's report could be read at the last scrape, else 0.",
			with(), nil),
		mapCPU: prometheus.NewDesc(nameMapCPU,
			"The target's CPU time in each map's operations (hashing, comparing, growing included), from CPU-clock sampling.",
			with("map"), nil),
		targetCPU: prometheus.NewDesc(nameTargetCPU,
			"The target's CPU time, user and kernel, from CPU-clock sampling.",
			with(), nil),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.mutexWait, d.mutexContentions, d.mapOps, d.hotKeyOps,
		d.races, d.shards, d.shardImbalance, d.probeHits, d.overheadRatio, d.samplingFraction, d.targetInfo, d.findings, d.targetUp,
		d.mapCPU, d.targetCPU} {
		ch <- x
	}
}

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
	d    *descs
	now  func() time.Time

	mu  sync.Mutex
	at  time.Time // when r and err were read; zero: never
	r   *report.Report
	err error
}

func newCollector(src Source, keys string) *collector {
	return &collector{src: src, keys: keys, d: newDescs(nil), now: time.Now}
}

// Describe sends the fixed set of descriptors.
func (c *collector) Describe(ch chan<- *prometheus.Desc) { c.d.describe(ch) }

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
		ch <- gauge(c.d.targetUp, 0)
		return
	}
	// The report shows keys per --keys; /metrics hashes them unless raw
	// keys were asked for.
	hash := c.src.HashedKey
	if c.keys == KeysRaw {
		hash = nil
	}
	s := newSet(r, c.keys, hash)
	s.up = true
	s.emit(ch, c.d, nil)
}

// set is the series of one report, or the sum of several, with their label
// values bounded.
type set struct {
	up        bool
	info      map[[2]string]bool // exe, go_version
	probeHits uint64
	overhead  float64
	fraction  float64
	findings  map[string]int
	mutexes   []*mutexSeries
	mapOps    series
	hotKeys   series
	races     series
	mapCPU    floatSeries
	cpu       float64 // the target's CPU seconds
	// shards and imbalance are the sharded maps' gauges by map label.
	shards, imbalance gauges
}

// newSet makes r's series; keys is --keys (none: no hot key series), hash,
// if set, hashes the report's keys for the labels.
func newSet(r *report.Report, keys string, hash func(string) string) *set {
	s := &set{
		info:      map[[2]string]bool{{label(r.Target.Exe), label(r.Target.GoVersion)}: true},
		probeHits: r.Overhead.ProbeHits,
		overhead:  r.Overhead.Ratio,
		fraction:  r.Overhead.MapSamplingFraction,
		findings:  findings(r.Findings),
		mutexes:   mutexFold(r.Mutexes),
	}
	s.mapOps = mapOpSeries(r.Maps)
	if keys != KeysNone {
		s.hotKeys = hotKeySeries(r.Maps, hash)
	}
	s.races = raceSeries(r.Races)
	s.mapCPU = mapCPUSeries(r.Maps)
	s.cpu = r.CPU.Seconds
	s.shards, s.imbalance = shardGauges(r.Maps)
	return s
}

// addCounters adds o's counters and histograms to s, series by series.
func (s *set) addCounters(o *set) {
	s.probeHits += o.probeHits
	by := map[[3]string]*mutexSeries{}
	for _, m := range s.mutexes {
		by[[3]string{m.mutex, m.kind, m.site}] = m
	}
	for _, m := range o.mutexes {
		k := [3]string{m.mutex, m.kind, m.site}
		x := by[k]
		if x == nil {
			x = &mutexSeries{mutex: m.mutex, kind: m.kind, site: m.site}
			by[k] = x
			s.mutexes = append(s.mutexes, x)
		}
		x.merge(m)
	}
	s.mapOps.addAll(&o.mapOps)
	s.hotKeys.addAll(&o.hotKeys)
	s.races.addAll(&o.races)
	s.mapCPU.addAll(&o.mapCPU)
	s.cpu += o.cpu
	s.shards.maxAll(&o.shards)
	s.imbalance.maxAll(&o.imbalance)
}

// addLive adds another running trace's series to s: its counters, and its
// gauges as the worst of the two (the highest overhead, the lowest
// sampling fraction), its findings summed.
func (s *set) addLive(o *set) {
	s.addCounters(o)
	if s.info == nil {
		s.info, s.findings, s.fraction = map[[2]string]bool{}, map[string]int{}, 1
	}
	for k := range o.info {
		s.info[k] = true
	}
	for k, n := range o.findings {
		s.findings[k] += n
	}
	s.overhead = max(s.overhead, o.overhead)
	s.fraction = min(s.fraction, o.fraction)
}

// emit sends s's metrics, every series with the label values extra added.
func (s *set) emit(ch chan<- prometheus.Metric, d *descs, extra []string) {
	with := func(labels ...string) []string { return append(labels, extra...) }
	emit := func(m prometheus.Metric, err error) {
		if err != nil {
			m = prometheus.NewInvalidMetric(d.targetUp, err)
		}
		ch <- m
	}
	up := 0.0
	if s.up {
		up = 1
	}
	emit(prometheus.NewConstMetric(d.targetUp, prometheus.GaugeValue, up, with()...))
	if s.info == nil { // no report read yet
		return
	}
	info := make([][2]string, 0, len(s.info))
	for k := range s.info {
		info = append(info, k)
	}
	sort.Slice(info, func(i, j int) bool { return info[i][0]+"\x00"+info[i][1] < info[j][0]+"\x00"+info[j][1] })
	for _, k := range info {
		emit(prometheus.NewConstMetric(d.targetInfo, prometheus.GaugeValue, 1, with(k[0], k[1])...))
	}
	// One probe value for now: the report has the total only. Per-probe
	// counts (the collector's Hits per probe name) can be added as more
	// values of the probe label without changing the metric.
	emit(prometheus.NewConstMetric(d.probeHits, prometheus.CounterValue, float64(s.probeHits), with("all")...))
	emit(prometheus.NewConstMetric(d.overheadRatio, prometheus.GaugeValue, s.overhead, with()...))
	emit(prometheus.NewConstMetric(d.samplingFraction, prometheus.GaugeValue, s.fraction, with()...))
	sevs := make([]string, 0, len(s.findings))
	for sev := range s.findings {
		sevs = append(sevs, sev)
	}
	sort.Strings(sevs)
	for _, sev := range sevs {
		emit(prometheus.NewConstMetric(d.findings, prometheus.GaugeValue, float64(s.findings[sev]), with(sev)...))
	}
	for _, m := range s.mutexes {
		emit(prometheus.NewConstHistogram(d.mutexWait, m.count, m.sum, m.buckets(), with(m.mutex, m.kind, m.site)...))
		emit(prometheus.NewConstMetric(d.mutexContentions, prometheus.CounterValue, float64(m.contentions), with(m.mutex, m.kind, m.site)...))
	}
	for _, m := range s.mapOps.out {
		emit(prometheus.NewConstMetric(d.mapOps, prometheus.CounterValue, float64(m.n), with(m.labels[0], m.labels[1])...))
	}
	for _, k := range s.hotKeys.out {
		emit(prometheus.NewConstMetric(d.hotKeyOps, prometheus.CounterValue, float64(k.n), with(k.labels[0], k.labels[1])...))
	}
	for _, rc := range s.races.out {
		emit(prometheus.NewConstMetric(d.races, prometheus.CounterValue, float64(rc.n), with(rc.labels[0], rc.labels[1])...))
	}
	for _, m := range s.mapCPU.order {
		emit(prometheus.NewConstMetric(d.mapCPU, prometheus.CounterValue, s.mapCPU.by[m], with(m)...))
	}
	emit(prometheus.NewConstMetric(d.targetCPU, prometheus.CounterValue, s.cpu, with()...))
	for _, g := range s.shards.out {
		emit(prometheus.NewConstMetric(d.shards, prometheus.GaugeValue, s.shards.v[g], with(g)...))
	}
	for _, g := range s.imbalance.out {
		emit(prometheus.NewConstMetric(d.shardImbalance, prometheus.GaugeValue, s.imbalance.v[g], with(g)...))
	}
}

func gauge(d *prometheus.Desc, v float64) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}

// label makes s a valid label value: raw map keys may be any bytes.
func label(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// findings counts findings by severity; the three known severities are
// always sent, so dashboards see zeros rather than no data.
func findings(fs []report.Finding) map[string]int {
	n := map[string]int{report.SeverityCritical: 0, report.SeverityWarning: 0, report.SeverityInfo: 0}
	for _, f := range fs {
		n[label(f.Severity)]++
	}
	return n
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

// merge adds another series of the same labels.
func (m *mutexSeries) merge(x *mutexSeries) {
	m.contentions += x.contentions
	m.waitNS += x.waitNS
	for len(m.hist) < len(x.hist) {
		m.hist = append(m.hist, 0)
	}
	for i, n := range x.hist {
		m.hist[i] += n
	}
	m.count += x.count
	m.sum = float64(m.waitNS) / 1e9
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
// Its label values are made valid by add.
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

// addAll adds o's series to s.
func (s *series) addAll(o *series) {
	for _, c := range o.out {
		s.add(c.labels[0], c.labels[1], c.n)
	}
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
func mapOpSeries(ms []report.Map) series {
	order, names := topMaps(ms)
	var s series
	for _, i := range order {
		m := ms[i]
		s.add(names[i], report.OpRead, m.Reads)
		s.add(names[i], report.OpWrite, m.Writes)
		s.add(names[i], report.OpDelete, m.Deletes)
		s.add(names[i], report.OpIterate, m.Iterations)
	}
	return s
}

// gauges are one-label gauges, the highest value of each label kept when
// sets are added (two processes' sharded maps of one name: the worse).
type gauges struct {
	v   map[string]float64
	out []string
}

func (g *gauges) max(name string, v float64) {
	if g.v == nil {
		g.v = map[string]float64{}
	}
	name = label(name)
	old, ok := g.v[name]
	if !ok {
		g.out = append(g.out, name)
	}
	g.v[name] = max(old, v)
}

func (g *gauges) maxAll(o *gauges) {
	for _, n := range o.out {
		g.max(n, o.v[n])
	}
}

// shardGauges are maptrace_map_shards and maptrace_map_shard_imbalance: the
// sharded maps among the top TopMaps (a gauge of "other" would mean nothing).
func shardGauges(ms []report.Map) (shards, imbalance gauges) {
	order, names := topMaps(ms)
	for _, i := range order {
		if m := ms[i]; m.Sharded != nil && names[i] != Other {
			shards.max(names[i], float64(m.Maps))
			imbalance.max(names[i], m.Sharded.Imbalance)
		}
	}
	return shards, imbalance
}

// hotKeySeries is maptrace_map_hot_key_ops_total: the TopKeys keys of each
// of the top maps, their other keys as key="other"; the maps beyond the top
// have all their key counts under map="other", key="other". hash, if set,
// hashes each key.
func hotKeySeries(ms []report.Map, hash func(string) string) series {
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
	return s
}

// floatSeries sums seconds by one label value, in the order of first
// appearance.
type floatSeries struct {
	by    map[string]float64
	order []string
}

func (s *floatSeries) add(v string, x float64) {
	if s.by == nil {
		s.by = map[string]float64{}
	}
	v = label(v)
	if _, ok := s.by[v]; !ok {
		s.order = append(s.order, v)
	}
	s.by[v] += x
}

func (s *floatSeries) addAll(o *floatSeries) {
	for _, v := range o.order {
		s.add(v, o.by[v])
	}
}

// mapCPUSeries is maptrace_map_cpu_seconds_total: each of the top maps'
// CPU time (those of maptrace_map_ops_total), the rest under map="other".
func mapCPUSeries(ms []report.Map) floatSeries {
	order, names := topMaps(ms)
	var s floatSeries
	for _, i := range order {
		s.add(names[i], ms[i].CPUSeconds)
	}
	return s
}

// raceSeries is maptrace_map_races_total by map and kind, the maps beyond
// the TopRaces with the most races summed into map="other".
func raceSeries(rs []report.Race) series {
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
	return s
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
