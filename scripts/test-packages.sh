#!/usr/bin/env bash
# Tests the Debian packages `make deb` built (CONTRACT P2):
#   1. dpkg-deb --info/--contents of each: control fields, paths, modes, conffiles, and that the files
#      shipped are the repository's (units, /etc/default/edged, man page, gzip -9n without name/time);
#   2. lintian: no error and no warning (overrides: packaging/debian/lintian-overrides);
#   3. shellcheck on the maintainer scripts as shipped;
#   4. each binary extracted with dpkg-deb -x is a static ELF executable of its architecture and runs:
#      amd64 natively, arm64 under qemu-aarch64-static, armhf under qemu-arm-static on the Pi Zero's
#      ARM1176 core, and reports its GOARCH and level;
#   5. the amd64 package installed, upgraded, removed, reinstalled and purged with the real dpkg,
#      adduser and deb-systemd-helper in a throwaway root (an overlay over / in a private mount
#      namespace, discarded at the end), with stubs for systemctl and deb-systemd-invoke that record
#      what the maintainer scripts ask of systemd;
#   6. the packaged daemon with the unit's environment and the packaged /etc/default/edged: its memory
#      under load (VmHWM) stays below half the unit's MemoryMax.
# Usage: scripts/test-packages.sh DEB_DIR DEB_VERSION (make test-packages builds and passes them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# != 2)); then
	echo "usage: $0 DEB_DIR DEB_VERSION" >&2
	exit 2
fi
deb_dir=$1
deb_version=$2

for tool in dpkg-deb lintian shellcheck readelf qemu-arm-static qemu-aarch64-static unshare chroot curl wrk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "test-packages: $tool not found (scripts/install-test-deps.sh installs it)" >&2
		exit 1
	fi
done

for arch in amd64 arm64 armhf; do
	if [[ ! -f $deb_dir/edged_${deb_version}_${arch}.deb ]]; then
		echo "test-packages: $deb_dir/edged_${deb_version}_${arch}.deb is missing (make deb builds it)" >&2
		exit 1
	fi
done

work=$(mktemp -d)
daemon_pid=
cleanup() {
	if [[ -n $daemon_pid ]]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() {
	echo "test-packages: FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect_eq WHAT GOT WANT
expect_eq() {
	if [[ $2 != "$3" ]]; then
		fail "$1: got '$2', want '$3'"
	fi
}

# gzip_clean FILE: gzip -9n leaves no file name (FLG.FNAME, bit 3 of byte 3) and no time (bytes 4-7).
gzip_clean() {
	local header
	header=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
	[[ ${header:0:4} == 1f8b ]] && (((0x${header:6:2} & 0x08) == 0)) && [[ ${header:8:8} == 00000000 ]]
}

# deb_file DEB PATH: a file of the package's data archive on stdout.
deb_file() {
	dpkg-deb --fsys-tarfile "$1" | tar -xO "./${2#/}"
}

# --- 0: the version mapping of scripts/deb-version.sh ------------------------------------------------

# Each `git describe` (with the commit count of an untagged one, or -) maps to the version beside it,
# and the versions are in increasing order: the untagged ones by their count, not their hash.
previous=
while read -r describe commits want; do
	args=("$describe")
	[[ $commits != - ]] && args+=("$commits")
	got=$(bash scripts/deb-version.sh "${args[@]}") || got="(error)"
	expect_eq "deb-version.sh ${args[*]}" "$got" "$want"
	if [[ -n $previous ]] && ! dpkg --compare-versions "$previous" lt "$got"; then
		fail "deb-version.sh: $previous does not sort before $got"
	fi
	previous=$got
done <<'CASES'
0.0.0-dev         -  0.0.0~dev
fe62b1f           9  0.0.0~git9.fe62b1f
0e62b1f           10 0.0.0~git10.0e62b1f
0e62b1f-dirty     10 0.0.0~git10.0e62b1f.dirty
a0e62b1           11 0.0.0~git11.a0e62b1
v1.2.3-rc1        -  1.2.3~rc1
v1.2.3-rc1-2-gabcdef0 - 1.2.3~rc1+git2.abcdef0
v1.2.3            -  1.2.3
v1.2.3-dirty      -  1.2.3+dirty
v1.2.3-4-g0e62b1f -  1.2.3+git4.0e62b1f
v1.2.3-4-g0e62b1f-dirty - 1.2.3+git4.0e62b1f.dirty
v1.2.3-12-g0e62b1f -  1.2.3+git12.0e62b1f
CASES
if bash scripts/deb-version.sh 'not a version' >/dev/null 2>&1; then
	fail "deb-version.sh accepted 'not a version'"
fi
if bash scripts/deb-version.sh 0e62b1f x >/dev/null 2>&1; then
	fail "deb-version.sh accepted the commit count 'x'"
fi
# Without a count, an untagged build's is its commit's in this repository (the Makefile passes none);
# a hash that is no commit here has none.
if bash scripts/deb-version.sh 0000000 >/dev/null 2>&1; then
	fail "deb-version.sh mapped 0000000, which is no commit here, without a count"
fi
if head=$(git rev-parse --short HEAD 2>/dev/null); then
	expect_eq "deb-version.sh $head" "$(bash scripts/deb-version.sh "$head")" "0.0.0~git$(git rev-list --count HEAD).$head"
fi

# --- 1-4: each package -------------------------------------------------------------------------------

declare -A want_platform=(
	[amd64]='linux/amd64'
	[arm64]='linux/arm64'
	[armhf]='linux/arm GOARM=6'
)
declare -A want_machine=(
	[amd64]='Advanced Micro Devices X86-64'
	[arm64]='AArch64'
	[armhf]='ARM'
)
declare -A runner=(
	[amd64]=''
	[arm64]='qemu-aarch64-static'
	[armhf]='qemu-arm-static -cpu arm1176'
)

for arch in amd64 arm64 armhf; do
	deb="$deb_dir/edged_${deb_version}_${arch}.deb"
	echo "test-packages: $deb ($(stat -c %s "$deb") bytes)"

	# Control fields.
	expect_eq "$arch Package" "$(dpkg-deb --field "$deb" Package)" edged
	expect_eq "$arch Version" "$(dpkg-deb --field "$deb" Version)" "$deb_version"
	expect_eq "$arch Architecture" "$(dpkg-deb --field "$deb" Architecture)" "$arch"
	expect_eq "$arch Section" "$(dpkg-deb --field "$deb" Section)" net
	expect_eq "$arch Priority" "$(dpkg-deb --field "$deb" Priority)" optional
	[[ $(dpkg-deb --field "$deb" Depends) == *adduser* ]] || fail "$arch: Depends lacks adduser"
	[[ -n $(dpkg-deb --field "$deb" Maintainer) ]] || fail "$arch: no Maintainer"
	[[ $(dpkg-deb --field "$deb" Description) == *"HTTP/1.1 and WebSocket daemon"* ]] || fail "$arch: Description"
	dpkg --compare-versions "$deb_version" gt 0~ || fail "$arch: $deb_version is not a valid Debian version"

	# Paths, owners and modes: "MODE OWNER PATH" for each regular file and symlink.
	listing=$(dpkg-deb --contents "$deb" | awk '$1 !~ /^d/ { print $1, $2, $6 }')
	for want in \
		'-rwxr-xr-x root/root ./usr/bin/edged' \
		'-rw-r--r-- root/root ./lib/systemd/system/edged.service' \
		'-rw-r--r-- root/root ./lib/systemd/system/edged.socket' \
		'-rw-r--r-- root/root ./etc/default/edged' \
		'-rw-r--r-- root/root ./usr/share/doc/edged/copyright' \
		'-rw-r--r-- root/root ./usr/share/doc/edged/changelog.gz' \
		'-rw-r--r-- root/root ./usr/share/man/man8/edged.8.gz' \
		'-rw-r--r-- root/root ./usr/share/lintian/overrides/edged'; do
		grep -qxF -- "$want" <<<"$listing" || fail "$arch: no '$want' in the contents:"$'\n'"$listing"
	done
	expect_eq "$arch number of files" "$(wc -l <<<"$listing")" 8

	# The files shipped are the repository's.
	cmp -s <(deb_file "$deb" /lib/systemd/system/edged.service) deploy/systemd/edged.service || fail "$arch: edged.service differs from deploy/systemd/"
	cmp -s <(deb_file "$deb" /lib/systemd/system/edged.socket) deploy/systemd/edged.socket || fail "$arch: edged.socket differs from deploy/systemd/"
	cmp -s <(deb_file "$deb" /etc/default/edged) deploy/default/edged || fail "$arch: /etc/default/edged differs from deploy/default/edged"
	cmp -s <(deb_file "$deb" /usr/share/doc/edged/copyright) packaging/debian/copyright || fail "$arch: copyright differs"
	deb_file "$deb" /usr/share/man/man8/edged.8.gz >"$work/edged.8.gz"
	deb_file "$deb" /usr/share/doc/edged/changelog.gz >"$work/changelog.gz"
	cmp -s <(gzip -dc "$work/edged.8.gz") packaging/debian/edged.8 || fail "$arch: the man page differs from packaging/debian/edged.8"
	cmp -s <(gzip -dc "$work/changelog.gz") packaging/debian/changelog || fail "$arch: the changelog differs from packaging/debian/changelog"
	gzip_clean "$work/edged.8.gz" || fail "$arch: edged.8.gz holds a name or a time (use gzip -9n)"
	gzip_clean "$work/changelog.gz" || fail "$arch: changelog.gz holds a name or a time (use gzip -9n)"

	# Control archive: conffiles and the maintainer scripts.
	ctl="$work/control-$arch"
	dpkg-deb --control "$deb" "$ctl"
	expect_eq "$arch conffiles" "$(cat "$ctl/conffiles")" /etc/default/edged
	for script in postinst prerm postrm; do
		if [[ ! -x $ctl/$script ]]; then
			fail "$arch: no executable $script"
			continue
		fi
		cmp -s "$ctl/$script" "packaging/scripts/$script" || fail "$arch: $script differs from packaging/scripts/"
	done
	shellcheck -s sh "$ctl/postinst" "$ctl/prerm" "$ctl/postrm" || fail "$arch: shellcheck on the maintainer scripts"

	# lintian: errors and warnings fail; information tags are shown.
	lint=$(lintian --display-info "$deb" 2>&1 | grep -v '^running with root privileges' || true)
	if [[ -n $lint ]]; then
		while IFS= read -r line; do
			echo "test-packages: lintian $arch: $line"
		done <<<"$lint"
	else
		echo "test-packages: lintian $arch: clean"
	fi
	if grep -qE '^[EW]: ' <<<"$lint"; then
		fail "$arch: lintian reports errors or warnings"
	fi

	# The binary is a static ELF executable for the package's architecture (no program interpreter),
	# runs on it (qemu-user for ARM: there is no ARM libc here) and names it.
	root="$work/root-$arch"
	dpkg-deb -x "$deb" "$root"
	machine=$(readelf -h "$root/usr/bin/edged" | sed -n 's/^ *Machine: *//p')
	expect_eq "$arch ELF machine" "$machine" "${want_machine[$arch]}"
	if readelf -lW "$root/usr/bin/edged" | grep -q INTERP; then
		fail "$arch: usr/bin/edged is dynamically linked"
	fi
	start=$(date +%s%N)
	# shellcheck disable=SC2086 # runner is a command line.
	if out=$(${runner[$arch]} "$root/usr/bin/edged" version 2>&1); then
		ms=$((($(date +%s%N) - start) / 1000000))
		platform=$(sed -n 's/^platform: //p' <<<"$out")
		echo "test-packages: $arch: ${runner[$arch]:-native} usr/bin/edged version: $platform (${ms} ms)"
		[[ $platform == "${want_platform[$arch]}"* ]] || fail "$arch: platform '$platform', want '${want_platform[$arch]}'"
		[[ $out == *"edged "* ]] || fail "$arch: version output: $out"
	else
		fail "$arch: ${runner[$arch]:-native} usr/bin/edged version failed: $out"
	fi
done

# The ARM1176 check can fail: the GOARMv7 build of make cross dies there with an illegal instruction.
if [[ -x bin/edged-linux-armv7 ]]; then
	# No core file (qemu-user writes one where the limit allows), and no "Illegal instruction" from bash.
	if { (ulimit -c 0 && qemu-arm-static -cpu arm1176 bin/edged-linux-armv7 version) >/dev/null; } 2>/dev/null; then
		fail "the GOARM=7 build ran on an ARM1176 under qemu: the armhf check proves nothing"
	else
		echo "test-packages: bin/edged-linux-armv7 (GOARM=7) fails on the ARM1176, as it must"
	fi
fi

# --- 5: install, upgrade, remove, reinstall, purge in a throwaway root ----------------------------------

install_test() {
	local deb=$deb_dir/edged_${deb_version}_amd64.deb
	if ((EUID != 0)); then
		echo "the install test needs root (unshare --mount, mount -t overlay, chroot, dpkg)"
		return 1
	fi
	local top=$work/overlay
	mkdir -p "$top"
	cp "$deb" "$work/edged.deb"
	cat >"$work/inside.sh" <<'INSIDE'
#!/bin/bash
# Runs in the throwaway root. Each step prints "ok ..." or "FAIL ..."; the calls the maintainer scripts
# make to systemctl and deb-systemd-invoke are recorded in /tmp/calls.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
failed=0
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failed=1; fi
}
calls() { # calls STEP EXPECTED: the calls recorded since the last step, then forget them
	local got
	got=$(cat /tmp/calls 2>/dev/null || true)
	: >/tmp/calls
	if [[ $got == "$2" ]]; then echo "ok   $1: systemd calls: ${got//$'\n'/; }"; else
		echo "FAIL $1: systemd calls:"; echo "$got" | sed 's/^/       got  /'; echo "$2" | sed 's/^/       want /'; failed=1; fi
}
dpkg_do() { # dpkg_do STEP ARGS...
	local step=$1
	shift
	if dpkg "$@" >/tmp/dpkg.log 2>&1; then echo "ok   $step: dpkg $*"; else
		echo "FAIL $step: dpkg $*"; sed 's/^/       /' /tmp/dpkg.log; failed=1; fi
}
wants=/etc/systemd/system/multi-user.target.wants/edged.service
masked() { [[ $(readlink "/etc/systemd/system/$1") == /dev/null ]]; }
enabled() { [[ -L $wants ]]; }
user_ok() { # a system user and group without a login shell
	local uid shell
	uid=$(getent passwd edged | cut -d: -f3)
	shell=$(getent passwd edged | cut -d: -f7)
	[[ -n $uid ]] && ((uid < 1000)) && [[ $shell == */nologin || $shell == */false ]] && getent group edged >/dev/null
}

# systemd "runs": the maintainer scripts then reload it and start or stop units, through these stubs,
# which record each call with its caller (edged.postinst ...). deb-systemd-helper's own calls are
# init-system-helpers' business: its `systemctl --root=/ preset` goes to the real systemctl, which
# works offline, and its daemon-reload nowhere.
mkdir -p /run/systemd/system /usr/local/sbin
real_systemctl=$(PATH=/usr/bin:/bin command -v systemctl)
cat >/usr/local/sbin/systemctl <<STUB
#!/bin/sh
caller=\$(cat /proc/\$PPID/comm)
case \$caller in
deb-systemd-hel*)
	case " \$* " in *" daemon-reload "*) exit 0 ;; esac
	exec $real_systemctl "\$@" ;;
esac
echo "\$caller: systemctl \$*" >>/tmp/calls
STUB
cat >/usr/local/sbin/deb-systemd-invoke <<'STUB'
#!/bin/sh
echo "$(cat /proc/$PPID/comm): deb-systemd-invoke $*" >>/tmp/calls
STUB
chmod 0755 /usr/local/sbin/systemctl /usr/local/sbin/deb-systemd-invoke
: >/tmp/calls

dpkg_do install -i /tmp/edged.deb
check "install: status" [ "$(dpkg-query -W -f='${Status}' edged)" = "install ok installed" ]
check "install: /usr/bin/edged runs" /usr/bin/edged version
check "install: system user and group edged" user_ok
check "install: /etc/default/edged is a conffile" grep -q '/etc/default/edged' <(dpkg-query -W -f='${Conffiles}' edged)
check "install: edged.service enabled" enabled
check "install: edged.socket not enabled" test ! -e /etc/systemd/system/sockets.target.wants/edged.socket
calls install "edged.postinst: systemctl --system daemon-reload
edged.postinst: deb-systemd-invoke start edged.service"

echo 'EDGED_WORKERS=2' >>/etc/default/edged
dpkg_do upgrade -i /tmp/edged.deb
check "upgrade: the administrator's /etc/default/edged is kept" grep -qx 'EDGED_WORKERS=2' /etc/default/edged
check "upgrade: still enabled" enabled
calls upgrade "edged.postrm: systemctl --system daemon-reload
edged.postinst: systemctl --system daemon-reload
edged.postinst: deb-systemd-invoke restart edged.service"

# The administrator disables the service: an upgrade must not enable it again.
"$real_systemctl" --root=/ --quiet disable edged.service
check "disable: the administrator's disable took effect" test ! -e "$wants"
dpkg_do "upgrade after disable" -i /tmp/edged.deb
check "upgrade after disable: stays disabled" test ! -e "$wants"
"$real_systemctl" --root=/ --quiet enable edged.service
check "enable: the administrator's enable took effect" enabled
: >/tmp/calls

dpkg_do remove -r edged
check "remove: /usr/bin/edged gone" test ! -e /usr/bin/edged
check "remove: units gone" test ! -e /lib/systemd/system/edged.service -a ! -e /lib/systemd/system/edged.socket
check "remove: /etc/default/edged kept" test -f /etc/default/edged
check "remove: user kept" user_ok
check "remove: edged.service masked" masked edged.service
check "remove: edged.socket masked" masked edged.socket
calls remove "edged.prerm: deb-systemd-invoke stop edged.socket edged.service
edged.postrm: systemctl --system daemon-reload"

dpkg_do reinstall -i /tmp/edged.deb
check "reinstall: edged.service not masked" eval '! masked edged.service'
check "reinstall: edged.socket not masked" eval '! masked edged.socket'
check "reinstall: enabled" enabled
check "reinstall: the kept /etc/default/edged is used" grep -qx 'EDGED_WORKERS=2' /etc/default/edged
calls reinstall "edged.postinst: systemctl --system daemon-reload
edged.postinst: deb-systemd-invoke restart edged.service"

dpkg_do purge -P edged
check "purge: package gone" test -z "$(dpkg-query -W -f='${Status}' edged 2>/dev/null | grep installed)"
check "purge: /etc/default/edged gone" test ! -e /etc/default/edged
check "purge: user gone" eval '! getent passwd edged >/dev/null'
check "purge: no unit state left" eval '! masked edged.service && ! masked edged.socket && test ! -e '"$wants"
check "purge: no deb-systemd-helper state left" eval '! grep -rqs edged /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked'
calls purge "edged.prerm: deb-systemd-invoke stop edged.socket edged.service
edged.postrm: systemctl --system daemon-reload
edged.postrm: systemctl --system daemon-reload"

exit $failed
INSIDE
	# A private mount namespace: the overlay and everything written to it vanish with the namespace.
	# shellcheck disable=SC2016 # the script expands its own arguments.
	unshare --mount --propagation private /bin/bash -euo pipefail -c '
		top=$1 work=$2
		mount -t tmpfs tmpfs "$top"
		mkdir -p "$top/upper" "$top/work" "$top/root"
		mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
		mount -t proc proc "$top/root/proc"
		mount --rbind /dev "$top/root/dev"
		mkdir -p "$top/root/tmp"
		cp "$work/edged.deb" "$top/root/tmp/edged.deb"
		cp "$work/inside.sh" "$top/root/tmp/inside.sh"
		chroot "$top/root" /bin/bash /tmp/inside.sh
	' install-test "$top" "$work"
}

echo "test-packages: install, upgrade, remove, reinstall and purge of the amd64 package in a throwaway root"
start=$(date +%s%N)
if ! install_test 2>&1 | sed 's/^/test-packages:   /'; then
	fail "install test in the throwaway root"
fi
echo "test-packages: install test took $((($(date +%s%N) - start) / 1000000)) ms"
if getent passwd edged >/dev/null 2>&1 && ! dpkg-query -W edged >/dev/null 2>&1; then
	fail "the install test leaked the user edged into this machine"
fi

# --- 6: the packaged daemon's memory against the unit's MemoryMax -------------------------------------

# size_bytes 64M|64MiB|...: bytes, as systemd and edged read sizes (K, M, G are powers of 1024).
size_bytes() {
	local v=$1 n unit
	n=${v%%[!0-9]*}
	unit=${v#"$n"}
	case $unit in
	'') echo "$n" ;;
	K | KiB) echo $((n << 10)) ;;
	M | MiB) echo $((n << 20)) ;;
	G | GiB) echo $((n << 30)) ;;
	*) return 1 ;;
	esac
}

memory_test() {
	local root=$work/root-amd64 unit=$work/root-amd64/lib/systemd/system/edged.service
	local memmax memmax_bytes log=$work/daemon.log
	memmax=$(sed -n 's/^MemoryMax=//p' "$unit")
	memmax_bytes=$(size_bytes "$memmax") || {
		fail "MemoryMax=$memmax: not a size this test reads"
		return
	}
	# The environment systemd gives the service: the unit's Environment= lines, then the packaged
	# EnvironmentFile (its assignments win over Environment=).
	local -a env=()
	while IFS= read -r kv; do
		env+=("$kv")
	done < <(sed -n 's/^Environment=//p' "$unit"; grep -E '^[A-Z_]+=' "$root/etc/default/edged" || true)
	# Created first: the loop below may read it before the daemon's shell has opened it.
	: >"$log"
	env -i PATH=/usr/bin:/bin "${env[@]}" "$root/usr/bin/edged" serve --listen 127.0.0.1:0 2>"$log" &
	daemon_pid=$!
	local addr='' i
	for ((i = 0; i < 200; i++)); do
		addr=$(sed -n 's/.*msg="edged started" addr=\([^ ]*\).*/\1/p' "$log")
		[[ -n $addr ]] && break
		sleep 0.05
	done
	if [[ -z $addr ]]; then
		fail "the packaged daemon did not start:"$'\n'"$(cat "$log")"
		return
	fi
	local budget golimit
	budget=$(sed -n 's/.* memory_budget=\([0-9]*\).*/\1/p' "$log")
	golimit=$(sed -n 's/.* go_memory_limit=\([0-9]*\).*/\1/p' "$log")
	local idle
	idle=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status")

	# Load: every topic filled to the largest value, wrk on /healthz, the status page and /metrics.
	local topics_max topic_bytes value=$work/value
	topics_max=$(sed -n 's/.* topics_max=\([0-9]*\).*/\1/p' "$log")
	topic_bytes=$(sed -n 's/.* topic_max_bytes=\([0-9]*\).*/\1/p' "$log")
	head -c "$topic_bytes" /dev/urandom >"$value"
	for ((i = 1; i < topics_max; i++)); do
		curl -sS -o /dev/null -w '%{http_code}\n' -X PUT --data-binary "@$value" "http://$addr/topics/load/$i"
	done | sort | uniq -c | sed 's/^/test-packages:   topic PUTs: /'
	for path in /healthz / /metrics; do
		wrk -t1 -c64 -d2s "http://$addr$path" | sed -n 's/^Requests\/sec:/test-packages:   wrk '"${path//\//\\/}"' req\/s:/p'
	done
	local topics_now
	topics_now=$(curl -sS "http://$addr/metrics" | sed -n 's/^edged_topics \([0-9]*\)$/\1/p')
	local rss hwm
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon_pid/status")
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || fail "the packaged daemon exited $? after SIGTERM"
	daemon_pid=

	echo "test-packages: packaged daemon, defaults: budget $((budget >> 10)) KiB, Go memory limit $((golimit >> 10)) KiB; VmRSS idle $idle KiB, after the load $rss KiB, peak VmHWM $hwm KiB; MemoryMax=$memmax ($((memmax_bytes >> 10)) KiB)"
	expect_eq "topics after the load" "$topics_now" "$topics_max"
	# Headroom: the peak and the Go runtime's soft limit both below half the cgroup's hard limit, so
	# the kernel's share (socket buffers, page cache of static files, charged to the cgroup) fits.
	((hwm << 10 <= memmax_bytes / 2)) || fail "peak RSS $hwm KiB is above half of MemoryMax=$memmax"
	((golimit <= memmax_bytes / 2)) || fail "Go memory limit $golimit is above half of MemoryMax=$memmax"
}
memory_test

if ((failures)); then
	echo "test-packages: $failures failure(s)" >&2
	exit 1
fi
echo "test-packages: ok"
