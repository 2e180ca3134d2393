# shellcheck shell=bash
# The engines in the systemd guest, with rrun (the wrapper $RT) as their runtime: docker 20.10
# (+ docker-compose 1.29), podman 4.3, containerd 1.6 (ctr, runc v2 shim), each with the
# systemd cgroup driver (sec_X systemd) or the cgroupfs driver (sec_X cgroupfs).
# Sourced by guest.sh: uses $RT, $P, $LOGS, calls_count/calls_since and tests/clients/lib.sh.
#
# Every container gets the same limits: 64 MiB of memory, half a CPU, 40 pids. The checks:
# where the container's processes are (/proc/PID/cgroup), with systemd that this is an active
# scope unit systemd knows with that cgroup and the limits as unit properties (kept across a
# daemon-reload), the limits in the v2 files (memory.max, cpu.max, pids.max), and after stop/rm
# no unit and no cgroup dir left.

IMG=docker.io/library/rrun-busybox:latest
DK_IMG=rrun-busybox:latest
CT_NS=rrun-systemd
MEM=67108864

cg_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
unit_known() { [ -n "$(systemctl list-units --all --plain --no-legend -- "$1" 2>/dev/null)" ]; }
# cg_gone CGPATH: neither the cgroup dir nor (with systemd) its scope unit is left.
cg_gone() { [ ! -d "/sys/fs/cgroup$1" ] && ! unit_known "${1##*/}"; }
# The scope units of the engines (docker-*, libpod-*, ctr-*) and their cgroup dirs.
engine_scopes() {
	systemctl list-units --all --plain --no-legend --type=scope 2>/dev/null | awk '{ print $1 }' |
		grep -E '^(docker|libpod|libpod-conmon|ctr)-'
}

# check_cgroup WHAT PID WANT DRIVER: PID is in the cgroup WANT (or below it); with systemd WANT's
# last component is an active scope unit whose ControlGroup is WANT; with cgroupfs no unit of
# that name exists.
check_cgroup() {
	local what=$1 pid=$2 want=$3 drv=$4 cg unit=${3##*/}
	if [ -z "$pid" ] || [ "$pid" = 0 ] || [ ! -e "/proc/$pid" ]; then
		fail "$what: no running container (pid '$pid'): its cgroup checks are skipped"
		return 1
	fi
	cg=$(cg_of "$pid")
	if [ -n "$cg" ] && { [ "$cg" = "$want" ] || [[ $cg == "$want"/* ]]; }; then
		pass "$what: the process is in $want"
	else
		fail "$what: the process (pid ${pid:-?}) is in '${cg:-?}', want $want" "$(cat "/proc/$pid/cgroup" 2>&1)"
	fi
	if [ "$drv" = systemd ]; then
		eq "$what: $unit is an active unit" active "$(systemctl show -p ActiveState --value -- "$unit" 2>&1)"
		eq "$what: systemd's ControlGroup of $unit" "$want" "$(systemctl show -p ControlGroup --value -- "$unit" 2>&1)"
	else
		if unit_known "$unit"; then fail "$what: systemd has a unit $unit (cgroupfs driver)"; else pass "$what: no systemd unit (cgroupfs driver)"; fi
	fi
}

# check_limits WHAT CGPATH DRIVER [PIDS]: memory.max, cpu.max and pids.max (PIDS, default 40;
# "-": not set by this engine); with systemd also the unit's MemoryMax, CPUQuotaPerSecUSec and
# TasksMax, and the files unchanged after a daemon-reload (systemd re-applies its properties).
check_limits() {
	local what=$1 cg=$2 drv=$3 pids=${4:-40} d=/sys/fs/cgroup$2 unit=${2##*/}
	eq "$what: memory.max" "$MEM" "$(cat "$d/memory.max" 2>&1)"
	eq "$what: cpu.max" "50000 100000" "$(cat "$d/cpu.max" 2>&1)"
	[ "$pids" = - ] || eq "$what: pids.max" "$pids" "$(cat "$d/pids.max" 2>&1)"
	[ "$drv" = systemd ] || return 0
	eq "$what: $unit MemoryMax" "$MEM" "$(systemctl show -p MemoryMax --value -- "$unit" 2>&1)"
	eq "$what: $unit CPUQuotaPerSecUSec" 500ms "$(systemctl show -p CPUQuotaPerSecUSec --value -- "$unit" 2>&1)"
	[ "$pids" = - ] || eq "$what: $unit TasksMax" "$pids" "$(systemctl show -p TasksMax --value -- "$unit" 2>&1)"
	timeout 120 systemctl daemon-reload
	local got want="$MEM 50000 100000"
	got="$(cat "$d/memory.max" "$d/cpu.max" 2>&1 | tr '\n' ' ')"
	[ "$pids" = - ] || { want+=" $pids"; got+="$(cat "$d/pids.max" 2>&1)"; }
	eq "$what: the limits after systemctl daemon-reload" "$want" "${got% }"
}

# after_stop WHAT CGPATH: within 20 s neither the cgroup dir nor a unit of that name is left.
after_stop() {
	if wait_for 20 cg_gone "$2"; then
		pass "$1: no cgroup dir, no unit left"
	else
		fail "$1: left behind: $([ -d "/sys/fs/cgroup$2" ] && echo "the dir /sys/fs/cgroup$2") $(systemctl list-units --all --plain --no-legend -- "${2##*/}" 2>&1)"
	fi
}

# runtime_flag DRIVER: the runtime was (systemd) or was not (cgroupfs) given --systemd-cgroup by
# the engine for the commands since the last calls_count (in $N0).
runtime_flag() {
	OUT=$(calls_since "$N0")
	if [ "$1" = systemd ]; then
		has "$2: the engine ran the runtime with --systemd-cgroup" '--systemd-cgroup.* create '
	else
		has "$2: the engine ran the runtime (create)" '(^| )create '
		hasnt "$2: no --systemd-cgroup (cgroupfs driver)" '--systemd-cgroup'
	fi
}

# leftovers ENGINE DRIVER CGROUPFS_PARENT: no engine scope unit, no container cgroup dir.
leftovers() {
	local scopes dirs=
	scopes=$(engine_scopes)
	if [ -z "$scopes" ]; then pass "no scope unit of an engine is left"; else fail "scope units left" "$scopes"; fi
	if [ -n "$3" ] && [ -d "/sys/fs/cgroup/$3" ]; then
		dirs=$(find "/sys/fs/cgroup/$3" -mindepth 1 -type d)
	fi
	dirs+=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d \( -name 'docker-*.scope' -o -name 'libpod-*' -o -name 'ctr-*.scope' \))
	if [ -z "$dirs" ]; then pass "no container cgroup dir is left"; else fail "cgroup dirs left" "$dirs"; fi
}

# ------------------------------------------------------------------------------------------------
# docker 20.10 (Debian's docker.service, with the system containerd) and docker-compose 1.29.

sec_docker() {
	local drv=$1 d=/tmp/docker-$1 id pid pid2 want epid
	mkdir -p "$d/compose" /etc/docker
	cat >/etc/docker/daemon.json <<EOF
{
  "exec-opts": ["native.cgroupdriver=$drv"],
  "runtimes": {"rrun": {"path": "$RT"}},
  "default-runtime": "rrun",
  "storage-driver": "overlay2",
  "log-driver": "json-file"
}
EOF
	step "systemctl start docker (daemon.json: cgroup driver $drv, default runtime rrun)" 0 '' \
		timeout 300 systemctl start docker
	if ! wait_for 120 docker version; then
		fail "dockerd does not answer" "$(journalctl -u docker --no-pager 2>&1 | tail -n 20)"
		journalctl -u docker -u containerd --no-pager >"$LOGS/docker-$drv.log" 2>&1
		return
	fi
	step "docker info: cgroup driver $drv, cgroup v2, default runtime rrun" 0 "Cgroup Driver: $drv" docker info
	has "docker info: cgroup version 2" 'Cgroup Version: 2'
	has "docker info: default runtime rrun" 'Default Runtime: rrun'
	step "docker load" 0 'Loaded image' timeout 300 docker load -i "$P/busybox.tar"

	N0=$(calls_count)
	step "docker run --rm: output" 0 '^hello from the container$' \
		timeout 120 docker run --rm "$DK_IMG" echo hello from the container
	runtime_flag "$drv" "docker run"
	step "docker run: exit status" 3 '' timeout 120 docker run --rm "$DK_IMG" sh -c 'exit 3'
	# AppArmor is on in Debian's kernel: the runtime applies docker's profile.
	[ "$drv" = systemd ] && step "docker run: AppArmor profile docker-default" 0 '^docker-default \(enforce\)$' \
		timeout 120 docker run --rm "$DK_IMG" cat /proc/self/attr/current

	step "docker run -d -m 64m --cpus 0.5 --pids-limit 40" 0 '^[0-9a-f]{64}$' \
		timeout 120 docker run -d --name web -m 64m --cpus 0.5 --pids-limit 40 "$DK_IMG" \
		sh -c 'echo started-web; exec httpd -f -p 8080'
	id=$(docker inspect -f '{{.Id}}' web 2>/dev/null)
	pid=$(docker inspect -f '{{.State.Pid}}' web 2>/dev/null)
	if [ "$drv" = systemd ]; then want=/system.slice/docker-$id.scope; else want=/docker/$id; fi
	check_cgroup "docker run -d" "$pid" "$want" "$drv" && check_limits "docker run -d" "$want" "$drv"
	step "docker exec: output" 0 '^exec-ok$' timeout 120 docker exec web sh -c 'echo exec-ok'
	step "docker exec: exit status" 7 '' timeout 120 docker exec web sh -c 'exit 7'
	step "docker exec -d" 0 '' timeout 120 docker exec -d web sleep 4321
	wait_for 20 pgrep -f '^sleep 4321$'
	epid=$(pgrep -f '^sleep 4321$' | head -n 1)
	eq "docker exec: the process is in the container's cgroup" "$want" "$(cg_of "${epid:-0}")"
	step "docker logs" 0 '^started-web$' timeout 60 docker logs web
	step "docker stats --no-stream: the memory limit and pids" 0 '^web [0-9.]+[KMG]?i?B / 64MiB [0-9]+$' \
		timeout 120 docker stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' web
	step "docker restart" 0 '' timeout 120 docker restart -t 2 web
	pid2=$(docker inspect -f '{{.State.Pid}}' web 2>/dev/null)
	if [ -n "$pid2" ] && [ "$pid2" != 0 ] && [ "$pid2" != "$pid" ]; then
		pass "docker restart: a new process ($pid -> $pid2)"
	else
		fail "docker restart: pid $pid -> $pid2"
	fi
	check_cgroup "docker restart" "$pid2" "$want" "$drv" &&
		eq "docker restart: memory.max" "$MEM" "$(cat "/sys/fs/cgroup$want/memory.max" 2>&1)"
	step "docker stop" 0 '' timeout 120 docker stop -t 2 web
	eq "docker stop: exited" exited "$(docker inspect -f '{{.State.Status}}' web 2>&1)"
	after_stop "docker stop" "$want"
	step "docker rm" 0 '' timeout 120 docker rm web

	if [ "$drv" = systemd ]; then
		# Two services on the compose network, rrun the default runtime.
		cat >"$d/compose/docker-compose.yml" <<EOF
version: "2.4"
services:
  web:
    image: $DK_IMG
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
    mem_limit: 64m
  client:
    image: $DK_IMG
    depends_on: [web]
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/index.html && exit 0; sleep 0.5; done; exit 1"]
EOF
		local dc=(docker-compose -p rrunsd -f "$d/compose/docker-compose.yml") wid
		step "docker-compose up -d web" 0 '' timeout 300 "${dc[@]}" up -d web
		wid=$(docker inspect -f '{{.Id}}' rrunsd_web_1 2>/dev/null)
		check_cgroup "docker-compose web" "$(docker inspect -f '{{.State.Pid}}' rrunsd_web_1 2>/dev/null)" \
			"/system.slice/docker-$wid.scope" systemd
		step "docker-compose run client: reaches web by its service name" 0 '^hello-from-web$' \
			timeout 300 "${dc[@]}" run --rm client
		step "docker-compose: the services ran on rrun" 0 '^rrun$' docker inspect -f '{{.HostConfig.Runtime}}' rrunsd_web_1
		step "docker-compose down" 0 '' timeout 300 "${dc[@]}" down -t 2
		after_stop "docker-compose down" "/system.slice/docker-$wid.scope"
	fi

	run docker ps -aq
	eq "no container left (docker ps -a)" "" "$OUT"
	OUT=$(ls -A /run/docker/runtime-runc/moby 2>/dev/null)
	eq "no container state left in the runtime's root" "" "$OUT"
	leftovers docker "$drv" docker
	journalctl -u docker -u containerd --no-pager >"$LOGS/docker-$drv.log" 2>&1
	step "systemctl stop docker" 0 '' timeout 300 systemctl stop docker.socket docker.service
}

# ------------------------------------------------------------------------------------------------
# podman 4.3 (conmon, netavark) with --runtime rrun.

sec_podman() {
	local drv=$1 d=/tmp/podman-$1 id pid want epid parent
	mkdir -p "$d/ctx" /etc/containers
	cat >/etc/containers/containers.conf <<EOF
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "$drv"
events_logger = "file"
runtime = "rrun"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "rrun"]
pull_policy = "never"

[engine.runtimes]
rrun = ["$RT"]

[network]
network_backend = "netavark"
EOF
	cat >/etc/containers/storage.conf <<EOF
[storage]
driver = "overlay"
graphroot = "/var/lib/containers/storage"
runroot = "/run/containers/storage"
EOF
	echo 'unqualified-search-registries = []' >/etc/containers/registries.conf
	cat >/usr/local/bin/pd <<'EOF'
#!/bin/sh
exec podman --runtime rrun "$@"
EOF
	chmod 755 /usr/local/bin/pd

	step "podman info: runtime rrun, cgroup manager $drv, cgroup v2" 0 "^rrun $drv v2\$" \
		timeout 120 pd info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}}'
	step "podman load" 0 'rrun-busybox' timeout 300 pd load -i "$P/busybox.tar"
	N0=$(calls_count)
	step "podman run --rm: output" 0 '^hello from the container$' \
		timeout 120 pd run --rm "$IMG" echo hello from the container
	runtime_flag "$drv" "podman run"
	[ "$drv" = systemd ] && step "podman run: AppArmor profile containers-default" 0 '^containers-default-[0-9.]+ \(enforce\)$' \
		timeout 120 pd run --rm "$IMG" cat /proc/self/attr/current
	step "podman run -d -m 64m --cpus 0.5 --pids-limit 40" 0 '^[0-9a-f]{64}$' \
		timeout 120 pd run -d --name pweb -m 64m --cpus 0.5 --pids-limit 40 "$IMG" \
		sh -c 'echo started-pweb; exec httpd -f -p 8080'
	id=$(pd inspect -f '{{.Id}}' pweb 2>/dev/null)
	pid=$(pd inspect -f '{{.State.Pid}}' pweb 2>/dev/null)
	if [ "$drv" = systemd ]; then want=/machine.slice/libpod-$id.scope; else want=/libpod_parent/libpod-$id; fi
	check_cgroup "podman run -d" "$pid" "$want" "$drv" && check_limits "podman run -d" "$want" "$drv"
	step "podman exec: output" 0 '^exec-ok$' timeout 120 pd exec pweb sh -c 'echo exec-ok'
	step "podman exec -d" 0 '' timeout 120 pd exec -d pweb sleep 4322
	wait_for 20 pgrep -f '^sleep 4322$'
	epid=$(pgrep -f '^sleep 4322$' | head -n 1)
	parent=$(cg_of "${epid:-0}")
	if [ -n "$parent" ] && { [ "$parent" = "$want" ] || [[ $parent == "$want"/* ]]; }; then
		pass "podman exec: the process is in the container's cgroup"
	else
		fail "podman exec: the process is in '$parent', want $want"
	fi
	step "podman logs" 0 '^started-pweb$' timeout 60 pd logs pweb
	step "podman stats --no-stream: the memory limit" 0 '^pweb [0-9.]+[kMG]?B / 67.11MB$' \
		timeout 120 pd stats --no-stream --format '{{.Name}} {{.MemUsage}}' pweb
	step "podman stop" 0 '' timeout 120 pd stop -t 2 pweb
	eq "podman stop: exited" exited "$(pd inspect -f '{{.State.Status}}' pweb 2>&1)"
	after_stop "podman stop" "$want"
	step "podman rm" 0 '' timeout 120 pd rm pweb

	if [ "$drv" = systemd ]; then
		cat >"$d/ctx/Containerfile" <<EOF
FROM $IMG
RUN echo built-by-run > /built && cat /proc/self/cgroup > /built-cgroup
CMD ["cat", "/built"]
EOF
		N0=$(calls_count)
		step "podman build (a RUN step)" 0 'Successfully tagged localhost/rrun-built:latest' \
			timeout 600 pd build --pull=never -t rrun-built "$d/ctx"
		OUT=$(calls_since "$N0")
		has "podman build: the RUN step ran on the runtime" '(^| )create .*--bundle'
		step "podman run of the built image" 0 '^built-by-run$' timeout 120 pd run --rm rrun-built
		timeout 120 pd rmi -f localhost/rrun-built >/dev/null 2>&1
	fi

	run pd ps -aq
	eq "no container left (podman ps -a)" "" "$OUT"
	leftovers podman "$drv" libpod_parent
}

# ------------------------------------------------------------------------------------------------
# containerd 1.6 (containerd.service) and ctr with the runc v2 shim.

sec_containerd() {
	local drv=$1 id want pid flags=()
	step "systemctl start containerd" 0 '' timeout 300 systemctl start containerd
	if ! wait_for 60 ctr version; then
		fail "containerd does not answer" "$(journalctl -u containerd --no-pager 2>&1 | tail -n 20)"
		return
	fi
	cat >/usr/local/bin/ct <<EOF
#!/bin/sh
exec ctr -n $CT_NS "\$@"
EOF
	chmod 755 /usr/local/bin/ct
	step "ctr images import" 0 'rrun-busybox' timeout 300 ct images import "$P/busybox.tar"

	# ctr's systemd cgroup: --runc-systemd-cgroup wants a slice:prefix:name cgroupsPath.
	id=c-run-$drv
	if [ "$drv" = systemd ]; then
		flags=(--runc-systemd-cgroup --cgroup "system.slice:ctr:$id")
		want=/system.slice/ctr-$id.scope
	else
		want=/$CT_NS/$id
	fi
	N0=$(calls_count)
	step "ctr run --rm: the container's cgroup from inside" 0 "^0::$want\$" \
		timeout 120 ct run --rm --runc-binary "$RT" "${flags[@]}" "$IMG" "$id" cat /proc/self/cgroup
	runtime_flag "$drv" "ctr run"
	after_stop "ctr run --rm" "$want"

	id=c-bg-$drv
	if [ "$drv" = systemd ]; then
		flags=(--runc-systemd-cgroup --cgroup "system.slice:ctr:$id")
		want=/system.slice/ctr-$id.scope
	else
		want=/$CT_NS/$id
	fi
	step "ctr run -d --memory-limit --cpus 0.5" 0 '' \
		timeout 120 ct run -d --runc-binary "$RT" "${flags[@]}" --memory-limit "$MEM" --cpus 0.5 "$IMG" "$id" sleep 1000
	pid=$(ct task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $2 }')
	check_cgroup "ctr run -d" "$pid" "$want" "$drv" && check_limits "ctr run -d" "$want" "$drv" -
	# shellcheck disable=SC2016 # expands in the container
	step "ctr task exec: output and cgroup" 0 "^exec-ok 0::$want\$" \
		timeout 120 ct task exec --exec-id e1 "$id" sh -c 'echo exec-ok $(cat /proc/self/cgroup)'
	step "ctr task metrics" 0 'memory\.(usage|limit)' timeout 120 ct task metrics "$id"
	has "ctr task metrics: pids" 'pids\.current'
	step "ctr task kill -s KILL" 0 '' timeout 60 ct task kill -s KILL "$id"
	wait_for 30 sh -c "ct task ls | awk '\$1 == \"$id\" && \$3 == \"STOPPED\" { f = 1 } END { exit !f }'"
	step "ctr task rm" 0 '' timeout 60 ct task rm "$id"
	step "ctr containers rm" 0 '' timeout 60 ct containers rm "$id"
	after_stop "ctr task rm" "$want"

	run ct containers ls -q
	eq "no container left (ctr containers ls)" "" "$OUT"
	OUT=$(ls -A "/run/containerd/runc/$CT_NS" 2>/dev/null)
	eq "no container state left in the runtime's root" "" "$OUT"
	leftovers containerd "$drv" "$CT_NS"
	journalctl -u containerd --no-pager >"$LOGS/containerd-$drv.log" 2>&1
}
