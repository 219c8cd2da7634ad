//! TSIG (RFC 8945) on every signed exchange, driven by the clients and secondaries operators
//! run: `dig -y` and dnspython's signed queries, `nsupdate` without a `zone` line (it finds the
//! zone with a signed SOA query), BIND 9 and Knot as secondaries with a key.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Server, ZONE_HEAD, eventually, nsupdate};
use crate::peers::{Key, Peer};

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
const OTHER_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMzI=";
const KEY: Key<'static> = Key {
    name: "acme",
    secret: SECRET,
};

fn zone() -> String {
    format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"all\"\nendpoints = [\"192.0.2.1\"]\n\
         [[records]]\nname = \"txt\"\ntype = \"TXT\"\ndata = ['\"v=spf1 mx -all\"']\n"
    )
}

fn server(extra: &str) -> Server {
    let config = format!(
        "[[tsig]]\nname = \"acme\"\nsecret = \"{SECRET}\"\nzones = [\"t.test\"]\n\
         operations = [\"update\", \"transfer\", \"notify\"]\n{extra}"
    );
    Server::start_config(&[("t.test.toml", &zone())], &config)
}

fn dig(s: &Server, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &s.port.to_string(),
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn signed_queries_get_signed_replies_and_bad_signatures_get_notauth() {
    let s = server("");
    let key = format!("hmac-sha256:acme:{SECRET}");
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&s, &[transport, "-y", &key, "p.t.test", "A"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("192.0.2.1"), "{out}");
        // dig checks the reply's MAC; without one it says "Couldn't verify signature".
        assert!(out.contains("TSIG PSEUDOSECTION"), "{transport}: {out}");
        assert!(!out.contains("Couldn't verify"), "{transport}: {out}");
        assert!(
            !out.contains("could not be validated"),
            "{transport}: {out}"
        );
    }
    // A wrong secret: NOTAUTH with BADSIG, unsigned (RFC 8945 §5.2.2).
    let out = dig(
        &s,
        &[
            "-y",
            &format!("hmac-sha256:acme:{OTHER_SECRET}"),
            "t.test",
            "SOA",
        ],
    );
    assert!(out.contains("status: NOTAUTH"), "{out}");
    assert!(out.contains("BADSIG"), "{out}");
    // A key we do not have: BADKEY.
    let out = dig(
        &s,
        &[
            "-y",
            &format!("hmac-sha256:stranger:{SECRET}"),
            "t.test",
            "SOA",
        ],
    );
    assert!(out.contains("status: NOTAUTH"), "{out}");
    assert!(out.contains("BADKEY"), "{out}");
    // Unsigned queries are answered as always.
    let out = dig(&s, &["p.t.test", "A"]);
    assert!(
        out.contains("status: NOERROR") && !out.contains("TSIG"),
        "{out}"
    );
}

/// dnspython checks every signed reply's MAC and raises on a missing or bad one.
#[test]
fn dnspython_verifies_every_signed_reply() {
    let s = server("");
    let script = format!(
        r#"
import time, dns.message, dns.query, dns.tsig, dns.tsigkeyring, dns.rcode
ring = dns.tsigkeyring.from_text({{"acme": ("hmac-sha256", "{SECRET}")}})
bad = dns.tsigkeyring.from_text({{"acme": ("hmac-sha256", "{OTHER_SECRET}")}})
def ask(name, rtype, keyring, tcp=False):
    q = dns.message.make_query(name, rtype)
    q.use_tsig(keyring, keyname="acme", algorithm=dns.tsig.HMAC_SHA256)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port={port}, timeout=3)
for tcp in (False, True):
    r = ask("txt.t.test.", "TXT", ring, tcp)
    assert r.had_tsig and r.rcode() == dns.rcode.NOERROR, r
    assert r.answer[0][0].strings == (b"v=spf1 mx -all",), r
    r = ask("nothing.t.test.", "A", ring, tcp)
    assert r.had_tsig and r.rcode() == dns.rcode.NXDOMAIN, r
try:
    ask("t.test.", "SOA", bad)
    raise SystemExit("a bad MAC was answered")
except dns.tsig.PeerBadSignature:
    print("BADSIG")
real = time.time
time.time = lambda: real() - 3600
try:
    ask("t.test.", "SOA", ring)
    raise SystemExit("a query an hour old was answered")
except dns.tsig.PeerBadTime:
    print("BADTIME")
"#,
        port = s.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "BADSIG\nBADTIME", "{stderr}");
}

/// nsupdate without a `zone` line asks for the SOA itself, signed, and needs the signed reply.
#[test]
fn nsupdate_finds_the_zone_with_a_signed_query() {
    let s = server("");
    let script = format!(
        "server 127.0.0.1 {}\nupdate add spf.t.test. 300 TXT \"v=spf1 mx -all\"\nsend\n",
        s.port
    );
    let (ok, stderr) = nsupdate(&["-y", &format!("hmac-sha256:acme:{SECRET}")], &script);
    assert!(ok, "{stderr}");
    assert_eq!(
        s.dig(&["spf.t.test", "TXT"]).answer_data(),
        ["\"v=spf1 mx -all\""]
    );
}

#[test]
fn bind_secondary_with_a_key_transfers_and_follows_notify() {
    let named_port = crate::peers::free_port();
    let s = server(&format!(
        "[transfer]\nnotify = [\"127.0.0.1:{named_port}\"]\nnotify_key = \"acme\"\n"
    ));
    let named = Peer::named_secondary(named_port, "t.test", s.port, &KEY);
    let at_named = |name: &str, rtype: &str| {
        let out = s.dig_raw("127.0.0.1", named.port, &[name, rtype]);
        crate::harness::Reply::parse(&out).answer_data().join("|")
    };
    eventually(Duration::from_secs(40), "BIND transferred the zone", || {
        at_named("txt.t.test", "TXT") == "\"v=spf1 mx -all\""
    });
    let script = format!(
        "server 127.0.0.1 {}\nzone t.test\nupdate add late.t.test. 60 TXT \"after\"\nsend\n",
        s.port
    );
    let (ok, stderr) = nsupdate(&["-y", &format!("hmac-sha256:acme:{SECRET}")], &script);
    assert!(ok, "{stderr}");
    eventually(Duration::from_secs(10), "BIND follows the NOTIFY", || {
        at_named("late.t.test", "TXT") == "\"after\""
    });
    let log = named.log();
    assert!(!log.contains("expected a TSIG"), "{log}");
    assert!(!log.contains("tsig verify failure"), "{log}");
}

#[test]
fn knot_secondary_refreshes_an_up_to_date_zone_without_an_error() {
    let s = server("");
    let knot = Peer::knot_secondary("t.test", s.port, &KEY);
    let at_knot = |name: &str, rtype: &str| {
        let out = s.dig_raw("127.0.0.1", knot.port, &[name, rtype]);
        crate::harness::Reply::parse(&out).answer_data().join("|")
    };
    eventually(Duration::from_secs(20), "Knot transferred the zone", || {
        at_knot("txt.t.test", "TXT") == "\"v=spf1 mx -all\""
    });
    let out = knot.knotc(&["zone-refresh", "t.test"]);
    assert!(out.contains("OK"), "{out}");
    eventually(
        Duration::from_secs(10),
        "Knot finds the zone up to date",
        || knot.log().contains("zone is up-to-date"),
    );
    let log = knot.log();
    assert!(!log.contains("TSIG"), "{log}");
    assert!(!log.contains("error"), "{log}");
}
