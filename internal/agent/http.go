package agent

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/maptrace/maptrace/internal/findings"
	"github.com/maptrace/maptrace/internal/report"
)

// Report windows: GET /report's seconds, its default and its bounds.
const (
	DefaultReportSeconds = 10
	MaxReportSeconds     = 300
)

// Handler serves the agent's HTTP API: /metrics, every trace's metrics
// (metrics.Fleet), and /report, the JSON report of one traced process over
// a window starting now.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.fleet.Handler())
	mux.HandleFunc("/report", a.serveReport)
	return mux
}

// serveReport answers GET /report?service=S&container_id=C&namespace=NS&pod=P&pid=PID&seconds=N:
// the report of the one traced process the given fields select, for the
// next N seconds. It is the difference of two snapshots of the running
// trace, N seconds apart (report.Diff), with its findings analyzed anew:
// the probes and their budget stay as they are, and /metrics is not
// disturbed.
func (a *Agent) serveReport(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	q := req.URL.Query()
	service, container, pidText := q.Get("service"), q.Get("container_id"), q.Get("pid")
	namespace, podName := q.Get("namespace"), q.Get("pod")
	if service == "" && container == "" && pidText == "" && podName == "" {
		http.Error(w, "give service=NAME, container_id=ID, pod=NAME (with namespace=NS) or pid=PID: the traced process to report on", http.StatusBadRequest)
		return
	}
	pid := 0
	if pidText != "" {
		var err error
		if pid, err = strconv.Atoi(pidText); err != nil || pid <= 0 {
			http.Error(w, fmt.Sprintf("pid=%q: want a process id", pidText), http.StatusBadRequest)
			return
		}
	}
	seconds := DefaultReportSeconds
	if s := q.Get("seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxReportSeconds {
			http.Error(w, fmt.Sprintf("seconds=%q: want a whole number from 1 to %d", s, MaxReportSeconds), http.StatusBadRequest)
			return
		}
		seconds = n
	}
	var sel []string
	for _, f := range [][2]string{{"service", service}, {"container_id", container}, {"namespace", namespace}, {"pod", podName}, {"pid", pidText}} {
		if f[1] != "" {
			sel = append(sel, f[0]+"="+f[1])
		}
	}
	ts := a.sessionsOf(func(p *Process) bool {
		return (service == "" || p.Service() == service) &&
			(container == "" || p.ContainerID == container || len(container) >= minIDPrefix && strings.HasPrefix(p.ContainerID, container)) &&
			(namespace == "" || p.Namespace == namespace) && (podName == "" || p.Pod == podName) &&
			(pid == 0 || p.PID == pid)
	})
	switch len(ts) {
	case 0:
		http.Error(w, "no traced process has "+strings.Join(sel, ", "), http.StatusNotFound)
		return
	case 1:
	default:
		var pids []string
		for _, t := range ts {
			pids = append(pids, strconv.Itoa(t.proc.PID))
		}
		sort.Strings(pids)
		http.Error(w, fmt.Sprintf("%d traced processes have %s (pids %s): add pid=PID", len(ts), strings.Join(sel, ", "), strings.Join(pids, ", ")),
			http.StatusConflict)
		return
	}
	sess := ts[0].sess
	prev, err := sess.Snapshot()
	if err != nil {
		http.Error(w, "read the trace: "+err.Error(), http.StatusInternalServerError)
		return
	}
	t := time.NewTimer(time.Duration(seconds) * time.Second)
	defer t.Stop()
	select {
	case <-req.Context().Done():
		return
	case <-t.C:
	}
	cur, err := sess.Snapshot()
	if err != nil {
		http.Error(w, "read the trace: "+err.Error(), http.StatusInternalServerError)
		return
	}
	d := report.Diff(prev, cur)
	if d.EndedBy == "" { // the trace goes on: this window ended by its length
		d.EndedBy = report.EndedByDuration
	}
	d.Findings = findings.Analyze(d)
	var b bytes.Buffer
	if err := report.WriteJSON(&b, d); err != nil {
		http.Error(w, "write the report: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}
