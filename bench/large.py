#!/usr/bin/env python3
"""Large configurations: one zone of 100,000 pools with 1,000,000 endpoints (10 a pool).

Measures how long `meridian check` takes to load and build it and its peak RSS (medians of 3),
with the endpoints written as tables and as addresses alone,
how long `meridian serve` takes until it answers, and the queries per server-core-second on
random pool names against the same figure for a zone of 10 pools, run after run (server on
CPU 0, dnsperf on CPU 1). Run it through bench/large.sh, which builds Meridian and isolates
the network.
"""
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (reuses dnsperf, ready, cpu_seconds)

REPO = bench.REPO
BINARY = os.path.join(REPO, "target/dist/meridian")
PORT = 5395


def write_zone(folder, pools, per_pool, short=False):
    """`short`: endpoints as addresses alone ("10.0.0.1") instead of tables."""
    os.makedirs(f"{folder}/zones", exist_ok=True)
    with open(f"{folder}/zones/large.test.toml", "w") as f:
        f.write('ns = ["ns1"]\n[soa]\nmname = "ns1"\nrname = "hostmaster"\nserial = 1\n'
                '[[records]]\nname = "ns1"\ntype = "A"\ndata = ["192.0.2.1"]\n')
        for p in range(pools):
            addresses = (f'"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"'
                         for n in range(p * per_pool, (p + 1) * per_pool))
            eps = ", ".join(a if short else f"{{ address = {a} }}" for a in addresses)
            f.write(f'[pools.p{p}]\npolicy = "round_robin"\nttl = 30\nmax_answers = 4\n'
                    f'endpoints = [{eps}]\n')
    with open(f"{folder}/meridian.toml", "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{PORT}"]\nudp_workers = 1\n'
                '[zones]\ndirectory = "zones"\n')
    rng = random.Random(7)
    with open(f"{folder}/queries.txt", "w") as f:
        for _ in range(100_000):
            f.write(f"p{rng.randrange(pools)}.large.test A\n")


def check(folder):
    """Seconds and peak RSS (MiB) of one `meridian check`."""
    start = time.time()
    proc = subprocess.Popen([BINARY, "check", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.time() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(proc.stderr.read().decode())
    return took, usage.ru_maxrss / 1024


def serve(folder, seconds):
    """(seconds until it answers, queries per server-core-second, RSS MiB).

    It starts on the whole machine, as a server does (a large zone loads on both cores), and
    is pinned to CPU 0 once it answers, for the throughput part."""
    start = time.time()
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not bench.ready(PORT, timeout=120.0, zone=b"\x05large\x04test\x00"):
            raise RuntimeError("meridian did not answer")
        up = time.time() - start
        # Every thread; threads started later inherit it from their creators.
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            os.sched_setaffinity(int(tid), {0})
        bench.dnsperf(PORT, "plain", folder, 2)
        c0, t0 = bench.cpu_seconds(proc.pid), time.time()
        out = bench.dnsperf(PORT, "plain", folder, seconds)
        cpu = (bench.cpu_seconds(proc.pid) - c0) / (time.time() - t0)
        qps = bench.parse_qps(out)
        return up, qps / cpu if cpu else 0.0, bench.rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def main():
    work = "/tmp/meridian-large"
    shutil.rmtree(work, ignore_errors=True)
    big, short, small = f"{work}/big", f"{work}/short", f"{work}/small"
    print("# writing 100,000 pools / 1,000,000 endpoints …", flush=True)
    write_zone(big, 100_000, 10)
    write_zone(short, 100_000, 10, short=True)
    write_zone(small, 10, 10)
    size = os.path.getsize(f"{big}/zones/large.test.toml") / 1e6
    short_size = os.path.getsize(f"{short}/zones/large.test.toml") / 1e6
    # Alternated, so that both forms meet the same moments of a noisy machine.
    loads, short_loads = [], []
    for _ in range(3):
        loads.append(check(big))
        short_loads.append(check(short))
    for form, timings in (("tables", loads), ("addresses", short_loads)):
        for took, rss in timings:
            print(f"# check ({form}): {took:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
    # Alternated too, five pairs: each large run is compared with the small run right after
    # it, which met nearly the same moments of the machine (whose speed moves by ±15 % within
    # a minute here), and the ratio is the median of the five pairs'.
    runs = {"large": [], "small": []}
    for _ in range(5):
        runs["large"].append(serve(big, 5))
        runs["small"].append(serve(small, 5))
    for name, rs in runs.items():
        for up, per_core, rss in rs:
            print(f"# serve {name}: answering after {up:.2f} s, {per_core:,.0f} queries/core-s, "
                  f"RSS {rss:.0f} MiB", flush=True)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    print(f"\nZone file: {size:.0f} MB with endpoint tables, {short_size:.0f} MB with addresses "
          "alone. Medians of 3 (check) and 5 (serve).\n")
    print("| measure | 100k pools / 1M endpoints | 10 pools |")
    print("|---|---|---|")
    for form, timings in (("`{ address = … }`", loads),
                          ('addresses alone (`"10.0.0.1"`)', short_loads)):
        print(f"| `meridian check` (load + build), endpoints as {form} | "
              f"{med([t for t, _ in timings]):.2f} s, "
              f"peak RSS {med([r for _, r in timings]):.0f} MiB | |")
    print(f"| `serve` until it answers | {med([u for u, _, _ in runs['large']]):.2f} s | "
          f"{med([u for u, _, _ in runs['small']]):.2f} s |")
    print(f"| RSS while serving | {med([r for _, _, r in runs['large']]):.0f} MiB | "
          f"{med([r for _, _, r in runs['small']]):.0f} MiB |")
    big_q = med([q for _, q, _ in runs["large"]])
    small_q = med([q for _, q, _ in runs["small"]])
    print(f"| queries per server-core-second (random pools) | {big_q:,.0f} | {small_q:,.0f} |")
    pairs = [big[1] / small[1] for big, small in zip(runs["large"], runs["small"])]
    print(f"| large ÷ small, median of the pairs' ratios | {med(pairs):.2f}× "
          f"({', '.join(f'{r:.2f}' for r in pairs)}) | 1.00× |")
    print(f"| large ÷ small, ratio of the medians | {big_q / small_q:.2f}× | 1.00× |")


if __name__ == "__main__":
    main()
