//! Wildcards (RFC 4592) against the running binary: RFC 4592 §2.2.1's example zone as a master
//! file, question by question, and wildcard pools, CNAMEs and empty non-terminals in TOML.

use crate::harness::{Reply, Server, ZONE_HEAD};

/// RFC 4592 §2.2.1's example zone, as an RFC 1035 master file.
const RFC4592: &str = r#"$TTL 3600
example.                 IN  SOA   ns.example.com. hostmaster.example. 1 3600 600 1209600 300
example.                     NS    ns.example.com.
example.                     NS    ns.example.net.
*.example.                   TXT   "this is a wildcard"
*.example.                   MX    10 host1.example.
sub.*.example.               TXT   "this is not a wildcard"
host1.example.               A     192.0.2.1
_ssh._tcp.host1.example.     SRV   0 0 22 host1.example.
_ssh._tcp.host2.example.     SRV   0 0 22 host2.example.
subdel.example.              NS    ns.example.com.
subdel.example.              NS    ns.example.net.
"#;

/// The answer section as "owner type data" lines.
fn answers(r: &Reply) -> Vec<String> {
    r.answer
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {} {}", f[0], f[3], f[4..].join(" "))
        })
        .collect()
}

#[test]
fn the_rfc_4592_examples_as_a_master_file() {
    let s = Server::start(&[("example.zone", RFC4592)]);
    // (question, type, rcode, answer, AA): RFC 4592 §2.2.1's examples.
    let table: &[(&str, &str, &str, &[&str], bool)] = &[
        (
            "host3.example.",
            "MX",
            "NOERROR",
            &["host3.example. MX 10 host1.example."],
            true,
        ),
        ("host3.example.", "A", "NOERROR", &[], true),
        (
            "foo.bar.example.",
            "TXT",
            "NOERROR",
            &["foo.bar.example. TXT \"this is a wildcard\""],
            true,
        ),
        ("host1.example.", "MX", "NOERROR", &[], true),
        ("sub.*.example.", "MX", "NOERROR", &[], true),
        ("_telnet._tcp.host1.example.", "SRV", "NXDOMAIN", &[], true),
        ("host.subdel.example.", "A", "NOERROR", &[], false),
        ("ghost.*.example.", "MX", "NXDOMAIN", &[], true),
    ];
    for &(name, rtype, rcode, answer, aa) in table {
        let r = s.dig(&[name, rtype]);
        assert_eq!(r.status, rcode, "{name} {rtype}: {}", r.raw);
        assert_eq!(answers(&r), answer, "{name} {rtype}: {}", r.raw);
        assert_eq!(r.has_flag("aa"), aa, "{name} {rtype}: {}", r.raw);
        match (answer.is_empty(), aa) {
            // NODATA and NXDOMAIN carry the SOA; the referral the delegation's NS set.
            (true, true) => assert_eq!(Reply::rtype(&r.authority[0]), "SOA", "{}", r.raw),
            (true, false) => assert_eq!(Reply::rtype(&r.authority[0]), "NS", "{}", r.raw),
            (false, _) => {}
        }
    }
    // The synthesized MX gets its glue like any other.
    let r = s.dig(&["host3.example.", "MX"]);
    assert_eq!(r.additional.len(), 1, "{}", r.raw);
    assert!(r.additional[0].starts_with("host1.example. "), "{}", r.raw);
}

#[test]
fn wildcard_pools_cnames_and_empty_non_terminals() {
    let zone = format!(
        r#"{ZONE_HEAD}
[[records]]
name = "*.alias"
type = "CNAME"
data = ["www"]
[[records]]
name = "*.w"
type = "TXT"
data = ['"wild"']
[[records]]
name = "a.b.w"
type = "TXT"
data = ['"real"']
[pools.www]
policy = "all"
endpoints = ["192.0.2.10"]
[pools."*.cdn"]
policy = "geo"
ttl = 20
[[pools."*.cdn".datacenters]]
name = "us"
latitude = 39.04
longitude = -77.49
endpoints = ["192.0.2.101"]
[[pools."*.cdn".datacenters]]
name = "eu"
latitude = 50.11
longitude = 8.68
endpoints = ["198.51.100.101"]
"#
    );
    let geoip = crate::harness::repo().join("geoip/meridian-test.mmdb");
    let s = Server::start_geo(&[("example.test.toml", &zone)], Some(&geoip));
    // A geo pool at a wildcard: the asked name owns the answer, steered by ECS, with its scope;
    // asked twice, so the second answer (from a UDP worker's memo, were it memoized) agrees.
    for _ in 0..2 {
        for name in ["img.cdn.example.test.", "a.b.cdn.example.test."] {
            let r = s.dig(&["+subnet=81.2.69.0/24", name, "A"]);
            assert_eq!(
                answers(&r),
                [format!("{name} A 198.51.100.101")],
                "{}",
                r.raw
            );
            assert_eq!(Reply::ttl(&r.answer[0]), 20);
            assert!(r.has_flag("aa"));
            assert!(
                r.raw.contains("CLIENT-SUBNET: 81.2.69.0/24/24"),
                "{}",
                r.raw
            );
        }
    }
    // The wildcard's parent is an empty non-terminal: NODATA.
    let r = s.dig(&["cdn.example.test.", "A"]);
    assert_eq!(
        (r.status.as_str(), r.answer.len()),
        ("NOERROR", 0),
        "{}",
        r.raw
    );
    // A CNAME at a wildcard, followed to its target.
    let r = s.dig(&["x.alias.example.test.", "A"]);
    assert_eq!(
        answers(&r),
        [
            "x.alias.example.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.10"
        ],
        "{}",
        r.raw
    );
    // b.w exists (an empty non-terminal above a.b.w): it blocks the wildcard; c.w does not.
    let r = s.dig(&["b.w.example.test.", "TXT"]);
    assert_eq!(
        (r.status.as_str(), r.answer.len()),
        ("NOERROR", 0),
        "{}",
        r.raw
    );
    let r = s.dig(&["c.w.example.test.", "TXT"]);
    assert_eq!(answers(&r), ["c.w.example.test. TXT \"wild\""], "{}", r.raw);
    let r = s.dig(&["x.b.w.example.test.", "TXT"]);
    assert_eq!(r.status, "NXDOMAIN", "{}", r.raw);
}
