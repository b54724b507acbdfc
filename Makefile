# maptrace: build, demo, test, generate, bench.
# Tracing needs root (or CAP_BPF+CAP_PERFMON+CAP_SYS_PTRACE): run as root or with sudo.

GO       ?= go
BIN      := bin/maptrace
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Toolchains of the test matrix (Go 1.19 comes from Debian, the rest from the module proxy).
TOOLCHAINS := go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.5

.PHONY: all build demo test generate bench bench-servers deps clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/maptrace

# The built-in demo: a workload with contention, a hot key and a racy map, traced for 10s.
demo: build
	./$(BIN) demo -d 10s

# Everything the tests need that a fresh Debian machine lacks: clang and
# libbpf headers (make generate), Go 1.19 (the oldest of the matrix),
# Prometheus and promtool (the dashboard test), Chromium (the flame graph test).
DEBS := clang llvm libbpf-dev golang-1.19-go prometheus chromium
deps:
	@test -x /usr/lib/go-1.19/bin/go && test -x /usr/bin/promtool && test -x /usr/bin/chromium && command -v clang >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null)
	@pkill -x prometheus 2>/dev/null || true # the package may start its own on :9090
	@for tc in $(TOOLCHAINS); do GOTOOLCHAIN=$$tc $(GO) version >/dev/null || exit 1; done

# One package at a time: the accuracy and overhead tests measure time, and
# share two cores.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 25m ./...

# Rebuild the committed BPF objects and their Go bindings from bpf/*.c.
generate:
	@command -v clang >/dev/null && test -f /usr/include/bpf/bpf_helpers.h || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm libbpf-dev >/dev/null)
	$(GO) generate ./bpf/

# Overhead and accuracy against baselines measured in the same run, into
# BENCHMARKS.md (bench/main.go says what is measured). `make test` runs its
# quick mode.
bench: deps
	$(GO) run ./bench -install -n 7 -out BENCHMARKS.md

# Section 6 alone, printed: nats-server, etcd and Caddy under their load
# clients, traced once each; REPORTS=DIR also keeps each raw report there
# (NAME.json, NAME.txt). The first run builds etcd and Caddy (minutes).
bench-servers:
	@$(GO) run ./bench -only 6 -out - $(if $(REPORTS),-reports $(REPORTS))

clean:
	rm -rf bin
