package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maptrace/maptrace/internal/profiles"
	"github.com/maptrace/maptrace/internal/report"
)

// outputFlags say what to write and where: attach, demo and report share
// them, and write every output through write.
type outputFlags struct {
	format     string
	output     string
	pprof      string
	pprofMaps  string
	folded     string
	flamegraph string
	top        int
	verbose    bool
}

func (o *outputFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&o.format, "format", "f", "text", "report format: text or json")
	fs.StringVarP(&o.output, "output", "o", "", "write the report to `FILE` instead of stdout")
	fs.StringVar(&o.pprof, "pprof", "", "write the contention profile (gzip profile.proto, for go tool pprof) to `FILE`")
	fs.StringVar(&o.pprofMaps, "pprof-maps", "", "write the map-operations profile (gzip profile.proto) to `FILE`")
	fs.StringVar(&o.folded, "folded", "", "write folded stacks (flamegraph.pl, speedscope) to `FILE`")
	fs.StringVar(&o.flamegraph, "flamegraph", "", "write a self-contained HTML flame graph to `FILE`")
	fs.IntVar(&o.top, "top", 10, "`N` rows per section in the text report")
	fs.BoolVar(&o.verbose, "verbose", false, "print every row of the text report, whatever --top says")
}

// output is one file the flags ask for.
type output struct {
	flag, path string
	write      func(io.Writer, *report.Report) error
}

// files are the outputs that go to files, report first.
func (o *outputFlags) files() []output {
	var out []output
	for _, f := range []output{
		{"-o", o.output, o.writeReport},
		{"--pprof", o.pprof, profiles.WritePprof},
		{"--pprof-maps", o.pprofMaps, profiles.WritePprofMaps},
		{"--folded", o.folded, profiles.WriteFolded},
		{"--flamegraph", o.flamegraph, profiles.WriteFlamegraph},
	} {
		if f.path != "" {
			out = append(out, f)
		}
	}
	return out
}

// check validates the flags and that every output file can be written, so
// that a typo fails now rather than at the end of a long trace.
func (o *outputFlags) check() error {
	if o.format != "text" && o.format != "json" {
		return usageError{fmt.Errorf("--format %q: want text or json", o.format)}
	}
	if o.top < 1 {
		return usageError{fmt.Errorf("--top %d: want 1 or more (--verbose prints every row)", o.top)}
	}
	seen := map[string]string{}
	for _, f := range o.files() {
		if err := checkWritable(f.path); err != nil {
			return usageError{fmt.Errorf("%s %s: %v", f.flag, f.path, err)}
		}
		if passThrough(f.path) {
			continue // /dev/null takes them all
		}
		abs, _ := filepath.Abs(f.path)
		if other, ok := seen[abs]; ok {
			return usageError{fmt.Errorf("%s and %s both name %s: give each output its own file", other, f.flag, f.path)}
		}
		seen[abs] = f.flag
	}
	return nil
}

// writeReport writes the report in the chosen format.
func (o *outputFlags) writeReport(w io.Writer, r *report.Report) error {
	if o.format == "json" {
		return report.WriteJSON(w, r)
	}
	return report.WriteTextOptions(w, r, report.TextOptions{Top: o.top, Verbose: o.verbose})
}

// write writes the report (to stdout without -o) and every profile. If a
// file cannot be written, the report is kept as JSON in the temporary
// directory, from which `maptrace report` makes any of them again.
func (o *outputFlags) write(stdout io.Writer, r *report.Report) error {
	var errs []error
	if o.output == "" {
		if err := o.writeReport(stdout, r); err != nil {
			errs = append(errs, fmt.Errorf("write the report: %w", err))
		}
	}
	savedJSON := false // a JSON report file holds everything
	for _, f := range o.files() {
		err := writeFile(f.path, func(w io.Writer) error { return f.write(w, r) })
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", f.flag, f.path, err))
		} else if f.flag == "-o" && o.format == "json" {
			savedJSON = true
		}
	}
	if len(errs) == 0 || savedJSON {
		return errors.Join(errs...)
	}
	kept, err := keepJSON(r)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("keep the report: %w", err))...)
	}
	errs = append(errs, fmt.Errorf("the report is kept in %s: `maptrace report %s` writes any output from it", kept, kept))
	return errors.Join(errs...)
}

// keepJSON saves r where an output could not go, and returns the file.
func keepJSON(r *report.Report) (string, error) {
	f, err := os.CreateTemp("", "maptrace-report-*.json")
	if err != nil {
		return "", err
	}
	if err := report.WriteJSON(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// checkWritable says why path cannot be written, or nil: its directory must
// exist and take a new file, and the path must not be a directory.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory: give a file name")
	}
	if passThrough(path) {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no directory %s: create it first", dir)
	case err != nil:
		return fmt.Errorf("%v", unwrapPath(err))
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	// Access rules (read-only mounts, ACLs, root squash) are only known by
	// trying.
	f, err := os.CreateTemp(dir, ".maptrace-check-*")
	if err != nil {
		return fmt.Errorf("cannot create a file in %s: %v", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// unwrapPath drops the operation and path of a *PathError: the caller names
// the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// streamPath matches the names of stdout, stderr, /dev/null and inherited
// descriptors (bash's >(…) is /dev/fd/63), which are written in place.
var streamPath = regexp.MustCompile(`^/(dev/(stdout|stderr|null|fd/\d+)|proc/self/fd/\d+)$`)

// passThrough says whether path is written in place rather than replaced:
// a stream named above, or a FIFO or character device that path itself is
// (not a symbolic link to one).
func passThrough(path string) bool {
	if streamPath.MatchString(filepath.Clean(path)) {
		return true
	}
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0
}

// writeFile writes path through write. A file is written whole or not at
// all, mode 0600, and never through a symbolic link (which root could be
// tricked into following): the data goes to a new file in the same
// directory, synced, then renamed over path.
func writeFile(path string, write func(io.Writer) error) error {
	if passThrough(path) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return unwrapPath(err)
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp-*") // mode 0600
	if err != nil {
		return unwrapPath(err)
	}
	err = write(tmp)
	if err == nil {
		err = tmp.Sync() // the data before the name: a crash leaves the old file or the new one
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return unwrapPath(err)
	}
	return nil
}
