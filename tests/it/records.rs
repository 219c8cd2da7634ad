//! Record data through every way in, kept exactly: a TOML zone's `data` strings, the HTTP API
//! and RFC 2136 UPDATE take the presentation format as master files do (quotes with `;` in
//! them, several strings, escapes as bytes) and refuse what cannot be served where it is
//! written, naming the field; UPDATE edits any type at any name.

use std::process::Command;

use crate::harness::{Server, TempDir, ZONE_HEAD, binary, token_hash};

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";

fn api_server(zone: &str) -> Server {
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"writer\"\n\
         sha256 = \"{}\"\nscope = \"write\"\n\
         [[tsig]]\nname = \"acme\"\nsecret = \"{SECRET}\"\noperations = [\"update\"]\n",
        token_hash("write-token")
    );
    Server::start_config(&[("t.test.toml", zone)], &config)
}

fn nsupdate(s: &Server, commands: &str) {
    let key = format!("hmac-sha256:acme:{SECRET}");
    let script = format!(
        "server 127.0.0.1 {}\nzone t.test\n{commands}\nsend\n",
        s.port
    );
    let (ok, stderr) = crate::harness::nsupdate(&["-y", &key], &script);
    assert!(ok, "{stderr}");
}

#[test]
fn the_api_takes_presentation_text_and_refuses_what_cannot_be_served() {
    let s = api_server(ZONE_HEAD);
    let put = |path: &str, body: &str| s.http("PUT", path, Some("write-token"), Some(body), &[]);
    for (name, rtype, data) in [
        ("_dmarc", "TXT", r#""v=DMARC1; p=reject""#),
        (
            "@",
            "CAA",
            r#"0 issue "letsencrypt.org; validationmethods=dns-01""#,
        ),
        ("utf8", "TXT", r#""caf\195\169" "\059""#),
        ("loc", "LOC", "52 22 23.000 N 4 53 32.000 E -2.00m"),
        ("odd", "TYPE65280", r"\# 4 0A000001"),
    ] {
        let body = serde_json::json!({ "data": [data] }).to_string();
        let (status, _, text) = put(&format!("/zones/t.test/records/{name}/{rtype}"), &body);
        assert_eq!(status, 200, "{name} {rtype}: {text}");
    }
    assert_eq!(
        s.dig(&["_dmarc.t.test", "TXT"]).answer_data(),
        ["\"v=DMARC1; p=reject\""]
    );
    assert_eq!(
        s.dig(&["utf8.t.test", "TXT"]).answer_data(),
        ["\"caf\\195\\169\" \";\""]
    );
    // A string of 256 octets: 422 naming the field, and nothing changed.
    let long = format!("\"{}\"", "x".repeat(256));
    let body = serde_json::json!({ "data": ["\"fine\"", long] }).to_string();
    let (status, _, text) = put("/zones/t.test/records/long/TXT", &body);
    assert_eq!(status, 422, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["field"].as_str().unwrap().ends_with("data[1]"),
        "{text}"
    );
    assert!(
        error["error"].as_str().unwrap().contains("256 octets"),
        "{text}"
    );
    assert_eq!(s.dig(&["long.t.test", "TXT"]).status, "NXDOMAIN");
}

#[test]
fn a_toml_zone_names_the_field_of_data_that_cannot_be_served() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    let zone = format!(
        "{ZONE_HEAD}[[records]]\nname = \"ok\"\ntype = \"TXT\"\ndata = ['\"v=spf1 mx; -all\"']\n\
         [[records]]\nname = \"bad\"\ntype = \"TXT\"\ndata = ['\"{}\"']\n",
        "x".repeat(256)
    );
    std::fs::write(dir.0.join("zones/t.test.toml"), zone).unwrap();
    std::fs::write(dir.0.join("m.toml"), "[zones]\ndirectory = \"zones\"\n").unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(dir.0.join("m.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("t.test.toml"), "{stderr}");
    assert!(stderr.contains("records[2].data[0]"), "{stderr}");
    assert!(stderr.contains("256 octets (at most 255)"), "{stderr}");
}

#[test]
fn update_keeps_data_exactly_and_edits_any_type_at_any_name() {
    let zone = format!(
        "{ZONE_HEAD}[pools.www]\nendpoints = [\"192.0.2.10\"]\n\
         [[records]]\nname = \"alias\"\ntype = \"CNAME\"\ndata = [\"www\"]\n"
    );
    let s = api_server(&zone);
    nsupdate(
        &s,
        "update add spf.t.test. 300 TXT \"v=spf1 mx -all\"\n\
         update add www.t.test. 300 TXT \"site-verification=abc\"\n\
         update add www.t.test. 300 CAA 0 issue \"letsencrypt.org; validationmethods=dns-01\"\n\
         update add alias.t.test. 300 A 192.0.2.99\n\
         update add www.t.test. 300 A 192.0.2.11",
    );
    // A quoted TXT stays one string, as sent.
    assert_eq!(
        s.dig(&["spf.t.test", "TXT"]).answer_data(),
        ["\"v=spf1 mx -all\""]
    );
    // Other types at a pool's name are record sets beside the pool; an A there is an endpoint.
    assert_eq!(
        s.dig(&["www.t.test", "TXT"]).answer_data(),
        ["\"site-verification=abc\""]
    );
    assert_eq!(
        s.dig(&["www.t.test", "CAA"]).answer_data(),
        ["0 issue \"letsencrypt.org; validationmethods=dns-01\""]
    );
    let mut addresses = s.dig(&["www.t.test", "A"]).answer_data();
    addresses.sort();
    assert_eq!(addresses, ["192.0.2.10", "192.0.2.11"]);
    // An A at a CNAME's name is ignored (RFC 2136 §3.4.2.2): the CNAME alone stays.
    let alias = s.dig(&["alias.t.test", "A"]);
    assert!(
        alias
            .raw
            .contains("alias.t.test.\t\t3600\tIN\tCNAME\twww.t.test."),
        "{}",
        alias.raw
    );
    assert!(!alias.raw.contains("192.0.2.99"), "{}", alias.raw);
    // The zone keeps the text as it is served.
    let (status, _, text) = s.http(
        "GET",
        "/zones/t.test/records/spf/TXT",
        Some("write-token"),
        None,
        &[],
    );
    assert_eq!(status, 200, "{text}");
    let set: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        set["data"],
        serde_json::json!(["\"v=spf1 mx -all\""]),
        "{text}"
    );
    // And a deletion of one value leaves the others.
    nsupdate(
        &s,
        "update delete www.t.test. TXT \"site-verification=abc\"",
    );
    assert_eq!(s.dig(&["www.t.test", "TXT"]).status, "NOERROR");
    assert!(s.dig(&["www.t.test", "TXT"]).answer_data().is_empty());
}

/// A pool changed by UPDATE and through the API keeps its place, comments and one-line
/// endpoints in the zone file, and gains no default it did not write.
#[test]
fn pool_edits_keep_the_zone_files_layout_and_write_no_defaults() {
    let zone = format!(
        "{ZONE_HEAD}\n# the pools\n[pools.web] # the web pool\npolicy = \"weighted\"  # by weight\n\
         endpoints = [\"192.0.2.1\", {{ address = \"192.0.2.2\", weight = 3 }}]\n\n\
         # after the pools\n[[records]]\nname = \"txt\"\ntype = \"TXT\"\ndata = ['\"x\"']\n"
    );
    let s = api_server(&zone);
    nsupdate(&s, "update add web.t.test. 30 A 192.0.2.3");
    let pool = r#"{"policy": "weighted", "endpoints": ["192.0.2.1", {"address": "192.0.2.2", "weight": 4}, "192.0.2.3"]}"#;
    let (status, _, text) = s.http(
        "PUT",
        "/zones/t.test/pools/web",
        Some("write-token"),
        Some(pool),
        &[],
    );
    assert_eq!(status, 200, "{text}");
    let path = s.zones_dir().join("t.test.toml");
    crate::harness::eventually(
        std::time::Duration::from_secs(5),
        "the zone file is written",
        || {
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("weight = 4")
        },
    );
    let file = std::fs::read_to_string(&path).unwrap();
    let expected = "# the pools\n[pools.web] # the web pool\npolicy = \"weighted\"  # by weight\n\
         endpoints = [\"192.0.2.1\", { address = \"192.0.2.2\", weight = 4 }, \"192.0.2.3\"]\n\n\
         # after the pools\n[[records]]\nname = \"txt\"";
    assert!(file.contains(expected), "{file}");
    for default in ["all_down", "min_ttl", "ttl =", "[[pools.web.endpoints]]"] {
        assert!(!file.contains(default), "{default} written: {file}");
    }
}
