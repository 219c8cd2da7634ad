//! `meridian simulate` and the API's `/simulate`: how a change moves the clients, checked
//! against a brute-force count over the bundled test database's own source.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Server, TempDir, ZONE_HEAD, binary, repo};

/// Datacenters as (name, latitude, longitude).
type Datacenters = [(&'static str, f64, f64); 3];

const BEFORE: Datacenters = [
    ("us-east", 39.04, -77.49),
    ("eu-central", 50.11, 8.68),
    ("ap-southeast", 1.35, 103.82),
];
/// eu-central moved to New York.
const AFTER: Datacenters = [
    ("us-east", 39.04, -77.49),
    ("eu-central", 40.71, -74.0),
    ("ap-southeast", 1.35, 103.82),
];

fn zone(dcs: &Datacenters) -> String {
    let mut z = format!("{ZONE_HEAD}[pools.edge]\npolicy = \"geo\"\n");
    for (i, (name, lat, lon)) in dcs.iter().enumerate() {
        z.push_str(&format!(
            "[[pools.edge.datacenters]]\nname = \"{name}\"\nlatitude = {lat}\nlongitude = {lon}\n\
             endpoints = [\"192.0.2.{}\"]\n",
            i + 1
        ));
    }
    z.push_str(
        "[pools.sticky]\npolicy = \"sticky\"\nendpoints = [\"198.51.100.1\", \"198.51.100.2\", \
         \"198.51.100.3\", \"198.51.100.4\", \"198.51.100.5\"]\n",
    );
    z
}

/// A config serving `zone` as example.test with the bundled database; the folder.
fn config(zone: &str) -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    std::fs::write(dir.0.join("zones/example.test.toml"), zone).unwrap();
    let db = repo().join("geoip/meridian-test.mmdb");
    std::fs::write(
        dir.0.join("meridian.toml"),
        format!("[geoip]\ndatabase = \"{}\"\n", db.display()),
    )
    .unwrap();
    dir
}

fn simulate(dir: &TempDir, args: &[&str]) -> Value {
    let out = Command::new(binary())
        .args(["simulate", "--json", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn pool<'a>(report: &'a Value, name: &str, family: &str) -> &'a Value {
    report["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == name && p["family"] == family)
        .unwrap_or_else(|| panic!("no {name} {family} in {report}"))
}

fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn nearest(dcs: &Datacenters, at: (f64, f64)) -> &'static str {
    dcs.iter()
        .min_by(|a, b| haversine((a.1, a.2), at).total_cmp(&haversine((b.1, b.2), at)))
        .unwrap()
        .0
}

/// By brute force over the database's source: per country (networks, moved), and the
/// addresses that move.
fn brute_force() -> (BTreeMap<String, (u64, u64)>, u64) {
    let centroids: BTreeMap<String, (f64, f64)> =
        std::fs::read_to_string(repo().join("geoip/country-centroids.csv"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((f[0].to_owned(), (f[1].parse().ok()?, f[2].parse().ok()?)))
            })
            .collect();
    let mut countries: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut moved_addresses = 0;
    let csv = std::fs::read_to_string(repo().join("geoip/networks.csv")).unwrap();
    for line in csv.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        let Some((_, prefix)) = f[0].split_once('/').filter(|_| !f[0].contains(':')) else {
            continue;
        };
        let at = match (f[4].parse(), f[5].parse()) {
            (Ok(lat), Ok(lon)) => (lat, lon),
            _ => centroids[f[2]],
        };
        let moved = nearest(&BEFORE, at) != nearest(&AFTER, at);
        let entry = countries.entry(f[2].to_owned()).or_default();
        entry.0 += 1;
        if moved {
            entry.1 += 1;
            moved_addresses += 1u64 << (32 - prefix.parse::<u32>().unwrap());
        }
    }
    (countries, moved_addresses)
}

#[test]
fn moving_a_datacenter_moves_the_countries_a_brute_force_count_finds() {
    let dir = config(&zone(&BEFORE));
    let changed = TempDir::new();
    let file = changed.0.join("example.test.toml");
    std::fs::write(&file, zone(&AFTER)).unwrap();
    let report = simulate(&dir, &["--zone", file.to_str().unwrap()]);
    let geo = &pool(&report, "edge.example.test.", "A")["geo"];
    let (countries, moved_addresses) = brute_force();
    assert!(moved_addresses > 0, "the change moves something");
    assert_eq!(
        geo["moved_addresses"].as_u64(),
        Some(moved_addresses),
        "{geo}"
    );
    let networks: u64 = countries.values().map(|c| c.0).sum();
    assert_eq!(geo["networks"].as_u64(), Some(networks), "{geo}");
    let reported: BTreeMap<String, (u64, u64)> = geo["countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            (
                c["country"].as_str().unwrap().to_owned(),
                (n("networks"), n("moved")),
            )
        })
        .collect();
    let expected: BTreeMap<String, (u64, u64)> =
        countries.into_iter().filter(|(_, c)| c.1 > 0).collect();
    assert_eq!(reported, expected);
    assert!(
        geo["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["to"] == "eu-central"),
        "{geo}"
    );
    // The sticky pool did not change: nobody moves.
    let sticky = &pool(&report, "sticky.example.test.", "A")["endpoints"];
    assert_eq!(sticky["clients_moved"].as_f64(), Some(0.0), "{sticky}");
    assert_eq!(sticky["traffic_moved"].as_f64(), Some(0.0), "{sticky}");
}

#[test]
fn a_no_op_change_moves_nothing() {
    let dir = config(&zone(&BEFORE));
    let same = dir.0.join("zones/example.test.toml");
    let db = repo().join("geoip/meridian-test.mmdb");
    for args in [
        vec!["--zone", same.to_str().unwrap()],
        vec!["--geoip", db.to_str().unwrap()],
    ] {
        let report = simulate(&dir, &args);
        for p in report["pools"].as_array().unwrap() {
            assert_eq!(p["endpoints"]["traffic_moved"].as_f64(), Some(0.0), "{p}");
            if !p["geo"].is_null() {
                assert_eq!(p["geo"]["moved_addresses"].as_u64(), Some(0), "{p}");
                assert_eq!(p["geo"]["countries"].as_array().unwrap().len(), 0);
            }
        }
    }
}

#[test]
fn the_api_simulates_a_pool_change_and_changes_nothing() {
    let s = Server::start_api(&[("example.test.toml", &zone(&BEFORE))]);
    let file = s.zones_dir().join("example.test.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    // One of five sticky endpoints removed: a fifth of the clients move, only its own.
    let spec = r#"{"zone": "example.test", "pool": "sticky", "spec": {"policy": "sticky",
        "endpoints": ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"]}}"#;
    let (status, _, body) = s.http("POST", "/simulate", Some("read-token"), Some(spec), &[]);
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let sticky = &pool(&report, "sticky.example.test.", "A")["endpoints"];
    let moved = sticky["clients_moved"].as_f64().unwrap();
    assert!((moved - 0.2).abs() < 0.02, "{sticky}");
    let gone = sticky["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "198.51.100.5")
        .unwrap();
    assert!(
        (gone["before"].as_f64().unwrap() - moved).abs() < 1e-9,
        "{sticky}"
    );
    assert_eq!(gone["after"].as_f64(), Some(0.0));
    // Nothing was written or served differently.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    // Bad requests: a broken pool, a database the reader may not name, no change at all.
    let broken = r#"{"zone": "example.test", "pool": "sticky", "spec": {"policy": "sticky"}}"#;
    let (status, _, body) = s.http("POST", "/simulate", Some("read-token"), Some(broken), &[]);
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = s.http(
        "GET",
        "/simulate?geoip=/etc/passwd",
        Some("read-token"),
        None,
        &[],
    );
    assert_eq!(status, 403);
    let (status, _, body) = s.http(
        "GET",
        "/simulate?geoip=/etc/passwd",
        Some("write-token"),
        None,
        &[],
    );
    assert_eq!(status, 400, "{body}");
}

/// A changed file named after no served zone is refused as the likely typo it is, unless
/// `--origin` says which zone it is.
#[test]
fn a_zone_file_named_after_no_served_zone_needs_its_origin() {
    let dir = config(&zone(&BEFORE));
    let changed = dir.0.join("changed.toml");
    std::fs::copy(dir.0.join("zones/example.test.toml"), &changed).unwrap();
    let out = Command::new(binary())
        .args(["simulate", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .arg("--zone")
        .arg(&changed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("changed. is not a zone of the config"),
        "{stderr}"
    );
    let path = changed.to_str().unwrap();
    let report = simulate(&dir, &["--zone", path, "--origin", "example.test"]);
    assert!(
        report["pools"].as_array().is_some_and(|p| !p.is_empty()),
        "{report}"
    );
}
