#!/usr/bin/env python3
"""Geo answers at start with a large GeoIP database: DB-IP City Lite (geoip/real/, which
`.ci/run` downloads), the bundled zones.

Starts `meridian serve` `--runs` times and reports, as medians: the seconds until the first
answer for `edge.example.test` to a client subnet in Frankfurt that names the eu-central
datacenter, and until `/readyz` says the steering tables are built (until then geo answers
come from the database directly, with the same decisions). Run it through bench/geo_start.sh,
which builds Meridian with the `dist` profile.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (REPO)

BINARY = os.path.join(bench.REPO, "target/dist/meridian")
DNS_PORT, API_PORT = 5401, 5402
EU_CENTRAL = "198.51.100."  # the eu-central datacenter's IPv4 endpoints


def geo_answer():
    out = subprocess.run(["dig", f"@127.0.0.1", "-p", str(DNS_PORT), "+short", "+tries=1",
                          "+time=1", "+subnet=81.2.69.160/32", "edge.example.test", "A"],
                         capture_output=True, text=True).stdout
    return out.startswith(EU_CENTRAL)


def tables_built():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{API_PORT}/readyz", timeout=1) as r:
            return "steering tables built" in r.read().decode()
    except OSError:
        return False


def run(folder, database):
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(bench.REPO, "zones"), f"{folder}/zones")
    with open(f"{folder}/meridian.toml", "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{DNS_PORT}"]\n[zones]\ndirectory = "zones"\n'
                f'[geoip]\ndatabase = "{database}"\n[api]\nlisten = "127.0.0.1:{API_PORT}"\n')
    t0 = time.time()
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{folder}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{folder}/log", "w"))
    try:
        answered = built = None
        while time.time() - t0 < 300 and built is None:
            if answered is None and geo_answer():
                answered = time.time() - t0
            if answered is not None and tables_built():
                built = time.time() - t0
            time.sleep(0.01)
        if built is None:
            raise RuntimeError(f"no geo answer or no tables; see {folder}/log")
        return answered, built
    finally:
        proc.terminate()
        proc.wait(60)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--database", default=os.path.join(bench.REPO, "geoip/real/dbip-city-lite.mmdb"))
    p.add_argument("--work", default="/tmp/meridian-geo-start")
    a = p.parse_args()
    if not os.path.exists(a.database):
        sys.exit(f"{a.database} is missing: .ci/run downloads DB-IP City Lite there")
    runs = [run(a.work, a.database) for _ in range(a.runs)]
    print("| database | first geo answer s | steering tables built s |")
    print("|---|---|---|")
    print(f"| {os.path.basename(a.database)} ({os.path.getsize(a.database) / 2**20:.0f} MiB), "
          f"medians of {a.runs} | {statistics.median(r[0] for r in runs):.2f} | "
          f"{statistics.median(r[1] for r in runs):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
