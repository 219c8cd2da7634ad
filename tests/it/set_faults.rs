//! A nameserver set of three instances on a real three-member etcd, changed continuously through
//! every instance while etcd's members fail as they do in production: answers lost after a
//! commit (a connection cut), the leader killed (`kill -9`), a member frozen (`SIGSTOP`), two
//! of three stopped. Every answer is kept and
//! checked against what the set holds afterwards: no acknowledged change lost, no refused change
//! applied, no 404 or 412 for a change of one's own, and a change answered "outcome unknown" is
//! what `GET /writes/{id}` says. Then an instance restarted while etcd is down serves its local
//! copy and refuses every change before looking anything up.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::etcd::{EtcdSet, start_member_on};
use crate::harness::{Server, ZONE_HEAD, eventually};

/// A TCP proxy in front of an etcd member that, while `lossy`, loses the answer to about one
/// transaction in two: etcd commits it, the client never hears (a connection cut after the
/// request went through). Everything else passes.
static LOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct LossyProxy {
    addr: SocketAddr,
}

impl LossyProxy {
    fn start(upstream: SocketAddr, lossy: Arc<AtomicBool>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let swallow = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (lossy, lose) = (lossy.clone(), swallow.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = c_in.read(&mut buf) {
                        let needle = b"POST /v3/kv/txn ";
                        let txn = buf[..n].windows(needle.len()).any(|w| w == needle);
                        if txn && lossy.load(Ordering::Relaxed) && fastrand::bool() {
                            lose.store(true, Ordering::Relaxed);
                            LOST.fetch_add(1, Ordering::Relaxed);
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = s_in.read(&mut buf) {
                        if swallow.load(Ordering::Relaxed) {
                            continue;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self { addr }
    }
}

/// A zone's record sets in a fixed order (each instance lists them in the order its local
/// copy was written).
fn sorted(zone: &serde_json::Value) -> Vec<String> {
    let mut sets: Vec<String> = zone["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    sets.sort();
    sets
}

/// One request to an API at `addr`: (status, body), or `None` when no answer came.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut req = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer write-token\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let status = raw.split(' ').nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Done,
    /// Refused for certain.
    Refused(u16),
    /// 503 with `"outcome": "unknown"` and this write id.
    Unknown(String),
    /// A 404 or 412: a misreport, since every change here is to the writer's own names.
    Misreported(u16, String),
    /// No answer within 30 s, or the connection was refused or cut: the client cannot know.
    Silent,
}

fn answer_of(reply: Option<(u16, String)>) -> Answer {
    match reply {
        Some((200..=299, _)) => Answer::Done,
        Some((status @ (404 | 412), body)) => Answer::Misreported(status, body),
        Some((503, body)) if body.contains("\"outcome\":\"unknown\"") => {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            Answer::Unknown(json["id"].as_str().unwrap().to_owned())
        }
        Some((status, _)) => Answer::Refused(status),
        None => Answer::Silent,
    }
}

/// A change and its answer: `put` creates name `name`, a delete removes it.
#[derive(Debug, Clone)]
struct Change {
    name: String,
    put: bool,
    answer: Answer,
}

/// Writes until `stop`: a new name each time (through `put`), and every other time deletes the
/// previous name if its creation was acknowledged (through `delete`).
fn writer(
    w: usize,
    (put, delete): (SocketAddr, SocketAddr),
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Change>>>,
) {
    let mut i = 0;
    let mut last_done: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("w{w}-{i}");
        let body = format!(r#"{{"ttl": 60, "data": ["\"{name}\""]}}"#);
        let path = format!("/zones/t.test/records/{name}/TXT");
        let answer = answer_of(request(put, "PUT", &path, &body));
        let done = answer == Answer::Done;
        log.lock().unwrap().push(Change {
            name: name.clone(),
            put: true,
            answer,
        });
        if i % 2 == 1
            && let Some(previous) = last_done.take()
        {
            let path = format!("/zones/t.test/records/{previous}/TXT");
            let answer = answer_of(request(delete, "DELETE", &path, ""));
            log.lock().unwrap().push(Change {
                name: previous,
                put: false,
                answer,
            });
        } else if done {
            last_done = Some(name);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_change_is_lost_or_misreported_while_etcd_members_fail() {
    let mut etcd = EtcdSet::start();
    let zone = ZONE_HEAD.to_owned();
    let names = ["a", "b", "c"];
    // Instance `a` reaches etcd through proxies that can lose answers.
    let lossy = Arc::new(AtomicBool::new(false));
    let proxies: Vec<String> = etcd
        .urls(0)
        .iter()
        .map(|url| {
            let upstream = url.trim_start_matches("http://").parse().unwrap();
            let proxy = LossyProxy::start(upstream, lossy.clone());
            format!("http://{}", proxy.addr)
        })
        .collect();
    let set: Vec<Server> = (0..3)
        .map(|i| {
            let urls = if i == 0 {
                proxies.clone()
            } else {
                etcd.urls(i)
            };
            start_member_on(&urls, names[i], &[("t.test.toml", &zone)], "", "")
        })
        .collect();
    for s in &set {
        s.wait_log("etcd: in the set as", 1);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    // Writer 0 deletes through `a` what it creates through `b`: a delete whose answer is lost
    // and that is then run again would find its name gone (the 404 a retry must not give).
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let put = set[if w == 0 { 1 } else { w }].api_addr();
            let addrs = (put, set[w].api_addr());
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || writer(w, addrs, stop, log))
        })
        .collect();
    let phase = |seconds: u64| std::thread::sleep(Duration::from_secs(seconds));
    phase(2);
    // Answers lost after etcd committed the change.
    lossy.store(true, Ordering::Relaxed);
    phase(6);
    lossy.store(false, Ordering::Relaxed);
    // The leader killed, and back.
    let leader = etcd.wait_leader();
    etcd.kill(leader);
    phase(4);
    etcd.restart(leader);
    phase(4);
    // The member instance `a` is connected through frozen, then thawed: `a` moves to another.
    let joins = || {
        set[0]
            .log()
            .matches("etcd: in the set as a through ")
            .count()
    };
    let mut seen = joins();
    loop {
        phase(1);
        match joins() {
            now if now == seen => break,
            now => seen = now,
        }
    }
    // The member `a` uses right now, and how often it has moved off it so far.
    let a_log = set[0].log();
    let through = a_log
        .rsplit("etcd: in the set as a through ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let frozen = proxies.iter().position(|p| *p == through).expect("a proxy");
    etcd.signal(frozen, "STOP");
    phase(5);
    etcd.signal(frozen, "CONT");
    phase(4);
    // Two of three stopped: no quorum. Then back.
    let leader = etcd.wait_leader();
    let others: Vec<usize> = (0..3).filter(|&m| m != leader).collect();
    etcd.kill(others[0]);
    etcd.kill(leader);
    phase(4);
    etcd.restart(leader);
    etcd.restart(others[0]);
    etcd.wait_leader();
    phase(5);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    for s in &set {
        eventually(
            Duration::from_secs(20),
            "every instance back in the set",
            || s.get("/readyz").0 == 200,
        );
    }

    // What the set holds now, read through instance `b` (and checked the same on every one).
    let addr = set[1].api_addr();
    let (status, body) = request(addr, "GET", "/zones/t.test", "").unwrap();
    assert_eq!(status, 200, "{body}");
    let zone: serde_json::Value = serde_json::from_str(&body).unwrap();
    let held: std::collections::HashSet<String> = zone["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    for s in &set {
        let (status, other) = request(s.api_addr(), "GET", "/zones/t.test", "").unwrap();
        assert_eq!(status, 200);
        let other: serde_json::Value = serde_json::from_str(&other).unwrap();
        assert_eq!(sorted(&other), sorted(&zone), "instances disagree");
    }

    let changes = log.lock().unwrap().clone();
    let (mut acknowledged, mut lost, mut misreported, mut unknown, mut refused) = (0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    // Each name is created once and deleted at most once, so its presence now says which of
    // its changes took effect.
    let deleted_later = |name: &str| {
        changes
            .iter()
            .any(|c| !c.put && c.name == name && c.answer == Answer::Done)
    };
    for c in &changes {
        let present = held.contains(&c.name);
        let applied = match c.put {
            true => present || deleted_later(&c.name),
            false => !present,
        };
        match &c.answer {
            Answer::Done => {
                acknowledged += 1;
                if !applied {
                    lost += 1;
                    problems.push(format!("lost: {c:?}"));
                }
            }
            Answer::Refused(_) => {
                refused += 1;
                if applied {
                    misreported += 1;
                    problems.push(format!("refused, yet applied: {c:?}"));
                }
            }
            Answer::Silent => problems.push(format!("no answer: {c:?}")),
            Answer::Misreported(..) => {
                misreported += 1;
                problems.push(format!("misreported: {c:?}"));
            }
            Answer::Unknown(id) => {
                unknown += 1;
                let (status, body) = request(addr, "GET", &format!("/writes/{id}"), "").unwrap();
                let committed = match status {
                    200 => true,
                    404 => false,
                    _ => panic!("GET /writes/{id}: {status} {body}"),
                };
                if committed != applied {
                    misreported += 1;
                    problems.push(format!("/writes says {committed}: {c:?}"));
                }
            }
        }
    }
    eprintln!(
        "changes {}: acknowledged {acknowledged}, refused {refused}, unknown {unknown}, \
         lost {lost}, misreported {misreported}",
        changes.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        acknowledged >= 100,
        "only {acknowledged} changes acknowledged"
    );
    assert!(refused > 0, "no fault was felt: the test did not test");
    assert!(
        LOST.load(Ordering::Relaxed) > 0,
        "the proxies lost no answer"
    );
}

/// An instance restarted while etcd is down serves its local copy, says so on /readyz, and
/// refuses every change with 503 before any lookup: a DELETE of a name that is not there is
/// not answered 404 from a copy that may be stale.
#[test]
fn an_instance_restarted_while_etcd_is_down_refuses_changes_before_any_lookup() {
    let mut etcd = EtcdSet::start();
    let zone = format!("{ZONE_HEAD}[[records]]\nname = \"v\"\ntype = \"TXT\"\ndata = [\"x\"]\n");
    let s = start_member_on(&etcd.urls(0), "a", &[("t.test.toml", &zone)], "", "");
    s.wait_log("etcd: in the set as", 1);
    assert_eq!(s.get("/readyz").0, 200);
    for m in 0..3 {
        etcd.kill(m);
    }
    let s = s.restart();
    assert_eq!(s.dig(&["v.t.test", "TXT"]).answer_data(), ["\"x\""]);
    let (status, body) = s.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("nameserver set is not reachable"), "{body}");
    let addr = s.api_addr();
    for (method, path, body) in [
        ("DELETE", "/zones/t.test/records/absent/TXT", ""),
        ("DELETE", "/zones/t.test/records/v/TXT", ""),
        ("PUT", "/zones/t.test/records/v/TXT", r#"{"data": ["y"]}"#),
        (
            "PATCH",
            "/zones/t.test/pools/none/endpoints/192.0.2.1",
            r#"{"weight": 2}"#,
        ),
        (
            "DELETE",
            "/zones/t.test/pools/none/registrations/192.0.2.1",
            "",
        ),
    ] {
        let (status, answer) = request(addr, method, path, body).unwrap();
        assert_eq!(status, 503, "{method} {path}: {answer}");
    }
    let started = Instant::now();
    for m in 0..3 {
        etcd.restart(m);
    }
    etcd.wait_leader();
    eventually(Duration::from_secs(20), "back in the set", || {
        s.get("/readyz").0 == 200
    });
    let (status, answer) = request(addr, "DELETE", "/zones/t.test/records/v/TXT", "").unwrap();
    assert_eq!(
        status,
        200,
        "{answer} ({:?} after etcd came back)",
        started.elapsed()
    );
}
