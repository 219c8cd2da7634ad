#!/usr/bin/env bash
# Acknowledged API changes: latency one at a time and rate with 16 clients, with the default
# zone alone and beside a large zone (bench/changes.py, which takes the arguments); then what
# one change, a read and a journal replay cost at 20,000 and 200,000 names
# (bench/change_cost.py; run it alone for other sizes: --names, --changes, --count).
#   bench/changes.sh [--pools 100000] [--count 200] [--seconds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --locked
python3 bench/changes.py "$@"
echo
exec python3 bench/change_cost.py
