#!/usr/bin/env bash
# Checks the systemd units offline (CONTRACT P1), without a running systemd:
#   1. `systemd-analyze verify` of edged.service and edged.socket in a scratch root that holds a stub
#      /usr/bin/edged (ExecStart must exist), the distribution's units (for the targets they name) and
#      the man page (Documentation=man:edged(8) is looked up with man(1)). verify only warns, with rc 0,
#      on unknown keys and bad values, so ANY output fails the test. A copy of the service with an
#      unknown key must produce output, which shows that the check can fail.
#   2. `systemd-analyze security --offline=yes` of the service: the overall exposure must be at most
#      SECURITY_THRESHOLD (0-10; systemd calls <= 4.x "OK" and <= 1.x "SAFE").
#   3. The settings CONTRACT P1 names are present (verify does not require any of them).
#   4. Every system call edged makes (traced with strace -f while it serves /healthz, /metrics, the
#      status page, a topic, /echo and a static file with sendfile, then drains on SIGTERM) is allowed
#      by the unit's SystemCallFilter (@system-service without @privileged): a denied call would fail
#      with EPERM only on the board.
#   5. A hung or crashed edged is restarted: started with the unit's Environment= and sent the unit's
#      WatchdogSignal (what systemd sends when WatchdogSec expires), edged must end with a status that
#      RestartPreventExitStatus does not list, and leave its goroutine dump on stderr for the journal.
#      Without the unit's environment the Go runtime ends it with status 2, which shows the check can fail.
# Usage: scripts/test-systemd.sh [EDGED_BINARY] (default bin/edged; make test-systemd builds it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECURITY_THRESHOLD=${SECURITY_THRESHOLD:-2.5}
units=(deploy/systemd/edged.service deploy/systemd/edged.socket)
edged=${1:-bin/edged}

for tool in systemd-analyze man strace curl python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "test-systemd: $tool not found (scripts/install-test-deps.sh installs it)" >&2
		exit 1
	fi
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/share/man/man8"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/edged"
chmod 0755 "$root/usr/bin/edged"
if [[ -d /usr/lib/systemd/system ]]; then
	cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
else
	cp -a /lib/systemd/system "$root/usr/lib/systemd/"
fi
cp packaging/debian/edged.8 "$root/usr/share/man/man8/edged.8"
cp "${units[@]}" "$root/etc/systemd/system/"

# verify runs man(1) on the host for Documentation=man: pages; MANPATH points it at the scratch root.
verify() {
	MANPATH="$root/usr/share/man" SYSTEMD_PAGER='' systemd-analyze verify --root="$root" "$@" 2>&1
}

fail=0
out=$(verify edged.service edged.socket) || {
	echo "test-systemd: systemd-analyze verify failed" >&2
	fail=1
}
if [[ -n $out ]]; then
	echo "test-systemd: systemd-analyze verify printed (any output fails):" >&2
	echo "$out" >&2
	fail=1
else
	echo "test-systemd: systemd-analyze verify edged.service edged.socket: clean"
fi

# The check itself must be able to fail.
sed 's/^\[Service\]$/[Service]\nNoSuchSetting=yes/' deploy/systemd/edged.service >"$root/etc/systemd/system/edged-selftest.service"
if [[ -z $(verify edged-selftest.service || true) ]]; then
	echo "test-systemd: verify printed nothing for a unit with an unknown key: the check cannot fail" >&2
	fail=1
fi
rm "$root/etc/systemd/system/edged-selftest.service"

report=$(SYSTEMD_PAGER='' systemd-analyze security --offline=yes --root="$root" edged.service 2>&1) || {
	echo "$report" >&2
	echo "test-systemd: systemd-analyze security failed" >&2
	exit 1
}
line=$(grep 'Overall exposure level' <<<"$report" || true)
score=$(sed -n 's/.*Overall exposure level for edged.service: \([0-9.]*\).*/\1/p' <<<"$line")
if [[ -z $score ]]; then
	echo "$report" >&2
	echo "test-systemd: no exposure score in the output of systemd-analyze security" >&2
	exit 1
fi
echo "test-systemd: systemd-analyze security --offline=yes edged.service: exposure $score (${line##*: }), threshold $SECURITY_THRESHOLD"
if awk -v s="$score" -v t="$SECURITY_THRESHOLD" 'BEGIN { exit !(s > t) }'; then
	echo "test-systemd: exposure $score is above $SECURITY_THRESHOLD; the weak settings:" >&2
	grep '✗' <<<"$report" >&2 || true
	fail=1
fi

# CONTRACT P1: the settings the contract names, each checked by its exact line.
required=(
	'Type=notify'
	'WatchdogSec=*'
	'User=edged'
	'EnvironmentFile=-/etc/default/edged'
	'Restart=on-failure'
	'RestartPreventExitStatus=2 3'
	'NoNewPrivileges=yes'
	'ProtectSystem=strict'
	'ProtectHome=yes'
	'PrivateTmp=yes'
	'PrivateDevices=yes'
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6'
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE'
	'MemoryMax=*'
	'LimitNOFILE=*'
)
for want in "${required[@]}"; do
	found=0
	while IFS= read -r line; do
		# shellcheck disable=SC2053 # $want is a glob on purpose.
		if [[ $line == $want ]]; then
			found=1
		fi
	done <deploy/systemd/edged.service
	if ((!found)); then
		echo "test-systemd: edged.service lacks '$want'" >&2
		fail=1
	fi
done
for want in 'ListenStream=*' 'FileDescriptorName=http'; do
	if ! grep -qx -- "${want//\*/.*}" deploy/systemd/edged.socket; then
		echo "test-systemd: edged.socket lacks '$want'" >&2
		fail=1
	fi
done

# 4. The system calls edged makes against the unit's filter.
filters=$(sed -n 's/^SystemCallFilter=//p' deploy/systemd/edged.service)
expected_filters=$'@system-service\n~@privileged'
if [[ $filters != "$expected_filters" ]]; then
	echo "test-systemd: SystemCallFilter lines are now '${filters//$'\n'/ }': update the check below" >&2
	fail=1
fi
if [[ ! -x $edged ]]; then
	echo "test-systemd: $edged not found (make build)" >&2
	exit 1
fi
www="$root/www"
mkdir -p "$www"
head -c 1048576 /dev/zero >"$www/big.bin"
echo '<p>hi</p>' >"$www/index.html"
trace="$root/strace.out"
log="$root/edged.log"
: >"$log"
strace -f -qq -o "$trace" "$edged" serve --listen 127.0.0.1:0 --enable-echo --webroot "$www" 2>"$log" &
tracer=$!
addr=
for ((i = 0; i < 400; i++)); do
	addr=$(sed -n 's/.*msg="edged started" addr=\([^ ]*\).*/\1/p' "$log")
	[[ -n $addr ]] && break
	sleep 0.05
done
if [[ -z $addr ]]; then
	kill "$tracer" 2>/dev/null || true
	echo "test-systemd: edged did not start under strace:" >&2
	cat "$log" >&2
	exit 1
fi
for path in /healthz /metrics / /big.bin /index.html; do
	curl -sSf -o /dev/null "http://$addr$path"
done
curl -sSf -o /dev/null -X PUT --data-binary value "http://$addr/topics/t"
curl -sSf -o /dev/null -X POST --data-binary hello "http://$addr/echo"
pid=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' "$log")
kill -TERM "$pid"
wait "$tracer" || {
	echo "test-systemd: edged under strace exited $?:" >&2
	cat "$log" >&2
	fail=1
}
result=$(python3 - "$trace" <<'PY'
import re, subprocess, sys

# systemd-analyze syscall-filter lists each group with its members, some of them groups.
groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                           capture_output=True, text=True, check=True).stdout.splitlines():
    if line.startswith("@"):
        cur = line.split()[0]
        groups[cur] = []
    elif cur and line.startswith("    ") and not line.strip().startswith("#"):
        groups[cur].append(line.strip())

def expand(group):
    out = set()
    for member in groups.get(group, []):
        out |= expand(member) if member.startswith("@") else {member}
    return out

allowed = expand("@system-service") - expand("@privileged")
used = set()
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
    if m and not line.split(None, 1)[1].startswith(("+++", "---")):
        used.add(m.group(1))
print(len(used), " ".join(sorted(used - allowed - {"execve"})))
PY
)
# execve is strace starting edged, before systemd would apply the filter.
read -r used denied <<<"$result"
if [[ -n $denied ]]; then
	echo "test-systemd: edged makes system calls the unit's SystemCallFilter denies: $denied" >&2
	fail=1
else
	echo "test-systemd: all $used system calls edged made under strace are allowed by SystemCallFilter=@system-service ~@privileged"
fi
if ! grep -q '^[0-9]* *sendfile' "$trace"; then
	echo "test-systemd: edged did not call sendfile serving big.bin: the trace does not cover static files" >&2
	fail=1
fi

# 5. The watchdog's signal (and a crash, which the Go runtime ends the same way) against the unit's
# restart policy.
unit=deploy/systemd/edged.service
watchdog_signal=$(sed -n 's/^WatchdogSignal=//p' "$unit")
watchdog_signal=${watchdog_signal:-SIGABRT}
prevent=$(sed -n 's/^RestartPreventExitStatus=//p' "$unit")
unit_env=()
while IFS= read -r line; do
	read -ra words <<<"$line"
	unit_env+=("${words[@]}")
done < <(sed -n 's/^Environment=//p' "$unit")

# signalled_status ENV...: the status (as bash reports it: 128+N for signal N) of edged started with
# ENV and PATH only, sent the watchdog signal once it serves; its stderr is left in $root/abort.log.
signalled_status() {
	local alog=$root/abort.log pid status=0 i started=0
	: >"$alog"
	# No core file: the kernel would write it into the working directory.
	(ulimit -c 0 && exec env -i PATH=/usr/bin:/bin "$@" "$edged" serve --listen 127.0.0.1:0 >/dev/null 2>"$alog") &
	pid=$!
	for ((i = 0; i < 400; i++)); do
		if grep -q 'msg="edged started"' "$alog"; then
			started=1
			break
		fi
		sleep 0.05
	done
	if ((!started)); then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "not-started"
		return
	fi
	kill -s "$watchdog_signal" "$pid"
	{ wait "$pid"; } 2>/dev/null || status=$?
	echo "$status"
}

# prevented STATUS: whether RestartPreventExitStatus keeps systemd from restarting after STATUS (exit
# codes are numbers there, signals names).
prevented() {
	local tok sig=
	if (($1 > 128)); then
		sig=$(kill -l "$(($1 - 128))")
	fi
	for tok in $prevent; do
		if [[ -n $sig && ($tok == "SIG$sig" || $tok == "$sig") ]] || [[ -z $sig && $tok == "$1" ]]; then
			return 0
		fi
	done
	return 1
}

status=$(signalled_status "${unit_env[@]}")
if [[ $status == not-started ]]; then
	echo "test-systemd: edged did not start with the unit's environment (${unit_env[*]}):" >&2
	cat "$root/abort.log" >&2
	fail=1
elif ((status == 0)) || prevented "$status"; then
	echo "test-systemd: with the unit's environment (${unit_env[*]}) edged ended with status $status on $watchdog_signal, after which RestartPreventExitStatus=$prevent keeps systemd from restarting it: a hung or crashed edged would stay down" >&2
	fail=1
elif ! grep -q '^goroutine ' "$root/abort.log"; then
	echo "test-systemd: edged left no goroutine dump on $watchdog_signal: the journal would not say where it hung" >&2
	fail=1
else
	echo "test-systemd: on $watchdog_signal (WatchdogSec expired) edged ends with status $status, which Restart=on-failure restarts, after its goroutine dump"
fi
status=$(signalled_status)
if [[ $status != 2 ]]; then
	echo "test-systemd: without the unit's environment edged ended with status $status on $watchdog_signal, not the Go runtime's 2: the check above proves nothing" >&2
	fail=1
fi

if ((fail)); then
	exit 1
fi
echo "test-systemd: ok"
