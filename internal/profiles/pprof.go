package profiles

import (
	"io"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/maptrace/maptrace/internal/report"
)

// WritePprof writes the mutex contention profile as gzip profile.proto.
//
// The sample types are those of Go's own mutex and block profiles
// (contentions/count, delay/nanoseconds) so that go tool pprof, Pyroscope and
// anything else that knows those profiles shows it without configuration.
// Each sample is one waiter stack, labelled mutex=<name or address> and
// kind=<kind> so that one lock can be picked out with pprof's -tagfocus.
func WritePprof(w io.Writer, r *report.Report) error {
	b := newBuilder(r,
		[]*profile.ValueType{{Type: "contentions", Unit: "count"}, {Type: "delay", Unit: "nanoseconds"}},
		&profile.ValueType{Type: "contentions", Unit: "count"})
	for i := range r.Mutexes {
		m := &r.Mutexes[i]
		labels := map[string][]string{"mutex": {mutexName(m)}, "kind": {m.Kind}}
		for _, wt := range m.Waiters {
			b.add(wt.Stack, labels, int64(wt.Contentions), int64(wt.WaitNS))
		}
	}
	return b.write(w)
}

// WritePprofMaps writes the map operation sites as a second gzip
// profile.proto with one sample type, ops/count. It is a separate profile
// because operations and contention delays cannot share a sample type.
// Samples are labelled map=<name or address> and op=<op>.
func WritePprofMaps(w io.Writer, r *report.Report) error {
	ops := &profile.ValueType{Type: "ops", Unit: "count"}
	b := newBuilder(r, []*profile.ValueType{ops}, ops)
	if f := r.Overhead.MapSamplingFraction; f > 0 && f < 1 {
		// Counts were scaled up from a sample; say so where pprof shows it.
		b.p.Comments = append(b.p.Comments,
			"map operations were sampled at fraction "+strconv.FormatFloat(f, 'g', -1, 64)+"; counts are scaled estimates")
	}
	for i := range r.Maps {
		m := &r.Maps[i]
		for _, s := range m.Sites {
			b.add(s.Stack, map[string][]string{"map": {mapName(m)}, "op": {s.Op}}, int64(s.Count))
		}
	}
	return b.write(w)
}

// builder assembles a profile, sharing one Location per distinct frame string
// and one Function per distinct (name, file), as the format expects.
type builder struct {
	p     *profile.Profile
	locs  map[string]*profile.Location
	funcs map[[2]string]*profile.Function
}

func newBuilder(r *report.Report, types []*profile.ValueType, period *profile.ValueType) *builder {
	p := &profile.Profile{SampleType: types, PeriodType: period, Period: 1}
	if !r.Window.Start.IsZero() {
		p.TimeNanos = r.Window.Start.UnixNano()
	}
	switch {
	case !r.Window.Start.IsZero() && r.Window.End.After(r.Window.Start):
		p.DurationNanos = r.Window.End.Sub(r.Window.Start).Nanoseconds()
	case r.Window.Seconds > 0:
		p.DurationNanos = int64(r.Window.Seconds * 1e9)
	}
	return &builder{p: p, locs: map[string]*profile.Location{}, funcs: map[[2]string]*profile.Function{}}
}

// add appends one sample; stack is leaf first, as in both the report and pprof.
func (b *builder) add(stack []string, labels map[string][]string, values ...int64) {
	s := &profile.Sample{Value: values, Label: labels}
	for _, frame := range stack {
		s.Location = append(s.Location, b.location(frame))
	}
	b.p.Sample = append(b.p.Sample, s)
}

func (b *builder) location(frame string) *profile.Location {
	if l, ok := b.locs[frame]; ok {
		return l
	}
	name, file, line := parseFrame(frame)
	key := [2]string{name, file}
	fn, ok := b.funcs[key]
	if !ok {
		fn = &profile.Function{ID: uint64(len(b.funcs) + 1), Name: name, SystemName: name, Filename: file}
		b.funcs[key] = fn
		b.p.Function = append(b.p.Function, fn)
	}
	l := &profile.Location{ID: uint64(len(b.locs) + 1), Line: []profile.Line{{Function: fn, Line: line}}}
	// An unsymbolized frame is a raw PC; keep it as the address too, so that
	// pprof can still tell frames apart and show the value with -addresses.
	if pc, err := strconv.ParseUint(strings.TrimPrefix(name, "0x"), 16, 64); err == nil && strings.HasPrefix(name, "0x") {
		l.Address = pc
	}
	b.locs[frame] = l
	b.p.Location = append(b.p.Location, l)
	return l
}

func (b *builder) write(w io.Writer) error {
	if err := b.p.CheckValid(); err != nil {
		return err
	}
	return b.p.Write(w)
}

// parseFrame splits "function (file:line)". Anything else ("?", "0x4a1b2c",
// a frame without a line) becomes a function of that whole name, so that no
// frame is lost even when the tracer could not symbolize it.
func parseFrame(frame string) (name, file string, line int64) {
	i := strings.LastIndex(frame, " (")
	if i <= 0 || !strings.HasSuffix(frame, ")") {
		return frame, "", 0
	}
	name, loc := frame[:i], frame[i+2:len(frame)-1]
	if j := strings.LastIndexByte(loc, ':'); j >= 0 {
		if n, err := strconv.ParseInt(loc[j+1:], 10, 64); err == nil {
			return name, loc[:j], n
		}
	}
	return name, loc, 0
}
