// Command mkimage writes maptrace's container image, as `make image` runs
// it: the static maptrace binary alone on an empty base (package
// internal/image), as a tarball for docker load, podman load or
// ctr images import, and as an OCI image layout.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/maptrace/maptrace/internal/image"
)

// Port is where the image's default command serves /metrics; the
// manifests of deploy/ and docs/deploy.md use it too.
const port = "9435"

func main() {
	bin := flag.String("bin", "bin/linux-amd64/maptrace", "the static maptrace binary (CGO_ENABLED=0)")
	version := flag.String("version", "dev", "the version, for the image's tag and labels")
	ref := flag.String("name", "localhost/maptrace", "the image's name, without a tag")
	tarFile := flag.String("tar", "bin/maptrace-image.tar", "write the image tarball here")
	ociDir := flag.String("oci", "", "also write an OCI image layout into this new directory")
	flag.Parse()
	if err := run(*bin, *ref+":"+*version, *version, *tarFile, *ociDir); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(bin, ref, version, tarFile, ociDir string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img, err := image.Build(image.Config{
		Files: []image.File{{Path: "/maptrace", Mode: 0o755, Data: data}},
		// The agent is the image's use; `maptrace attach` and the rest are
		// there too, for kubectl exec or a command line of one's own.
		Entrypoint: []string{"/maptrace"},
		Cmd:        []string{"agent", "--listen", ":" + port},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "maptrace",
			"org.opencontainers.image.description": "eBPF tracer of Go mutex waits, hot maps and map races",
			"org.opencontainers.image.version":     version,
		},
	})
	if err != nil {
		return err
	}
	if err := image.WriteTarball(tarFile, ref, img); err != nil {
		return err
	}
	if ociDir != "" {
		if err := image.WriteLayout(ociDir, ref, img); err != nil {
			return err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s: %s", ref, d, tarFile)
	if ociDir != "" {
		fmt.Printf(", %s", ociDir)
	}
	fmt.Println()
	return nil
}
