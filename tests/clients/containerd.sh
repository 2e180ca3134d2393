# containerd 1.6 + ctr with the runc-v2 shim (the path Docker and Kubernetes use), on rrun.
# Sourced by run.sh: uses $T, $RT (the runtime), $IMG, $PTY, lib.sh.

CT_NS=rrun-clients

# Commands (not functions: timeout and ptyrun run them): ct = ctr on our containerd and
# namespace; ctrun = ctr run with the runtime under test and everything private.
ct_commands() {
  cat >"$T/bin/ct" <<EOF
#!/bin/sh
exec ctr --address "$T/ct/containerd.sock" -n "$CT_NS" "\$@"
EOF
  cat >"$T/bin/ctrun" <<EOF
#!/bin/sh
exec ctr --address "$T/ct/containerd.sock" -n "$CT_NS" run --runc-binary "$RT" --runc-root "$T/ct/runc-root" --fifo-dir "$T/ct/fifo" "\$@"
EOF
  chmod 755 "$T/bin/ct" "$T/bin/ctrun"
}

ct_task_status() { ct task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
ct_is() { [ "$(ct_task_status "$1")" = "$2" ]; }
ct_task_pid() { ct task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $2}'; }

ct_cleanup() {
  local id
  for id in $(ct task ls -q 2>/dev/null); do
    ct task kill -s KILL "$id" >/dev/null 2>&1
  done
  sleep 0.5
  for id in $(ct task ls -q 2>/dev/null); do
    timeout 30 ct task rm -f "$id" >/dev/null 2>&1
  done
  for id in $(ct containers ls -q 2>/dev/null); do
    timeout 30 ct containers rm "$id" >/dev/null 2>&1
  done
}

test_containerd() {
  SECTION=containerd
  local d=$T/ct
  mkdir -p "$d/fifo" "$d/share"
  ct_commands
  cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
EOF
  containerd --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
  CT_PID=$!
  DAEMON_PIDS+=("$CT_PID")
  if wait_daemon "$CT_PID" 30 ct version; then
    pass "containerd starts on a private socket, root and state"
  else
    fail "containerd does not start" "$(tail -n 20 "$d/containerd.log")"
    return
  fi

  step "ctr images import (OCI archive)" 0 "rrun-busybox" ct images import "$T/busybox.tar"

  # --- foreground runs
  step "ctr run --rm: the container's output" 0 '^hello from the container$' \
    timeout 60 ctrun --rm "$IMG" c-hello sh -c 'echo hello from the container'
  local n0
  n0=$(calls_count)
  step "ctr run --rm: the container's exit status" 3 '' \
    timeout 60 ctrun --rm "$IMG" c-exit sh -c 'exit 3'
  OUT=$(calls_since "$n0")
  has "the shim ran the runtime under test (create, start, delete)" '(^| )create .*--bundle .*c-exit'
  step "ctr run --rm: pid 1 in its own pid and mount namespaces" 0 '^1 overlay / overlay ' \
    timeout 60 ctrun --rm "$IMG" c-ns sh -c 'echo $$ $(grep " / " /proc/mounts | head -1)'

  step "ctr run -t: a terminal of the caller's size" 4 '/dev/pts/[0-9]+' \
    $PTY --rows 33 --cols 101 -- timeout 60 ctrun --rm -t "$IMG" c-tty sh -c "tty; $STTY_SIZE; exit 4"
  has "ctr run -t: window size 33x101 inside" 'size 33 101'
  step "ctr run -t: an interactive shell" 5 'in-42' \
    $PTY --expect '# ' --input $'echo in-$((6*7))\nexit 5\n' -- timeout 60 ctrun --rm -t "$IMG" c-sh sh

  # --- a detached task and what ctr does with it
  step "ctr run --detach" 0 '' \
    timeout 60 ctrun -d "$IMG" c-bg sh -c 'trap "exit 7" TERM; while true; do sleep 1; done'
  eq "ctr task ls: RUNNING" RUNNING "$(ct_task_status c-bg)"
  local pid
  pid=$(ct_task_pid c-bg)
  step "ctr task exec: output and the container's processes" 0 '^exec-ok' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --exec-id e1 c-bg sh -c 'echo exec-ok; ps -o pid,args'
  has "ctr task exec: runs in the container's pid namespace" '^ +1 +sh -c trap'
  step "ctr task exec: exit status" 9 '' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --exec-id e2 c-bg sh -c 'exit 9'
  step "ctr task exec -t: a terminal" 8 '/dev/pts/[0-9]+' \
    $PTY -- timeout 60 ct task exec --fifo-dir "$d/fifo" -t --exec-id e3 c-bg sh -c 'tty; exit 8'
  step "ctr task exec: the process is a session leader" 0 '^leader$' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --exec-id e6 c-bg sh -c 'set -- $(cut -d" " -f1,5,6 /proc/$$/stat); [ "$1" = "$2" ] && [ "$1" = "$3" ] && echo leader || echo "pid $1 pgrp $2 session $3"'
  step "ctr task exec --detach" 0 '' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --detach --exec-id e4 c-bg sleep 300
  step "ctr task ps: the init pid" 0 "^$pid " ct task ps c-bg
  local np
  np=$(grep -cE '^[0-9]+ ' <<<"$OUT")
  if [ "$np" -ge 3 ]; then pass "ctr task ps: init, its child and the detached exec ($np)"; else fail "ctr task ps lists $np processes, want >= 3" "$OUT"; fi
  step "ctr task exec: an error reaches ctr" 1 'OCI runtime exec failed: .*/nonexistent' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --exec-id e5 c-bg /nonexistent

  step "ctr task pause" 0 '' timeout 30 ct task pause c-bg
  eq "ctr task ls: PAUSED" PAUSED "$(ct_task_status c-bg)"
  if [ -d /sys/fs/cgroup/freezer ]; then
    eq "freezer.state FROZEN" FROZEN "$(cat /sys/fs/cgroup/freezer/$CT_NS/c-bg/freezer.state 2>&1)"
  fi
  step "ctr task resume" 0 '' timeout 30 ct task resume c-bg
  eq "ctr task ls: RUNNING again" RUNNING "$(ct_task_status c-bg)"
  step "ctr task metrics" 0 'pids\.current +[0-9]+' timeout 30 ct task metrics c-bg
  has "ctr task metrics: memory" 'memory\.usage_in_bytes +[0-9]+'

  step "ctr task kill (SIGTERM)" 0 '' timeout 30 ct task kill c-bg
  wait_for 20 ct_is c-bg STOPPED
  eq "ctr task ls: STOPPED after kill" STOPPED "$(ct_task_status c-bg)"
  step "ctr task rm: the trap's exit status 7" 0 'exit code 7' timeout 30 ct task rm c-bg
  step "ctr containers rm" 0 '' timeout 30 ct containers rm c-bg

  # --- a foreground task stopped by ctr task kill: ctr run returns the status
  (timeout 60 ctrun --rm "$IMG" c-fg sh -c 'trap "exit 12" USR1; while true; do sleep 0.2; done' \
    >/dev/null 2>&1 </dev/null; echo $? >"$d/fg.rc") &
  local fg=$!
  wait_for 20 ct_is c-fg RUNNING
  step "ctr task kill -s SIGUSR1" 0 '' timeout 30 ct task kill -s SIGUSR1 c-fg
  wait "$fg"
  eq "ctr run returns the status of a task killed from another ctr" 12 "$(cat "$d/fg.rc" 2>/dev/null)"

  # runc makes the container's init and every exec'd process a session (and process group)
  # leader: setsid() in nsexec. Shown from inside: /proc/1/stat's pgrp and session are 1.
  step "ctr run: the container's init is a session leader (pgrp 1, session 1)" 0 '^1 1$' \
    timeout 60 ctrun --rm "$IMG" c-sid sh -c 'cut -d" " -f5,6 /proc/1/stat'

  # --- configuration reaching the runtime
  step "--memory-limit and --cpus: the container's cgroup" 0 '' \
    timeout 60 ctrun -d --memory-limit 67108864 --cpus 0.5 "$IMG" c-res sleep 300
  if [ -d /sys/fs/cgroup/memory ]; then
    eq "memory.limit_in_bytes" 67108864 "$(cat /sys/fs/cgroup/memory/$CT_NS/c-res/memory.limit_in_bytes 2>&1)"
    eq "cpu.cfs_quota_us" 50000 "$(cat /sys/fs/cgroup/cpu/$CT_NS/c-res/cpu.cfs_quota_us 2>&1)"
  else
    eq "memory.max" 67108864 "$(cat /sys/fs/cgroup/$CT_NS/c-res/memory.max 2>&1)"
  fi
  ct task kill -s KILL c-res >/dev/null 2>&1
  wait_for 20 ct_is c-res STOPPED
  timeout 30 ct task rm c-res >/dev/null 2>&1
  timeout 30 ct containers rm c-res >/dev/null 2>&1

  step "--env and --cwd" 0 '^bar /etc$' timeout 60 ctrun --rm --env FOO=bar --cwd /etc "$IMG" c-env sh -c 'echo $FOO $(pwd)'
  echo shared-file >"$d/share/f"
  step "--read-only rootfs and a read-only bind --mount" 0 'shared-file' \
    timeout 60 ctrun --rm --read-only --mount "type=bind,src=$d/share,dst=/share,options=rbind:ro" "$IMG" c-ro \
    sh -c 'cat /share/f; touch /x; touch /share/y; true'
  has "--read-only: the rootfs refuses writes" "touch: /x: Read-only file system"
  has "--mount ro: the bind refuses writes" "touch: /share/y: Read-only file system"
  # (No --uidmap here: ctr 1.6 then ignores --runc-binary and runs the system runc; podman
  # tests the user namespace.)
  step "--seccomp: the default profile is enforced" 0 '^Seccomp:.2' \
    timeout 60 ctrun --rm --seccomp "$IMG" c-seccomp grep Seccomp: /proc/self/status
  # The container gets a new network namespace: runc brings its loopback up.
  step "new network namespace: lo is up with 127.0.0.1" 0 'inet 127\.0\.0\.1/8' \
    timeout 60 ctrun --rm "$IMG" c-lo ip addr show lo
  # --null-io: the shim hands the runtime /dev/null opened read-only for stdout/stderr; runc
  # reopens stdio that is /dev/null from the container's /dev/null, read-write.
  step "--null-io: the container can write to stdout" 0 '' \
    timeout 60 ctrun --rm --null-io "$IMG" c-null sh -c 'echo x'

  # linux.rootfsPropagation shared (what a Bidirectional/rshared volume asks for): runc makes
  # the rootfs' parent mount private so that pivot_root accepts it, and applies the
  # propagation to / after pivot_root.
  step "--rootfs-propagation rshared" 0 '^propagation-ok$' \
    timeout 60 ctrun --rm --rootfs-propagation rshared "$IMG" c-rshared echo propagation-ok

  # Without rootfsPropagation runc makes the container's mounts rslave: a mount made later on
  # the host below a (shared) bind-mounted directory shows up in the container.
  mkdir -p "$d/prop"
  mount --bind "$d/prop" "$d/prop" && mount --make-shared "$d/prop" && mkdir -p "$d/prop/sub"
  step "ctr run -d with a bind of a shared host directory" 0 '' \
    timeout 60 ctrun -d --mount "type=bind,src=$d/prop,dst=/host,options=rbind" "$IMG" c-prop sleep 300
  mount -t tmpfs rrun-clients-prop "$d/prop/sub"
  step "default propagation (rslave): a later host mount appears in the container" 0 '^1$' \
    timeout 60 ct task exec --fifo-dir "$d/fifo" --exec-id p1 c-prop sh -c 'grep -c " /host/sub " /proc/self/mountinfo'
  umount "$d/prop/sub"
  ct task kill -s KILL c-prop >/dev/null 2>&1
  wait_for 20 ct_is c-prop STOPPED
  timeout 30 ct task rm c-prop >/dev/null 2>&1
  timeout 30 ct containers rm c-prop >/dev/null 2>&1
  umount "$d/prop"

  # --- errors in the container's config reach ctr as the runtime's own message
  local want='namespace path'
  [ $IS_RRUN = 1 ] && want='linux\.namespaces\[[0-9]+\]\.path'
  step "a config error reaches ctr as the runtime's message" 1 \
    "OCI runtime create failed: .*$want.*/proc/999999/ns/pid" \
    timeout 60 ctrun --rm --with-ns pid:/proc/999999/ns/pid "$IMG" c-bad true
  step "a missing executable reaches ctr" 1 'OCI runtime create failed: .*/nonexistent' \
    timeout 60 ctrun --rm "$IMG" c-noexe /nonexistent

  # --- nothing left
  step "no container left (ctr containers ls)" 0 '' ct containers ls -q
  [ -z "$OUT" ] || fail "ctr containers ls is not empty" "$OUT"
  OUT=$(ls -A "$d/runc-root/$CT_NS" 2>/dev/null)
  if [ -z "$OUT" ]; then pass "no container state left in the runtime's root"; else fail "container state left in --runc-root" "$OUT"; fi
  run cgroup_children "$CT_NS"
  if [ -z "$OUT" ]; then pass "no container cgroup left"; else fail "container cgroups left" "$OUT"; fi

  ct_cleanup
  stop_pid containerd "$CT_PID"
  CT_PID=
}
