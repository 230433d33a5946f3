#!/usr/bin/env bash
# Installs what `make test` needs on Debian 12 and downloads the Go modules. Idempotent: packages that
# are already installed are left alone, and apt-get update runs only when something is missing.
# Installing needs root; without root the script fails and names the missing packages.
set -euo pipefail

# Debian packages the tests use. Add new ones here.
TEST_PACKAGES=(
	curl
	wrk
	netcat-openbsd
	socat
	python3-h11
	nginx-light
	apache2-utils
	shellcheck
	gcc
	prometheus
	chromium
	strace
	# iproute2: network namespaces for the IPv6 /64 per-client limit test (ip netns).
	iproute2
	node-ws
	python3-websockets
	# Packaging, units and ARM (scripts/test-systemd.sh, scripts/test-packages.sh, make test-arm):
	# systemd-analyze and systemd-socket-activate, man(1) for verify's Documentation= check, the
	# package checks (lintian; readelf from binutils), the maintainer scripts' tools in the install test,
	# and qemu-user.
	systemd
	man-db
	lintian
	adduser
	init-system-helpers
	binutils
	qemu-user-static
)

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-test-deps: dpkg-query not found: this script supports Debian; install ${TEST_PACKAGES[*]} by hand" >&2
	exit 1
fi

missing=()
for pkg in "${TEST_PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} > 0)); then
	if ((EUID != 0)); then
		echo "install-test-deps: missing packages: ${missing[*]}" >&2
		echo "install-test-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "install-test-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

go mod download
# The benchmark tools have a module of their own (make bench-smoke): fasthttp, gorilla/websocket.
(cd bench && go mod download)
