#!/usr/bin/env python3
"""Meridian's benchmark: the same zone and the same three-datacenter geo name served by
Meridian, gdnsd (geo) and Knot (static), plus a minimal reflector as the physical limit, one
server at a time on loopback, server pinned to CPU 0 and dnsperf to CPU 1. Prints one table.
Run it through bench/run.sh (which installs what it needs and isolates the network).

Query sets: `plain` and `ecs` (the mix above, without and with a Client Subnet from many
networks); `rr` and `sticky` (Meridian only: one flat pool of eight endpoints per family,
round-robin or sticky, asked with a Client Subnet from many networks), whose ratio is the cost
of sticky hashing: bench/run.sh --servers meridian --qsets rr,sticky; `ecs-do` (the ecs mix with
DO on every query) against `meridian-signed` (the same zone signed), the cost of DNSSEC online
signing: bench/run.sh --servers meridian,meridian-signed --qsets ecs-do

Server `meridian-release` is Meridian built with the release profile (thin LTO) rather than
`dist`: bench/run.sh --servers meridian,meridian-release --qsets plain,ecs (after
`cargo build --release`). Server `meridian-rr` is Meridian with the geo name's datacenters `round_robin` instead of
`all` (every answer rotates). `--fixed-rate 90000` adds, per server, the user and system CPU
time per query at that fixed rate (from /proc/<pid>/stat): bench/run.sh --servers
meridian,meridian-rr,gdnsd --qsets ecs --fixed-rate 90000
"""
import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DCS = {  # name: (lat, lon, v4 prefix, v6 prefix)
    "us": (39.04, -77.49, "192.0.2.", "2001:db8:1::"),
    "eu": (50.11, 8.68, "198.51.100.", "2001:db8:2::"),
    "ap": (1.35, 103.82, "203.0.113.", "2001:db8:3::"),
}
STATIC_HOSTS = 1000
PORTS = {"meridian": 5391, "gdnsd": 5392, "knot": 5393, "reflect": 5394, "meridian-signed": 5395,
         "meridian-rr": 5397, "meridian-release": 5398}
# The signed server's metrics: the signature cache's hit rate.
SIGNED_METRICS = 5396


# ---------------------------------------------------------------- data

def soa_ns():
    return ("@ 3600 IN SOA ns1 hostmaster 1 3600 600 1209600 300\n"
            "@ 3600 IN NS ns1\n@ 3600 IN NS ns2\n"
            "ns1 3600 IN A 192.0.2.53\nns2 3600 IN A 198.51.100.53\n"
            "@ 3600 IN MX 10 mail\nmail 3600 IN A 192.0.2.25\n"
            "@ 3600 IN TXT \"v=spf1 mx -all\"\n"
            + "".join(f"h{i} 3600 IN A 198.18.{i // 256}.{i % 256}\n" for i in range(STATIC_HOSTS)))


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def gen_data(data, geoip):
    # Meridian: the static part as a master file, `www` as a geo pool.
    write(f"{data}/meridian/zones/example.test.zone", "$ORIGIN example.test.\n" + soa_ns())
    pool = ['master_file = "example.test.zone"\n', "[pools.www]\npolicy = \"geo\"\nttl = 30\n",
            'default = ["us", "eu", "ap"]\n']
    for name, (lat, lon, v4, v6) in DCS.items():
        eps = ", ".join([f'{{ address = "{v4}{i}" }}' for i in range(1, 5)]
                        + [f'{{ address = "{v6}{i}" }}' for i in range(1, 5)])
        pool.append(f"[[pools.www.datacenters]]\nname = \"{name}\"\nlatitude = {lat}\n"
                    f"longitude = {lon}\npolicy = \"all\"\nendpoints = [{eps}]\n")
    # Flat pools of the same eight endpoints, for the policy query sets.
    flat = ", ".join([f'"192.0.2.{i}"' for i in range(11, 19)] + [f'"2001:db8::{i}"' for i in range(11, 19)])
    for policy in ("round_robin", "sticky"):
        pool.append(f"[pools.{policy.replace('_', '')}]\npolicy = \"{policy}\"\nttl = 30\n"
                    f"endpoints = [{flat}]\n")
    write(f"{data}/meridian/zones/example.test.toml", "".join(pool))
    write(f"{data}/meridian/meridian.toml",
          f"[server]\nlisten = [\"127.0.0.1:{PORTS['meridian']}\"]\nudp_workers = 1\n"
          f"[zones]\ndirectory = \"zones\"\n[geoip]\ndatabase = \"{geoip}\"\nwatch_interval_secs = 0\n")
    # The same zone signed (DNSSEC, one ECDSA P-256 key), on its own port.
    signed = f"{data}/meridian-signed"
    shutil.copytree(f"{data}/meridian", signed)
    subprocess.run([os.path.join(REPO, "target/dist/meridian"), "keygen", "--zone", "example.test",
                    "--out", f"{signed}/zones"], check=True, capture_output=True)
    key = next(f for f in os.listdir(f"{signed}/zones") if f.endswith(".pem"))
    write(f"{signed}/zones/example.test.toml", f'\n[dnssec]\nkeys = ["{key}"]\n', "a")
    write(f"{signed}/meridian.toml", open(f"{signed}/meridian.toml").read()
          .replace(str(PORTS["meridian"]), str(PORTS["meridian-signed"]))
          + f'[api]\nlisten = "127.0.0.1:{SIGNED_METRICS}"\n')

    # The same zone from the release profile's build (thin LTO; `cargo build --release` first),
    # on its own port: what the faster build costs against the `dist` one.
    release = f"{data}/meridian-release"
    shutil.copytree(f"{data}/meridian", release)
    write(f"{release}/meridian.toml", open(f"{release}/meridian.toml").read()
          .replace(str(PORTS["meridian"]), str(PORTS["meridian-release"])))

    # The same with every datacenter `round_robin`, on its own port.
    rr = f"{data}/meridian-rr"
    shutil.copytree(f"{data}/meridian", rr)
    write(f"{rr}/zones/example.test.toml", open(f"{rr}/zones/example.test.toml").read()
          .replace('policy = "all"', 'policy = "round_robin"'))
    write(f"{rr}/meridian.toml", open(f"{rr}/meridian.toml").read()
          .replace(str(PORTS["meridian"]), str(PORTS["meridian-rr"])))

    # gdnsd: the same zone with `www` as a DYNA geoip resource (city auto mode: nearest DC).
    write(f"{data}/gdnsd/zones/example.test", soa_ns() + "www 30 DYNA geoip!www\n")
    dcmap = "\n".join(
        f"          {n} => {{ addrs_v4 => [ {', '.join(v4 + str(i) for i in range(1, 5))} ]\n"
        f"                  addrs_v6 => [ {', '.join(v6 + str(i) for i in range(1, 5))} ] }}"
        for n, (_, _, v4, v6) in DCS.items())
    coords = "\n".join(f"          {n} => [ {lat}, {lon} ]" for n, (lat, lon, _, _) in DCS.items())
    write(f"{data}/gdnsd/config", f"""options => {{
  listen => {{ 127.0.0.1:{PORTS['gdnsd']} => {{ udp_threads => 1, tcp_threads => 1 }} }}
  run_dir => {data}/gdnsd/run
  state_dir => {data}/gdnsd/state
}}
plugins => {{
  geoip => {{
    maps => {{
      geo => {{
        geoip2_db => {geoip}
        datacenters => [us, eu, ap]
        auto_dc_coords => {{
{coords}
        }}
      }}
    }}
    resources => {{
      www => {{
        map => geo
        service_types => up
        dcmap => {{
{dcmap}
        }}
      }}
    }}
  }}
}}
""")

    # Knot: the same zone, `www` static (the us datacenter's addresses).
    _, _, v4, v6 = DCS["us"]
    www = "".join(f"www 30 IN A {v4}{i}\nwww 30 IN AAAA {v6}{i}\n" for i in range(1, 5))
    write(f"{data}/knot/example.test.zone", "$ORIGIN example.test.\n" + soa_ns() + www)
    write(f"{data}/knot/knot.conf", f"""server:
    rundir: "{data}/knot"
    listen: 127.0.0.1@{PORTS['knot']}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{data}/knot/knot.sock"
database:
    storage: "{data}/knot/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{data}/knot"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: example.test.
    file: "example.test.zone"
""")

    # Queries: 80 % the geo name (A and AAAA), 12 % static hosts, 5 % NXDOMAIN, 3 % other.
    rng = random.Random(20261121)
    queries = []
    for _ in range(100_000):
        r = rng.random()
        if r < 0.80:
            queries.append(("www.example.test", rng.choice(["A", "AAAA"])))
        elif r < 0.92:
            queries.append((f"h{rng.randrange(STATIC_HOSTS)}.example.test", "A"))
        elif r < 0.97:
            queries.append((f"nx{rng.randrange(100000)}.example.test", "A"))
        else:
            queries.append(rng.choice([("example.test", "MX"), ("example.test", "TXT"),
                                       ("example.test", "NS"), ("example.test", "SOA")]))
    write(f"{data}/queries.txt", "".join(f"{n} {t}\n" for n, t in queries))
    # The same queries in dnsperf's -B format, each with EDNS and a Client Subnet from many
    # networks: a public IPv4 /24 (80 %) or IPv6 /48 (20 %).
    out = bytearray()
    for i, (name, rtype) in enumerate(queries):
        out += struct.pack("!H", 0) + b""  # placeholder, replaced below
        msg = wire_query(i & 0xFFFF, name, rtype, ecs(rng))
        out[-2:] = struct.pack("!H", len(msg))
        out += msg
    write(f"{data}/queries-ecs.bin", bytes(out), "wb")
    # The same with DO (RFC 3225) on every query: the signed zone signs each answer.
    out = bytearray()
    for i, (name, rtype) in enumerate(queries):
        msg = wire_query(i & 0xFFFF, name, rtype, ecs(rng), dnssec_ok=True)
        out += struct.pack("!H", len(msg)) + msg
    write(f"{data}/queries-ecs-do.bin", bytes(out), "wb")
    # The policy sets: one pool's name, A and AAAA, with a Client Subnet from many networks.
    for qset, name in (("rr", "roundrobin.example.test"), ("sticky", "sticky.example.test")):
        out = bytearray()
        for i in range(100_000):
            msg = wire_query(i & 0xFFFF, name, rng.choice(["A", "AAAA"]), ecs(rng))
            out += struct.pack("!H", len(msg)) + msg
        write(f"{data}/queries-{qset}.bin", bytes(out), "wb")


def public_v4(rng):
    while True:
        a = rng.randrange(1, 224)
        b = rng.randrange(256)
        if a in (10, 127) or (a == 172 and 16 <= b < 32) or (a == 192 and b == 168) \
                or (a == 100 and 64 <= b < 128) or a == 0:
            continue
        return bytes([a, b, rng.randrange(256)])


def ecs(rng):
    if rng.random() < 0.8:
        addr, family, prefix = public_v4(rng), 1, 24
    else:
        addr = bytes([0x20, rng.randrange(0x01, 0x0f)]) + bytes(rng.randrange(256) for _ in range(4))
        family, prefix = 2, 48
    return struct.pack("!HBB", family, prefix, 0) + addr


def wire_query(qid, name, rtype, ecs_option, dnssec_ok=False):
    types = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    question = qname + struct.pack("!HH", types[rtype], 1)
    option = struct.pack("!HH", 8, len(ecs_option)) + ecs_option
    flags = 0x8000 if dnssec_ok else 0
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, flags, len(option)) + option
    return header + question + opt


# ---------------------------------------------------------------- servers

def command(server, data):
    if server == "meridian-release":
        return [os.path.join(REPO, "target/release/meridian"), "serve", "--config",
                f"{data}/{server}/meridian.toml"]
    if server.startswith("meridian"):
        return [os.path.join(REPO, "target/dist/meridian"), "serve", "--config",
                f"{data}/{server}/meridian.toml"]
    if server == "gdnsd":
        for d in ("run", "state"):
            os.makedirs(f"{data}/gdnsd/{d}", exist_ok=True)
        return ["gdnsd", "-c", f"{data}/gdnsd", "start"]
    if server == "knot":
        os.makedirs(f"{data}/knot/db", exist_ok=True)
        return ["knotd", "-c", f"{data}/knot/knot.conf"]
    if server == "reflect":
        return [f"{data}/reflect", str(PORTS["reflect"])]
    raise ValueError(server)


def ready(port, timeout=60.0, zone=b"\x07example\x04test\x00"):
    """Waits until the server answers a SOA query for `zone` (wire form) over UDP."""
    q = struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0) + zone + b"\x00\x06\x00\x01"
    deadline = time.time() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # Short waits: `large.py` reports the time until the first answer.
        s.settimeout(0.01)
        while time.time() < deadline:
            s.sendto(q, ("127.0.0.1", port))
            try:
                s.recv(4096)
                return True
            except OSError:
                pass
    return False


def cpu_times(pid):
    """(user, system) CPU seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid):
    return sum(cpu_times(pid))


def parse_completed(out):
    for line in out.splitlines():
        if "Queries completed:" in line:
            return int(line.split(":")[1].split()[0])
    return 0


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def dnsperf(port, qset, data, seconds, rate=None, verbose=False):
    args = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-l", str(seconds),
            "-c", "10", "-T", "1", "-q", "500", "-t", "1"]
    args += ["-d", f"{data}/queries.txt"] if qset == "plain" else ["-B", "-d", f"{data}/queries-{qset}.bin"]
    if rate:
        args += ["-Q", str(rate)]
    if verbose:
        args += ["-v"]
    return subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout


def parse_qps(out):
    for line in out.splitlines():
        if "Queries per second:" in line:
            return float(line.split(":")[1])
    return 0.0


def latencies_us(out):
    lat = []
    for line in out.splitlines():
        # "> NOERROR www.example.test A 0.000123" style lines of -v
        parts = line.split()
        if line.startswith(">") and parts:
            try:
                lat.append(float(parts[-1]) * 1e6)
            except ValueError:
                pass
    lat.sort()
    if not lat:
        return (float("nan"), float("nan"))
    return (lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))])


def measure(server, qset, data, seconds, fixed_rate=None):
    port = PORTS[server]
    proc = subprocess.Popen(["taskset", "-c", "0"] + command(server, data),
                            stdout=subprocess.DEVNULL, stderr=open(f"{data}/{server}.log", "w"))
    try:
        if not ready(port):
            raise RuntimeError(f"{server} did not answer; see {data}/{server}.log")
        dnsperf(port, qset, data, 2)  # warm-up
        rss = rss_mib(proc.pid)
        c0, t0 = cpu_seconds(proc.pid), time.time()
        out = dnsperf(port, qset, data, seconds)
        cpu = (cpu_seconds(proc.pid) - c0) / (time.time() - t0)
        qps = parse_qps(out)
        p50, p99 = latencies_us(dnsperf(port, qset, data, 5, rate=20000, verbose=True))
        result = {"qps": qps, "cpu": cpu, "per_core": qps / cpu if cpu > 0 else 0.0,
                  "p50": p50, "p99": p99, "rss": max(rss, rss_mib(proc.pid))}
        if server == "meridian-signed":
            result["hit_rate"] = signature_hit_rate()
        if fixed_rate:
            # CPU per query at a fixed rate: what a query costs when the server is not busy.
            (u0, s0) = cpu_times(proc.pid)
            out = dnsperf(port, qset, data, seconds, rate=fixed_rate)
            (u1, s1) = cpu_times(proc.pid)
            done = max(parse_completed(out), 1)
            result["user_us"] = (u1 - u0) / done * 1e6
            result["sys_us"] = (s1 - s0) / done * 1e6
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_per_query(r, rate):
    if not rate:
        return ""
    return f", at {rate:,} qps {r['user_us']:.2f} µs user + {r['sys_us']:.2f} µs system a query"


def signature_hit_rate():
    """The signed server's signatures reused from its cache ÷ all it needed, since start."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{SIGNED_METRICS}/metrics", timeout=5).read().decode()
    counts = {"made": 0, "reused": 0}
    for line in text.splitlines():
        if line.startswith("meridian_dnssec_signatures_total{"):
            result = line.split('result="')[1].split('"')[0]
            counts[result] += int(line.split()[-1])
    total = counts["made"] + counts["reused"]
    return counts["reused"] / total if total else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--qsets", default="plain,ecs")
    p.add_argument("--servers", default="meridian,gdnsd,knot,reflect")
    p.add_argument("--geoip", default=os.path.join(REPO, "geoip/real/dbip-city-lite.mmdb"))
    p.add_argument("--work", default="/tmp/meridian-bench")
    p.add_argument("--fixed-rate", type=int, default=None,
                   help="also measure user/system CPU per query at this rate (qps)")
    a = p.parse_args()
    data = a.work
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    gen_data(data, a.geoip)
    subprocess.run(["cc", "-O2", "-o", f"{data}/reflect", os.path.join(HERE, "reflect.c")], check=True)
    servers = a.servers.split(",")
    results = {}
    for qset in a.qsets.split(","):
        for rep in range(a.reps):
            for server in servers:  # interleaved, so drift spreads over every server
                r = measure(server, qset, data, a.seconds, a.fixed_rate)
                results.setdefault((server, qset), []).append(r)
                hits = f", signature cache hits {r['hit_rate'] * 100:.2f} %" if "hit_rate" in r else ""
                print(f"# {qset} rep {rep + 1} {server}: {r['qps']:,.0f} qps at {r['cpu'] * 100:.0f} % CPU "
                      f"= {r['per_core']:,.0f}/core-s, p50/p99 {r['p50']:.0f}/{r['p99']:.0f} us, "
                      f"RSS {r['rss']:.1f} MiB{hits}{cpu_per_query(r, a.fixed_rate)}", flush=True)
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in results.items()}
    # The table's order: by query set, then servers as given.
    in_order = sorted(med.items(), key=lambda kv: (kv[0][1], servers.index(kv[0][0])))
    print()
    print(f"Median of {a.reps} runs of {a.seconds} s; server on CPU 0, dnsperf on CPU 1; "
          "latency at a fixed 20k qps.")
    print()
    print("| server | queries | qps | server CPU | queries per server-core-second | p50 / p99 µs | RSS MiB | Meridian ÷ this |")
    print("|---|---|---|---|---|---|---|---|")
    for (server, qset), m in in_order:
        ours = med.get(("meridian", qset))
        ratio = f"{ours['per_core'] / m['per_core']:.2f}×" if ours and m["per_core"] else "-"
        if server == "meridian-signed" and ours and ours["per_core"]:
            # Signed ÷ unsigned: what signing keeps of the unsigned speed.
            ratio = (f"signed ÷ unsigned {m['per_core'] / ours['per_core']:.2f}×, p99 {m['p99'] / ours['p99']:.2f}×, "
                     f"signature cache hits {m['hit_rate'] * 100:.2f} %")
        print(f"| {server} | {qset} | {m['qps']:,.0f} | {m['cpu'] * 100:.0f} % | {m['per_core']:,.0f} | "
              f"{m['p50']:.0f} / {m['p99']:.0f} | {m['rss']:.1f} | {ratio} |")
    if a.fixed_rate:
        print()
        print(f"CPU time per query at a fixed {a.fixed_rate:,} qps (medians), and user time ÷ gdnsd's:")
        print()
        print("| server | queries | user µs | system µs | user ÷ gdnsd |")
        print("|---|---|---|---|---|")
        for (server, qset), m in in_order:
            gdnsd = med.get(("gdnsd", qset))
            ratio = f"{m['user_us'] / gdnsd['user_us']:.2f}×" if gdnsd and gdnsd["user_us"] else "-"
            print(f"| {server} | {qset} | {m['user_us']:.2f} | {m['sys_us']:.2f} | {ratio} |")
    for qset in a.qsets.split(","):
        rr_dcs = med.get(("meridian-rr", qset))
        if rr_dcs and rr_dcs["per_core"]:
            ratios = ", ".join(f"{server} {rr_dcs['per_core'] / m['per_core']:.2f}×"
                               for (server, q), m in med.items() if q == qset and m["per_core"])
            print(f"\nmeridian-rr ÷ each, {qset}, queries per server-core-second: {ratios}")
    rr, sticky = med.get(("meridian", "rr")), med.get(("meridian", "sticky"))
    if rr and sticky and rr["per_core"]:
        print()
        print(f"sticky ÷ round-robin, queries per server-core-second: {sticky['per_core'] / rr['per_core']:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
