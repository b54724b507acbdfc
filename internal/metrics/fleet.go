package metrics

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maptrace/maptrace/internal/report"
)

// The labels maptrace agent adds to every series.
const (
	LabelService     = "service"      // the executable's base name
	LabelContainerID = "container_id" // the container's ID, empty outside containers
	// Kubernetes' names of the container's pod and of the container, from
	// containerd's CRI labels; empty outside Kubernetes.
	LabelNamespace = "namespace"
	LabelPod       = "pod"
	LabelContainer = "container"
)

// Attach failure reasons, the values of maptrace_agent_attach_failures_total's
// reason label.
const (
	FailNotGo       = "not-go"      // a matched process is not a Go program
	FailUnsupported = "unsupported" // a Go version or architecture maptrace cannot trace
	FailExited      = "exited"      // the process exited, or its pid was reused, while attaching
	FailError       = "error"       // anything else: the log line says what
)

var failReasons = []string{FailError, FailExited, FailNotGo, FailUnsupported}

// Agent self-metrics, which docs/metrics.md lists with the others.
const (
	nameAgentTargets  = "maptrace_agent_targets"
	nameAgentAttaches = "maptrace_agent_attaches_total"
	nameAgentFailures = "maptrace_agent_attach_failures_total"
)

// Fleet exports the traces of many processes on one /metrics, as
// maptrace agent does: every series carries the label values its trace was
// added with (service, container_id, namespace, pod, container). Traces
// added with the same values are one group, whose series are summed as if one process: counters and
// histograms add up; maptrace_overhead_ratio is the group's highest and
// maptrace_map_sampling_fraction its lowest; findings add up; target_info
// has one series per executable and Go version; target_up is 0 if any
// trace's report could not be read (its last one is used meanwhile). The
// label bounds apply per trace, before the sum.
//
// A trace removed from a group that still has others leaves its final
// counts in the sums, so that a group's counters never go down while any of
// its processes runs; the group's series go when its last trace does.
type Fleet struct {
	d      *descs
	labels int
	keys   string
	now    func() time.Time

	targets, attaches, failures *prometheus.Desc

	mu       sync.Mutex
	groups   map[string]*group
	attached uint64
	failed   map[string]uint64
}

// group is the traces under one set of label values.
type group struct {
	values  []string
	members map[*Member]bool
	retired *set // the counts of the traces removed; replaced, never changed
}

// Member is one trace of a Fleet.
type Member struct {
	f   *Fleet
	g   *group
	src Source

	mu   sync.Mutex
	at   time.Time // of the last read; zero: never
	last *set      // the last report read, nil if none
	up   bool      // whether the last read succeeded
}

// NewFleet returns an exporter for many traces whose series carry the
// labels named; keys is --keys, as for NewHandler.
func NewFleet(keys string, labels ...string) *Fleet {
	return &Fleet{
		d:      newDescs(labels),
		labels: len(labels),
		keys:   keys,
		now:    time.Now,
		groups: map[string]*group{},
		failed: map[string]uint64{},
		targets: prometheus.NewDesc(nameAgentTargets,
			"Processes maptrace agent traces now.", nil, nil),
		attaches: prometheus.NewDesc(nameAgentAttaches,
			"Traces maptrace agent has started.", nil, nil),
		failures: prometheus.NewDesc(nameAgentFailures,
			"Processes maptrace agent set out to trace and could not, by reason.", []string{"reason"}, nil),
	}
}

// Add exports the trace src under the label values, in the order of the
// labels given to NewFleet.
func (f *Fleet) Add(src Source, values ...string) *Member {
	vs := make([]string, f.labels)
	for i := range vs {
		if i < len(values) {
			vs[i] = label(values[i])
		}
	}
	key := strings.Join(vs, "\x00")
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[key]
	if g == nil {
		g = &group{values: vs, members: map[*Member]bool{}}
		f.groups[key] = g
	}
	m := &Member{f: f, g: g, src: src}
	g.members[m] = true
	f.attached++
	return m
}

// Remove takes the trace off /metrics; final is its final report (nil: the
// last one read), whose counts stay in its group's sums while the group has
// other traces.
func (m *Member) Remove(final *report.Report) {
	var fs *set
	if final != nil {
		fs = newSet(final, m.f.keys, nil)
	} else {
		m.mu.Lock()
		fs = m.last
		m.mu.Unlock()
	}
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	g := m.g
	if !g.members[m] {
		return
	}
	delete(g.members, m)
	if len(g.members) == 0 {
		delete(f.groups, strings.Join(g.values, "\x00"))
		return
	}
	if fs != nil {
		r := &set{}
		if g.retired != nil {
			r.addCounters(g.retired)
		}
		r.addCounters(fs)
		g.retired = r
	}
}

// AttachFailed counts a process that could not be traced, for one of the
// Fail* reasons.
func (f *Fleet) AttachFailed(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[reason]++
}

// read returns the member's series, read again once MinInterval old.
func (m *Member) read() (*set, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := m.f.now(); m.at.IsZero() || now.Sub(m.at) >= MinInterval || now.Before(m.at) {
		m.at = now
		r, err := m.src.Snapshot()
		m.up = err == nil && r != nil
		if m.up {
			m.last = newSet(r, m.f.keys, nil)
		}
	}
	return m.last, m.up
}

// Handler serves the fleet's metrics.
func (f *Fleet) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(f)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Describe sends the trace metrics' descriptors, then the agent's.
func (f *Fleet) Describe(ch chan<- *prometheus.Desc) {
	f.d.describe(ch)
	ch <- f.targets
	ch <- f.attaches
	ch <- f.failures
}

// Collect sends every group's series and the agent's own.
func (f *Fleet) Collect(ch chan<- prometheus.Metric) {
	type snapshot struct {
		values  []string
		members []*Member
		retired *set
	}
	f.mu.Lock()
	groups := make([]snapshot, 0, len(f.groups))
	targets := 0
	for _, g := range f.groups {
		s := snapshot{values: g.values, retired: g.retired}
		for m := range g.members {
			s.members = append(s.members, m)
		}
		targets += len(s.members)
		groups = append(groups, s)
	}
	attached := f.attached
	failed := make(map[string]uint64, len(f.failed))
	for k, n := range f.failed {
		failed[k] = n
	}
	f.mu.Unlock()

	// Snapshots are read outside the lock: each takes milliseconds.
	sort.Slice(groups, func(i, j int) bool {
		return strings.Join(groups[i].values, "\x00") < strings.Join(groups[j].values, "\x00")
	})
	for _, g := range groups {
		sum := &set{up: true}
		for _, m := range g.members {
			s, up := m.read()
			sum.up = sum.up && up
			if s != nil {
				sum.addLive(s)
			}
		}
		if g.retired != nil && sum.info != nil {
			sum.addCounters(g.retired)
		}
		sum.emit(ch, f.d, g.values)
	}
	ch <- gauge(f.targets, float64(targets))
	ch <- prometheus.MustNewConstMetric(f.attaches, prometheus.CounterValue, float64(attached))
	reasons := append([]string(nil), failReasons...)
	for k := range failed {
		if !slices.Contains(reasons, k) {
			reasons = append(reasons, k)
		}
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(f.failures, prometheus.CounterValue, float64(failed[r]), r)
	}
}
