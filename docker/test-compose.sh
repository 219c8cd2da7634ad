#!/usr/bin/env bash
# The compose files as shipped, under podman-compose (pinned, from PyPI), in a network namespace
# of their own (the compose networks' bridge and the published ports exist only in it):
#   docker/compose.yaml  Meridian answers www with the first datacenter; a backend stopped, the
#                        answer moves to the other; the status page lists the pool.
#   docker/cluster.yaml  etcd and three members: each answers; a change made through one is
#                        answered by all three.
# Builds the images it needs (docker/image.sh, docker/demo-images.sh); SKIP_BUILD=1 reuses
# target/dist/meridian.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IN_NAMESPACE:-}" ]; then
    docker/image.sh meridian
    docker/demo-images.sh
    python3 -c 'import sys; sys.path.insert(0, "target/podman-compose"); import podman_compose' \
        2>/dev/null || python3 -m pip install -q --target target/podman-compose podman-compose==1.6.0
    exec env IN_NAMESPACE=1 unshare -n "$0"
fi
ip link set lo up
# This machine's podman: runc under cgroupfs, limits a container may set without privileges.
conf=$(mktemp)
cat > "$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF=$conf
compose() { PYTHONPATH=target/podman-compose python3 -m podman_compose "$@"; }
cleanup() {
    compose -f docker/compose.yaml down -v >/dev/null 2>&1 || true
    compose -f docker/cluster.yaml down -v >/dev/null 2>&1 || true
    rm -f "$conf"
}
trap cleanup EXIT
fail() { echo "compose test: $*"; compose -f "$file" logs 2>&1 | tail -30; exit 1; }
# wait_for PORT NAME WANT: until dig at 127.0.0.1:PORT answers NAME A with WANT (30 s at most).
wait_for() {
    local got=""
    for _ in $(seq 150); do
        got=$(dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 "$2" A 2>/dev/null | head -1 || true)
        [ "$got" = "$3" ] && return 0
        sleep 0.2
    done
    fail "port $1, $2 A: '$got', not '$3'"
}

file=docker/compose.yaml
compose -f "$file" up -d >/dev/null 2>&1 || fail "up failed"
wait_for 5300 www.demo.test 172.30.53.11
curl -sf http://127.0.0.1:8053/status.json | grep -q '"www"' || fail "the status page does not list www"
compose -f "$file" stop backend-us >/dev/null 2>&1
wait_for 5300 www.demo.test 172.30.53.12
compose -f "$file" down -v >/dev/null 2>&1
echo "compose test: the demo answered, and moved www to eu-central when backend-us stopped"

file=docker/cluster.yaml
export MERIDIAN_API_TOKEN=compose-test-$$
compose -f "$file" up -d >/dev/null 2>&1 || fail "up failed"
for port in 5301 5302 5303; do wait_for "$port" www.demo.test 172.30.53.11; done
status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
    -H "Authorization: Bearer $MERIDIAN_API_TOKEN" -H 'content-type: application/json' \
    -d '{"ttl": 300, "data": ["192.0.2.21"]}' \
    http://127.0.0.1:8062/api/v1/zones/demo.test/records/ftp/A)
[ "$status" = "200" ] || [ "$status" = "201" ] || fail "PUT through ns2: HTTP $status"
for port in 5301 5302 5303; do wait_for "$port" ftp.demo.test 192.0.2.21; done
for port in 8061 8062 8063; do
    [ "$(curl -s http://127.0.0.1:$port/readyz | head -1)" = "ready" ] || fail "member on $port not ready"
done
compose -f "$file" down -v >/dev/null 2>&1
echo "compose test: three members answered, and a change made through ns2 reached all three"
