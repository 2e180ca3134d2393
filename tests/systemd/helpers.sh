# shellcheck shell=bash
# Helpers for tests/systemd/driver.sh, sourced before it in the guest (each t_<name> runs in its
# own bash, with `set -u` off and no `set -e`: a test says why it failed and returns non-zero).
#
# Set by guest.sh:
#   RRUN            the runtime under test (rrun, or RUNTIME=/usr/sbin/runc)
#   IS_RRUN         1 for rrun, 0 for another runtime
#   BUNDLE_ROOTFS   a busybox rootfs (scripts/mkrootfs.sh)
#   BUNDLE_CONFIG   bundles/busybox/config.json of the repo
#   RRUN_ROOT       a state root for the driver tests (--root)
#   WORK            a fresh empty directory for this test
#
# Unit names may start with "-" (runc names an empty prefix's unit -<name>.scope): give them
# to systemctl after "--", as these helpers do.
#
# Ids and unit names: a test named t_foo should use container ids starting with "foo" and
# cgroupsPath "system.slice:rrun:<id>" (unit rrun-<id>.scope) or a slice of its own.

# rr ARGS...: the runtime with the driver tests' root and the systemd driver, never hanging.
rr() { timeout "${RR_TIMEOUT:-60}" "$RRUN" --root "$RRUN_ROOT" --systemd-cgroup "$@"; }

# rr_fs ARGS...: the same with the cgroupfs driver.
rr_fs() { timeout "${RR_TIMEOUT:-60}" "$RRUN" --root "$RRUN_ROOT" "$@"; }

# mkbundle DIR CGROUPSPATH [ARG...]: DIR/config.json from BUNDLE_CONFIG with root.path
# BUNDLE_ROOTFS (read-only), terminal false, process.args ARG... (default: sleep 1000) and
# linux.cgroupsPath CGROUPSPATH. RESOURCES (a LinuxResources JSON object) becomes
# linux.resources when set; EDIT (python code on `spec`) is run last when set.
mkbundle() {
	local dir=$1 cgpath=$2
	shift 2
	mkdir -p "$dir"
	python3 - "$BUNDLE_CONFIG" "$dir/config.json" "$BUNDLE_ROOTFS" "$cgpath" "$@" <<'PY'
import json, os, sys
src, dst, rootfs, cgpath, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
with open(src) as f:
    spec = json.load(f)
spec["root"] = {"path": rootfs, "readonly": True}
spec["process"]["terminal"] = False
spec["process"]["args"] = args or ["sleep", "1000"]
spec["linux"]["cgroupsPath"] = cgpath
if os.environ.get("RESOURCES"):
    spec["linux"]["resources"] = json.loads(os.environ["RESOURCES"])
if os.environ.get("EDIT"):
    exec(os.environ["EDIT"])
with open(dst, "w") as f:
    json.dump(spec, f, indent=1)
PY
}

# unit_prop UNIT PROPERTY: the unit's property as systemd has it (systemctl show --value).
unit_prop() { systemctl show -p "$2" --value -- "$1" 2>/dev/null; }

# unit_loaded UNIT: systemd knows the unit (any state: active, failed, ...).
unit_loaded() { [ -n "$(systemctl list-units --all --plain --no-legend -- "$1" 2>/dev/null)" ]; }

# scopes PATTERN: the scope units whose name matches the glob PATTERN (e.g. 'rrun-*').
scopes() { systemctl list-units --all --plain --no-legend --type=scope -- "$1" 2>/dev/null | awk '{ print $1 }'; }

# cgroup_of PID: the process's cgroup v2 path (/system.slice/rrun-x.scope).
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }

# cg_read PATH FILE: a file of a cgroup (PATH as cgroup_of prints it).
cg_read() { cat "/sys/fs/cgroup$1/$2" 2>&1; }

# wait_for SECONDS CMD...: retries CMD every 0.2s until it succeeds; 1 if it never did.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
}

# expect WHAT WANT GOT: 0 if equal, else says so and returns 1 (use: expect ... || return 1).
expect() {
	[ "$2" = "$3" ] && return 0
	echo "$1: want '$2', got '$3'"
	return 1
}
