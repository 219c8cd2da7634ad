#!/usr/bin/env bash
# Geo answers at start with DB-IP City Lite (see bench/geo_start.py).
#   bench/geo_start.sh [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --locked
exec python3 bench/geo_start.py "$@"
