#!/usr/bin/env bash
# make test-cri: rrun as a Kubernetes node runs it. Debian's containerd 1.6 with its CRI plugin
# (runtime handlers "rrun" and "runc", both io.containerd.runc.v2 shims, BinaryName = the
# runtime), CNI from Debian's containernetworking-plugins (bridge + host-local + loopback), a
# pause image built here, and tests/cri/cri.py: a CRI v1 gRPC client on tests/cri/api.proto that
# makes the kubelet's calls (RunPodSandbox, CreateContainer, ExecSync, Exec/Attach over the
# streaming server, UpdateContainerResources, StopContainer with a grace period, ...) and checks
# each against the host: cgroups, namespaces, processes, mounts, runtime state, logs.
#
# Nothing outside the test's temp dir is used: containerd has its own root, state, sockets and
# config; it runs in a network namespace of the test (nsenter --net), so the CNI bridge, the veths,
# the pods' routes and the streaming server live there and vanish with it; CNI's IPAM data is
# under the temp dir; pod netns mounts under containerd's state dir; pod cgroups under a parent
# of the test's own (/rrun-cri.PID, or rrun_cri_PID.slice with CRI_SYSTEMD=1). What containerd
# and the CNI library still make on the host (/run/containerd/s shim sockets, /var/lib/cni
# result cache) is recorded before and removed after (tests/clients/hoststate.py + below).
# Each step prints PASS:/FAIL:; the run ends with "N passed, M failed", non-zero on failure.
#
# Environment:
#   RRUN_BIN=path      the rrun binary (default: the release build); copied first
#   CRI_HANDLER=runc   run the kubelet sequence with the runc handler instead (differential)
#   CRI_SYSTEMD=1      SystemdCgroup = true: pods in systemd slices (needs systemd as PID 1)
#   CRI_SECTIONS="sequence scale"   what to run (default: both)
#   CRI_PODS=20        pods created and removed at once in "scale"; CRI_ROUNDS=2 rounds per handler
#   CRI_PY=python3     a Python with grpc, protobuf, websocket-client and a protoc (grpc_tools, or
#                      CRI_PROTOC=protoc): skips the venv (e.g. Debian's python3-grpcio,
#                      python3-protobuf, python3-websocket, protobuf-compiler)
#   CRI_IMAGES=dir     busybox.tar and pause.tar made beforehand by tests/cri/mkimages.sh
#   CRI_GEN=dir        where api.proto is compiled to (default target/cri-gen)
#   CRI_VENV=dir       the venv (default target/cri-venv; made from tests/cri/requirements.txt)
#   KEEP_LOGS=dir      where containerd's log and the runtime calls go on failure
#   NO_INSTALL=1       do not apt-get install anything
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$REPO/tests/clients/lib.sh"

SECTION=setup
RRUN_BIN=${RRUN_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/rrun}
CRI_HANDLER=${CRI_HANDLER:-rrun}
CRI_SYSTEMD=${CRI_SYSTEMD:-0}
CRI_SECTIONS=${CRI_SECTIONS:-sequence scale}
CRI_PODS=${CRI_PODS:-20}
CRI_ROUNDS=${CRI_ROUNDS:-2}
CRI_VENV=${CRI_VENV:-$REPO/target/cri-venv}
RUNC_BIN=${RUNC_BIN:-/usr/sbin/runc}
CNI_BIN=/usr/lib/cni
IMG=docker.io/library/rrun-busybox:latest
PAUSE_IMG=registry.k8s.io/pause:rrun-cri
NS=k8s.io
T=
NETNS=
CT_PID=
START=$SECONDS

if [ "$(id -u)" != 0 ]; then
  echo "test-cri needs root"
  exit 2
fi
case $CRI_HANDLER in rrun | runc) ;; *)
  echo "CRI_HANDLER must be rrun or runc"
  exit 2
  ;;
esac
if [ ! -x "$RRUN_BIN" ]; then
  echo "no rrun binary at $RRUN_BIN (make build first)"
  exit 2
fi

install_packages() {
  local pkgs=(containerd runc containernetworking-plugins iproute2 util-linux)
  [ -z "${CRI_IMAGES:-}" ] && pkgs+=(busybox-static gcc libc6-dev)
  [ -z "${CRI_PY:-}" ] && pkgs+=(python3 python3-venv)
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
  # containerd's postinst must not start a system containerd.
  local policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  local rc=0
  (. "$REPO/scripts/apt.sh" && apt_install "${missing[@]}") || rc=$?
  [ -n "$policy_made" ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

# The client's Python: a venv under target/ with the pinned wheels of requirements.txt (remade
# when that file changes), unless CRI_PY names one.
setup_python() {
  if [ -n "${CRI_PY:-}" ]; then
    PY=$CRI_PY
    return 0
  fi
  local stamp want
  want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
  stamp=$(cat "$CRI_VENV/.rrun-cri-stamp" 2>/dev/null)
  if [ "$stamp" != "$want" ] || [ ! -x "$CRI_VENV/bin/python" ]; then
    echo "venv: $CRI_VENV (tests/cri/requirements.txt)"
    rm -rf "$CRI_VENV"
    /usr/bin/python3 -m venv "$CRI_VENV" &&
      "$CRI_VENV/bin/pip" install -q --disable-pip-version-check --no-input -r "$HERE/requirements.txt" ||
      return 1
    echo "$want" >"$CRI_VENV/.rrun-cri-stamp"
  fi
  PY=$CRI_VENV/bin/python
}

# The Python modules of api.proto, into the build dir (never committed).
gen_proto() {
  GEN=${CRI_GEN:-$REPO/target/cri-gen}
  mkdir -p "$GEN"
  if [ -n "${CRI_PROTOC:-}" ]; then
    "$CRI_PROTOC" -I "$HERE" --python_out="$GEN" "$HERE/api.proto"
  else
    "$PY" -m grpc_tools.protoc -I "$HERE" --python_out="$GEN" "$HERE/api.proto"
  fi
}

# ---------------------------------------------------------------------------------------------
# Teardown: runs on every exit.

# The CNI library's result cache (rrcri-<id>-eth0, cni-loopback-<id>-lo): entries new since the start.
cni_results() {
  find /var/lib/cni/results -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort |
    comm -13 "$T/cni-results.before" -
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$T" ] || exit $rc
  SECTION=teardown
  if [ -n "$CT_PID" ] && ! gone "$CT_PID"; then
    # Pods a failed step left: the kubelet's way out (StopPodSandbox, RemovePodSandbox).
    client cleanup >/dev/null 2>&1
    stop_pid containerd "$CT_PID"
  fi
  sleep 0.5
  SECTION=leftovers
  local procs p
  procs=$(test_processes 2>/dev/null)
  if [ -z "$procs" ]; then
    pass "no process of the test is left (shims, pause, containers)"
  else
    fail "processes of the test are left" "$procs"
    while read -r p _; do kill -KILL "$p" 2>/dev/null; done <<<"$procs"
  fi
  local mounts m
  mounts=$(test_mounts)
  if [ -z "$mounts" ]; then
    pass "no mount of the test is left (rootfs, shm, netns)"
  else
    fail "mounts of the test are left" "$mounts"
  fi
  while read -r m _; do
    [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done < <(test_mounts)
  local st
  st=$(find "$T/runtime-root" -mindepth 3 -maxdepth 3 2>/dev/null)
  if [ -z "$st" ]; then
    pass "no container state left in the runtimes' roots"
  else
    fail "container state left in the runtimes' roots" "$st"
  fi
  if [ -n "$NETNS" ]; then
    local links
    links=$(ip -n "$NETNS" -o link show type veth 2>/dev/null)
    if [ -z "$links" ]; then pass "no veth left in the node's network namespace"; else fail "veths left" "$links"; fi
    st=$(find "$T/state/io.containerd.grpc.v1.cri/netns" -mindepth 1 2>/dev/null)
    if [ -z "$st" ]; then pass "no pod network namespace left"; else fail "pod network namespaces left" "$st"; fi
    st=$(find "$T/cni-ipam" -type f -name '10.*' 2>/dev/null)
    if [ -z "$st" ]; then pass "no pod IP left allocated (host-local)"; else fail "pod IPs left allocated" "$st"; fi
    ip netns del "$NETNS" 2>/dev/null
  fi
  st=$(cni_results)
  if [ -z "$st" ]; then pass "no CNI result cache entry left"; else fail "CNI result cache entries left" "$st"; fi
  for p in $st; do rm -f "/var/lib/cni/results/$p"; done
  if [ -n "$CNI_DIR_NEW" ]; then rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null; fi
  local cg
  if [ "$CRI_SYSTEMD" = 1 ]; then
    cg=$(find /sys/fs/cgroup -path "*/$CG_PREFIX*" -name 'cri-containerd-*.scope' -type d 2>/dev/null)
    systemctl stop "$CG_PREFIX.slice" >/dev/null 2>&1
  else
    cg=$(find /sys/fs/cgroup/*/"$CG_PREFIX" /sys/fs/cgroup/"$CG_PREFIX" -mindepth 2 -type d 2>/dev/null | sort -u)
  fi
  if [ -z "$cg" ]; then
    pass "no container cgroup left under the pods' cgroups"
  else
    fail "container cgroups left" "$cg"
    cgroup_rm_dirs $cg
  fi
  [ "$CRI_SYSTEMD" = 1 ] || cgroup_rmtree "$CG_PREFIX"
  echo "host: removing what containerd added"
  /usr/bin/python3 "$REPO/tests/clients/hoststate.py" restore "$T/host.json"
  if [ $FAILED -gt 0 ]; then
    local logs=${KEEP_LOGS:-/tmp/rrun-cri-logs.$$}
    mkdir -p "$logs"
    cp "$T/containerd.log" "$T/runtime-calls.log" "$logs/" 2>/dev/null
    find "$T/state/io.containerd.runtime.v2.task" -name log.json -exec cp --backup=numbered {} "$logs/" \; 2>/dev/null
    echo "containerd's log and the runtime's command lines: $logs"
  fi
  rm -rf --one-file-system "$T"
  echo
  if [ ${#FAILS[@]} -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${FAILS[@]}"
  fi
  echo "test-cri: $(((SECONDS - START) / 60))m$(((SECONDS - START) % 60))s"
  echo "$PASSED passed, $FAILED failed"
  [ $FAILED -eq 0 ] && [ $rc -eq 0 ] && exit 0
  exit 1
}

# client ARGS...: tests/cri/cri.py in the node's network namespace (the streaming server and
# the pods' addresses are there); its PASS/FAIL counts are added to ours.
client() {
  local counts=$T/counts.$RANDOM
  timeout -k 10 "${CRI_CLIENT_TIMEOUT:-900}" nsenter --net="/run/netns/$NETNS" -- "$PY" "$HERE/cri.py" \
    --gen "$GEN" --sock "$T/containerd.sock" --tmp "$T" --image "$IMG" --pause-image "$PAUSE_IMG" \
    --cgroup-prefix "$CG_PREFIX" --systemd "$CRI_SYSTEMD" --pods "$CRI_PODS" --rounds "$CRI_ROUNDS" \
    --counts "$counts" "$@"
  local rc=$? p=0 f=0
  [ -s "$counts" ] && read -r p f <"$counts"
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  rm -f "$counts"
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then
    fail "cri.py $1 exited $rc without a failed step"
  fi
  return $rc
}

# ---------------------------------------------------------------------------------------------
# Set-up

install_packages || {
  echo "FAIL: setup: packages could not be installed"
  echo "0 passed, 1 failed"
  exit 1
}
if ! setup_python; then
  echo "FAIL: setup: the client's venv could not be made (PyPI: tests/cri/requirements.txt)"
  echo "0 passed, 1 failed"
  exit 1
fi
if ! gen_proto; then
  echo "FAIL: setup: api.proto does not compile"
  echo "0 passed, 1 failed"
  exit 1
fi

# Short: unix socket paths must stay under 108 bytes.
T=$(mktemp -d -p /tmp --suffix=.rrcri)
chmod 755 "$T"
CG_PREFIX=rrun-cri.$$
[ "$CRI_SYSTEMD" = 1 ] && CG_PREFIX=rrun_cri_$$
trap finish EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/bin" "$T/net.d" "$T/cni-ipam" "$T/runtime-root"
CNI_DIR_NEW=
[ -d /var/lib/cni ] || CNI_DIR_NEW=1
find /var/lib/cni/results -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort >"$T/cni-results.before"
/usr/bin/python3 "$REPO/tests/clients/hoststate.py" snapshot "$T/host.json"

# Private copies of the runtimes behind wrappers that record each command line the shim runs.
cp "$RRUN_BIN" "$T/bin/rrun.real"
cp "$RUNC_BIN" "$T/bin/runc.real"
for r in rrun runc; do
  cat >"$T/bin/$r" <<EOF
#!/bin/sh
echo "$r \$*" >>"$T/runtime-calls.log"
exec "$T/bin/$r.real" "\$@"
EOF
  chmod 755 "$T/bin/$r"
done
: >"$T/runtime-calls.log"
echo "rrun: $RRUN_BIN ($("$RRUN_BIN" --version 2>/dev/null | head -1))"
echo "runc: $RUNC_BIN ($("$RUNC_BIN" --version 2>/dev/null | head -1))"
echo "containerd: $(containerd --version 2>/dev/null)"
echo "handler under test: $CRI_HANDLER; cgroup driver: $([ "$CRI_SYSTEMD" = 1 ] && echo systemd || echo cgroupfs)"
echo "temp dir: $T"

# Images: busybox (scripts/mkrootfs.sh) and the sandbox image, a static pause of our own.
IMAGES=${CRI_IMAGES:-$T/images}
if [ -n "${CRI_IMAGES:-}" ] || IMG=$IMG PAUSE_IMG=$PAUSE_IMG bash "$HERE/mkimages.sh" "$IMAGES"; then
  if [ -s "$IMAGES/busybox.tar" ] && [ -s "$IMAGES/pause.tar" ]; then
    pass "images: busybox (scripts/mkrootfs.sh) and a pause sandbox image (tests/cri/pause.c, static)"
  else
    fail "no image archives in $IMAGES"
    exit 1
  fi
else
  fail "the images could not be built (tests/cri/mkimages.sh)"
  exit 1
fi

# The node's network namespace: containerd, the CNI plugins it runs, the bridge and the
# streaming server are in it.
NETNS=rrcri-$$
if ! ip netns add "$NETNS" || ! ip -n "$NETNS" link set lo up; then
  fail "ip netns add $NETNS"
  NETNS=
  exit 1
fi

cat >"$T/net.d/10-rrcri.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "rrcri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "rrcri0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$T/cni-ipam",
        "ranges": [[{"subnet": "10.88.77.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF

SYSTEMD_CGROUP=false
[ "$CRI_SYSTEMD" = 1 ] && SYSTEMD_CGROUP=true
cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$T/containerd.sock"
[ttrpc]
  address = "$T/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMG"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  disable_apparmor = true
  # root lacks CAP_SYS_RESOURCE here: no oom_score_adj below containerd's own (as rootless).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rrun]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rrun.options]
        BinaryName = "$T/bin/rrun"
        Root = "$T/runtime-root/rrun"
        SystemdCgroup = $SYSTEMD_CGROUP
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$T/bin/runc"
        Root = "$T/runtime-root/runc"
        SystemdCgroup = $SYSTEMD_CGROUP
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$T/net.d"
    max_conf_num = 1
EOF

nsenter --net="/run/netns/$NETNS" -- containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CT_PID=$!
ctr_() { ctr --address "$T/containerd.sock" -n "$NS" "$@"; }
if wait_daemon "$CT_PID" 30 ctr_ version; then
  pass "containerd (CRI plugin) starts on a private socket, root and state, in the node's netns"
else
  fail "containerd does not start" "$(tail -n 20 "$T/containerd.log")"
  exit 1
fi
run ctr_ images import "$IMAGES/busybox.tar"
check "ctr -n k8s.io images import: busybox" 0 "rrun-busybox"
run ctr_ images import "$IMAGES/pause.tar"
check "ctr -n k8s.io images import: the pause image" 0 "pause"

for s in $CRI_SECTIONS; do
  case $s in
    sequence) client sequence --handler "$CRI_HANDLER" ;;
    scale) client scale ;;
    *) fail "unknown section '$s' in CRI_SECTIONS" ;;
  esac
done
SECTION=teardown
client cleanup --check
stop_pid containerd "$CT_PID"
CT_PID=
exit 0
