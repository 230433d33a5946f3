#!/usr/bin/env bash
# Starts a fresh edged on a free loopback port and measures GET /healthz with wrk.
# Usage: scripts/bench-wrk.sh [BINARY [EDGED FLAGS...]]   (default binary: bin/edged)
# WRK_ARGS overrides the load (default: -t1 -c64 -d5s --latency, the stable setting on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=${1:-bin/edged}
shift || true
read -r -a wrk_args <<<"${WRK_ARGS:--t1 -c64 -d5s --latency}"

command -v wrk >/dev/null || { echo "bench-wrk: wrk not found (scripts/install-test-deps.sh installs it)" >&2; exit 1; }
[[ -x $bin ]] || { echo "bench-wrk: $bin not found (make build)" >&2; exit 1; }

log=$(mktemp)
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -f "$log"
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --log-format json "$@" 2>"$log" &
pid=$!

# Poll for the start-up line, which carries the bound address; give up after 10 seconds.
addr=
for _ in $(seq 200); do
	addr=$(sed -n 's/.*"msg":"edged started".*"addr":"\([^"]*\)".*/\1/p' "$log" | head -n1)
	[[ -n $addr ]] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "bench-wrk: edged exited:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.05
done
[[ -n $addr ]] || { echo "bench-wrk: no start-up line from edged" >&2; cat "$log" >&2; exit 1; }

echo "wrk ${wrk_args[*]} http://$addr/healthz (edged $*)"
wrk "${wrk_args[@]}" "http://$addr/healthz"
