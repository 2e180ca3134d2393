# shellcheck shell=bash
# The systemd driver's cost, measured in the systemd guest (section "bench" of guest.sh, run by
# `make bench` through bench/systemd.sh): create + delete --force of a sleeping busybox
# container, with the cgroupfs driver (an absolute cgroupsPath of the bench's own) and with
# --systemd-cgroup (system.slice:<runtime>-bench:<id>), for rrun, runc and crun where the guest
# has them, the runtimes and drivers interleaved round by round so that the guest's noise
# (qemu TCG) falls on all of them alike. Prints one "BENCH <runtime> <driver> <median ms>
# <min ms> <runs>" line per pair; bench/systemd.sh turns them into ratios.
#
# Sourced by guest.sh: uses $RT_REAL (rrun), $P, $TD, pass/fail, and helpers.sh's mkbundle.

bench_one() {
	# bench_one RUNTIME DRIVER BUNDLE ID: one create + delete --force, in ms on stdout.
	local rt=$1 drv=$2 b=$3 id=$4 t0 t1 flag=
	[ "$drv" = systemd ] && flag=--systemd-cgroup
	t0=$(date +%s%N)
	# shellcheck disable=SC2086 # an empty flag is no argument
	"$rt" --root "/run/bench-$(basename "$rt")" $flag create --bundle "$b" "$id" </dev/null >/dev/null 2>"$WORK/err" ||
		{
			echo "create failed: $rt $drv: $(cat "$WORK/err")" >&2
			return 1
		}
	# shellcheck disable=SC2086
	"$rt" --root "/run/bench-$(basename "$rt")" $flag delete --force "$id" </dev/null >/dev/null 2>"$WORK/err" ||
		{
			echo "delete failed: $rt $drv: $(cat "$WORK/err")" >&2
			return 1
		}
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

sec_bench() {
	local rounds=${BENCH_ROUNDS:-15} runtimes=() r drv name id ms
	WORK=/tmp/bench
	mkdir -p "$WORK"
	# shellcheck source=tests/systemd/helpers.sh
	. "$TD/helpers.sh"
	BUNDLE_ROOTFS=$P/rootfs BUNDLE_CONFIG=$P/bundle/config.json
	runtimes+=("rrun=$RT_REAL")
	[ -x /usr/sbin/runc ] && runtimes+=("runc=/usr/sbin/runc")
	[ -x /usr/bin/crun ] && runtimes+=("crun=/usr/bin/crun")
	for r in "${runtimes[@]}"; do
		name=${r%%=*}
		mkbundle "$WORK/$name-cgroupfs" "/rrun-bench/$name"
		mkbundle "$WORK/$name-systemd" "system.slice:$name-bench:b"
		: >"$WORK/$name-cgroupfs.ms"
		: >"$WORK/$name-systemd.ms"
	done
	# One warm-up each (page cache, systemd's first slice load).
	for r in "${runtimes[@]}"; do
		name=${r%%=*}
		for drv in cgroupfs systemd; do
			bench_one "${r#*=}" "$drv" "$WORK/$name-$drv" "bench-$name" >/dev/null || true
		done
	done
	for ((i = 0; i < rounds; i++)); do
		for r in "${runtimes[@]}"; do
			name=${r%%=*}
			for drv in cgroupfs systemd; do
				id=bench-$name
				if ms=$(bench_one "${r#*=}" "$drv" "$WORK/$name-$drv" "$id"); then
					echo "$ms" >>"$WORK/$name-$drv.ms"
				fi
			done
		done
	done
	rmdir /sys/fs/cgroup/rrun-bench 2>/dev/null
	for r in "${runtimes[@]}"; do
		name=${r%%=*}
		for drv in cgroupfs systemd; do
			sort -n "$WORK/$name-$drv.ms" | awk -v n="$name" -v d="$drv" '
				{ v[NR] = $1 }
				END {
					if (NR == 0) { print "BENCH " n " " d " - - 0"; exit }
					m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
					print "BENCH " n " " d " " m " " v[1] " " NR
				}'
		done
	done
	# A unit or cgroup left by the bench is a failure of the runtime that made it.
	if systemctl list-units --all --plain --no-legend --type=scope '*-bench-*' | grep -q .; then
		fail "bench: scope units left: $(systemctl list-units --all --plain --no-legend --type=scope '*-bench-*' | awk '{print $1}' | tr '\n' ' ')"
	else
		pass "bench: no unit or cgroup left"
	fi
}
