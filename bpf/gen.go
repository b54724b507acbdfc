// Package bpf holds maptrace's eBPF programs, compiled from the C sources in
// this directory by bpf2go, once per architecture (the programs read that
// architecture's registers: common.h). The generated *_x86_bpfel.* (amd64)
// and *_arm64_bpfel.* files are committed so that building maptrace needs
// no clang; `make generate` rebuilds them.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -go-package bpf Mutex mutex.bpf.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -go-package bpf -type writer Maps maps.bpf.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -go-package bpf -type sample_count -type code_kind -type step -type target -type site Cpu cpu.bpf.c -- -I/usr/include/x86_64-linux-gnu
