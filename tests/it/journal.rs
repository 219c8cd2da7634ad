//! The journal against the real binary: `kill -9` in the middle of concurrent writers loses
//! no acknowledged change, a torn journal tail is ignored, changes reach the zone files.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{Server, ZONE_HEAD, eventually};

/// A PUT of one A record set: its status, or `None` if the connection failed (the server was
/// killed under it).
fn put(api: SocketAddr, name: &str, address: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(api).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = format!("{{\"data\": [\"{address}\"]}}");
    let request = format!(
        "PUT /api/v1/zones/t.test/records/{name}/A HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\
         Authorization: Bearer write-token\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split(' ').nth(1)?.parse().ok()
}

/// The `A` data of each name, asked in one dig run.
fn answers(s: &Server, names: &[String]) -> Vec<String> {
    let mut args = vec!["+short".to_owned()];
    for name in names {
        args.extend([format!("{name}.t.test"), "A".to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.dig_raw("127.0.0.1", s.port, &args);
    out.lines().map(str::to_owned).collect()
}

#[test]
fn sigkill_during_sixteen_writers_loses_no_acknowledged_change() {
    let mut s = Server::start_api(&[("t.test.toml", ZONE_HEAD)]);
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..3 {
        let api = s.api_addr();
        let stop = AtomicBool::new(false);
        let acked = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for t in 0..16 {
                let (stop, acked) = (&stop, &acked);
                scope.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("w{round}-{t}-{i}");
                        let address = format!("198.51.{t}.{}", i % 250);
                        if put(api, &name, &address) == Some(200) {
                            acked.lock().unwrap().push((name, address));
                        }
                        i += 1;
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(600));
            s.signal("KILL");
            stop.store(true, Ordering::Relaxed);
        });
        let acked = acked.into_inner().unwrap();
        assert!(
            acked.len() > 16,
            "round {round}: only {} changes",
            acked.len()
        );
        acknowledged.extend(acked);
        if round == 1 {
            // A crash in the middle of an append: a torn record at the end.
            let journal = s.zones_dir().join(".journal");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&journal)
                .unwrap();
            file.write_all(&[0, 0, 0, 200, 1, 2, 3]).unwrap();
        }
        s = s.restart();
        if round == 1 {
            assert!(s.log().contains("torn or corrupt"), "{}", s.log());
        }
        let names: Vec<String> = acknowledged.iter().map(|(n, _)| n.clone()).collect();
        let seen = answers(&s, &names);
        let want: Vec<String> = acknowledged.iter().map(|(_, a)| a.clone()).collect();
        assert_eq!(
            seen, want,
            "round {round}: an acknowledged change is missing"
        );
    }
}

#[test]
fn changes_reach_the_zone_file_once_they_pause() {
    let s = Server::start_api(&[("t.test.toml", ZONE_HEAD)]);
    let api = s.api_addr();
    for i in 0..20 {
        assert_eq!(put(api, &format!("f{i}"), "192.0.2.9"), Some(200));
    }
    let tag = |s: &Server| {
        let (status, headers, _) = s.http("GET", "/zones/t.test", Some("write-token"), None, &[]);
        assert_eq!(status, 200);
        let etag = headers.iter().find(|(k, _)| k == "etag");
        etag.map(|(_, v)| v.clone()).unwrap()
    };
    let before = tag(&s);
    let file = s.zones_dir().join("t.test.toml");
    eventually(Duration::from_secs(5), "compacted into the file", || {
        std::fs::read_to_string(&file).unwrap().contains("f19")
    });
    // What the journal keeps is the number the next change takes and the zone's tag (two small
    // records), and the tag does not change when the changes move into the file, nor across a
    // restart.
    eventually(Duration::from_secs(5), "the journal emptied", || {
        std::fs::metadata(s.zones_dir().join(".journal")).map_or(0, |m| m.len()) < 120
    });
    assert_eq!(tag(&s), before);
    let s = s.restart();
    assert_eq!(tag(&s), before);
}

/// A PUT of a TXT record set of `bytes` bytes: (status, body).
fn put_txt(s: &Server, name: &str, bytes: usize) -> (u16, String) {
    let data = format!("\\\"{}\\\"", "x".repeat(bytes.min(250)));
    let sets = vec![data; bytes.div_ceil(250)].join("\", \"");
    let body = format!("{{\"data\": [\"{sets}\"]}}");
    let path = format!("/zones/t.test/records/{name}/TXT");
    let (status, _, body) = s.http("PUT", &path, Some("write-token"), Some(&body), &[]);
    (status, body)
}

/// Sets the server's file size limit (as `ulimit -f` or systemd's `LimitFSIZE=` would): a
/// journal that may not grow past it is a full disk to the server.
fn limit_file_size(s: &Server, bytes: &str) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &s.pid().to_string(), &format!("--fsize={bytes}:")])
        .output()
        .expect("prlimit is installed (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_disk_refuses_changes_with_507_and_keeps_every_acknowledged_one() {
    // A zone file larger than the limit, so that no compaction can make room meanwhile.
    let mut zone = ZONE_HEAD.to_owned();
    for i in 0..40 {
        zone.push_str(&format!(
            "[[records]]\nname = \"pad{i}\"\ntype = \"TXT\"\ndata = [\"\\\"{}\\\"\"]\n",
            "p".repeat(200)
        ));
    }
    let mut s = Server::start_api(&[("t.test.toml", &zone)]);
    limit_file_size(&s, "8192");
    let (mut acknowledged, mut refused) = (Vec::new(), None);
    for i in 0..40 {
        let name = format!("big{i}");
        match put_txt(&s, &name, 600) {
            (200, _) => acknowledged.push(name),
            (status, body) => {
                refused = Some((name, status, body));
                break;
            }
        }
    }
    let (refused, status, body) = refused.expect("the journal reached its limit");
    assert!(acknowledged.len() >= 3, "{acknowledged:?}");
    assert_eq!(status, 507, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["reason"], "disk full", "{body}");
    assert!(
        json["error"].as_str().unwrap().contains("File too large"),
        "{body}"
    );
    // Refused: not served; acknowledged: served.
    let has_txt = |s: &Server, name: &str| {
        !s.dig(&[&format!("{name}.t.test"), "TXT", "+short"])
            .raw
            .trim()
            .is_empty()
    };
    assert!(!has_txt(&s, &refused));
    assert!(acknowledged.iter().all(|n| has_txt(&s, n)));
    // Room again (the soft limit lifted): changes are taken without a restart.
    limit_file_size(&s, "unlimited");
    assert_eq!(put_txt(&s, &refused, 600).0, 200);
    acknowledged.push(refused);
    s.signal("KILL");
    s = s.restart();
    for name in &acknowledged {
        assert!(has_txt(&s, name), "{name} lost: {}", s.log());
    }
}

/// `meridian <args…> --config <the server's config>`: (success, stdout and stderr).
fn meridian(s: &Server, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::harness::binary())
        .args(args)
        .arg("--config")
        .arg(s.dir.0.join("meridian.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A pool created and then patched through the API, with its creation lost to damage: neither
/// `serve` nor `check` guesses; `meridian journal check` names what is lost and what does not
/// apply, `meridian journal repair` drops it, and the server starts with every other change.
#[test]
fn a_journal_that_lost_a_change_others_depend_on_is_repaired_by_the_operator() {
    let zone = format!("{ZONE_HEAD}[pools.www]\nendpoints = [\"192.0.2.1\"]\n");
    let s = Server::start_api(&[("t.test.toml", &zone)]);
    let write = |method: &str, path: &str, body: &str| {
        let (status, _, reply) = s.http(method, path, Some("write-token"), Some(body), &[]);
        assert_eq!(status, 200, "{method} {path}: {reply}");
    };
    write(
        "PATCH",
        "/zones/t.test/pools/www/endpoints/192.0.2.1",
        r#"{"weight": 2}"#,
    );
    write(
        "PUT",
        "/zones/t.test/pools/new",
        r#"{"endpoints": ["192.0.2.9"]}"#,
    );
    write(
        "PATCH",
        "/zones/t.test/pools/new/endpoints/192.0.2.9",
        r#"{"weight": 4}"#,
    );
    write(
        "PATCH",
        "/zones/t.test/pools/www/endpoints/192.0.2.1",
        r#"{"weight": 7}"#,
    );
    s.signal("KILL");
    // One flipped byte in the record that creates the new pool. Records: a payload length
    // (u32), 8 bytes of checksum, the payload.
    let journal = s.zones_dir().join(".journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let mut at = 0;
    while at < bytes.len() {
        let len = 12 + u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if bytes[at..at + len].windows(8).any(|w| w == b"set_pool") {
            break;
        }
        at += len;
    }
    assert!(at < bytes.len(), "the new pool is in the journal");
    bytes[at + 30] ^= 0x40;
    std::fs::write(&journal, &bytes).unwrap();
    let (ok, out) = meridian(&s, &["check"]);
    assert!(!ok && out.contains("lost to damage"), "{out}");
    let (ok, out) = meridian(&s, &["journal", "check"]);
    assert!(!ok, "{out}");
    assert!(out.contains("1 change(s) lost: #2"), "{out}");
    assert!(
        out.contains("edit #3 of t.test. does not apply: pool new not found"),
        "{out}"
    );
    let (ok, out) = meridian(&s, &["journal", "repair"]);
    assert!(ok && out.contains("kept at"), "{out}");
    let (ok, out) = meridian(&s, &["journal", "check"]);
    assert!(ok && out.contains("the journal is sound"), "{out}");
    let s = s.restart();
    let weight = s.http(
        "GET",
        "/zones/t.test/pools/www",
        Some("write-token"),
        None,
        &[],
    );
    assert!(weight.2.contains("\"weight\":7"), "{}", weight.2);
    let gone = s.http(
        "GET",
        "/zones/t.test/pools/new",
        Some("write-token"),
        None,
        &[],
    );
    assert_eq!(gone.0, 404, "{}", gone.2);
}
