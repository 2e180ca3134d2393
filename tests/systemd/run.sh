#!/usr/bin/env bash
# make test-systemd: rrun under a real systemd (PID 1, cgroup v2 only) and real engines.
#
# Boots a Debian 12 disk image (tests/systemd/image.sh: systemd, dbus, docker.io 20.10,
# docker-compose 1.29, podman 4.3, containerd 1.6, runc; cached under target/systemd-guest/,
# rebuilt when the recipe changes) under qemu-system-x86_64 (software emulation, -accel tcg) on a
# throwaway qcow2 overlay, with a second disk (the payload: the runtime, the test scripts, a
# busybox bundle rootfs and image archive). The guest's rrun-tests.service runs
# tests/systemd/guest.sh, which prints "PASS name" / "FAIL name: reason" lines, section timings
# and "RESULT: N passed, M failed" on the serial console, then powers off. This script prints
# the guest's output, the timings, ends with "N passed, M failed" and exits 0 only if every test
# passed (a timeout or a missing RESULT line is a failure).
#
# Sections (guest.sh): driver (tests/systemd/driver.sh, rrun's own systemd-driver tests),
# docker-systemd podman-systemd containerd-systemd (the engines with the systemd cgroup driver),
# docker-cgroupfs podman-cgroupfs containerd-cgroupfs (the engines with the cgroupfs driver).
#
# Environment:
#   RRUN_BIN          static rrun to test (default: `make build`, then target/$TARGET/release/rrun)
#   RUNTIME           a runtime path inside the guest to test instead of rrun (RUNTIME=/usr/sbin/runc:
#                     the guest's runc, the reference)
#   SYSTEMD_SECTIONS  sections to run (default: all); also "systemd", "cgroupfs" (the three
#                     engines with that driver) and "docker", "podman", "containerd" (both drivers)
#   QEMU_TIMEOUT      seconds the guest may run (default 900; a run takes ~5 minutes)
#   KEEP_TMP=1        keep the temporary directory (console log, payload disk, the guest's logs)
#
# The host is changed by nothing but installed packages (qemu-system-x86, qemu-utils,
# e2fsprogs, debootstrap, busybox-static) and the cached image under target/systemd-guest/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TARGET=${TARGET:-x86_64-unknown-linux-gnu}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-900}
RUNTIME=${RUNTIME:-}
SYSTEMD_SECTIONS=${SYSTEMD_SECTIONS:-all}
export DEBIAN_FRONTEND=noninteractive

log() { echo "test-systemd: $*" >&2; }
fail() {
	log "$*"
	echo "0 passed, 1 failed"
	exit 1
}

tmp=$(mktemp -d -p /tmp --suffix=.rrun-systemd)
qemu_pid=
watchdog_pid=
cleanup() {
	# Only the processes this script started, by their pid.
	if [ -n "$watchdog_pid" ] && kill -0 "$watchdog_pid" 2>/dev/null; then
		kill "$watchdog_pid" 2>/dev/null || true
	fi
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		sleep 2
		kill -KILL "$qemu_pid" 2>/dev/null || true
	fi
	if [ "${KEEP_TMP:-}" = 1 ]; then
		log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Host dependencies ------------------------------------------------------------------------
# shellcheck source=scripts/apt.sh
. "$repo/scripts/apt.sh"
APT_LOG=$tmp/apt.log
export APT_LOG
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null 2>&1 && command -v debugfs >/dev/null 2>&1 || need+=(e2fsprogs)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# tests/cri/mkimages.sh builds a static pause binary.
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
apt_install --no-install-recommends busybox-static "${need[@]}" || fail "installing busybox-static ${need[*]} failed"

# --- The image (cached) -------------------------------------------------------------------------
build_start=$(date +%s)
image=$(bash "$here/image.sh" "$repo/target/systemd-guest") || fail "building the guest image failed"
image_secs=$(($(date +%s) - build_start))
for f in base.img vmlinuz initrd.img; do
	[ -s "$image/$f" ] || fail "no $f in $image"
done

# --- The runtime ---------------------------------------------------------------------------------
rrun=${RRUN_BIN:-}
if [ -z "$rrun" ]; then
	log "make build"
	make -C "$repo" --no-print-directory build >&2 || fail "make build failed"
	rrun=$repo/target/$TARGET/release/rrun
fi
if [ -n "$RUNTIME" ]; then
	log "runtime under test: $RUNTIME (inside the guest)"
	[ -x "$rrun" ] || rrun=
else
	[ -x "$rrun" ] || fail "no rrun binary at $rrun"
fi
if [ -n "$rrun" ] && LC_ALL=C readelf -l "$rrun" 2>/dev/null | grep -q 'program interpreter'; then
	fail "$rrun is dynamically linked; the guest needs a static one (RUSTFLAGS='-C target-feature=+crt-static', as make build does)"
fi

# --- The payload disk ------------------------------------------------------------------------
p=$tmp/payload
mkdir -p "$p/tests" "$p/bundle" "$p/logs"
# Every script of tests/systemd but the host's (guest.sh, engines.sh, helpers.sh, driver.sh...).
for f in "$here"/*.sh; do
	case ${f##*/} in run.sh | image.sh) ;; *) install -m 0644 "$f" "$p/tests/" ;; esac
done
# The assertions of the client tests (step, check, has, eq, wait_for...).
install -m 0644 "$repo/tests/clients/lib.sh" "$p/tests/lib.sh"
[ -n "$rrun" ] && install -m 0755 "$rrun" "$p/rrun"
"$repo/scripts/mkrootfs.sh" "$p/rootfs" >&2 || fail "scripts/mkrootfs.sh failed"
install -m 0644 "$repo/bundles/busybox/config.json" "$p/bundle/config.json"
bash "$repo/tests/clients/mkimage.sh" "$p/rootfs" "$p/busybox.tar" docker.io/library/rrun-busybox:latest ||
	fail "tests/clients/mkimage.sh failed"
# make test-cri's harness and the images it imports (cri-systemd), made here: the guest has
# neither gcc nor busybox-static.
mkdir -p "$p/repo/tests" "$p/repo/scripts"
cp -a "$repo/tests/cri" "$repo/tests/clients" "$p/repo/tests/"
install -m 0644 "$repo/scripts/apt.sh" "$p/repo/scripts/apt.sh"
bash "$repo/tests/cri/mkimages.sh" "$p/cri-images" >&2 || fail "tests/cri/mkimages.sh failed"
{
	printf 'RUNTIME=%q\n' "$RUNTIME"
	printf 'SYSTEMD_SECTIONS=%q\n' "$SYSTEMD_SECTIONS"
	printf 'BENCH_ROUNDS=%q\n' "${BENCH_ROUNDS:-15}"
} >"$p/env"
psize=$(($(du -s -B1M "$p" | cut -f1) + 128))
mkfs.ext4 -q -F -L rrun-payload -d "$p" "$tmp/payload.img" "${psize}M" >"$tmp/mkfs.log" 2>&1 ||
	{ cat "$tmp/mkfs.log" >&2; fail "mkfs.ext4 -d (payload) failed"; }
qemu-img create -q -f qcow2 -b "$image/base.img" -F raw "$tmp/root.qcow2" ||
	fail "qemu-img create (the overlay on $image/base.img) failed"

# --- Boot ------------------------------------------------------------------------------------
append="root=/dev/vda rw rootfstype=ext4 console=ttyS0 quiet loglevel=3 panic=-1"
append+=" systemd.unified_cgroup_hierarchy=1 systemd.show_status=0 mitigations=off"
log "booting the guest (qemu tcg, timeout ${QEMU_TIMEOUT}s; image $(basename "$image"), kernel $(cat "$image/kernel-version" 2>/dev/null))"
: >"$tmp/console.raw"
t0=$EPOCHREALTIME
qemu-system-x86_64 \
	-accel tcg -cpu max -smp 2 -m 3072 \
	-nodefaults -no-user-config -display none -no-reboot \
	-serial stdio \
	-kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$append" \
	-drive "file=$tmp/root.qcow2,format=qcow2,if=virtio,cache=unsafe" \
	-drive "file=$tmp/payload.img,format=raw,if=virtio,cache=unsafe" \
	</dev/null >"$tmp/console.raw" 2>"$tmp/qemu.err" &
qemu_pid=$!
# The watchdog: the guest has QEMU_TIMEOUT seconds.
(
	end=$((SECONDS + QEMU_TIMEOUT))
	while kill -0 "$qemu_pid" 2>/dev/null; do
		if [ $SECONDS -ge "$end" ]; then
			echo timeout >"$tmp/timed-out"
			kill -TERM "$qemu_pid" 2>/dev/null
			sleep 5
			kill -KILL "$qemu_pid" 2>/dev/null
			exit 0
		fi
		sleep 1
	done
) &
watchdog_pid=$!

# The console as it comes (CR stripped); the time the runner started is the boot time.
boot_secs=
while IFS= read -r line; do
	line=${line%$'\r'}
	printf '%s\n' "$line"
	printf '%s\n' "$line" >>"$tmp/console.log"
	if [ -z "$boot_secs" ] && [[ $line == "guest: runner start"* ]]; then
		boot_secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	fi
done < <(tail -n +1 -F --pid="$qemu_pid" "$tmp/console.raw" 2>/dev/null)
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
guest_secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
kill "$watchdog_pid" 2>/dev/null || true
wait "$watchdog_pid" 2>/dev/null || true
watchdog_pid=
touch "$tmp/console.log"
log "guest ran ${guest_secs}s, qemu exit status $qemu_rc"
[ -s "$tmp/qemu.err" ] && sed 's/^/qemu: /' "$tmp/qemu.err" >&2
if [ "${KEEP_TMP:-}" = 1 ]; then
	# The guest's logs (daemon logs, runtime command lines) from the payload disk.
	debugfs -R "rdump /logs $tmp" "$tmp/payload.img" >/dev/null 2>&1 &&
		log "the guest's logs: $tmp/logs"
fi

# --- Verdict ---------------------------------------------------------------------------------
npass=$(grep -c '^PASS ' "$tmp/console.log" || true)
nfail=$(grep -c '^FAIL ' "$tmp/console.log" || true)
result=$(grep -E '^RESULT: [0-9]+ passed, [0-9]+ failed$' "$tmp/console.log" | tail -n 1 || true)
echo
echo "=== systemd guest: timings ==="
echo "image: ${image_secs}s (build or cache look-up)"
echo "boot: ${boot_secs:-?}s (qemu start to the runner's start)"
sed -nE 's/^TIME (.*)$/\1/p' "$tmp/console.log"
echo "guest total: ${guest_secs}s"
echo
echo "=== systemd guest: tests ==="
grep -E '^(PASS|FAIL) ' "$tmp/console.log" || true
problems=()
if [ -e "$tmp/timed-out" ]; then
	problems+=("the guest did not finish within ${QEMU_TIMEOUT}s")
fi
if [ -z "$result" ]; then
	problems+=("no RESULT line on the console (the guest crashed or hung)")
else
	rp=$(echo "$result" | sed -E 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed$/\1/')
	rf=$(echo "$result" | sed -E 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed$/\2/')
	if [ "$rp" != "$npass" ] || [ "$rf" != "$nfail" ]; then
		problems+=("the guest says '$result' but the console shows $npass PASS and $nfail FAIL lines")
	fi
fi
if [ $((npass + nfail)) -eq 0 ]; then
	problems+=("no test ran")
fi
for pr in "${problems[@]}"; do log "$pr"; done
if [ ${#problems[@]} -gt 0 ] && [ "$nfail" -eq 0 ]; then
	nfail=1
fi
echo "$npass passed, $nfail failed"
[ ${#problems[@]} -eq 0 ] && [ "$nfail" -eq 0 ]
