#!/usr/bin/env bash
# Installs what `make test` (deps.sh test), `make generate` (deps.sh
# generate) or `make test-kernels` (deps.sh kernels) needs and a fresh Debian
# machine lacks, saying what before it installs anything. It starts no
# service, stops none, and kills nothing.
set -euo pipefail

what=${1:-test}
GO=${GO:-go}
label="maptrace tests need" target=deps
[ "$what" = generate ] && label="make generate needs" target=generate
[ "$what" = kernels ] && label="make test-kernels needs" target=test-kernels

# Debian packages, each with the file that shows it is there.
declare -A present
case $what in
test)
	# Go 1.19 (the oldest of the matrix), Prometheus and promtool (the
	# dashboard and alert tests), Chromium (the flame graph test), runc
	# (the agent's container test).
	present=(
		[golang-1.19-go]="test -x /usr/lib/go-1.19/bin/go"
		[prometheus]="test -x /usr/bin/prometheus -a -x /usr/bin/promtool"
		[chromium]="command -v chromium || command -v chromium-browser || command -v google-chrome"
		[runc]="command -v runc"
	)
	# The rest of the matrix (internal/testtarget.Toolchains) comes from the
	# module proxy (GOTOOLCHAIN).
	toolchains="go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.5"
	;;
generate)
	present=(
		[clang]="command -v clang"
		[llvm]="command -v llvm-strip"
		[libbpf-dev]="test -f /usr/include/bpf/bpf_helpers.h"
	)
	toolchains=""
	;;
kernels)
	# qemu for the kernel matrix's VMs (kernels/main.go), amd64 and arm64,
	# and the static busybox the amd64 initramfs runs; the kernels and the
	# arm64 busybox are downloaded into a cache by the harness, never
	# installed.
	present=(
		[qemu-system-x86]="command -v qemu-system-x86_64"
		[qemu-system-arm]="command -v qemu-system-aarch64"
		[busybox-static]="dpkg-query -W -f='\${Status}' busybox-static | grep -q 'ok installed'"
	)
	toolchains=""
	;;
*)
	echo "usage: $0 test|generate|kernels" >&2
	exit 2
	;;
esac

missing=()
for pkg in $(printf '%s\n' "${!present[@]}" | sort); do
	eval "${present[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done

if ((${#missing[@]})); then
	if [ "$(id -u)" != 0 ]; then
		echo "$label: ${missing[*]}; not root, so not installing them: run \`sudo make $target\`" >&2
		exit 1
	fi
	echo "$label: ${missing[*]}; installing with apt-get (no service is started or enabled)"
	# Debian's prometheus package would start a Prometheus on :9090 and
	# enable it at boot. A policy-rc.d that denies every start keeps
	# maintainer scripts from starting services while we install; one that
	# is already there is the machine owner's, and is left alone.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\n# maptrace scripts/deps.sh: no service starts during its apt-get install\nexit 101\n' >$policy
		chmod 755 $policy
		# removed however the script ends; the signal traps make bash exit
		# through the EXIT trap
		trap "rm -f $policy" EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM HUP
	fi
	had_prometheus=$(dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -c 'install ok installed' || true)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The install enabled the service for the next boot: undo that for a
	# package we installed, never for one that was there before.
	if [ "$had_prometheus" = 0 ] && [[ " ${missing[*]} " == *" prometheus "* ]]; then
		deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
		update-rc.d prometheus disable >/dev/null 2>&1 || true
	fi
fi

# Toolchains GOTOOLCHAIN would download, found in the module cache.
if [ -n "$toolchains" ]; then
	cache=$($GO env GOMODCACHE)/golang.org
	platform=$($GO env GOOS)-$($GO env GOARCH)
	fetch=()
	for tc in $toolchains; do
		[ -d "$cache/toolchain@v0.0.1-$tc.$platform" ] || fetch+=("$tc")
	done
	if ((${#fetch[@]})); then
		echo "$label Go toolchains: ${fetch[*]}; downloading them with GOTOOLCHAIN into the module cache ($cache)"
		for tc in "${fetch[@]}"; do
			GOTOOLCHAIN=$tc $GO version >/dev/null
		done
	fi
fi
