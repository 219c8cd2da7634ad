#!/usr/bin/env bash
# Builds Meridian's container image offline with podman: a Debian base made from Debian's
# packages (mmdebstrap, no registry), the `dist` build of the binary, then docker/Dockerfile.
#   docker/image.sh [TAG]          (default: meridian)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-meridian}
need=()
for tool in podman mmdebstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc mmdebstrap >/dev/null
fi
if ! podman image exists localhost/meridian-base:bookworm; then
    tmp=$(mktemp -d)
    mmdebstrap --quiet --variant=minbase --include=libcap2-bin,ca-certificates bookworm "$tmp/base.tar"
    podman import "$tmp/base.tar" localhost/meridian-base:bookworm >/dev/null
    rm -rf "$tmp"
fi
[ -n "${SKIP_BUILD:-}" ] || cargo build --profile dist --locked
# The build context: only what the image holds.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/target/dist" "$ctx/docker" "$ctx/geoip"
cp target/dist/meridian "$ctx/target/dist/"
cp -r docker/Dockerfile docker/meridian.toml docker/zones "$ctx/docker/"
cp geoip/meridian-test.mmdb "$ctx/geoip/"
podman build --quiet --format docker --runtime runc --cgroup-manager=cgroupfs \
    -f "$ctx/docker/Dockerfile" -t "$tag" "$ctx" >/dev/null
echo "built image $tag"
