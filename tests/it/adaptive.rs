//! The policies that follow clients and measurements: sticky, least_load, latency weights and
//! slow start, against the real binary with dig, the API and backends started by the test.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use crate::backend::Backend;
use crate::harness::{Server, ZONE_HEAD, eventually};

/// The first answer to `name` A for each client network, asked with ECS in one dig run.
fn leaders(s: &Server, name: &str, networks: &[String]) -> Vec<String> {
    let mut args = vec!["+short".to_owned()];
    for net in networks {
        args.extend([name.to_owned(), "A".to_owned(), format!("+subnet={net}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.dig_raw("127.0.0.1", s.port, &args);
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), networks.len(), "{out}");
    lines
}

/// `count` distinct random /24 networks.
fn networks(count: usize, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < count {
        let [a, b, c] = [rng.u8(1..224), rng.u8(..), rng.u8(..)];
        if a != 10 && a != 127 {
            seen.insert(format!("{a}.{b}.{c}.0/24"));
        }
    }
    seen.into_iter().collect()
}

fn explain(s: &Server, name: &str, client: &str) -> Value {
    let path = format!("/explain?name={name}&type=A&client={client}");
    let (status, _, body) = s.http("GET", &path, Some("read-token"), None, &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn patch(s: &Server, endpoint: &str, body: &str) -> (u16, String) {
    let path = format!("/zones/example.test/pools/p/endpoints/{endpoint}");
    let (status, _, text) = s.http("PATCH", &path, Some("write-token"), Some(body), &[]);
    (status, text)
}

#[test]
fn sticky_networks_keep_their_endpoint_and_only_a_drained_ones_move() {
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"sticky\"\nmax_answers = 1\nendpoints = \
         [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\", \"192.0.2.4\", \"192.0.2.5\"]\n"
    );
    let s = Server::start_api(&[("example.test.toml", &zone)]);
    let nets = networks(200, 7);
    let first = leaders(&s, "p.example.test", &nets);
    assert_eq!(leaders(&s, "p.example.test", &nets), first);
    // Spread over all five.
    let mut per: HashMap<&str, usize> = HashMap::new();
    for l in &first {
        *per.entry(l).or_default() += 1;
    }
    assert_eq!(per.len(), 5, "{per:?}");
    // The ECS scope is the hashing prefix, and the same /24 gets the same answer.
    let r = s.dig(&["+subnet=198.51.100.77/32", "p.example.test", "A"]);
    assert!(
        r.raw.contains("CLIENT-SUBNET: 198.51.100.77/32/24"),
        "{}",
        r.raw
    );
    let r2 = s.dig(&["+subnet=198.51.100.200/32", "p.example.test", "A"]);
    assert_eq!(r.answer_data(), r2.answer_data());
    // Drain one: only its networks move.
    let (status, body) = patch(&s, "192.0.2.3", r#"{"drain": true}"#);
    assert_eq!(status, 200, "{body}");
    let after = leaders(&s, "p.example.test", &nets);
    for (before, now) in first.iter().zip(&after) {
        match before.as_str() {
            "192.0.2.3" => assert_ne!(now, "192.0.2.3"),
            kept => assert_eq!(now, kept),
        }
    }
    // explain ranks the endpoints for the client's network.
    let e = explain(&s, "p.example.test", "198.51.100.77");
    assert!(
        e["pool"]["decision"]
            .as_str()
            .unwrap()
            .contains("198.51.100.0/24")
    );
    let mut ranks: Vec<u64> = e["pool"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ep| ep["sticky_rank"].as_u64().unwrap())
        .collect();
    ranks.sort();
    assert_eq!(ranks, [1, 2, 3, 4, 5]);
}

#[test]
fn least_load_prefers_the_least_loaded_and_forgets_stale_loads() {
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"least_load\"\nmax_answers = 1\nload_ttl = \"3s\"\n\
         endpoints = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\"]\n"
    );
    let s = Server::start_api(&[("example.test.toml", &zone)]);
    for (address, load) in [("192.0.2.1", 10), ("192.0.2.2", 20), ("192.0.2.3", 70)] {
        let (status, body) = patch(&s, address, &format!(r#"{{"load": {load}}}"#));
        assert_eq!(status, 200, "{body}");
    }
    let count = |answers: &[String], a: &str| answers.iter().filter(|x| *x == a).count();
    let answers = s.short_many("p.example.test", "A", 450);
    let led = [
        count(&answers, "192.0.2.1"),
        count(&answers, "192.0.2.2"),
        count(&answers, "192.0.2.3"),
    ];
    assert!(led[0] > led[1] && led[1] > led[2] && led[2] > 0, "{led:?}");
    let e = explain(&s, "p.example.test", "192.0.2.99");
    assert_eq!(e["pool"]["endpoints"][2]["load"].as_f64(), Some(70.0));
    // Bad reports change nothing; an unknown endpoint is not found.
    assert_eq!(patch(&s, "192.0.2.1", r#"{"load": -1}"#).0, 422);
    assert_eq!(patch(&s, "192.0.2.1", r#"{"load": "x"}"#).0, 422);
    assert_eq!(patch(&s, "192.0.2.9", r#"{"load": 1}"#).0, 404);
    // Three seconds on, the loads are stale: the endpoints lead about equally.
    eventually(Duration::from_secs(10), "loads expire", || {
        explain(&s, "p.example.test", "192.0.2.99")["pool"]["endpoints"][0]["load"].is_null()
    });
    let answers = s.short_many("p.example.test", "A", 450);
    let first = count(&answers, "192.0.2.1");
    assert!((100..=200).contains(&first), "{first} of 450");
}

#[test]
fn least_load_reads_loads_from_the_health_check() {
    let ip = |last| Ipv4Addr::new(127, 0, 0, last);
    let light = Backend::start(ip(61), 0);
    let heavy = Backend::start(ip(62), light.addr.port());
    light.set_load(Some(1));
    heavy.set_load(Some(99));
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"least_load\"\nmax_answers = 1\n\
         check = {{ type = \"http\", port = {}, interval = \"200ms\", load_header = \"X-Load\" }}\n\
         endpoints = [\"127.0.0.61\", \"127.0.0.62\"]\n",
        light.addr.port()
    );
    let s = Server::start_api(&[("example.test.toml", &zone)]);
    eventually(Duration::from_secs(10), "probes report loads", || {
        let e = explain(&s, "p.example.test", "192.0.2.99");
        e["pool"]["endpoints"][1]["load"].as_f64() == Some(99.0)
    });
    let answers = s.short_many("p.example.test", "A", 300);
    let first = answers.iter().filter(|a| *a == "127.0.0.61").count();
    // Two draws of two: the light one leads unless both miss it (3/4).
    assert!(first > 180 && first < 300, "{first} of 300");
}

#[test]
fn latency_weights_favour_the_fast_backend_and_hold_through_jitter() {
    let ip = |last| Ipv4Addr::new(127, 0, 0, last);
    let fast = Backend::start(ip(63), 0);
    let slow = Backend::start(ip(64), fast.addr.port());
    // Delays long beside a loaded machine's scheduling jitter (a few ms), which would otherwise
    // move a 5 ms probe by more than the hysteresis.
    fast.set_delay(Duration::from_millis(20));
    slow.set_delay(Duration::from_millis(150));
    let zone = format!(
        "{ZONE_HEAD}[pools.p]\npolicy = \"weighted_random\"\nweights = \"latency\"\n\
         min_share = 0.02\nmax_answers = 1\n\
         check = {{ type = \"http\", port = {}, interval = \"250ms\", timeout = \"250ms\" }}\n\
         endpoints = [\"127.0.0.63\", \"127.0.0.64\"]\n",
        fast.addr.port()
    );
    let s = Server::start_api(&[("example.test.toml", &zone)]);
    let shares = || -> Vec<f64> {
        let e = explain(&s, "p.example.test", "192.0.2.99");
        e["pool"]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ep| ep["weight_share"].as_f64().unwrap())
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "shares follow response times",
        || {
            let s = shares();
            s[0] == 1.0 && s[1] < 0.4
        },
    );
    // Stable while the response times jitter: a few seconds of probes change nothing.
    let settled = shares();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(shares(), settled);
    }
    let answers = s.short_many("p.example.test", "A", 300);
    let to_fast = answers.iter().filter(|a| *a == "127.0.0.63").count();
    assert!(to_fast > 200, "{to_fast} of 300, shares {settled:?}");
}

#[test]
fn slow_start_ramps_an_added_endpoint() {
    let pool = |endpoints: &str| {
        format!(
            "{ZONE_HEAD}[pools.p]\npolicy = \"weighted\"\nslow_start = \"6s\"\n\
             endpoints = [{endpoints}]\n"
        )
    };
    let s = Server::start_api(&[("example.test.toml", &pool("\"192.0.2.1\""))]);
    // Served from the start: no ramp.
    let e = explain(&s, "p.example.test", "192.0.2.99");
    assert!(e["pool"]["endpoints"][0]["slow_start"].is_null(), "{e}");
    std::fs::write(
        s.zones_dir().join("example.test.toml"),
        pool("\"192.0.2.1\", \"192.0.2.2\""),
    )
    .unwrap();
    s.signal("HUP");
    let ramp = || {
        let e = explain(&s, "p.example.test", "192.0.2.99");
        e["pool"]["endpoints"][1]["slow_start"].as_f64()
    };
    eventually(Duration::from_secs(5), "the new endpoint ramps", || {
        ramp().is_some()
    });
    let early = ramp().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let later = ramp().unwrap();
    assert!(later > early + 0.2, "{early} then {later}");
    eventually(Duration::from_secs(8), "the ramp ends", || ramp().is_none());
}
