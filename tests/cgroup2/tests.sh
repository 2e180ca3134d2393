#!/bin/sh
# cgroup v2 tests of rrun, run by the guest's /init (tests/cgroup2/init) under busybox sh.
# Each test prints "PASS name" or "FAIL name: reason" (and, on failure, its log indented with
# "    | "); the last line is "RESULT: N passed, M failed". tests/cgroup2/run.sh reads them.
#
# Run one or some tests only: sh tests.sh NAME... (run.sh passes CGROUP2_TESTS on).
#
# Every container uses the bundle template that run.sh made from bundles/busybox/config.json
# (/tests/config.template.json: rootfs /tests/rootfs, args, resources, cgroupsPath and extra
# mounts left as placeholders) and the absolute cgroupsPath /rrun-test/<test name>.
#
# The containers' shell scripts are in single quotes on purpose (they expand in the container):
# shellcheck disable=SC2016

RRUN_ROOT=/run/rrun
CG=/sys/fs/cgroup
PARENT=rrun-test
TEMPLATE=/tests/config.template.json
JFLAT=/tests/jflat.awk
WORK=/tmp/cgroup2-tests
DENY_ALL='{"allow":false,"access":"rwm"}'

ALL_TESTS="cgroup2_controllers memory_oom pids_limit cpu_values
devices_deny_unlisted pause_resume update_memory ps_json exec_joins_cgroup events_stats
failed_create_missing_binary failed_create_bad_cpuset delete_removes_cgroup
exec_sub_cgroup kill_without_pidns update_unlimited rootless_delegated rootless_not_delegated"

mkdir -p "$WORK" "$RRUN_ROOT"

# ---------------------------------------------------------------------------------------------
# Helpers

# rrun with the test state root; no call may hang the run.
rr() { timeout "${RR_TIMEOUT:-60}" rrun --root "$RRUN_ROOT" "$@"; }

# Inside a test (a subshell): record why it failed and stop it.
die() {
	echo "$*" >>"$WHY"
	echo "FAILED: $*"
	exit 1
}

# A line shown under the test's PASS/FAIL line.
note() {
	echo "$*" >>"$NOTES"
	echo "note: $*"
}

# The text of a JSON string (no newlines in $1).
json_str() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

# process.args running a shell script.
sh_args() { printf '["sh","-c","%s"]' "$(json_str "$1")"; }

cgdir() { echo "$CG/$PARENT/$1"; }

# mkbundle NAME ARGS_JSON RESOURCES_JSON [EXTRA_MOUNT_JSON]: bundle $WORK/NAME, cgroup
# /rrun-test/NAME; sets B to the bundle directory.
mkbundle() {
	B=$WORK/$1
	mkdir -p "$B"
	CGPATH="/$PARENT/$1" ARGS="$2" RES="$3" MNT="${4:+,$4}" awk '
		function rep(s, k, v,   i) {
			while ((i = index(s, k)) > 0) s = substr(s, 1, i - 1) v substr(s, i + length(k))
			return s
		}
		{
			s = $0
			s = rep(s, "\"@@ARGS@@\"", ENVIRON["ARGS"])
			s = rep(s, "\"@@RESOURCES@@\"", ENVIRON["RES"])
			s = rep(s, "@@CGROUPSPATH@@", ENVIRON["CGPATH"])
			s = rep(s, ",\"@@MOUNTS@@\"", ENVIRON["MNT"])
			print s
		}' "$TEMPLATE" >"$B/config.json" || die "cannot write $B/config.json"
}

# jget KEY: the value at KEY (jflat path, e.g. memory.usage.usage) of the JSON on stdin.
jget() { awk -f "$JFLAT" | awk -v k="$1" '$1 == k { sub(/^[^ ]* /, ""); print; exit }'; }

status() { rr state "$1" 2>/dev/null | jget status; }
initpid() { rr state "$1" 2>/dev/null | jget pid; }

# wait_status ID STATUS [TENTHS]: wait until `state` says STATUS (default 10 s).
wait_status() {
	i=0
	while [ "$i" -lt "${3:-100}" ]; do
		[ "$(status "$1")" = "$2" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# wait_grep PATTERN FILE [TENTHS]: wait until FILE has a line matching PATTERN (default 10 s).
wait_grep() {
	i=0
	while [ "$i" -lt "${3:-100}" ]; do
		grep -q "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# The value of KEY in a flat-keyed cgroup file (memory.events, pids.events, cgroup.events).
kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2" 2>/dev/null; }

# check_file FILE WANT: FILE must read WANT.
check_file() {
	[ -e "$1" ] || die "$1 does not exist"
	got=$(cat "$1" 2>&1)
	[ "$got" = "$2" ] || die "$1 is '$got', want '$2'"
	echo "ok: $1 = $got"
}

# create_start NAME: create and start container NAME from bundle $B; its output goes to the
# test log. (Never capture create's output with $(...): the container keeps the pipe open.)
create_start() {
	rr create -b "$B" "$1" || die "create $1 failed"
	rr start "$1" || die "start $1 failed"
	wait_status "$1" running || die "$1 is not running after start (state: $(status "$1"))"
}

# Rootless tests: the user rl (uid 1000, from run.sh's /etc/passwd), its $XDG_RUNTIME_DIR.
RL_XDG=$WORK/rl-xdg

# rl_bundle NAME ARGS_JSON RESOURCES_JSON: mkbundle, turned rootless (a user namespace mapping
# 0 to rl's uid and gid; the bundle is rl's).
rl_bundle() {
	mkbundle "$@"
	sed -i -e 's/"namespaces":\[/"namespaces":[{"type":"user"},/' \
		-e 's/"linux":{/"linux":{"uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}],/' \
		"$B/config.json" || die "cannot make $B/config.json rootless"
	chown -R 1000:1000 "$B"
}

# as_rl CGROUP_DIR ARGS...: rrun ARGS as rl, started from CGROUP_DIR (its own cgroup), state
# under $RL_XDG/rrun.
as_rl() {
	cgd=$1
	shift
	mkdir -p "$RL_XDG" && chown 1000:1000 "$RL_XDG" && chmod 700 "$RL_XDG"
	# shellcheck disable=SC2016 # expanded by the inner shell
	sh -c 'echo $$ >"$0/cgroup.procs" && exec su -s /bin/sh rl -c "XDG_RUNTIME_DIR=$1 timeout 60 rrun $2"' \
		"$cgd" "$RL_XDG" "$*"
}

# Remove whatever a test left: the container, its cgroup, the bundle.
cleanup() {
	if [ -d "$RL_XDG/rrun/$1" ]; then
		as_rl "$CG" delete --force "$1" >/dev/null 2>&1
	fi
	rr delete --force "$1" >/dev/null 2>&1
	d=$(cgdir "$1")
	if [ -d "$d" ]; then
		echo "    cleanup: $d was left after delete --force; removing it"
		while read -r p; do kill -9 "$p" 2>/dev/null; done <"$d/cgroup.procs"
		i=0
		while [ -d "$d" ] && [ $i -lt 50 ]; do
			rmdir "$d" 2>/dev/null || sleep 0.1
			i=$((i + 1))
		done
	fi
	rm -rf "${WORK:?}/$1"
}

# ---------------------------------------------------------------------------------------------
# Tests: t_NAME runs in a subshell with its output in the test log; it fails through die.

# The guest itself: cgroup2 at /sys/fs/cgroup with every controller the tests need enabled.
t_cgroup2_controllers() {
	fs=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)
	[ "$fs" = cgroup2 ] || die "/sys/fs/cgroup is '$fs', not cgroup2"
	echo "cgroup.controllers: $(cat $CG/cgroup.controllers)"
	echo "cgroup.subtree_control: $(cat $CG/cgroup.subtree_control)"
	for c in cpuset cpu io memory hugetlb pids; do
		grep -qw "$c" $CG/cgroup.controllers || die "controller $c is not in cgroup.controllers"
		grep -qw "$c" $CG/cgroup.subtree_control || die "controller $c is not enabled in cgroup.subtree_control"
	done
}

# memory.limit 32 MiB: a shell that reads 64 MiB into a variable is OOM-killed.
t_memory_oom() {
	mkbundle memory_oom \
		"$(sh_args 'x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived ${#x}')" \
		"{\"memory\":{\"limit\":33554432},\"devices\":[$DENY_ALL]}"
	rr run --keep -b "$B" memory_oom
	rc=$?
	d=$(cgdir memory_oom)
	oom=0
	if [ -d "$d" ]; then
		oom=$(kv oom_kill "$d/memory.events")
		echo "memory.max: $(cat "$d/memory.max"), memory.events: $(tr '\n' ' ' <"$d/memory.events")"
	fi
	note "exit status $rc, memory.events oom_kill ${oom:-?}"
	grep -q '^survived' "$LOG" && die "the 64 MiB allocation survived the 32 MiB limit (exit status $rc)"
	[ "$rc" = 137 ] || [ "${oom:-0}" -gt 0 ] ||
		die "exit status $rc (want 137) and memory.events oom_kill ${oom:-missing} (want > 0)"
}

# pids.limit 5: of 10 background sleeps, the fork of some fails. busybox sh stops at the first
# failed fork ("can't fork"), so the spawner runs in a subshell and the failures are the sleeps
# it did not start; the container's init then stays up (exec sleep) for pids.* to be read.
t_pids_limit() {
	mkbundle pids_limit \
		"$(sh_args '(n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & n=$((n+1)); echo started $n; done; echo all started) 2>&1; echo spawner done; exec sleep 60')" \
		"{\"pids\":{\"limit\":5},\"devices\":[$DENY_ALL]}"
	create_start pids_limit
	wait_grep 'spawner done' "$LOG" || die "the spawner did not finish in 10 s"
	d=$(cgdir pids_limit)
	check_file "$d/pids.max" 5
	started=$(grep -c '^started' "$LOG")
	failed=$((10 - started))
	ev=$(kv max "$d/pids.events")
	note "$started of 10 sleeps started, $failed failed; pids.current $(cat "$d/pids.current"), pids.events max ${ev:-?}"
	grep -q 'all started' "$LOG" && die "all 10 sleeps started under pids.limit 5"
	[ "$failed" -gt 0 ] || die "no fork failed"
	grep -q "can't fork" "$LOG" || die "no fork failure message (busybox sh: can't fork)"
	[ "${ev:-0}" -gt 0 ] || die "pids.events max is '${ev}', want > 0"
}

# cpu quota/period/shares and cpuset, read back from the container's cgroup files.
t_cpu_values() {
	shares=1024
	mkbundle cpu_values '["sleep","1000"]' \
		"{\"cpu\":{\"shares\":$shares,\"quota\":50000,\"period\":100000,\"cpus\":\"1\",\"mems\":\"0\"},\"devices\":[$DENY_ALL]}"
	rr create -b "$B" cpu_values || die "create failed"
	d=$(cgdir cpu_values)
	check_file "$d/cpu.max" "50000 100000"
	# runc's conversion of cpu shares (2..262144) to cpu.weight (1..10000).
	check_file "$d/cpu.weight" $((1 + ((shares - 2) * 9999) / 262142))
	check_file "$d/cpuset.cpus" 1
	check_file "$d/cpuset.mems" 0
	pid=$(initpid cpu_values)
	grep -qx "$pid" "$d/cgroup.procs" || die "init pid $pid is not in $d/cgroup.procs"
}

# (The runtime's default device rules come after the config's, as in runc, so a default
# device cannot be denied by config: the eBPF program is tested with an unlisted device.)
# v2 device eBPF program, whatever the order of the default rules: under the bundle's
# deny-all, a device that is none of the default ones can't be opened (EPERM) while /dev/null
# can. The device is the guest's /dev/console (c 5:1), bind-mounted in: opening it needs no
# capability (unlike /dev/kmsg or /dev/mem, whose EPERM would come from a missing capability)
# and never makes it a controlling terminal.
t_devices_deny_unlisted() {
	[ -c /dev/console ] || die "the guest has no /dev/console"
	true </dev/console || die "the guest itself cannot open /dev/console"
	script='true </dev/console && echo console_opened; echo x >/dev/null && echo null_ok'
	mount='{"destination":"/dev/console","type":"bind","source":"/dev/console","options":["bind"]}'
	# Control: with every device allowed the container opens it, so an EPERM below comes
	# from the device rules.
	mkbundle devices_deny_unlisted "$(sh_args "$script")" \
		'{"devices":[{"allow":true,"access":"rwm"}]}' "$mount"
	rr run -b "$B" devices_deny_unlisted >"$WORK/control.out" 2>&1
	rc=$?
	sed 's/^/control: /' "$WORK/control.out"
	grep -q console_opened "$WORK/control.out" ||
		die "control (devices allow-all) could not open /dev/console either (exit status $rc)"
	mkbundle devices_deny_unlisted "$(sh_args "$script")" "{\"devices\":[$DENY_ALL]}" "$mount"
	rr run -b "$B" devices_deny_unlisted
	rc=$?
	grep -q "^null_ok" "$LOG" || die "/dev/null is not writable (exit status $rc)"
	grep -q "^console_opened" "$LOG" && die "/dev/console (c 5:1, not allowed) was opened"
	grep -q 'Operation not permitted' "$LOG" || die "opening /dev/console did not fail with EPERM"
}

# pause freezes the cgroup and state says paused; resume thaws it and state says running.
t_pause_resume() {
	mkbundle pause_resume '["sleep","1000"]' "{\"devices\":[$DENY_ALL]}"
	create_start pause_resume
	d=$(cgdir pause_resume)
	rr pause pause_resume || die "pause failed"
	check_file "$d/cgroup.freeze" 1
	wait_grep '^frozen 1$' "$d/cgroup.events" || die "cgroup.events does not say frozen 1: $(tr '\n' ' ' <"$d/cgroup.events")"
	st=$(status pause_resume)
	[ "$st" = paused ] || die "state says '$st' after pause, want paused"
	rr resume pause_resume || die "resume failed"
	check_file "$d/cgroup.freeze" 0
	wait_grep '^frozen 0$' "$d/cgroup.events" || die "cgroup.events does not say frozen 0 after resume"
	st=$(status pause_resume)
	[ "$st" = running ] || die "state says '$st' after resume, want running"
}

# update changes the memory limit of a running container.
t_update_memory() {
	mkbundle update_memory '["sleep","1000"]' \
		"{\"memory\":{\"limit\":67108864},\"devices\":[$DENY_ALL]}"
	create_start update_memory
	d=$(cgdir update_memory)
	check_file "$d/memory.max" 67108864
	echo '{"memory":{"limit":104857600}}' >"$WORK/update_memory.json"
	rr update --resources "$WORK/update_memory.json" update_memory || die "update --resources failed"
	check_file "$d/memory.max" 104857600
	rr update --memory 50m update_memory || die "update --memory 50m failed"
	check_file "$d/memory.max" 52428800
	st=$(status update_memory)
	[ "$st" = running ] || die "state says '$st' after update, want running"
}

# update --memory -1 and --cpu-quota -1 lift the limits ("max"); --cpu-burst and --cpu-idle
# reach cpu.max.burst and cpu.idle; device rules in --resources are skipped.
t_update_unlimited() {
	mkbundle update_unlimited '["sleep","1000"]' \
		"{\"memory\":{\"limit\":67108864},\"cpu\":{\"quota\":50000,\"period\":100000},\"devices\":[$DENY_ALL]}"
	create_start update_unlimited
	d=$(cgdir update_unlimited)
	check_file "$d/cpu.max" "50000 100000"
	rr update --memory -1 --cpu-quota -1 update_unlimited || die "update --memory -1 --cpu-quota -1 failed"
	check_file "$d/memory.max" max
	check_file "$d/cpu.max" "max 100000"
	rr update --cpu-quota 50000 --cpu-burst 20000 update_unlimited || die "update --cpu-burst failed"
	check_file "$d/cpu.max" "50000 100000"
	check_file "$d/cpu.max.burst" 20000
	if [ -e "$d/cpu.idle" ]; then
		rr update --cpu-idle 1 update_unlimited || die "update --cpu-idle 1 failed"
		check_file "$d/cpu.idle" 1
	fi
	# Device rules in --resources (even an access "rwa") are accepted and skipped, as runc's
	# update skips them; the rest of the JSON applies.
	echo '{"devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwa"}],"pids":{"limit":31}}' \
		>"$WORK/update_devices.json"
	rr update --resources "$WORK/update_devices.json" update_unlimited ||
		die "update --resources with device rules failed"
	check_file "$d/pids.max" 31
	return 0
}

# ps --format json lists the pids of the container's cgroup.
t_ps_json() {
	mkbundle ps_json "$(sh_args 'sleep 1000 & exec sleep 1001')" "{\"devices\":[$DENY_ALL]}"
	create_start ps_json
	d=$(cgdir ps_json)
	i=0
	while [ "$(wc -l <"$d/cgroup.procs")" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	want=$(sort -n "$d/cgroup.procs" | tr '\n' ' ')
	rr ps --format json ps_json >"$WORK/ps.json" || die "ps --format json failed"
	echo "ps --format json: $(cat "$WORK/ps.json")"
	got=$(awk -f "$JFLAT" <"$WORK/ps.json" | awk '{ print $2 }' | sort -n | tr '\n' ' ')
	[ "$got" = "$want" ] || die "ps --format json gave '$got', cgroup.procs has '$want'"
	pid=$(initpid ps_json)
	echo " $got" | grep -q " $pid " || die "ps --format json misses the init pid $pid"
}

# init and a process from `exec --detach` are in the container's cgroup (both are born there
# with CLONE_INTO_CGROUP) and nowhere else.
t_exec_joins_cgroup() {
	mkbundle exec_joins_cgroup '["sleep","1000"]' "{\"devices\":[$DENY_ALL]}"
	create_start exec_joins_cgroup
	rr exec --detach --pid-file "$WORK/exec.pid" exec_joins_cgroup sleep 1001 ||
		die "exec --detach failed"
	epid=$(cat "$WORK/exec.pid")
	ipid=$(initpid exec_joins_cgroup)
	for p in "$ipid" "$epid"; do
		cg=$(cat "/proc/$p/cgroup")
		[ "$cg" = "0::/$PARENT/exec_joins_cgroup" ] || die "pid $p is in '$cg'"
		grep -qx "$p" "$(cgdir exec_joins_cgroup)/cgroup.procs" || die "pid $p not in cgroup.procs"
	done
	note "init $ipid and exec'd $epid in 0::/$PARENT/exec_joins_cgroup"
}

# events --stats reports the container's (non-zero) memory usage.
t_events_stats() {
	mkbundle events_stats "$(sh_args 'x=$(head -c 4000000 /dev/zero | tr "\0" a); exec sleep 1000')" \
		"{\"memory\":{\"limit\":268435456},\"devices\":[$DENY_ALL]}"
	create_start events_stats
	sleep 1
	rr events --stats events_stats >"$WORK/stats.json" || die "events --stats failed"
	head -c 600 "$WORK/stats.json"
	echo
	typ=$(jget type <"$WORK/stats.json")
	usage=$(jget data.memory.usage.usage <"$WORK/stats.json")
	limit=$(jget data.memory.usage.limit <"$WORK/stats.json")
	pids=$(jget data.pids.current <"$WORK/stats.json")
	note "memory usage $usage, limit $limit, pids $pids"
	[ "$typ" = stats ] || die "type is '$typ', want stats"
	[ "${usage:-0}" -gt 0 ] 2>/dev/null || die "data.memory.usage.usage is '$usage', want > 0"
	[ "$limit" = 268435456 ] || die "data.memory.usage.limit is '$limit', want 268435456"
	[ "${pids:-0}" -ge 1 ] 2>/dev/null || die "data.pids.current is '$pids', want >= 1"
}

# after_failed_create NAME: nothing of NAME is left.
after_failed_create() {
	[ -d "$(cgdir "$1")" ] && die "the failed create left the cgroup $(cgdir "$1")"
	[ -e "$RRUN_ROOT/$1" ] && die "the failed create left the state dir $RRUN_ROOT/$1"
	rr state "$1" >/dev/null 2>&1 && die "state still knows $1 after the failed create"
	return 0
}

# create fails on a process.args binary that is not there (runc checks it in create), after
# the cgroup was made, and leaves no cgroup.
t_failed_create_missing_binary() {
	mkbundle failed_create_missing_binary '["/no/such/binary"]' "{\"devices\":[$DENY_ALL]}"
	if rr create -b "$B" failed_create_missing_binary; then
		die "create succeeded with process.args /no/such/binary"
	fi
	after_failed_create failed_create_missing_binary
}

# create fails writing cpuset.cpus of a CPU the guest lacks (after mkdir of the cgroup), and
# leaves no cgroup.
t_failed_create_bad_cpuset() {
	mkbundle failed_create_bad_cpuset '["sleep","1000"]' \
		"{\"cpu\":{\"cpus\":\"63\"},\"devices\":[$DENY_ALL]}"
	if rr create -b "$B" failed_create_bad_cpuset; then
		die "create succeeded with cpu.cpus 63 on a $(nproc)-cpu guest"
	fi
	after_failed_create failed_create_bad_cpuset
}

# After delete (of a stopped container, with --force of a running one, and after run), no
# cgroup dir is left.
t_delete_removes_cgroup() {
	mkbundle delete_removes_cgroup '["sleep","1000"]' "{\"devices\":[$DENY_ALL]}"
	id=delete_removes_cgroup
	d=$(cgdir $id)
	create_start $id
	[ -d "$d" ] || die "running container has no cgroup $d"
	pid=$(initpid $id)
	grep -qx "$pid" "$d/cgroup.procs" || die "init pid $pid is not in $d/cgroup.procs"
	rr kill $id KILL || die "kill KILL failed"
	wait_status $id stopped || die "container not stopped after kill KILL (state: $(status $id))"
	rr delete $id || die "delete of the stopped container failed"
	[ -d "$d" ] && die "delete of a stopped container left $d"
	echo "ok: delete of a stopped container removed $d"

	create_start $id
	rr delete --force $id || die "delete --force of the running container failed"
	[ -d "$d" ] && die "delete --force of a running container left $d"
	echo "ok: delete --force of a running container removed $d"

	mkbundle delete_removes_cgroup '["true"]' "{\"devices\":[$DENY_ALL]}"
	rr run -b "$B" $id || die "run of true failed"
	[ -d "$d" ] && die "run (which deletes the container at exit) left $d"
	echo "ok: run removed $d"
	return 0
}

# exec --cgroup PATH puts the process in that sub-cgroup of the container's (born there); the
# v1 form CONTROLLER:PATH is refused on cgroup v2, and so is a sub-cgroup that is not there.
t_exec_sub_cgroup() {
	mkbundle exec_sub_cgroup '["sleep","1000"]' "{\"devices\":[$DENY_ALL]}"
	create_start exec_sub_cgroup
	mkdir "$(cgdir exec_sub_cgroup)/sub" || die "mkdir sub-cgroup"
	got=$(rr exec --cgroup sub exec_sub_cgroup cat /proc/self/cgroup) || die "exec --cgroup sub failed"
	[ "$got" = "0::/$PARENT/exec_sub_cgroup/sub" ] || die "exec --cgroup sub ran in '$got'"
	note "exec --cgroup sub: $got"
	if rr exec --cgroup pids:sub exec_sub_cgroup true 2>"$WORK/err"; then
		die "exec --cgroup pids:sub succeeded on cgroup v2"
	fi
	grep -q "v1" "$WORK/err" || die "pids:sub refused without saying why: $(cat "$WORK/err")"
	if rr exec --cgroup nope exec_sub_cgroup true 2>"$WORK/err"; then
		die "exec --cgroup nope succeeded"
	fi
	grep -q "no such cgroup" "$WORK/err" || die "--cgroup nope: $(cat "$WORK/err")"
	return 0
}

# Without a pid namespace of its own, kill KILL reaches every process of the container's
# cgroup (cgroup.kill), not only init: nothing is left in cgroup.procs.
t_kill_without_pidns() {
	mkbundle kill_without_pidns "$(sh_args 'sleep 1000 & sleep 1001 & wait')" \
		"{\"devices\":[$DENY_ALL]}"
	sed -i 's/{"type":"pid"},//' "$B/config.json"
	grep -q '"type":"pid"' "$B/config.json" && die "the bundle still has a pid namespace"
	create_start kill_without_pidns
	d=$(cgdir kill_without_pidns)
	i=0
	while [ "$(wc -l <"$d/cgroup.procs")" -lt 3 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(wc -l <"$d/cgroup.procs")" -ge 3 ] || die "cgroup.procs: $(cat "$d/cgroup.procs")"
	rr kill kill_without_pidns KILL || die "kill KILL failed"
	i=0
	while [ -s "$d/cgroup.procs" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -s "$d/cgroup.procs" ] && die "left after kill KILL: $(cat "$d/cgroup.procs")"
	note "kill KILL emptied the cgroup"
	return 0
}

# Rootless with a delegated subtree: rl owns /rrun-test/rootless_delegated (pids and memory
# enabled below it) and runs from its child "shell"; its container's cgroup is made in the
# subtree, gets its limits (pids.max), holds init, and goes with delete.
t_rootless_delegated() {
	D=$(cgdir rootless_delegated)
	mkdir -p "$D/shell" || die "mkdir $D/shell"
	for c in pids memory; do
		echo "+$c" >"$CG/$PARENT/cgroup.subtree_control" 2>/dev/null
		echo "+$c" >"$D/cgroup.subtree_control" || die "enable $c in $D"
	done
	# Delegation as systemd does it: the dir and its procs/subtree_control/threads files.
	chown 1000:1000 "$D" "$D/cgroup.procs" "$D/cgroup.subtree_control" "$D/cgroup.threads" \
		"$D/shell" "$D/shell/cgroup.procs" "$D/shell/cgroup.threads" || die "chown $D"
	rl_bundle rootless_delegated \
		"$(sh_args 'id -u; cat /sys/fs/cgroup/pids.max; cat /proc/self/cgroup; exec sleep 1000')" \
		'{"pids":{"limit":20}}'
	sed -i 's|"cgroupsPath":"/rrun-test/rootless_delegated"|"cgroupsPath":"/rrun-test/rootless_delegated/c1"|' "$B/config.json"
	as_rl "$D/shell" create -b "$B" rootless_delegated >"$LOG.out" 2>&1 </dev/null || {
		cat "$LOG.out"
		die "create as rl failed: $(tail -n 1 "$LOG.out")"
	}
	as_rl "$D/shell" start rootless_delegated || die "start as rl failed"
	wait_grep '^0::' "$LOG.out" || die "no output: $(cat "$LOG.out")"
	cat "$LOG.out"
	[ "$(sed -n 1p "$LOG.out")" = 0 ] || die "id -u inside is not 0"
	[ "$(sed -n 2p "$LOG.out")" = 20 ] || die "pids.max inside: $(sed -n 2p "$LOG.out"), want 20"
	check_file "$D/c1/pids.max" 20
	grep -q . "$D/c1/cgroup.procs" || die "no process in $D/c1"
	[ "$(stat -c %u "$D/c1")" = 1000 ] || die "$D/c1 is not rl's"
	pid=$(head -n 1 "$D/c1/cgroup.procs")
	[ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = 1000 ] || die "init is not uid 1000 on the host"
	# A cgroup of its own: pause, resume and ps work rootless too.
	as_rl "$D/shell" pause rootless_delegated || die "pause as rl failed"
	check_file "$D/c1/cgroup.freeze" 1
	as_rl "$D/shell" resume rootless_delegated || die "resume as rl failed"
	check_file "$D/c1/cgroup.freeze" 0
	as_rl "$D/shell" ps --format json rootless_delegated | grep -q "$pid" || die "ps --format json lacks init $pid"
	as_rl "$D/shell" delete --force rootless_delegated || die "delete --force as rl failed"
	[ -d "$D/c1" ] && die "$D/c1 left after delete"
	[ -e "$RL_XDG/rrun/rootless_delegated" ] && die "state left"
	note "rl's container: cgroup $D/c1 (pids.max 20), removed by delete"
	# Out of the delegated subtree for the runner's cleanup.
	while read -r p; do echo "$p" >"$CG/cgroup.procs"; done <"$D/shell/cgroup.procs"
	rmdir "$D/shell"
	return 0
}

# Rootless without delegation: no cgroupsPath, the caller's cgroup is root's: no cgroup, the
# container runs, --debug says why; an explicit cgroupsPath there is an error naming it, and
# leaves nothing.
t_rootless_not_delegated() {
	rl_bundle rootless_not_delegated "$(sh_args 'echo ran')" '{}'
	sed -i 's|,"cgroupsPath":"[^"]*"||' "$B/config.json"
	grep -q cgroupsPath "$B/config.json" && die "cgroupsPath still in the bundle"
	as_rl "$CG" --debug run -b "$B" rootless_not_delegated >"$LOG.out" 2>&1 </dev/null ||
		die "run as rl failed: $(tail -n 3 "$LOG.out")"
	cat "$LOG.out"
	grep -q '^ran' "$LOG.out" || die "the container did not run"
	grep -q 'not writable by uid 1000' "$LOG.out" || die "no debug line on the missing cgroup"
	[ -d "$CG/rootless_not_delegated" ] && die "a cgroup was made at $CG/rootless_not_delegated"
	rl_bundle rootless_not_delegated "$(sh_args 'echo ran')" '{}'
	as_rl "$CG" run -b "$B" rootless_not_delegated >"$LOG.out" 2>&1 </dev/null &&
		die "run with cgroupsPath /rrun-test/rootless_not_delegated succeeded"
	cat "$LOG.out"
	grep -q 'linux.cgroupsPath' "$LOG.out" || die "the error does not name linux.cgroupsPath"
	grep -q 'delegate' "$LOG.out" || die "the error does not say to delegate"
	[ -d "$(cgdir rootless_not_delegated)" ] && die "cgroup left"
	[ -e "$RL_XDG/rrun/rootless_not_delegated" ] && die "state left"
	note "no delegation: no cgroup (debug line); an explicit cgroupsPath is refused"
	return 0
}

# ---------------------------------------------------------------------------------------------
# Runner

pass=0
fail=0
tests=${*:-$ALL_TESTS}
for name in $tests; do
	WHY=$WORK/$name.why
	NOTES=$WORK/$name.notes
	LOG=$WORK/$name.log
	rm -f "$WHY" "$NOTES" "$LOG"
	export WHY NOTES LOG
	started=$(date +%s)
	(t_"$name") >"$LOG" 2>&1 </dev/null
	rc=$?
	took=$(($(date +%s) - started))
	cleanup "$name"
	[ -s "$NOTES" ] && sed 's/^/    info: /' "$NOTES"
	if [ $rc -eq 0 ]; then
		echo "PASS $name"
		pass=$((pass + 1))
	else
		reason=$(head -n 1 "$WHY" 2>/dev/null)
		[ -n "$reason" ] || reason="exit status $rc"
		echo "FAIL $name: $reason"
		tail -n 40 "$LOG" | sed 's/^/    | /'
		fail=$((fail + 1))
	fi
	echo "    ($name took ${took}s)"
done
rmdir "$CG/$PARENT" 2>/dev/null
echo "RESULT: $pass passed, $fail failed"
