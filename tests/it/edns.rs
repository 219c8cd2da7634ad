//! EDNS in replies: the DO bit copied (RFC 3225) and NSID (RFC 5001) answered only when asked,
//! over UDP and TCP, in answers and in refusals.

use crate::harness::{Server, ZONE_HEAD};

#[test]
fn do_is_copied_and_nsid_is_answered_only_when_asked() {
    let zone = format!("{ZONE_HEAD}[pools.www]\npolicy = \"all\"\nendpoints = [\"192.0.2.10\"]\n");
    let s = Server::start_server(&[("example.test.toml", &zone)], "nsid = \"meridian-1\"\n");
    for transport in ["+notcp", "+tcp"] {
        // DO set: copied. Not set: not in the reply.
        let r = s.dig(&[transport, "+dnssec", "www.example.test", "A"]);
        let edns = r
            .edns
            .clone()
            .unwrap_or_else(|| panic!("no OPT: {}", r.raw));
        assert!(edns.contains("flags: do;"), "{}", r.raw);
        let r = s.dig(&[transport, "www.example.test", "A"]);
        assert!(r.edns.as_deref().unwrap().contains("flags:;"), "{}", r.raw);
        // NSID only for a query that asks, with what the config says.
        let r = s.dig(&[transport, "+nsid", "www.example.test", "A"]);
        assert!(r.raw.contains("(\"meridian-1\")"), "{}", r.raw);
        assert_eq!(r.answer_data(), ["192.0.2.10"]);
        let r = s.dig(&[transport, "www.example.test", "A"]);
        assert!(!r.raw.contains("NSID"), "{}", r.raw);
        // Refusals too: a name of no zone of ours.
        let r = s.dig(&[transport, "+nsid", "+dnssec", "example.org", "A"]);
        assert_eq!(r.status, "REFUSED");
        assert!(r.raw.contains("(\"meridian-1\")"), "{}", r.raw);
        assert!(
            r.edns.as_deref().unwrap().contains("flags: do;"),
            "{}",
            r.raw
        );
    }
    // Asked a second time from a UDP worker's memo: the same.
    for _ in 0..3 {
        let r = s.dig(&["+nsid", "+dnssec", "www.example.test", "A"]);
        assert!(r.raw.contains("(\"meridian-1\")"), "{}", r.raw);
        assert!(
            r.edns.as_deref().unwrap().contains("flags: do;"),
            "{}",
            r.raw
        );
        let r = s.dig(&["www.example.test", "A"]);
        assert!(!r.raw.contains("NSID"), "{}", r.raw);
    }
}

#[test]
fn without_nsid_configured_none_is_sent() {
    let s = Server::start(&[("example.test.toml", ZONE_HEAD)]);
    let r = s.dig(&["+nsid", "ns1.example.test", "A"]);
    assert_eq!(r.status, "NOERROR");
    assert_eq!(r.answer_data(), ["192.0.2.1"], "{}", r.raw);
    // The reply has our OPT record, and no NSID option in it.
    assert!(r.raw.contains("OPT PSEUDOSECTION"), "{}", r.raw);
    assert!(!r.raw.contains("NSID"), "{}", r.raw);
}
