//! DNS Cookies (RFC 7873, server cookies as RFC 9018 builds them) against the running binary.

use crate::harness::{Reply, Server, ZONE_HEAD};

const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

/// The COOKIE option of a reply as dig prints it (hex), if any.
fn cookie(r: &Reply) -> Option<String> {
    r.raw.lines().find_map(|l| {
        let rest = l.strip_prefix("; COOKIE: ")?;
        Some(rest.split_whitespace().next()?.to_owned())
    })
}

fn server(secret: &str) -> Server {
    let config = format!("[cookies]\nsecret = \"{secret}\"\n");
    Server::start_config(&[("example.test.toml", ZONE_HEAD)], &config)
}

#[test]
fn a_server_cookie_is_learned_then_accepted_and_a_bad_one_is_answered_badcookie() {
    let s = server(SECRET);
    // A client cookie alone: answered, with our server cookie (RFC 7873 §5.2.3).
    let r = s.dig(&["+cookie=0102030405060708", "ns1.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(r.answer_data(), ["192.0.2.1"]);
    let learned = cookie(&r).unwrap_or_else(|| panic!("no cookie: {}", r.raw));
    assert_eq!(learned.len(), 48, "client 8 + server 16 bytes: {learned}");
    assert!(learned.starts_with("0102030405060708" /* echoed */));
    assert_eq!(
        &learned[16..24],
        "01000000",
        "version 1, reserved (RFC 9018)"
    );
    // Sent back: valid, answered (§5.2.5).
    let r = s.dig(&[
        "+nobadcookie",
        &format!("+cookie={learned}"),
        "ns1.example.test",
        "A",
    ]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(r.raw.contains("(good)"), "{}", r.raw);
    // A server cookie we did not make: BADCOOKIE with ours over UDP (§5.2.4) ...
    let bad = format!("0102030405060708{}", "11".repeat(16));
    let r = s.dig(&[
        "+nobadcookie",
        &format!("+cookie={bad}"),
        "ns1.example.test",
        "A",
    ]);
    assert_eq!(r.status, "BADCOOKIE", "{}", r.raw);
    assert!(r.answer.is_empty());
    let fresh = cookie(&r).expect("BADCOOKIE carries our cookie");
    assert!(
        fresh.starts_with("0102030405060708") && fresh != bad,
        "{fresh}"
    );
    // ... which dig then retries with, and gets its answer.
    let r = s.dig(&[&format!("+cookie={bad}"), "ns1.example.test", "A"]);
    assert_eq!(
        (r.status.as_str(), r.answer_data()),
        ("NOERROR", vec!["192.0.2.1".to_owned()])
    );
    // Over TCP the connection vouches for the client: answered.
    let r = s.dig(&["+tcp", &format!("+cookie={bad}"), "ns1.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    // A COOKIE option of a wrong length: FORMERR (§5.2.2).
    let r = s.dig(&["+cookie=0102030405", "ns1.example.test", "A"]);
    assert_eq!(r.status, "FORMERR", "{}", r.raw);
    // Without a COOKIE option nothing changes.
    let r = s.dig(&["+nocookie", "ns1.example.test", "A"]);
    assert!(cookie(&r).is_none(), "{}", r.raw);
}

#[test]
fn servers_sharing_a_secret_accept_each_others_cookies() {
    let (a, b) = (server(SECRET), server(SECRET));
    let other = server("00112233445566778899aabbccddeeff");
    let r = a.dig(&["+cookie=a1a2a3a4a5a6a7a8", "ns1.example.test", "A"]);
    let from_a = cookie(&r).unwrap();
    let ask = |s: &Server| {
        let r = s.dig(&[
            "+nobadcookie",
            &format!("+cookie={from_a}"),
            "ns1.example.test",
            "A",
        ]);
        r.status
    };
    assert_eq!(ask(&b), "NOERROR");
    assert_eq!(ask(&other), "BADCOOKIE");
}

#[test]
fn cookies_can_be_turned_off() {
    let s = Server::start_config(
        &[("example.test.toml", ZONE_HEAD)],
        "[cookies]\nenabled = false\n",
    );
    let r = s.dig(&["+cookie=0102030405060708", "ns1.example.test", "A"]);
    assert_eq!(r.status, "NOERROR");
    assert!(cookie(&r).is_none(), "{}", r.raw);
}
