#!/usr/bin/env bash
# Builds the two helper images the compose files use besides Meridian's own, offline from
# Debian's packages (mmdebstrap, no registry):
#   localhost/meridian-etcd          etcd from Debian's etcd-server package (docker/cluster.yaml)
#   localhost/meridian-demo-backend  a web server answering "ok" on port 80 (busybox httpd)
set -euo pipefail
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null
    }
done
if podman image exists localhost/meridian-etcd && podman image exists localhost/meridian-demo-backend; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=minbase --include=etcd-server,busybox bookworm "$tmp/tools.tar"
podman import --quiet --change 'ENTRYPOINT ["/usr/bin/etcd"]' \
    "$tmp/tools.tar" localhost/meridian-etcd >/dev/null
podman import --quiet --change 'EXPOSE 80/tcp' --change 'ENTRYPOINT ["/bin/sh", "-c",
    "mkdir -p /srv/www && hostname > /srv/www/index.html && exec busybox httpd -f -p 80 -h /srv/www"]' \
    "$tmp/tools.tar" localhost/meridian-demo-backend >/dev/null
echo "built images meridian-etcd and meridian-demo-backend"
