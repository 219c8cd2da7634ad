#!/usr/bin/env bash
# The container image as shipped, started and queried (run by .ci/run after the tests): builds
# it offline (docker/image.sh), runs it in a network namespace of its own (podman's, with
# loopback only), asks it with dig from inside that namespace, checks its healthcheck and its
# user, and stops it with SIGTERM, which must end it cleanly (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."
docker/image.sh meridian-ci
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
name=meridian-ci-$$
cleanup() { "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"${podman[@]}" run -d --name "$name" --network none \
    --ulimit nofile=4096:4096 --ulimit nproc=1024:1024 meridian-ci >/dev/null 2>&1
pid=$("${podman[@]}" inspect -f '{{.State.Pid}}' "$name")
fail() { echo "image test: $*"; "${podman[@]}" logs "$name" 2>&1 | tail -20; exit 1; }
answer=""
for _ in $(seq 50); do
    answer=$(nsenter -t "$pid" -n dig @127.0.0.1 -p 53 +short +time=1 +tries=1 ns1.demo.test A || true)
    [ -n "$answer" ] && break
    sleep 0.2
done
[ "$answer" = "172.30.53.2" ] || fail "ns1.demo.test A: '$answer'"
soa=$(nsenter -t "$pid" -n dig @127.0.0.1 -p 53 +short +tcp demo.test SOA)
[[ "$soa" == "ns1.demo.test. hostmaster.demo.test. "* ]] || fail "SOA over TCP: '$soa'"
"${podman[@]}" healthcheck run "$name" >/dev/null 2>&1 || fail "the healthcheck failed"
user=$(ps -o user= -p "$pid" | tr -d ' ')
[ "$user" = "10053" ] || [ "$user" = "meridian" ] || fail "runs as $user, not the image's user"
"${podman[@]}" stop -t 10 "$name" >/dev/null
code=$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = "0" ] || fail "exit status $code after SIGTERM"
echo "image test: answered over UDP and TCP, healthy, user $user, stopped cleanly"
