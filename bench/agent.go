package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/maptrace/maptrace/internal/report"
)

// agentMode traces nats-server as a node's always-on agent does: with its
// defaults (mutex and maps, a 1% budget per process).
var agentMode = TraceMode{Name: "`maptrace agent` (always on, --overhead 1)", Agent: true}

// agentDuring runs work while `maptrace agent` traces the processes of exe,
// and returns what the agent cost; the report is the agent's /report over
// the work's first whole seconds.
func agentDuring(bin, exe string, seconds float64, work func() error) (*TraceResult, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t := &Tracer{cmd: exec.Command(bin, "agent", "--listen", addr, "--match", exe)}
	if err := t.run(": tracing " + exe); err != nil {
		return nil, fmt.Errorf("maptrace agent --match %s: %w", exe, err)
	}
	type got struct {
		r   *report.Report
		b   []byte
		err error
	}
	rep := make(chan got, 1)
	go func() {
		r, b, err := agentReport(addr, filepath.Base(exe), max(1, int(seconds)))
		rep <- got{r, b, err}
	}()
	if err := work(); err != nil {
		t.Kill()
		return nil, err
	}
	g := <-rep
	if g.err != nil {
		t.Kill()
		return nil, g.err
	}
	res, err := t.Stop()
	if err != nil {
		return nil, err
	}
	res.Report, res.JSON = g.r, g.b
	return res, nil
}

// agentReport asks the agent for the report of service over the next
// seconds.
func agentReport(addr, service string, seconds int) (*report.Report, []byte, error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/report?service=%s&seconds=%d", addr, service, seconds))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("agent /report: %s: %s", resp.Status, b)
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, fmt.Errorf("agent /report: %w", err)
	}
	return &r, b, nil
}
