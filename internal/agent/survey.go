package agent

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/maptrace/maptrace/internal/symbols"
)

// SurveyRow is one process the survey lists.
type SurveyRow struct {
	Process
	Trace  bool   // whether the agent would trace it
	Reason string // why, or why not
}

// Survey looks at every process once, as the agent's scan does, and traces
// none: it lists every Go process, and each process the patterns select
// that is not one, with whether the agent would trace it and why. A Go
// process the agent would trace has its executable read in full, to check
// that maptrace supports it.
func (a *Agent) Survey() ([]SurveyRow, error) {
	list, err := pids()
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	linked := lazyLinks()
	checked := map[symbols.FileID]error{} // per executable
	var rows []SurveyRow
	for _, pid := range list {
		p, ok := identify(pid)
		if !ok || !a.bins.buildInfo(&p) {
			continue
		}
		v := a.judge(&p, linked)
		if !p.IsGo() && v.fail == "" {
			continue // neither Go nor selected
		}
		if v.trace {
			err, done := checked[p.File]
			if !done {
				var bin interface{ CheckSupported() error }
				if bin, err = a.bins.acquire(&p); err == nil {
					err = bin.CheckSupported()
					a.bins.release(p.File)
				}
				checked[p.File] = err
			}
			if err != nil {
				v = verdict{reason: failDetail(&p, err)}
			}
		}
		rows = append(rows, SurveyRow{Process: p, Trace: v.trace, Reason: v.reason})
	}
	return rows, nil
}

// WriteSurvey writes the survey as a table.
func WriteSurvey(w io.Writer, rows []SurveyRow) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tTRACE\tGO\tEXE\tMODULE\tCONTAINER\tPOD\tWHY")
	for _, r := range rows {
		yes := "no"
		if r.Trace {
			yes = "yes"
		}
		pod := ""
		if r.Pod != "" {
			pod = r.Namespace + "/" + r.Pod
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.PID, yes, dash(r.GoVersion), r.Exe, dash(r.Module), dash(short(r.ContainerID)), dash(pod), r.Reason)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
