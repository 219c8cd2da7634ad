//! The DNS ecosystem's own clients against the real binary: `nsupdate` with TSIG (RFC 2136,
//! RFC 8945), `dig` zone transfers, and NSD as a secondary that follows our NOTIFY.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Server, TempDir, ZONE_HEAD, eventually};

/// Base64 of 32 bytes: the key every test signs with.
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
const OTHER_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMzI=";

fn zone() -> String {
    format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"all\"\nendpoints = [\"192.0.2.1\"]\n\
         [pools.hidden]\ntransfer = \"omit\"\nendpoints = [\"192.0.2.9\"]\n"
    )
}

fn config(extra: &str) -> String {
    format!(
        "[[tsig]]\nname = \"acme\"\nsecret = \"{SECRET}\"\nzones = [\"t.test\"]\n\
         operations = [\"update\", \"transfer\", \"notify\"]\n\
         [[tsig]]\nname = \"elsewhere\"\nsecret = \"{OTHER_SECRET}\"\nzones = [\"other.test\"]\n\
         operations = [\"update\"]\n{extra}"
    )
}

/// Runs `nsupdate` (with `-y key`, if given) on `commands` sent to `s`: (success, stderr).
fn nsupdate(s: &Server, key: Option<&str>, commands: &str) -> (bool, String) {
    let args: Vec<&str> = key.map(|k| vec!["-y", k]).unwrap_or_default();
    let script = format!(
        "server 127.0.0.1 {}\nzone t.test\n{commands}\nsend\n",
        s.port
    );
    crate::harness::nsupdate(&args, &script)
}

const KEY: Option<&str> = Some(concat!(
    "hmac-sha256:acme:",
    "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="
));

fn data(s: &Server, name: &str, rtype: &str) -> Vec<String> {
    let mut d = s.dig(&[name, rtype]).answer_data();
    d.sort();
    d
}

#[test]
fn nsupdate_with_a_key_changes_records_and_endpoints_and_nothing_else_does() {
    let s = Server::start_config(&[("t.test.toml", &zone())], &config(""));
    // The ACME DNS-01 flow: add the challenge, see it, remove it.
    let challenge = "_acme-challenge.www.t.test.";
    let (ok, err) = nsupdate(
        &s,
        KEY,
        &format!("update add {challenge} 60 TXT \"token-1\""),
    );
    assert!(ok, "{err}");
    assert_eq!(data(&s, challenge, "TXT"), ["\"token-1\""]);
    let serial = |s: &Server| {
        s.dig(&["t.test", "SOA"]).answer_data()[0]
            .split(' ')
            .nth(2)
            .unwrap()
            .to_owned()
    };
    assert_eq!(serial(&s), "2", "every UPDATE bumps the serial");
    let (ok, err) = nsupdate(
        &s,
        KEY,
        &format!("update delete {challenge} TXT \"token-1\""),
    );
    assert!(ok, "{err}");
    assert!(data(&s, challenge, "TXT").is_empty());
    // An A at a pool's name is an endpoint of the pool.
    let (ok, err) = nsupdate(&s, KEY, "update add p.t.test. 30 A 192.0.2.50");
    assert!(ok, "{err}");
    assert_eq!(data(&s, "p.t.test", "A"), ["192.0.2.1", "192.0.2.50"]);
    let (ok, err) = nsupdate(&s, KEY, "update delete p.t.test. A 192.0.2.50");
    assert!(ok, "{err}");
    assert_eq!(data(&s, "p.t.test", "A"), ["192.0.2.1"]);
    let before = serial(&s);

    // A wrong secret, no key, a key for another zone, a failed prerequisite: nothing changes.
    let add = "update add x.t.test. 60 TXT \"no\"";
    let wrong = format!("hmac-sha256:acme:{OTHER_SECRET}");
    let (ok, err) = nsupdate(&s, Some(&wrong), add);
    assert!(!ok && err.contains("BADSIG"), "{err}");
    let (ok, err) = nsupdate(&s, None, add);
    assert!(!ok && err.contains("REFUSED"), "{err}");
    let elsewhere = format!("hmac-sha256:elsewhere:{OTHER_SECRET}");
    let (ok, err) = nsupdate(&s, Some(&elsewhere), add);
    assert!(!ok && err.contains("REFUSED"), "{err}");
    let (ok, err) = nsupdate(&s, KEY, &format!("prereq yxrrset {challenge} TXT\n{add}"));
    assert!(!ok && err.contains("NXRRSET"), "{err}");
    let (ok, err) = nsupdate(&s, KEY, &format!("prereq nxdomain p.t.test.\n{add}"));
    assert!(!ok && err.contains("YXDOMAIN"), "{err}");
    assert!(data(&s, "x.t.test", "TXT").is_empty());
    assert_eq!(serial(&s), before);
    // A prerequisite that holds lets it through.
    let (ok, err) = nsupdate(&s, KEY, &format!("prereq yxdomain p.t.test.\n{add}"));
    assert!(ok, "{err}");
    assert_eq!(data(&s, "x.t.test", "TXT"), ["\"no\""]);
}

/// The journal's kill -9 test with UPDATE messages: every acknowledged update survives.
#[test]
fn acknowledged_updates_survive_kill_9() {
    let s = Server::start_config(&[("t.test.toml", &zone())], &config(""));
    let mut acknowledged = 0;
    for i in 0..20 {
        if i == 12 {
            s.signal("KILL");
        }
        let (ok, _) = nsupdate(&s, KEY, &format!("update add u{i}.t.test. 60 TXT \"{i}\""));
        if !ok {
            break;
        }
        acknowledged = i + 1;
    }
    assert!(acknowledged >= 12, "{acknowledged}");
    let s = s.restart();
    for i in 0..acknowledged {
        assert_eq!(
            data(&s, &format!("u{i}.t.test"), "TXT"),
            [format!("\"{i}\"")]
        );
    }
}

/// `dig AXFR` lines of the answer, without dig's comments.
fn axfr(s: &Server, args: &[&str]) -> Vec<String> {
    let mut all = vec!["t.test".to_owned(), "AXFR".to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    s.dig_raw("127.0.0.1", s.port, &args)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn transfers_need_a_key_or_an_allowed_address() {
    let s = Server::start_config(
        &[("t.test.toml", &zone())],
        &config("[transfer]\nallow = [\"127.0.0.2\"]\n"),
    );
    assert!(
        axfr(&s, &[]).is_empty(),
        "unsigned, from 127.0.0.1: refused"
    );
    let signed = axfr(&s, &["-y", KEY.unwrap()]);
    let records: Vec<&String> = signed.iter().filter(|l| !l.contains("TSIG")).collect();
    assert!(records.first().unwrap().contains("SOA") && records.last().unwrap().contains("SOA"));
    assert!(
        signed
            .iter()
            .any(|l| l.contains("p.t.test. 30 IN A 192.0.2.1")),
        "{signed:?}"
    );
    assert!(
        !signed.iter().any(|l| l.contains("192.0.2.9")),
        "an omitted pool: {signed:?}"
    );
    assert!(
        signed.iter().any(|l| l.contains("TSIG")),
        "signed: {signed:?}"
    );
    let by_address = axfr(&s, &["-b", "127.0.0.2"]);
    assert_eq!(by_address.len(), records.len(), "{by_address:?}");
    // IXFR from the current serial: the SOA alone; from an older one, the whole zone.
    let ixfr = |serial: &str| {
        let out = s.dig_raw(
            "127.0.0.1",
            s.port,
            &["t.test", &format!("IXFR={serial}"), "-b", "127.0.0.2"],
        );
        out.lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .count()
    };
    assert_eq!(ixfr("1"), 1);
    let (ok, err) = nsupdate(&s, KEY, "update add y.t.test. 60 TXT \"y\"");
    assert!(ok, "{err}");
    // From serial 1: only the difference (SOA 2, SOA 1, nothing removed, SOA 2, the TXT
    // added, SOA 2), once the history has it; from a serial it never had, the whole zone.
    eventually(Duration::from_secs(2), "an incremental transfer", || {
        ixfr("1") == 5
    });
    let out = s.dig_raw(
        "127.0.0.1",
        s.port,
        &["t.test", "IXFR=1", "-b", "127.0.0.2"],
    );
    assert!(out.contains("y.t.test.") && out.contains("\"y\""), "{out}");
    assert_eq!(
        ixfr("0"),
        records.len() + 1,
        "the whole zone, the new record too"
    );
}

/// NSD (Debian `nsd`) as a TSIG secondary on loopback: it transfers the zone, answers its
/// static records as we do, and follows our NOTIFY after a change.
#[test]
fn nsd_secondary_transfers_the_zone_and_follows_notify() {
    let nsd_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Server::start_config(
        &[("t.test.toml", &zone())],
        &config(&format!(
            "[transfer]\nnotify = [\"127.0.0.1:{nsd_port}\"]\nnotify_key = \"acme\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"writer\"\n\
             sha256 = \"{}\"\nscope = \"write\"\n",
            crate::harness::token_hash("write-token")
        )),
    );
    let dir = TempDir::new();
    let d = dir.0.display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{nsd_port}\n  zonesdir: \"{d}\"\n  username: \"\"\n  chroot: \"\"\n\
         \x20 pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n\
         \x20 zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  xfrdir: \"{d}\"\n\
         remote-control:\n  control-enable: no\n\
         key:\n  name: \"acme\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n\
         zone:\n  name: \"t.test\"\n  zonefile: \"t.test.zone\"\n\
         \x20 request-xfr: 127.0.0.1@{} acme\n  allow-notify: 127.0.0.1 acme\n",
        s.port
    );
    std::fs::write(dir.0.join("nsd.conf"), conf).unwrap();
    let mut nsd = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(dir.0.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsd is installed (apt-get install nsd; .ci/run does it)");
    let at_nsd = |name: &str, rtype: &str| {
        let mut d = s.dig_raw("127.0.0.1", nsd_port, &[name, rtype]);
        d = crate::harness::Reply::parse(&d).answer_data().join("|");
        d
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(Duration::from_secs(10), "NSD transferred the zone", || {
            !at_nsd("t.test", "SOA").is_empty()
        });
        for (name, rtype) in [
            ("t.test", "SOA"),
            ("t.test", "NS"),
            ("ns1.t.test", "A"),
            ("p.t.test", "A"),
        ] {
            let ours = data(&s, name, rtype).join("|");
            let mut theirs: Vec<String> =
                at_nsd(name, rtype).split('|').map(str::to_owned).collect();
            theirs.sort();
            assert_eq!(theirs.join("|"), ours, "{name} {rtype}");
        }
        // A change through the HTTP API, then one by UPDATE: NSD follows each NOTIFY.
        let body = r#"{"data": ["\"from the api\""]}"#;
        let path = "/zones/t.test/records/api/TXT";
        let (status, _, text) = s.http("PUT", path, Some("write-token"), Some(body), &[]);
        assert_eq!(status, 200, "{text}");
        eventually(Duration::from_secs(5), "NSD follows the API change", || {
            at_nsd("api.t.test", "TXT") == "\"from the api\""
        });
        let (ok, err) = nsupdate(&s, KEY, "update add late.t.test. 60 TXT \"after\"");
        assert!(ok, "{err}");
        eventually(Duration::from_secs(5), "NSD follows the UPDATE", || {
            at_nsd("late.t.test", "TXT") == "\"after\""
        });
    }));
    // SIGTERM by PID: NSD stops its xfrd and server processes with it.
    let _ = Command::new("kill")
        .args(["-TERM", &nsd.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nsd.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nsd.kill();
    let _ = nsd.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// An incoming NOTIFY (we are the primary): acknowledged for a key that may notify the zone,
/// refused otherwise.
#[test]
fn incoming_notify_is_refused_unless_a_key_allows_it() {
    let s = Server::start_config(&[("t.test.toml", &zone())], &config(""));
    let status = |args: &[&str]| {
        let mut all = vec!["+opcode=notify", "t.test", "SOA"];
        all.extend_from_slice(args);
        crate::harness::Reply::parse(&s.dig_raw("127.0.0.1", s.port, &all)).status
    };
    assert_eq!(status(&[]), "REFUSED");
    let elsewhere = format!("hmac-sha256:elsewhere:{OTHER_SECRET}");
    assert_eq!(status(&["-y", &elsewhere]), "REFUSED");
    assert_eq!(status(&["-y", KEY.unwrap()]), "NOERROR");
}
