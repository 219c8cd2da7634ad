#!/usr/bin/env bash
# Acknowledged API changes: latency one at a time and rate with 16 clients, with the default
# zone alone and beside a large zone (see bench/changes.py).
#   bench/changes.sh [--pools 100000] [--count 200] [--seconds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
exec python3 bench/changes.py "$@"
