//! The HTTP API against the real binary: every change verified with dig; refused requests
//! verified to change nothing; concurrency; durability across SIGKILL.

use std::time::Duration;

use crate::backend::{Backend, Mode};
use crate::harness::{Server, ZONE_HEAD, eventually};

const W: Option<&str> = Some("write-token");
const R: Option<&str> = Some("read-token");

fn zone() -> String {
    format!(
        r#"# the api test zone
{ZONE_HEAD}
# the web pool
[pools.www]
policy = "all"
endpoints = [
  {{ address = "192.0.2.10" }}, # first
  {{ address = "192.0.2.11" }},
]
"#
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn every_endpoint_happy_path_shows_in_dns() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    let (st, _, body) = s.http("GET", "/zones", R, None, &[]);
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body)["zones"][0]["zone"], "t.test.");

    let (st, h, body) = s.http("GET", "/zones/t.test", R, None, &[]);
    assert_eq!(st, 200, "{body}");
    assert!(header(&h, "etag").starts_with('"'));
    assert_eq!(json(&body)["soa"]["serial"], 1);

    // Record sets.
    let (st, _, body) = s.http(
        "PUT",
        "/zones/t.test/records/mail/A",
        W,
        Some(r#"{"ttl": 60, "data": ["192.0.2.25"]}"#),
        &[],
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body)["serial"], 2);
    let r = s.dig(&["mail.t.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.25"]);
    assert!(r.answer[0].contains(" 60 "));
    assert!(
        s.dig(&["t.test", "SOA"]).answer_data()[0].contains(" 2 "),
        "serial 2 served"
    );
    let (st, _, body) = s.http("GET", "/zones/t.test/records/mail.t.test./a", R, None, &[]);
    assert_eq!(
        (st, json(&body)["data"][0].as_str()),
        (200, Some("192.0.2.25"))
    );
    let (st, _, _) = s.http("DELETE", "/zones/t.test/records/mail/A", W, None, &[]);
    assert_eq!(st, 200);
    assert_eq!(s.dig(&["mail.t.test", "A"]).status, "NXDOMAIN");

    // Pools.
    let pool = r#"{"policy": "weighted", "ttl": 20, "max_answers": 1, "endpoints": [{"address": "198.51.100.1", "weight": 3}, {"address": "198.51.100.2"}]}"#;
    let (st, _, body) = s.http("PUT", "/zones/t.test/pools/api", W, Some(pool), &[]);
    assert_eq!(st, 200, "{body}");
    let r = s.dig(&["api.t.test", "A"]);
    assert_eq!(r.answer.len(), 1);
    assert!(r.answer[0].contains(" 20 "));
    let (st, _, body) = s.http("GET", "/zones/t.test/pools/api", R, None, &[]);
    assert_eq!(st, 200);
    assert_eq!(json(&body)["endpoints"][0]["weight"], 3);

    // Endpoint PATCH: drain one, then the other answers alone.
    let (st, _, body) = s.http(
        "PATCH",
        "/zones/t.test/pools/www/endpoints/192.0.2.10",
        W,
        Some(r#"{"drain": true}"#),
        &[],
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.dig(&["www.t.test", "A"]).answer_data(), ["192.0.2.11"]);
    let (st, _, _) = s.http(
        "PATCH",
        "/zones/t.test/pools/www/endpoints/192.0.2.10",
        W,
        Some(r#"{"drain": false, "weight": 5}"#),
        &[],
    );
    assert_eq!(st, 200);
    assert_eq!(s.dig(&["www.t.test", "A"]).answer.len(), 2);
    // Comments and layout survive the edits, in the zone file once the journal is compacted
    // into it (a second after changes pause).
    let path = s.zones_dir().join("t.test.toml");
    eventually(
        Duration::from_secs(5),
        "the change reaches the zone file",
        || {
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("weight = 5")
        },
    );
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains("# the web pool") && file.contains("# first"),
        "{file}"
    );

    let (st, _, _) = s.http("DELETE", "/zones/t.test/pools/api", W, None, &[]);
    assert_eq!(st, 200);
    assert_eq!(s.dig(&["api.t.test", "A"]).status, "NXDOMAIN");

    // Whole zones: create, read back, idempotent PUT, delete.
    let new_zone = r#"{"ns": ["ns1.t.test."], "soa": {"mname": "ns1.t.test.", "rname": "hm.t.test.", "serial": 10}, "records": [{"name": "@", "type": "TXT", "data": ["\"hello\""]}]}"#;
    let (st, _, body) = s.http("PUT", "/zones/new.test", W, Some(new_zone), &[]);
    assert_eq!(st, 201, "{body}");
    assert_eq!(s.dig(&["new.test", "TXT"]).answer_data(), ["\"hello\""]);
    let (_, _, again) = s.http("GET", "/zones/new.test", R, None, &[]);
    let (st, _, body) = s.http("PUT", "/zones/new.test", W, Some(&again), &[]);
    assert_eq!(
        (st, json(&body)["serial"].as_u64()),
        (200, Some(10)),
        "same content: unchanged"
    );
    let (st, _, _) = s.http("DELETE", "/zones/new.test", W, None, &[]);
    assert_eq!(st, 200);
    assert_eq!(s.dig(&["new.test", "TXT"]).status, "REFUSED");
    assert!(!s.zones_dir().join("new.test.toml").exists());

    // Health, explain, reload, OpenAPI.
    let (st, _, body) = s.http("GET", "/health", R, None, &[]);
    assert_eq!(st, 200, "{body}");
    assert!(json(&body)["endpoints"].is_array());
    let (st, _, body) = s.http(
        "GET",
        "/explain?name=www.t.test&type=A&client=192.0.2.99",
        R,
        None,
        &[],
    );
    assert_eq!(st, 200, "{body}");
    let e = json(&body);
    assert_eq!(e["pool"]["policy"], "all");
    assert_eq!(e["answer"].as_array().unwrap().len(), 2);
    std::fs::write(
        s.zones_dir().join("t.test.toml"),
        format!(
            "{}\n[[records]]\nname = \"disk\"\ntype = \"A\"\ndata = [\"192.0.2.77\"]\n",
            zone()
        ),
    )
    .unwrap();
    let (st, _, body) = s.http("POST", "/reload", W, None, &[]);
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.dig(&["disk.t.test", "A"]).answer_data(), ["192.0.2.77"]);
    let (st, _, body) = s.http("GET", "/openapi.json", None, None, &[]);
    assert_eq!(st, 200);
    let doc = json(&body);
    for path in [
        "/zones",
        "/zones/{zone}",
        "/zones/{zone}/records/{name}/{type}",
        "/zones/{zone}/pools/{name}",
        "/zones/{zone}/pools/{name}/endpoints/{address}",
        "/health",
        "/explain",
        "/simulate",
        "/reload",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

/// (method, path, token, body, extra headers, expected status).
type Refused<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    u16,
);

#[test]
fn refused_requests_change_nothing() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    let file = s.zones_dir().join("t.test.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let (_, h, _) = s.http("GET", "/zones/t.test", R, None, &[]);
    let tag = header(&h, "etag").to_owned();
    // A body over the API's limit (2 MiB): 413, and nothing changes.
    let huge = format!(r#"{{"data": ["\"{}\""]}}"#, "x".repeat(3 << 20));
    let (status, _, text) = s.http("PUT", "/zones/t.test/records/x/TXT", W, Some(&huge), &[]);
    assert_eq!(status, 413, "{}", &text[..text.len().min(300)]);
    let cases: &[Refused] = &[
        (
            "PUT",
            "/zones/t.test/records/x/A",
            None,
            Some(r#"{"data": ["192.0.2.1"]}"#),
            &[],
            401,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            Some("wrong"),
            Some(r#"{"data": ["192.0.2.1"]}"#),
            &[],
            401,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            R,
            Some(r#"{"data": ["192.0.2.1"]}"#),
            &[],
            403,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            Some("other-token"),
            Some(r#"{"data": ["192.0.2.1"]}"#),
            &[],
            403,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            W,
            Some(r#"{"data": ["192.0.2.1"#),
            &[],
            400,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            W,
            Some(r#"{"data": ["192.0.2.1"], "colour": 1}"#),
            &[],
            422,
        ),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            W,
            Some(r#"{"data": ["not-an-address"]}"#),
            &[],
            422,
        ),
        (
            "PUT",
            "/zones/t.test/pools/www",
            W,
            Some(r#"{"endpoints": [{"address": "192.0.2.1", "weight": 0}]}"#),
            &[],
            422,
        ),
        (
            "PATCH",
            "/zones/t.test/pools/www/endpoints/192.0.2.99",
            W,
            Some(r#"{"drain": true}"#),
            &[],
            404,
        ),
        (
            "PATCH",
            "/zones/t.test/pools/nope/endpoints/192.0.2.10",
            W,
            Some(r#"{"drain": true}"#),
            &[],
            404,
        ),
        (
            "PATCH",
            "/zones/t.test/pools/www/endpoints/x",
            W,
            Some(r#"{"drain": true}"#),
            &[],
            422,
        ),
        ("DELETE", "/zones/t.test/records/none/A", W, None, &[], 404),
        ("DELETE", "/zones/nothere.test", W, None, &[], 404),
        (
            "PUT",
            "/zones/t.test/records/x/A",
            W,
            Some(r#"{"data": ["192.0.2.1"]}"#),
            &[("If-Match", "\"stale\"")],
            412,
        ),
    ];
    for &(method, path, token, body, headers, want) in cases {
        let (st, _, text) = s.http(method, path, token, body, headers);
        assert_eq!(st, want, "{method} {path}: {text}");
        let err = json(&text);
        assert!(err["error"].is_string(), "{text}");
        // An invalid value names its field, as zone errors do.
        if want == 422 {
            assert!(err["field"].is_string(), "{method} {path}: {text}");
        }
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            before,
            "{method} {path} changed the file"
        );
        assert_eq!(s.dig(&["x.t.test", "A"]).status, "NXDOMAIN");
        assert_eq!(s.dig(&["www.t.test", "A"]).answer.len(), 2);
    }
    // A 422 names the field and why.
    let (_, _, text) = s.http(
        "PUT",
        "/zones/t.test/pools/www",
        W,
        Some(r#"{"endpoints": [{"address": "192.0.2.1", "weight": 0}]}"#),
        &[],
    );
    let err = json(&text);
    assert_eq!(err["field"], "pools.www.endpoints[0].weight", "{text}");
    assert!(err["reason"].as_str().unwrap().contains("between 1 and"));
    // The current ETag is accepted, and the new one differs.
    let (st, h, body) = s.http(
        "PUT",
        "/zones/t.test/records/x/A",
        W,
        Some(r#"{"data": ["192.0.2.1"]}"#),
        &[("If-Match", &tag)],
    );
    assert_eq!(st, 200, "{body}");
    assert_ne!(header(&h, "etag"), tag);
    let (st, _, _) = s.http(
        "PUT",
        "/zones/t.test/records/y/A",
        W,
        Some(r#"{"data": ["192.0.2.2"]}"#),
        &[("If-Match", &tag)],
    );
    assert_eq!(st, 412, "the old tag is stale now");
    assert_eq!(s.dig(&["y.t.test", "A"]).status, "NXDOMAIN");
}

#[test]
fn a_hundred_concurrent_patches_all_land() {
    let endpoints: Vec<String> = (1..=100)
        .map(|i| format!("{{ address = \"10.0.{}.{}\" }}", i / 250, i % 250))
        .collect();
    let zone = format!(
        "{ZONE_HEAD}\n[pools.many]\npolicy = \"all\"\nendpoints = [\n  {}\n]\n",
        endpoints.join(",\n  ")
    );
    let s = Server::start_api(&[("t.test.toml", &zone)]);
    let s = &s;
    std::thread::scope(|scope| {
        for i in 1..=100u32 {
            scope.spawn(move || {
                let path = format!(
                    "/zones/t.test/pools/many/endpoints/10.0.{}.{}",
                    i / 250,
                    i % 250
                );
                let body = format!("{{\"weight\": {}}}", i + 1);
                let (st, _, text) = s.http("PATCH", &path, W, Some(&body), &[]);
                assert_eq!(st, 200, "{path}: {text}");
            });
        }
    });
    let (_, _, body) = s.http("GET", "/zones/t.test/pools/many", R, None, &[]);
    let pool = json(&body);
    for (i, ep) in pool["endpoints"].as_array().unwrap().iter().enumerate() {
        assert_eq!(ep["weight"], i as u64 + 2, "{ep}");
    }
    let (_, _, body) = s.http("GET", "/zones/t.test", R, None, &[]);
    assert_eq!(
        json(&body)["soa"]["serial"],
        101,
        "one serial step per change"
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    for i in 0..40 {
        let body = format!("{{\"data\": [\"198.51.100.{i}\"]}}");
        let (st, _, text) = s.http(
            "PUT",
            &format!("/zones/t.test/records/r{i}/A"),
            W,
            Some(&body),
            &[],
        );
        assert_eq!(st, 200, "{text}");
    }
    s.signal("KILL");
    let s = s.restart();
    for i in 0..40 {
        let name = format!("r{i}.t.test");
        assert_eq!(
            s.dig(&[&name, "A"]).answer_data(),
            [format!("198.51.100.{i}")],
            "{name}"
        );
    }
    // No temp file left behind is loaded as a zone, and the zone parses.
    let (st, _, body) = s.http("GET", "/zones/t.test", R, None, &[]);
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body)["soa"]["serial"], 41);
}

#[test]
fn drain_and_force_change_answers_while_probes_go_on() {
    let a = Backend::start(std::net::Ipv4Addr::new(127, 0, 0, 61), 0);
    let b = Backend::start(std::net::Ipv4Addr::new(127, 0, 0, 62), a.addr.port());
    b.set(Mode::Error);
    let port = a.addr.port();
    let zone = format!(
        "{ZONE_HEAD}\n[pools.p]\npolicy = \"all\"\ncheck = {{ type = \"http\", port = {port}, interval = \"200ms\", timeout = \"150ms\", fall = 1, rise = 1 }}\nendpoints = [{{ address = \"127.0.0.61\" }}, {{ address = \"127.0.0.62\" }}]\n"
    );
    let s = Server::start_api(&[("t.test.toml", &zone)]);
    s.wait_log("unknown -> down", 1);
    let answer = || s.dig(&["p.t.test", "A"]).answer_data();
    assert_eq!(answer(), ["127.0.0.61"]);
    let patch = |ip: &str, body: &str| {
        let (st, _, text) = s.http(
            "PATCH",
            &format!("/zones/t.test/pools/p/endpoints/{ip}"),
            W,
            Some(body),
            &[],
        );
        assert_eq!(st, 200, "{text}");
    };
    patch("127.0.0.62", r#"{"force": "up"}"#);
    assert_eq!(
        answer(),
        ["127.0.0.61", "127.0.0.62"],
        "forced up though its probe fails"
    );
    patch("127.0.0.61", r#"{"drain": true}"#);
    assert_eq!(answer(), ["127.0.0.62"]);
    let probed = a.requests();
    std::thread::sleep(Duration::from_millis(700));
    assert!(a.requests() > probed, "a drained endpoint is still probed");
    patch("127.0.0.61", r#"{"drain": false, "force": "down"}"#);
    assert_eq!(answer(), ["127.0.0.62"]);
    patch("127.0.0.62", r#"{"force": null}"#);
    patch("127.0.0.61", r#"{"force": null}"#);
    assert_eq!(answer(), ["127.0.0.61"], "back to what the probes say");
}

/// The status page's zones say when each last changed: the file's modification time for a
/// zone read from its file, the moment of the change for one changed through the API.
#[test]
fn the_status_page_tells_when_each_zone_last_changed() {
    let s = Server::start_api(&[("t.test.toml", &zone())]);
    let file = s.zones_dir().join("t.test.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = format!("{text}\n[[records]]\nname = \"new\"\ntype = \"TXT\"\ndata = [\"x\"]\n");
    std::fs::write(&file, text).unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-d", "2020-01-02 03:04:05.678 UTC"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(touched.success());
    let (st, _, body) = s.http("POST", "/reload", W, None, &[]);
    assert_eq!(st, 200, "{body}");
    let changed = || {
        let (st, body) = s.get("/status.json");
        assert_eq!(st, 200, "{body}");
        json(&body)["zones"][0]["changed"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(changed(), "2020-01-02T03:04:05.678Z");
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    let before = String::from_utf8(date.stdout).unwrap().trim().to_owned();
    let (st, _, body) = s.http(
        "PUT",
        "/zones/t.test/records/mail/A",
        W,
        Some(r#"{"ttl": 60, "data": ["192.0.2.25"]}"#),
        &[],
    );
    assert_eq!(st, 200, "{body}");
    let now = changed();
    assert!(now >= before, "{now} is before the change at {before}");
}
