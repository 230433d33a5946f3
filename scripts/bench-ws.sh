#!/usr/bin/env bash
# WebSocket echo throughput: edged (--enable-echo) against net/http + gorilla/websocket (bench/cmd/peer
# -kind gorilla), both on free loopback ports, measured with bench/cmd/wsload for small and 4 KiB
# messages. Runs are interleaved (edged, gorilla, edged, ...) and each figure is the median of ROUNDS,
# since the same run can differ 2x between runs on a shared machine; compare the ratio.
# Usage: scripts/bench-ws.sh [BINARY [EDGED FLAGS...]]   (default binary: bin/edged, built by make build)
# Environment: ROUNDS (3), CONNS (16), DURATION (5s), SIZES ("64 4096").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=${1:-bin/edged}
shift || true
rounds=${ROUNDS:-3}
conns=${CONNS:-16}
duration=${DURATION:-5s}
read -r -a sizes <<<"${SIZES:-64 4096}"

[[ -x $bin ]] || { echo "bench-ws: $bin not found (make build)" >&2; exit 1; }

work=$(mktemp -d)
edged_pid=
peer_pid=
cleanup() {
	for pid in $edged_pid $peer_pid; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench-ws: building bench/cmd/peer and bench/cmd/wsload" >&2
(cd bench && CGO_ENABLED=0 go build -trimpath -o "$work/" ./cmd/peer ./cmd/wsload)

# wait_for FILE SED_EXPR PID NAME: polls FILE for the address SED_EXPR extracts, for 10 seconds.
wait_for() {
	local file=$1 expr=$2 pid=$3 name=$4 addr=
	for _ in $(seq 200); do
		addr=$(sed -n "$expr" "$file" | head -n1)
		if [[ -n $addr ]]; then
			echo "$addr"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-ws: $name exited:" >&2
			cat "$file" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "bench-ws: no address from $name" >&2
	cat "$file" >&2
	return 1
}

# Sessions hold their sockets (CONTRACT W9): the socket queue must take every connection.
"$bin" serve --listen 127.0.0.1:0 --log-format json --enable-echo --ws-max-conns 64 --socket-queue 128 "$@" \
	2>"$work/edged.log" &
edged_pid=$!
"$work/peer" -kind gorilla -listen 127.0.0.1:0 >"$work/peer.log" 2>&1 &
peer_pid=$!
edged_addr=$(wait_for "$work/edged.log" 's/.*"msg":"edged started".*"addr":"\([^"]*\)".*/\1/p' "$edged_pid" edged)
peer_addr=$(wait_for "$work/peer.log" 's/^listening on \(.*\)$/\1/p' "$peer_pid" peer)

# cpu_ms PID: the process's CPU time so far (user + system, all threads), in milliseconds.
clk_tck=$(getconf CLK_TCK)
cpu_ms() { awk -v hz="$clk_tck" '{sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz)}' "/proc/$1/stat"; }

declare -A results
for ((round = 1; round <= rounds; round++)); do
	for size in "${sizes[@]}"; do
		for server in edged gorilla; do
			addr=$edged_addr pid=$edged_pid
			[[ $server == gorilla ]] && addr=$peer_addr pid=$peer_pid
			cpu0=$(cpu_ms "$pid")
			line=$("$work/wsload" -url "ws://$addr/echo" -c "$conns" -s "$size" -d "$duration")
			line+=" server_cpu_ms=$(($(cpu_ms "$pid") - cpu0))"
			rate=$(sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p' <<<"$line")
			[[ -n $rate ]] || { echo "bench-ws: no figure from wsload: $line" >&2; exit 1; }
			echo "round $round, $size B, $server: $line" >&2
			results[$server/$size]+="$rate "
		done
	done
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo
echo "WebSocket echo, $conns connections, $duration per run, median of $rounds interleaved runs (msgs/s = round trips/s)"
printf '%-10s %16s %16s %14s\n' "message" "edged msgs/s" "gorilla msgs/s" "edged/gorilla"
for size in "${sizes[@]}"; do
	e=$(median "${results[edged/$size]}")
	g=$(median "${results[gorilla/$size]}")
	printf '%-10s %16s %16s %14s\n' "$size B" "$e" "$g" "$(awk -v e="$e" -v g="$g" 'BEGIN {printf "%.2f", e / g}')"
done
