#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of the request path, the zone loaders
# and the API's JSON bodies: each target runs for SECONDS (default 60), then the executions and
# findings are reported. Crashes land in fuzz/artifacts/TARGET/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…
# and turn it into a regression test before fixing it.
#   bench/fuzz.sh [SECONDS] [TARGET…]
# FUZZ_SANITIZER=none builds without AddressSanitizer: about ten times the executions a second
# (45,000 against 4,800 for the request target here), for long runs that look for panics and
# failed assertions in safe Rust; the default (address) also catches memory errors in unsafe code.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request zone api_json manage)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags to rustc; on the stable toolchain this variable allows them. It is
# set for these commands only, never for the server's own build.
export RUSTC_BOOTSTRAP=1
status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log=$(mktemp)
    if cargo fuzz run -s "${FUZZ_SANITIZER:-address}" "$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        found=none
    else
        found="see fuzz/artifacts/$target/"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    echo "$target: ${runs:-0} executions in ${seconds} s, findings: $found"
    [ "$found" = none ] || tail -40 "$log"
    rm -f "$log"
done
exit $status
