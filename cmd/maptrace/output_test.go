package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/maptrace/maptrace/internal/symbols"
	"github.com/maptrace/maptrace/internal/target"
)

// TestWriteFile: a file is replaced whole, mode 0600, never through a
// symbolic link, and a failed write leaves the old file.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	text := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := os.WriteFile(path("victim"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path("victim"), path("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("old"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := writeFile(path("link"), text("report")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path("victim")); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if fi, err := os.Lstat(path("link")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("link: %v, want a regular file of mode 0600", fileMode(fi, err))
	}

	if err := writeFile(path("old"), text("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path("old")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file: %v, want mode 0600", fileMode(fi, err))
	}
	failed := errors.New("disk full")
	err := writeFile(path("old"), func(w io.Writer) error { io.WriteString(w, "half"); return failed })
	if !errors.Is(err, failed) {
		t.Errorf("error %v, want the write's", err)
	}
	if b, _ := os.ReadFile(path("old")); string(b) != "new" {
		t.Errorf("after a failed write the file holds %q, want the previous %q", b, "new")
	}

	if err := writeFile(path("fresh"), text("x")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "fresh link old victim"; strings.Join(names, " ") != want {
		t.Errorf("directory holds %v, want %s (no temporary files left)", names, want)
	}
}

// TestWriteFIFO: a FIFO (as `>(cmd)` gives) is written in place, not
// replaced.
func TestWriteFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	if err := checkWritable(fifo); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(fifo, func(w io.Writer) error { _, err := io.WriteString(w, "report"); return err }); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "report" {
		t.Errorf("read %q from the FIFO", s)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v", fileMode(fi, err))
	}
	for path, want := range map[string]bool{
		"/dev/stdout": true, "/dev/fd/63": true, "/proc/self/fd/3": true, "/dev/null": true,
		"/dev/shm/x": false, "/dev/sda": false, "/tmp/dev/stdout": false, "report.txt": false,
	} {
		if streamPath.MatchString(path) != want {
			t.Errorf("%s written in place: %v, want %v", path, !want, want)
		}
	}
}

// TestKeptReport: when an output cannot be written after the trace, the
// report is kept as JSON, and the error says where.
func TestKeptReport(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r, err := readReport(handWritten)
	if err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	o := outputFlags{format: "text", top: 10, output: filepath.Join(gone, "r.txt"), folded: filepath.Join(gone, "f.txt")}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	os.Remove(gone) // between the check and the end of the trace
	err = o.write(io.Discard, r)
	kept, _ := filepath.Glob(filepath.Join(tmp, "maptrace-report-*.json"))
	if len(kept) != 1 || err == nil || !strings.Contains(flatten(err), "the report is kept in "+kept[0]+": `maptrace report "+kept[0]+"` writes any output from it") {
		t.Fatalf("error %q, kept %v", err, kept)
	}
	if strings.Count(flatten(err), "no such file or directory") != 2 {
		t.Errorf("error %q: want both failures", flatten(err))
	}
	back, err := readReport(kept[0])
	if err != nil || back.Target.PID != r.Target.PID {
		t.Errorf("kept report: %v", err)
	}
}

// TestTargetError: each way a target cannot be traced is one line that
// says what to do.
func TestTargetError(t *testing.T) {
	self := os.Getpid()
	exe, _ := os.Executable()
	who := fmt.Sprintf("pid %d (%s)", self, exe)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("pid %d: %w", self, target.ErrNoProcess), fmt.Sprintf("pid %d: no such process: check it", self)},
		{fmt.Errorf("pid %d (x): symbols: /proc/1/exe: %w: not a Go executable", self, symbols.ErrNotGo),
			who + " is not a Go program: maptrace traces Go binaries only"},
		{fmt.Errorf("pid %d (x): %w: riscv64 (amd64 and arm64 are supported)", self, symbols.ErrUnsupportedArch),
			who + ": unsupported architecture riscv64: maptrace traces amd64 and arm64 programs only"},
		{fmt.Errorf("pid %d (x): %w: go1.18.10 (need go1.19 or newer)", self, symbols.ErrUnsupportedVersion),
			who + ": unsupported Go version go1.18.10: maptrace traces programs built with Go 1.19 or newer"},
		{fmt.Errorf("pid %d (x): symbols: /proc/1/exe: %w: go1.16.3 (its function table predates the Go 1.18 format)", self, symbols.ErrUnsupportedVersion),
			who + ": unsupported Go version go1.16.3: maptrace traces programs built with Go 1.19 or newer"},
		{fmt.Errorf("pid %d (x): %w: devel go1.99-abc is newer than the goid table and the binary has no DWARF", self, symbols.ErrUnsupportedVersion),
			who + ": unsupported Go version devel go1.99-abc, newer than this maptrace knows, in a binary without DWARF: " +
				"use a newer maptrace, or build the program without -ldflags=-w"},
		{fmt.Errorf("pid %d: attach mutex probes: %w", self, errors.New("boom")), fmt.Sprintf("pid %d: attach mutex probes: boom", self)},
		// EPERM from the kernel is not about reading the target.
		{fmt.Errorf("pid %d: attach map probes: %w", self, syscall.EPERM), fmt.Sprintf("pid %d: attach map probes: operation not permitted", self)},
	} {
		if got := targetError(self, tc.err); !strings.HasPrefix(got.Error(), tc.want) || strings.Contains(got.Error(), "\n") {
			t.Errorf("targetError(%q)\n = %q\nwant %q", tc.err, got, tc.want)
		}
	}
	if targetError(self, nil) != nil {
		t.Error("targetError(nil) is not nil")
	}
}

func TestFlatten(t *testing.T) {
	err := errors.Join(errors.New("-o r.txt: disk full"), nil, errors.New("verifier:\n  line 1\n\n  line 2"))
	if got, want := flatten(err), "-o r.txt: disk full; verifier:; line 1; line 2"; got != want {
		t.Errorf("flatten = %q, want %q", got, want)
	}
}
