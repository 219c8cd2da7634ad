#!/usr/bin/env python3
"""A nameserver set on etcd (one etcd member, three Meridian instances, all on loopback):
- propagation: `--count` changes (a TXT record set PUT through instance A, one at a time);
  for each, the time from its acknowledgement to the moment the last of the three instances
  answers the new value (each polled over UDP); p50 / p99 / max;
- throughput: acknowledged changes a second with 16 concurrent clients (each its own record
  set of the same zone), for `--seconds`: all through instance A, then spread over the three
  instances (whose batches then race each other in etcd); beside the same run against one
  instance on the files backend (the journal), as ratios.
Run it through bench/propagation.sh, which builds Meridian with the `dist` profile.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (ready)

REPO = bench.REPO
BINARY = os.path.join(REPO, "target/dist/meridian")
ETCD_CLIENT, ETCD_PEER = 23791, 23801
DNS = [5381, 5382, 5383]
API = [5384, 5385, 5386]
TOKEN = "bench-token"
QNAME = b"\x04prop\x07example\x04test\x00"


def start_etcd(folder):
    url, peer = f"http://127.0.0.1:{ETCD_CLIENT}", f"http://127.0.0.1:{ETCD_PEER}"
    proc = subprocess.Popen(
        ["etcd", "--name", "b", "--data-dir", f"{folder}/etcd",
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"b={peer}"],
        stdout=subprocess.DEVNULL, stderr=open(f"{folder}/etcd.log", "w"))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=1)
            conn.request("POST", "/v3/kv/range", body='{"key":"AA=="}')
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"etcd did not start; see {folder}/etcd.log")


def start_meridian(folder, n, etcd):
    home = f"{folder}/m{n}"
    os.makedirs(f"{home}/zones", exist_ok=True)
    shutil.copy(os.path.join(REPO, "zones/example.test.toml"), f"{home}/zones/")
    digest = subprocess.run([BINARY, "hash-token", TOKEN], capture_output=True, text=True,
                            check=True).stdout.strip()
    store = (f'[store]\nbackend = "etcd"\nendpoints = ["http://127.0.0.1:{ETCD_CLIENT}"]\n'
             f'prefix = "/bench"\ninstance = "m{n}"\n') if etcd else ""
    with open(f"{home}/meridian.toml", "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{DNS[n]}"]\n[zones]\ndirectory = "zones"\n'
                f'[rate_limit]\nenabled = false\n'
                f'[api]\nlisten = "127.0.0.1:{API[n]}"\n'
                f'[[api.tokens]]\nname = "bench"\nsha256 = "{digest}"\nscope = "write"\n{store}')
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{home}/meridian.toml"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{home}/log", "w"))
    if not bench.ready(DNS[n], timeout=60):
        raise RuntimeError(f"no answer; see {home}/log")
    return proc


def put(conn, name, value):
    body = json.dumps({"ttl": 60, "data": [f'"{value}"']})
    conn.request("PUT", f"/api/v1/zones/example.test/records/{name}/TXT", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"PUT {name}: {response.status} {data[:200]}")


def answers(sock, port, qid, value):
    """Whether the instance on `port` answers `value` for prop.example.test TXT now."""
    query = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + QNAME + struct.pack("!HH", 16, 1)
    sock.sendto(query, ("127.0.0.1", port))
    try:
        reply = sock.recv(4096)
    except OSError:
        return False
    return bytes([len(value)]) + value.encode() in reply


def propagation(count):
    conn = http.client.HTTPConnection("127.0.0.1", API[0], timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    times = []
    for i in range(count):
        value = f"v{i}"
        put(conn, "prop", value)
        acked = time.perf_counter()
        waiting = set(DNS)
        while waiting:
            for port in list(waiting):
                if answers(sock, port, i & 0xffff, value):
                    waiting.discard(port)
            if time.perf_counter() - acked > 10:
                raise RuntimeError(f"change {i} not answered by {sorted(waiting)} within 10 s")
        times.append((time.perf_counter() - acked) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))], times[-1]


def throughput(ports, seconds, clients=16):
    done = [0] * clients
    stop = time.time() + seconds

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=60)
        i = 0
        while time.time() < stop:
            put(conn, f"c{n}", i)
            i += 1
        done[n] = i

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - t0)


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--work", default="/tmp/meridian-propagation")
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    procs = [start_etcd(a.work)]
    try:
        procs += [start_meridian(a.work, n, etcd=True) for n in range(3)]
        time.sleep(1)
        p50, p99, worst = propagation(a.count)
        one_rate = throughput(API[:1], a.seconds)
        set_rate = throughput(API, a.seconds)
    finally:
        stop(procs[1:])
        stop(procs[:1])
    shutil.rmtree(f"{a.work}/m0")
    alone = [start_meridian(a.work, 0, etcd=False)]
    try:
        time.sleep(0.5)
        files_rate = throughput(API[:1], a.seconds)
    finally:
        stop(alone)
    print("| acknowledged → answered by all 3: p50 / p99 / max ms | changes/s through one instance "
          "| through all three | one instance on files | ratios |")
    print("|---|---|---|---|---|")
    print(f"| {p50:.1f} / {p99:.1f} / {worst:.1f} | {one_rate:,.0f} | {set_rate:,.0f} | "
          f"{files_rate:,.0f} | {one_rate / files_rate:.2f}×, {set_rate / files_rate:.2f}× |")


if __name__ == "__main__":
    sys.exit(main())
