//! How a nameserver set keeps its zones in etcd: a key per record set and pool, so that a
//! change writes only its own keys (and the zone's metadata); zones that an earlier version
//! kept whole under one key are moved into pieces by the first instance that starts.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::etcd::{Etcd, member};
use crate::harness::{Server, ZONE_HEAD, eventually};

const W: Option<&str> = Some("write-token");

fn zone(txt: &str) -> String {
    format!(
        "{ZONE_HEAD}[[records]]\nname = \"v\"\ntype = \"TXT\"\ndata = ['\"{txt}\"']\n\
         [pools.p]\npolicy = \"all\"\nendpoints = [\"192.0.2.1\", \"192.0.2.2\"]\n"
    )
}

/// Every key under `prefix` with its value and mod revision (at least `min_revision`).
fn keys(etcd: &Etcd, prefix: &str, min_revision: i64) -> Vec<(String, String, i64)> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let body = serde_json::json!({
        "key": BASE64.encode(prefix),
        "range_end": BASE64.encode(end),
        "min_mod_revision": min_revision.to_string(),
    });
    let answer = etcd
        .call("/v3/kv/range", &body.to_string())
        .expect("etcd answers");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let decode = |v: &Value| {
        let bytes = BASE64.decode(v.as_str().unwrap_or_default()).unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let kvs = answer["kvs"].as_array().cloned().unwrap_or_default();
    let mut found: Vec<_> = kvs
        .iter()
        .map(|kv| {
            let revision = kv["mod_revision"].as_str().unwrap().parse().unwrap();
            (decode(&kv["key"]), decode(&kv["value"]), revision)
        })
        .collect();
    found.sort();
    found
}

/// The keys of `found`, with the generation's random part as `<g>`.
fn names(found: &[(String, String, i64)]) -> Vec<String> {
    found
        .iter()
        .map(|(key, _, _)| {
            let parts: Vec<&str> = key.splitn(5, '/').collect();
            match parts.as_slice() {
                ["", "test", "zone-data", origin, rest] => {
                    let (_, piece) = rest.split_once('/').unwrap();
                    format!("/test/zone-data/{origin}/<g>/{piece}")
                }
                ["", "test", "writes", _, _] | ["", "test", "writes", _] => "/test/writes/…".into(),
                _ => key.clone(),
            }
        })
        .collect()
}

fn meta_revision(etcd: &Etcd) -> i64 {
    let meta = keys(etcd, "/test/zone-meta/t.test.", 0);
    assert_eq!(meta.len(), 1, "the zone's metadata: {meta:?}");
    meta[0].2
}

#[test]
fn a_change_writes_only_its_own_keys_and_every_instance_serves_it() {
    let etcd = Etcd::start();
    let text = zone("one");
    let zones = [("t.test.toml", text.as_str())];
    let a = member(&etcd, "a", &zones, "");
    let b = member(&etcd, "b", &[], "");
    assert_eq!(
        names(&keys(&etcd, "/test/zone-data/", 0)),
        [
            "/test/zone-data/t.test./<g>/pools/p.t.test.",
            "/test/zone-data/t.test./<g>/records/ns1.t.test./A",
            "/test/zone-data/t.test./<g>/records/v.t.test./TXT",
        ],
        "a key per record set and pool"
    );
    eventually(Duration::from_secs(5), "b serves the zone", || {
        b.dig(&["v.t.test", "TXT"]).answer_data() == ["\"one\""]
    });

    // A record set: its key and the metadata (the serial), with the write's marker.
    let before = meta_revision(&etcd);
    let body = r#"{"data": ["\"two\""]}"#;
    let (status, _, answer) = a.http("PUT", "/zones/t.test/records/v/TXT", W, Some(body), &[]);
    assert_eq!(status, 200, "{answer}");
    let at = meta_revision(&etcd);
    assert!(at > before);
    let changed = keys(&etcd, "/test/", at);
    assert_eq!(
        names(&changed),
        [
            "/test/writes/…",
            "/test/zone-data/t.test./<g>/records/v.t.test./TXT",
            "/test/zone-meta/t.test.",
        ],
        "only the change's keys: {changed:?}"
    );
    assert!(changed.iter().all(|(_, _, revision)| *revision == at));
    eventually(Duration::from_secs(2), "b serves the change", || {
        b.dig(&["v.t.test", "TXT"]).answer_data() == ["\"two\""]
    });
    assert_eq!(
        b.dig(&["t.test", "SOA"]).answer_data()[0].split(' ').nth(2),
        Some("2")
    );

    // An endpoint's drain through b: the pool's key alone.
    let path = "/zones/t.test/pools/p/endpoints/192.0.2.2";
    let (status, _, answer) = b.http("PATCH", path, W, Some(r#"{"drain": true}"#), &[]);
    assert_eq!(status, 200, "{answer}");
    let at = meta_revision(&etcd);
    assert_eq!(
        names(&keys(&etcd, "/test/zone-data/", at)),
        ["/test/zone-data/t.test./<g>/pools/p.t.test."]
    );
    for s in [&a, &b] {
        eventually(Duration::from_secs(2), "the drain everywhere", || {
            s.dig(&["p.t.test", "A"]).answer_data() == ["192.0.2.1"]
        });
    }

    // A removal deletes its key.
    let (status, _, _) = a.http("DELETE", "/zones/t.test/records/v/TXT", W, None, &[]);
    assert_eq!(status, 200);
    let left = names(&keys(&etcd, "/test/zone-data/", 0));
    assert!(!left.iter().any(|k| k.contains("/v.t.test./")), "{left:?}");
    eventually(Duration::from_secs(2), "b no longer has it", || {
        b.dig(&["v.t.test", "TXT"]).status == "NXDOMAIN"
    });

    // Applied as edits, not by reading the zone whole.
    for s in [&a, &b] {
        assert!(!s.log().contains("reading the zone whole"), "{}", s.log());
    }
    // Both hold the same zone: the same ETag and serial.
    let tag = |s: &Server| {
        let (status, headers, body) = s.http("GET", "/zones/t.test", W, None, &[]);
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body).unwrap();
        let tag = headers.into_iter().find(|(k, _)| k == "etag").unwrap().1;
        (tag, body["soa"]["serial"].clone(), body["pools"].clone())
    };
    assert_eq!(tag(&a), tag(&b));
}

#[test]
fn zones_an_earlier_version_kept_whole_are_moved_into_pieces_on_the_first_start() {
    let etcd = Etcd::start();
    let put = |key: &str, value: &str| {
        let body = serde_json::json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
        etcd.call("/v3/kv/put", &body.to_string())
            .expect("etcd takes it");
    };
    put("/test/zones/t.test.", &zone("kept whole"));
    put("/test/zones/broken.test.", "this is not = = TOML");
    // The local copy differs: etcd's zones win.
    let local = zone("local");
    let a = member(&etcd, "a", &[("t.test.toml", local.as_str())], "");
    a.wait_log(
        "t.test. moved from one key to a key per record set and pool",
        1,
    );
    assert!(a.log().contains("broken.test.: cannot be written to etcd"));
    assert_eq!(
        a.dig(&["v.t.test", "TXT"]).answer_data(),
        ["\"kept whole\""]
    );
    let old = keys(&etcd, "/test/zones/", 0);
    assert_eq!(
        names(&old),
        ["/test/zones/broken.test."],
        "the moved zone's old key is gone, the broken one left"
    );
    assert_eq!(keys(&etcd, "/test/zone-data/t.test./", 0).len(), 3);
    // A second instance, started after, serves the same.
    let b = member(&etcd, "b", &[], "");
    assert_eq!(
        b.dig(&["v.t.test", "TXT"]).answer_data(),
        ["\"kept whole\""]
    );
    let body = r#"{"data": ["\"changed\""]}"#;
    let (status, _, _) = b.http("PUT", "/zones/t.test/records/v/TXT", W, Some(body), &[]);
    assert_eq!(status, 200);
    eventually(Duration::from_secs(2), "a serves b's change", || {
        a.dig(&["v.t.test", "TXT"]).answer_data() == ["\"changed\""]
    });
}

/// A whole zone through the API: created through one instance, replaced with many changed
/// record sets (a new generation, switched to at once), deleted through another.
#[test]
fn whole_zones_are_created_replaced_in_one_switch_and_deleted_across_the_set() {
    let etcd = Etcd::start();
    let text = zone("one");
    let a = member(&etcd, "a", &[("t.test.toml", text.as_str())], "");
    let b = member(&etcd, "b", &[], "");
    let records = |count: usize, value: &str| -> Vec<Value> {
        (0..count)
            .map(|i| serde_json::json!({ "name": format!("r{i}"), "type": "TXT", "data": [format!("\"{value}\"")] }))
            .collect()
    };
    let spec = |count: usize, value: &str| {
        serde_json::json!({
            "ns": ["ns1.t.test."],
            "soa": { "mname": "ns1.t.test.", "rname": "hostmaster.t.test.", "serial": 1 },
            "records": records(count, value),
        })
        .to_string()
    };
    let (status, _, body) = a.http("PUT", "/zones/new.test", W, Some(&spec(3, "x")), &[]);
    assert_eq!(status, 201, "{body}");
    eventually(Duration::from_secs(2), "b serves the new zone", || {
        b.dig(&["r2.new.test", "TXT"]).answer_data() == ["\"x\""]
    });

    // 200 record sets changed: more than one transaction holds, so a new generation.
    let (status, _, body) = b.http("PUT", "/zones/new.test", W, Some(&spec(200, "y")), &[]);
    assert_eq!(status, 200, "{body}");
    for s in [&a, &b] {
        eventually(
            Duration::from_secs(2),
            "the new generation everywhere",
            || s.dig(&["r199.new.test", "TXT"]).answer_data() == ["\"y\""],
        );
        assert_eq!(s.dig(&["r0.new.test", "TXT"]).answer_data(), ["\"y\""]);
    }
    let generations: std::collections::BTreeSet<String> =
        keys(&etcd, "/test/zone-data/new.test./", 0)
            .iter()
            .map(|(key, _, _)| key.split('/').nth(4).unwrap().to_owned())
            .collect();
    assert_eq!(
        generations.len(),
        1,
        "the old generation is gone: {generations:?}"
    );
    assert_eq!(keys(&etcd, "/test/zone-data/new.test./", 0).len(), 200);

    let (status, _, body) = b.http("DELETE", "/zones/new.test", W, None, &[]);
    assert_eq!(status, 200, "{body}");
    for s in [&a, &b] {
        eventually(Duration::from_secs(2), "the zone gone everywhere", || {
            s.dig(&["r0.new.test", "TXT"]).status == "REFUSED"
        });
    }
    assert!(keys(&etcd, "/test/zone-data/new.test./", 0).is_empty());
    assert!(keys(&etcd, "/test/zone-meta/new.test.", 0).is_empty());
    // The other zone is untouched.
    assert_eq!(b.dig(&["v.t.test", "TXT"]).answer_data(), ["\"one\""]);
}
