//! Item 1 of the core issue: authoritative behaviour as dig sees it, on the bundled zone.

use crate::harness::{Reply, Server};

#[test]
fn answers_carry_aa_and_never_ra() {
    let s = Server::start_default();
    let r = s.dig(&["www.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(r.has_flag("aa") && r.has_flag("qr"), "{:?}", r.flags);
    assert!(!r.has_flag("ra"), "{:?}", r.flags);
    assert_eq!(r.answer.len(), 4, "{}", r.raw);
    // www's backends are down (nothing listens): all served (fail open) at half the TTL.
    for line in &r.answer {
        assert_eq!(Reply::ttl(line), 15, "degraded pool TTL: {line}");
    }
    let api = s.dig(&["api.example.test", "A"]);
    assert_eq!(Reply::ttl(&api.answer[0]), 30, "pool TTL");
}

#[test]
fn names_outside_our_zones_are_refused() {
    let s = Server::start_default();
    for name in ["example.com", "test", "."] {
        let r = s.dig(&[name, "A"]);
        assert_eq!(r.status, "REFUSED", "{name}: {}", r.raw);
        assert!(!r.has_flag("aa"));
        assert!(r.answer.is_empty() && r.authority.is_empty());
    }
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let s = Server::start_default();
    let nx = s.dig(&["nothing-here.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    assert!(nx.has_flag("aa"));
    assert!(nx.answer.is_empty());
    assert_eq!(nx.authority.len(), 1, "{}", nx.raw);
    assert_eq!(Reply::rtype(&nx.authority[0]), "SOA");
    // Negative TTL: min(SOA TTL 3600, MINIMUM 300).
    assert_eq!(Reply::ttl(&nx.authority[0]), 300);

    let nodata = s.dig(&["mail.example.test", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR", "{}", nodata.raw);
    assert!(nodata.has_flag("aa"));
    assert!(nodata.answer.is_empty());
    assert_eq!(Reply::rtype(&nodata.authority[0]), "SOA");
    assert_eq!(Reply::ttl(&nodata.authority[0]), 300);

    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let ent = s.dig(&["_udp.example.test", "SRV"]);
    assert_eq!(ent.status, "NOERROR", "{}", ent.raw);
    assert_eq!(ent.authority.len(), 1);
}

#[test]
fn static_record_types() {
    let s = Server::start_default();
    let cases = [
        (
            "example.test",
            "SOA",
            "ns1.example.test. hostmaster.example.test. 2026112101 3600 600 1209600 300",
        ),
        ("example.test", "MX", "10 mail.example.test."),
        ("example.test", "TXT", "\"v=spf1 mx -all\""),
        ("example.test", "CAA", "0 issue \"letsencrypt.org\""),
        ("mail.example.test", "A", "192.0.2.25"),
        (
            "_sip._udp.example.test",
            "SRV",
            "10 60 5060 sip.example.test.",
        ),
    ];
    for (name, rtype, want) in cases {
        let r = s.dig(&[name, rtype]);
        assert_eq!(r.status, "NOERROR", "{name} {rtype}: {}", r.raw);
        assert!(r.has_flag("aa"));
        assert!(
            r.answer_data().iter().any(|d| d == want),
            "{name} {rtype}: want {want}, got {:?}",
            r.answer_data()
        );
    }
    let ns = s.dig(&["example.test", "NS"]);
    assert_eq!(ns.answer.len(), 2, "{}", ns.raw);
    // Glue for in-zone name servers and MX/SRV targets.
    assert!(
        ns.additional.iter().any(|l| l.contains("192.0.2.53")),
        "{}",
        ns.raw
    );
    let srv = s.dig(&["_sip._udp.example.test", "SRV"]);
    assert_eq!(srv.answer.len(), 2);
    assert!(
        srv.additional.iter().any(|l| l.contains("203.0.113.61")),
        "{}",
        srv.raw
    );
}

#[test]
fn cname_answers_include_the_in_zone_chain() {
    let s = Server::start_default();
    let r = s.dig(&["docs.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(Reply::rtype(&r.answer[0]), "CNAME");
    assert!(r.answer[0].ends_with("www.example.test."));
    let a: Vec<_> = r.answer.iter().filter(|l| Reply::rtype(l) == "A").collect();
    assert_eq!(a.len(), 4, "{}", r.raw);
    let aaaa = s.dig(&["docs.example.test", "AAAA"]);
    assert_eq!(aaaa.answer.len(), 3, "{}", aaaa.raw);
}

#[test]
fn question_case_is_echoed() {
    let s = Server::start_default();
    let r = s.dig(&["WwW.ExAmPlE.TeSt", "A"]);
    assert_eq!(r.status, "NOERROR");
    assert!(
        r.question[0].starts_with(";WwW.ExAmPlE.TeSt."),
        "{:?}",
        r.question
    );
}

#[test]
fn edns_opt_payload_and_badvers() {
    let s = Server::start_default();
    let with = s.dig(&["www.example.test", "A"]);
    let edns = with.edns.expect("OPT in reply to an EDNS query");
    assert!(
        edns.contains("version: 0") && edns.contains("udp: 1232"),
        "{edns}"
    );

    let without = s.dig(&["+noedns", "www.example.test", "A"]);
    assert_eq!(without.status, "NOERROR");
    assert!(without.edns.is_none(), "{}", without.raw);

    let bad = s.dig(&["+edns=1", "+noednsneg", "www.example.test", "A"]);
    assert_eq!(bad.status, "BADVERS", "{}", bad.raw);
    assert!(bad.answer.is_empty());
    assert!(bad.edns.unwrap().contains("version: 0"));
}

#[test]
fn any_is_answered_minimally() {
    let s = Server::start_default();
    let r = s.dig(&["example.test", "ANY"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(!r.answer.is_empty());
    let types: std::collections::HashSet<_> = r.answer.iter().map(|l| Reply::rtype(l)).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {:?}", r.answer);
}

#[test]
fn ipv6_listener_and_tcp() {
    let s = Server::start_default();
    let r = s.dig6(&["www.example.test", "AAAA"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(r.answer_data().len(), 2);
    assert!(r.answer_data().iter().all(|a| a.starts_with("2001:db8::")));
    let t = s.dig(&["+tcp", "example.test", "MX"]);
    assert_eq!(t.answer_data(), ["10 mail.example.test."], "{}", t.raw);
    let t6 = s.dig6(&["+tcp", "example.test", "SOA"]);
    assert_eq!(t6.status, "NOERROR");
    assert!(t6.has_flag("aa"));
}

/// A zone with a TXT set too large for 512 bytes, a delegation and a reverse zone.
const BIG: &str = r#"
ns = ["ns1"]
[soa]
mname = "ns1"
rname = "hostmaster"
serial = 7
[[records]]
name = "ns1"
type = "A"
data = ["192.0.2.1"]
[[records]]
name = "big"
type = "TXT"
data = [
  "\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
  "\"6123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"",
]
[[records]]
name = "child"
type = "NS"
data = ["ns.child", "ns.elsewhere.example."]
[[records]]
name = "ns.child"
type = "A"
data = ["192.0.2.77"]
"#;

const REVERSE: &str = r#"
ns = ["ns1.big.test."]
[soa]
mname = "ns1.big.test."
rname = "hostmaster.big.test."
serial = 1
[[records]]
name = "10"
type = "PTR"
data = ["www.example.test."]
"#;

#[test]
fn oversized_udp_answers_set_tc_and_come_whole_over_tcp() {
    let s = Server::start(&[("big.test.toml", BIG)]);
    let udp = s.dig(&["+ignore", "+bufsize=512", "big.big.test", "TXT"]);
    assert!(udp.has_flag("tc"), "{}", udp.raw);
    assert!(udp.answer.is_empty());
    let plain = s.dig(&["+ignore", "+noedns", "big.big.test", "TXT"]);
    assert!(plain.has_flag("tc"), "{}", plain.raw);
    // dig retries over TCP by itself when it sees TC.
    let retried = s.dig(&["+bufsize=512", "big.big.test", "TXT"]);
    assert!(!retried.has_flag("tc"));
    assert_eq!(retried.answer.len(), 7, "{}", retried.raw);
    let tcp = s.dig(&["+tcp", "big.big.test", "TXT"]);
    assert_eq!(tcp.answer.len(), 7);
    // With our 1232-byte payload it fits.
    let big = s.dig(&["+ignore", "big.big.test", "TXT"]);
    assert!(!big.has_flag("tc"));
    assert_eq!(big.answer.len(), 7);
}

#[test]
fn delegations_are_referrals_with_glue() {
    let s = Server::start(&[("big.test.toml", BIG)]);
    let r = s.dig(&["www.child.big.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(!r.has_flag("aa"), "a referral is not authoritative");
    assert!(r.answer.is_empty());
    assert_eq!(r.authority.len(), 2, "{}", r.raw);
    assert!(r.authority.iter().all(|l| Reply::rtype(l) == "NS"));
    assert_eq!(r.additional.len(), 1, "{}", r.raw);
    assert!(r.additional[0].contains("192.0.2.77"));
}

#[test]
fn reverse_zone_ptr() {
    let s = Server::start(&[
        ("big.test.toml", BIG),
        ("2.0.192.in-addr.arpa.toml", REVERSE),
    ]);
    let r = s.dig(&["-x", "192.0.2.10"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(r.answer_data(), ["www.example.test."]);
    assert!(r.has_flag("aa"));
}

const MASTER: &str = "$ORIGIN legacy.test.
$TTL 600
@       IN SOA ns1 hostmaster ( 42 3600 600 1209600 120 )
        IN NS  ns1
ns1     IN A   192.0.2.1
www     IN A   192.0.2.80
        IN AAAA 2001:db8::80
mail    IN MX  10 www
";

#[test]
fn master_files_are_served_alone_or_named_from_toml() {
    let mixed_toml = r#"
master_file = "mixed.test.zone"
[pools.www]
policy = "all"
endpoints = [{ address = "192.0.2.90" }, { address = "192.0.2.91" }]
"#;
    let mixed_zone = "$TTL 300
@ IN SOA ns1.mixed.test. hm.mixed.test. 5 3600 600 1209600 60
@ IN NS ns1.mixed.test.
ns1 IN A 192.0.2.2
";
    let s = Server::start(&[
        ("legacy.test.zone", MASTER),
        ("mixed.test.toml", mixed_toml),
        ("mixed.test.zone", mixed_zone),
    ]);
    let r = s.dig(&["www.legacy.test", "AAAA"]);
    assert_eq!(r.answer_data(), ["2001:db8::80"], "{}", r.raw);
    assert_eq!(Reply::ttl(&r.answer[0]), 600);
    let soa = s.dig(&["legacy.test", "SOA"]);
    assert!(soa.answer_data()[0].contains(" 42 "), "{}", soa.raw);
    let nx = s.dig(&["none.legacy.test", "A"]);
    assert_eq!(Reply::ttl(&nx.authority[0]), 120);
    let pool = s.dig(&["www.mixed.test", "A"]);
    assert_eq!(
        pool.answer_data(),
        ["192.0.2.90", "192.0.2.91"],
        "{}",
        pool.raw
    );
    let ns1 = s.dig(&["ns1.mixed.test", "A"]);
    assert_eq!(ns1.answer_data(), ["192.0.2.2"]);
}
