#!/usr/bin/env bash
# The systemd guest's test runner (tests/systemd/run.sh boots the guest; its rrun-tests.service
# runs this from the payload disk, mounted on /payload, with the output on the serial console).
#
# Prints the guest's facts, then each section's "PASS name" / "FAIL name: reason" lines (details
# indented below a failure), "TIME section <name> <secs>s" for each section and, last,
# "RESULT: N passed, M failed". Daemon logs and the runtime's command lines go to
# /payload/logs (run.sh keeps them with KEEP_TMP=1).
#
# /payload/env sets RUNTIME (a runtime of the guest to test instead of /payload/rrun) and
# SYSTEMD_SECTIONS.
set -uo pipefail

P=/payload
TD=$P/tests
LOGS=$P/logs
echo "guest: runner start"
# Kernel messages would cut into the test lines on the console.
echo 1 >/proc/sys/kernel/printk
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C.UTF-8
cd /

RUNTIME=
SYSTEMD_SECTIONS=all
# shellcheck disable=SC2034 # read by bench.sh, sourced below
BENCH_ROUNDS=15
# shellcheck source=/dev/null
. "$P/env"

# tests/clients/lib.sh: run, step, check, has, hasnt, eq, wait_for, gone, wait_daemon, stop_pid.
# shellcheck source=tests/clients/lib.sh
. "$TD/lib.sh"
# The PASS/FAIL lines in the shape run.sh counts: "PASS section: name", "FAIL section: name".
pass() {
	PASSED=$((PASSED + 1))
	echo "PASS $SECTION: $1"
}
fail() {
	FAILED=$((FAILED + 1))
	FAILS+=("$SECTION: $1")
	echo "FAIL $SECTION: $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 15 | sed 's/^/    | /'
	return 0
}
skip() {
	SKIPPED=$((SKIPPED + 1))
	echo "SKIP $SECTION: $1"
}
SECTION=guest

# --- The runtime under test: a wrapper that records every command line ------------------------
if [ -n "$RUNTIME" ]; then
	RT_REAL=$RUNTIME
	IS_RRUN=0
else
	install -m 0755 "$P/rrun" /usr/local/sbin/rrun.real
	RT_REAL=/usr/local/sbin/rrun.real
	IS_RRUN=1
fi
RT=/usr/local/bin/rrun
CALLS=/run/rrun-calls.log
: >"$CALLS"
cat >"$RT" <<EOF
#!/bin/sh
echo "\$*" >>$CALLS
exec $RT_REAL "\$@"
EOF
chmod 755 "$RT"
calls_count() { wc -l <"$CALLS"; }
calls_since() { tail -n +"$(($1 + 1))" "$CALLS"; }

# --- Facts -------------------------------------------------------------------------------------
timeout 300 systemctl is-system-running --wait >/dev/null 2>&1
echo "guest: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "guest: pid 1: $(cat /proc/1/comm) ($(systemctl --version | head -n 1)), system state: $(systemctl is-system-running 2>&1)"
echo "guest: boot: $(systemd-analyze time 2>&1 | head -n 1)"
echo "guest: cgroup mounts: $(awk '$3 ~ /^cgroup/ { printf "%s %s %s; ", $1, $2, $3 }' /proc/mounts)"
echo "guest: cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "guest: cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "guest: runtime under test: $RT_REAL ($("$RT_REAL" --version 2>&1 | head -n 1))"
echo "guest: $(docker --version 2>&1), $(docker-compose --version 2>&1)"
echo "guest: $(podman --version 2>&1), $(containerd --version 2>&1), $(runc --version 2>&1 | head -n 1)"
if systemctl --failed --plain --no-legend | grep -q .; then
	echo "guest: failed units: $(systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
fi

# --- Sections ----------------------------------------------------------------------------------
ALL_SECTIONS="driver docker-systemd podman-systemd containerd-systemd docker-cgroupfs podman-cgroupfs containerd-cgroupfs cri-systemd"
# Run only when named: the driver's cost (make bench, through bench/systemd.sh).
EXTRA_SECTIONS="bench"
sections=()
for w in $SYSTEMD_SECTIONS; do
	case $w in
	all) read -ra sections <<<"$ALL_SECTIONS" ;;
	systemd | cgroupfs) sections+=("docker-$w" "podman-$w" "containerd-$w") ;;
	docker | podman | containerd) sections+=("$w-systemd" "$w-cgroupfs") ;;
	*)
		if [[ " $ALL_SECTIONS $EXTRA_SECTIONS " == *" $w "* ]]; then
			sections+=("$w")
		else
			SECTION=guest
			fail "unknown section '$w' in SYSTEMD_SECTIONS (known: $ALL_SECTIONS systemd cgroupfs docker podman containerd)"
		fi
		;;
	esac
done

# driver: every t_<name> of driver.sh, each in its own bash (helpers.sh first), in file order.
sec_driver() {
	if [ ! -f "$TD/driver.sh" ]; then
		echo "guest: no driver.sh: section driver skipped"
		return
	fi
	export RRUN=$RT_REAL IS_RRUN BUNDLE_ROOTFS=$P/rootfs BUNDLE_CONFIG=$P/bundle/config.json
	export RRUN_ROOT=/run/rrun-driver
	mkdir -p "$RRUN_ROOT"
	local names t out rc log
	if ! out=$(bash -c '. "$1"; . "$2"' _ "$TD/helpers.sh" "$TD/driver.sh" 2>&1 </dev/null) || [ -n "$out" ]; then
		fail "driver.sh: sourcing it fails or prints" "$out"
	fi
	# shellcheck disable=SC2016 # the arguments of bash -c
	names=$(bash -c '. "$1"; . "$2"; declare -F' _ "$TD/helpers.sh" "$TD/driver.sh" </dev/null 2>/dev/null |
		awk '$3 ~ /^t_/ { print $3 }')
	if [ -z "$names" ]; then
		fail "driver.sh defines no t_<name> function"
		return
	fi
	# The file's order first, then any defined otherwise.
	names=$({
		grep -oE '^[[:space:]]*(function[[:space:]]+)?t_[A-Za-z0-9_]+' "$TD/driver.sh" | awk '{ print $NF }' | grep -Fxf <(echo "$names")
		echo "$names"
	} | awk '!seen[$0]++')
	for t in $names; do
		export WORK=/tmp/driver/${t#t_}
		rm -rf "$WORK"
		mkdir -p "$WORK"
		# The output goes to a file, never a pipe: a container started by the test inherits it
		# and would hold a pipe open for as long as it lives.
		log=$LOGS/driver-${t#t_}.log
		# shellcheck disable=SC2016 # the arguments of bash -c
		# A trace of the test (set -x) in driver-NAME.trace, beside its output.
		(cd "$WORK" && exec timeout -k 10 "${DRIVER_TEST_TIMEOUT:-300}" bash -c \
			'exec 9>"$4"; BASH_XTRACEFD=9; . "$1"; . "$2"; set -x; "$3"' _ \
			"$TD/helpers.sh" "$TD/driver.sh" "$t" "${log%.log}.trace") </dev/null >"$log" 2>&1
		rc=$?
		out=$(cat "$log")
		if [ $rc -eq 0 ]; then
			pass "${t#t_}"
		else
			local why
			why=$(printf '%s\n' "$out" | awk 'NF { l = $0 } END { print l }')
			[ $rc -eq 124 ] && why="timed out after ${DRIVER_TEST_TIMEOUT:-300}s${why:+; last line: $why}"
			fail "${t#t_}: ${why:-exit status $rc}" "$out"
		fi
	done
}

# shellcheck source=tests/systemd/engines.sh
. "$TD/engines.sh"
# shellcheck source=tests/systemd/bench.sh
. "$TD/bench.sh"

# cri-systemd: make test-cri's kubelet sequence (tests/cri/run.sh, from /payload/repo) with
# containerd's SystemdCgroup = true, as kubeadm nodes run: pods in systemd slices, containers in
# scopes the runtime asks systemd for. Debian's python3-grpcio and protoc instead of a venv;
# the images made on the host. Its PASS:/FAIL: lines are counted as this section's.
sec_cri() {
	local handler=rrun log=$LOGS/cri.log line rc
	[ -n "$RUNTIME" ] && handler=runc
	mkdir -p "$LOGS/cri"
	CRI_SYSTEMD=1 CRI_HANDLER=$handler CRI_SECTIONS=sequence NO_INSTALL=1 \
		CRI_PY=/usr/bin/python3 CRI_PROTOC=protoc CRI_IMAGES=$P/cri-images CRI_GEN=/tmp/cri-gen \
		RRUN_BIN=$RT_REAL KEEP_LOGS=$LOGS/cri \
		timeout -k 10 1200 bash "$P/repo/tests/cri/run.sh" </dev/null >"$log" 2>&1
	rc=$?
	# shellcheck disable=SC2094 # the log is only read here
	while IFS= read -r line; do
		case $line in
		"PASS: "*) pass "${line#PASS: }" ;;
		"FAIL: "*) fail "${line#FAIL: }" "$(grep -F -A8 -- "$line" "$log" | tail -n +2)" ;;
		"NOTE: "*) echo "$line" ;;
		esac
	done <"$log"
	if [ $rc -ne 0 ] && ! grep -q '^FAIL: ' "$log"; then
		fail "tests/cri/run.sh exited $rc without a FAIL line" "$(tail -n 20 "$log")"
	fi
	tail -n 3 "$log" | sed 's/^/guest: cri: /'
}

for s in "${sections[@]}"; do
	SECTION=$s
	echo "guest: --- section $s"
	t_start=$SECONDS
	case $s in
	driver) sec_driver ;;
	docker-systemd) sec_docker systemd ;;
	docker-cgroupfs) sec_docker cgroupfs ;;
	podman-systemd) sec_podman systemd ;;
	podman-cgroupfs) sec_podman cgroupfs ;;
	containerd-systemd) sec_containerd systemd ;;
	containerd-cgroupfs) sec_containerd cgroupfs ;;
	cri-systemd) sec_cri ;;
	bench) sec_bench ;;
	esac
	echo "TIME section $s $((SECONDS - t_start))s"
done

SECTION=guest
cp "$CALLS" "$LOGS/runtime-calls.log" 2>/dev/null
journalctl -b --no-pager >"$LOGS/journal.log" 2>&1
echo "TIME guest total ${SECONDS}s (after boot)"
if [ ${#FAILS[@]} -gt 0 ]; then
	echo "guest: failed:"
	printf '  %s\n' "${FAILS[@]}"
fi
echo "RESULT: $PASSED passed, $FAILED failed"
