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
	# dashboard and alert tests, the scrape config of deploy/), Chromium
	# (the flame graph test), runc (the agent's container test and the
	# image's), containerd and ctr (the agent's pod-label test, which starts
	# its own containerd in a temporary directory), util-linux's setpriv
	# (the least-privilege test of deploy/).
	present=(
		[golang-1.19-go]="test -x /usr/lib/go-1.19/bin/go"
		[prometheus]="test -x /usr/bin/prometheus -a -x /usr/bin/promtool"
		[chromium]="command -v chromium || command -v chromium-browser || command -v google-chrome"
		[runc]="command -v runc"
		[containerd]="command -v containerd && command -v ctr && command -v containerd-shim-runc-v2"
		[util-linux]="command -v setpriv"
	)
	# The rest of the matrix (internal/testtarget.Toolchains) comes from the
	# module proxy (GOTOOLCHAIN).
	toolchains="go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.5"
	# Prometheus's own promtool, built from its Go module, for the
	# kubernetes_sd_configs of deploy/prometheus: Debian builds its
	# prometheus without Kubernetes service discovery. deploy/'s test reads
	# the version here.
	promtool=github.com/prometheus/prometheus/cmd/promtool@v0.316.0
	;;
generate)
	present=(
		[clang]="command -v clang"
		[llvm]="command -v llvm-strip"
		[libbpf-dev]="test -f /usr/include/bpf/bpf_helpers.h"
	)
	toolchains="" promtool=""
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
	toolchains="" promtool=""
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
	# Debian's prometheus and containerd packages would start their
	# services (Prometheus on :9090, containerd on /run/containerd) and
	# enable them at boot. A policy-rc.d that denies every start keeps
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
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The install enabled the services for the next boot: undo that for the
	# packages installed here (all of them were missing), never for one
	# that was there before.
	for svc in prometheus containerd; do
		if [[ " ${missing[*]} " == *" $svc "* ]]; then
			# systemctl disable edits the unit links without a running
			# systemd; deb-systemd-helper refuses outside a maintainer script
			systemctl disable $svc.service >/dev/null 2>&1 || true
			update-rc.d $svc disable >/dev/null 2>&1 || true
		fi
	done
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

# promtool, built once into the Go path, beside nothing else: Debian's
# /usr/bin/promtool stays the one on PATH.
if [ -n "$promtool" ]; then
	dir=$($GO env GOPATH)/tools/prometheus-${promtool##*@}
	if [ ! -x "$dir/promtool" ]; then
		echo "$label promtool with Kubernetes service discovery (Debian's has none): building ${promtool} from the Go module proxy into $dir (minutes, once)"
		GOBIN=$dir $GO install "$promtool"
	fi
fi
