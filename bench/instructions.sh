#!/usr/bin/env bash
# User-space instructions a query, counted by callgrind (the same count for the same binary and
# queries whatever else the machine does, unlike CPU time on this shared VM): each server
# answers 20,000 queries of one set at 2,000 qps (nearly every batch one datagram), counted
# from its first answer on, every thread of the process included. Uses the data bench/run.sh
# wrote (run that once first).
#   bench/instructions.sh [SERVER...] [--qset QSET]   e.g. bench/instructions.sh gdnsd meridian meridian-rr
#   BIN=/path/to/other/meridian bench/instructions.sh meridian   (another build, for a before/after)
#   KEEP=/tmp/cg bench/instructions.sh meridian-rr   (keeps the profile: callgrind_annotate --inclusive=yes /tmp/cg/meridian-rr/cg.*)
#   CACHE=1 bench/instructions.sh   (also simulates the caches: first-level and last-level misses a query)
#   CACHE="--I1=16384,8,64" bench/instructions.sh   (caches of other sizes)
#   CACHE=1 WORK=/tmp/meridian-large bench/instructions.sh big small --qset pools
#       (the zones bench/large.sh wrote: 100,000 pools and 10, random pool names)
set -euo pipefail
cd "$(dirname "$0")/.."
qset=ecs servers=()
while [ $# -gt 0 ]; do
    case $1 in
        --qset) qset=$2; shift 2 ;;
        *) servers+=("$1"); shift ;;
    esac
done
[ ${#servers[@]} -gt 0 ] || servers=(gdnsd meridian meridian-rr)
work=${WORK:-/tmp/meridian-bench}
command -v valgrind >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
[ -n "${BIN:-}" ] || cargo build --profile dist --locked
bin=${BIN:-$PWD/target/dist/meridian}
for server in "${servers[@]}"; do
    [ -d "$work/$server" ] || { echo "no $work/$server: run bench/run.sh first" >&2; exit 1; }
    unshare -n bash -s "$server" "$qset" "$work" "$bin" "${KEEP:-}" "${CACHE:-}" <<'INNER'
set -euo pipefail
server=$1 qset=$2 work=$3 bin=$4 keep=$5 cache=$6
ip link set lo up
case $server in
  gdnsd) mkdir -p "$work/gdnsd/run" "$work/gdnsd/state"; port=5392
         cmd=(gdnsd -c "$work/gdnsd" start) ;;
  *) port=$(grep -o '127.0.0.1:[0-9]*' "$work/$server/meridian.toml" | head -1 | cut -d: -f2)
     cmd=("$bin" serve --config "$work/$server/meridian.toml") ;;
esac
out=$(mktemp -d)
sim=(); [ -n "$cache" ] && sim=(--cache-sim=yes)
# CACHE="--I1=16384,8,64": the caches sized otherwise (a smaller instruction cache shows how
# much code a query runs through).
[ -n "$cache" ] && [ "$cache" != 1 ] && sim+=($cache)
valgrind --tool=callgrind "${sim[@]}" --instr-atstart=no --callgrind-out-file="$out/cg.%p" "${cmd[@]}" \
    >"$out/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$out"' EXIT
zone=example.test queries=(-B -d "$work/queries-$qset.bin")
[ "$qset" = plain ] && queries=(-d "$work/queries.txt")
[ "$qset" = pools ] && zone=large.test queries=(-d "$work/$server/queries.txt")
for _ in $(seq 1 300); do
    dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$zone" SOA 2>/dev/null | grep -q '^[a-z]' && break
    sleep 1
done
callgrind_control -i on $pid >/dev/null 2>&1
done=$(dnsperf -s 127.0.0.1 -p "$port" -c 1 -T 1 -q 50 -Q 2000 -l 10 "${queries[@]}" \
    | awk '/Queries completed/ {print $3}')
callgrind_control -i off $pid >/dev/null 2>&1
kill -TERM $pid; wait $pid 2>/dev/null || true
total=$(callgrind_annotate "$out"/cg.* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$server $qset: $done queries, $total instructions, $((total / done)) a query"
if [ -n "$cache" ]; then
    # Events, each followed by its share: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
    callgrind_annotate "$out"/cg.* 2>/dev/null | awk -v n="$done" '/PROGRAM TOTALS/ {
        for (i = 1; i <= 17; i += 2) gsub(",", "", $i)
        printf "  a query: %.2f first-level data misses, %.3f last-level data misses, %.3f instruction-cache misses\n",
            ($9 + $11) / n, ($15 + $17) / n, $7 / n }'
fi
if [ -n "$keep" ]; then rm -rf "$keep/$server"; mkdir -p "$keep/$server"; cp "$out"/cg.* "$keep/$server/"; fi
INNER
done
