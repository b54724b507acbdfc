package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/maptrace/maptrace/internal/testtarget"
)

const testVersion = "v0.0.0-imagetest"

// TestImage builds the image as make image does, reads it back, and runs
// maptrace in it for real: from its layer unpacked as a rootfs under runc,
// and imported into a containerd of the test's own and run by it.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "maptrace")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+testVersion, "-o", bin, "../maptrace")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	ref := "localhost/maptrace:" + testVersion
	tarFile, oci := filepath.Join(dir, "image.tar"), filepath.Join(dir, "oci")
	if err := run(bin, ref, testVersion, tarFile, oci); err != nil {
		t.Fatal(err)
	}

	// What is in it: an OCI manifest, one layer holding /maptrace alone.
	img, err := tarball.ImageFromPath(tarFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || strings.Join(cf.Config.Entrypoint, " ") != "/maptrace" ||
		strings.Join(cf.Config.Cmd, " ") != "agent --listen :"+port {
		t.Errorf("config: %s/%s entrypoint %q cmd %q", cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1: no base", len(layers), err)
	}
	rootfs := filepath.Join(dir, "bundle", "rootfs")
	files := unpack(t, img, rootfs)
	if want := map[string]int64{"maptrace": 0o755}; !equal(files, want) {
		t.Errorf("files %v, want %v", files, want)
	}
	config, _ := img.ConfigName()

	// The layout holds the same image, named, with OCI media types (a
	// docker save tarball has a manifest.json of its own instead).
	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref ||
		im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("OCI layout index: %+v, want one OCI manifest named %s", im.Manifests, ref)
	}
	limg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := limg.ConfigName(); c2 != config {
		t.Errorf("OCI layout's image config %s, the tarball's %s", c2, config)
	}
	t.Logf("%s %s (config %s), tarball %d bytes", ref, im.Manifests[0].Digest, config, size(t, tarFile))

	// Reproducible: the same binary makes the same image.
	again := filepath.Join(dir, "again.tar")
	if err := run(bin, ref, testVersion, again, ""); err != nil {
		t.Fatal(err)
	}
	if img2, err := tarball.ImageFromPath(again, nil); err != nil {
		t.Fatal(err)
	} else if c2, _ := img2.ConfigName(); c2 != config {
		t.Errorf("built twice: config %s, then %s", config, c2)
	}

	t.Run("runc", func(t *testing.T) {
		testtarget.NeedRoot(t)
		runc, err := exec.LookPath("runc")
		if err != nil {
			t.Skip("needs runc (Debian's runc package; make deps installs it)")
		}
		bundle := filepath.Dir(rootfs)
		if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
			t.Fatalf("runc spec: %v: %s", err, out)
		}
		state := t.TempDir() // runc's state, apart from any other runc user's
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"/maptrace", "version"}, "maptrace " + testVersion + "\n"},
			{[]string{"/maptrace", "--help"}, "\n  agent "},
		} {
			setArgs(t, filepath.Join(bundle, "config.json"), tc.args)
			id := "mt-image-" + randomHex(t)
			cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exec.Command(runc, "--root", state, "delete", "--force", id).Run()
			if err != nil || !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("runc run %q: %v: stdout %q, want %q; stderr %q", tc.args, err, stdout.String(), tc.want, stderr.String())
			}
		}
	})

	t.Run("containerd", func(t *testing.T) {
		c := testtarget.StartContainerd(t)
		start := time.Now()
		c.Ctr(t, "images", "import", tarFile)
		if out := c.Ctr(t, "images", "list", "--quiet"); !strings.Contains(out, ref) {
			t.Fatalf("ctr images list: %q, want %s", out, ref)
		}
		out := c.Ctr(t, append(append([]string{"run", "--rm"}, c.RunArgs()...), ref, "mt-image-"+randomHex(t), "/maptrace", "version")...)
		if out != "maptrace "+testVersion+"\n" {
			t.Errorf("ctr run %s version: %q", ref, out)
		}
		t.Logf("imported into containerd and ran in %v", time.Since(start).Round(time.Millisecond))
	})
}

// unpack writes the image's filesystem into dir and returns its regular
// files with their modes.
func unpack(t *testing.T, img v1.Image, dir string) map[string]int64 {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "/")] = h.Mode
		default:
			t.Errorf("unexpected %q in the image (type %c)", h.Name, h.Typeflag)
		}
	}
	return files
}

// setArgs sets the process arguments of a runc bundle's config.json.
func setArgs(t *testing.T, file string, args []string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	p := c["process"].(map[string]any)
	p["args"] = args
	p["terminal"] = false
	c["root"] = map[string]any{"path": "rootfs", "readonly": true}
	if b, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func size(t *testing.T, file string) int64 {
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
