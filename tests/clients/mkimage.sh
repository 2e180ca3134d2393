#!/usr/bin/env bash
# mkimage.sh ROOTFS OUT.tar NAME:TAG
# Packs a rootfs (scripts/mkrootfs.sh) into one image archive that is both an
# OCI image layout (index.json, for `ctr images import`) and a docker-archive
# (manifest.json, for `docker load` / `podman load`), with no registry.
# IMAGE_CMD (a JSON array, default ["sh"]) is the image's Cmd (tests/cri: ["/pause"]).
set -euo pipefail
rootfs=${1:?rootfs}; out=${2:?out.tar}; ref=${3:?name:tag}
tag=${ref##*:}
cmd=${IMAGE_CMD:-'["sh"]'}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
mkdir -p "$w/blobs/sha256"

# One uncompressed layer; fixed owner and mtime so the digest is stable.
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 --mtime='2024-01-01 00:00:00' \
  --sort=name -cf "$w/layer.tar" .
lsum=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
lsize=$(stat -c %s "$w/layer.tar")
mv "$w/layer.tar" "$w/blobs/sha256/$lsum"

cat >"$w/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd,"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$lsum"]},
 "history":[{"created":"2024-01-01T00:00:00Z","created_by":"tests/clients/mkimage.sh"}]}
EOF
csum=$(sha256sum "$w/config.json" | cut -d' ' -f1)
csize=$(stat -c %s "$w/config.json")
mv "$w/config.json" "$w/blobs/sha256/$csum"

cat >"$w/manifest.oci.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$csum","size":$csize},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$lsum","size":$lsize}]}
EOF
msum=$(sha256sum "$w/manifest.oci.json" | cut -d' ' -f1)
msize=$(stat -c %s "$w/manifest.oci.json")
mv "$w/manifest.oci.json" "$w/blobs/sha256/$msum"

echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci-layout"
cat >"$w/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$msum","size":$msize,
   "annotations":{"io.containerd.image.name":"$ref","org.opencontainers.image.ref.name":"$tag"},
   "platform":{"architecture":"amd64","os":"linux"}}]}
EOF
# docker-archive view of the same blobs
cat >"$w/manifest.json" <<EOF
[{"Config":"blobs/sha256/$csum","RepoTags":["$ref"],"Layers":["blobs/sha256/$lsum"]}]
EOF
tar -C "$w" --numeric-owner --owner=0 --group=0 -cf "$out" oci-layout index.json manifest.json blobs
