#!/usr/bin/env bash
# Build a busybox rootfs from Debian's busybox-static: mkrootfs.sh DIR
set -euo pipefail
dir=${1:?usage: mkrootfs.sh DIR}
bb=/bin/busybox
. "$(dirname "$0")/apt.sh"
apt_install busybox-static
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,dev,proc,sys,tmp,etc,root,home,var,run,usr/bin,usr/sbin,mnt}
cp "$bb" "$tmp/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$tmp/bin/$a"
done
chmod 1777 "$tmp/tmp"
cat >"$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$tmp/etc/group" <<'G'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
G
echo "127.0.0.1 localhost" >"$tmp/etc/hosts"
: >"$tmp/etc/resolv.conf"
rm -rf "$dir"
mv "$tmp" "$dir"
