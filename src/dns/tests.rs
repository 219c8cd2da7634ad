//! The answer path end to end without sockets, and the fast encoder against hickory's
//! reference: random queries (names, case, types, EDNS, ECS, payload sizes, garbage), both
//! replies decoded and compared section by section.

use std::net::IpAddr;

use hickory_proto::op::Header;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::cookies::{Cookies, RequestCookie, Verdict};
use super::memo::Memo;
use super::request::{self, Read};
use super::respond::{Incoming, Outcome, Responder, Settings, Transport, respond, respond_into};
use crate::fixture;
use crate::snapshot::Snapshot;
use crate::zone::NameKey;
use hickory_proto::op::Message;

const ZONE: &str = r#"
    ns = ["ns1", "ns2.elsewhere.example."]
    [soa]
    mname = "ns1"
    rname = "hostmaster"
    serial = 9
    minimum = 60
    [[records]]
    name = "ns1"
    type = "A"
    data = ["192.0.2.53"]
    [[records]]
    name = "@"
    type = "MX"
    data = ["10 mail", "20 mx.elsewhere.example."]
    [[records]]
    name = "mail"
    type = "AAAA"
    data = ["2001:db8::25"]
    [[records]]
    name = "docs"
    type = "CNAME"
    data = ["web"]
    [[records]]
    name = "out"
    type = "CNAME"
    data = ["www.elsewhere.example."]
    [[records]]
    name = "sub"
    type = "NS"
    data = ["ns.sub"]
    [[records]]
    name = "ns.sub"
    type = "A"
    data = ["192.0.2.99"]
    [[records]]
    name = "big"
    type = "TXT"
    data = ["\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"", "\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"", "\"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"", "\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"", "\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\""]
    [[records]]
    name = "_sip._udp"
    type = "SRV"
    data = ["10 60 5060 ns1"]
    [[records]]
    name = "@"
    type = "CAA"
    data = ['0 issue "ca.example"']
    [[records]]
    name = "*.wild"
    type = "A"
    data = ["192.0.2.200", "192.0.2.201"]
    [[records]]
    name = "*.wild"
    type = "MX"
    data = ["10 mail"]
    [[records]]
    name = "*.alias"
    type = "CNAME"
    data = ["web"]
    [pools."*.cdn"]
    policy = "geo"
    [[pools."*.cdn".datacenters]]
    name = "a"
    latitude = 40.0
    longitude = -75.0
    policy = "all"
    endpoints = ["198.51.100.21", "2001:db8:a::21"]
    [[pools."*.cdn".datacenters]]
    name = "b"
    latitude = 50.0
    longitude = 8.0
    policy = "all"
    endpoints = ["198.51.100.22"]
    [pools.web]
    policy = "all"
    endpoints = [{ address = "192.0.2.10" }, { address = "192.0.2.11" }, { address = "2001:db8::10" }]
    [pools.sticky]
    policy = "sticky"
    sticky_prefix_v4 = 16
    endpoints = ["192.0.2.31", { address = "192.0.2.32", weight = 3 }, "192.0.2.33", "2001:db8::31", "2001:db8::32"]
    [pools.least]
    policy = "least_load"
    max_answers = 2
    endpoints = ["192.0.2.41", "192.0.2.42", "192.0.2.43"]
    [pools.stickygeo]
    policy = "geo"
    [[pools.stickygeo.datacenters]]
    name = "a"
    latitude = 40.0
    longitude = -75.0
    policy = "sticky"
    endpoints = ["198.51.100.51", "198.51.100.52", "198.51.100.53"]
    [[pools.stickygeo.datacenters]]
    name = "b"
    latitude = 50.0
    longitude = 8.0
    policy = "least_load"
    endpoints = ["198.51.100.61", "198.51.100.62"]
    [pools.edge]
    policy = "geo"
    [pools.edge.nets]
    "10.0.0.0/8" = ["b"]
    [[pools.edge.datacenters]]
    name = "a"
    latitude = 40.0
    longitude = -75.0
    policy = "all"
    endpoints = [{ address = "198.51.100.1" }, { address = "2001:db8:a::1" }]
    [[pools.edge.datacenters]]
    name = "b"
    latitude = 50.0
    longitude = 8.0
    policy = "all"
    endpoints = [{ address = "198.51.100.2" }]
"#;

fn snapshot() -> Snapshot {
    snapshot_of(ZONE)
}

/// A snapshot of `zone` (as example.test.) with the bundled test GeoIP database.
fn snapshot_of(zone: &str) -> Snapshot {
    fixture::snapshot(&[("example.test.", zone)], fixture::Geo::Database)
}

fn random_case(rng: &mut fastrand::Rng, name: &str) -> String {
    name.chars()
        .map(|c| {
            if rng.bool() {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A COOKIE (RFC 7873) option's data for a random query: the client's alone, with a server
/// cookie we made or one we did not, or of a wrong length; mostly none.
fn random_cookie(rng: &mut fastrand::Rng) -> Vec<u8> {
    let client = [0x5a; 8];
    let ours = Cookies::new([7; 16], None).server_cookie(
        &RequestCookie::parse(&client).unwrap(),
        Verdict::ClientOnly,
        "127.0.0.1".parse().unwrap(),
        1_800_000_000,
    );
    match rng.u8(..16) {
        0 => client.to_vec(),
        1 => [client.as_slice(), &ours].concat(),
        2 => [client.as_slice(), &[9; 16]].concat(),
        3 => client[..5].to_vec(),
        _ => Vec::new(),
    }
}

fn query(rng: &mut fastrand::Rng) -> Vec<u8> {
    let names = [
        "example.test",
        "web.example.test",
        "edge.example.test",
        "docs.example.test",
        "out.example.test",
        "mail.example.test",
        "nope.example.test",
        "a.b.sub.example.test",
        "sub.example.test",
        "big.example.test",
        "_sip._udp.example.test",
        "_udp.example.test",
        "example.org",
        "ns1.example.test",
        ".",
        "x.wild.example.test",
        "a.b.wild.example.test",
        "wild.example.test",
        "x.alias.example.test",
        "x.cdn.example.test",
        "y.z.cdn.example.test",
        "sticky.example.test",
        "least.example.test",
        "stickygeo.example.test",
    ];
    let types = [1u16, 28, 2, 6, 15, 16, 33, 257, 5, 255, 43, 12, 99];
    let pick = rng.usize(..names.len());
    let name = random_case(rng, names[pick]);
    let mut q = Vec::new();
    q.extend_from_slice(&rng.u16(..).to_be_bytes());
    q.extend_from_slice(&[
        if rng.bool() { 0x01 } else { 0x00 },
        if rng.bool() { 0x10 } else { 0 },
    ]);
    let edns = rng.u8(..4);
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns > 0)]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&types[rng.usize(..types.len())].to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if edns > 0 {
        let payload: u16 = [512u16, 1232, 4096, 100][rng.usize(..4)];
        let mut options = Vec::new();
        if edns > 1 {
            let (family, source, addr): (u16, u8, Vec<u8>) = match rng.u8(..5) {
                0 => (1, 24, vec![81, 2, 69]),
                1 => (1, 24, vec![8, 8, 8]),
                2 => (1, 16, vec![10, 1]),
                3 => (2, 48, vec![0x2a, 0x00, 0x14, 0x50, 0, 0]),
                _ => (1, 0, vec![]),
            };
            options.extend_from_slice(&8u16.to_be_bytes());
            options.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
            options.extend_from_slice(&family.to_be_bytes());
            options.extend_from_slice(&[source, 0]);
            options.extend_from_slice(&addr);
        }
        // NSID (RFC 5001), asked now and then, before or after the Client Subnet.
        match rng.u8(..4) {
            0 => options.extend_from_slice(&[0, 3, 0, 0]),
            1 => options.splice(0..0, [0, 3, 0, 0]).for_each(drop),
            _ => {}
        }
        let cookie = random_cookie(rng);
        if !cookie.is_empty() {
            options.extend_from_slice(&10u16.to_be_bytes());
            options.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
            options.extend_from_slice(&cookie);
        }
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&payload.to_be_bytes());
        let do_bit = if rng.bool() { 0x80 } else { 0 };
        q.extend_from_slice(&[0, 0, do_bit, 0]);
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(&options);
    }
    // Now and then, damage it.
    if rng.u8(..20) == 0 {
        let at = rng.usize(..q.len());
        q[at] = rng.u8(..);
    }
    q
}

#[test]
fn rotating_pools_rotate_through_the_memo() {
    let snapshot = snapshot_of(
        r#"
        ns = ["ns1"]
        [soa]
        mname = "ns1"
        rname = "hostmaster"
        serial = 1
        [pools.rr]
        policy = "round_robin"
        endpoints = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        [pools.fixed]
        policy = "all"
        endpoints = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        "#,
    );
    let mut memo = Memo::default();
    let mut first = |name: &[u8]| {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
        let mut out = Vec::new();
        let source = "127.0.0.1".parse().unwrap();
        let mut rng = fastrand::Rng::new();
        let outcome = &mut Outcome::default();
        let incoming = Incoming {
            query: &q,
            source,
            transport: Transport::Udp,
        };
        let mut with = Responder {
            rng: &mut rng,
            memo: Some(&mut memo),
            settings: &Settings::new(1232),
            now: 1_800_000_000,
            reference: false,
        };
        assert!(respond_into(
            &snapshot, incoming, &mut with, outcome, &mut out
        ));
        let reply = Message::from_vec(&out).unwrap();
        reply.answers[0].data.clone()
    };
    let rotated: Vec<_> = (0..3).map(|_| first(b"\x02rr")).collect();
    assert!(
        rotated[0] != rotated[1] && rotated[1] != rotated[2],
        "{rotated:?}"
    );
    let fixed: Vec<_> = (0..3).map(|_| first(b"\x05fixed")).collect();
    assert!(fixed.iter().all(|f| *f == fixed[0]), "{fixed:?}");
    // Both from the memo after their first time, the rotation rotating the copy.
    assert_eq!(memo.hits, 4);
}

#[test]
fn names_over_255_bytes_are_formerr_and_255_bytes_are_fine() {
    let snapshot = snapshot();
    let query = |labels: &[usize]| {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for &len in labels {
            q.push(len as u8);
            q.extend(std::iter::repeat_n(b'a', len));
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    };
    let rcode = |q: &[u8]| {
        let reply = respond(
            &snapshot,
            q,
            "127.0.0.1".parse().unwrap(),
            Transport::Udp,
            1232,
            &mut fastrand::Rng::new(),
        )
        .unwrap();
        reply[3] & 0x0f
    };
    // 1+63 + 1+63 + 1+63 + 1+61 + 1 = 255 bytes: a name of another zone, REFUSED.
    assert_eq!(rcode(&query(&[63, 63, 63, 61])), 5);
    // One byte more: FORMERR, as hickory's decoder says.
    assert_eq!(rcode(&query(&[63, 63, 63, 62])), 1);
    assert!(Message::from_vec(&query(&[63, 63, 63, 62])).is_err());
}

/// The lean reads (header, usual request) read what hickory's whole-message decoder reads;
/// true where the usual read took the query.
fn lean_reads_what_hickory_reads(q: &[u8]) -> bool {
    let hickory = Header::read(&mut BinDecoder::new(q)).ok();
    assert_eq!(request::read_header(q), hickory, "{q:?}");
    let labels = request::question_labels(q);
    let source = "192.0.2.7".parse().unwrap();
    let Some(usual) = request::read_usual(q, labels.as_ref(), source) else {
        return false;
    };
    let Read::Question(whole) = request::read_whole(q, labels.as_ref(), source) else {
        panic!("{q:?}: the usual read took what hickory's refuses");
    };
    assert_eq!(usual.metadata, whole.metadata, "{q:?}");
    assert_eq!(usual.qtype, whole.qtype, "{q:?}");
    assert_eq!(usual.edns, whole.edns, "{q:?}");
    assert_eq!(usual.options, whole.options, "{q:?}");
    assert_eq!(
        (usual.used, usual.client),
        (whole.used, whole.client),
        "{q:?}"
    );
    // The zone key read from the bytes is the decoded name's key.
    let mut wire_key = NameKey::empty();
    usual.key_into(&mut wire_key);
    assert_eq!(
        wire_key.as_bytes(),
        NameKey::new(&whole.name()).as_bytes(),
        "{q:?}"
    );
    true
}

#[test]
fn fast_replies_mean_what_reference_replies_mean() {
    let settings = Settings {
        udp_payload: 1232,
        nsid: Some(b"meridian-test-1".as_slice().into()),
        cookies: Some(Cookies::new([7; 16], None)),
        rate_limit: None,
    };
    let snapshot = snapshot();
    let mut rng = fastrand::Rng::with_seed(20261121);
    let mut compared = 0;
    let mut memo = Memo::default();
    let mut usual = 0;
    for _ in 0..20_000 {
        let q = query(&mut rng);
        usual += usize::from(lean_reads_what_hickory_reads(&q));
        let transport = if rng.u8(..4) == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let source: IpAddr = ["127.0.0.1", "10.9.9.9", "81.2.69.160"][rng.usize(..3)]
            .parse()
            .unwrap();
        let run = |fast: bool, memo: Option<&mut Memo>| {
            let mut rng = fastrand::Rng::with_seed(1);
            let mut outcome = Outcome::default();
            // A used buffer, as the UDP workers pass: the reply must replace its bytes.
            let mut out = vec![0xa5; 700];
            let incoming = Incoming {
                query: &q,
                source,
                transport,
            };
            let mut with = Responder {
                rng: &mut rng,
                memo,
                settings: &settings,
                now: 1_800_000_000,
                reference: !fast,
            };
            let sent = respond_into(&snapshot, incoming, &mut with, &mut outcome, &mut out);
            let seen = (
                outcome.qtype,
                outcome.rcode,
                outcome.zone.map(std::ptr::from_ref),
                outcome
                    .served
                    .map(|s| (std::ptr::from_ref(s.set), s.datacenter)),
                outcome.subnet,
            );
            sent.then_some((out, seen))
        };
        // Through the memo (which earlier queries filled), twice: the same bytes and the
        // same outcome as encoding afresh.
        let fresh = run(true, None);
        for _ in 0..2 {
            assert_eq!(run(true, Some(&mut memo)), fresh, "{q:?}");
        }
        let (Some((fast, _)), Some((reference, _))) = (fresh, run(false, None)) else {
            assert_eq!(run(true, None), None);
            continue;
        };
        let a = Message::from_vec(&fast).unwrap_or_else(|e| panic!("{e}: {q:?}"));
        let b = Message::from_vec(&reference).unwrap();
        assert_eq!(a.metadata, b.metadata, "{q:?}");
        assert_eq!(a.queries, b.queries, "{q:?}");
        // Record equality (RFC 2136) ignores the TTL: compare it too. Owner names may come
        // back in the question's case (a pointer into it): names compare case-insensitively.
        let full = |rs: &[Record]| -> Vec<String> {
            rs.iter()
                .map(|r| {
                    format!(
                        "{} {} {} {}",
                        r.name.to_lowercase(),
                        r.ttl,
                        r.record_type(),
                        r.data
                    )
                })
                .collect()
        };
        assert_eq!(full(&a.answers), full(&b.answers), "{q:?}");
        assert_eq!(full(&a.authorities), full(&b.authorities), "{q:?}");
        assert_eq!(full(&a.additionals), full(&b.additionals), "{q:?}");
        assert_eq!(a.edns, b.edns, "{q:?}");
        // The question's letter case comes back as sent.
        if let (Some(qa), Ok(orig)) = (a.queries.first(), Message::from_vec(&q)) {
            assert!(qa.name().eq_case(orig.queries[0].name()));
        }
        compared += 1;
    }
    assert!(compared > 15_000, "{compared}");
    // Most queries take the usual read, the rest exercise hickory's.
    assert!((5_000..19_000).contains(&usual), "{usual}");
    // Most questions have fixed answers: the memo answered them after the first time.
    assert!(memo.hits > 10_000, "{}", memo.hits);
}
