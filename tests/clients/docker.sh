# docker 20.10 (dockerd with its own containerd) with runtime rrun, and docker-compose 1.29
# with rrun as the default runtime.
# Sourced by run.sh: uses $T, $RT (the runtime), $IMG, $PTY, lib.sh.

DK_PORT=18090
DK_COMPOSE_PORT=18095
DK_BRIDGE=rrcl-docker0
DK_IMG=rrun-busybox:latest

# dk: Debian's docker client (/usr/local/bin/docker may be a newer one) on our daemon;
# dkc: docker-compose on our daemon and project (commands: timeout and ptyrun run them).
dk_commands() {
  local d=$T/dk
  cat >"$T/bin/dk" <<EOF
#!/bin/sh
export DOCKER_HOST="unix://$d/docker.sock" DOCKER_CONFIG="$d/cfg" DOCKER_BUILDKIT=0
exec /usr/bin/docker "\$@"
EOF
  cat >"$T/bin/dkc" <<EOF
#!/bin/sh
export DOCKER_HOST="unix://$d/docker.sock" DOCKER_CONFIG="$d/cfg" COMPOSE_PROJECT_NAME=rrunclients
exec docker-compose -f "$d/compose/docker-compose.yml" "\$@"
EOF
  chmod 755 "$T/bin/dk" "$T/bin/dkc"
}

dk_cleanup() {
  timeout 120 dkc down -t 1 >/dev/null 2>&1
  local ids
  ids=$(dk ps -aq 2>/dev/null)
  [ -n "$ids" ] && timeout 120 dk rm -f $ids >/dev/null 2>&1
  return 0
}

dk_status() { dk inspect --format '{{.State.Status}}' "$1" 2>&1; }

test_docker() {
  SECTION=docker
  local d=$T/dk
  mkdir -p "$d/cfg" "$d/ctx" "$d/compose"
  dk_commands
  # Docker's bridge is ours (so a host docker0 is never touched); cgroups under a parent of ours.
  ip link add "$DK_BRIDGE" type bridge &&
    ip addr add 172.31.254.1/24 dev "$DK_BRIDGE" &&
    ip link set "$DK_BRIDGE" up ||
    { fail "cannot create the bridge $DK_BRIDGE"; return; }
  cat >"$d/daemon.json" <<EOF
{
  "data-root": "$d/data",
  "exec-root": "$d/exec",
  "pidfile": "$d/docker.pid",
  "hosts": ["unix://$d/docker.sock"],
  "runtimes": {"rrun": {"path": "$RT"}},
  "default-runtime": "rrun",
  "bridge": "$DK_BRIDGE",
  "default-address-pools": [{"base": "172.31.240.0/21", "size": 24}],
  "cgroup-parent": "/rrun-clients-docker",
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "deprecated-key-path": "$d/key.json"
}
EOF
  dockerd --config-file "$d/daemon.json" >"$d/dockerd.log" 2>&1 &
  DK_PID=$!
  DAEMON_PIDS+=("$DK_PID")
  if wait_daemon "$DK_PID" 60 dk version; then
    pass "dockerd starts on a private socket, data-root and exec-root"
  else
    fail "dockerd does not start" "$(tail -n 20 "$d/dockerd.log")"
    return
  fi
  step "docker info: runtime rrun is the default" 0 'Default Runtime: rrun' dk info
  step "docker load" 0 'Loaded image' timeout 120 dk load -i "$T/busybox.tar"

  # --- run
  local n0
  n0=$(calls_count)
  step "docker run --runtime rrun --rm: output" 0 '^hello from the container$' \
    timeout 60 dk run --runtime rrun --rm "$DK_IMG" sh -c 'echo hello from the container'
  OUT=$(calls_since "$n0")
  has "the shim ran the runtime under test" '(^| )create .*--bundle '
  step "docker run: exit status" 3 '' timeout 60 dk run --runtime rrun --rm "$DK_IMG" sh -c 'exit 3'
  step "docker run -it: a terminal" 4 '/dev/pts/[0-9]+' \
    $PTY --rows 30 --cols 90 -- timeout 60 dk run --runtime rrun --rm -it "$DK_IMG" sh -c "tty; $STTY_SIZE; exit 4"
  has "docker run -it: window size 30x90 inside" 'size 30 90'
  step "docker run -it: an interactive shell" 5 'in-42' \
    $PTY --expect '# ' --input $'echo in-$((6*7))\nexit 5\n' -- timeout 60 dk run --runtime rrun --rm -it "$DK_IMG" sh
  step "docker run -i: stdin reaches the container, EOF ends it" 0 '^piped-in$' \
    sh -c "echo piped-in | timeout 60 dk run --runtime rrun --rm -i $DK_IMG cat"

  # --- a web server
  if ! port_free $DK_PORT; then
    fail "port $DK_PORT is in use on 127.0.0.1: web server steps skipped"
  else
    step "docker run -d --name web -p 127.0.0.1:$DK_PORT:8080 httpd" 0 '^[0-9a-f]{64}$' \
      timeout 60 dk run -d --runtime rrun --name web -p 127.0.0.1:$DK_PORT:8080 "$DK_IMG" httpd -f -p 8080
    local host id
    host=$(dk inspect --format '{{.Config.Hostname}}' web 2>/dev/null)
    id=$(dk inspect --format '{{.Id}}' web 2>/dev/null)
    wait_for 10 http "http://127.0.0.1:$DK_PORT/etc/hostname"
    step "curl 127.0.0.1:$DK_PORT: the container's httpd answers" 0 "^$host\$" http "http://127.0.0.1:$DK_PORT/etc/hostname"
    dk logs -f web >"$d/logs-f.out" 2>&1 &
    local logs_pid=$!
    step "docker exec: output" 0 '^exec-ok$' timeout 60 dk exec web sh -c 'echo exec-ok; echo log-line-1 >/proc/1/fd/1'
    step "docker exec: exit status" 7 '' timeout 60 dk exec web sh -c 'exit 7'
    step "docker exec -it: an interactive shell" 6 'in-42' \
      $PTY --expect '# ' --input $'echo in-$((6*7))\nexit 6\n' -- timeout 60 dk exec -it web sh
    wait_for 10 grep -q log-line-1 "$d/logs-f.out"
    OUT=$(cat "$d/logs-f.out")
    has "docker logs -f: follows the container's output" '^log-line-1'
    step "docker ps" 0 "^web Up .*127.0.0.1:$DK_PORT->8080/tcp" dk ps --format '{{.Names}} {{.Status}} {{.Ports}}'
    step "docker top" 0 'httpd -f -p 8080' timeout 30 dk top web
    step "docker inspect: running on rrun" 0 '^running rrun$' dk inspect --format '{{.State.Status}} {{.HostConfig.Runtime}}' web
    step "docker port" 0 "^8080/tcp -> 127.0.0.1:$DK_PORT\$" dk port web
    step "docker pause" 0 '' timeout 30 dk pause web
    eq "docker inspect: paused" paused "$(dk_status web)"
    run curl -sS --max-time 2 "http://127.0.0.1:$DK_PORT/etc/hostname"
    check "a paused httpd does not answer" 28 ''
    step "docker unpause" 0 '' timeout 30 dk unpause web
    eq "docker inspect: running after unpause" running "$(dk_status web)"
    step "curl after unpause" 0 "^$host\$" http "http://127.0.0.1:$DK_PORT/etc/hostname"
    step "docker update --memory --cpus --pids-limit" 0 '' \
      timeout 30 dk update --memory 64m --memory-swap 128m --cpus 0.5 --pids-limit 40 web
    step "docker update: the container sees its new limits" 0 '^67108864 50000 40$' \
      timeout 60 dk exec web sh -c 'echo $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max)'
    if [ -d /sys/fs/cgroup/memory ]; then
      eq "docker update: the host's cgroup" 67108864 "$(cat /sys/fs/cgroup/memory/rrun-clients-docker/$id/memory.limit_in_bytes 2>&1)"
    fi
    step "docker stats --no-stream" 0 '^web [0-9.]+[KMG]?i?B / 64MiB [0-9]+$' \
      timeout 60 dk stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' web
    step "docker stop" 0 '' timeout 60 dk stop -t 2 web
    eq "docker inspect: exited" exited "$(dk_status web)"
    if wait_for 10 gone "$logs_pid"; then
      pass "docker logs -f ends when the container stops"
    else
      fail "docker logs -f still running after stop"
      kill "$logs_pid" 2>/dev/null
    fi
    wait "$logs_pid" 2>/dev/null
    step "docker start" 0 '' timeout 60 dk start web
    wait_for 10 http "http://127.0.0.1:$DK_PORT/etc/hostname"
    step "curl after start" 0 "^$host\$" http "http://127.0.0.1:$DK_PORT/etc/hostname"
    local pid1 pid2
    pid1=$(dk inspect --format '{{.State.Pid}}' web)
    step "docker restart" 0 '' timeout 60 dk restart -t 2 web
    pid2=$(dk inspect --format '{{.State.Pid}}' web)
    wait_for 10 http "http://127.0.0.1:$DK_PORT/etc/hostname"
    step "curl after restart" 0 "^$host\$" http "http://127.0.0.1:$DK_PORT/etc/hostname"
    [ "$pid1" != "$pid2" ] && [ "${pid2:-0}" -gt 0 ] && pass "docker restart: a new process ($pid1 -> $pid2)" ||
      fail "docker restart: pid $pid1 -> $pid2"
    echo "copied-in" >"$d/cpin"
    step "docker cp into the container" 0 '' timeout 60 dk cp "$d/cpin" web:/tmp/cpin
    step "docker cp: the file is there" 0 '^copied-in$' timeout 60 dk exec web cat /tmp/cpin
    step "docker cp out of the container" 0 '' timeout 60 dk cp web:/etc/passwd "$d/cpout"
    eq "docker cp: the file came out" "root:x:0:0:root:/root:/bin/sh" "$(head -1 "$d/cpout" 2>&1)"
    step "docker commit" 0 '' timeout 120 dk commit web rrun-committed
    step "docker run of the committed image" 0 '^copied-in$' timeout 60 dk run --runtime rrun --rm rrun-committed cat /tmp/cpin
    step "docker export" 0 '' timeout 120 dk export -o "$d/export.tar" web
    step "docker export: the container's files" 0 '^tmp/cpin$' tar tf "$d/export.tar"
    step "docker rm -f" 0 '' timeout 60 dk rm -f web
    step "docker ps -a" 0 '' dk ps -a --format '{{.Names}}'
    hasnt "docker ps -a: web is gone" '^web$'
  fi

  # --- build (the classic builder runs each RUN in a container of the default runtime)
  cat >"$d/ctx/Dockerfile" <<EOF
FROM $DK_IMG
RUN echo built-by-run > /built && mkdir -p /data
RUN ["sh", "-c", "echo \$((40+2)) > /data/answer"]
COPY hello.txt /data/hello.txt
ENV GREETING=hi
WORKDIR /data
CMD ["sh", "-c", "cat /built /data/answer /data/hello.txt; echo \$GREETING \$(pwd)"]
EOF
  echo copied-by-build >"$d/ctx/hello.txt"
  n0=$(calls_count)
  step "docker build (RUN steps)" 0 'Successfully tagged rrun-built:latest' \
    timeout 300 dk build -t rrun-built "$d/ctx"
  OUT=$(calls_since "$n0")
  has "docker build: the RUN steps ran on the runtime" '(^| )create .*--bundle '
  step "docker run of the built image" 0 '^built-by-run 42 copied-by-build hi /data$' \
    sh -c "timeout 60 dk run --rm rrun-built | tr '\n' ' ' | sed 's/ \$//'"

  # --- errors become the exit statuses docker documents (from the runtime's message)
  step "docker run: a missing executable exits 127" 127 '/nonexistent' timeout 60 dk run --runtime rrun --rm "$DK_IMG" /nonexistent
  step "docker run: a command not in PATH exits 127" 127 'nosuchcommand' timeout 60 dk run --runtime rrun --rm "$DK_IMG" nosuchcommand
  step "docker run: a non-executable file exits 126" 126 '/etc/passwd' timeout 60 dk run --runtime rrun --rm "$DK_IMG" /etc/passwd

  # (docker wants the source on a shared mount: the host's / may be private)
  mkdir -p "$d/share"
  echo shared-file >"$d/share/f"
  mount --bind "$d/share" "$d/share" && mount --make-shared "$d/share"
  step "docker run -v DIR:/share:rshared (a shared bind: rootfs propagation shared)" 0 '^shared-file$' \
    timeout 60 dk run --runtime rrun --rm -v "$d/share:/share:rshared" "$DK_IMG" cat /share/f
  umount "$d/share"
  step "docker run --tmpfs /run: the tmpfs keeps the image's mode 755" 0 '^755$' \
    timeout 60 dk run --runtime rrun --rm --tmpfs /run "$DK_IMG" stat -c %a /run

  # --- docker-compose: two services on the compose network, rrun as the default runtime
  if ! port_free $DK_COMPOSE_PORT; then
    fail "port $DK_COMPOSE_PORT is in use on 127.0.0.1: compose steps skipped"
  else
    cat >"$d/compose/docker-compose.yml" <<EOF
version: "2.4"
services:
  web:
    image: $DK_IMG
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1:$DK_COMPOSE_PORT:8080"
  client:
    image: $DK_IMG
    depends_on: [web]
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/index.html && exit 0; sleep 0.5; done; exit 1"]
EOF
    step "docker-compose up -d web" 0 '' timeout 120 dkc up -d web
    step "docker-compose run client: reaches web by its service name" 0 '^hello-from-web$' timeout 120 dkc run --rm client
    step "docker-compose: the published port" 0 '^hello-from-web$' http "http://127.0.0.1:$DK_COMPOSE_PORT/index.html"
    step "docker-compose: services run on the default runtime rrun" 0 '^rrun$' \
      dk inspect --format '{{.HostConfig.Runtime}}' rrunclients_web_1
    step "docker-compose down" 0 '' timeout 120 dkc down -t 2
  fi

  # --- nothing left
  dk_cleanup
  timeout 60 dk rmi -f rrun-built rrun-committed >/dev/null 2>&1
  step "no container left (docker ps -a)" 0 '' dk ps -aq
  [ -z "$OUT" ] || fail "docker ps -a is not empty" "$OUT"
  OUT=$(ls -A "$d/exec/runtime-runc/moby" 2>/dev/null)
  if [ -z "$OUT" ]; then pass "no container state left in the runtime's root"; else fail "container state left in $d/exec/runtime-runc/moby" "$OUT"; fi
  run cgroup_children rrun-clients-docker
  if [ -z "$OUT" ]; then pass "no container cgroup left"; else fail "container cgroups left" "$OUT"; fi
  stop_pid dockerd "$DK_PID"
  DK_PID=
}
