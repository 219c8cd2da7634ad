#!/usr/bin/env bash
# The cost of response rate limiting (see bench/rrl.py): installs dnsperf, builds Meridian in
# the `dist` profile, and runs in a private network namespace with only loopback.
#   bench/rrl.sh [--reps 3] [--seconds 10] [--rate 0]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null && command -v taskset >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf util-linux >/dev/null
}
cargo build --profile dist --locked
exec unshare -n bash -c 'ip link set lo up && exec python3 bench/rrl.py "$@"' rrl "$@"
