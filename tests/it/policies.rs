//! Pool policies as clients see them over many queries.

use std::collections::HashMap;

use crate::harness::{Server, ZONE_HEAD};

fn pool_zone(policy: &str, endpoints: &str, max_answers: &str) -> String {
    format!(
        r#"{ZONE_HEAD}
[pools.p]
policy = "{policy}"
{max_answers}
endpoints = [{endpoints}]
"#
    )
}

#[test]
fn round_robin_rotates_and_every_endpoint_leads_equally() {
    let s = Server::start_default();
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(s.dig(&["www.example.test", "A"]).answer_data());
    }
    // Each answer is the previous one rotated by one.
    for pair in answers.windows(2) {
        let mut rotated = pair[0].clone();
        rotated.rotate_left(1);
        assert_eq!(pair[1], rotated);
    }
    let mut leads: HashMap<String, usize> = HashMap::new();
    for a in &answers {
        *leads.entry(a[0].clone()).or_default() += 1;
    }
    assert_eq!(leads.len(), 4, "{leads:?}");
    assert!(leads.values().all(|&n| n == 2), "{leads:?}");
}

#[test]
fn weighted_split_matches_the_weights_exactly() {
    let s = Server::start_default();
    // `api` is 3:1 with max_answers = 1; 600 answers are 150 full cycles.
    let firsts = s.short_many("api.example.test", "A", 600);
    assert_eq!(firsts.len(), 600);
    let heavy = firsts.iter().filter(|a| *a == "192.0.2.20").count();
    let light = firsts.iter().filter(|a| *a == "192.0.2.21").count();
    assert_eq!((heavy, light), (450, 150));
    // Smooth: the light endpoint never answers twice in a row.
    assert!(
        firsts
            .windows(2)
            .all(|w| !(w[0] == "192.0.2.21" && w[1] == "192.0.2.21"))
    );
}

#[test]
fn weighted_five_to_one() {
    let zone = pool_zone(
        "weighted",
        r#"{ address = "192.0.2.5", weight = 5 }, { address = "192.0.2.6", weight = 1 }"#,
        "max_answers = 1",
    );
    let s = Server::start(&[("w.test.toml", &zone)]);
    let firsts = s.short_many("p.w.test", "A", 600);
    let heavy = firsts.iter().filter(|a| *a == "192.0.2.5").count();
    assert_eq!(heavy, 500, "5/6 of 600");
}

#[test]
fn weighted_random_split_follows_the_weights() {
    let zone = pool_zone(
        "weighted_random",
        r#"{ address = "192.0.2.5", weight = 5 }, { address = "192.0.2.6", weight = 1 }"#,
        "",
    );
    let s = Server::start(&[("w.test.toml", &zone)]);
    let lines = s.short_many("p.w.test", "A", 1200);
    // Every answer holds both endpoints; count which one leads.
    let firsts: Vec<&String> = lines.iter().step_by(2).collect();
    assert_eq!(lines.len(), 2400);
    let heavy = firsts.iter().filter(|a| **a == "192.0.2.5").count();
    // 5/6 of 1200 = 1000; binomial sd ≈ 13, so ±60 is > 4 sd.
    assert!((940..=1060).contains(&heavy), "heavy led {heavy} of 1200");
}

#[test]
fn all_keeps_configured_order_and_max_answers_caps() {
    let zone = pool_zone(
        "all",
        r#"{ address = "192.0.2.3" }, { address = "192.0.2.1" }, { address = "192.0.2.2" }"#,
        "max_answers = 2",
    );
    let s = Server::start(&[("w.test.toml", &zone)]);
    for _ in 0..3 {
        assert_eq!(
            s.dig(&["p.w.test", "A"]).answer_data(),
            ["192.0.2.3", "192.0.2.1"]
        );
    }
    // No IPv6 endpoint: AAAA is NODATA.
    let r = s.dig(&["p.w.test", "AAAA"]);
    assert_eq!(r.status, "NOERROR");
    assert!(r.answer.is_empty());
    assert_eq!(r.authority.len(), 1);
}
