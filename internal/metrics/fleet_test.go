package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
)

// scaled is sample() with every count times k, overhead and sampling set.
func scaled(k uint64, overhead, fraction float64) *report.Report {
	r := sample()
	r.Overhead.ProbeHits *= k
	r.Overhead.Ratio, r.Overhead.MapSamplingFraction = overhead, fraction
	for i := range r.Mutexes {
		m := &r.Mutexes[i]
		m.Contentions *= k
		m.WaitNS *= k
		for j := range m.Histogram {
			m.Histogram[j] *= k
		}
		for j := range m.Waiters {
			m.Waiters[j].Contentions *= k
			m.Waiters[j].WaitNS *= k
		}
	}
	for i := range r.Maps {
		r.Maps[i].Reads *= k
		r.Maps[i].CPUSeconds *= float64(k)
	}
	r.CPU.Seconds *= float64(k)
	return r
}

func svc(service, container string, more ...string) map[string]string {
	l := map[string]string{LabelService: service, LabelContainerID: container}
	for i := 0; i+1 < len(more); i += 2 {
		l[more[i]] = more[i+1]
	}
	return l
}

func TestFleetGroups(t *testing.T) {
	f := NewFleet("raw", LabelService, LabelContainerID)
	a := f.Add(&fakeSource{r: scaled(1, 0.01, 0.5)}, "app", "")
	b := f.Add(&fakeSource{r: scaled(2, 0.03, 0.25)}, "app", "")
	c := f.Add(&fakeSource{r: scaled(10, 0.02, 1)}, "app", "c0ffee")
	f.AttachFailed(FailNotGo)
	h := f.Handler()
	fams, _ := scrape(t, h)

	mu := func(s, c string) map[string]string {
		return svc(s, c, "mutex", "main.mu", "kind", "mutex", "site", "main.lockMutex")
	}
	// app outside containers is a and b summed; in the container, c.
	eq(t, "contentions of app", value(t, fams, "maptrace_mutex_contentions_total", mu("app", "")), 3*3)
	eq(t, "contentions of app in c0ffee", value(t, fams, "maptrace_mutex_contentions_total", mu("app", "c0ffee")), 3*10)
	if got := find(t, fams, "maptrace_mutex_wait_seconds", mu("app", "")).GetHistogram().GetSampleCount(); got != 9 {
		t.Errorf("wait count of app = %d, want 9", got)
	}
	eq(t, "reads of app", value(t, fams, "maptrace_map_ops_total", svc("app", "", "map", "main.sessions", "op", "read")), 3000)
	eq(t, "probe hits of app", value(t, fams, "maptrace_probe_hits_total", svc("app", "", "probe", "all")), 3*1234)
	eq(t, "map CPU of app", value(t, fams, "maptrace_map_cpu_seconds_total", svc("app", "", "map", "main.sessions")), 3*0.75)
	eq(t, "CPU of app", value(t, fams, "maptrace_target_cpu_seconds_total", svc("app", "")), 3*3.5)
	eq(t, "overhead of app: the highest", value(t, fams, "maptrace_overhead_ratio", svc("app", "")), 0.03)
	eq(t, "sampling of app: the lowest", value(t, fams, "maptrace_map_sampling_fraction", svc("app", "")), 0.25)
	eq(t, "critical findings of app", value(t, fams, "maptrace_findings", svc("app", "", "severity", "critical")), 2)
	eq(t, "app up", value(t, fams, "maptrace_target_up", svc("app", "")), 1)
	eq(t, "targets", value(t, fams, "maptrace_agent_targets", nil), 3)
	eq(t, "attaches", value(t, fams, "maptrace_agent_attaches_total", nil), 3)
	eq(t, "not-go failures", value(t, fams, "maptrace_agent_attach_failures_total", map[string]string{"reason": FailNotGo}), 1)
	eq(t, "exited failures", value(t, fams, "maptrace_agent_attach_failures_total", map[string]string{"reason": FailExited}), 0)
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			if l := labelsOf(m); l["pid"] != "" {
				t.Errorf("%s has a pid label", name)
			}
		}
	}

	// b ends with more counted: app keeps a's live counts plus b's final
	// ones, so no counter goes down.
	b.Remove(scaled(3, 0.03, 0.25))
	f.now = func() time.Time { return time.Now().Add(time.Hour) } // past the snapshot cache
	fams, _ = scrape(t, h)
	eq(t, "contentions of app after b ended", value(t, fams, "maptrace_mutex_contentions_total", mu("app", "")), 3*4)
	eq(t, "CPU of app after b ended", value(t, fams, "maptrace_target_cpu_seconds_total", svc("app", "")), 4*3.5)
	eq(t, "overhead of app after b ended: a's", value(t, fams, "maptrace_overhead_ratio", svc("app", "")), 0.01)
	eq(t, "targets after b ended", value(t, fams, "maptrace_agent_targets", nil), 2)

	// The group's last trace ends: its series go, and the other group's stay.
	a.Remove(nil)
	f.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	fams, _ = scrape(t, h)
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			if l := labelsOf(m); l[LabelService] == "app" && l[LabelContainerID] == "" {
				t.Errorf("%s%v: still there after the group's last trace ended", name, l)
			}
		}
	}
	eq(t, "contentions of app in c0ffee", value(t, fams, "maptrace_mutex_contentions_total", mu("app", "c0ffee")), 3*10)
	c.Remove(nil)
	c.Remove(nil) // twice is harmless
	fams, _ = scrape(t, h)
	if n := count(fams, "maptrace_target_up"); n != 0 {
		t.Errorf("%d target_up series with no traces", n)
	}
	eq(t, "targets at the end", value(t, fams, "maptrace_agent_targets", nil), 0)
}

// A trace whose report cannot be read marks its group down and keeps its
// last counts in the sums.
func TestFleetReadError(t *testing.T) {
	f := NewFleet("raw", LabelService, LabelContainerID)
	src := &fakeSource{r: scaled(1, 0.01, 1)}
	f.Add(src, "app", "")
	f.Add(&fakeSource{r: scaled(1, 0.01, 1)}, "app", "")
	h := f.Handler()
	scrape(t, h)
	src.mu.Lock()
	src.r, src.err = nil, errors.New("gone")
	src.mu.Unlock()
	f.now = func() time.Time { return time.Now().Add(time.Hour) }
	fams, _ := scrape(t, h)
	eq(t, "up", value(t, fams, "maptrace_target_up", svc("app", "")), 0)
	eq(t, "probe hits", value(t, fams, "maptrace_probe_hits_total", svc("app", "", "probe", "all")), 2*1234)
}
