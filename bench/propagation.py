#!/usr/bin/env python3
"""A nameserver set on etcd (one etcd member, three Meridian instances, all on loopback):
- propagation: `--count` changes (a TXT record set PUT through instance A, one at a time);
  for each, the time from its acknowledgement to the moment the last of the three instances
  answers the new value (each polled over UDP); p50 / p99 / max;
- throughput: acknowledged changes a second with 16 concurrent clients (each its own record
  set of the same zone), for `--seconds`: all through instance A, then spread over the three
  instances (whose changes then race each other in etcd); beside the same run against one
  instance on the files backend (the journal), as ratios;
- a large zone (`--pools`, 100,000 pools of 10 endpoints: 1,000,000) shared by the three: how
  long the set takes to hold it (written by A at the set's first start, read by B and C), the
  propagation of a pool's change (a PUT of one pool through A, until all three answer its new
  address), and etcd's database size after the first change, after `--db-changes` more, and
  after a defragmentation (`etcdctl defrag`: bbolt keeps the pages it freed until then).
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


def start_meridian(folder, n, etcd, zones=("zones/example.test.toml",), wait=60):
    home = f"{folder}/m{n}"
    os.makedirs(f"{home}/zones", exist_ok=True)
    for zone in zones:
        shutil.copy(os.path.join(REPO, zone), f"{home}/zones/")
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
    if not bench.ready(DNS[n], timeout=wait):
        raise RuntimeError(f"no answer; see {home}/log")
    return proc


def request(conn, method, path, body):
    conn.request(method, f"/api/v1/{path}", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]}")


def put(conn, name, value):
    body = json.dumps({"ttl": 60, "data": [f'"{value}"']})
    conn.request("PUT", f"/api/v1/zones/example.test/records/{name}/TXT", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"PUT {name}: {response.status} {data[:200]}")


def query(name, qtype, qid):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def has(sock, port, packet, needle):
    sock.sendto(packet, ("127.0.0.1", port))
    try:
        return needle in sock.recv(4096)
    except OSError:
        return False


def answers(sock, port, qid, value):
    """Whether the instance on `port` answers `value` for prop.example.test TXT now."""
    query = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + QNAME + struct.pack("!HH", 16, 1)
    sock.sendto(query, ("127.0.0.1", port))
    try:
        reply = sock.recv(4096)
    except OSError:
        return False
    return bytes([len(value)]) + value.encode() in reply


def until_answered(sock, packet, needle, what):
    """Milliseconds until every instance's answer to `packet` holds `needle`."""
    start = time.perf_counter()
    waiting = set(DNS)
    while waiting:
        for port in list(waiting):
            if has(sock, port, packet, needle):
                waiting.discard(port)
        if time.perf_counter() - start > 10:
            raise RuntimeError(f"{what} not answered by {sorted(waiting)} within 10 s")
    return (time.perf_counter() - start) * 1000


def percentiles(times):
    times = sorted(times)
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))], times[-1]


def propagation(count):
    conn = http.client.HTTPConnection("127.0.0.1", API[0], timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    times = []
    for i in range(count):
        value = f"v{i}"
        put(conn, "prop", value)
        packet = query("prop.example.test", 16, i & 0xffff)
        times.append(until_answered(sock, packet, bytes([len(value)]) + value.encode(), i))
    return percentiles(times)


def pool_body(pool, fresh):
    """Pool `pool` of bench/large.py's zone with its first endpoint replaced by `fresh`."""
    addresses = [fresh] + [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                           for n in range(pool * 10 + 1, pool * 10 + 10)]
    return {"policy": "round_robin", "ttl": 30, "endpoints": [{"address": a} for a in addresses]}


def answered(sock, port, packet):
    """Whether the instance on `port` answers `packet` with records."""
    sock.sendto(packet, ("127.0.0.1", port))
    try:
        return struct.unpack("!H", sock.recv(4096)[6:8])[0] > 0
    except OSError:
        return False


def pool_propagation(count, pools, first=0):
    """A PUT of one pool at a time through A, until all three answer its new address."""
    conn = http.client.HTTPConnection("127.0.0.1", API[0], timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    times = []
    for i in range(first, first + count):
        pool = (i * 7919) % pools
        fresh = f"172.16.{i >> 8 & 255}.{i & 255}"
        request(conn, "PUT", f"zones/large.test/pools/p{pool}", pool_body(pool, fresh))
        packet = query(f"p{pool}.large.test", 1, i & 0xffff)
        # Every answer of the replaced pool holds the new address once it is served (all of
        # its 10 endpoints are answered: max_answers is gone with the PUT).
        times.append(until_answered(sock, packet, socket.inet_aton(fresh), f"pool change {i}"))
    return percentiles(times)


def etcd_defragment():
    """Defragments etcd (`etcdctl defrag`): its database file's size after."""
    conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=120)
    conn.request("POST", "/v3/maintenance/defragment", body="{}")
    conn.getresponse().read()
    return etcd_db_size()


def etcd_db_size():
    conn = http.client.HTTPConnection("127.0.0.1", ETCD_CLIENT, timeout=10)
    conn.request("POST", "/v3/maintenance/status", body="{}")
    return int(json.loads(conn.getresponse().read())["dbSize"])


def large(work, pools, count, db_changes):
    """The large-zone figures (see the module's doc)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import large as large_bench  # noqa: E402
    folder = f"{work}/large"
    large_bench.write_zone(folder, pools, 10, short=True)
    zone = os.path.abspath(f"{folder}/zones/large.test.toml")
    procs = [start_etcd(work)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.2)
    try:
        start = time.time()
        procs.append(start_meridian(work, 0, etcd=True, zones=(zone,), wait=600))
        while not in_set(API[0]):
            if time.time() - start > 600:
                raise RuntimeError("A did not write the large zone within 600 s")
            time.sleep(0.1)
        seeded = time.time() - start
        start = time.time()
        procs += [start_meridian(work, n, etcd=True, zones=(), wait=600) for n in (1, 2)]
        last = query(f"p{pools - 1}.large.test", 1, 1)
        for port in DNS[1:]:
            while not answered(sock, port, last):
                if time.time() - start > 600:
                    raise RuntimeError("B and C did not read the large zone within 600 s")
                time.sleep(0.1)
        joined = time.time() - start
        pool_propagation(1, pools)
        first = etcd_db_size()
        p50, p99, worst = pool_propagation(count, pools, first=1)
        changed = time.time()
        refused = many_changes(db_changes, pools)
        rate = db_changes / (time.time() - changed)
        after = etcd_db_size()
        defragmented = etcd_defragment()
    finally:
        stop(procs[1:])
        stop(procs[:1])
    print(f"| {pools:,} pools / {pools * 10:,} endpoints | {seeded:.1f} s | {joined:.1f} s | "
          f"{p50:.1f} / {p99:.1f} / {worst:.1f} | {first / 2**20:.0f} MiB | "
          f"{count + db_changes:,} ({rate:,.0f}/s, {refused} refused and sent again): "
          f"{after / 2**20:.0f} MiB ({after / first:.2f}×) | "
          f"{defragmented / 2**20:.0f} MiB ({defragmented / first:.2f}×) |")


def in_set(port):
    """Whether the instance whose API is on `port` is in the set (/readyz 200)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def many_changes(count, pools, clients=8):
    """`count` pool PUTs through the three instances from `clients` threads; how many were
    refused on the way (and sent again)."""
    refused = [0]
    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", API[n % 3], timeout=60)
        for i in range(n, count, clients):
            pool = (i * 104729) % pools
            fresh = f"172.{17 + (i >> 16)}.{i >> 8 & 255}.{i & 255}"
            # A change refused (etcd stalled, a race lost for 10 s) is sent again: refused
            # changes are counted, not fatal.
            for _ in range(100):
                try:
                    request(conn, "PUT", f"zones/large.test/pools/p{pool}", pool_body(pool, fresh))
                    break
                except (RuntimeError, OSError):
                    refused[0] += 1
                    conn = http.client.HTTPConnection("127.0.0.1", API[n % 3], timeout=60)
                    time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return refused[0]


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
    p.add_argument("--pools", type=int, default=100_000, help="0: no large zone")
    p.add_argument("--db-changes", type=int, default=10_000)
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    if a.pools:
        print("| large zone | A writes it to etcd | B and C read it | pool change → answered by all 3: "
              "p50 / p99 / max ms | etcd db after the first change | after more changes (rate) | "
              "after `etcdctl defrag` |")
        print("|---|---|---|---|---|---|---|")
        large(f"{a.work}/l", a.pools, a.count, a.db_changes)
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
