package main

// Collector is section 4: what maptrace itself costs while it traces.
type Collector struct {
	Rows []CollectorRow
	// NatsAttach is the attach time on nats-server, a binary of NatsBinSize bytes.
	NatsAttach  Dist
	NatsBinSize int64
	// Highest is the row with the highest probe-hit rate.
	Highest int
}

// CollectorRow is maptrace's cost over the traced runs of one configuration.
type CollectorRow struct {
	Name       string
	HitsPerSec Dist // report overhead.probe_hits / window seconds
	CPUPct     Dist // maptrace's CPU time while attached, % of one core
	TotalCPU   Dist // seconds, the whole command (getrusage)
	RSSMB      Dist // peak RSS, MiB (getrusage)
	Attach     Dist // seconds from exec to "attached to pid"
	EstRatio   Dist // report overhead.ratio: estimated probe time / target CPU time
	Sampling   Dist // report overhead.map_sampling_fraction
	Lost       Dist // report overhead.lost_events
}

func collectorRow(name string, rs []*TraceResult) CollectorRow {
	row := CollectorRow{Name: name}
	for _, r := range rs {
		secs := r.Report.Window.Seconds
		if secs > 0 {
			row.HitsPerSec.Add(float64(r.Report.Overhead.ProbeHits) / secs)
		}
		if r.Window > 0 {
			row.CPUPct.Add(100 * r.WindowCPU.Seconds() / r.Window.Seconds())
		}
		row.TotalCPU.Add(r.TotalCPU.Seconds())
		row.RSSMB.Add(float64(r.MaxRSS) / (1 << 20))
		row.Attach.Add(r.Attach.Seconds())
		row.EstRatio.Add(r.Report.Overhead.Ratio)
		row.Sampling.Add(r.Report.Overhead.MapSamplingFraction)
		row.Lost.Add(float64(r.Report.Overhead.LostEvents))
	}
	return row
}

func assembleCollector(slow []*Slowdown, n *Nats) *Collector {
	c := &Collector{}
	for _, s := range slow {
		for _, tr := range s.Traced {
			c.Rows = append(c.Rows, collectorRow(s.Workload.Name+", "+tr.Mode.Name, tr.Results))
		}
	}
	if n != nil {
		var all []*TraceResult
		for _, m := range n.Modes {
			c.Rows = append(c.Rows, collectorRow("nats-server, "+m.Mode.Name, m.Results))
			all = append(all, m.Results...)
		}
		c.NatsAttach = collectorRow("", all).Attach
		c.NatsBinSize = n.BinSize
	}
	for i, r := range c.Rows {
		if r.HitsPerSec.Median() > c.Rows[c.Highest].HitsPerSec.Median() {
			c.Highest = i
		}
	}
	return c
}
