package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kernel is one kernel of the matrix: a Debian suite's meta package, which
// names the exact kernel package of the day.
type Kernel struct {
	Series string // "6.1": for -kernels and the table
	Arch   string // Debian's architecture: amd64 or arm64
	Suite  string // the Debian release whose registry serves it
	Meta   string // the meta package that depends on the exact one
	Why    string // what it stands for in the matrix

	Package string // the exact package, resolved from Meta
	Version string // its Debian version
	Vmlinuz string // the kernel image in the cache
}

// Matrix is every kernel make test-kernels boots: one without the features
// attach needs (5.10), one without uprobe_multi (6.1), and one with both.
// Debian's registry serves no 5.15 to 6.5 kernel to test the fallback on
// besides 6.1, nor anything newer than 6.12 for Debian 12.
// The arm64 kernel runs under TCG emulating another instruction set, several
// times slower than the amd64 guests: it runs a focused subset (Suites' Arm64).
var Matrix = []Kernel{
	{Series: "5.10", Arch: "amd64", Suite: "bullseye", Meta: "linux-image-amd64", Why: "Debian 11: before perf-event links and attach cookies (5.15)"},
	{Series: "6.1", Arch: "amd64", Suite: "bookworm", Meta: "linux-image-amd64", Why: "Debian 12: before uprobe_multi (6.6)"},
	{Series: "6.12", Arch: "amd64", Suite: "bookworm", Meta: "linux-image-6.12-amd64", Why: "Debian 12's newer kernel (bookworm-security): every feature"},
	{Series: "6.1", Arch: "arm64", Suite: "bookworm", Meta: "linux-image-arm64", Why: "Debian 12 on arm64 (Graviton, Ampere): before uprobe_multi (6.6)"},
}

// Name is how the table and -kernels name k: its series, with the
// architecture when it is not amd64 ("6.1/arm64").
func (k Kernel) Name() string {
	if k.Arch == "" || k.Arch == "amd64" {
		return k.Series
	}
	return k.Series + "/" + k.Arch
}

// apt runs apt-get or apt-cache on a private state for suite in the cache:
// its own sources and package lists, so that the host's apt configuration
// is neither needed nor changed, and suites the host does not use (5.10's
// bullseye) can be asked.
type apt struct {
	dir   string
	suite string
	arch  string
}

func newApt(cache, suite, arch string) (*apt, error) {
	name := suite
	if arch != "amd64" {
		name += "-" + arch
	}
	a := &apt{dir: filepath.Join(cache, "apt", name), suite: suite, arch: arch}
	for _, d := range []string{"lists/partial", "archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	keyring := "/usr/share/keyrings/debian-archive-keyring.gpg"
	sources := ""
	for _, s := range []struct{ url, suite string }{
		{"http://deb.debian.org/debian", suite},
		{"http://deb.debian.org/debian-security", suite + "-security"},
	} {
		sources += fmt.Sprintf("deb [signed-by=%s] %s %s main\n", keyring, s.url, s.suite)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(sources), 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *apt) opts() []string {
	o := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::State::status=/dev/null",
		"-o", "Dir::Cache=" + a.dir,
		// Another architecture's packages without dpkg --add-architecture:
		// they are only downloaded and unpacked, never installed.
		"-o", "APT::Architecture=" + a.arch,
		"-o", "APT::Architectures::=" + a.arch,
	}
	if os.Geteuid() == 0 {
		// apt's _apt user cannot write into root's cache directory
		o = append(o, "-o", "APT::Sandbox::User=root")
	}
	return o
}

func (a *apt) run(dir, tool string, args ...string) (string, error) {
	cmd := exec.Command(tool, append(a.opts(), args...)...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// update refreshes the suite's package lists when they are missing or a
// day old: the registry keeps only the newest kernel of a series.
func (a *apt) update(log io.Writer) error {
	stamp := filepath.Join(a.dir, "updated")
	if fi, err := os.Stat(stamp); err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
		return nil
	}
	fmt.Fprintf(log, "kernels: apt-get update for %s (package lists kept in %s)\n", a.suite, a.dir)
	if _, err := a.run(a.dir, "apt-get", "-qq", "update"); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// resolve finds the exact kernel package k.Meta depends on, and its version.
func (a *apt) resolve(k *Kernel) error {
	out, err := a.run(a.dir, "apt-cache", "depends", k.Meta)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: "); ok && strings.HasPrefix(p, "linux-image-") {
			k.Package = p
			break
		}
	}
	if k.Package == "" {
		return fmt.Errorf("%s (%s): depends on no linux-image package", k.Meta, k.Suite)
	}
	out, err = a.run(a.dir, "apt-cache", "show", "--no-all-versions", k.Package)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			k.Version = v
		}
	}
	return nil
}

// fetch puts k's kernel image in the cache: downloaded by its exact name
// (never installed), and only /boot extracted; the modules are not needed,
// since the guest loads none.
func fetch(cache string, k *Kernel, log io.Writer) error {
	a, err := newApt(cache, k.Suite, k.Arch)
	if err != nil {
		return err
	}
	if err := a.update(log); err != nil {
		return err
	}
	if err := a.resolve(k); err != nil {
		return err
	}
	dir := filepath.Join(cache, k.Package+"_"+k.Version)
	if k.Arch != "amd64" {
		dir += "_" + k.Arch
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*")); len(m) == 1 {
		k.Vmlinuz = m[0]
		return nil
	}
	tmp, err := os.MkdirTemp(cache, "download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "kernels: downloading %s %s (%s) into %s\n", k.Package, k.Version, k.Suite, dir)
	if _, err := a.run(tmp, "apt-get", "-qq", "download", k.Package+"="+k.Version); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: %d .deb files", k.Package, len(debs))
	}
	if err := extract(debs[0], tmp+"/x", "boot/"); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp+"/x", dir); err != nil {
		return err
	}
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return fmt.Errorf("%s: %d kernel images in /boot", k.Package, len(m))
	}
	k.Vmlinuz = m[0]
	return nil
}

// fetchBusybox puts Debian's busybox-static for arch in the cache, for a
// guest of another architecture than the host's: downloaded, never
// installed, as the kernels are.
func fetchBusybox(cache, suite, arch string, log io.Writer) (string, error) {
	a, err := newApt(cache, suite, arch)
	if err != nil {
		return "", err
	}
	if err := a.update(log); err != nil {
		return "", err
	}
	out, err := a.run(a.dir, "apt-cache", "show", "--no-all-versions", "busybox-static")
	if err != nil {
		return "", err
	}
	version := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			version = v
		}
	}
	dir := filepath.Join(cache, "busybox-static_"+version+"_"+arch)
	bin := filepath.Join(dir, "bin", "busybox")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	tmp, err := os.MkdirTemp(cache, "download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "kernels: downloading busybox-static %s (%s, %s) into %s\n", version, suite, arch, dir)
	if _, err := a.run(tmp, "apt-get", "-qq", "download", "busybox-static="+version); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download busybox-static: %d .deb files", len(debs))
	}
	if err := extract(debs[0], tmp+"/x", "bin/busybox"); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp+"/x", dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("busybox-static %s: %v", arch, err)
	}
	return bin, nil
}

// extract extracts the deb's regular files whose path starts with prefix
// into dir.
func extract(deb, dir, prefix string) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	tr := tar.NewReader(out)
	var terr error
	for {
		h, err := tr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				terr = err
			}
			break
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !strings.HasPrefix(name, prefix) || h.Typeflag != tar.TypeReg || strings.Contains(name, "..") {
			continue
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			terr = err
			break
		}
		f, err := os.Create(dst)
		if err == nil {
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			terr = err
			break
		}
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %v: %s", deb, err, errb.String())
	}
	return terr
}
