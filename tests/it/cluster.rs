//! A nameserver set on a real etcd: three instances of the real binary share their zones,
//! changes, registrations and health; an instance killed catches up; with etcd away they answer
//! on from their local copies and refuse changes; health is decided by quorum.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::etcd::{Etcd, member};
use crate::harness::{Server, ZONE_HEAD, eventually};

const W: Option<&str> = Some("write-token");

fn zone() -> String {
    format!("{ZONE_HEAD}[pools.p]\npolicy = \"all\"\nendpoints = [\"192.0.2.1\"]\n")
}

fn txt(s: &Server) -> Vec<String> {
    s.dig(&["v.t.test", "TXT"]).answer_data()
}

fn set_txt(s: &Server, value: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let body = format!(r#"{{"data": ["\"{value}\""]}}"#);
    let (status, _, text) = s.http(
        "PUT",
        "/zones/t.test/records/v/TXT",
        W,
        Some(&body),
        headers,
    );
    (status, text)
}

fn etag(s: &Server) -> String {
    let (status, headers, _) = s.http("GET", "/zones/t.test", W, None, &[]);
    assert_eq!(status, 200);
    let tag = headers.into_iter().find(|(k, _)| k == "etag");
    tag.expect("an ETag").1
}

fn three(etcd: &Etcd, extra: &[&str; 3]) -> Vec<Server> {
    let zone = zone();
    let names = ["a", "b", "c"];
    (0..3)
        .map(|i| member(etcd, names[i], &[("t.test.toml", &zone)], extra[i]))
        .collect()
}

#[test]
fn a_change_through_one_instance_is_answered_by_all_and_racing_if_match_writes_have_one_winner() {
    let etcd = Etcd::start();
    let set = three(&etcd, &["", "", ""]);
    assert_eq!(set_txt(&set[0], "one", &[]).0, 200);
    let started = Instant::now();
    for s in &set {
        eventually(Duration::from_secs(1), "the change everywhere", || {
            txt(s) == ["\"one\""]
        });
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // Every instance serves the same document: the same ETag and serial.
    let tag = etag(&set[1]);
    assert_eq!(tag, etag(&set[2]));
    let serials: Vec<Vec<String>> = set
        .iter()
        .map(|s| s.dig(&["t.test", "SOA"]).answer_data())
        .collect();
    assert!(serials.iter().all(|s| *s == serials[0]), "{serials:?}");
    // Two writes on that tag through two instances at once: one wins, one gets 412.
    let results: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = [(&set[1], "b"), (&set[2], "c")]
            .into_iter()
            .map(|(s, v)| {
                let tag = tag.clone();
                scope.spawn(move || set_txt(s, v, &[("If-Match", &tag)]).0)
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = results.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 412], "{results:?}");
    let winner = if results[0] == 200 { "\"b\"" } else { "\"c\"" };
    for s in &set {
        eventually(Duration::from_secs(1), "the winner everywhere", || {
            txt(s) == [winner]
        });
    }
}

#[test]
fn a_killed_instance_catches_up_and_with_etcd_away_answers_go_on_and_changes_are_refused() {
    let mut etcd = Etcd::start();
    let mut set = three(&etcd, &["", "", ""]);
    // kill -9 of c while changes go on through a.
    for i in 0..10 {
        if i == 4 {
            set[2].signal("KILL");
        }
        assert_eq!(set_txt(&set[0], &format!("n{i}"), &[]).0, 200);
    }
    for s in &set[..2] {
        eventually(Duration::from_secs(1), "a and b unaffected", || {
            txt(s) == ["\"n9\""]
        });
    }
    let c = set.pop().unwrap().restart();
    c.wait_log("etcd: in the set as", 1);
    eventually(Duration::from_secs(2), "c caught up", || {
        txt(&c) == ["\"n9\""]
    });
    set.push(c);

    // etcd stopped: the same answers everywhere; changes refused, nothing changed.
    etcd.stop();
    for s in &set {
        eventually(Duration::from_secs(3), "etcd seen gone", || {
            s.log().contains("etcd: lost")
        });
    }
    let (status, body) = set_txt(&set[1], "refused", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("etcd"), "{body}");
    assert!(set.iter().all(|s| txt(s) == ["\"n9\""]));
    // An instance started meanwhile serves its local copy.
    let b = set.remove(1).restart();
    assert_eq!(txt(&b), ["\"n9\""]);
    set.insert(1, b);

    // etcd back (answering): within a second every instance is in the set again, and a
    // change made after it reaches all three.
    etcd.restart();
    for s in &set {
        eventually(Duration::from_secs(1), "connected again", || {
            s.get("/metrics").1.contains("\nmeridian_store_connected 1")
        });
    }
    let (status, body) = set_txt(&set[1], "after", &[]);
    assert_eq!(
        status,
        200,
        "{body} {} {}",
        set[1].log(),
        set[1].get("/metrics").1
    );
    for s in &set {
        eventually(Duration::from_secs(2), "the change everywhere", || {
            txt(s) == ["\"after\""]
        });
    }
}

/// Three instances probing from 127.0.0.2, .3 and .4 an endpoint whose backend refuses some
/// of them.
#[test]
fn health_is_decided_by_a_majority_of_the_instances() {
    let etcd = Etcd::start();
    let healthy = Backend::start("127.0.0.10".parse().unwrap(), 0);
    let port = healthy.addr.port();
    let flaky = Backend::start("127.0.0.11".parse().unwrap(), port);
    flaky.refuse_from(&["127.0.0.3"]);
    let check = format!(
        r#"{{ type = "http", port = {port}, path = "/health", interval = "200ms", timeout = "150ms", fall = 2, rise = 2 }}"#
    );
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"all\"\ncheck = {check}\n\
         endpoints = [\"127.0.0.10\", \"127.0.0.11\"]\n"
    );
    let health = |source: &str| format!("[health]\nsource_address = \"{source}\"\n");
    let set: Vec<Server> = [("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")]
        .iter()
        .map(|(name, source)| member(&etcd, name, &[("t.test.toml", &zone)], &health(source)))
        .collect();
    let answers = |s: &Server| {
        let mut a = s.dig(&["p.t.test", "A"]).answer_data();
        a.sort();
        a
    };
    // b sees it fail; a and c do not: it stays everywhere.
    eventually(Duration::from_secs(5), "b's opinion published", || {
        let (_, _, body) = set[0].http("GET", "/health", W, None, &[]);
        body.contains(r#""b":"down""#)
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        for s in &set {
            assert_eq!(
                answers(s),
                ["127.0.0.10", "127.0.0.11"],
                "majority keeps it"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Now c cannot reach it either: it leaves every instance's answers within
    // fall × interval + 1 s.
    flaky.refuse_from(&["127.0.0.3", "127.0.0.4"]);
    let started = Instant::now();
    for s in &set {
        eventually(Duration::from_secs(3), "out everywhere", || {
            answers(s) == ["127.0.0.10"]
        });
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2 * 200 + 1000), "{took:?}");
    // And each instance shows the opinions and the decision.
    let (_, _, body) = set[1].http("GET", "/health", W, None, &[]);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let flaky_entry = health["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "127.0.0.11")
        .unwrap()
        .clone();
    assert_eq!(flaky_entry["state"], "down", "{flaky_entry}");
    assert_eq!(flaky_entry["opinions"]["a"], "up", "{flaky_entry}");
    assert_eq!(health["set"]["instances"].as_array().unwrap().len(), 3);
}

#[test]
fn a_registration_expires_on_all_instances_at_once() {
    let etcd = Etcd::start();
    let set = three(&etcd, &["", "", ""]);
    let path = "/zones/t.test/pools/p/registrations/192.0.2.50";
    let (status, _, body) = set[0].http("PUT", path, W, Some(r#"{"ttl": "3s"}"#), &[]);
    assert_eq!(status, 201, "{body}");
    let has = |s: &Server| {
        s.dig(&["p.t.test", "A"])
            .answer_data()
            .contains(&"192.0.2.50".to_owned())
    };
    for s in &set {
        eventually(Duration::from_secs(1), "registered everywhere", || has(s));
    }
    // Renewed through another instance: kept past its TTL.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        let (status, _, body) = set[1].http("PUT", path, W, Some(r#"{"ttl": "3s"}"#), &[]);
        assert_eq!(status, 200, "{body}");
    }
    assert!(set.iter().all(has), "renewed");
    // Not renewed: it leaves all three at once.
    let started = Instant::now();
    let gone: Vec<Duration> = set
        .iter()
        .map(|s| eventually(Duration::from_secs(6), "expired", || !has(s)) + Duration::ZERO)
        .collect();
    let last = started.elapsed();
    assert!(last > Duration::from_secs(1), "{gone:?}");
    // Polled in turn: the later ones had already gone when the first went.
    assert!(
        gone[1] < Duration::from_millis(300) && gone[2] < Duration::from_millis(300),
        "{gone:?}"
    );
}

/// A renewal through an instance restarted since the registration renews the same lease (200),
/// and the registration then expires once, at that lease's end.
#[test]
fn a_renewal_through_a_restarted_instance_renews_the_same_lease() {
    let etcd = Etcd::start();
    let zone = zone();
    let a = member(&etcd, "a", &[("t.test.toml", &zone)], "");
    let path = "/zones/t.test/pools/p/registrations/192.0.2.51";
    let (status, _, body) = a.http("PUT", path, W, Some(r#"{"ttl": "30s"}"#), &[]);
    assert_eq!(status, 201, "{body}");
    let lease = || {
        // Every key under /test/registrations/: its lease.
        let range =
            r#"{"key":"L3Rlc3QvcmVnaXN0cmF0aW9ucy8=","range_end":"L3Rlc3QvcmVnaXN0cmF0aW9uczA="}"#;
        let listing = etcd.call("/v3/kv/range", range).expect("etcd answers");
        let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
        let kvs = listing["kvs"].as_array().cloned().unwrap_or_default();
        assert_eq!(kvs.len(), 1, "{listing}");
        kvs[0]["lease"].as_str().unwrap().to_owned()
    };
    let before = lease();
    let a = a.restart();
    a.wait_log("etcd: in the set as", 1);
    for _ in 0..2 {
        let (status, _, body) = a.http("PUT", path, W, Some(r#"{"ttl": "30s"}"#), &[]);
        assert_eq!(status, 200, "a renewal after a restart: {body}");
    }
    assert_eq!(lease(), before, "the registration moved to another lease");
}

/// The set compacts etcd's history older than `keep_history_secs`: old revisions of a zone's
/// key are gone from etcd, and the set goes on (a change, a restart that catches up).
#[test]
fn the_set_compacts_etcds_history() {
    let etcd = Etcd::start();
    let zone = zone();
    let zones = [("t.test.toml", zone.as_str())];
    let a = crate::etcd::start_member(&etcd, "a", &zones, "", "keep_history_secs = 1\n");
    a.wait_log("etcd: in the set as", 1);
    let first = r#"{"key":"L3Rlc3Qvem9uZS1tZXRhL3QudGVzdC4=","revision":"2"}"#;
    assert!(
        etcd.call("/v3/kv/range", first).is_some(),
        "revision 2 is kept at first"
    );
    for value in ["one", "two", "three"] {
        assert_eq!(set_txt(&a, value, &[]).0, 200);
    }
    eventually(Duration::from_secs(5), "revision 2 compacted", || {
        etcd.call("/v3/kv/range", first).is_none()
    });
    assert_eq!(set_txt(&a, "four", &[]).0, 200);
    let a = a.restart();
    a.wait_log("etcd: in the set as", 1);
    assert_eq!(txt(&a), ["\"four\""]);
}

/// Proxy variables set for other tools do not put a proxy between a member and etcd.
#[test]
fn a_member_reaches_etcd_directly_whatever_proxy_the_environment_names() {
    let etcd = Etcd::start();
    let config = format!(
        "[store]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/test\"\ninstance = \"a\"\n",
        etcd.url()
    );
    let proxy = "http://127.0.0.1:9";
    let env = [
        ("HTTP_PROXY", proxy),
        ("http_proxy", proxy),
        ("ALL_PROXY", proxy),
    ];
    let a = Server::start_config_env(&[("t.test.toml", &zone())], &config, &env);
    a.wait_log("etcd: in the set as", 1);
}

/// With `probes_per_endpoint = 1`, each endpoint is probed by one instance of the three, and
/// its result decides for all.
#[test]
fn each_endpoint_probed_by_its_share_of_instances_decides_for_all() {
    let etcd = Etcd::start();
    let backends: Vec<Backend> = (0..4)
        .map(|i| Backend::start(format!("127.0.0.{}", 20 + i).parse().unwrap(), 0))
        .collect();
    let port = backends[0].addr.port();
    let backends: Vec<Backend> = std::iter::once(backends.into_iter().next().unwrap())
        .chain((1..4).map(|i| Backend::start(format!("127.0.0.{}", 20 + i).parse().unwrap(), port)))
        .collect();
    let check = format!(
        r#"{{ type = "http", port = {port}, path = "/health", interval = "200ms", timeout = "150ms", fall = 2, rise = 2 }}"#
    );
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"all\"\ncheck = {check}\n\
         endpoints = [\"127.0.0.20\", \"127.0.0.21\", \"127.0.0.22\", \"127.0.0.23\"]\n"
    );
    let extra = "[health]\nprobes_per_endpoint = 1\n";
    let set: Vec<Server> = ["a", "b", "c"]
        .iter()
        .map(|name| member(&etcd, name, &[("t.test.toml", &zone)], extra))
        .collect();
    let opinions = |s: &Server| -> Vec<usize> {
        let (_, _, body) = s.http("GET", "/health", W, None, &[]);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        let endpoints = health["endpoints"].as_array().unwrap().clone();
        endpoints
            .iter()
            .map(|e| e["opinions"].as_object().map_or(0, |o| o.len()))
            .collect()
    };
    for s in &set {
        eventually(Duration::from_secs(5), "one opinion an endpoint", || {
            opinions(s) == [1, 1, 1, 1]
        });
    }
    // The probe load: about a third of what three instances probing everything would send.
    let before: usize = backends.iter().map(Backend::requests).sum();
    std::thread::sleep(Duration::from_secs(2));
    let sent = backends.iter().map(Backend::requests).sum::<usize>() - before;
    // 4 endpoints × 5 probes a second × 2 s = 40 from one prober each (120 if all probed).
    assert!((25..=60).contains(&sent), "{sent} probes in 2 s");
    // One backend fails: its one prober's result takes it out of every instance's answers.
    backends[2].set(crate::backend::Mode::Error);
    for s in &set {
        eventually(Duration::from_secs(3), "out everywhere", || {
            !s.dig(&["p.t.test", "A"])
                .answer_data()
                .contains(&"127.0.0.22".to_owned())
        });
    }
    let (_, metrics) = set[0].get("/metrics");
    assert!(
        metrics.contains("\nmeridian_store_connected 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("meridian_store_revision_applied 0\n"),
        "{metrics}"
    );
}

/// etcd with authentication on: a member with the right password joins; one with a wrong
/// password serves its local copy and refuses changes.
#[test]
fn members_authenticate_to_etcd() {
    let etcd = Etcd::start();
    for (path, body) in [
        (
            "/v3/auth/user/add",
            r#"{"name": "root", "password": "s3cret"}"#,
        ),
        ("/v3/auth/user/grant", r#"{"user": "root", "role": "root"}"#),
        ("/v3/auth/enable", "{}"),
    ] {
        assert!(etcd.call(path, body).is_some(), "{path}");
    }
    let zone = zone();
    let zones = [("t.test.toml", zone.as_str())];
    let good = "username = \"root\"\npassword = \"s3cret\"\n";
    let a = crate::etcd::start_member(&etcd, "a", &zones, "", good);
    a.wait_log("etcd: in the set as", 1);
    let bad = "username = \"root\"\npassword = \"wrong\"\n";
    let b = crate::etcd::start_member(&etcd, "b", &zones, "", bad);
    b.wait_log("etcd: ", 1);
    assert_eq!(set_txt(&a, "authenticated", &[]).0, 200);
    eventually(Duration::from_secs(1), "served by a", || {
        txt(&a) == ["\"authenticated\""]
    });
    let (status, body) = set_txt(&b, "refused", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(
        txt(&b).is_empty(),
        "b serves its local copy, without the record"
    );
    assert!(!b.log().contains("in the set as"), "{}", b.log());
}

/// Concurrent changes of one zone through all three instances (batched on each, racing each
/// other in etcd): every acknowledged change is answered everywhere, none lost.
#[test]
fn concurrent_changes_through_every_instance_are_all_kept() {
    let etcd = Etcd::start();
    let set = three(&etcd, &["", "", ""]);
    std::thread::scope(|scope| {
        for writer in 0..9 {
            let s = &set[writer % 3];
            scope.spawn(move || {
                for i in 0..6 {
                    let body = format!(r#"{{"data": ["\"{writer}-{i}\""]}}"#);
                    let path = format!("/zones/t.test/records/w{writer}/TXT");
                    let (status, _, text) = s.http("PUT", &path, W, Some(&body), &[]);
                    assert_eq!(status, 200, "{text}");
                }
            });
        }
    });
    for s in &set {
        for writer in 0..9 {
            let name = format!("w{writer}.t.test");
            let want = [format!("\"{writer}-5\"")];
            eventually(Duration::from_secs(1), "every last change", || {
                s.dig(&[&name, "TXT"]).answer_data() == want
            });
        }
    }
}

/// etcd serving clients over TLS and requiring client certificates: a member with the CA and
/// its certificate joins and shares changes.
#[test]
fn members_reach_etcd_over_tls_with_client_certificates() {
    let etcd = Etcd::start_tls();
    let certs = etcd.tls.clone().unwrap();
    let zone = zone();
    let zones = [("t.test.toml", zone.as_str())];
    let store = format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        certs.join("ca.pem").display(),
        certs.join("client.pem").display(),
        certs.join("client.key").display()
    );
    let a = crate::etcd::start_member(&etcd, "a", &zones, "", &store);
    let b = crate::etcd::start_member(&etcd, "b", &zones, "", &store);
    a.wait_log("etcd: in the set as", 1);
    b.wait_log("etcd: in the set as", 1);
    assert_eq!(set_txt(&a, "over tls", &[]).0, 200);
    eventually(Duration::from_secs(1), "served by b", || {
        txt(&b) == ["\"over tls\""]
    });
    // Without a client certificate etcd refuses the connection: the local copy serves on.
    let c = crate::etcd::start_member(
        &etcd,
        "c",
        &zones,
        "",
        &format!("ca_file = \"{}\"\n", certs.join("ca.pem").display()),
    );
    c.wait_log("etcd: ", 1);
    assert_eq!(set_txt(&c, "refused", &[]).0, 503);
    assert!(!c.log().contains("in the set as"), "{}", c.log());
}
