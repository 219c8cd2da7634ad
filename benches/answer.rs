//! The pure answer path, query bytes → reply bytes, without sockets: static records, a
//! round-robin pool, NXDOMAIN, and a geo pool for clients sent in EDNS Client Subnet options
//! (located with the bundled test database). Each case twice: a fresh reply (`respond`), and as
//! a UDP worker answers — a reused buffer and the worker's reply memo, which holds the fixed
//! answers (static, geo with `all` datacenters) after their first time. Then DNSSEC: a cold
//! signature for each algorithm, and the same zone signed answering queries with DO as a
//! worker does (signatures cached, fixed answers memoized). And random pools of a zone of 10
//! pools and of 100,000. `cargo bench --bench answer [-- FILTER]`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

use meridian::dns::memo::Memo;
use meridian::dns::respond::{
    Incoming, Outcome, Responder, Settings, Transport, respond, respond_into,
};
use meridian::dnssec::{Algorithm, FLAGS_CSK, Role, SigningKey, Timing, ZoneSigner};
use meridian::fixture::{self, ZONE_HEAD};
use meridian::snapshot::Snapshot;

const POOLS: &str = r#"
[[records]]
name = "mail"
type = "A"
data = ["192.0.2.25"]
[pools.www]
policy = "round_robin"
endpoints = [{ address = "192.0.2.10" }, { address = "192.0.2.11" }, { address = "192.0.2.12" }, { address = "192.0.2.13" }]
[pools.edge]
policy = "geo"
[[pools.edge.datacenters]]
name = "us"
latitude = 39.04
longitude = -77.49
policy = "all"
endpoints = [{ address = "192.0.2.101" }, { address = "192.0.2.102" }]
[[pools.edge.datacenters]]
name = "eu"
latitude = 50.11
longitude = 8.68
policy = "all"
endpoints = [{ address = "198.51.100.101" }, { address = "198.51.100.102" }]
[[pools.edge.datacenters]]
name = "ap"
latitude = 1.35
longitude = 103.82
policy = "all"
endpoints = [{ address = "203.0.113.101" }, { address = "203.0.113.102" }]
"#;

fn snapshot() -> Snapshot {
    let zone = format!("{ZONE_HEAD}{POOLS}");
    // As a served snapshot has them: the geo pool's steering table built.
    fixture::snapshot(&[("example.test.", &zone)], fixture::Geo::Steered)
}

/// A query for `name`/`rtype` with EDNS, and an ECS option for `subnet` (a /24) if given.
fn query(name: &str, rtype: u16, subnet: Option<[u8; 3]>) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, (rtype >> 8) as u8, rtype as u8, 0, 1]);
    let option: Vec<u8> = match subnet {
        Some(a) => [&[0, 8, 0, 7, 0, 1, 24, 0][..], &a[..]].concat(),
        None => Vec::new(),
    };
    q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0]);
    q.extend_from_slice(&(option.len() as u16).to_be_bytes());
    q.extend_from_slice(&option);
    q
}

fn answer_path(c: &mut Criterion) {
    let snapshot = snapshot();
    let source: IpAddr = "127.0.0.1".parse().unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let cases = [
        ("static A", query("mail.example.test", 1, None)),
        ("round-robin pool A", query("www.example.test", 1, None)),
        ("NXDOMAIN", query("nope.example.test", 1, None)),
        (
            "geo A, ECS London",
            query("edge.example.test", 1, Some([81, 2, 69])),
        ),
        (
            "geo A, ECS Tokyo",
            query("edge.example.test", 1, Some([1, 0, 16])),
        ),
    ];
    for (name, q) in &cases {
        assert!(respond(&snapshot, q, source, Transport::Udp, 1232, &mut rng).is_some());
        let mut memo = Memo::default();
        let mut reused = Vec::with_capacity(512);
        for worker in [false, true] {
            let label = match worker {
                false => name.to_string(),
                true => format!("{name} (worker: memo, reused buffer)"),
            };
            c.bench_function(&label, |b| {
                b.iter(|| {
                    // Fresh: a new buffer and no memo, as `respond` answers.
                    let mut fresh = Vec::with_capacity(512);
                    let (memo, out) = match worker {
                        true => (Some(&mut memo), &mut reused),
                        false => (None, &mut fresh),
                    };
                    let incoming = Incoming {
                        query: black_box(q),
                        source,
                        transport: Transport::Udp,
                    };
                    let mut with = Responder {
                        rng: &mut rng,
                        memo,
                        settings: &Settings::new(1232),
                        now: 1_800_000_000,
                        reference: false,
                    };
                    respond_into(&snapshot, incoming, &mut with, &mut Outcome::default(), out)
                })
            });
        }
    }
}

/// Zones of 10 and of 100,000 round-robin pools of 10 endpoints (4 handed out), answered as a
/// worker answers (and counts) queries for random pools of them: what `bench/large.sh`
/// compares, without the kernel's share. In the large zone every query's name, node,
/// addresses and counters are far apart in memory: the difference is its cache misses.
fn large_zone(c: &mut Criterion) {
    for pools in [10, 100_000] {
        let mut text = String::from(ZONE_HEAD);
        for p in 0..pools {
            let endpoints: Vec<String> = (0..10u32)
                .map(|e| {
                    let n = p * 10 + e;
                    format!("\"10.{}.{}.{}\"", n >> 16 & 255, n >> 8 & 255, n & 255)
                })
                .collect();
            text += &format!(
                "[pools.p{p}]\nmax_answers = 4\nendpoints = [{}]\n",
                endpoints.join(", ")
            );
        }
        let snapshot = fixture::snapshot(&[("example.test.", &text)], fixture::Geo::None);
        let mut rng = fastrand::Rng::with_seed(7);
        let queries: Vec<Vec<u8>> = (0..1 << 16)
            .map(|_| query(&format!("p{}.example.test", rng.u32(..pools)), 1, None))
            .collect();
        let source: IpAddr = "127.0.0.1".parse().unwrap();
        let settings = Settings::new(1232);
        let mut memo = Memo::default();
        let mut out = Vec::with_capacity(512);
        let mut next = 0;
        c.bench_function(&format!("worker: random pools of {pools}"), |b| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                let incoming = Incoming {
                    query: &queries[next],
                    source,
                    transport: Transport::Udp,
                };
                let mut with = Responder {
                    rng: &mut rng,
                    memo: Some(&mut memo),
                    settings: &settings,
                    now: 1_800_000_000,
                    reference: false,
                };
                let mut outcome = Outcome::default();
                respond_into(&snapshot, incoming, &mut with, &mut outcome, &mut out);
                meridian::metrics::global().record_query(&outcome.labels(), Transport::Udp);
            })
        });
    }
}

/// The benchmark zone signed by one new combined key of `algorithm`.
fn signed_snapshot(algorithm: Algorithm) -> Snapshot {
    let unsigned = snapshot();
    let mut zone = fixture::zone("example.test.", &format!("{ZONE_HEAD}{POOLS}"));
    let der = SigningKey::generate(algorithm).unwrap();
    let key = SigningKey::from_pkcs8(&der, FLAGS_CSK).unwrap();
    let signer = ZoneSigner::new(vec![(key, Role::Combined)], Timing::default());
    zone.signer = Some(Arc::new(signer));
    let origin = meridian::zone::Name::from_ascii("example.test.").unwrap();
    Snapshot {
        generation: unsigned.generation + 1,
        zones: Arc::new(unsigned.zones.with_zone(&origin, Some(zone))),
        geo: unsigned.geo.clone(),
        health: unsigned.health.clone(),
    }
}

fn signing(c: &mut Criterion) {
    // Signed data of a typical RRset: the RRSIG's fields, then four A records.
    let data = [0x5a_u8; 160];
    for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let der = SigningKey::generate(algorithm).unwrap();
        let key = SigningKey::from_pkcs8(&der, FLAGS_CSK).unwrap();
        c.bench_function(&format!("cold signature, {algorithm:?}"), |b| {
            b.iter(|| key.sign(black_box(&data)).unwrap())
        });
        let snapshot = signed_snapshot(algorithm);
        let source: IpAddr = "127.0.0.1".parse().unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        let cases = [
            ("NXDOMAIN", query("nope.example.test", 1, None)),
            ("round-robin pool A", query("www.example.test", 1, None)),
            (
                "geo A, ECS London",
                query("edge.example.test", 1, Some([81, 2, 69])),
            ),
        ];
        let mut memo = Memo::default();
        let mut out = Vec::with_capacity(1232);
        for (name, mut q) in cases {
            // DO: the OPT record's flags are the 4th and 3rd bytes before its options.
            let flags_at = 12 + name_len(&q) + 4 + 1 + 2 + 2 + 2;
            q[flags_at] |= 0x80;
            let mut ask = |memo: &mut Memo, out: &mut Vec<u8>| {
                let incoming = Incoming {
                    query: black_box(&q),
                    source,
                    transport: Transport::Udp,
                };
                let mut with = Responder {
                    rng: &mut rng,
                    memo: Some(memo),
                    settings: &Settings::new(1232),
                    now: 1_800_000_000,
                    reference: false,
                };
                respond_into(&snapshot, incoming, &mut with, &mut Outcome::default(), out)
            };
            ask(&mut memo, &mut out);
            let rrsig = [0, 46, 0, 1];
            assert!(out.windows(4).any(|w| w == rrsig), "{name}: signed");
            let label = format!("signed {name} with DO, {algorithm:?} (worker)");
            c.bench_function(&label, |b| b.iter(|| ask(&mut memo, &mut out)));
        }
    }
}

/// The length of the question name of query `q`.
fn name_len(q: &[u8]) -> usize {
    let mut at = 12;
    while q[at] != 0 {
        at += 1 + usize::from(q[at]);
    }
    at + 1 - 12
}

criterion_group!(benches, answer_path, large_zone, signing);
criterion_main!(benches);
