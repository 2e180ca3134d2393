# podman 4.3 (conmon, cgroupfs, netavark) with --runtime rrun.
# Sourced by run.sh: uses $T, $RT (the runtime), $IMG, $PTY, lib.sh.

PD_PORT=18080

# pd: podman with our config and storage, and --runtime rrun: the name of $RT in
# [engine.runtimes] (a command: timeout and ptyrun run it).
pd_commands() {
  local d=$T/pd
  cat >"$T/bin/pd" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$d/containers.conf" CONTAINERS_STORAGE_CONF="$d/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$d/registries.conf"
exec podman --root "$d/storage" --runroot "$d/runroot" --runtime rrun "\$@"
EOF
  chmod 755 "$T/bin/pd"
}

pd_cleanup() {
  timeout 60 pd pod rm -a -f -t 0 >/dev/null 2>&1
  timeout 60 pd rm -a -f -t 0 >/dev/null 2>&1
}

pd_status() { pd inspect --format '{{.State.Status}}' "$1" 2>&1; }
pd_is() { [ "$(pd_status "$1")" = "$2" ]; }

test_podman() {
  SECTION=podman
  local d=$T/pd
  mkdir -p "$d/tmp" "$d/imgtmp" "$d/networks" "$d/ctx" "$d/www"
  # runtime_supports_json: podman gives the runtimes named there --log-format=json and reads
  # their errors from the JSON log (podman 4.3's key, [engine]).
  cat >"$d/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/events.log"
runtime = "rrun"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "rrun"]
tmp_dir = "$d/tmp"
static_dir = "$d/storage/libpod"
volume_path = "$d/storage/volumes"
image_copy_tmp_dir = "$d/imgtmp"
lock_type = "file"
pull_policy = "never"

[engine.runtimes]
rrun = ["$RT"]

[network]
network_backend = "netavark"
network_config_dir = "$d/networks"
EOF
  cat >"$d/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/storage"
runroot = "$d/runroot"
EOF
  cat >"$d/registries.conf" <<EOF
unqualified-search-registries = []
EOF
  pd_commands
  PD_UP=1

  step "podman info: runtime rrun, cgroupfs, private storage" 0 \
    "^rrun cgroupfs $d/storage\$" pd info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphRoot}}'
  step "podman load (docker-archive)" 0 'rrun-busybox' timeout 120 pd load -i "$T/busybox.tar"

  # --- run
  local n0
  n0=$(calls_count)
  step "podman run --rm: output" 0 '^hello from the container$' \
    timeout 60 pd run --rm "$IMG" sh -c 'echo hello from the container'
  OUT=$(calls_since "$n0")
  has "conmon ran the runtime with --log-format=json" '--log-format=json .*create --bundle'
  step "podman run --rm: exit status" 3 '' timeout 60 pd run --rm "$IMG" sh -c 'exit 3'
  step "podman run: default_ulimits reach the container" 0 '^20000 32768$' \
    timeout 60 pd run --rm "$IMG" sh -c 'echo $(ulimit -n) $(ulimit -u)'
  step "podman run -it: a terminal of the caller's size" 4 '/dev/pts/[0-9]+' \
    $PTY --rows 40 --cols 120 -- timeout 60 pd run --rm -it "$IMG" sh -c "tty; $STTY_SIZE; exit 4"
  has "podman run -it: window size 40x120 inside" 'size 40 120'
  step "podman run -it: an interactive shell" 5 'in-42' \
    $PTY --expect '# ' --input $'echo in-$((6*7))\nexit 5\n' -- timeout 60 pd run --rm -it "$IMG" sh
  step "podman run -i: stdin reaches the container, EOF ends it" 0 '^piped-in$' \
    sh -c "echo piped-in | timeout 60 pd run --rm -i $IMG cat"

  # --- a web server
  if ! port_free $PD_PORT; then
    fail "port $PD_PORT is in use on 127.0.0.1: web server steps skipped"
  else
    step "podman run -d --name web -p $PD_PORT:8080 httpd" 0 '^[0-9a-f]{64}$' \
      timeout 60 pd run -d --name web -p $PD_PORT:8080 "$IMG" httpd -f -p 8080
    local host
    host=$(pd inspect --format '{{.Config.Hostname}}' web 2>/dev/null)
    wait_for 10 http "http://127.0.0.1:$PD_PORT/etc/hostname"
    step "curl 127.0.0.1:$PD_PORT: the container's httpd answers" 0 "^$host\$" http "http://127.0.0.1:$PD_PORT/etc/hostname"
    # logs -f follows until the container stops
    pd logs -f web >"$d/logs-f.out" 2>&1 &
    local logs_pid=$!
    step "podman exec: output" 0 '^exec-ok$' timeout 60 pd exec web sh -c 'echo exec-ok; echo log-line-1 >/proc/1/fd/1'
    step "podman exec: exit status" 7 '' timeout 60 pd exec web sh -c 'exit 7'
    step "podman exec -it: an interactive shell" 6 'in-42' \
      $PTY --expect '# ' --input $'echo in-$((6*7))\nexit 6\n' -- timeout 60 pd exec -it web sh
    step "podman exec -it: a terminal" 0 '/dev/pts/[0-9]+' $PTY -- timeout 60 pd exec -it web tty
    wait_for 10 grep -q log-line-1 "$d/logs-f.out"
    OUT=$(cat "$d/logs-f.out")
    has "podman logs -f: follows the container's output" '^log-line-1'
    step "podman ps" 0 '^web Up' pd ps --format '{{.Names}} {{.Status}}'
    step "podman top" 0 'httpd -f -p 8080' timeout 30 pd top web
    step "podman inspect: running on rrun" 0 '^running rrun$' pd inspect --format '{{.State.Status}} {{.OCIRuntime}}' web
    step "podman port" 0 "^8080/tcp -> 0.0.0.0:$PD_PORT\$" pd port web
    step "podman pause" 0 '' timeout 30 pd pause web
    eq "podman inspect: paused" paused "$(pd_status web)"
    run curl -sS --max-time 2 "http://127.0.0.1:$PD_PORT/etc/hostname"
    check "a paused httpd does not answer" 28 ''
    step "podman unpause" 0 '' timeout 30 pd unpause web
    eq "podman inspect: running after unpause" running "$(pd_status web)"
    step "curl after unpause" 0 "^$host\$" http "http://127.0.0.1:$PD_PORT/etc/hostname"
    step "podman stop" 0 '' timeout 60 pd stop -t 2 web
    eq "podman inspect: exited" exited "$(pd_status web)"
    if wait_for 10 gone "$logs_pid"; then
      pass "podman logs -f ends when the container stops"
    else
      fail "podman logs -f still running after stop"
      kill "$logs_pid" 2>/dev/null
    fi
    wait "$logs_pid" 2>/dev/null
    step "podman start" 0 '' timeout 60 pd start web
    wait_for 10 http "http://127.0.0.1:$PD_PORT/etc/hostname"
    step "curl after start" 0 "^$host\$" http "http://127.0.0.1:$PD_PORT/etc/hostname"
    local pid1 pid2
    pid1=$(pd inspect --format '{{.State.Pid}}' web)
    step "podman restart" 0 '' timeout 60 pd restart -t 2 web
    pid2=$(pd inspect --format '{{.State.Pid}}' web)
    wait_for 10 http "http://127.0.0.1:$PD_PORT/etc/hostname"
    step "curl after restart" 0 "^$host\$" http "http://127.0.0.1:$PD_PORT/etc/hostname"
    [ "$pid1" != "$pid2" ] && [ "${pid2:-0}" -gt 0 ] && pass "podman restart: a new process ($pid1 -> $pid2)" ||
      fail "podman restart: pid $pid1 -> $pid2"
    echo "copied-in" >"$d/cpin"
    step "podman cp into the container" 0 '' timeout 60 pd cp "$d/cpin" web:/tmp/cpin
    step "podman cp: the file is there" 0 '^copied-in$' timeout 60 pd exec web cat /tmp/cpin
    step "podman cp out of the container" 0 '' timeout 60 pd cp web:/etc/passwd "$d/cpout"
    eq "podman cp: the file came out" "root:x:0:0:root:/root:/bin/sh" "$(head -1 "$d/cpout" 2>&1)"
    step "podman commit" 0 '' timeout 120 pd commit web localhost/rrun-committed
    step "podman run of the committed image" 0 '^copied-in$' timeout 60 pd run --rm localhost/rrun-committed cat /tmp/cpin
    step "podman export" 0 '' timeout 120 pd export -o "$d/export.tar" web
    step "podman export: the container's files" 0 '^\./tmp/cpin$|^tmp/cpin$' tar tf "$d/export.tar"
    step "podman rm -f" 0 '' timeout 60 pd rm -f -t 0 web
    step "podman ps -a" 0 '' pd ps -a --format '{{.Names}}'
    hasnt "podman ps -a: web is gone" '^web$'
  fi

  # --- build: the RUN steps run in containers of the runtime
  cat >"$d/ctx/Dockerfile" <<EOF
FROM $IMG
RUN echo built-by-run > /built && mkdir -p /data
RUN ["sh", "-c", "echo \$((40+2)) > /data/answer"]
COPY hello.txt /data/hello.txt
ENV GREETING=hi
WORKDIR /data
CMD ["sh", "-c", "cat /built /data/answer /data/hello.txt; echo \$GREETING \$(pwd)"]
EOF
  echo copied-by-build >"$d/ctx/hello.txt"
  n0=$(calls_count)
  step "podman build (RUN steps)" 0 'Successfully tagged localhost/rrun-built' timeout 300 pd build -t localhost/rrun-built "$d/ctx"
  OUT=$(calls_since "$n0")
  has "podman build: the RUN steps ran on the runtime" '(^| )create .*--bundle .*buildah'
  step "podman run of the built image" 0 '^built-by-run 42 copied-by-build hi /data$' \
    sh -c "timeout 60 pd run --rm localhost/rrun-built | tr '\n' ' ' | sed 's/ \$//'"

  # --- a pod: containers joining the infra container's namespaces
  step "podman pod create" 0 '' timeout 120 pd pod create --name rrun-pod
  step "podman run --pod: httpd on the pod's localhost" 0 '' \
    timeout 60 pd run -d --pod rrun-pod --name pod-web "$IMG" httpd -f -p 127.0.0.1:8081 -h /etc
  step "podman run --pod: a second container reaches it on 127.0.0.1" 0 '^root:x:0:0' \
    timeout 60 pd run --rm --pod rrun-pod "$IMG" sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8081/passwd && exit 0; sleep 0.3; done; exit 1'
  step "podman pod rm -f" 0 '' timeout 60 pd pod rm -f -t 0 rrun-pod

  # --- errors become the exit statuses podman documents (from the runtime's message)
  step "podman run: a missing executable exits 127" 127 '/nonexistent' timeout 60 pd run --rm "$IMG" /nonexistent
  step "podman run: a command not in PATH exits 127" 127 'nosuchcommand' timeout 60 pd run --rm "$IMG" nosuchcommand
  step "podman run: a non-executable file exits 126" 126 '/etc/passwd' timeout 60 pd run --rm "$IMG" /etc/passwd
  step "podman run -d (for exec errors)" 0 '' timeout 60 pd run -d --name errs "$IMG" sleep 300
  step "podman exec: a missing executable exits 127" 127 '/nonexistent' timeout 60 pd exec errs /nonexistent
  step "podman exec: a non-executable file exits 126" 126 '/etc/passwd' timeout 60 pd exec errs /etc/passwd
  timeout 60 pd rm -f -t 0 errs >/dev/null 2>&1
  step "podman run --uidmap/--gidmap: a user namespace" 0 '^0 100000 65536 root$' \
    timeout 60 pd run --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "$IMG" sh -c 'echo $(cat /proc/self/uid_map) $(stat -c %U /bin/busybox)'
  step "podman run --network none: lo is up with 127.0.0.1" 0 'inet 127\.0\.0\.1/8' \
    timeout 60 pd run --rm --network none "$IMG" ip addr show lo

  mkdir -p "$d/share"
  echo shared-file >"$d/share/f"
  step "podman run -v DIR:/share:rshared (a shared bind: rootfs propagation shared)" 0 '^shared-file$' \
    timeout 60 pd run --rm -v "$d/share:/share:rshared" "$IMG" cat /share/f

  # conmon --timeout kills the container's process group (getpgid of the container pid): the
  # init must be a process group leader (runc: setsid), or conmon kills itself.
  local t0=$SECONDS
  step "podman run --timeout 2: the container is killed, podman returns" any '' \
    timeout 60 pd run --rm --name rrun-timeout --timeout 2 "$IMG" sleep 30
  if [ "$RC" != 0 ] && [ "$RC" != 124 ] && [ $((SECONDS - t0)) -lt 15 ]; then
    pass "podman run --timeout 2: ended in $((SECONDS - t0))s with status $RC"
  else
    fail "podman run --timeout 2: status $RC after $((SECONDS - t0))s" "$OUT"
  fi
  step "podman run --timeout: the container is gone" 0 '' pd ps -a --format '{{.Names}}'
  hasnt "podman run --timeout: the container is gone" '^rrun-timeout$'
  timeout 60 pd rm -f -t 0 rrun-timeout >/dev/null 2>&1

  # runc thaws a paused (cgroup v1) container after sending it SIGKILL, so it dies
  step "podman run -d (to kill it paused)" 0 '' timeout 60 pd run -d --name rrun-paused "$IMG" sleep 300
  step "podman pause" 0 '' timeout 30 pd pause rrun-paused
  step "podman kill of a paused container" 0 '' timeout 60 pd kill rrun-paused
  wait_for 10 pd_is rrun-paused exited
  eq "podman kill of a paused container: exited" exited "$(pd_status rrun-paused)"
  timeout 60 pd rm -f -t 0 rrun-paused >/dev/null 2>&1

  # A tmpfs over a directory of the image keeps the directory's mode (runc chmods the
  # mount point back): /run stays 0755 rather than the tmpfs default 1777.
  step "podman run --read-only: /run (tmpfs) keeps the image's mode 755" 0 '^755 1777$' \
    timeout 60 pd run --rm --read-only "$IMG" sh -c 'echo $(stat -c %a /run /tmp)'
  # A bind mount whose destination is a dangling symlink in the image (resolv.conf linked to
  # systemd-resolved's stub): runc follows it inside the rootfs and creates the target.
  step "podman load (image whose /etc/resolv.conf is a dangling symlink)" 0 'rrun-busybox-symlinks' \
    timeout 120 pd load -i "$T/busybox-symlinks.tar"
  step "podman run: /etc/resolv.conf mounted through a dangling symlink" 0 '^resolv-ok$' \
    timeout 60 pd run --rm "${IMG%:*}-symlinks:latest" sh -c 'test -f /run/systemd/resolve/stub-resolv.conf && echo resolv-ok'

  # --- nothing left
  pd_cleanup
  timeout 60 pd rmi -f localhost/rrun-built localhost/rrun-committed >/dev/null 2>&1
  step "no container left (podman ps -a)" 0 '' pd ps -a -q
  [ -z "$OUT" ] || fail "podman ps -a is not empty" "$OUT"
  # Container cgroups are libpod-ID (also below a pod's dir); the pod dirs and conmon's are
  # podman's (runc also leaves a pod's dir in name=systemd and the v2 hierarchy): teardown.
  run cgroup_children libpod_parent
  OUT=$(grep -E '/libpod-[0-9a-f]{64}$' <<<"$OUT")
  if [ -z "$OUT" ]; then pass "no container cgroup left"; else fail "container cgroups left" "$OUT"; fi
  PD_UP=
}
