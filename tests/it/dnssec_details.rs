//! DNSSEC details of a zone Meridian signs itself: every record type's signature validates
//! (names in RDATA lowered for the canonical form where RFC 4034 §6.2 says), a wildcard's NODATA
//! proof lists the wildcard's own types, DS at a delegation is answered and carried in
//! referrals, NXNAME is never asked for (RFC 9824 §3.5), the Compact Answers OK flag brings
//! NXDOMAIN back, and records only a signer makes are refused in the zone.

use std::process::Command;

use crate::harness::{Server, TempDir, ZONE_HEAD, binary};

/// A key for `t.test` in `dir` and the DS line `meridian keygen` printed.
fn keygen(dir: &TempDir) -> (std::path::PathBuf, String) {
    let out = Command::new(binary())
        .args(["keygen", "--zone", "t.test"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = std::fs::read_dir(&dir.0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ds = printed
        .lines()
        .find(|l| l.contains(" DS "))
        .unwrap()
        .to_owned();
    (key, ds)
}

const RECORDS: &str = "[[records]]\nname = \"*.wild\"\ntype = \"A\"\ndata = [\"192.0.2.200\"]\n\
    [[records]]\nname = \"rp\"\ntype = \"RP\"\ndata = [\"Admin.T.Test. Info.T.Test.\"]\n\
    [[records]]\nname = \"loc\"\ntype = \"LOC\"\ndata = [\"52 22 23.000 N 4 53 32.000 E -2.00m\"]\n\
    [[records]]\nname = \"@\"\ntype = \"CAA\"\ndata = ['0 issue \"letsencrypt.org; validationmethods=dns-01\"']\n\
    [[records]]\nname = \"naptr\"\ntype = \"NAPTR\"\ndata = ['100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:x@T.Test!\" .']\n\
    [[records]]\nname = \"svc\"\ntype = \"HTTPS\"\ndata = ['1 . alpn=\"h2,h3\" port=8443']\n\
    [[records]]\nname = \"dkim\"\ntype = \"TXT\"\ndata = ['''( \"v=DKIM1; k=rsa; \" ; one\n \"p=MIGf\" )''']\n\
    [[records]]\nname = \"odd\"\ntype = \"TYPE65280\"\ndata = ['\\# 4 0A000001']\n\
    [[records]]\nname = \"dname\"\ntype = \"DNAME\"\ndata = [\"Target.Example.\"]\n\
    [[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = [\"ns.sub\"]\n\
    [[records]]\nname = \"sub\"\ntype = \"DS\"\ndata = [\"60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A\"]\n\
    [[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = [\"192.0.2.99\"]\n";

fn signed_server(keys: &TempDir) -> (Server, String) {
    let (key, ds) = keygen(keys);
    let zone = format!(
        "{ZONE_HEAD}{RECORDS}[dnssec]\nkeys = [\"{}\"]\n",
        key.display()
    );
    (Server::start(&[("t.test.toml", &zone)]), ds)
}

#[test]
fn every_type_validates_and_denials_say_what_exists() {
    let keys = TempDir::new();
    let (s, ds) = signed_server(&keys);
    let f: Vec<&str> = ds.split_whitespace().collect();
    let anchor = keys.0.join("anchor.conf");
    let text = format!(
        "trust-anchors {{ \"t.test.\" static-ds {} {} {} \"{}\"; }};\n",
        f[3], f[4], f[5], f[6]
    );
    std::fs::write(&anchor, text).unwrap();
    let delv = |name: &str, rtype: &str| {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &s.port.to_string(), "-a"])
            .arg(&anchor)
            .args(["+root=t.test", name, rtype])
            .output()
            .expect("delv is installed (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    for (name, rtype) in [
        ("rp.t.test", "RP"),
        ("loc.t.test", "LOC"),
        ("t.test", "CAA"),
        ("naptr.t.test", "NAPTR"),
        ("svc.t.test", "HTTPS"),
        ("dkim.t.test", "TXT"),
        ("odd.t.test", "TYPE65280"),
        ("dname.t.test", "DNAME"),
        ("sub.t.test", "DS"),
    ] {
        let out = delv(name, rtype);
        assert!(out.contains("; fully validated"), "{name} {rtype}: {out}");
    }
    // A wildcard's NODATA: the NSEC at the name asked lists the wildcard's types (A), so a
    // resolver that caches it does not deny the A the same zone serves there.
    let out = s.dig(&["+dnssec", "x.wild.t.test", "TXT"]);
    let nsec = out
        .raw
        .lines()
        .find(|l| l.contains("\tNSEC\t"))
        .unwrap_or_default()
        .to_owned();
    assert!(nsec.starts_with("x.wild.t.test."), "{}", out.raw);
    assert!(nsec.contains(" A RRSIG NSEC"), "{nsec}");
    let out = delv("x.wild.t.test", "TXT");
    assert!(out.contains("negative response, fully validated"), "{out}");
    // A referral with DO carries the cut's DS and its signature.
    let out = s.dig(&["+dnssec", "+norec", "host.sub.t.test", "A"]);
    let authority: Vec<&str> = out
        .raw
        .lines()
        .filter(|l| l.starts_with("sub.t.test."))
        .collect();
    assert!(
        authority.iter().any(|l| l.contains("\tDS\t")),
        "{}",
        out.raw
    );
    assert!(
        authority.iter().any(|l| l.contains("RRSIG\tDS ")),
        "{}",
        out.raw
    );
    assert!(
        !authority.iter().any(|l| l.contains("\tNSEC\t")),
        "{}",
        out.raw
    );
}

#[test]
fn nxname_is_never_asked_and_compact_answers_ok_brings_nxdomain_back() {
    let keys = TempDir::new();
    let (s, _) = signed_server(&keys);
    // RFC 9824 §3.5: a query for NXNAME is a FORMERR.
    assert_eq!(s.dig(&["t.test", "TYPE128"]).status, "FORMERR");
    assert_eq!(s.dig(&["+dnssec", "x.t.test", "TYPE128"]).status, "FORMERR");
    // Compact denial answers NOERROR for a name that does not exist…
    let plain = s.dig(&["+dnssec", "nothing.t.test", "A"]);
    assert_eq!(plain.status, "NOERROR", "{}", plain.raw);
    assert!(plain.raw.contains("NSEC TYPE128"), "{}", plain.raw);
    // …and NXDOMAIN to a resolver that sets CO (the EDNS flag after DO), echoed.
    let compact = s.dig(&["+dnssec", "+coflag", "nothing.t.test", "A"]);
    assert_eq!(compact.status, "NXDOMAIN", "{}", compact.raw);
    assert!(compact.raw.contains("NSEC TYPE128"), "{}", compact.raw);
    assert!(compact.raw.contains("flags: do co;"), "{}", compact.raw);
    // Names that exist are answered alike with or without it.
    let exists = s.dig(&["+dnssec", "+coflag", "rp.t.test", "A"]);
    assert_eq!(exists.status, "NOERROR", "{}", exists.raw);
    // Without DO there is no compact denial: NXDOMAIN as always, and no CO.
    let unsigned = s.dig(&["+coflag", "nothing.t.test", "A"]);
    assert_eq!(unsigned.status, "NXDOMAIN");
    assert!(!unsigned.raw.contains(" co;"), "{}", unsigned.raw);
}

#[test]
fn records_only_a_signer_makes_are_refused_in_a_zone_meridian_signs() {
    let keys = TempDir::new();
    let (key, _) = keygen(&keys);
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    std::fs::write(
        dir.0.join("zones/t.test.zone"),
        "$TTL 300\n@ SOA ns hm 1 3600 600 1209600 300\n@ NS ns\nns A 192.0.2.53\n\
         ns RRSIG A 13 3 300 20261231000000 20261201000000 12345 t.test. AQID\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("zones/t.test.toml"),
        format!(
            "master_file = \"t.test.zone\"\n[dnssec]\nkeys = [\"{}\"]\n",
            key.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.0.join("m.toml"), "[zones]\ndirectory = \"zones\"\n").unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(dir.0.join("m.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ns.t.test. RRSIG is made by the signer"),
        "{stderr}"
    );
    // The same file without [dnssec] is served as it is, RRSIG included (a zone signed
    // elsewhere).
    std::fs::write(
        dir.0.join("zones/t.test.toml"),
        "master_file = \"t.test.zone\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(dir.0.join("m.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The query log shows a signed answer's records as presentation text, without the RRSIGs.
#[test]
fn the_query_log_shows_answers_without_their_signatures() {
    let keys = TempDir::new();
    let (key, _) = keygen(&keys);
    let zone = format!(
        "{ZONE_HEAD}{RECORDS}[dnssec]\nkeys = [\"{}\"]\n",
        key.display()
    );
    let s = Server::start_config(
        &[("t.test.toml", &zone)],
        "[query_log]\nenabled = true\npath = \"queries.jsonl\"\n",
    );
    let path = s.zones_dir().parent().unwrap().join("queries.jsonl");
    let signed = s.dig(&["+dnssec", "t.test", "CAA"]);
    assert!(signed.raw.contains("RRSIG"), "{}", signed.raw);
    let line = || -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&path).ok()?;
        serde_json::from_str(text.lines().next()?).ok()
    };
    crate::harness::eventually(std::time::Duration::from_secs(5), "a log line", || {
        line().is_some()
    });
    assert_eq!(
        line().unwrap()["answers"],
        serde_json::json!(["0 issue \"letsencrypt.org; validationmethods=dns-01\""])
    );
}
