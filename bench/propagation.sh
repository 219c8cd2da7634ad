#!/usr/bin/env bash
# A nameserver set on etcd: how long a change takes to be answered by all three instances, and
# how many changes a second the set takes (see bench/propagation.py). Needs `etcd`
# (apt-get install etcd-server).
#   bench/propagation.sh [--count 1000] [--seconds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --locked
exec python3 bench/propagation.py "$@"
