#!/usr/bin/env bash
# tests/systemd/image.sh CACHE_DIR: the systemd guest's disk image (called by run.sh).
#
# Debian 12 (bookworm) with systemd as PID 1 on cgroup v2 only, dbus, Debian's kernel (with an
# initramfs that loads virtio_pci/virtio_blk, root=/dev/vda), docker.io 20.10, docker-compose
# 1.29, podman 4.3 (netavark), containerd 1.6 (runc v2 shim), runc, iproute2, iptables,
# busybox-static, procps, python3, libpam-systemd (a lingering user's systemd --user gets its
# XDG_RUNTIME_DIR: the rootless systemd-driver test). debootstrap --variant=minbase, then apt without Recommends in
# the chroot, plus apparmor: Debian's kernel enables AppArmor, and dockerd then refuses to start
# a container without apparmor_parser to load its docker-default profile (docker.io recommends
# apparmor; podman loads containers-default the same way), so the runtime applies the engines'
# profiles as on any Debian host. No engine service starts at boot (the tests start them). A
# unit, rrun-tests.service, mounts the second disk (/dev/vdb, the payload run.sh makes) on
# /payload, runs /payload/tests/guest.sh with its output on /dev/ttyS0 and powers off.
#
# The result is CACHE_DIR/<hash>/{base.img,vmlinuz,initrd.img}, <hash> the sha256 of this file:
# a change of the recipe builds a new image (older ones are removed). base.img is a raw ext4
# filesystem (no partition table) made with `mkfs.ext4 -d`: no loop or nbd device, nothing is
# mounted on the host (debootstrap and the chroot run in a private mount namespace). Prints the
# image's directory on stdout, the rest on stderr.
#
# Environment: SYSTEMD_IMAGE_REBUILD=1 builds even when the cached image exists;
# SYSTEMD_IMAGE_KEEP=1 keeps the build directory (the chroot, build.log) when the build fails
# (until the next build).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:?usage: image.sh CACHE_DIR}
SUITE=bookworm
# What the guest has beyond minbase (no Recommends).
PACKAGES=(systemd-sysv dbus libpam-systemd linux-image-amd64 initramfs-tools kmod
	docker.io docker-compose podman conmon netavark aardvark-dns containerd runc tini
	iproute2 iptables busybox-static procps python3 e2fsprogs apparmor
	crun
	containernetworking-plugins python3-grpcio python3-protobuf python3-websocket protobuf-compiler)
# Units that slow the boot or do nothing useful in a throwaway guest.
MASK=(apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service
	fstrim.timer dpkg-db-backup.timer getty@tty1.service serial-getty@ttyS0.service
	systemd-firstboot.service systemd-timesyncd.service)
# The engines start only when the tests start them, with the tests' configs.
DISABLE=(docker.service docker.socket containerd.service podman.service podman.socket
	podman-restart.service podman-auto-update.timer podman-auto-update.service)

log() { echo "systemd-image: $*" >&2; }
die() {
	log "$*"
	exit 1
}

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
out=$cache/$key
if [ -z "${SYSTEMD_IMAGE_REBUILD:-}" ] && [ -s "$out/base.img" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
	log "cached image $out (recipe $key)"
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
# One build at a time (a second run waits, then finds the image).
exec 9>"$cache/.lock"
flock 9
if [ -z "${SYSTEMD_IMAGE_REBUILD:-}" ] && [ -s "$out/base.img" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
	log "cached image $out (recipe $key)"
	echo "$out"
	exit 0
fi

# --- Host tools (scripts/apt.sh copes with backported packages on the host) ----------------------
# shellcheck source=scripts/apt.sh
. "$repo/scripts/apt.sh"
APT_LOG=${APT_LOG:-$cache/apt.log}
export APT_LOG
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
mkfs.ext4 -V 2>&1 | grep -q '^mke2fs 1\.4[3-9]' || need+=(e2fsprogs)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	apt_install --no-install-recommends "${need[@]}" || die "installing ${need[*]} failed"
fi

# The machine's Debian mirror (and its security mirror, if listed); deb.debian.org otherwise.
uris=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
	/etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//' |
	awk '{ print $1 }' | grep -E '/debian(-security)?/?$' || true)
mirror=$(grep -v security <<<"$uris" | head -n 1)
security=$(grep security <<<"$uris" | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}

start=$(date +%s)
# Builds that were killed (we hold the lock: no other is running) and kept ones go.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name '.build.*' -exec rm -rf --one-file-system {} +
# Named by our pid: the lock is ours and the old build dirs are gone (the line above).
work=$cache/.build.$$
mkdir -m 0700 "$work"
cleanup() {
	if [ -n "${SYSTEMD_IMAGE_KEEP:-}" ] && [ -d "$work" ]; then
		log "kept $work"
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
root=$work/root
log "building the guest image (recipe $key) in $work from $mirror; takes a few minutes"

# Everything that mounts (debootstrap's /proc, the chroot's /proc, /sys, /dev/pts) runs in a
# private mount namespace: nothing is left mounted on the host, whatever happens.
cat >"$work/build-in-ns.sh" <<'EOS'
set -euo pipefail
root=$1 suite=$2 mirror=$3 security=$4
shift 4
mount --make-rprivate /
debootstrap --variant=minbase --components=main "$suite" "$root" "$mirror"
{
	echo "deb $mirror $suite main"
	echo "deb $mirror $suite-updates main"
	[ -z "$security" ] || echo "deb $security $suite-security main"
} >"$root/etc/apt/sources.list"
# No service starts while packages are installed.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# The initramfs loads what root=/dev/vda on qemu's virtio disk needs (no udev in the guest).
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"
echo RESUME=none >"$root/etc/initramfs-tools/conf.d/resume"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
chroot "$root" apt-get update -q
chroot "$root" apt-get install -y -q --no-install-recommends "$@"
chroot "$root" apt-get clean
EOS

set +e
unshare --mount --propagation private bash "$work/build-in-ns.sh" "$root" "$SUITE" "$mirror" "$security" \
	"${PACKAGES[@]}" >"$work/build.log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
	tail -n 40 "$work/build.log" >&2
	die "debootstrap/apt in the chroot failed (exit $rc)"
fi
log "packages installed ($(($(date +%s) - start))s)"

# --- Configuration ---------------------------------------------------------------------------
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
echo rrun-systemd-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 rrun-systemd-guest\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# The root filesystem is mounted rw by the kernel (root=/dev/vda rw); no fsck (pass 0).
printf '/dev/vda / ext4 rw,relatime 0 0\n' >"$root/etc/fstab"
# A fixed machine id: no first-boot set-up.
echo 5d1f0c2e9a7b4c6d8e0f1a2b3c4d5e6f >"$root/etc/machine-id"
chroot "$root" passwd -d root >/dev/null
for u in "${MASK[@]}"; do ln -sfn /dev/null "$root/etc/systemd/system/$u"; done
for u in "${DISABLE[@]}"; do
	find "$root/etc/systemd/system" -name "$u" -type l -delete
done
# The journal in memory only (the overlay is thrown away anyway).
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$root/etc/systemd/journald.conf.d/rrun.conf"

cat >"$root/usr/local/sbin/rrun-tests" <<'EOS'
#!/bin/sh
# Started by rrun-tests.service: mount the payload disk, run its guest.sh, power off.
exec >/dev/ttyS0 2>&1
mkdir -p /payload
if mount -t ext4 /dev/vdb /payload; then
	bash /payload/tests/guest.sh
	echo "guest: guest.sh exited with $?"
else
	echo "FAIL boot: cannot mount the payload disk /dev/vdb"
	echo "RESULT: 0 passed, 1 failed"
fi
sync
umount /payload 2>/dev/null
systemctl poweroff -ff
EOS
chmod 755 "$root/usr/local/sbin/rrun-tests"
cat >"$root/etc/systemd/system/rrun-tests.service" <<'EOS'
[Unit]
Description=rrun tests from the payload disk (tests/systemd)
Wants=dbus.service
After=dbus.service basic.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/rrun-tests
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
EOS
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sfn ../rrun-tests.service "$root/etc/systemd/system/multi-user.target.wants/rrun-tests.service"
ln -sfn /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"

# --- Kernel, initramfs and the filesystem image -------------------------------------------------
vmlinuz=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
if [ -z "$vmlinuz" ] || [ -z "$initrd" ]; then die "no vmlinuz/initrd.img in the image's /boot"; fi
# The initramfs must carry the virtio block driver (unless the kernel has it built in).
kver=${vmlinuz##*/vmlinuz-}
if ! grep -qE '^CONFIG_VIRTIO_BLK=y' "$root/boot/config-$kver" 2>/dev/null; then
	initrd_files=$(chroot "$root" lsinitramfs "/boot/initrd.img-$kver" 2>&1) || true
	grep -q '/virtio_blk\.ko' <<<"$initrd_files" || die "the initramfs has no virtio_blk module"
fi

mkdir -p "$work/out"
cp "$vmlinuz" "$work/out/vmlinuz"
cp "$initrd" "$work/out/initrd.img"
used=$(du -s -B1M --one-file-system "$root" | cut -f1)
size=$((used + 3072))
log "mkfs.ext4 -d: ${used} MiB of files in a ${size} MiB filesystem"
mkfs.ext4 -q -F -L rrun-guest -d "$root" "$work/out/base.img" "${size}M" >>"$work/build.log" 2>&1 ||
	{ tail -n 20 "$work/build.log" >&2; die "mkfs.ext4 -d failed"; }
cp "$work/build.log" "$work/out/build.log"
echo "$kver" >"$work/out/kernel-version"

# Replace the older images.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '.build.*' -exec rm -rf {} +
mv "$work/out" "$out"
log "image built in $(($(date +%s) - start))s: $out ($(du -h "$out/base.img" | cut -f1) on disk)"
echo "$out"
