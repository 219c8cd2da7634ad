#!/usr/bin/env python3
"""What one change costs against the zone's size: record-set changes through the API in a
zone of `--names` static names, and start-up with a journal of `--changes` edits that add new
names, not yet compacted into the zone file.

For each size, with a fresh server: the seconds until it answers, the first API read, then
p50 / p99 of `--count` single PUTs of a TXT set at an existing name and at new names, and of
GETs of one record set; then the same zone started with the journal, and the first API read
after it (of the last name the journal added), and started again from the zone file the
journal was compacted into at shutdown: the difference is what replaying the journal costs.
A change is acknowledged once it is on disk and in the answers. Run it through
bench/changes.sh, which builds Meridian with the `dist` profile.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (ready)
from changes import TOKEN, write_config  # noqa: E402

BINARY = os.path.join(bench.REPO, "target/dist/meridian")
DNS_PORT, API_PORT = 5398, 5399
ZONE = b"\x05names\x04test\x00"


def setup(folder, names):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(f"{folder}/zones")
    with open(f"{folder}/zones/names.test.toml", "w") as f:
        f.write('ns = ["ns1"]\n[soa]\nmname = "ns1"\nrname = "hostmaster"\nserial = 1\n'
                '[[records]]\nname = "ns1"\ntype = "A"\ndata = ["192.0.2.1"]\n')
        for i in range(names):
            f.write(f'[[records]]\nname = "n{i}"\ntype = "A"\n'
                    f'data = ["10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"]\n')
    write_config(folder, DNS_PORT, API_PORT)


def write_journal(folder, changes):
    """`changes` record-set edits adding names a0, a1, …, as the API journals them (see
    src/store/record.rs: payload length, the first 8 bytes of its SHA-256, the payload)."""
    origin = b"names.test."
    with open(f"{folder}/zones/.journal", "wb") as f:
        for i in range(changes):
            edit = {"edit": {"op": "set_records",
                             "with": {"name": f"a{i}", "type": "TXT", "ttl": 60,
                                      "data": [f'"{i}"']}},
                    "serial": 2 + i}
            payload = (b"\x03" + struct.pack("!H", len(origin)) + origin
                       + json.dumps(edit).encode())
            f.write(struct.pack("!I", len(payload)) + hashlib.sha256(payload).digest()[:8]
                    + payload)


def request(conn, method, path, body=None):
    """Milliseconds of one API request; raises on an unexpected status."""
    t0 = time.perf_counter()
    conn.request(method, "/api/v1" + path, body=None if body is None else json.dumps(body),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]}")
    return (time.perf_counter() - t0) * 1000


def percentiles(times):
    times = sorted(times)
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


class Server:
    """`clean`: stopped with SIGTERM (which compacts the journal into the zone file), else
    SIGKILL (which leaves it)."""

    def __init__(self, folder, clean=False):
        self.folder = folder
        self.clean = clean

    def __enter__(self):
        t0 = time.time()
        self.proc = subprocess.Popen([BINARY, "serve", "--config", f"{self.folder}/meridian.toml"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(f"{self.folder}/log", "a"))
        if not bench.ready(DNS_PORT, timeout=600, zone=ZONE):
            self.proc.kill()
            raise RuntimeError(f"no answer; see {self.folder}/log")
        self.up = time.time() - t0
        self.conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=120)
        return self

    def __exit__(self, *_):
        self.proc.send_signal(signal.SIGTERM if self.clean else signal.SIGKILL)
        self.proc.wait(120)


def sizes(folder, names, count):
    setup(folder, names)
    with Server(folder) as s:
        first = request(s.conn, "GET", "/zones/names.test/records/n5/A")
        put = [request(s.conn, "PUT", "/zones/names.test/records/n7/TXT",
                       {"ttl": 60, "data": [f'"{i}"']}) for i in range(count)]
        new = [request(s.conn, "PUT", f"/zones/names.test/records/new{i}/TXT",
                       {"ttl": 60, "data": [f'"{i}"']}) for i in range(count)]
        get = [request(s.conn, "GET", f"/zones/names.test/records/n{i}/A") for i in range(count)]
        return s.up, first, percentiles(put), percentiles(new), percentiles(get)


def replay(folder, names, changes):
    """(start with the journal, first read after it, start of the same zone from its file)."""
    setup(folder, names)
    write_journal(folder, changes)
    with Server(folder, clean=True) as s:
        first = request(s.conn, "GET", f"/zones/names.test/records/a{changes - 1}/TXT")
        journaled = s.up
    with open(f"{folder}/zones/names.test.toml") as f:
        if f'"a{changes - 1}"' not in f.read():
            raise RuntimeError("the journal was not compacted at shutdown")
    with Server(folder) as s:
        request(s.conn, "GET", f"/zones/names.test/records/a{changes - 1}/TXT")
        return journaled, first, s.up


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--names", default="20000,200000")
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--work", default="/tmp/meridian-change-cost")
    a = p.parse_args()
    print("| names | start s | first read ms | PUT existing name p50 / p99 ms | "
          "PUT new name p50 / p99 ms | GET p50 / p99 ms | "
          f"start with {a.changes:,} journaled new names s (the same zone from its file s), "
          "first read ms |")
    print("|---|---|---|---|---|---|---|")
    for names in (int(n) for n in a.names.split(",")):
        up, first, put, new, get = sizes(a.work, names, a.count)
        journaled, after, compacted = replay(a.work, names, a.changes)
        print(f"| {names:,} | {up:.2f} | {first:.1f} | {put[0]:.2f} / {put[1]:.2f} | "
              f"{new[0]:.2f} / {new[1]:.2f} | {get[0]:.2f} / {get[1]:.2f} | "
              f"{journaled:.2f} ({compacted:.2f}), {after:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
