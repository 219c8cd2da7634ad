#!/usr/bin/env python3
"""Start-up with a journal of changes not yet compacted into the zone files.

Writes the large zone of bench/large.py (`--pools` round-robin pools of 10 endpoints) and a
journal of `--changes` edits (endpoint weights patched in random pools, as the API records
them: see src/store/record.rs), then times `meridian serve` until it answers, without and
with the journal (medians of `--runs`). The issue's target: the journal adds under 2 s.
Run it through bench/journal_startup.sh, which builds Meridian with the `dist` profile.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (ready)
import large  # noqa: E402  (write_zone, PORT)

BINARY = os.path.join(bench.REPO, "target/dist/meridian")


def edit_record(origin, edit):
    """One journal record: payload length, the first 8 bytes of its SHA-256, the payload."""
    payload = b"\x03" + struct.pack("!H", len(origin)) + origin.encode() + json.dumps(edit).encode()
    return struct.pack("!I", len(payload)) + hashlib.sha256(payload).digest()[:8] + payload


def write_journal(folder, pools, changes):
    rng = random.Random(11)
    with open(f"{folder}/zones/.journal", "wb") as f:
        for i in range(changes):
            p = rng.randrange(pools)
            n = p * 10 + rng.randrange(10)
            address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            edit = {"edit": {"op": "patch_endpoint",
                             "with": {"pool": f"p{p}", "address": address,
                                      "patch": {"weight": 1 + i % 7}}},
                    "serial": 2 + i}
            f.write(edit_record("large.test.", edit))


def start(folder):
    """Seconds until the server answers; the server is stopped then."""
    t0 = time.time()
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{folder}/log", "a"))
    try:
        if not bench.ready(large.PORT, timeout=300.0, zone=b"\x05large\x04test\x00"):
            raise RuntimeError(f"no answer; see {folder}/log")
        return time.time() - t0
    finally:
        # SIGKILL: a clean stop would compact the journal into the files.
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pools", type=int, default=100_000)
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default="/tmp/meridian-journal-startup")
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    large.write_zone(a.work, a.pools, 10, short=True)
    plain, journaled = [], []
    for _ in range(a.runs):
        if os.path.exists(f"{a.work}/zones/.journal"):
            os.remove(f"{a.work}/zones/.journal")
        plain.append(start(a.work))
        write_journal(a.work, a.pools, a.changes)
        journaled.append(start(a.work))
    size = os.path.getsize(f"{a.work}/zones/.journal") / 2**20
    print(f"| {a.pools:,} pools | start-up s | with {a.changes:,} journaled changes ({size:.1f} MiB) s | added s |")
    print("|---|---|---|---|")
    print(f"| medians of {a.runs} | {statistics.median(plain):.2f} | {statistics.median(journaled):.2f} | "
          f"{statistics.median(journaled) - statistics.median(plain):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
