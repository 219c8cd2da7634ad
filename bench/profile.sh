#!/usr/bin/env bash
# Where a server's CPU goes: perf samples of one Meridian variant (or gdnsd) answering one
# query set at a fixed rate, in a private network namespace (loopback only), the server on CPU 0
# and dnsperf on CPU 1. Prints the share of kernel, Meridian and libc, then the top user-space
# symbols. Uses the data bench/run.sh wrote (run that once first).
#   bench/profile.sh [SERVER] [QSET] [RATE] [SECONDS]   e.g. bench/profile.sh meridian-rr ecs 90000 8
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-meridian} qset=${2:-ecs} rate=${3:-90000} seconds=${4:-8}
work=${WORK:-/tmp/meridian-bench}
[ -d "$work/$server" ] || [ "$server" = gdnsd ] || { echo "no $work/$server: run bench/run.sh first" >&2; exit 1; }
command -v perf >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
cargo build --profile dist --locked
out=$(mktemp -d)
exec unshare -n bash -s "$server" "$qset" "$rate" "$seconds" "$work" "$out" <<'INNER'
set -euo pipefail
server=$1 qset=$2 rate=$3 seconds=$4 work=$5 out=$6
ip link set lo up
case $server in
  gdnsd) mkdir -p "$work/gdnsd/run" "$work/gdnsd/state"; port=5392
         cmd=(gdnsd -c "$work/gdnsd" start) ;;
  *) port=$(grep -o '127.0.0.1:[0-9]*' "$work/$server/meridian.toml" | head -1 | cut -d: -f2)
     cmd=(target/dist/meridian serve --config "$work/$server/meridian.toml") ;;
esac
taskset -c 0 "${cmd[@]}" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 4
queries=(-B -d "$work/queries-$qset.bin")
[ "$qset" = plain ] && queries=(-d "$work/queries.txt")
perf record -q -e cpu-clock -p $pid -o "$out/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
recorder=$!
taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -l "$seconds" -c 10 -T 1 -q 500 -t 1 -Q "$rate" "${queries[@]}" \
  | grep -E "Queries (completed|per second)"
wait $recorder
echo "# share of the server's samples by where they ran"
perf report -i "$out/perf.data" --no-children --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -4
echo "# top user-space symbols"
perf report -i "$out/perf.data" --no-children --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' \
  | grep -v '\[k\]' | head -25
INNER
