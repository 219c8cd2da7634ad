#!/usr/bin/env python3
"""Registration heartbeats while serving: `--endpoints` endpoints registered in one pool, each
renewed every `--interval` seconds (so endpoints / interval renewals a second, spread evenly by
8 client threads), during a dnsperf run; the queries per server-core-second against the same
run without renewals (medians of `--reps`, interleaved), and the server's RSS at the start and
the end of the renewals. Server on CPU 0, dnsperf on CPU 1. Run it through bench/heartbeats.sh.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import changes  # noqa: E402

PORT = changes.DNS_PORT


def setup(folder):
    changes.setup(folder, 0)
    with open(f"{folder}/zones/example.test.toml", "a") as f:
        f.write('\n[pools.fleet]\npolicy = "round_robin"\nmax_answers = 4\nendpoints = ["10.255.255.1"]\n')
    with open(f"{folder}/queries.txt", "w") as f:
        for i in range(10_000):
            f.write("fleet.example.test A\n" if i % 2 else "api.example.test A\n")


def address(n):
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def heartbeat(n_endpoints, interval, seconds, first_only=False):
    """Registers every endpoint, then renews each every `interval` s for `seconds`."""
    stop = time.time() + seconds
    errors = [0]

    def client(part, parts):
        conn = http.client.HTTPConnection("127.0.0.1", changes.API_PORT, timeout=60)
        mine = list(range(part, n_endpoints, parts))
        while True:
            start = time.time()
            for n in mine:
                body = json.dumps({"ttl": "60s"})
                conn.request("PUT", f"/api/v1/zones/example.test/pools/fleet/registrations/{address(n + 2)}",
                             body=body, headers={"Authorization": f"Bearer {changes.TOKEN}",
                                                 "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status not in (200, 201):
                    errors[0] += 1
                # Spread the renewals over the interval.
                if not first_only:
                    due = start + interval * (mine.index(n) + 1) / len(mine)
                    time.sleep(max(0.0, due - time.time()))
            if first_only or time.time() >= stop:
                return

    threads = [threading.Thread(target=client, args=(p, 8)) for p in range(8)]
    for t in threads:
        t.start()
    return threads, errors


def measure(folder, n_endpoints, interval, seconds, renew):
    proc = subprocess.Popen(["taskset", "-c", "0", changes.BINARY, "serve", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{folder}/log", "w"))
    try:
        if not bench.ready(PORT):
            raise RuntimeError(f"no answer; see {folder}/log")
        threads, errors = heartbeat(n_endpoints, interval, 0, first_only=True)
        for t in threads:
            t.join()
        rss0 = bench.rss_mib(proc.pid)
        threads = []
        if renew:
            threads, errors = heartbeat(n_endpoints, interval, seconds + 2)
        c0, t0 = bench.cpu_seconds(proc.pid), time.time()
        out = bench.dnsperf(PORT, "plain", folder, seconds)
        cpu = (bench.cpu_seconds(proc.pid) - c0) / (time.time() - t0)
        qps = bench.parse_qps(out)
        rss1 = bench.rss_mib(proc.pid)
        for t in threads:
            t.join()
        return {"qps": qps, "per_core": qps / cpu if cpu else 0.0, "rss": (rss0, rss1), "errors": errors[0]}
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoints", type=int, default=10_000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--work", default="/tmp/meridian-heartbeats")
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    setup(a.work)
    results = {True: [], False: []}
    for rep in range(a.reps):
        for renew in (False, True):
            # Each run starts from the same folder: no journal, no registrations.
            shutil.rmtree(a.work, ignore_errors=True)
            setup(a.work)
            r = measure(a.work, a.endpoints, a.interval, a.seconds, renew)
            results[renew].append(r)
            print(f"# rep {rep + 1} renewals {'on ' if renew else 'off'}: {r['qps']:,.0f} qps, "
                  f"{r['per_core']:,.0f}/core-s, RSS {r['rss'][0]:.1f} -> {r['rss'][1]:.1f} MiB, "
                  f"errors {r['errors']}", flush=True)
    off = statistics.median(r["per_core"] for r in results[False])
    on = statistics.median(r["per_core"] for r in results[True])
    qps_off = statistics.median(r["qps"] for r in results[False])
    qps_on = statistics.median(r["qps"] for r in results[True])
    print(f"\n{a.endpoints:,} registered endpoints renewed every {a.interval:g} s "
          f"({a.endpoints / a.interval:,.0f} renewals/s) for {a.seconds} s: queries a second "
          f"{qps_on:,.0f} with renewals, {qps_off:,.0f} without: {qps_on / qps_off:.2f}×; per "
          f"server-core-second {on:,.0f} and {off:,.0f}: {on / off:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
