#!/usr/bin/env bash
# Start-up with a journal of 100,000 changes not yet compacted (see bench/journal_startup.py).
#   bench/journal_startup.sh [--pools 100000] [--changes 100000] [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --locked
exec python3 bench/journal_startup.py "$@"
