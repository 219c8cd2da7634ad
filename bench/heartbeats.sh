#!/usr/bin/env bash
# Registration heartbeats while serving (see bench/heartbeats.py).
#   bench/heartbeats.sh [--endpoints 10000] [--interval 10] [--seconds 60] [--reps 3]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null; }
cargo build --profile dist --locked
exec python3 bench/heartbeats.py "$@"
