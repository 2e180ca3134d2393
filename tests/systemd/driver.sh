# shellcheck shell=bash
# rrun's own systemd cgroup driver tests, run in the systemd guest (tests/systemd/guest.sh).
#
# Each test is a function t_<name>: guest.sh runs it in its own bash after sourcing helpers.sh
# (rr, mkbundle, unit_prop, unit_loaded, scopes, cgroup_of, wait_for, expect; RRUN, IS_RRUN,
# BUNDLE_ROOTFS, BUNDLE_CONFIG, RRUN_ROOT, WORK) and this file, and prints "PASS <name>", or
# "FAIL <name>: <reason>" when it returns non-zero (the reason: its last line of output).
# RUNTIME=/usr/sbin/runc runs the same tests against runc (IS_RRUN=0), where runc is the
# reference; checks of rrun's own words are skipped there.

# The guest's PID 1 is systemd, and cgroup2 alone is mounted at /sys/fs/cgroup.
t_systemd_is_pid1() {
	expect "/proc/1/comm" systemd "$(cat /proc/1/comm)" || return 1
	expect "/sys/fs/cgroup" cgroup2 "$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)" || return 1
}

# run_ok WHAT CMD...: CMD must succeed; its output is shown when it does not. The output goes
# through a file, never a pipe: a container's process inherits the runtime's stdout and would
# hold a pipe open for as long as it lives.
run_ok() {
	local what=$1 f
	shift
	RUN_OK_N=$((${RUN_OK_N:-0} + 1))
	f=$WORK/run_ok.$RUN_OK_N.out
	if ! "$@" </dev/null >"$f" 2>&1; then
		cat "$f"
		echo "$what failed: $*"
		return 1
	fi
}

# quiet CMD...: CMD with no stdio of ours (a container keeps what it inherits).
quiet() { "$@" </dev/null >/dev/null 2>&1; }

# gone ID UNIT CGPATH: no state, no unit, no cgroup dir.
gone() {
	local id=$1 unit=$2 cg=$3
	if rr state "$id" >/dev/null 2>&1; then
		echo "container $id still exists"
		return 1
	fi
	if unit_loaded "$unit"; then
		echo "unit $unit left: $(systemctl show -p ActiveState,SubState,Result "$unit" | tr '\n' ' ')"
		return 1
	fi
	if [ -d "/sys/fs/cgroup$cg" ]; then
		echo "cgroup dir /sys/fs/cgroup$cg left"
		return 1
	fi
}

# A container's life on the systemd driver: its init is in an active scope
# system.slice/rrun-<id>.scope with Delegate=yes, exec'd processes join it, ps/pause/resume/
# events work on it, and delete leaves no unit, no cgroup, no state.
t_lifecycle() {
	local id=lifecycle-$$ unit cg pid
	unit=rrun-$id.scope
	cg=/system.slice/$unit
	mkbundle "$WORK/b" "system.slice:rrun:$id" sleep 1000
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	pid=$(rr state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	expect "init's cgroup" "$cg" "$(cgroup_of "$pid")" || return 1
	expect "$unit ActiveState" active "$(unit_prop "$unit" ActiveState)" || return 1
	expect "$unit Delegate" yes "$(unit_prop "$unit" Delegate)" || return 1
	expect "$unit Slice" system.slice "$(unit_prop "$unit" Slice)" || return 1
	expect "$unit ControlGroup" "$cg" "$(unit_prop "$unit" ControlGroup)" || return 1
	run_ok start rr start "$id" || return 1
	expect "exec'd process's cgroup" "0::$cg" "$(rr exec "$id" cat /proc/self/cgroup)" || return 1
	rr ps "$id" | grep -q sleep || {
		echo "ps: no sleep in $(rr ps "$id" 2>&1)"
		return 1
	}
	run_ok pause rr pause "$id" || return 1
	expect "cgroup.freeze after pause" 1 "$(cat "/sys/fs/cgroup$cg/cgroup.freeze")" || return 1
	expect "status after pause" paused "$(rr state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" || return 1
	run_ok resume rr resume "$id" || return 1
	expect "cgroup.freeze after resume" 0 "$(cat "/sys/fs/cgroup$cg/cgroup.freeze")" || return 1
	rr events --stats "$id" | python3 -c '
import json, sys
e = json.load(sys.stdin)
assert e["type"] == "stats", e
assert e["data"]["memory"]["usage"]["usage"] > 0, e["data"]["memory"]
assert e["data"]["pids"]["current"] >= 1, e["data"]["pids"]' || {
		echo "events --stats: $(rr events --stats "$id" 2>&1 | head -c 300)"
		return 1
	}
	run_ok kill rr kill "$id" KILL || return 1
	wait_for 10 sh -c "[ \"\$($RRUN --root $RRUN_ROOT state $id | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])')\" = stopped ]" || {
		echo "not stopped after kill: $(rr state "$id" 2>&1)"
		return 1
	}
	run_ok delete rr delete "$id" || return 1
	gone "$id" "$unit" "$cg"
}

# Every resource lands twice: as the scope's unit properties (systemd's) and in the scope's
# cgroup files (what the container gets), with runc's conversions.
t_resources() {
	local id=resources-$$ unit cg d cpus
	unit=rrun-$id.scope
	cg=/system.slice/$unit
	d=/sys/fs/cgroup$cg
	cpus=$(nproc)
	[ "$cpus" -ge 2 ] || {
		echo "needs 2 cpus, the guest has $cpus"
		return 1
	}
	RESOURCES='{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
		"cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "1", "mems": "0"},
		"pids": {"limit": 42}, "blockIO": {"weight": 300},
		"unified": {"memory.high": "100663296"}}' \
		mkbundle "$WORK/b" "system.slice:rrun:$id"
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	local fail=0
	chk() { expect "$1" "$2" "$3" || fail=1; }
	chk memory.max 67108864 "$(cat "$d/memory.max")"
	chk memory.low 33554432 "$(cat "$d/memory.low")"
	chk memory.high 100663296 "$(cat "$d/memory.high")"
	chk memory.swap.max 67108864 "$(cat "$d/memory.swap.max" 2>/dev/null || echo 67108864)"
	chk cpu.weight 20 "$(cat "$d/cpu.weight")"
	chk cpu.max "25000 50000" "$(cat "$d/cpu.max")"
	chk cpuset.cpus 1 "$(cat "$d/cpuset.cpus")"
	chk cpuset.mems 0 "$(cat "$d/cpuset.mems")"
	chk pids.max 42 "$(cat "$d/pids.max")"
	if [ -f "$d/io.weight" ]; then
		chk io.weight "default 2930" "$(cat "$d/io.weight")"
	fi
	chk "unit MemoryMax" 67108864 "$(unit_prop "$unit" MemoryMax)"
	chk "unit MemoryLow" 33554432 "$(unit_prop "$unit" MemoryLow)"
	chk "unit MemorySwapMax" 67108864 "$(unit_prop "$unit" MemorySwapMax)"
	chk "unit CPUWeight" 20 "$(unit_prop "$unit" CPUWeight)"
	chk "unit CPUQuotaPerSecUSec" 500ms "$(unit_prop "$unit" CPUQuotaPerSecUSec)"
	chk "unit CPUQuotaPeriodUSec" 50ms "$(unit_prop "$unit" CPUQuotaPeriodUSec)"
	chk "unit AllowedCPUs" 1 "$(unit_prop "$unit" AllowedCPUs)"
	chk "unit AllowedMemoryNodes" 0 "$(unit_prop "$unit" AllowedMemoryNodes)"
	chk "unit TasksMax" 42 "$(unit_prop "$unit" TasksMax)"
	# runc 1.1.5 leaves IOWeight to the io.weight file.
	[ "$IS_RRUN" = 0 ] || chk "unit IOWeight" 2930 "$(unit_prop "$unit" IOWeight)"
	# systemd re-applies its properties on a daemon-reload: the files must not change.
	timeout 120 systemctl daemon-reload
	chk "memory.max after daemon-reload" 67108864 "$(cat "$d/memory.max")"
	chk "cpu.max after daemon-reload" "25000 50000" "$(cat "$d/cpu.max")"
	chk "pids.max after daemon-reload" 42 "$(cat "$d/pids.max")"
	chk "cpuset.cpus after daemon-reload" 1 "$(cat "$d/cpuset.cpus")"
	# The container sees its own scope at /sys/fs/cgroup (rrun's cgroup mount; runc 1.1.5
	# without a cgroup namespace mounts the whole hierarchy there).
	[ "$IS_RRUN" = 0 ] || chk "memory.max inside" 67108864 "$(rr exec "$id" cat /sys/fs/cgroup/memory.max 2>&1)"
	run_ok delete rr delete --force "$id" || return 1
	gone "$id" "$unit" "$cg" || return 1
	return $fail
}

# update: the unit's properties and the files, both; a daemon-reload keeps the new values.
t_update() {
	local id=update-$$ unit cg d fail=0
	unit=rrun-$id.scope
	cg=/system.slice/$unit
	d=/sys/fs/cgroup$cg
	RESOURCES='{"memory": {"limit": 67108864}, "pids": {"limit": 20}}' mkbundle "$WORK/b" "system.slice:rrun:$id"
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	run_ok update rr update --memory 134217728 --pids-limit 30 --cpu-quota 20000 --cpu-period 100000 "$id" || return 1
	chk() { expect "$1" "$2" "$3" || fail=1; }
	chk memory.max 134217728 "$(cat "$d/memory.max")"
	chk pids.max 30 "$(cat "$d/pids.max")"
	chk cpu.max "20000 100000" "$(cat "$d/cpu.max")"
	chk "unit MemoryMax" 134217728 "$(unit_prop "$unit" MemoryMax)"
	chk "unit TasksMax" 30 "$(unit_prop "$unit" TasksMax)"
	chk "unit CPUQuotaPerSecUSec" 200ms "$(unit_prop "$unit" CPUQuotaPerSecUSec)"
	echo '{"memory": {"limit": -1}, "pids": {"limit": -1}}' | rr update --resources - "$id" || fail=1
	chk "memory.max unlimited" max "$(cat "$d/memory.max")"
	chk "unit MemoryMax unlimited" infinity "$(unit_prop "$unit" MemoryMax)"
	chk "unit TasksMax unlimited" infinity "$(unit_prop "$unit" TasksMax)"
	timeout 120 systemctl daemon-reload
	chk "memory.max after daemon-reload" max "$(cat "$d/memory.max")"
	chk "pids.max after daemon-reload" max "$(cat "$d/pids.max")"
	chk "cpu.max after daemon-reload" "20000 100000" "$(cat "$d/cpu.max")"
	run_ok delete rr delete --force "$id" || return 1
	gone "$id" "$unit" "$cg" || return 1
	return $fail
}

# Device rules: systemd's DevicePolicy/DeviceAllow say what the container's own filter says
# (default deny, then the default devices); a host device bound in but not allowed stays
# closed: /dev/kmsg (1:11).
t_devices() {
	local id=devices-$$ unit cg fail=0 allow
	unit=rrun-$id.scope
	cg=/system.slice/$unit
	EDIT='spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}; spec["mounts"].append({"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]})' \
		mkbundle "$WORK/b" "system.slice:rrun:$id"
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	expect "unit DevicePolicy" strict "$(unit_prop "$unit" DevicePolicy)" || fail=1
	allow=$(unit_prop "$unit" DeviceAllow)
	case $allow in
	*"/dev/char/1:3 rwm"*) ;;
	*)
		echo "DeviceAllow has no '/dev/char/1:3 rwm' (/dev/null): $allow"
		fail=1
		;;
	esac
	case $allow in
	*"1:11"*)
		echo "DeviceAllow allows /dev/kmsg: $allow"
		fail=1
		;;
	esac
	rr exec "$id" sh -c 'echo x >/dev/null' || {
		echo "writing /dev/null (allowed) failed"
		fail=1
	}
	if rr exec "$id" sh -c 'head -c 1 /dev/kmsg >/dev/null' 2>/dev/null; then
		echo "reading the bound /dev/kmsg (denied) worked"
		fail=1
	fi
	run_ok delete rr delete --force "$id" || return 1
	gone "$id" "$unit" "$cg" || return 1
	return $fail
}

# org.systemd.property.* annotations become unit properties (runc's form: GVariant text, a
# ...Sec property in seconds becomes ...USec).
t_annotations() {
	local id=annotations-$$ unit cg fail=0
	unit=rrun-$id.scope
	cg=/system.slice/$unit
	EDIT='spec["annotations"] = {"org.systemd.property.TimeoutStopSec": "uint64 7", "org.systemd.property.CollectMode": "'"'"'inactive-or-failed'"'"'"}' \
		mkbundle "$WORK/b" "system.slice:rrun:$id"
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	expect "unit TimeoutStopUSec" 7s "$(unit_prop "$unit" TimeoutStopUSec)" || fail=1
	expect "unit CollectMode" inactive-or-failed "$(unit_prop "$unit" CollectMode)" || fail=1
	run_ok delete rr delete --force "$id" || return 1
	gone "$id" "$unit" "$cg" || return 1
	return $fail
}

# Paths as runc reads them: an empty slice is system.slice, a dashed slice nests, no prefix is
# -<name>.scope (runc's name), no cgroupsPath at all is system.slice:<runtime>:<id>.
t_paths() {
	local fail=0 id pid cg want
	for spec in ":rrunt:paths-a-$$ /system.slice/rrunt-paths-a-$$.scope" \
		"rrunt-x.slice::paths-b-$$ /rrunt.slice/rrunt-x.slice/-paths-b-$$.scope" \
		"- /system.slice/rrun-paths-c-$$.scope"; do
		# shellcheck disable=SC2086 # two words: the path and the cgroup
		set -- $spec
		want=$2
		id=${want##*/}
		id=${id%.scope}
		id=${id#-}
		id=${id#rrunt-}
		id=${id#rrun-}
		if [ "$1" = - ]; then
			mkbundle "$WORK/$id" ""
			[ "$IS_RRUN" = 1 ] || want=/system.slice/runc-$id.scope
		else
			mkbundle "$WORK/$id" "$1"
		fi
		if ! quiet rr create --bundle "$WORK/$id" "$id"; then
			echo "create with cgroupsPath '$1' failed"
			fail=1
			continue
		fi
		pid=$(rr state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
		cg=$(cgroup_of "$pid")
		expect "cgroup for '$1'" "$want" "$cg" || fail=1
		expect "unit ${want##*/}" active "$(unit_prop "${want##*/}" ActiveState)" || fail=1
		rr delete --force "$id" || fail=1
		gone "$id" "${want##*/}" "$want" || fail=1
	done
	timeout 60 systemctl stop rrunt.slice 2>/dev/null
	return $fail
}

# Bad input and failed creates leave nothing: no unit, no cgroup, no state.
t_failed_creates_leave_nothing() {
	local id=failed-$$ fail=0 out
	# A path that is not slice:prefix:name.
	mkbundle "$WORK/a" "/not/a/slice/path"
	if rr create --bundle "$WORK/a" "$id-a" </dev/null >"$WORK/a.out" 2>&1; then
		out=$(cat "$WORK/a.out")
		echo "create with a cgroupfs path under --systemd-cgroup worked"
		rr delete --force "$id-a"
		fail=1
	else
		out=$(cat "$WORK/a.out")
		[ "$IS_RRUN" = 0 ] || case $out in
		*"slice:prefix:name"*) ;;
		*)
			echo "error does not name the form: $out"
			fail=1
			;;
		esac
	fi
	gone "$id-a" "x-$id-a.scope" "/nonexistent" || fail=1
	# A process that cannot start: the scope was made, and must go.
	mkbundle "$WORK/b" "system.slice:rrun:$id-b" /no/such/binary
	if quiet rr create --bundle "$WORK/b" "$id-b"; then
		echo "create of /no/such/binary worked"
		fail=1
	fi
	rr delete --force "$id-b" 2>/dev/null
	gone "$id-b" "rrun-$id-b.scope" "/system.slice/rrun-$id-b.scope" || fail=1
	# A limit systemd refuses (AllowedCPUs beyond the machine still is accepted by systemd;
	# a bad cpuset is refused by the kernel on the file write).
	RESOURCES='{"cpu": {"cpus": "63"}}' mkbundle "$WORK/c" "system.slice:rrun:$id-c"
	if quiet rr create --bundle "$WORK/c" "$id-c"; then
		echo "create with cpuset.cpus 63 worked on $(nproc) cpus"
		rr delete --force "$id-c"
		fail=1
	fi
	rr delete --force "$id-c" 2>/dev/null
	gone "$id-c" "rrun-$id-c.scope" "/system.slice/rrun-$id-c.scope" || fail=1
	return $fail
}

# Two containers cannot share one scope: the second create fails, the first runs on.
t_same_unit_twice() {
	local id=same-$$ fail=0 out
	mkbundle "$WORK/b" "system.slice:rrun:$id"
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	if rr create --bundle "$WORK/b" "$id-2" </dev/null >"$WORK/2.out" 2>&1; then
		# runc 1.1.5 may put the second container into the first one's scope.
		if [ "$IS_RRUN" = 0 ]; then
			rr delete --force "$id-2"
			rr delete --force "$id"
			return 0
		fi
		echo "a second container in rrun-$id.scope was created"
		rr delete --force "$id-2"
		fail=1
	elif [ "$IS_RRUN" = 1 ]; then
		out=$(cat "$WORK/2.out")
		case $out in
		*"already exists"*) ;;
		*)
			echo "error: $out"
			fail=1
			;;
		esac
	fi
	# runc 1.1.5's failed create destroys the scope it did not make: the first container dies.
	[ "$IS_RRUN" = 1 ] || {
		rr delete --force "$id" 2>/dev/null
		return $fail
	}
	expect "first container's unit" active "$(unit_prop "rrun-$id.scope" ActiveState)" || fail=1
	expect "first container" created "$(rr state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" || fail=1
	rr delete --force "$id-2" 2>/dev/null
	run_ok delete rr delete --force "$id" || return 1
	gone "$id" "rrun-$id.scope" "/system.slice/rrun-$id.scope" || return 1
	return $fail
}

# A container whose process exits: systemd stops the empty scope by itself; state says
# stopped and delete succeeds with nothing left. An OOM-killed one leaves a failed unit,
# which a new container of the same name replaces (reset-failed, as runc).
t_exit_and_oom() {
	local id=exit-$$ fail=0
	mkbundle "$WORK/b" "system.slice:rrun:$id" sh -c 'sleep 0.5'
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	run_ok start rr start "$id" || return 1
	wait_for 20 sh -c "$RRUN --root $RRUN_ROOT state $id | grep -q '\"stopped\"'" || {
		echo "not stopped: $(rr state "$id" 2>&1)"
		fail=1
	}
	run_ok delete rr delete "$id" || return 1
	gone "$id" "rrun-$id.scope" "/system.slice/rrun-$id.scope" || fail=1
	# OOM: 16 MiB and a process that wants more (no swap for it).
	local oid=oom-$$
	# shellcheck disable=SC2016 # the container's shell expands it
	RESOURCES='{"memory": {"limit": 16777216, "swap": 16777216}}' \
		mkbundle "$WORK/o" "system.slice:rrun:$oid" sh -c 'x=a; while :; do x=$x$x; done'
	run_ok create rr create --bundle "$WORK/o" "$oid" || return 1
	run_ok start rr start "$oid" || return 1
	wait_for 60 sh -c "$RRUN --root $RRUN_ROOT state $oid | grep -q '\"stopped\"'" || {
		echo "OOM container not stopped: $(rr state "$oid" 2>&1)"
		fail=1
	}
	echo "after OOM: $(systemctl show -p ActiveState,Result "rrun-$oid.scope" | tr '\n' ' ')"
	run_ok delete rr delete "$oid" || fail=1
	gone "$oid" "rrun-$oid.scope" "/system.slice/rrun-$oid.scope" || fail=1
	# The same name again works.
	mkbundle "$WORK/o2" "system.slice:rrun:$oid" sleep 100
	run_ok "create again" rr create --bundle "$WORK/o2" "$oid" || return 1
	rr delete --force "$oid"
	gone "$oid" "rrun-$oid.scope" "/system.slice/rrun-$oid.scope" || fail=1
	return $fail
}

# kill --all and delete --force of a container without its own pid namespace: every process
# of the scope dies, and the unit goes (no SIGTERM wait of systemd's stop).
t_shared_pidns_force_delete() {
	local id=sharedpid-$$ fail=0 start end
	EDIT='spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]' \
		mkbundle "$WORK/b" "system.slice:rrun:$id" sh -c 'trap "" TERM; (trap "" TERM; sleep 1000) & sleep 1000'
	run_ok create rr create --bundle "$WORK/b" "$id" || return 1
	run_ok start rr start "$id" || return 1
	sleep 0.5
	start=$SECONDS
	run_ok delete rr delete --force "$id" || return 1
	end=$SECONDS
	[ $((end - start)) -lt 20 ] || {
		echo "delete --force took $((end - start))s"
		fail=1
	}
	gone "$id" "rrun-$id.scope" "/system.slice/rrun-$id.scope" || fail=1
	return $fail
}

# Rootless on the systemd driver: a user's own manager (systemd --user, started by lingering)
# makes the container's scope in its user.slice (runc's default slice for rootless), delegated
# to the user; the limits land in the scope's files, delete stops the unit. rrun talks to the
# manager's private socket ($XDG_RUNTIME_DIR/systemd/private); runc 1.1 wants the user's D-Bus
# session bus (dbus-user-session), which this image does not have, so runc is not run here.
t_rootless_user_manager() {
	if [ "$IS_RRUN" != 1 ]; then
		echo "runc needs the user's D-Bus session bus (dbus-user-session): not in this image"
		return 0
	fi
	local user=rrunrl$$ uid id=rootless-$$ unit sock cg pid base rt
	useradd --no-create-home --user-group --shell /usr/sbin/nologin "$user" || {
		echo "useradd $user failed"
		return 1
	}
	uid=$(id -u "$user")
	rt=/run/user/$uid
	# shellcheck disable=SC2064 # expanded now, on purpose
	trap "runuser -u $user -- env XDG_RUNTIME_DIR=$rt '$RRUN' --systemd-cgroup --root $rt/rrun delete --force $id >/dev/null 2>&1
		loginctl disable-linger $user; systemctl stop user@$uid.service; userdel $user" EXIT
	loginctl enable-linger "$user" || return 1
	sock=$rt/systemd/private
	wait_for 60 test -S "$sock" || {
		journalctl -b --no-pager -n 30 -u "user@$uid.service" -u "user-runtime-dir@$uid.service" 2>&1 | tail -n 30
		echo "no user manager socket $sock ($(systemctl is-active "user@$uid.service"))"
		return 1
	}
	unit=rrun-$id.scope
	base=/user.slice/user-$uid.slice/user@$uid.service
	cg=$base/user.slice/$unit
	RESOURCES='{"pids":{"limit":30}}' \
		EDIT="spec['linux']['namespaces'].append({'type': 'user'}); spec['linux']['uidMappings'] = [{'containerID': 0, 'hostID': $uid, 'size': 1}]; spec['linux']['gidMappings'] = [{'containerID': 0, 'hostID': $uid, 'size': 1}]" \
		mkbundle "$WORK/b" "" sleep 1000
	as_user() { runuser -u "$user" -- env XDG_RUNTIME_DIR="$rt" "$RRUN" --systemd-cgroup --root "$rt/rrun" "$@"; }
	run_ok "create as $user" as_user create --bundle "$WORK/b" "$id" || return 1
	pid=$(as_user state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	expect "init's cgroup" "$cg" "$(cgroup_of "$pid")" || return 1
	expect "init's uid on the host" "$uid" "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" || return 1
	expect "$unit ActiveState (user manager)" active \
		"$(runuser -u "$user" -- env XDG_RUNTIME_DIR="$rt" systemctl --user show -p ActiveState --value "$unit")" || return 1
	expect "pids.max" 30 "$(cg_read "$cg" pids.max)" || return 1
	expect "the scope's owner" "$uid" "$(stat -c %u "/sys/fs/cgroup$cg")" || return 1
	run_ok start as_user start "$id" || return 1
	run_ok "delete --force" as_user delete --force "$id" || return 1
	if [ -d "/sys/fs/cgroup$cg" ]; then
		echo "cgroup dir $cg left"
		return 1
	fi
	expect "$unit after delete" "" \
		"$(runuser -u "$user" -- env XDG_RUNTIME_DIR="$rt" systemctl --user list-units --all --plain --no-legend -- "$unit")" || return 1
}

# The cgroupfs driver on this cgroup v2 host (no --systemd-cgroup), beside systemd: an
# absolute path under a parent of the test's own; limits in the files; nothing left.
t_cgroupfs_driver_on_v2() {
	local id=cgfs-$$ cg=/rrun-driver-test/cgfs-$$ fail=0 pid
	RESOURCES='{"memory": {"limit": 33554432}, "pids": {"limit": 11}, "cpu": {"quota": 10000}}' \
		mkbundle "$WORK/b" "$cg"
	run_ok create rr_fs create --bundle "$WORK/b" "$id" || return 1
	pid=$(rr_fs state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	expect "init's cgroup" "$cg" "$(cgroup_of "$pid")" || fail=1
	expect memory.max 33554432 "$(cat "/sys/fs/cgroup$cg/memory.max")" || fail=1
	expect pids.max 11 "$(cat "/sys/fs/cgroup$cg/pids.max")" || fail=1
	expect cpu.max "10000 100000" "$(cat "/sys/fs/cgroup$cg/cpu.max")" || fail=1
	if unit_loaded "cgfs-$$.scope"; then
		echo "a unit for a cgroupfs container"
		fail=1
	fi
	run_ok start rr_fs start "$id" || return 1
	run_ok delete rr_fs delete --force "$id" || return 1
	[ ! -d "/sys/fs/cgroup$cg" ] || {
		echo "cgroup left"
		fail=1
	}
	rmdir /sys/fs/cgroup/rrun-driver-test 2>/dev/null
	return $fail
}

# The cost of the driver: creates with --systemd-cgroup vs the cgroupfs driver, side by side,
# printed for the record (a ratio; not a pass/fail threshold).
t_create_cost() {
	local n=${CREATE_COST_N:-10} t0 t1 t2
	mkbundle "$WORK/s" "system.slice:rrun:cost-s-$$"
	mkbundle "$WORK/f" "/rrun-driver-test/cost-f-$$"
	t0=$(date +%s%N)
	for _ in $(seq "$n"); do
		quiet rr_fs create --bundle "$WORK/f" "cost-f-$$" && rr_fs delete --force "cost-f-$$" || return 1
	done
	t1=$(date +%s%N)
	for _ in $(seq "$n"); do
		quiet rr create --bundle "$WORK/s" "cost-s-$$" && rr delete --force "cost-s-$$" || return 1
	done
	t2=$(date +%s%N)
	rmdir /sys/fs/cgroup/rrun-driver-test 2>/dev/null
	echo "create+delete: cgroupfs $(((t1 - t0) / n / 1000000)) ms, systemd $(((t2 - t1) / n / 1000000)) ms (x$(((t2 - t1) * 100 / (t1 - t0)))%)" |
		tee -a /payload/logs/create-cost.txt
}
