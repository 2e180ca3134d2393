#!/usr/bin/env bash
# make test-clients: real container engines on rrun, as a person would use them.
#
#   containerd 1.6 (ctr, runc-v2 shim) -> podman 4.3 (conmon) -> rootless podman 4.3 (a user made
#   for the test) -> docker 20.10 (+ docker-compose 1.29)
#
# Debian's packages are installed if missing. Every daemon runs on private sockets and
# directories under one temp dir and is stopped by its pid at the end; the bridges, iptables
# rules, netns mounts and paths the engines make on the host are recorded before and removed
# after (tests/clients/hoststate.py). Each step prints PASS:/FAIL:, the run ends with
# "N passed, M failed" and exits non-zero on any failure.
#
# Environment:
#   RRUN_BIN=path     the rrun binary (default: the release build); it is copied first
#   RUNTIME=path      run the same tests against another runtime, e.g. RUNTIME=/usr/sbin/runc
#   CLIENTS="..."     a subset of: containerd podman podman-rootless docker (default: all four,
#                     in that order)
#   RL_STORAGE=fuse-overlayfs  rootless podman's overlay through fuse-overlayfs (default: native)
#   KEEP_LOGS=dir     where daemon logs go on failure (default: /tmp/rrun-clients-logs.PID)
#   NO_INSTALL=1      do not apt-get install anything
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"

SECTION=setup
CLIENTS=${CLIENTS:-containerd podman podman-rootless docker}
RRUN_BIN=${RRUN_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/rrun}
RUNTIME=${RUNTIME:-}
PY=/usr/bin/python3
PTY="$PY $HERE/ptyrun.py"
IMG=docker.io/library/rrun-busybox:latest
# The terminal's size, once the engine has set it (ctr and docker resize the pty only after
# the process started).
STTY_SIZE='for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; sleep 0.2; done; echo "size $s"'
T=
DAEMON_PIDS=()
DEFAULT_ROOT=
DEFAULT_ROOT_NEW=
CT_PID=
PD_UP=
DK_PID=

if [ "$(id -u)" != 0 ]; then
  echo "test-clients needs root"
  exit 2
fi

# The runtime under test; IS_RRUN=0 when RUNTIME names another one (messages then differ).
if [ -n "$RUNTIME" ]; then
  REAL=$RUNTIME
  IS_RRUN=0
else
  REAL=$RRUN_BIN
  IS_RRUN=1
fi
if [ ! -x "$REAL" ]; then
  echo "no runtime binary at $REAL (make build first)"
  exit 2
fi

install_packages() {
  local pkgs=(containerd runc podman conmon netavark aardvark-dns catatonit docker.io docker-compose
    busybox-static curl iproute2 iptables python3 uidmap slirp4netns fuse-overlayfs)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -n "${NO_INSTALL:-}" ]; then
    echo "missing packages: ${missing[*]} (NO_INSTALL set)"
    return 1
  fi
  echo "installing: ${missing[*]}"
  # No service may start on install (docker.io's postinst would start a system dockerd).
  local policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  local rc=0
  # scripts/apt.sh: copes with backported packages on the image, says what apt said.
  (. "$REPO/scripts/apt.sh" && apt_install "${missing[@]}") || rc=$?
  [ -n "$policy_made" ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

# ---------------------------------------------------------------------------------------------
# Teardown: runs on every exit.

finish() {
  local rc=$?
  trap - EXIT INT TERM
  SECTION=teardown
  [ -n "$T" ] || exit $rc
  # Whatever a section could not clean up (it stopped half-way).
  [ -n "${CT_PID:-}" ] && ct_cleanup >/dev/null 2>&1
  [ -n "${PD_UP:-}" ] && pd_cleanup >/dev/null 2>&1
  [ -n "${RL_USER:-}" ] && rl_cleanup >/dev/null 2>&1
  [ -n "${DK_PID:-}" ] && dk_cleanup >/dev/null 2>&1
  local p
  for p in "${DAEMON_PIDS[@]}"; do
    stop_pid "daemon" "$p"
  done
  sleep 0.5
  SECTION=leftovers
  local procs
  procs=$(test_processes)
  if [ -z "$procs" ]; then
    pass "no process of the test is left"
  else
    fail "processes of the test are left" "$procs"
    while read -r p _; do kill -KILL "$p" 2>/dev/null; done <<<"$procs"
  fi
  # nsfs mounts under $T are the daemons' own (docker's default sandbox); anything else is a
  # container's rootfs or a mount of a container.
  local mounts
  mounts=$(test_mounts | grep -v ' nsfs$')
  if [ -z "$mounts" ]; then
    pass "no mount of the test is left"
  else
    fail "mounts of the test are left" "$mounts"
  fi
  local m
  while read -r m _; do
    [ -n "$m" ] && umount "$m" 2>/dev/null || { [ -n "$m" ] && umount -l "$m"; }
  done < <(test_mounts)
  # podman gives the runtime no --root: its default one is used.
  local new
  if [ -d "$DEFAULT_ROOT" ]; then
    new=$(comm -13 "$T/$(basename "$DEFAULT_ROOT").before" <(ls "$DEFAULT_ROOT" | sort))
    if [ -z "$new" ]; then
      pass "no container state left in $DEFAULT_ROOT"
    else
      fail "container state left in $DEFAULT_ROOT" "$new"
      for p in $new; do "$T/bin/rrun.real" --root "$DEFAULT_ROOT" delete --force "$p" >/dev/null 2>&1; done
    fi
  fi
  local cg
  cg=$(cgroup_children rrun-clients; cgroup_children rrun-clients-docker; cgroup_children libpod_parent | grep -E '/libpod-[0-9a-f]{64}$')
  if [ -z "$cg" ]; then
    pass "no cgroup of the test is left"
  else
    fail "cgroups of the test are left" "$cg"
  fi
  [ -n "$cg" ] && cgroup_rm_dirs $cg
  cgroup_rmtree rrun-clients
  cgroup_rmtree rrun-clients-docker
  [ -n "${LIBPOD_PARENT_NEW:-}" ] && cgroup_rmtree libpod_parent
  [ -n "$DEFAULT_ROOT_NEW" ] && rmdir "$DEFAULT_ROOT" 2>/dev/null
  echo "host: removing what the engines added"
  $PY "$HERE/hoststate.py" restore "$T/host.json"
  if [ $FAILED -gt 0 ]; then
    local logs=${KEEP_LOGS:-/tmp/rrun-clients-logs.$$}
    mkdir -p "$logs"
    find "$T" -maxdepth 2 \( -name '*.log' -o -name 'rrun-calls.log' \) -type f -exec cp --backup=numbered {} "$logs/" \; 2>/dev/null
    echo "daemon logs and the runtime's command lines: $logs"
  fi
  rm -rf --one-file-system "$T"
  echo
  if [ ${#FAILS[@]} -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${FAILS[@]}"
  fi
  echo "test-clients: $((SECONDS / 60))m$((SECONDS % 60))s"
  if [ $SKIPPED -gt 0 ]; then
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  else
    echo "$PASSED passed, $FAILED failed"
  fi
  [ $FAILED -eq 0 ] && [ $rc -eq 0 ] && exit 0
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Set-up

install_packages || {
  echo "FAIL: setup: packages could not be installed"
  echo "0 passed, 1 failed"
  exit 1
}

# Short: unix socket paths (conmon's attach socket, containerd's) must stay under 108 bytes.
T=$(mktemp -d -p /tmp --suffix=.rrcl)
chmod 755 "$T" # a user namespace's root must reach its rootfs below
trap finish EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/bin"
export PATH="$T/bin:$PATH"

$PY "$HERE/hoststate.py" snapshot "$T/host.json"
# The runtime's default state dir: podman passes the runtime no --root.
if [ $IS_RRUN = 1 ]; then DEFAULT_ROOT=/run/rrun; else DEFAULT_ROOT=/run/runc; fi
[ -d "$DEFAULT_ROOT" ] && DEFAULT_ROOT_NEW= || DEFAULT_ROOT_NEW=1
ls "$DEFAULT_ROOT" 2>/dev/null | sort >"$T/$(basename "$DEFAULT_ROOT").before"
[ -d /sys/fs/cgroup/memory/libpod_parent ] || [ -d /sys/fs/cgroup/libpod_parent ] || LIBPOD_PARENT_NEW=1

# A private copy (a rebuild must not change the binary under a running test) behind a wrapper
# that records each command line the engines run.
cp "$REAL" "$T/bin/rrun.real"
# rootless podman's user runs it too
chmod 755 "$T/bin" "$T/bin/rrun.real"
cat >"$T/bin/rrun" <<EOF
#!/bin/sh
echo "\$*" >>"$T/rrun-calls.log"
exec "$T/bin/rrun.real" "\$@"
EOF
chmod 755 "$T/bin/rrun"
RT=$T/bin/rrun
: >"$T/rrun-calls.log"
echo "runtime: $REAL ($("$REAL" --version 2>/dev/null | head -1))"
echo "temp dir: $T"

"$REPO/scripts/mkrootfs.sh" "$T/rootfs" >/dev/null &&
  bash "$HERE/mkimage.sh" "$T/rootfs" "$T/busybox.tar" "$IMG"
# The same with /etc/resolv.conf a dangling symlink to systemd-resolved's stub (as in images of
# systemd-based distributions).
cp -a "$T/rootfs" "$T/rootfs-symlinks" &&
  ln -sfn ../run/systemd/resolve/stub-resolv.conf "$T/rootfs-symlinks/etc/resolv.conf" &&
  bash "$HERE/mkimage.sh" "$T/rootfs-symlinks" "$T/busybox-symlinks.tar" "${IMG%:*}-symlinks:latest"
if [ -s "$T/busybox.tar" ]; then
  pass "busybox image archive (OCI layout + docker-archive) from scripts/mkrootfs.sh"
else
  fail "busybox image archive"
  exit 1
fi

# calls_since N: the runtime command lines recorded after line N of the log.
calls_count() { wc -l <"$T/rrun-calls.log"; }
calls_since() { tail -n +"$(($1 + 1))" "$T/rrun-calls.log"; }

. "$HERE/containerd.sh"
. "$HERE/podman.sh"
. "$HERE/podman-rootless.sh"
. "$HERE/docker.sh"

for c in $CLIENTS; do
  case $c in
    containerd) test_containerd ;;
    podman) test_podman ;;
    podman-rootless) test_podman_rootless ;;
    docker) test_docker ;;
    *) SECTION=setup; fail "unknown client '$c' in CLIENTS" ;;
  esac
done
exit 0
