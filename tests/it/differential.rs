//! Meridian against Knot, the reference for zone data: one corpus of master-file records
//! (`tests/data/corpus`: every type Meridian serves and every presentation detail) served by
//! both, compared through AXFR and through a query for each name and type, with no difference
//! allowed; then the same records written through the HTTP API and by RFC 2136 UPDATE and
//! compared again; and a corpus of broken inputs that both refuse.

use std::collections::BTreeMap;
use std::process::Command;

use crate::harness::{Server, TempDir, repo, token_hash};
use crate::peers::Peer;

const ORIGIN: &str = "corpus.test";

/// Questions beyond the corpus's own names and types: DNAME synthesis (to outside the zone and
/// into it), DS at a delegation, names below a cut, wildcard expansion, NXDOMAIN and NODATA,
/// CNAME chasing, ANY, unknown types asked for.
const EXTRA: &[(&str, &str)] = &[
    ("x.dname.corpus.test", "A"),
    ("a.b.dname.corpus.test", "TXT"),
    ("x.y.alias.corpus.test", "A"),
    ("z.alias.corpus.test", "AAAA"),
    ("dname.corpus.test", "A"),
    ("sub.corpus.test", "DS"),
    ("sub.corpus.test", "A"),
    ("x.sub.corpus.test", "A"),
    ("x.sub.corpus.test", "DS"),
    ("foo.wild.corpus.test", "A"),
    ("foo.bar.wild.corpus.test", "TXT"),
    ("foo.wild.corpus.test", "MX"),
    ("nope.corpus.test", "A"),
    ("www.corpus.test", "MX"),
    ("cname.corpus.test", "A"),
    ("cname.corpus.test", "AAAA"),
    ("y.deep.corpus.test", "A"),
    ("deep.corpus.test", "A"),
    ("corpus.test", "TYPE65280"),
    ("unknown.corpus.test", "TYPE65281"),
    ("MixedCase.corpus.test", "TXT"),
];

fn kdig(port: u16, args: &[&str]) -> String {
    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+noidn",
            "+time=2",
            "+retry=1",
        ])
        .args(args)
        .output()
        .expect("kdig is installed (apt-get install knot-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lines of records, blanks collapsed, sorted: the same RRsets give the same lines.
fn records(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(";;") && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

fn axfr(port: u16) -> Vec<String> {
    records(&kdig(port, &[ORIGIN, "AXFR", "+nocomments"]))
}

/// The answer to one question as compared: status and flags, then each section's records sorted.
fn answer(port: u16, name: &str, rtype: &str) -> String {
    let out = kdig(port, &[name, rtype, "+norec"]);
    let mut shown = Vec::new();
    let mut section: Vec<String> = Vec::new();
    for line in out.lines() {
        if line.starts_with(";; ->>HEADER") {
            shown.push(line.split("; id:").next().unwrap_or(line).to_owned());
        } else if line.starts_with(";; Flags") || line.ends_with("SECTION:") {
            section.sort();
            shown.append(&mut section);
            shown.push(line.to_owned());
        } else if !line.starts_with(";;") && !line.trim().is_empty() {
            section.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    section.sort();
    shown.append(&mut section);
    shown.join("\n")
}

/// Every (name, type) in `lines` of AXFR, and the extra questions.
fn questions(lines: &[String]) -> Vec<(String, String)> {
    let mut asked: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[3].to_owned())
        })
        .collect();
    asked.extend(EXTRA.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    asked.sort();
    asked.dedup();
    asked
}

/// Compares `ours` with Knot over AXFR (the SOA's serial aside where `any_serial`) and for every
/// question; every difference is reported at once.
fn compare(knot: &Peer, ours: u16, any_serial: bool) {
    let serial = |l: &String| match any_serial && l.contains(" SOA ") {
        true => without_serial(l),
        false => l.clone(),
    };
    let theirs: Vec<String> = axfr(knot.port).iter().map(serial).collect();
    let mine: Vec<String> = axfr(ours).iter().map(serial).collect();
    assert!(theirs.len() > 80, "Knot served the corpus: {theirs:?}");
    let missing: Vec<&String> = theirs.iter().filter(|l| !mine.contains(l)).collect();
    let extra: Vec<&String> = mine.iter().filter(|l| !theirs.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "AXFR differs from Knot's:\nonly Knot's: {missing:#?}\nonly ours: {extra:#?}"
    );
    let mut differences = Vec::new();
    for (name, rtype) in questions(&theirs) {
        let (a, b) = (
            answer(knot.port, &name, &rtype),
            answer(ours, &name, &rtype),
        );
        let (a, b) = match any_serial {
            true => (strip_serials(&a), strip_serials(&b)),
            false => (a, b),
        };
        if a != b {
            differences.push(format!("{name} {rtype}:\nKnot:\n{a}\nMeridian:\n{b}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
}

/// An SOA record's line without its serial (the API and UPDATE move it on).
fn without_serial(line: &str) -> String {
    let fields: Vec<&str> = line.split(' ').collect();
    let kept: Vec<&str> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, f)| *f)
        .collect();
    kept.join(" ")
}

fn strip_serials(answer: &str) -> String {
    let lines: Vec<String> = answer
        .lines()
        .map(|l| match l.contains(" SOA ") {
            true => without_serial(l),
            false => l.to_owned(),
        })
        .collect();
    lines.join("\n")
}

fn corpus() -> String {
    std::fs::read_to_string(repo().join("tests/data/corpus/corpus.test.zone")).unwrap()
}

const TRANSFER: &str = "[transfer]\nallow = [\"127.0.0.1/32\"]\n";

#[test]
fn knot_and_meridian_serve_the_corpus_alike() {
    let knot = Peer::knot_primary(ORIGIN, &corpus());
    let s = Server::start_config(&[("corpus.test.zone", &corpus())], TRANSFER);
    compare(&knot, s.port, false);
}

/// An ordinary production zone (SPF, DMARC, DKIM over several lines, CAA with parameters,
/// HTTPS, TLSA, LOC, a private type) goes unchanged to BIND, NSD and Knot as TSIG secondaries:
/// each serves what we transfer, record for record.
#[test]
fn a_real_zone_goes_unchanged_to_bind_nsd_and_knot_with_tsig() {
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
    let key = crate::peers::Key {
        name: "xfr",
        secret,
    };
    let text = std::fs::read_to_string(repo().join("tests/data/corpus/real.test.zone")).unwrap();
    let config =
        format!("[[tsig]]\nname = \"xfr\"\nsecret = \"{secret}\"\noperations = [\"transfer\"]\n");
    let s = Server::start_config(&[("real.test.zone", &text)], &config);
    let signed = |port: u16| {
        let out = kdig(
            port,
            &[
                "-y",
                &format!("hmac-sha256:xfr:{secret}"),
                "real.test",
                "AXFR",
            ],
        );
        let mut lines = records(&out);
        lines.retain(|l| !l.contains(" ANY TSIG "));
        lines
    };
    let ours = signed(s.port);
    assert!(ours.iter().any(|l| l.contains("TYPE65280")), "{ours:#?}");
    assert!(
        ours.iter()
            .any(|l| l.contains("\"v=DKIM1; k=rsa; \" \"p=MII")),
        "{ours:#?}"
    );
    let secondaries = [
        (
            "BIND",
            Peer::named_secondary(crate::peers::free_port(), "real.test", s.port, &key),
        ),
        ("NSD", Peer::nsd_secondary("real.test", s.port, &key)),
        ("Knot", Peer::knot_secondary("real.test", s.port, &key)),
    ];
    for (who, peer) in &secondaries {
        crate::harness::eventually(std::time::Duration::from_secs(30), who, || {
            kdig(peer.port, &["real.test", "SOA", "+short"]).contains("2026120701")
        });
        // Each of them transfers onwards to anyone by default: what it holds, whole.
        let theirs = records(&kdig(peer.port, &["real.test", "AXFR"]));
        assert_eq!(theirs, ours, "{who} serves what we transferred");
        let log = peer.log().to_ascii_lowercase();
        for complaint in [
            "expected a tsig",
            "tsig verify",
            "failed to verify",
            "badsig",
            "badkey",
        ] {
            assert!(!log.contains(complaint), "{who}: {log}");
        }
    }
}

/// A zone with the corpus's SOA and NS only, for the API and UPDATE to fill.
fn bare_zone() -> String {
    "ttl = 3600\nns = [\"ns1\", \"ns2\"]\n[soa]\nmname = \"ns1\"\nrname = \"hostmaster\"\n\
     serial = 2026120701\nrefresh = 3600\nretry = 600\nexpire = 1209600\nminimum = 300\n"
        .to_owned()
}

/// The corpus's record sets as Knot transfers them, the apex's SOA and NS left out (the zone's
/// own settings): (owner, type) → (TTL, data as presentation text).
fn rrsets(lines: &[String]) -> BTreeMap<(String, String), (u32, Vec<String>)> {
    let mut sets: BTreeMap<(String, String), (u32, Vec<String>)> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.splitn(5, ' ').collect();
        let (owner, ttl, rtype, data) = (f[0], f[1].parse().unwrap(), f[3], f[4]);
        if owner == "corpus.test." && matches!(rtype, "SOA" | "NS") {
            continue;
        }
        let entry = sets
            .entry((owner.to_owned(), rtype.to_owned()))
            .or_default();
        entry.0 = ttl;
        entry.1.push(data.to_owned());
    }
    sets
}

#[test]
fn the_corpus_written_through_the_api_is_served_as_knot_serves_it() {
    let knot = Peer::knot_primary(ORIGIN, &corpus());
    let api = format!(
        "{TRANSFER}[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"writer\"\n\
         sha256 = \"{}\"\nscope = \"write\"\n",
        token_hash("write-token")
    );
    let s = Server::start_config(&[("corpus.test.toml", &bare_zone())], &api);
    for ((owner, rtype), (ttl, data)) in rrsets(&axfr(knot.port)) {
        let body = serde_json::json!({ "ttl": ttl, "data": data }).to_string();
        let path = format!(
            "/zones/{ORIGIN}/records/{}/{rtype}",
            owner.replace('\\', "%5C")
        );
        let (status, _, text) = s.http("PUT", &path, Some("write-token"), Some(&body), &[]);
        assert_eq!(status, 200, "{owner} {rtype} {data:?}: {text}");
        // What the API gives back is what was written.
        let (status, _, text) = s.http("GET", &path, Some("write-token"), None, &[]);
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, 200, "{text}");
        assert_eq!(got["data"], serde_json::json!(data), "{owner} {rtype}");
    }
    compare(&knot, s.port, true);
}

#[test]
fn the_corpus_written_by_update_is_served_as_knot_serves_it() {
    let knot = Peer::knot_primary(ORIGIN, &corpus());
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
    let config = format!(
        "{TRANSFER}[[tsig]]\nname = \"acme\"\nsecret = \"{secret}\"\noperations = [\"update\"]\n"
    );
    let s = Server::start_config(&[("corpus.test.toml", &bare_zone())], &config);
    let mut script = format!("server 127.0.0.1 {}\nzone {ORIGIN}\n", s.port);
    // BIND refuses an IPSECKEY without the public key RFC 4025 §2.5 lets it leave out, even as
    // RFC 3597 data: that one goes by dnspython, as the bytes Knot transfers.
    let mut keyless = Vec::new();
    for ((owner, rtype), (ttl, data)) in rrsets(&axfr(knot.port)) {
        for d in data {
            match rtype == "IPSECKEY" && d.ends_with(" .") {
                true => keyless.push((owner.clone(), ttl, d)),
                false => script.push_str(&format!("update add {owner} {ttl} {rtype} {d}\n")),
            }
        }
    }
    script.push_str("send\n");
    let key = format!("hmac-sha256:acme:{secret}");
    let (ok, stderr) = crate::harness::nsupdate(&["-v", "-y", &key], &script);
    assert!(ok, "{stderr}");
    for (owner, ttl, data) in keyless {
        // Precedence, gateway type 0, algorithm: the whole RDATA.
        let wire: Vec<String> = data
            .split(' ')
            .take(3)
            .map(|n| format!("{:02x}", n.parse::<u8>().unwrap()))
            .collect();
        let hex = wire.concat();
        let python = format!(
            r#"
import dns.update, dns.query, dns.tsigkeyring, dns.rdata, dns.rdataclass, dns.rdatatype, dns.tsig
ring = dns.tsigkeyring.from_text({{"acme": ("hmac-sha256", "{secret}")}})
u = dns.update.UpdateMessage("{ORIGIN}", keyring=ring, keyname="acme", keyalgorithm=dns.tsig.HMAC_SHA256)
rdata = dns.rdata.GenericRdata(dns.rdataclass.IN, dns.rdatatype.IPSECKEY, bytes.fromhex("{hex}"))
u.add("{owner}", {ttl}, rdata)
r = dns.query.tcp(u, "127.0.0.1", port={port}, timeout=3)
assert r.rcode() == 0, r
"#,
            port = s.port
        );
        let out = Command::new("python3")
            .args(["-c", &python])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    compare(&knot, s.port, true);
}

/// Broken inputs, each refused by Knot and by Meridian, Meridian naming the line. The record
/// is on line 3 of its file.
const BROKEN: &[(&str, &str)] = &[
    ("an address out of range", "bad IN A 192.0.2.256"),
    ("a quote never closed", "bad TXT \"open"),
    ("an unknown type", "bad FROB 1 2 3"),
    (
        "generic data of the wrong length",
        "bad TYPE65280 \\# 3 0A000001",
    ),
    ("base64 that is not", "bad OPENPGPKEY abc=de"),
    (
        "a label of 64 octets",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa TXT \"x\"",
    ),
    ("an escape past 255", "bad TXT \"\\256\""),
    ("hex that is not", "bad DS 60485 13 2 XYZW"),
    ("a record cut short", "bad MX 10"),
    ("data left over", "bad A 192.0.2.1 192.0.2.2"),
    ("a latitude past the pole", "bad LOC 91 0 0 N 0 0 0 E 0m"),
    ("a parenthesis never closed", "bad TXT ( \"a\""),
    ("an empty label", "a..b TXT \"x\""),
    // 3 × 64 + 52 octets, and 12 for `badNN.test.`: 256.
    (
        "a name of 256 octets",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.ddddddddddddddddddddddddddddddddddddddddddddddddddd TXT \"x\"",
    ),
];

#[test]
fn broken_inputs_are_refused_by_both_with_their_line() {
    let head = "$TTL 300\n@ SOA ns hostmaster 1 3600 600 1209600 300\n";
    let tail = "\n@ NS ns\nns A 192.0.2.53\n";
    // Knot: one zone a case, all in one server; each fails to load on its own.
    let zones: Vec<(String, String)> = BROKEN
        .iter()
        .enumerate()
        .map(|(i, (_, line))| (format!("bad{i}.test"), format!("{head}{line}{tail}")))
        .collect();
    let knot = Peer::knot_primaries(&zones);
    for (i, (what, _)) in BROKEN.iter().enumerate() {
        let zone = format!("bad{i}.test");
        let out = kdig(knot.port, &[&zone, "SOA"]);
        assert!(!out.contains("NOERROR"), "Knot loaded {what}: {out}");
    }
    let log = knot.log();
    // Meridian: `meridian check` on a zones folder with the one broken file.
    for (i, ((what, _), (zone, text))) in BROKEN.iter().zip(&zones).enumerate() {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join("zones")).unwrap();
        std::fs::write(dir.0.join("zones").join(format!("{zone}.zone")), text).unwrap();
        std::fs::write(dir.0.join("m.toml"), "[zones]\ndirectory = \"zones\"\n").unwrap();
        let out = Command::new(crate::harness::binary())
            .args(["check", "--config"])
            .arg(dir.0.join("m.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "Meridian loaded {what}");
        assert!(
            stderr.contains(&format!("{zone}.zone:3")),
            "{what}: {stderr}"
        );
        assert!(log.contains(&format!("[bad{i}.test.]")), "{what}: {log}");
    }
}
