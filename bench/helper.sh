#!/usr/bin/env bash
# Per-iteration helper for bench/run.sh, called by hyperfine (-N, so no shell
# in between) as --prepare/--cleanup or as the timed command itself.
#
#   helper.sh ACTION BIN ROOT ...
#
# Actions (BIN = runtime binary, ROOT = its private --root):
#   clean      BIN ROOT ID                 delete --force ID, ignore errors
#   prep-start BIN ROOT BUNDLE ID          clean; create
#   prep-kill  BIN ROOT BUNDLE ID          clean; create; start     (BUNDLE runs sleep)
#   prep-delete BIN ROOT BUNDLE ID         clean; create; start; wait until exited
#   lifecycle  BIN ROOT BUNDLE ID          create; start; wait until exited; delete  (timed)
#   par-run    BIN ROOT BPFX IDPFX N       N x "run -d" concurrently, wait for all    (timed)
#   par-clean  BIN ROOT IDPFX N [P]        delete --force IDPFX1..N, P at a time
#   par-prepare BIN ROOT IDPFX N [P]       par-clean, then 0.5 s for the kernel's deferred teardown
#   many-run   BIN ROOT BPFX IDPFX N [P]   N x "run -d", P at a time (setup, untimed)
#   start-wait BIN ROOT BUNDLE ID          clean; create; start (sleep container, setup)
#
# Bundles passed as BPFX are directories named BPFX1..BPFXN.
# Container stdio goes to /dev/null; runtime stderr to $BENCH_LOG (or
# /dev/null) so failures can be diagnosed by re-running without hyperfine.
set -u

LOG=${BENCH_LOG:-/dev/null}

die() { echo "helper: $*" >&2; exit 1; }

# Sleep ~1ms without forking: read with a timeout from a fifo nobody writes (made by
# run.sh, so that no mktemp/mkfifo runs inside timed code).
_sfd=
msleep() {
  if [ -z "$_sfd" ]; then
    if [ -p "${BENCH_FIFO:-}" ]; then
      exec {_sfd}<>"$BENCH_FIFO"
    else
      local f
      f=$(mktemp -u "${TMPDIR:-/tmp}/rrun-bench-sleep.XXXXXX")
      mkfifo "$f" && exec {_sfd}<>"$f" && rm -f "$f"
    fi
  fi
  read -r -t 0.001 -u "$_sfd" _ 2>/dev/null || true
}

rt() { "$BIN" --root "$ROOT" "$@" </dev/null >/dev/null 2>>"$LOG"; }

clean() { "$BIN" --root "$ROOT" delete --force "$1" </dev/null >/dev/null 2>&1 || true; }

# pid of container $1 from `state` (no jq, and no $(...) subshell: this is inside timed code).
getpid() {
  local out f=${BENCH_SCRATCH:-${TMPDIR:-/tmp}/rrun-bench-helper.$$}
  "$BIN" --root "$ROOT" state "$1" </dev/null >"$f" 2>>"$LOG" || return 1
  read -r -d "" out <"$f"
  [[ $out =~ \"pid\"[[:space:]]*:[[:space:]]*([0-9]+) ]] || return 1
  PID=${BASH_REMATCH[1]}
  [ "$PID" -gt 0 ]
}

# Wait until pid $1 is gone or a zombie (runtimes treat zombie inits as
# stopped; under bench/subreaper.py they are reaped at once anyway).
waitgone() {
  local pid=$1 line st deadline=$(( ${EPOCHSECONDS} + 20 ))
  while :; do
    line=
    { read -r line </proc/"$pid"/stat; } 2>/dev/null || return 0
    st=${line##*) }; st=${st%% *}
    case $st in Z|X|x) return 0 ;; esac
    [ "$EPOCHSECONDS" -le "$deadline" ] || die "pid $pid did not exit"
    msleep
  done
}

action=${1:?action}; BIN=${2:?bin}; ROOT=${3:?root}
shift 3
case $action in
  clean)
    clean "${1:?id}" ;;
  prep-start)
    B=${1:?bundle} ID=${2:?id}
    clean "$ID"
    rt create --bundle "$B" "$ID" || die "create $ID failed" ;;
  prep-kill|start-wait)
    B=${1:?bundle} ID=${2:?id}
    clean "$ID"
    rt create --bundle "$B" "$ID" || die "create $ID failed"
    rt start "$ID" || die "start $ID failed" ;;
  prep-delete)
    B=${1:?bundle} ID=${2:?id}
    clean "$ID"
    rt create --bundle "$B" "$ID" || die "create $ID failed"
    getpid "$ID" || die "state $ID: no pid"
    rt start "$ID" || die "start $ID failed"
    waitgone "$PID" ;;
  lifecycle)
    B=${1:?bundle} ID=${2:?id}
    rt create --bundle "$B" "$ID" || die "create $ID failed"
    getpid "$ID" || die "state $ID: no pid"
    rt start "$ID" || die "start $ID failed"
    waitgone "$PID"
    rt delete "$ID" || die "delete $ID failed" ;;
  par-run)
    BPFX=${1:?bundle prefix} IDPFX=${2:?id prefix} N=${3:?n}
    pids=()
    for ((i = 1; i <= N; i++)); do
      # A simple command, not the rt function: bash forks once and execs the runtime,
      # instead of forking a subshell that forks again.
      "$BIN" --root "$ROOT" run -d -b "$BPFX$i" "$IDPFX$i" </dev/null >/dev/null 2>>"$LOG" &
      pids+=($!)
    done
    fail=0
    for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
    [ "$fail" -eq 0 ] || die "$fail of $N run -d failed" ;;
  par-clean|par-prepare)
    IDPFX=${1:?id prefix} N=${2:?n} P=${3:-4}
    seq 1 "$N" | xargs -P "$P" -I{} "$BIN" --root "$ROOT" delete --force "$IDPFX{}" \
      >/dev/null 2>&1 || true
    # Before a timed batch: let the kernel finish tearing down the deleted containers
    # (network namespaces and cgroups go away in workqueues), so that work is not timed.
    [ "$action" = par-prepare ] && sleep 0.5
    true ;;
  many-run)
    BPFX=${1:?bundle prefix} IDPFX=${2:?id prefix} N=${3:?n} P=${4:-4}
    seq 1 "$N" | xargs -P "$P" -I{} "$BIN" --root "$ROOT" run -d -b "$BPFX{}" "$IDPFX{}" \
      >/dev/null 2>>"$LOG" || die "some of $N run -d failed" ;;
  *)
    die "unknown action $action" ;;
esac
