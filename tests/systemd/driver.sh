# shellcheck shell=bash
# rrun's own systemd cgroup driver tests, run in the systemd guest (tests/systemd/guest.sh).
#
# Each test is a function t_<name>: guest.sh runs it in its own bash after sourcing helpers.sh
# (rr, mkbundle, unit_prop, unit_loaded, scopes, cgroup_of, wait_for, expect; RRUN, IS_RRUN,
# BUNDLE_ROOTFS, BUNDLE_CONFIG, RRUN_ROOT, WORK) and this file, and prints "PASS <name>", or
# "FAIL <name>: <reason>" when it returns non-zero (the reason: its last line of output).

# The guest's PID 1 is systemd, and cgroup2 alone is mounted at /sys/fs/cgroup.
t_systemd_is_pid1() {
	expect "/proc/1/comm" systemd "$(cat /proc/1/comm)" || return 1
	expect "/sys/fs/cgroup" cgroup2 "$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)" || return 1
}
