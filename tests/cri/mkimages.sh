#!/usr/bin/env bash
# mkimages.sh OUTDIR: the two image archives tests/cri/run.sh imports into containerd, with no
# registry: OUTDIR/busybox.tar (scripts/mkrootfs.sh, tests/clients/mkimage.sh) and
# OUTDIR/pause.tar (tests/cri/pause.c built static, the image's only file, Cmd ["/pause"]).
# run.sh calls it; CRI_IMAGES=OUTDIR makes run.sh use archives made beforehand (a guest
# without gcc or busybox-static).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: mkimages.sh OUTDIR}
IMG=${IMG:-docker.io/library/rrun-busybox:latest}
PAUSE_IMG=${PAUSE_IMG:-registry.k8s.io/pause:rrun-cri}
mkdir -p "$out"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
"$repo/scripts/mkrootfs.sh" "$w/rootfs" >/dev/null
bash "$repo/tests/clients/mkimage.sh" "$w/rootfs" "$out/busybox.tar" "$IMG"
mkdir -p "$w/pause-rootfs"
gcc -static -O2 -Wall -o "$w/pause-rootfs/pause" "$here/pause.c"
IMAGE_CMD='["/pause"]' bash "$repo/tests/clients/mkimage.sh" "$w/pause-rootfs" "$out/pause.tar" "$PAUSE_IMG"
