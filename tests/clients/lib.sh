# Helpers for the client tests (sourced by run.sh).
# Every assertion prints one PASS:/FAIL: line; run.sh ends with "N passed, M failed".

PASSED=0
FAILED=0
SKIPPED=0
FAILS=()

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS: $SECTION: $1"
}

fail() {
  FAILED=$((FAILED + 1))
  FAILS+=("$SECTION: $1")
  echo "FAIL: $SECTION: $1"
  [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 15 | sed 's/^/      | /'
  return 0
}

skip() {
  SKIPPED=$((SKIPPED + 1))
  echo "SKIP: $SECTION: $1"
}

# run CMD...: runs CMD with stdin from /dev/null, its output (stdout+stderr) in $OUT, status in $RC.
run() {
  OUT=$("$@" </dev/null 2>&1)
  RC=$?
}

# step NAME WANT_RC ERE CMD...: runs CMD, asserts its exit status (WANT_RC, or "any")
# and that its output matches the extended regex ERE (empty: no output check).
step() {
  local name=$1 want=$2 pat=$3
  shift 3
  run "$@"
  check "$name" "$want" "$pat"
}

# check NAME WANT_RC ERE: the same assertion on the last $OUT/$RC.
check() {
  local name=$1 want=$2 pat=$3
  if { [ "$want" = any ] || [ "$RC" = "$want" ]; } && { [ -z "$pat" ] || grep -qE -- "$pat" <<<"$OUT"; }; then
    pass "$name"
    return 0
  fi
  fail "$name (exit $RC, want $want${pat:+; output should match /$pat/})" "$OUT"
  return 1
}

# has NAME ERE: asserts that the last $OUT matches ERE.
has() {
  if grep -qE -- "$2" <<<"$OUT"; then pass "$1"; else fail "$1 (output should match /$2/)" "$OUT"; fi
}

# hasnt NAME ERE: asserts that the last $OUT does not match ERE.
hasnt() {
  if grep -qE -- "$2" <<<"$OUT"; then fail "$1 (output should not match /$2/)" "$OUT"; else pass "$1"; fi
}

# eq NAME WANT GOT
eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (want '$2', got '$3')"; fi
}

# wait_for SECONDS CMD...: retries CMD every 0.2s until it succeeds.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  while ! "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

# gone PID: the process has exited (a zombie child counts as exited).
gone() {
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# wait_daemon PID SECONDS CMD...: wait_for CMD, giving up as soon as the daemon PID is gone.
wait_daemon() {
  local pid=$1 end=$((SECONDS + $2))
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    { [ $SECONDS -ge $end ] || gone "$pid"; } && return 1
    sleep 0.2
  done
}

# http URL: the body, or an error (curl exit status) after 5 seconds.
http() {
  curl -sS --max-time 5 "$1"
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_pid NAME PID: SIGTERM, up to 30s, then SIGKILL; never anything but this pid.
stop_pid() {
  local name=$1 pid=$2 _i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    # a zombie child of ours: reap it
    wait "$pid" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "  $name (pid $pid) ignored SIGTERM for 30s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# The cgroup dirs below PARENT (relative to each v1 hierarchy / the v2 root) that are not PARENT
# itself: what containers left behind.
cgroup_children() {
  local parent=$1
  find /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent" -mindepth 1 -type d 2>/dev/null | sort -u
}

# Remove the cgroup tree PARENT in every hierarchy (deepest first), if it is empty of tasks.
cgroup_rmtree() {
  local parent=$1 d
  for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
}

# Remove cgroup dirs a failed test left: thaw, kill what is inside, rmdir (deepest first).
cgroup_rm_dirs() {
  local d p
  for d in $(printf '%s\n' "$@" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-); do
    [ -d "$d" ] || continue
    [ -f "$d/freezer.state" ] && echo THAWED >"$d/freezer.state" 2>/dev/null
    [ -f "$d/cgroup.freeze" ] && echo 0 >"$d/cgroup.freeze" 2>/dev/null
    for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.1
    rmdir "$d" 2>/dev/null
  done
}

# Live (non-zombie) processes that belong to the test: their root, cwd or command line is under $T.
test_processes() {
  local p pid root cmd st
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    st=$(awk '{print $3}' "$p/stat" 2>/dev/null) || continue
    [ "$st" = Z ] && continue
    root=$(readlink "$p/root" 2>/dev/null)
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
    case "$root $cmd" in
      *"$T"*) echo "$pid $cmd" ;;
    esac
  done
}

# Mount points under $T (with their fs type), deepest first.
test_mounts() {
  awk -v t="$T" '{for (i = 1; i <= NF; i++) if ($i == "-") break; if (index($5, t) == 1) print $5, $(i + 1)}' \
    /proc/self/mountinfo | sort -r
}
