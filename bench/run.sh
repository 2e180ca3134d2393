#!/usr/bin/env bash
# rrun benchmark harness: rrun vs runc vs crun, side by side, same bundle.
#
#   make bench                      (builds rrun + bundle first)
#   bash bench/run.sh               (benchmarks whatever runtimes work)
#
# Environment knobs (all optional):
#   RRUN=path  RUNC=path  CRUN=path   runtime binaries (default: release build,
#                                     /usr/sbin/runc, /usr/bin/crun)
#   RUNTIMES="rrun runc crun"         which runtimes, in table order
#   BASELINE=crun                     runtime the ratios are computed against
#   SCENARIOS="run lifecycle ..."     subset of: run rootless lifecycle create start
#                                     state kill delete exec par many rss size
#   RUNS=40 WARMUP=3                  hyperfine runs for the single-op scenarios
#   PAR_N=50 PAR_RUNS=20              parallel batch size / runs
#   PAR_ROUNDS=10                     the parallel runs are split into rounds, the
#                                     runtimes interleaved round by round
#   MANY_N=1000 MANY_RUNS=20          containers for list/state, runs
#   MANY_P=4                          concurrency used to create/delete them
#   RSS_SAMPLES=5                     /usr/bin/time samples per op
#   HF_TIMEOUT=300                    seconds before a scenario of one runtime
#                                     is declared hung and killed
#   BENCH_QUICK=1                     tiny run to check the harness; writes the
#                                     report to bench/out/ instead of bench/
#   RESULTS=bench/results.md CHART=bench/latency.png
#
# How it runs: as root, inside bench/subreaper.py (a PR_SET_CHILD_SUBREAPER
# wrapper that reaps the inits of detached containers at once), inside a
# private mount namespace (unshare -m --propagation private) in which a hybrid
# host's /sys/fs/cgroup/unified is covered by an empty tmpfs, so that crun
# 1.8.1 (which refuses hybrid hosts) works and all runtimes see plain cgroup
# v1. The host's mounts are never touched. Each runtime gets a private --root
# under a temp dir and cgroupsPath /rrun-bench/<runtime>-<n>; everything is
# deleted / rmdir'ed / removed on exit (trap), including on Ctrl-C.
#
# The rootless scenario runs hyperfine and the runtimes as a real non-root user
# the bench creates (useradd rrun-bench-<pid>, no home, no subordinate ids) in
# that same mount namespace, with a `spec --rootless` bundle (maps of the
# user's own uid/gid only) and a --root on a tmpfs owned by the user. At exit
# the user's processes are killed by pid, the user is removed (userdel) and
# /etc/{passwd,shadow,group,gshadow,subuid,subgid} and their "-" backups are
# put back as they were before useradd.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CG_PREFIX=rrun-bench

say() { printf '== %s\n' "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

###########################################################################
# Outer: preflight, dependencies, then re-exec under subreaper + unshare.
###########################################################################
if [ "${RRUN_BENCH_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "must run as root (containers, cgroups, mount namespace)"

  missing=()
  need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || missing+=("$2")
  }
  need hyperfine hyperfine
  need jq jq
  need python3 python3
  need gnuplot gnuplot-nox
  need /usr/bin/time time
  need unshare util-linux
  need xargs findutils
  need ldd libc-bin
  need ps procps
  need timeout coreutils
  [ -n "${RUNC:-}" ] || need runc runc
  [ -n "${CRUN:-}" ] || need crun crun
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing packages: ${missing[*]}"
    . "$REPO/scripts/apt.sh"
    apt_install --no-install-recommends "${missing[@]}" ||
      warn "installing ${missing[*]} failed; continuing with what is there"
  fi
  for c in hyperfine jq python3 unshare ps timeout; do
    command -v "$c" >/dev/null 2>&1 || die "$c is required"
  done

  export RRUN_BENCH_INNER=1 RRUN_BENCH_T0=${EPOCHREALTIME}
  exec python3 "$HERE/subreaper.py" \
    unshare --mount --propagation private -- bash "$HERE/run.sh" "$@"
fi

###########################################################################
# Inner: we are a (sub-reaped) process in a private mount namespace.
###########################################################################
T0=${RRUN_BENCH_T0:-$EPOCHREALTIME}

# --- configuration --------------------------------------------------------
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  : "${RUNS:=5}" "${WARMUP:=1}" "${PAR_N:=10}" "${PAR_RUNS:=2}" "${PAR_ROUNDS:=2}" "${MANY_N:=100}"
  : "${MANY_RUNS:=3}" "${RSS_SAMPLES:=2}"
  : "${RESULTS:=$HERE/out/results.md}" "${CHART:=$HERE/out/latency.png}"
fi
RUNS=${RUNS:-40}
WARMUP=${WARMUP:-3}
PAR_N=${PAR_N:-50}
PAR_RUNS=${PAR_RUNS:-20}
PAR_ROUNDS=${PAR_ROUNDS:-10}
MANY_N=${MANY_N:-1000}
MANY_RUNS=${MANY_RUNS:-20}
MANY_P=${MANY_P:-4}
RSS_SAMPLES=${RSS_SAMPLES:-5}
RESULTS=${RESULTS:-$HERE/results.md}
CHART=${CHART:-$HERE/latency.png}
RUNTIMES=${RUNTIMES:-rrun runc crun}
BASELINE=${BASELINE:-crun}
SCENARIOS=${SCENARIOS:-run rootless lifecycle create start state kill delete exec par many rss size}
LIFECYCLE_RUNS=${LIFECYCLE_RUNS:-$RUNS}
HF_TIMEOUT=${HF_TIMEOUT:-300}  # seconds per scenario and runtime (hung runtime guard)

declare -A BINPATH=(
  [rrun]=${RRUN:-$REPO/target/x86_64-unknown-linux-gnu/release/rrun}
  [runc]=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
  [crun]=${CRUN:-$(command -v crun || echo /usr/bin/crun)}
)
for r in $RUNTIMES; do
  [ -n "${BINPATH[$r]:-}" ] || die "unknown runtime '$r' (known: ${!BINPATH[*]}); set RUNTIMES"
  BINPATH[$r]=$(realpath -s -- "${BINPATH[$r]}") # absolute, symlinks kept
done

ROOTFS=$REPO/bundles/busybox/rootfs
CONFIG=$REPO/bundles/busybox/config.json
[ -f "$CONFIG" ] || die "missing $CONFIG"
[ -x "$ROOTFS/bin/busybox" ] || die "missing $ROOTFS (run 'make bundles')"

OUT=$HERE/out
mkdir -p "$OUT"
rm -rf "$OUT/raw" "$OUT"/*.json "$OUT"/*.tsv "$OUT"/*.log "$OUT"/latency.* 2>/dev/null || true
mkdir -p "$OUT/raw"

# --- mount namespace / cgroup setup --------------------------------------
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] ||
  die "not in a private mount namespace; refusing to mount anything"
CGMODE=v1
if [ "$(findmnt -n -o FSTYPE /sys/fs/cgroup 2>/dev/null)" = cgroup2 ]; then
  CGMODE=v2
elif [ "$(findmnt -n -o FSTYPE /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2 ]; then
  prop=$(findmnt -n -o PROPAGATION /sys/fs/cgroup/unified)
  [ "$prop" = private ] || die "/sys/fs/cgroup/unified propagation is '$prop', not private"
  # (no tight size=: crun in v1 mode still mkdirs + writes a cgroup.procs file
  # here for every container, ~4 KiB each)
  mount -t tmpfs -o mode=0755 rrun-bench-hide-cgroup2 /sys/fs/cgroup/unified
  CGMODE="v1 (hybrid host; cgroup2 at /sys/fs/cgroup/unified hidden by a tmpfs in the bench's private mount namespace)"
fi
for d in /sys/fs/cgroup/*/"$CG_PREFIX" /sys/fs/cgroup/"$CG_PREFIX"; do
  [ -d "$d" ] && warn "$d exists before the run (left over?); it will be cleaned up at exit"
done
true

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rrun-bench.XXXXXX")
export TMPDIR=$TMP BENCH_LOG=$TMP/runtime-stderr.log
# helper.sh sleeps ~1 ms by reading this fifo (nobody writes it) with a timeout, and reads
# `state` output from a file: no fork of its own inside timed code.
export BENCH_FIFO=$TMP/sleep.fifo BENCH_SCRATCH=$TMP/helper-out
mkfifo "$BENCH_FIFO"
# State roots on a tmpfs, as /run (every runtime's default root) is on real hosts; this
# host's /run is on ext4, whose inode allocation would dominate the small verbs.
mkdir -p "$TMP/state"
mount -t tmpfs -o mode=0700 rrun-bench-state "$TMP/state"
: >"$BENCH_LOG"
HELPER=$HERE/helper.sh

# --- cleanup ----------------------------------------------------------------
cg_dirs() { # every cgroup dir under our prefix, deepest first
  local d
  for d in /sys/fs/cgroup/*/"$CG_PREFIX" /sys/fs/cgroup/"$CG_PREFIX"; do
    # Only real cgroup filesystems: crun in v1 mode also mkdirs (and writes a
    # "cgroup.procs" file) into the tmpfs hiding cgroup2; that tmpfs is ours
    # and goes away with the namespace.
    [ -d "$d" ] || continue
    case $(stat -f -c %T "$d") in cgroupfs|cgroup2fs) ;; *) continue ;; esac
    find "$d" -depth -type d
  done
  return 0
}
cg_pids() {
  local d
  cg_dirs | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done | sort -un
}
container_ids() { # rt: ids known to the runtime's private root
  local rt=$1 root=$TMP/state/$1
  [ -d "$root" ] || return 0
  {
    timeout -k 5 20 "${BINPATH[$rt]}" --root "$root" list -q 2>/dev/null || true
    find "$root" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null
  } | sort -u
}
# Processes we started that outlived their parent are re-parented to the
# subreaper (our parent). kill_strays ends them by pid: every child of the
# subreaper other than this shell, and their descendants. Without "all",
# processes in another pid namespace (the inits of containers still in use)
# are spared.
SUBREAPER=
grep -qs subreaper.py "/proc/$PPID/cmdline" && SUBREAPER=$PPID
kill_strays() {
  [ -n "$SUBREAPER" ] || return 0
  local mode=${1:-} myns pid ppid p list=() n=0
  myns=$(readlink /proc/self/ns/pid)
  declare -A kids=()
  while read -r pid ppid; do kids[$ppid]+=" $pid"; done < <(ps -e -o pid=,ppid=)
  local queue=(${kids[$SUBREAPER]:-})
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [ "$p" = $$ ] && continue
    list+=("$p")
    queue+=(${kids[$p]:-})
  done
  for p in "${list[@]}"; do
    if [ "$mode" != all ] && [ "$(readlink "/proc/$p/ns/pid" 2>/dev/null)" != "$myns" ]; then
      continue
    fi
    kill -KILL "$p" 2>/dev/null && n=$((n + 1))
  done
  [ "$n" = 0 ] || warn "ended $n stray process(es) by pid"
}

# --- rootless scenario: the bench user ---------------------------------------------
# RL: $TMP/rootless (0755; $TMP itself becomes 0711 so the user can traverse it). The user's
# processes are found by real uid; the account files are saved before useradd and put back
# after userdel: a primary file still holding our lines loses them, and once it is exactly as
# saved (nobody else changed it meanwhile) its "-" backup gets its saved bytes back (or is
# removed if it did not exist). A primary file someone else changed is left alone (warning).
RL='' RL_USER='' RL_UID='' RL_GID='' RL_ETC_SAVED=''
RL_ETC="passwd shadow group gshadow subuid subgid"
rl_pids() { # live (non-zombie) processes whose real uid is the bench user's
  [ -n "$RL_UID" ] || return 0
  ps -e -o pid=,ruid=,stat= | awk -v u="$RL_UID" '$2 == u && $3 !~ /^Z/ { print $1 }'
}
rl_etc_save() {
  local f g
  mkdir -m 0700 "$TMP/rl-etc"
  for f in $RL_ETC; do
    for g in "/etc/$f" "/etc/$f-"; do
      if [ -e "$g" ]; then cp -p "$g" "$TMP/rl-etc/" || return 1; fi
    done
  done
  RL_ETC_SAVED=1
}
rl_etc_restore() {
  local f s
  for f in $RL_ETC; do
    s=$TMP/rl-etc/$f
    [ -e "$s" ] || continue
    if ! cmp -s "$s" "/etc/$f" && [ -n "$RL_USER" ] && grep -q "^$RL_USER:" "/etc/$f"; then
      grep -v "^$RL_USER:" "/etc/$f" >"$s.new" && cat "$s.new" >"/etc/$f"
      rm -f "$s.new"
    fi
    if ! cmp -s "$s" "/etc/$f"; then
      warn "/etc/$f was changed by someone else during the bench; it and /etc/$f- left as they are"
      continue
    fi
    touch -r "$s" "/etc/$f"
    if [ -e "$s-" ]; then
      cmp -s "$s-" "/etc/$f-" || cat "$s-" >"/etc/$f-"
      touch -r "$s-" "/etc/$f-"
    else
      rm -f "/etc/$f-"
    fi
  done
}
rl_cleanup() {
  local i p pids n=0
  if [ -n "$RL_UID" ]; then
    for i in 1 2 3 4 5 6 7 8 9 10; do
      pids=$(rl_pids)
      [ -n "$pids" ] || break
      for p in $pids; do kill -KILL "$p" 2>/dev/null && n=$((n + 1)); done
      sleep 0.2
    done
    [ "$n" = 0 ] || warn "ended $n process(es) of $RL_USER by pid"
    [ -z "$(rl_pids)" ] || warn "processes of $RL_USER (uid $RL_UID) still alive: $(rl_pids | tr '\n' ' ')"
  fi
  if [ -n "$RL" ] && mountpoint -q "$RL/run"; then
    umount "$RL/run" || umount -l "$RL/run" # our private namespace only
  fi
  if [ -n "$RL_USER" ] && getent passwd "$RL_USER" >/dev/null; then
    userdel "$RL_USER" >"$TMP/rl-userdel.log" 2>&1 ||
      warn "userdel $RL_USER failed: $(tr '\n' ' ' <"$TMP/rl-userdel.log")"
  fi
  [ -z "$RL_ETC_SAVED" ] || rl_etc_restore
  if [ -n "$RL_USER" ] && { getent passwd "$RL_USER" || getent group "$RL_USER"; } >/dev/null; then
    warn "user or group $RL_USER still exists"
  fi
  RL_USER='' RL_UID='' RL_ETC_SAVED=''
}

CLEANED=0
cleanup() {
  local rc=$? rt ids n pids i d left ncg=0
  [ "$CLEANED" = 1 ] && return
  CLEANED=1
  trap - EXIT INT TERM HUP
  set +e
  say "cleaning up"
  kill_strays # hung runtime commands, if any; not container inits
  for rt in "${!BINPATH[@]}"; do
    ids=$(container_ids "$rt")
    [ -n "$ids" ] || continue
    n=$(wc -l <<<"$ids")
    say "deleting $n leftover $rt container(s)"
    printf '%s\n' "$ids" | xargs -r -P "$MANY_P" -I{} timeout 20 "${BINPATH[$rt]}" \
      --root "$TMP/state/$rt" delete --force {} >/dev/null 2>&1
  done
  # Anything still alive in our cgroups was started by us: end it by pid.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(cg_pids)
    [ -n "$pids" ] || break
    [ "$i" = 1 ] && warn "killing leftover processes in /$CG_PREFIX: $(echo $pids)"
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    sleep 0.2
  done
  for i in 1 2 3 4 5 6 7 8 9 10; do
    left=0
    while read -r d; do
      [ -n "$d" ] || continue
      if rmdir "$d" 2>/dev/null; then ncg=$((ncg + 1)); else left=$((left + 1)); fi
    done < <(cg_dirs)
    [ "$left" = 0 ] && break
    sleep 0.3
  done
  [ "$ncg" = 0 ] || say "removed $ncg cgroup dir(s) under /$CG_PREFIX"
  [ "$left" = 0 ] || warn "could not remove $left cgroup dir(s) under /$CG_PREFIX: $(cg_dirs 2>/dev/null | head -5 | tr '\n' ' ')"
  kill_strays all
  rl_cleanup
  if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
    [ -s "$BENCH_LOG" ] && cp "$BENCH_LOG" "$OUT/runtime-stderr.log"
    mountpoint -q "$TMP/state" && umount "$TMP/state" # our private namespace only
    rm -rf --one-file-system "$TMP" || warn "could not remove $TMP"
  fi
  if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null &&
     [ "$(findmnt -n -o SOURCE /sys/fs/cgroup/unified)" = rrun-bench-hide-cgroup2 ]; then
    umount /sys/fs/cgroup/unified 2>/dev/null # our private namespace only
  fi
  say "done in $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s (exit status $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT TERM HUP

# --- bundles ------------------------------------------------------------------
mktemplate() { # name args-json
  jq --arg root "$ROOTFS" --argjson args "$2" '
      .process.args = $args
    | .process.terminal = false
    | .root.path = $root
    | .root.readonly = true
    | .linux.cgroupsPath = "@CGROUP@"' "$CONFIG" >"$TMP/tpl-$1.json"
}
mkdir -p "$TMP/b" "$TMP/state"
mktemplate true '["/bin/true"]'
mktemplate sleep '["sleep","1000"]'
TPL_true=$(<"$TMP/tpl-true.json")
TPL_sleep=$(<"$TMP/tpl-sleep.json")
mkbundle() { # kind(true|sleep) rt n -> prints dir
  local tpl=TPL_$1 dir=$TMP/b/$2-$3
  if [ ! -d "$dir" ]; then
    mkdir "$dir"
    printf '%s\n' "${!tpl//@CGROUP@//$CG_PREFIX/$2-$3}" >"$dir/config.json"
  fi
  printf '%s' "$dir"
}
mkbundles() { # kind rt prefix N: dirs $TMP/b/<rt>-<prefix>1..N
  local i
  for ((i = 1; i <= $4; i++)); do mkbundle "$1" "$2" "$3$i" >/dev/null; done
}

# --- runtimes: presence + smoke test ---------------------------------------------
: >"$OUT/runtimes.tsv"
ACTIVE=()
for rt in $RUNTIMES; do
  bin=${BINPATH[$rt]}
  mkdir -p "$TMP/state/$rt"
  if [ ! -x "$bin" ]; then
    warn "SKIP $rt: binary not found or not executable: $bin"
    printf '%s\t%s\tskipped\tbinary not found: %s\n' "$rt" "$bin" "$bin" >>"$OUT/runtimes.tsv"
    continue
  fi
  ver=$("$bin" --version 2>/dev/null | head -1 || true)
  b=$(mkbundle true "$rt" smoke)
  set +e
  err=$(timeout 30 "$bin" --root "$TMP/state/$rt" run -b "$b" smoke </dev/null 2>&1 >/dev/null)
  src=$?
  set -e
  "$bin" --root "$TMP/state/$rt" delete --force smoke >/dev/null 2>&1 || true
  if [ "$src" != 0 ]; then
    why="smoke 'run -b BUNDLE smoke' of /bin/true failed (exit $src): $(tail -n 2 <<<"$err" | tr '\n\t' '  ' | cut -c1-200)"
    warn "SKIP $rt: $why"
    printf '%s\t%s\tskipped\t%s\n' "$rt" "$bin" "$why" >>"$OUT/runtimes.tsv"
    continue
  fi
  say "$rt: $bin (${ver:-no --version}) smoke run ok"
  printf '%s\t%s\tok\t%s\n' "$rt" "$bin" "${ver:-?}" >>"$OUT/runtimes.tsv"
  ACTIVE+=("$rt")
done
[ ${#ACTIVE[@]} -gt 0 ] || die "no runtime passed the smoke test"

# --- hyperfine wrapper ----------------------------------------------------------------
q() { # quote words for hyperfine's shell-words parser
  local out= w
  for w in "$@"; do out+="'${w//\'/\'\\\'\'}' "; done
  printf '%s' "${out% }"
}
: >"$OUT/scenarios.tsv"
: >"$OUT/failures.tsv"
scenario() { # key label short-label
  printf '%s\t%s\t%s\n' "$1" "$2" "${3:-$1}" >>"$OUT/scenarios.tsv"
  say "scenario $1: $2"
}

# hf SCN RT RUNS WARMUP PREPARE CLEANUP CMD  (PREPARE/CLEANUP/CMD already quoted; "" = none)
# With HF_PART=name the export is one part of the scenario (merge combines the parts).
# With HF_AS=(cmd...) hyperfine (and so everything it runs) is started through that command
# (the rootless scenario: setpriv to the bench user), writing its JSON to HF_EXPORT, which
# is copied to out/raw afterwards.
declare -A HF_FAILED=()
HF_AS=()
HF_EXPORT=
HF_BIN=$(command -v hyperfine)
hf() {
  local scn=$1 rt=$2 runs=$3 warm=$4 prep=$5 clean=$6 cmd=$7 args as=
  local json=$OUT/raw/$scn.$rt${HF_PART:+.$HF_PART}.json
  local export=${HF_EXPORT:-$json}
  [ ${#HF_AS[@]} = 0 ] || as="$(q "${HF_AS[@]}") "
  args=(-N --runs "$runs" --warmup "$warm" --export-json "$export" -n "$rt")
  [ -n "$prep" ] && args+=(--prepare "$prep")
  [ -n "$clean" ] && args+=(--cleanup "$clean")
  local hrc=0
  timeout --foreground -k 10 "$HF_TIMEOUT" "${HF_AS[@]}" "$HF_BIN" "${args[@]}" "$cmd" || hrc=$?
  if [ "$hrc" = 0 ] && [ "$export" != "$json" ]; then
    cp "$export" "$json" || hrc=$?
  fi
  [ "$hrc" = 0 ] && return 0
  rm -f "$json" "$export"
  HF_FAILED[$scn.$rt]=1
  if [ "$hrc" = 124 ] || [ "$hrc" = 137 ]; then
    warn "TIMEOUT: scenario $scn, runtime $rt took over ${HF_TIMEOUT}s; hyperfine killed"
    printf '%s\t%s\ttimeout\n' "$scn" "$rt" >>"$OUT/failures.tsv"
    kill_strays
    [ -z "$clean" ] || eval "timeout 60 $as$clean" </dev/null >/dev/null 2>&1 || true
    return 0
  fi
  warn "FAILED: scenario $scn, runtime $rt; diagnosing with one plain run:"
  printf '%s\t%s\tfailed\n' "$scn" "$rt" >>"$OUT/failures.tsv"
  # Output to a file, not a pipe: detached containers inherit it.
  local diag=$TMP/diag.$scn.$rt.log
  {
    [ -z "$prep" ] || eval "BENCH_LOG=$diag timeout -k 5 60 $as$prep"
    eval "BENCH_LOG=$diag timeout -k 5 60 $as$cmd"
    echo "(exit status $?)" >&2
  } </dev/null >/dev/null 2>>"$diag" || true
  tail -n 5 "$diag" | sed 's/^/   | /' >&2
  cat "$diag" >>"$BENCH_LOG"
  [ -z "$clean" ] || eval "$as$clean" </dev/null >/dev/null 2>&1 || true
  return 0
}
merge() { # scn: combine per-runtime exports (and their parts) into out/<scn>.json
  local f=() parts rt
  for rt in "${ACTIVE[@]}"; do
    [ -f "$OUT/raw/$1.$rt.json" ] && f+=("$OUT/raw/$1.$rt.json")
    parts=("$OUT/raw/$1.$rt".*.json)
    [ -f "${parts[0]}" ] || continue
    # One result of all the parts' times, its statistics computed again.
    jq -s '[.[].results[0]] as $r | [$r[].times[]] as $t | ($t | length) as $n
      | ($t | add / $n) as $m | ($t | sort) as $s
      | {results: [{command: $r[0].command, times: $t, mean: $m, min: $s[0], max: $s[-1],
          median: (if $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end),
          stddev: (if $n > 1 then ([$t[] | (. - $m) * (. - $m)] | add / ($n - 1) | sqrt) else 0 end)}]}' \
      "${parts[@]}" >"$OUT/raw/$1.$rt.json"
    f+=("$OUT/raw/$1.$rt.json")
  done
  [ ${#f[@]} -gt 0 ] && jq -s '{results: [.[].results[]]}' "${f[@]}" >"$OUT/$1.json"
  return 0
}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }
T60() { timeout --foreground -k 5 60 "$@"; }

# --- scenarios ---------------------------------------------------------------------
for rt in "${ACTIVE[@]}"; do
  mkbundle true "$rt" true >/dev/null
  mkbundle sleep "$rt" sleep >/dev/null
done
S() { printf '%s' "$TMP/state/$1"; }             # --root of a runtime
BT() { printf '%s' "$TMP/b/$1-true"; }           # /bin/true bundle
BS() { printf '%s' "$TMP/b/$1-sleep"; }          # sleep 1000 bundle

if want run; then
  scenario run "run /bin/true" "run"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf run "$rt" "$RUNS" "$WARMUP" "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-run)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-run)" \
      "$(q "$b" --root "$(S "$rt")" run -b "$(BT "$rt")" bench-run)"
  done
  merge run
fi

# The bench user and what it needs, all under $RL: its own copy of the rootfs, a copy of rrun
# (and of runc/crun/hyperfine/helper.sh when the user cannot run them where they are), a
# `spec --rootless` bundle made as the user, a tmpfs (like /run/user/UID) as XDG_RUNTIME_DIR
# holding each runtime's --root. Sets RL_AS (the command prefix that runs as the user),
# RL_BIN[rt], RL_HF; on failure RL_ERR.
declare -A RL_BIN=()
RL_AS=() RL_HF='' RL_ERR='' RL_INFO=''
rl_do() { # CMD...: run it; on failure set RL_ERR and fail (set -e is off in rl_setup)
  local out
  out=$("$@" 2>&1) && return 0
  RL_ERR="'$*' failed: $(tr '\n' ' ' <<<"$out" | cut -c1-200)"
  return 1
}
rl_setup() {
  local rt src spec=
  RL=$TMP/rootless
  rl_do chmod 0711 "$TMP" || return 1
  rl_do mkdir -m 0755 "$RL" "$RL/bin" "$RL/out" "$RL/bundle" || return 1
  rl_do mkdir -m 0700 "$RL/home" "$RL/run" || return 1
  rl_etc_save || { RL_ERR="could not save the account files"; return 1; }
  RL_USER=rrun-bench-$$
  if ! useradd --no-create-home --home-dir "$RL/home" --shell /usr/sbin/nologin --user-group \
      --no-log-init -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$RL_USER" >"$TMP/rl-useradd.log" 2>&1; then
    RL_ERR="useradd $RL_USER failed: $(tr '\n' ' ' <"$TMP/rl-useradd.log")"
    return 1
  fi
  if ! RL_UID=$(id -u "$RL_USER") || ! RL_GID=$(id -g "$RL_USER"); then
    RL_ERR="no uid/gid for $RL_USER"
    return 1
  fi
  RL_INFO="$RL_USER, uid $RL_UID, gid $RL_GID"
  say "rootless: user $RL_INFO"
  rl_do mount -t tmpfs -o "mode=0700,uid=$RL_UID,gid=$RL_GID,size=256m" rrun-bench-rootless "$RL/run" || return 1
  rl_do chown "$RL_UID:$RL_GID" "$RL/home" "$RL/out" "$RL/bundle" || return 1
  rl_do cp -a "$ROOTFS" "$RL/rootfs" || return 1
  rl_do chown -R "$RL_UID:$RL_GID" "$RL/rootfs" || return 1
  RL_AS=(setpriv --reuid="$RL_UID" --regid="$RL_GID" --clear-groups --inh-caps=-all
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin HOME="$RL/home"
    XDG_RUNTIME_DIR="$RL/run" USER="$RL_USER" LOGNAME="$RL_USER")
  [ "$("${RL_AS[@]}" id -u):$("${RL_AS[@]}" id -g):$("${RL_AS[@]}" id -G)" = "$RL_UID:$RL_GID:$RL_GID" ] ||
    { RL_ERR="setpriv did not switch to $RL_USER"; return 1; }
  "${RL_AS[@]}" test -x "$RL/rootfs/bin/busybox" ||
    { RL_ERR="user $RL_USER cannot reach $RL/rootfs (a parent dir of $TMP not searchable?)"; return 1; }
  rl_do install -m 0755 "$HELPER" "$RL/bin/helper.sh" || return 1
  RL_HF=$HF_BIN
  if ! "${RL_AS[@]}" test -x "$RL_HF"; then
    rl_do install -m 0755 "$HF_BIN" "$RL/bin/hyperfine" || return 1
    RL_HF=$RL/bin/hyperfine
  fi
  for rt in "${ACTIVE[@]}"; do
    src=${BINPATH[$rt]}
    if [ "$rt" = rrun ] || ! "${RL_AS[@]}" test -x "$src"; then
      rl_do install -m 0755 "$src" "$RL/bin/$rt" || return 1
      RL_BIN[$rt]=$RL/bin/$rt
    else
      RL_BIN[$rt]=$src
    fi
  done
  for rt in rrun runc; do
    [ -n "${RL_BIN[$rt]:-}" ] && { spec=${RL_BIN[$rt]}; break; }
  done
  [ -n "$spec" ] || { RL_ERR="neither rrun nor runc is active: nothing to run 'spec --rootless'"; return 1; }
  if ! (cd "$RL/bundle" && "${RL_AS[@]}" "$spec" spec --rootless) >"$TMP/rl-spec.log" 2>&1; then
    RL_ERR="'$spec spec --rootless' as $RL_USER failed: $(tr '\n' ' ' <"$TMP/rl-spec.log")"
    return 1
  fi
  if ! jq --arg root "$RL/rootfs" '
      .process.args = ["/bin/true"]
    | .process.terminal = false
    | .root.path = $root
    | .root.readonly = true' "$RL/bundle/config.json" >"$TMP/rl-config.json" ||
    ! cat "$TMP/rl-config.json" >"$RL/bundle/config.json"; then
    RL_ERR="could not edit $RL/bundle/config.json"
    return 1
  fi
  [ "$(jq -c '[.linux.uidMappings, .linux.gidMappings]' "$RL/bundle/config.json")" = \
    "[[{\"containerID\":0,\"hostID\":$RL_UID,\"size\":1}],[{\"containerID\":0,\"hostID\":$RL_GID,\"size\":1}]]" ] ||
    { RL_ERR="spec --rootless did not map the user's own ids: $(jq -c '.linux.uidMappings' "$RL/bundle/config.json")"; return 1; }
  return 0
}

if want rootless; then
  scenario rootless "rootless run /bin/true" "rootless run"
  if ! rl_setup; then
    warn "FAILED: scenario rootless: $RL_ERR"
    for rt in "${ACTIVE[@]}"; do
      printf 'rootless\t%s\tfailed\t%s\n' "$rt" "$RL_ERR" >>"$OUT/failures.tsv"
    done
  else
    for rt in "${ACTIVE[@]}"; do
      b=${RL_BIN[$rt]}
      root=$RL/run/$rt
      "${RL_AS[@]}" mkdir -p -m 0700 "$root"
      # One plain run first: a runtime that cannot run rootless here is reported with its error.
      set +e
      err=$(timeout -k 5 30 "${RL_AS[@]}" "$b" --root "$root" run -b "$RL/bundle" bench-rootless-smoke \
        </dev/null 2>&1 >/dev/null)
      src=$?
      set -e
      timeout -k 5 30 "${RL_AS[@]}" "$b" --root "$root" delete --force bench-rootless-smoke \
        </dev/null >/dev/null 2>&1 || true
      if [ "$src" != 0 ]; then
        why="rootless run of /bin/true as uid $RL_UID failed (exit $src): $(tail -n 2 <<<"$err" | tr '\n\t' '  ' | cut -c1-200)"
        warn "FAILED: scenario rootless, runtime $rt: $why"
        printf '%s\n' "$err" >>"$BENCH_LOG"
        printf 'rootless\t%s\tfailed\t%s\n' "$rt" "$why" >>"$OUT/failures.tsv"
        HF_FAILED[rootless.$rt]=1
        continue
      fi
      HF_AS=("${RL_AS[@]}") HF_BIN=$RL_HF HF_EXPORT=$RL/out/rootless.$rt.json
      hf rootless "$rt" "$RUNS" "$WARMUP" "$(q "$RL/bin/helper.sh" clean "$b" "$root" bench-rootless)" \
        "$(q "$RL/bin/helper.sh" clean "$b" "$root" bench-rootless)" \
        "$(q "$b" --root "$root" run -b "$RL/bundle" bench-rootless)"
      HF_AS=() HF_BIN=$(command -v hyperfine) HF_EXPORT=''
    done
  fi
  merge rootless
fi

if want lifecycle; then
  scenario lifecycle "create+start+wait+delete" "lifecycle"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf lifecycle "$rt" "$LIFECYCLE_RUNS" "$WARMUP" "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-lc)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-lc)" \
      "$(q "$HELPER" lifecycle "$b" "$(S "$rt")" "$(BT "$rt")" bench-lc)"
  done
  merge lifecycle
fi

if want create; then
  scenario create "create"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf create "$rt" "$RUNS" "$WARMUP" "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-create)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-create)" \
      "$(q "$b" --root "$(S "$rt")" create --bundle "$(BT "$rt")" bench-create)"
  done
  merge create
fi

if want start; then
  scenario start "start (of a created /bin/true)"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf start "$rt" "$RUNS" "$WARMUP" "$(q "$HELPER" prep-start "$b" "$(S "$rt")" "$(BT "$rt")" bench-start)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-start)" \
      "$(q "$b" --root "$(S "$rt")" start bench-start)"
  done
  merge start
fi

if want state; then
  scenario state "state (of a running container)"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    if ! T60 "$HELPER" start-wait "$b" "$(S "$rt")" "$(BS "$rt")" bench-state; then
      warn "FAILED: scenario state, runtime $rt: could not start the container"
      kill_strays
      printf 'state\t%s\tfailed\n' "$rt" >>"$OUT/failures.tsv"
    else
      hf state "$rt" "$RUNS" "$WARMUP" "" "" "$(q "$b" --root "$(S "$rt")" state bench-state)"
    fi
    T60 "$HELPER" clean "$b" "$(S "$rt")" bench-state
  done
  merge state
fi

if want kill; then
  scenario kill "kill KILL (of a running container)"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf kill "$rt" "$RUNS" "$WARMUP" "$(q "$HELPER" prep-kill "$b" "$(S "$rt")" "$(BS "$rt")" bench-kill)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-kill)" \
      "$(q "$b" --root "$(S "$rt")" kill bench-kill KILL)"
  done
  merge kill
fi

if want delete; then
  scenario delete "delete (of a stopped container)"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    hf delete "$rt" "$RUNS" "$WARMUP" "$(q "$HELPER" prep-delete "$b" "$(S "$rt")" "$(BT "$rt")" bench-delete)" \
      "$(q "$HELPER" clean "$b" "$(S "$rt")" bench-delete)" \
      "$(q "$b" --root "$(S "$rt")" delete bench-delete)"
  done
  merge delete
fi

if want exec; then
  scenario exec "exec /bin/true (into a running container)" "exec"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    if ! T60 "$HELPER" start-wait "$b" "$(S "$rt")" "$(BS "$rt")" bench-exec; then
      warn "FAILED: scenario exec, runtime $rt: could not start the container"
      kill_strays
      printf 'exec\t%s\tfailed\n' "$rt" >>"$OUT/failures.tsv"
    else
      hf exec "$rt" "$RUNS" "$WARMUP" "" "" "$(q "$b" --root "$(S "$rt")" exec bench-exec /bin/true)"
    fi
    T60 "$HELPER" clean "$b" "$(S "$rt")" bench-exec
  done
  merge exec
fi

if want par; then
  scenario par "${PAR_N}x run -d in parallel (sleep)" "${PAR_N}x run -d"
  for rt in "${ACTIVE[@]}"; do mkbundles sleep "$rt" p "$PAR_N"; done
  # Rounds with the runtimes interleaved: this host's speed drifts over minutes, and a slow
  # spell then falls on every runtime alike instead of on whichever ran then.
  rounds=$(( PAR_ROUNDS < 1 ? 1 : (PAR_ROUNDS > PAR_RUNS ? PAR_RUNS : PAR_ROUNDS) ))
  for ((r = 1; r <= rounds; r++)); do
    for rt in "${ACTIVE[@]}"; do
      [ -z "${HF_FAILED[par.$rt]:-}" ] || continue
      b=${BINPATH[$rt]}
      # Runs of this round: PAR_RUNS spread over the rounds, the first ones taking the rest.
      n=$(( PAR_RUNS / rounds + (r <= PAR_RUNS % rounds ? 1 : 0) ))
      HF_PART=r$r hf par "$rt" "$n" 1 "$(q "$HELPER" par-prepare "$b" "$(S "$rt")" bench-p "$PAR_N")" \
        "$(q "$HELPER" par-clean "$b" "$(S "$rt")" bench-p "$PAR_N")" \
        "$(q "$HELPER" par-run "$b" "$(S "$rt")" "$TMP/b/$rt-p" bench-p "$PAR_N")"
    done
  done
  merge par
fi

if want many; then
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    mkbundles sleep "$rt" m "$MANY_N"
    say "$rt: starting $MANY_N sleep containers ($MANY_P at a time)"
    t=$EPOCHREALTIME
    if ! timeout --foreground -k 10 "$HF_TIMEOUT" \
        "$HELPER" many-run "$b" "$(S "$rt")" "$TMP/b/$rt-m" bench-m "$MANY_N" "$MANY_P"; then
      kill_strays
      warn "FAILED: $rt could not start $MANY_N containers"
      printf 'list%s\t%s\tfailed\nstate%s\t%s\tfailed\n' "$MANY_N" "$rt" "$MANY_N" "$rt" >>"$OUT/failures.tsv"
    else
      say "$rt: $MANY_N containers up in $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')s"
      hf "list$MANY_N" "$rt" "$MANY_RUNS" 2 "" "" "$(q "$b" --root "$(S "$rt")" list)"
      hf "state$MANY_N" "$rt" "$MANY_RUNS" 2 "" "" "$(q "$b" --root "$(S "$rt")" state "bench-m$(( (MANY_N + 1) / 2 ))")"
    fi
    say "$rt: deleting the $MANY_N containers"
    t=$EPOCHREALTIME
    timeout --foreground -k 10 "$HF_TIMEOUT" \
      "$HELPER" par-clean "$b" "$(S "$rt")" bench-m "$MANY_N" "$MANY_P" || kill_strays
    say "$rt: deleted in $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')s"
    rm -rf "$TMP/b/$rt-m"*
  done
  scenario "list$MANY_N" "list ($MANY_N containers)" "list ($MANY_N)"
  scenario "state$MANY_N" "state ($MANY_N containers)" "state ($MANY_N)"
  merge "list$MANY_N"
  merge "state$MANY_N"
fi

if want rss; then
  say "peak RSS (/usr/bin/time -f %M, $RSS_SAMPLES samples)"
  : >"$OUT/rss.tsv"
  for rt in "${ACTIVE[@]}"; do
    b=${BINPATH[$rt]}
    for op in create run; do
      samples=()
      for ((i = 0; i < RSS_SAMPLES; i++)); do
        T60 "$HELPER" clean "$b" "$(S "$rt")" bench-rss
        if [ "$op" = create ]; then
          cmd=("$b" --root "$(S "$rt")" create --bundle "$(BT "$rt")" bench-rss)
        else
          cmd=("$b" --root "$(S "$rt")" run -b "$(BT "$rt")" bench-rss)
        fi
        if T60 /usr/bin/time -f %M -o "$TMP/rss" "${cmd[@]}" </dev/null >/dev/null 2>>"$BENCH_LOG"; then
          samples+=("$(tail -n 1 "$TMP/rss")")
        else
          warn "rss: $rt $op failed"
        fi
      done
      T60 "$HELPER" clean "$b" "$(S "$rt")" bench-rss
      printf '%s\t%s\t%s\n' "$rt" "$op" "$(IFS=,; echo "${samples[*]}")" >>"$OUT/rss.tsv"
    done
  done
fi

if want size; then
  : >"$OUT/size.tsv"
  for rt in "${ACTIVE[@]}"; do
    p=$(readlink -f "${BINPATH[$rt]}")
    sz=$(stat -L -c %s "$p")
    if [ "$(head -c 4 "$p" | od -An -c | tr -d ' ')" != '177ELF' ]; then
      link="not an ELF file"
    elif ldd "$p" 2>/dev/null | grep -q '=>'; then
      libs=$(ldd "$p" | awk '/=>/ {sub(/\.so.*/, "", $1); print $1}' | paste -sd, -)
      link="dynamic (${libs})"
    else
      link=static
    fi
    printf '%s\t%s\t%s\t%s\n' "$rt" "$p" "$sz" "$link" >>"$OUT/size.tsv"
  done
fi

# --- report ------------------------------------------------------------------------
{
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpus\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
  printf 'cgroups\t%s\n' "$CGMODE"
  printf 'hyperfine\t%s\n' "$(hyperfine --version)"
  printf 'runs\t%s\n' "RUNS=$RUNS WARMUP=$WARMUP PAR_N=$PAR_N PAR_RUNS=$PAR_RUNS PAR_ROUNDS=$PAR_ROUNDS MANY_N=$MANY_N MANY_RUNS=$MANY_RUNS MANY_P=$MANY_P RSS_SAMPLES=$RSS_SAMPLES"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'elapsed\t%s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}')"
  printf 'load\t%s\n' "start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'baseline\t%s\n' "$BASELINE"
  printf 'quick\t%s\n' "${BENCH_QUICK:-0}"
  [ -z "$RL_INFO" ] || printf 'rootless\t%s\n' "$RL_INFO"
} >"$OUT/meta.tsv"
python3 "$HERE/report.py" "$OUT" "$RESULTS" "$CHART"
say "wrote $RESULTS, $CHART and hyperfine JSON under $OUT/"
