# shellcheck shell=bash
# shellcheck disable=SC2016 # $(...) in single quotes: expanded by the container's shell
# Rootless podman 4.3 (conmon, slirp4netns, newuidmap) with --runtime rrun, as a real non-root
# user made for the test. Sourced by run.sh: uses $T, $T/bin/rrun.real (the runtime), $IMG,
# lib.sh.
#
# The user (rrun-rl-PID, home under $T/rl) gets a subordinate id range that overlaps no entry of
# /etc/subuid and /etc/subgid, and /run/user/UID as its XDG_RUNTIME_DIR. podman runs as that user
# (runuser, env -i) with private containers.conf/storage.conf/registries.conf and storage under
# $T/rl. At the end the user's processes are stopped by pid, its storage (files owned by its
# subordinate ids) removed as root, the user removed (userdel -r), /run/user/UID removed, and
# /etc/{passwd,shadow,group,gshadow,subuid,subgid} and their "-" backups put back as they were.
#
# RL_STORAGE=fuse-overlayfs: overlay through fuse-overlayfs (mount_program) instead of the
# kernel's overlay in the user namespace (the default; Linux >= 5.13).

RL_PORT=18085
RL_USER=
RL_UID=
RL_SUB=
RL_XDG_NEW=
RL_ETC="passwd shadow group gshadow subuid subgid"

# The first 65536-aligned start (at least 200000) past every range in /etc/subuid and /etc/subgid.
rl_subid_start() {
  cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '
    $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { if ($2 + $3 > end) end = $2 + $3 }
    END { s = int((end + 65535) / 65536) * 65536; if (s < 200000) s = 200000; print s }'
}

# The files useradd/usermod/userdel rewrite (and their "-" backups), saved as they are now.
rl_etc_save() {
  local f g
  mkdir -p "$T/rl-etc"
  for f in $RL_ETC; do
    for g in "/etc/$f" "/etc/$f-"; do
      [ -e "$g" ] && cp -p "$g" "$T/rl-etc/"
    done
  done
}

# Our lines out of the primary files (if userdel left any), then the backups as they were once
# the primary file is exactly as before (nobody else changed it meanwhile).
rl_etc_restore() {
  local f s
  [ -d "$T/rl-etc" ] || return 0
  for f in $RL_ETC; do
    s=$T/rl-etc/$f
    [ -e "$s" ] || continue
    if ! cmp -s "$s" "/etc/$f" && grep -q "^$RL_USER:" "/etc/$f"; then
      grep -v "^$RL_USER:" "/etc/$f" >"$T/rl-etc/$f.new" && cat "$T/rl-etc/$f.new" >"/etc/$f"
      rm -f "$T/rl-etc/$f.new"
    fi
    cmp -s "$s" "/etc/$f" || continue
    if [ -e "$s-" ]; then
      cat "$s-" >"/etc/$f-" && touch -r "$s-" "/etc/$f-"
    else
      rm -f "/etc/$f-"
    fi
  done
}

# Live processes of the user, or of its subordinate uids in a user namespace that maps uid 0 to
# the user (podman's): "PID CMDLINE".
rl_procs() {
  local p pid uid st
  [ -n "$RL_UID" ] || return 0
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    uid=$(awk '/^Uid:/ { print $2; exit }' "$p/status" 2>/dev/null)
    [ -n "$uid" ] || continue
    if [ "$uid" = "$RL_UID" ] || { [ -n "$RL_SUB" ] && [ "$uid" -ge "$RL_SUB" ] && [ "$uid" -lt $((RL_SUB + 65536)) ] &&
      awk -v u="$RL_UID" '$1 == 0 && $2 == u { f = 1 } END { exit !f }' "$p/uid_map" 2>/dev/null; }; then
      st=$(awk '{print $3}' "$p/stat" 2>/dev/null)
      [ "$st" = Z ] && continue
      echo "$pid $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
    fi
  done
}

# The host uid and gid (real) of a process.
rl_host_ids() {
  [ -r "/proc/$1/status" ] || { echo "no process '$1'"; return; }
  echo "$(awk '/^Uid:/ { print $2 }' "/proc/$1/status" 2>&1) $(awk '/^Gid:/ { print $2 }' "/proc/$1/status" 2>&1)"
}

# podman's pause process (it holds the user namespace between commands).
rl_pause_pid() {
  cat "/run/user/$RL_UID/libpod/tmp/pause.pid" "$T/rl/tmp/pause.pid" 2>/dev/null | head -1
}

rl_calls_count() { wc -l <"$T/rl/rrun-calls.log"; }
rl_calls_since() { tail -n +"$(($1 + 1))" "$T/rl/rrun-calls.log"; }

# rpd: podman as the user, with our config and storage and --runtime rrun (the name of the
# user's wrapper of $T/bin/rrun.real in [engine.runtimes]).
rl_commands() {
  local d=$T/rl opts=
  # (storage.conf's [storage.options.overlay] is not used once --root is given)
  [ "${RL_STORAGE:-}" = fuse-overlayfs ] && opts=" --storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs"
  cat >"$T/bin/rpd" <<EOF
#!/bin/sh
cd "$d/home" || exit 1
exec runuser -u "$RL_USER" -- env -i HOME="$d/home" USER="$RL_USER" LOGNAME="$RL_USER" \\
  PATH=/usr/sbin:/usr/bin:/sbin:/bin XDG_RUNTIME_DIR="/run/user/$RL_UID" \\
  CONTAINERS_CONF="$d/containers.conf" CONTAINERS_STORAGE_CONF="$d/storage.conf" \\
  CONTAINERS_REGISTRIES_CONF="$d/registries.conf" \\
  podman --root "$d/storage" --runroot "$d/runroot" --runtime rrun --cgroup-manager cgroupfs \\
  --events-backend file$opts "\$@"
EOF
  # The runtime as the user runs it: the command lines go to a log the user owns.
  cat >"$d/bin/rrun" <<EOF
#!/bin/sh
echo "\$*" >>"$d/rrun-calls.log"
exec "$T/bin/rrun.real" "\$@"
EOF
  chmod 755 "$T/bin/rpd" "$d/bin/rrun"
}

# Stops what the user runs (by pid), removes its storage, the user, /run/user/UID, and puts the
# /etc files back. Quiet; the section checks the result.
rl_cleanup() {
  [ -n "$RL_USER" ] || return 0
  local pid _i
  if [ -n "$RL_UID" ] && id -u "$RL_USER" >/dev/null 2>&1; then
    timeout 60 rpd rm -a -f -t 0 >/dev/null 2>&1
  fi
  for _i in 1 2 3; do
    while read -r pid _; do
      [ -n "$pid" ] && stop_pid "$RL_USER process" "$pid"
    done < <(rl_procs)
  done
  # Files of the subordinate ids: root removes them (the user namespace is gone now).
  rm -rf --one-file-system "$T/rl/storage" "$T/rl/runroot" "$T/rl/tmp" "$T/rl/imgtmp"
  id -u "$RL_USER" >/dev/null 2>&1 && userdel -r "$RL_USER" >"$T/rl/userdel.out" 2>&1
  [ -n "$RL_XDG_NEW" ] && [ -n "$RL_UID" ] && rm -rf --one-file-system "/run/user/$RL_UID"
  RL_XDG_NEW=
  rl_etc_restore
  RL_USER=
}

rl_setup() {
  local d=$T/rl
  rl_etc_save
  RL_SUB=$(rl_subid_start)
  mkdir -p "$d/bin"
  chmod 755 "$d" "$d/bin"
  RL_USER=rrun-rl-$$
  step "useradd $RL_USER (home in the test dir)" 0 '' \
    useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -m -d "$d/home" -s /bin/sh -U "$RL_USER" || return 1
  RL_UID=$(id -u "$RL_USER")
  step "usermod --add-subuids/--add-subgids $RL_SUB-$((RL_SUB + 65535)) (no overlap with /etc/subuid, /etc/subgid)" 0 '' \
    usermod --add-subuids "$RL_SUB-$((RL_SUB + 65535))" --add-subgids "$RL_SUB-$((RL_SUB + 65535))" "$RL_USER" || return 1
  if [ -e "/run/user/$RL_UID" ]; then
    fail "/run/user/$RL_UID exists already (not the test's): rootless podman steps skipped"
    return 1
  fi
  mkdir -p /run/user
  mkdir -m 700 "/run/user/$RL_UID" && RL_XDG_NEW=1
  chown "$RL_UID:$RL_UID" "/run/user/$RL_UID"
  local x
  for x in storage runroot tmp imgtmp networks ctx vol logs; do
    mkdir -p "$d/$x" && chown "$RL_UID:$RL_UID" "$d/$x"
  done
  : >"$d/rrun-calls.log"
  chown "$RL_UID:$RL_UID" "$d/rrun-calls.log"
  cat >"$d/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/logs/events.log"
runtime = "rrun"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "rrun"]
tmp_dir = "$d/tmp"
static_dir = "$d/storage/libpod"
volume_path = "$d/storage/volumes"
image_copy_tmp_dir = "$d/imgtmp"
pull_policy = "never"

[engine.runtimes]
rrun = ["$d/bin/rrun"]

[network]
network_config_dir = "$d/networks"
default_rootless_network_cmd = "slirp4netns"
EOF
  # rootless_storage_path: graphroot alone is ignored for a rootless user.
  cat >"$d/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/storage"
runroot = "$d/runroot"
rootless_storage_path = "$d/storage"
EOF
  cat >"$d/registries.conf" <<EOF
unqualified-search-registries = []
EOF
  chmod 644 "$d/containers.conf" "$d/storage.conf" "$d/registries.conf"
  rl_commands
}

test_podman_rootless() {
  SECTION=podman-rootless
  rl_setup && rl_steps
  rl_teardown
}

rl_steps() {
  local d=$T/rl
  local storage=native want_native=true
  if [ "${RL_STORAGE:-}" = fuse-overlayfs ]; then storage=fuse-overlayfs want_native=false; fi

  step "podman info (as $RL_USER, uid $RL_UID): rootless, runtime rrun, cgroupfs, overlay, private storage" 0 \
    "^true rrun cgroupfs v[12] overlay $d/storage\$" timeout 60 rpd info \
    --format '{{.Host.Security.Rootless}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}} {{.Store.GraphRoot}}'
  local warns
  warns=$(sed -n 's/^time="[^"]*" level=warning msg=//p' <<<"$OUT" | sort -u | tr '\n' ' ')
  [ -n "$warns" ] && echo "NOTE: $SECTION: podman warns: ${warns% }"
  step "podman info: storage overlay $storage (Native Overlay Diff $want_native)" 0 "^$want_native\$" \
    timeout 60 rpd info --format '{{index .Store.GraphStatus "Native Overlay Diff"}}'
  if ! step "podman load (docker-archive) into the user's storage" 0 'rrun-busybox' timeout 120 rpd load -i "$T/busybox.tar"; then
    fail "no image for the user: the other rootless podman steps skipped"
    return 1
  fi

  # --- the user namespace: newuidmap/newgidmap gave the container the subordinate range
  local n0
  n0=$(rl_calls_count)
  step "podman run --rm: uid 0 inside" 0 '^uid 0 gid 0$' \
    timeout 60 rpd run --rm "$IMG" sh -c 'echo uid $(id -u) gid $(id -g); echo uidmap $(cat /proc/self/uid_map); echo gidmap $(cat /proc/self/gid_map)'
  has "podman run --rm: uid_map 0 $RL_UID 1 + 1 $RL_SUB 65536 (newuidmap)" "^uidmap 0 $RL_UID 1 1 $RL_SUB 65536\$"
  has "podman run --rm: gid_map 0 $RL_UID 1 + 1 $RL_SUB 65536 (newgidmap)" "^gidmap 0 $RL_UID 1 1 $RL_SUB 65536\$"
  OUT=$(rl_calls_since "$n0")
  has "conmon ran the runtime under test (create --bundle), as the user" '(^| )create .*--bundle'
  step "podman run --rm: exit status 3 reaches podman" 3 '' timeout 60 rpd run --rm "$IMG" sh -c 'exit 3'
  step "podman run: a missing executable exits 127" 127 '/nonexistent' timeout 60 rpd run --rm "$IMG" /nonexistent

  # --- run -d, exec, stop, rm; the host sees the user's uid and the subordinate ones
  local pid
  step "podman run -d (root inside)" 0 '^[0-9a-f]{64}$' timeout 60 rpd run -d --name rl-root "$IMG" sleep 300
  pid=$(timeout 30 rpd inspect --format '{{.State.Pid}}' rl-root 2>/dev/null | tail -1)
  eq "host side: the container's process runs as uid/gid $RL_UID (the user)" "$RL_UID $RL_UID" "$(rl_host_ids "${pid:-0}")"
  step "podman exec: output" 0 '^exec-ok 0$' timeout 60 rpd exec rl-root sh -c 'echo exec-ok $(id -u)'
  step "podman exec: exit status" 7 '' timeout 60 rpd exec rl-root sh -c 'exit 7'
  step "podman run -d --user 1000:1000" 0 '^[0-9a-f]{64}$' \
    timeout 60 rpd run -d --user 1000:1000 --name rl-user "$IMG" sleep 300
  pid=$(timeout 30 rpd inspect --format '{{.State.Pid}}' rl-user 2>/dev/null | tail -1)
  eq "host side: --user 1000 runs as subordinate uid/gid $((RL_SUB + 999))" \
    "$((RL_SUB + 999)) $((RL_SUB + 999))" "$(rl_host_ids "${pid:-0}")"
  step "podman exec in the --user 1000 container: uid 1000" 0 '^1000$' timeout 60 rpd exec rl-user id -u
  step "podman ps: rl-root running" 0 '^rl-root Up' timeout 30 rpd ps --format '{{.Names}} {{.Status}}'
  has "podman ps: rl-user running too" '^rl-user Up'
  step "podman stop" 0 '' timeout 60 rpd stop -t 2 rl-root
  step "podman inspect: exited" 0 '^exited$' timeout 30 rpd inspect --format '{{.State.Status}}' rl-root
  step "podman rm" 0 '' timeout 60 rpd rm rl-root
  step "podman rm -f (running)" 0 '' timeout 60 rpd rm -f -t 0 rl-user
  step "podman ps -a: both gone" 0 '' timeout 30 rpd ps -a --format '{{.Names}}'
  hasnt "podman ps -a: both gone" '^rl-(root|user)$'

  # --- networks
  step "podman run --network none: only lo" 0 '^links lo$' \
    timeout 60 rpd run --rm --network none "$IMG" sh -c "echo links \$(ip -o link show | awk -F': ' '{print \$2}')"
  step "podman run --network none: lo is up with 127.0.0.1" 0 'inet 127\.0\.0\.1/8' \
    timeout 60 rpd run --rm --network none "$IMG" ip addr show lo
  step "podman run --network slirp4netns: tap0 with 10.0.2.100/24" 0 'inet 10\.0\.2\.100/24' \
    timeout 60 rpd run --rm --network slirp4netns "$IMG" ip addr show tap0
  if ! port_free $RL_PORT; then
    fail "port $RL_PORT is in use on 127.0.0.1: published port steps skipped"
  else
    step "podman run -d -p $RL_PORT:8080 httpd (slirp4netns, rootlessport)" 0 '^[0-9a-f]{64}$' \
      timeout 60 rpd run -d --name rl-web -p "$RL_PORT:8080" "$IMG" httpd -f -p 8080
    local host
    host=$(timeout 30 rpd inspect --format '{{.Config.Hostname}}' rl-web 2>/dev/null | tail -1)
    wait_for 10 http "http://127.0.0.1:$RL_PORT/etc/hostname"
    step "curl 127.0.0.1:$RL_PORT from the host: the container's httpd answers" 0 "^$host\$" \
      http "http://127.0.0.1:$RL_PORT/etc/hostname"
    step "podman port" 0 "^8080/tcp -> 0.0.0.0:$RL_PORT\$" timeout 30 rpd port rl-web
    step "podman stop (httpd)" 0 '' timeout 60 rpd stop -t 2 rl-web
    step "podman rm (httpd)" 0 '' timeout 60 rpd rm rl-web
    if wait_for 10 port_free $RL_PORT; then
      pass "port $RL_PORT is free again"
    else
      fail "port $RL_PORT still listened on after podman rm"
    fi
  fi

  # --- build: the RUN step runs in a container of the runtime, as the user
  cat >"$d/ctx/Containerfile" <<EOF
FROM $IMG
RUN echo hi > /x
CMD ["cat", "/x"]
EOF
  chown "$RL_UID:$RL_UID" "$d/ctx/Containerfile"
  n0=$(rl_calls_count)
  step "podman build (RUN echo hi > /x)" 0 'Successfully tagged localhost/rl-built' \
    timeout 300 rpd build -t localhost/rl-built -f "$d/ctx/Containerfile" "$d/ctx"
  OUT=$(rl_calls_since "$n0")
  has "podman build: the RUN step ran on the runtime" '(^| )create .*--bundle .*buildah'
  step "podman run of the built image: /x" 0 '^hi$' timeout 60 rpd run --rm localhost/rl-built

  # --- a volume the user owns: written as root inside, owned by the user outside
  chmod 755 "$d/vol"
  step "podman run -v $d/vol:/data: write from inside" 0 '^data-owner 0$' \
    timeout 60 rpd run --rm -v "$d/vol:/data" "$IMG" sh -c 'echo written-inside >/data/out; echo data-owner $(stat -c %u /data)'
  eq "volume: the file is on the host" written-inside "$(cat "$d/vol/out" 2>&1)"
  eq "volume: the file is owned by the user ($RL_UID) on the host" "$RL_UID $RL_UID" "$(stat -c '%u %g' "$d/vol/out" 2>&1)"

}

# What the steps left, then the user goes: checked.
rl_teardown() {
  local d=$T/rl
  [ -n "$RL_USER" ] || return 0
  if [ -z "$RL_UID" ]; then
    rl_cleanup
    return
  fi
  timeout 60 rpd rm -a -f -t 0 >/dev/null 2>&1
  timeout 60 rpd rmi -f localhost/rl-built >/dev/null 2>&1
  step "no container left (podman ps -a)" 0 '' timeout 30 rpd ps -a -q
  OUT=$(grep -v 'level=warning' <<<"$OUT")
  [ -z "$OUT" ] || fail "podman ps -a is not empty" "$OUT"
  local pause procs
  pause=$(rl_pause_pid)
  procs=$(rl_procs | awk -v p="${pause:-none}" '$1 != p')
  if [ -z "$procs" ]; then
    pass "no process of the user or its subordinate ids left (podman's pause process ${pause:-none} aside)"
  else
    fail "processes of the user or its subordinate ids are left" "$procs"
  fi
  # The runtime's state for the user: XDG_RUNTIME_DIR/<runtime>/ID (podman gives no --root).
  local st
  st=$(find "/run/user/$RL_UID" -mindepth 2 -maxdepth 2 -type d 2>/dev/null | grep -E '/[0-9a-f]{64}$')
  if [ -z "$st" ]; then
    pass "no container state left in /run/user/$RL_UID (the runtime's rootless root)"
  else
    fail "container state left in /run/user/$RL_UID" "$st"
  fi

  # --- the user goes
  local uid=$RL_UID user=$RL_USER xdg_new=$RL_XDG_NEW
  rl_cleanup
  if id -u "$user" >/dev/null 2>&1; then
    fail "userdel -r $user" "$(cat "$d/userdel.out" 2>/dev/null)"
  else
    pass "userdel -r $user"
  fi
  if [ -e "$d/home" ]; then fail "the user's home $d/home is left"; else pass "the user's home is gone"; fi
  RL_UID=$uid
  OUT=$(rl_procs)
  RL_UID=
  if [ -z "$OUT" ]; then pass "no process of uid $uid or its subordinate ids left"; else fail "processes of uid $uid left" "$OUT"; fi
  if [ -n "$xdg_new" ] && [ -e "/run/user/$uid" ]; then
    fail "/run/user/$uid is left"
  else
    pass "/run/user/$uid is gone"
  fi
  local f diffs=
  for f in $RL_ETC; do
    [ -e "$T/rl-etc/$f" ] || continue
    cmp -s "$T/rl-etc/$f" "/etc/$f" || diffs+="$(diff "$T/rl-etc/$f" "/etc/$f" | sed "s|^|/etc/$f: |")"$'\n'
    if [ -e "$T/rl-etc/$f-" ]; then
      cmp -s "$T/rl-etc/$f-" "/etc/$f-" || diffs+="/etc/$f- differs"$'\n'
    else
      [ -e "/etc/$f-" ] && diffs+="/etc/$f- is new"$'\n'
    fi
  done
  if [ -z "$diffs" ]; then
    pass "/etc/{passwd,shadow,group,gshadow,subuid,subgid} (and their - backups) as before"
  else
    fail "/etc files differ from before the test" "$diffs"
  fi
}
