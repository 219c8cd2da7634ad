//! The documentation against the code: every key the config parser takes is in the
//! configuration reference (docs/configuration.md), every key of a zone file's main tables is
//! in docs/zones.md, and the served OpenAPI document describes exactly the API's routes. The
//! keys are what the parser itself says it expects when handed an unknown one, so a key added
//! to the code and not to the reference fails here.

use std::process::Command;

use crate::harness::{TempDir, binary, repo};

/// The keys `meridian check` says it expects where `text` puts an unknown key `zzz`.
fn expected_keys(config: &str, zone: Option<&str>) -> Vec<String> {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    if let Some(zone) = zone {
        std::fs::write(dir.0.join("zones/t.test.toml"), zone).unwrap();
    }
    std::fs::write(dir.0.join("meridian.toml"), config).unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let expected = stderr
        .split_once("unknown field `zzz`, expected ")
        .unwrap_or_else(|| panic!("{config} {zone:?}: {stderr}"))
        .1;
    // "one of `a`, `b`" or "`a` or `b`": every other piece between backquotes.
    let keys = expected
        .lines()
        .next()
        .unwrap()
        .split('`')
        .skip(1)
        .step_by(2);
    keys.map(str::to_owned).collect()
}

/// Whether a reference table in `doc` has a row for `key` of `table`: `table.key` in its
/// first cell, or `key` in a row whose first cell starts with `table.` (`a.x`, `y`).
fn documented(doc: &str, table: &str, key: &str) -> bool {
    doc.lines().filter(|l| l.starts_with("| ")).any(|row| {
        let first = row.split(" | ").next().unwrap_or_default();
        let full = match table {
            "" => format!("`{key}`"),
            _ => format!("`{table}.{key}`"),
        };
        let header = |name: &str| {
            first.contains(&format!("`[{name}]`"))
                || first.contains(&format!("`[[{name}]]`"))
                || first.contains(&format!("`[{name}."))
        };
        first.contains(&full)
            || (table.is_empty() && header(key))
            || first.contains(&format!("[[{table}]]")) && row.contains(&format!("`{key}`"))
            || first.contains(&format!("`{table}.")) && first.contains(&format!("`{key}`"))
            || (!table.is_empty() && first.contains(&format!("[{table}]")))
    })
}

#[test]
fn every_config_key_is_in_the_configuration_reference() {
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let tables = expected_keys("zzz = 1\n", None);
    assert!(tables.contains(&"server".to_owned()), "{tables:?}");
    let mut missing = Vec::new();
    for table in &tables {
        let text = match table.as_str() {
            "tsig" => "[[tsig]]\nzzz = 1\n".to_owned(),
            _ => format!("[{table}]\nzzz = 1\n"),
        };
        for key in expected_keys(&text, None) {
            if !documented(&doc, table, &key) {
                missing.push(format!("{table}.{key}"));
            }
        }
    }
    for key in expected_keys("[api]\n[[api.tokens]]\nzzz = 1\n", None) {
        if !documented(&doc, "api.tokens", &key) && !doc.contains(&format!("`{key}`")) {
            missing.push(format!("api.tokens.{key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn every_zone_file_key_is_in_the_zones_page() {
    let doc = std::fs::read_to_string(repo().join("docs/zones.md")).unwrap();
    let head = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n";
    let cases = [
        ("", "zzz = 1\n".to_owned() + head),
        ("soa", head.to_owned() + "zzz = 1\n"),
        ("records", format!("{head}[[records]]\nzzz = 1\n")),
        ("pools.*", format!("{head}[pools.p]\nzzz = 1\n")),
    ];
    let mut missing = Vec::new();
    for (table, zone) in cases {
        for key in expected_keys("[zones]\ndirectory = \"zones\"\n", Some(&zone)) {
            if !documented(&doc, table, &key) {
                missing.push(format!("{table}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/zones.md: {missing:?}");
}

/// `(path with its parameters as {}, method)` pairs.
type Routes = std::collections::BTreeSet<(String, String)>;

fn normalized(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The routes of the API router under /api/v1, as `src/api/mod.rs` declares them.
fn router_routes() -> Routes {
    let source = std::fs::read_to_string(repo().join("src/api/mod.rs")).unwrap();
    let v1 = source
        .split_once("let v1 = axum::Router::new()")
        .and_then(|(_, rest)| rest.split_once("axum::Router::new()"))
        .expect("the v1 router in src/api/mod.rs")
        .0;
    let mut routes = Routes::new();
    for route in v1.split(".route(").skip(1) {
        let path = route.split('"').nth(1).unwrap();
        for method in ["get", "put", "post", "patch", "delete"] {
            let called = route
                .match_indices(&format!("{method}("))
                .any(|(i, _)| i == 0 || !route.as_bytes()[i - 1].is_ascii_alphanumeric());
            if called {
                routes.insert((normalized(path), method.to_owned()));
            }
        }
    }
    routes
}

/// The OpenAPI document the server serves describes exactly the routes its router has.
#[test]
fn the_openapi_document_matches_the_router() {
    let s = crate::harness::Server::start_api(&[("t.test.toml", crate::harness::ZONE_HEAD)]);
    let (status, _, served) = s.http("GET", "/openapi.json", Some("read-token"), None, &[]);
    assert_eq!(status, 200, "{served}");
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["servers"][0]["url"], "/api/v1");
    let mut described = Routes::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                described.insert((normalized(path), method.clone()));
            }
        }
    }
    let routed = router_routes();
    assert!(routed.len() > 10, "{routed:?}");
    let undocumented: Vec<_> = routed.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "openapi.json describes no such route: {unrouted:?}"
    );
}
