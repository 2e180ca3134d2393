#!/usr/bin/env bash
# Prove scripts/apt.sh both ways on this machine (issue 14): with and without the backports
# source listed, starting each time from the image's state (qemu-utils from backports, none of
# the qemu-system packages the cgroup v2 tests install).
#
#   bash scripts/check-installers.sh
#
# Root; changes installed packages (that is the point) and leaves qemu-system-x86 installed, as
# the tests would. The sources file it adds for the second case is removed at the end (trap).
# Prints PASS/FAIL lines and "N passed, M failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "check-installers needs root"; exit 2; }
export DEBIAN_FRONTEND=noninteractive
. "$here/apt.sh"
codename=$(apt_codename)
suite=$codename-backports
extra=/etc/apt/sources.list.d/rrun-check-backports.sources
family=(qemu-system-x86 qemu-system-common qemu-system-data qemu-system-gui qemu-block-extra)
npass=0 nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null; }
cleanup() {
	if [ -e "$extra" ]; then
		rm -f "$extra"
		apt-get update -qq >/dev/null 2>&1
	fi
}
trap cleanup EXIT

# The image's state: qemu-utils from backports, no qemu-system.
image_state() {
	local present=() p
	for p in "${family[@]}"; do apt_installed "$p" && present+=("$p"); done
	if [ ${#present[@]} -gt 0 ]; then
		apt-get purge -y -qq "${present[@]}" >/dev/null 2>&1 || { fail "purge ${present[*]}"; return 1; }
	fi
	case $(version qemu-utils) in
	*~bpo*) ;;
	*)
		# Back to the image's backported qemu-utils, through apt.sh's private backports source.
		APT_PRIVATE=()
		apt_has_suite "$suite" || apt_private_backports "$suite" || return 1
		apt-get "${APT_PRIVATE[@]}" install -y -qq -t "$suite" qemu-utils >/dev/null 2>&1 ||
			{ fail "reinstall qemu-utils from $suite"; return 1; }
		APT_PRIVATE=()
		;;
	esac
	echo "image state: qemu-utils $(version qemu-utils), qemu-system-x86 $(version qemu-system-x86 || true)"
}

check_install() { # CASE
	local case=$1 before
	before=$(version qemu-utils)
	APT_SH_UPDATED=
	if (apt_install --no-install-recommends qemu-system-x86); then
		pass "$case: apt_install qemu-system-x86"
	else
		fail "$case: apt_install qemu-system-x86"
		return
	fi
	if qemu-system-x86_64 --version >/dev/null 2>&1; then
		pass "$case: qemu-system-x86_64 runs ($(qemu-system-x86_64 --version | head -n 1))"
	else
		fail "$case: qemu-system-x86_64 does not run"
	fi
	if [ "$(version qemu-utils)" = "$before" ]; then
		pass "$case: qemu-utils kept at $before"
	else
		fail "$case: qemu-utils changed from $before to '$(version qemu-utils)'"
	fi
}

apt-get update -qq >/dev/null 2>&1 || { echo "apt-get update failed"; exit 1; }

# 1. Without the backports source (the image as shipped).
if [ -n "$(grep -rlE "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null)" ]; then
	echo "note: $suite is listed by this machine's own sources: the first case runs with it"
fi
image_state && check_install "without $suite"

# 2. With it listed, at its default priority.
uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | sed 's/^URIs: *//')
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	"${uri:-http://deb.debian.org/debian}" "$suite" >"$extra"
apt-get update -qq >/dev/null 2>&1 || fail "apt-get update with $suite listed"
if image_state; then
	# What a plain install does here: the resolver error the issue reports.
	if apt-get -s install -y --no-install-recommends qemu-system-x86 >/dev/null 2>&1; then
		echo "note: a plain install would work here"
	else
		echo "plain 'apt-get install qemu-system-x86' fails here, as reported"
	fi
	check_install "with $suite"
fi
cleanup

echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
