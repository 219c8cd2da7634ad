#!/usr/bin/env python3
"""Acknowledged API changes: how long one takes and how many a second the server accepts.

Serves the bundled zone (zones/example.test.toml) with the API on, alone and beside a large
zone (`--pools` round-robin pools of 10 endpoints), and measures, each with a fresh server:
- the latency of single changes, one at a time: a PATCH of an endpoint's weight and a PUT of
  a TXT record set in the small zone, and the same in the large zone (p50 / p99 of `--count`,
  after the large zone's first edit, which parses its document once and is shown alone);
- the changes a second that 16 concurrent clients get acknowledged (`--seconds`), each
  writing its own TXT record set.
A change is acknowledged once it is on disk and in the answers (see docs/api.md's durability
section). Run it through bench/changes.sh, which builds Meridian with the `dist` profile.
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
import bench  # noqa: E402  (ready)
import large  # noqa: E402  (write_zone)

REPO = bench.REPO
BINARY = os.path.join(REPO, "target/dist/meridian")
DNS_PORT, API_PORT = 5396, 5397
TOKEN = "bench-token"


def setup(folder, pools):
    shutil.rmtree(folder, ignore_errors=True)
    if pools:
        large.write_zone(folder, pools, 10, short=True)
    os.makedirs(f"{folder}/zones", exist_ok=True)
    shutil.copy(os.path.join(REPO, "zones/example.test.toml"), f"{folder}/zones/")
    write_config(folder, DNS_PORT, API_PORT)


def write_config(folder, dns_port, api_port):
    """meridian.toml serving `folder`/zones, with the API on and a write token (TOKEN)."""
    digest = subprocess.run([BINARY, "hash-token", TOKEN], capture_output=True, text=True,
                            check=True).stdout.strip()
    with open(f"{folder}/meridian.toml", "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\n[zones]\ndirectory = "zones"\n'
                f'[api]\nlisten = "127.0.0.1:{api_port}"\n'
                f'[[api.tokens]]\nname = "bench"\nsha256 = "{digest}"\nscope = "write"\n')


def request(conn, method, path, body):
    conn.request(method, "/api/v1" + path, body=json.dumps(body),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]}")


def latencies(count, method, path, body_of):
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=60)
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        request(conn, method, path, body_of(i))
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return out[len(out) // 2], out[min(len(out) - 1, int(len(out) * 0.99))]


def throughput(clients, seconds):
    done = [0] * clients
    stop = time.time() + seconds

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=60)
        i = 0
        while time.time() < stop:
            request(conn, "PUT", f"/zones/example.test/records/c{n}/TXT",
                    {"ttl": 60, "data": [f'"{i}"']})
            i += 1
        done[n] = i

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - t0)


def run(folder, pools, count, seconds):
    setup(folder, pools)
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{folder}/log", "w"))
    try:
        if not bench.ready(DNS_PORT, timeout=600):
            raise RuntimeError(f"no answer; see {folder}/log")
        time.sleep(0.5)
        result = {
            "patch": latencies(count, "PATCH", "/zones/example.test/pools/api/endpoints/192.0.2.21",
                               lambda i: {"weight": 1 + i % 2}),
            "put": latencies(count, "PUT", "/zones/example.test/records/bench/TXT",
                             lambda i: {"ttl": 60, "data": [f'"{i}"']}),
            "rate": throughput(16, seconds),
        }
        if pools:
            # The zone's first edit parses its document once (kept for the next ones).
            first = latencies(1, "PATCH", "/zones/large.test/pools/p5/endpoints/10.0.0.53",
                              lambda i: {"weight": 3})
            result["first_large"] = first[0]
            result["patch_large"] = latencies(
                count, "PATCH", "/zones/large.test/pools/p5/endpoints/10.0.0.53",
                lambda i: {"weight": 1 + i % 2})
            result["put_large"] = latencies(
                count, "PUT", "/zones/large.test/records/bench/TXT",
                lambda i: {"ttl": 60, "data": [f'"{i}"']})
        return result
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pools", type=int, default=100_000)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--work", default="/tmp/meridian-changes")
    a = p.parse_args()
    print("| zones | PATCH p50 / p99 ms | PUT p50 / p99 ms | changes/s, 16 clients | "
          "large zone: first edit ms, PATCH p50 / p99 ms, PUT p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for pools in (0, a.pools):
        r = run(a.work, pools, a.count, a.seconds)
        label = "default zone alone" if not pools else f"beside {pools:,} pools / {pools * 10:,} endpoints"
        large_cell = "-" if not pools else "{:.0f}, {:.1f} / {:.1f}, {:.1f} / {:.1f}".format(
            r["first_large"], *r["patch_large"], *r["put_large"])
        print(f"| {label} | {r['patch'][0]:.1f} / {r['patch'][1]:.1f} | {r['put'][0]:.1f} / {r['put'][1]:.1f} | "
              f"{r['rate']:,.0f} | {large_cell} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
