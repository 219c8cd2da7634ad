//! Raw datagrams through the whole answer path, with wildcards, a geo pool steered by ECS
//! (one datacenter sticky), sticky and least-load pools, CNAMEs, cookies and NSID in play:
//! never a panic, and a UDP worker's memoized reply is the byte-for-byte reply a fresh answer
//! gives.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meridian::dns::cookies::Cookies;
use meridian::dns::memo::Memo;
use meridian::dns::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
use meridian::fixture::{self, Geo, ZONE_HEAD};
use meridian::snapshot::Snapshot;

const ZONE: &str = r#"
[[records]]
name = "*.wild"
type = "A"
data = ["192.0.2.200"]
[[records]]
name = "*.alias"
type = "CNAME"
data = ["www"]
[[records]]
name = "docs"
type = "CNAME"
data = ["www"]
[[records]]
name = "@"
type = "MX"
data = ["10 mail"]
[[records]]
name = "mail"
type = "A"
data = ["192.0.2.25"]
[[records]]
name = "sub"
type = "NS"
data = ["ns.sub"]
[pools.www]
policy = "all"
endpoints = ["192.0.2.10", "2001:db8::10"]
[pools.sticky]
policy = "sticky"
endpoints = ["192.0.2.31", { address = "192.0.2.32", weight = 3 }, "2001:db8::31"]
[pools.least]
policy = "least_load"
endpoints = ["192.0.2.41", "192.0.2.42"]
[pools."*.cdn"]
policy = "geo"
[[pools."*.cdn".datacenters]]
name = "us"
latitude = 39.0
longitude = -77.5
endpoints = ["192.0.2.101"]
[[pools."*.cdn".datacenters]]
name = "eu"
latitude = 50.1
longitude = 8.7
policy = "sticky"
endpoints = ["198.51.100.101", "198.51.100.102"]
"#;

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let zone = format!("{ZONE_HEAD}{ZONE}");
        fixture::snapshot(&[("example.test.", &zone)], Geo::Steered)
    })
}

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        udp_payload: 1232,
        nsid: Some(b"fuzz".as_slice().into()),
        cookies: Some(Cookies::new([7; 16], None)),
        rate_limit: None,
    })
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

fuzz_target!(|query: &[u8]| {
    let source = "81.2.69.160".parse().unwrap();
    let answer = |transport, memo: Option<&mut Memo>| {
        let mut rng = fastrand_rng();
        let mut out = Vec::new();
        let incoming = Incoming {
            query,
            source,
            transport,
        };
        let mut with = Responder {
            rng: &mut rng,
            memo,
            settings: settings(),
            now: 1_800_000_000,
            reference: false,
        };
        let sent = respond_into(
            snapshot(),
            incoming,
            &mut with,
            &mut Outcome::default(),
            &mut out,
        );
        sent.then_some(out)
    };
    let fresh = answer(Transport::Udp, None);
    let memoized = MEMO.with(|m| answer(Transport::Udp, Some(&mut m.borrow_mut())));
    assert_eq!(fresh, memoized, "a memoized reply differs from a fresh one");
    let _ = answer(Transport::Tcp, None);
});

/// The RNG the answer path takes (its pools here are not random).
fn fastrand_rng() -> meridian::dns::respond::Rng {
    meridian::dns::respond::Rng::with_seed(1)
}
