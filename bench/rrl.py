#!/usr/bin/env python3
"""The cost of response rate limiting: Meridian with RRL off and with RRL on, queried at full
speed from a source that is not exempt (127.0.0.2), with a limit above what one core can
answer so that nothing is limited and what is measured is the accounting; interleaved, server
on CPU 0 and dnsperf on CPU 1. Prints the server's queries per core-second for each and their
ratio. Run it through bench/rrl.sh (which installs dnsperf and isolates the network).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the main benchmark's data and helpers)

MODES = {
    "off": "[rate_limit]\nenabled = false\n",
    # Above what one core answers, so nothing is limited: what is measured is the accounting.
    "on": "[rate_limit]\nresponses_per_second = 1000000\nexempt = []\n",
}


def measure(data, mode, seconds, rate):
    config = f"{data}/meridian/meridian.toml"
    with open(config) as f:
        base = f.read().split("[rate_limit]")[0]
    with open(config, "w") as f:
        f.write(base + MODES[mode])
    port = bench.PORTS["meridian"]
    proc = subprocess.Popen(["taskset", "-c", "0"] + bench.command("meridian", data),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not bench.ready(port):
            raise RuntimeError("meridian did not answer")
        args = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-a", "127.0.0.2",
                "-p", str(port), "-c", "10", "-T", "1", "-q", "500", "-t", "1",
                "-d", f"{data}/queries.txt"] + (["-Q", str(rate)] if rate else [])
        subprocess.run(args + ["-l", "2"], capture_output=True, timeout=60)  # warm-up
        c0, t0 = bench.cpu_seconds(proc.pid), bench.time.time()
        out = subprocess.run(args + ["-l", str(seconds)], capture_output=True, text=True,
                             timeout=seconds + 60).stdout
        cpu = (bench.cpu_seconds(proc.pid) - c0) / (bench.time.time() - t0)
        qps = bench.parse_qps(out)
        return qps, cpu, qps / cpu if cpu else 0.0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rate", type=int, default=0, help="queries a second offered (0: all dnsperf can)")
    p.add_argument("--geoip", default=os.path.join(bench.REPO, "geoip/real/dbip-city-lite.mmdb"))
    p.add_argument("--work", default="/tmp/meridian-bench-rrl")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    bench.gen_data(a.work, a.geoip)
    per_core = {mode: [] for mode in MODES}
    for rep in range(a.reps):
        for mode in MODES:
            qps, cpu, pc = measure(a.work, mode, a.seconds, a.rate)
            per_core[mode].append(pc)
            print(f"# rep {rep + 1} rrl {mode}: {qps:,.0f} qps at {cpu * 100:.0f} % CPU = "
                  f"{pc:,.0f}/core-s", flush=True)
    off, on = (statistics.median(per_core[m]) for m in ("off", "on"))
    print(f"\nMedian queries per server-core-second: RRL off {off:,.0f}, RRL on {on:,.0f}: "
          f"on ÷ off = {on / off:.3f} (cost {100 * (1 - on / off):.1f} %)")


if __name__ == "__main__":
    sys.exit(main())
