#!/usr/bin/env bash
# make test-cgroup2: rrun's cgroup tests on a cgroup v2 kernel.
#
# Boots Debian's linux-image-amd64 kernel under qemu-system-x86_64 (software emulation, -accel
# tcg) with an initramfs holding a static rrun, busybox, a busybox bundle rootfs and
# tests/cgroup2/{init,tests.sh}. The guest mounts cgroup2 at /sys/fs/cgroup with cpuset, cpu, io,
# memory, hugetlb and pids enabled, runs the tests, prints "PASS name" / "FAIL name: reason"
# and "RESULT: N passed, M failed" on the serial console and powers off. This script prints the
# guest's output, ends with "N passed, M failed" and exits 0 only if every test passed.
#
# The kernel package is fetched with `apt-get download` and unpacked into a temporary directory:
# nothing is installed into /boot and the host's cgroups are never touched.
#
# Environment:
#   RRUN_BIN        static rrun to test (default: `make build`, then target/$TARGET/release/rrun)
#   KERNEL          a bzImage to boot instead of the downloaded Debian kernel
#   CGROUP2_TESTS   space-separated test names to run (default: all of tests.sh)
#   QEMU_TIMEOUT    seconds the guest may run (default 300)
#   KEEP_TMP=1      keep the temporary directory (initramfs, console log) for debugging
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TARGET=${TARGET:-x86_64-unknown-linux-gnu}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-300}
export DEBIAN_FRONTEND=noninteractive

log() { echo "test-cgroup2: $*" >&2; }
fail() {
	log "$*"
	echo "0 passed, 1 failed"
	exit 1
}

tmp=$(mktemp -d -p /tmp --suffix=.rrun-cgroup2)
cleanup() {
	if [ "${KEEP_TMP:-}" = 1 ]; then
		log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# --- Host dependencies ------------------------------------------------------------------------
# scripts/apt.sh copes with backported packages on the image (qemu-utils from backports).
. "$repo/scripts/apt.sh"
APT_LOG=$tmp/apt.log
apt_update() { apt_update_once || fail "apt-get update failed"; }
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v timeout >/dev/null 2>&1 || need+=(coreutils)
apt_install --no-install-recommends busybox-static "${need[@]}" || fail "installing busybox-static ${need[*]} failed"

# --- Kernel: Debian's linux-image-amd64, unpacked (not installed) -----------------------------
kernel=${KERNEL:-}
if [ -z "$kernel" ]; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	if [ -z "$kpkg" ]; then
		apt_update
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	fi
	[ -n "$kpkg" ] || fail "apt-cache finds no kernel package behind linux-image-amd64"
	mkdir -p "$tmp/kernel"
	log "apt-get download $kpkg"
	(cd "$tmp/kernel" && apt-get download -o APT::Sandbox::User=root "$kpkg" >"$tmp/apt.log" 2>&1) ||
		{
			apt_update
			(cd "$tmp/kernel" && apt-get download -o APT::Sandbox::User=root "$kpkg" >"$tmp/apt.log" 2>&1)
		} || { cat "$tmp/apt.log" >&2; fail "apt-get download $kpkg failed"; }
	deb=$(ls "$tmp"/kernel/*.deb)
	# Only the kernel image: everything the guest needs (virtio/8250 serial, cgroups, BPF,
	# namespaces, tmpfs, devtmpfs) is built into Debian's kernel, so no module is loaded.
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/kernel" --wildcards './boot/vmlinuz-*'
	rm -f "$deb"
	kernel=$(ls "$tmp"/kernel/boot/vmlinuz-*)
	log "kernel: $(basename "$kernel") from $(basename "$deb")"
fi
[ -f "$kernel" ] || fail "no kernel at $kernel"

# --- rrun: static --------------------------------------------------------------------------------
rrun=${RRUN_BIN:-}
if [ -z "$rrun" ]; then
	log "make build"
	make -C "$repo" --no-print-directory build >&2 || fail "make build failed"
	rrun=$repo/target/$TARGET/release/rrun
fi
[ -x "$rrun" ] || fail "no rrun binary at $rrun"
if LC_ALL=C readelf -l "$rrun" 2>/dev/null | grep -q 'program interpreter'; then
	fail "$rrun is dynamically linked; the guest needs a static one (RUSTFLAGS='-C target-feature=+crt-static', as make build does)"
fi

# --- Initramfs -----------------------------------------------------------------------------------
root=$tmp/initramfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc,tests}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
cp "$rrun" "$root/usr/bin/rrun"
install -m 0755 "$here/init" "$root/init"
install -m 0644 "$here/tests.sh" "$here/jflat.awk" "$root/tests/"
# rl: the non-root user of the rootless tests.
printf 'root:x:0:0:root:/root:/bin/sh\nrl:x:1000:1000::/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nrl:x:1000:\n' >"$root/etc/group"
"$repo/scripts/mkrootfs.sh" "$root/tests/rootfs" >&2 || fail "scripts/mkrootfs.sh failed"

# The bundle's config.json as a template: rootfs /tests/rootfs; process.args, linux.resources,
# linux.cgroupsPath and extra mounts filled in per test by tests.sh.
python3 - "$repo/bundles/busybox/config.json" "$root/tests/config.template.json" <<'PY' ||
import json, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src) as f:
    spec = json.load(f)
spec["root"] = {"path": "/tests/rootfs", "readonly": True}
spec["process"]["args"] = "@@ARGS@@"
spec["mounts"].append("@@MOUNTS@@")
spec["linux"]["resources"] = "@@RESOURCES@@"
spec["linux"]["cgroupsPath"] = "@@CGROUPSPATH@@"
text = json.dumps(spec, separators=(",", ":"))
assert ',"@@MOUNTS@@"' in text
with open(dst, "w") as f:
    f.write(text + "\n")
PY
	fail "cannot make the bundle template from bundles/busybox/config.json"
if [ -n "${CGROUP2_TESTS:-}" ]; then
	# The guest's init runs tests.sh without arguments: pin the selection in a wrapper.
	mv "$root/tests/tests.sh" "$root/tests/all-tests.sh"
	printf '#!/bin/sh\nexec sh /tests/all-tests.sh %s\n' "$CGROUP2_TESTS" >"$root/tests/tests.sh"
fi
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) >"$tmp/initramfs.cpio" ||
	fail "cpio failed"
log "initramfs: $(du -h "$tmp/initramfs.cpio" | cut -f1)"

# --- Boot ------------------------------------------------------------------------------------
log "booting the guest (qemu tcg, timeout ${QEMU_TIMEOUT}s)"
start=$(date +%s)
set +e
timeout --kill-after=10 "$QEMU_TIMEOUT" qemu-system-x86_64 \
	-accel tcg -cpu max -smp 2 -m 1024 \
	-nodefaults -no-user-config -display none -no-reboot \
	-serial stdio \
	-kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet" \
	</dev/null 2>"$tmp/qemu.err" | tr -d '\r' | tee "$tmp/console.log"
qemu_rc=${PIPESTATUS[0]}
set -e
log "guest ran $(($(date +%s) - start))s, qemu exit status $qemu_rc"
[ -s "$tmp/qemu.err" ] && sed 's/^/qemu: /' "$tmp/qemu.err" >&2

# --- Verdict ---------------------------------------------------------------------------------
npass=$(grep -c '^PASS ' "$tmp/console.log" || true)
nfail=$(grep -c '^FAIL ' "$tmp/console.log" || true)
result=$(grep -E '^RESULT: [0-9]+ passed, [0-9]+ failed$' "$tmp/console.log" | tail -n 1 || true)
echo
echo "=== cgroup v2 tests ==="
grep -E '^(PASS|FAIL) ' "$tmp/console.log" || true
problems=()
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
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
for p in "${problems[@]}"; do log "$p"; done
if [ ${#problems[@]} -gt 0 ] && [ "$nfail" -eq 0 ]; then
	nfail=1
fi
echo "$npass passed, $nfail failed"
[ ${#problems[@]} -eq 0 ] && [ "$nfail" -eq 0 ]
