# maptrace: build, demo, test, generate, bench.
# Tracing needs root (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE): run as root or with sudo.

GO       ?= go
BIN      := bin/maptrace
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build image demo test test-kernels generate bench bench-servers deps clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/maptrace

# The container image, built without pulling a base (cmd/mkimage): the
# static binary alone, as bin/maptrace-image.tar (docker load, podman load,
# ctr images import) and as the OCI layout bin/maptrace-oci.
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/linux-amd64/maptrace ./cmd/maptrace
	rm -rf bin/maptrace-oci
	$(GO) run ./cmd/mkimage -bin bin/linux-amd64/maptrace -version $(VERSION) -tar bin/maptrace-image.tar -oci bin/maptrace-oci

# The built-in demo: a workload with contention, a hot key and a racy map, traced for 10s.
demo: build
	./$(BIN) demo -d 10s

# What the tests need that a fresh Debian machine lacks: Go 1.19, Prometheus
# and promtool, Chromium (apt-get), and the matrix's other Go toolchains
# (GOTOOLCHAIN). scripts/deps.sh says what it installs before it does, and
# starts, stops and kills nothing.
deps:
	@GO="$(GO)" bash scripts/deps.sh test

# One package at a time: the accuracy and overhead tests measure time, and
# share two cores. Then the kernel-dependent tests on Debian 12's 6.1, the
# kernel most production hosts run that lacks uprobe_multi (a few minutes
# under qemu; the whole matrix is make test-kernels).
test: deps
	@test "$$(id -u)" = 0 || echo "maptrace: not root: the tests that load BPF programs or attach uprobes will skip (sudo make test runs them)"
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 25m ./...
	@GO="$(GO)" bash scripts/deps.sh kernels
	$(GO) run ./kernels -kernels 6.1 -out $${TMPDIR:-/tmp}/maptrace-kernels-6.1.md

# The kernel-dependent tests on Debian's 5.10, 6.1 and 6.12 amd64 kernels
# and its 6.1 arm64 kernel (a focused subset), each booted under qemu, into
# docs/KERNELS.md (kernels/main.go says how). Not part of `make test`: it has
# its own deps (qemu for both architectures, busybox-static), takes 15 to 30
# minutes under emulation, depending on the host's load, and needs no root.
test-kernels:
	@GO="$(GO)" bash scripts/deps.sh kernels
	$(GO) run ./kernels -out docs/KERNELS.md

# Rebuild the committed BPF objects and their Go bindings from bpf/*.c.
generate:
	@GO="$(GO)" bash scripts/deps.sh generate
	$(GO) generate ./bpf/

# Overhead and accuracy against baselines measured in the same run, into
# BENCHMARKS.md (bench/main.go says what is measured). `make test` runs its
# quick mode. It needs nothing from deps; -install adds bpftrace for the
# comparison, saying so first.
bench:
	$(GO) run ./bench -install -n 9 -out BENCHMARKS.md

# Section 6 alone, printed: nats-server, etcd, Caddy and CoreDNS under their
# load clients, traced once each; REPORTS=DIR also keeps each raw report there
# (NAME.json, NAME.txt). The first run builds the servers (minutes).
bench-servers:
	@$(GO) run ./bench -only 6 -out - $(if $(REPORTS),-reports $(REPORTS))

clean:
	rm -rf bin
