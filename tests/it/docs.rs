//! The documentation against the code: every key the config parser takes is in the
//! configuration reference (docs/configuration.md), every key of a zone file's main tables is
//! in docs/zones.md, and the served OpenAPI document describes exactly the API's routes. The
//! The API reference in docs/api.md is that document rendered. The
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

/// The markers around docs/api.md's reference, which is rendered from the served document.
const REFERENCE_BEGIN: &str = "<!-- openapi:begin";
const REFERENCE_END: &str = "<!-- openapi:end -->";

/// The API reference in docs/api.md is the served OpenAPI document rendered as Markdown, so
/// the page says what the router does (the test above ties the document to the router).
/// `MERIDIAN_UPDATE_DOCS=1 cargo test --test it api_reference` writes it anew.
#[test]
fn the_api_reference_is_rendered_from_the_openapi_document() {
    let s = crate::harness::Server::start_api(&[("t.test.toml", crate::harness::ZONE_HEAD)]);
    let (status, _, served) = s.http("GET", "/openapi.json", None, None, &[]);
    assert_eq!(status, 200, "{served}");
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    let rendered = render_reference(&document);
    let path = repo().join("docs/api.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let start = page
        .find(REFERENCE_BEGIN)
        .expect("the reference's begin marker");
    let start = start + page[start..].find('\n').unwrap() + 1;
    let end = page
        .find(REFERENCE_END)
        .expect("the reference's end marker");
    if std::env::var_os("MERIDIAN_UPDATE_DOCS").is_some() {
        std::fs::write(
            &path,
            format!("{}{rendered}{}", &page[..start], &page[end..]),
        )
        .unwrap();
        return;
    }
    assert!(
        page[start..end] == rendered,
        "docs/api.md's reference differs from /openapi.json rendered; \
         MERIDIAN_UPDATE_DOCS=1 cargo test --test it api_reference writes it"
    );
}

fn render_reference(document: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let base = document["servers"][0]["url"].as_str().unwrap();
    writeln!(out, "\nEvery path is under `{base}`.\n").unwrap();
    out.push_str("| Method and path | Token | What it does | Body | Answers |\n");
    out.push_str("|---|---|---|---|---|\n");
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let scope = op["x-scope"].as_str().unwrap_or("none");
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| schema_type(&serde_json::Value::Object(schema.clone())))
                .unwrap_or_default();
            let answers: Vec<&str> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            writeln!(
                out,
                "| `{} {path}` | {scope} | {} | {body} | {} |",
                method.to_uppercase(),
                op["summary"].as_str().unwrap(),
                answers.join(", ")
            )
            .unwrap();
        }
    }
    let errors = &document["components"]["responses"]["Error"]["description"];
    writeln!(out, "\n**Errors.** {}\n", errors.as_str().unwrap()).unwrap();
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        writeln!(out, "### {name}\n").unwrap();
        if let Some(text) = schema["description"].as_str() {
            writeln!(out, "{text}\n").unwrap();
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        out.push_str("| Field | Type | Required | Notes |\n|---|---|---|---|\n");
        for (field, property) in schema["properties"].as_object().unwrap() {
            let needed = if required.contains(&field.as_str()) {
                "yes"
            } else {
                ""
            };
            let notes = property["description"].as_str().unwrap_or("");
            writeln!(
                out,
                "| `{field}` | {} | {needed} | {notes} |",
                schema_type(property)
            )
            .unwrap();
        }
        out.push('\n');
    }
    out
}

/// A schema's type in a few words: `string`, `one of "up", "down"`, `array of Endpoint`, …
fn schema_type(schema: &serde_json::Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let each: Vec<String> = choices.iter().map(schema_type).collect();
        return each.join(" or ");
    }
    let mut text = match schema["type"].as_str() {
        Some("array") => format!("array of {}", schema_type(&schema["items"])),
        Some(kind) => kind.to_owned(),
        None => "any".to_owned(),
    };
    if let Some(values) = schema["enum"].as_array() {
        let each: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        text = format!("{text}: {}", each.join(", "));
    }
    match (schema.get("minimum"), schema.get("maximum")) {
        (Some(low), Some(high)) => text.push_str(&format!(", {low}–{high}")),
        (Some(low), None) => text.push_str(&format!(", ≥ {low}")),
        (None, Some(high)) => text.push_str(&format!(", ≤ {high}")),
        (None, None) => {}
    }
    if schema["nullable"] == true {
        text.push_str(", or null");
    }
    if let Some(default) = schema.get("default") {
        text.push_str(&format!(" (default {default})"));
    }
    text
}
