//! Endpoint registration with heartbeats against the real binary: registered endpoints join
//! the answers, renewals keep them, a missed TTL takes them out, a restart keeps them with the
//! time they had left, and bad registrations change nothing.

use std::time::Duration;

use crate::harness::{Server, ZONE_HEAD, eventually};

const W: Option<&str> = Some("write-token");

fn zone() -> String {
    format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"all\"\nendpoints = [\"192.0.2.1\"]\n\
         [pools.g]\npolicy = \"geo\"\n[[pools.g.datacenters]]\nname = \"eu\"\n\
         latitude = 50.1\nlongitude = 8.7\nendpoints = [\"198.51.100.1\"]\n"
    )
}

fn register(s: &Server, pool: &str, address: &str, body: &str) -> (u16, String) {
    let path = format!("/zones/t.test/pools/{pool}/registrations/{address}");
    let (status, _, text) = s.http("PUT", &path, W, Some(body), &[]);
    (status, text)
}

fn answer(s: &Server, name: &str) -> Vec<String> {
    let mut a = s.dig(&[name, "A"]).answer_data();
    a.sort();
    a
}

#[test]
fn registered_endpoints_join_renew_and_expire() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    assert_eq!(register(&s, "p", "192.0.2.50", r#"{"ttl": "3s"}"#).0, 201);
    assert_eq!(answer(&s, "p.t.test"), ["192.0.2.1", "192.0.2.50"]);
    // Heartbeats keep it beyond its TTL.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(register(&s, "p", "192.0.2.50", r#"{"ttl": "3s"}"#).0, 200);
    }
    assert_eq!(answer(&s, "p.t.test"), ["192.0.2.1", "192.0.2.50"]);
    let (status, _, list) = s.http("GET", "/zones/t.test/registrations", W, None, &[]);
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let left = list["registrations"][0]["expires_in_ms"].as_u64().unwrap();
    assert!(left > 1000 && left <= 3000, "{list}");
    // explain and /health show it as registered, with the time left.
    let (_, _, e) = s.http(
        "GET",
        "/explain?name=p.t.test&type=A&client=192.0.2.99",
        W,
        None,
        &[],
    );
    let e: serde_json::Value = serde_json::from_str(&e).unwrap();
    let ep = &e["pool"]["endpoints"][1];
    assert_eq!(ep["address"], "192.0.2.50", "{e}");
    assert!(
        ep["registered_expires_in_ms"]
            .as_u64()
            .is_some_and(|l| l <= 3000),
        "{e}"
    );
    assert!(e["pool"]["endpoints"][0]["registered_expires_in_ms"].is_null());
    let (_, _, health) = s.http("GET", "/health", W, None, &[]);
    assert!(health.contains("\"address\":\"192.0.2.50\""), "{health}");
    // So does the status page's data.
    let (status, page) = s.get("/status.json");
    assert_eq!(status, 200, "{page}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let shown = &page["registrations"][0];
    assert_eq!(shown["address"], "192.0.2.50", "{page}");
    assert!(shown["expires_in_ms"].as_u64().is_some_and(|l| l <= 3000));
    // Heartbeats stop: it leaves the answers once its TTL runs out.
    eventually(Duration::from_secs(7), "the registration expires", || {
        answer(&s, "p.t.test") == ["192.0.2.1"]
    });
    assert!(
        s.log()
            .contains("registration of 192.0.2.50 in pool p.t.test. expired")
    );
    // A geo pool's registration names its datacenter.
    let body = r#"{"ttl": 60, "datacenter": "eu", "weight": 2}"#;
    assert_eq!(register(&s, "g", "198.51.100.7", body).0, 201);
    assert_eq!(answer(&s, "g.t.test").len(), 2);
    let path = "/zones/t.test/pools/g/registrations/198.51.100.7";
    assert_eq!(s.http("DELETE", path, W, None, &[]).0, 200);
    assert_eq!(answer(&s, "g.t.test"), ["198.51.100.1"]);
    assert_eq!(s.http("DELETE", path, W, None, &[]).0, 404);
}

#[test]
fn a_restart_keeps_registrations_with_the_time_they_had_left() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    assert_eq!(register(&s, "p", "192.0.2.60", r#"{"ttl": "60s"}"#).0, 201);
    s.signal("KILL");
    std::thread::sleep(Duration::from_millis(1500));
    let s = s.restart();
    assert_eq!(answer(&s, "p.t.test"), ["192.0.2.1", "192.0.2.60"]);
    let (_, _, list) = s.http("GET", "/zones/t.test/registrations", W, None, &[]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let left = list["registrations"][0]["expires_in_ms"].as_u64().unwrap();
    assert!(
        left < 58_500 && left > 50_000,
        "counted from the registration: {list}"
    );
}

#[test]
fn bad_registrations_change_nothing() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    let cases = [
        ("nope", "192.0.2.9", r#"{"ttl": 30}"#, 422),
        ("g", "198.51.100.9", r#"{"ttl": 30}"#, 422),
        (
            "g",
            "198.51.100.9",
            r#"{"ttl": 30, "datacenter": "us"}"#,
            422,
        ),
        ("p", "192.0.2.1", r#"{"ttl": 30}"#, 422),
        ("p", "192.0.2.9", r#"{"ttl": 0}"#, 422),
        ("p", "192.0.2.9", r#"{"ttl": 30, "weight": 0}"#, 422),
        ("p", "192.0.2.9", r#"{"tll": 30}"#, 422),
        ("p", "not-an-ip", r#"{"ttl": 30}"#, 422),
        ("p", "192.0.2.9", r#"{"ttl": 30"#, 400),
    ];
    for (pool, address, body, want) in cases {
        let (status, text) = register(&s, pool, address, body);
        assert_eq!(status, want, "{pool} {address} {body}: {text}");
    }
    assert_eq!(answer(&s, "p.t.test"), ["192.0.2.1"]);
    assert_eq!(answer(&s, "g.t.test"), ["198.51.100.1"]);
    let (_, _, list) = s.http("GET", "/zones/t.test/registrations", W, None, &[]);
    assert!(list.contains("\"registrations\":[]"), "{list}");
}
