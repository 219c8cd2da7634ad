#!/usr/bin/env bash
# The systemd unit and config as shipped, started by a real systemd (PID 1 in a podman
# container with a network namespace of its own): it answers on port 53 over IPv4 and IPv6,
# reloads on `systemctl reload` (a zone added is served), stops cleanly, and answers with
# `udp_steering = "cpu"` under the unit's sandbox too.
set -euo pipefail
cd "$(dirname "$0")/.."
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
if ! podman image exists localhost/meridian-systemd-base:bookworm; then
    tmp=$(mktemp -d)
    mmdebstrap --quiet --variant=minbase \
        --include=systemd,systemd-sysv,dbus,bind9-dnsutils,libcap2-bin,procps bookworm "$tmp/sd.tar"
    podman import "$tmp/sd.tar" localhost/meridian-systemd-base:bookworm >/dev/null
    rm -rf "$tmp"
fi
[ -n "${SKIP_BUILD:-}" ] || cargo build --profile dist --locked
ctx=$(mktemp -d)
name=meridian-systemd-$$
cleanup() { "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$ctx"; }
trap cleanup EXIT
mkdir -p "$ctx/target/dist" "$ctx/systemd" "$ctx/zones" "$ctx/docker"
cp target/dist/meridian "$ctx/target/dist/"
cp systemd/meridian.service systemd/meridian.toml "$ctx/systemd/"
cp zones/example.test.toml "$ctx/zones/"
cp docker/Containerfile.systemd "$ctx/docker/"
"${podman[@]}" build --quiet -f "$ctx/docker/Containerfile.systemd" -t meridian-systemd "$ctx" >/dev/null
"${podman[@]}" run -d --name "$name" --network none --systemd=always --privileged \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 meridian-systemd >/dev/null 2>&1
in_box() { "${podman[@]}" exec "$name" "$@"; }
fail() { echo "systemd test: $*"; in_box journalctl -u meridian --no-pager 2>&1 | tail -20; exit 1; }
for _ in $(seq 100); do
    state=$(in_box systemctl is-active meridian 2>/dev/null || true)
    [ "$state" = "active" ] && break
    sleep 0.2
done
[ "$state" = "active" ] || fail "the unit is $state"
ask() { in_box dig "@$1" -p 53 +short +time=1 +tries=3 "$2" SOA || true; }
# The zone's SOA over IPv4, waited for (at most 10 s): empty if it never came.
soa_soon() {
    local soa=""
    for _ in $(seq 50); do
        soa=$(ask 127.0.0.1 example.test)
        [ -n "$soa" ] && break
        sleep 0.2
    done
    echo "$soa"
}
# No zone yet: the state directory is the service's own; copy one in and reload.
in_box cp /usr/share/meridian/zones/example.test.toml /var/lib/meridian/zones/
in_box systemctl reload meridian
[ -n "$(soa_soon)" ] || fail "no SOA over IPv4 after systemctl reload"
[ -n "$(ask ::1 example.test)" ] || fail "no SOA over IPv6"
in_box systemctl stop meridian
result=$(in_box systemctl show meridian -p Result --value)
[ "$result" = "success" ] || fail "stop ended with $result"
# CPU steering pins each UDP worker to its CPU: allowed by the unit's system-call filter.
in_box sed -i 's/^\[server\]$/[server]\nudp_steering = "cpu"/' /etc/meridian/meridian.toml
in_box systemctl start meridian
[ -n "$(soa_soon)" ] || fail "no SOA with udp_steering = \"cpu\""
if in_box journalctl -u meridian --no-pager | grep -q "cannot keep UDP worker"; then
    fail "a UDP worker could not be kept on its CPUs"
fi
# A call the filter forbids kills the process (SIGSYS) after it has answered: still running,
# and its threads on different CPU sets (the workers pinned), a second later?
sleep 1
[ "$(in_box systemctl is-active meridian)" = "active" ] || fail "not running with CPU steering"
sets=$(in_box bash -c 'pid=$(systemctl show meridian -p MainPID --value)
    grep -h Cpus_allowed_list /proc/$pid/task/*/status | sort -u | wc -l')
[ "$sets" -ge 2 ] || fail "no UDP worker was kept on its CPUs"
[ -n "$(soa_soon)" ] || fail "no SOA a second after starting with CPU steering"
in_box systemctl stop meridian
echo "systemd test: started, answered over IPv4 and IPv6, reloaded, answered with CPU steering, stopped cleanly"
