//! Operating Meridian: metrics scraped while queries, health changes and reloads happen; the
//! query log; liveness and readiness; graceful SIGTERM; the status page in headless Chromium.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Mode};
use crate::harness::{Server, ZONE_HEAD as HEAD, eventually, http_check};

/// The value of one series (`name{labels}` exactly as exposed), if present.
fn series(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn scrape(s: &Server) -> String {
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_follow_queries_health_changes_and_reloads() {
    let backend = Backend::start(Ipv4Addr::new(127, 0, 0, 71), 0);
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"round_robin\"\nttl = 30\ncheck = {}\nendpoints = [{{ address = \"127.0.0.71\" }}, {{ address = \"127.0.0.72\", check = false }}]\n",
        http_check(backend.addr.port())
    );
    let s = Server::start_ops(&[("m.test.toml", &zone)], "");
    s.wait_log("unknown -> up", 1);
    let before = scrape(&s);
    let key_a = "meridian_dns_queries_total{zone=\"m.test.\",qtype=\"A\",rcode=\"NOERROR\",protocol=\"udp\",policy=\"round_robin\"}";
    let a_before = series(&before, key_a).unwrap_or(0.0);

    for _ in 0..3 {
        assert_eq!(s.dig(&["www.m.test", "A"]).answer.len(), 2);
    }
    assert_eq!(s.dig(&["nope.m.test", "A"]).status, "NXDOMAIN");
    assert_eq!(s.dig(&["www.m.test", "A", "+tcp"]).answer.len(), 2);
    assert_eq!(s.dig(&["elsewhere.example", "TXT"]).status, "REFUSED");

    let after = scrape(&s);
    assert_eq!(series(&after, key_a), Some(a_before + 3.0), "{after}");
    assert_eq!(
        series(
            &after,
            "meridian_dns_queries_total{zone=\"m.test.\",qtype=\"A\",rcode=\"NXDOMAIN\",protocol=\"udp\",policy=\"static\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &after,
            "meridian_dns_queries_total{zone=\"m.test.\",qtype=\"A\",rcode=\"NOERROR\",protocol=\"tcp\",policy=\"round_robin\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &after,
            "meridian_dns_queries_total{zone=\"\",qtype=\"TXT\",rcode=\"REFUSED\",protocol=\"udp\",policy=\"static\"}"
        ),
        Some(1.0)
    );
    let answers = "meridian_pool_answers_total{zone=\"m.test.\",pool=\"www\",datacenter=\"\"}";
    assert_eq!(
        series(&after, answers),
        Some(4.0 + series(&before, answers).unwrap_or(0.0))
    );
    // Every query lands in the latency histogram.
    let count = series(
        &after,
        "meridian_dns_query_duration_seconds_count{protocol=\"udp\"}",
    )
    .unwrap();
    let inf = series(
        &after,
        "meridian_dns_query_duration_seconds_bucket{protocol=\"udp\",le=\"+Inf\"}",
    );
    assert_eq!(inf, Some(count));
    assert!(count >= 5.0, "{count}");

    // Health: up with a latency, then down with failures counted by reason.
    let probe = format!("http://127.0.0.71:{}/health", backend.addr.port());
    let up_key = format!("meridian_endpoint_up{{probe=\"{probe}\",check=\"http\"}}");
    assert_eq!(series(&after, &up_key), Some(1.0), "{after}");
    assert!(
        series(
            &after,
            &format!(
                "meridian_endpoint_probe_duration_seconds{{probe=\"{probe}\",check=\"http\"}}"
            )
        )
        .is_some_and(|l| l > 0.0 && l < 1.0)
    );
    backend.set(Mode::Error);
    eventually(Duration::from_secs(5), "the endpoint goes down", || {
        series(&scrape(&s), &up_key) == Some(0.0)
    });
    let failures =
        format!("meridian_endpoint_probe_failures_total{{probe=\"{probe}\",reason=\"status\"}}");
    assert!(series(&scrape(&s), &failures).is_some_and(|n| n >= 2.0));

    // Reloads, good and bad.
    s.signal("HUP");
    s.wait_log("reloaded zones", 1);
    std::fs::write(s.zones_dir().join("m.test.toml"), "ttl = \"soon\"\n").unwrap();
    s.signal("HUP");
    s.wait_log("reload refused", 1);
    let text = scrape(&s);
    assert_eq!(
        series(&text, "meridian_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        series(&text, "meridian_reloads_total{result=\"failed\"}"),
        Some(1.0)
    );

    // API requests by route pattern and status.
    assert_eq!(s.get("/api/v1/zones/m.test").0, 401);
    let text = scrape(&s);
    assert_eq!(
        series(
            &text,
            "meridian_api_requests_total{route=\"/api/v1/zones/{zone}\",method=\"GET\",status=\"401\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(series(&text, "meridian_zone_serial{zone=\"m.test.\"}") == Some(1.0));
    assert!(text.contains("# TYPE meridian_dns_query_duration_seconds histogram"));
}

#[test]
fn the_geoip_build_date_is_exported() {
    let s = Server::start_default_with_api();
    let text = scrape(&s);
    let epoch = series(&text, "meridian_geoip_build_timestamp_seconds").expect("a build date");
    // The bundled test database was built in 2026.
    assert!(epoch > 1.7e9 && epoch < 2.1e9, "{epoch}");
}

fn read_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_query_log_is_sampled_json() {
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"round_robin\"\nttl = 30\nendpoints = [{{ address = \"192.0.2.10\" }}, {{ address = \"192.0.2.11\" }}]\n"
    );
    let s = Server::start_ops(
        &[("q.test.toml", &zone)],
        "[query_log]\nenabled = true\nsample = 3\npath = \"queries.jsonl\"\n",
    );
    let path = s.zones_dir().parent().unwrap().join("queries.jsonl");
    for _ in 0..12 {
        s.dig(&["www.q.test", "A", "+subnet=81.2.69.0/24"]);
    }
    eventually(Duration::from_secs(5), "4 lines", || {
        read_log(&path).len() == 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let lines = read_log(&path);
    assert_eq!(lines.len(), 4, "one query in three");
    for line in &lines {
        assert_eq!(line["name"], "www.q.test.");
        assert_eq!(line["type"], "A");
        assert_eq!(line["rcode"], "NOERROR");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["ecs"], "81.2.69.0/24");
        assert_eq!(line["zone"], "q.test.");
        assert_eq!(line["policy"], "round_robin");
        let mut answers: Vec<&str> = line["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        answers.sort();
        assert_eq!(answers, ["192.0.2.10", "192.0.2.11"]);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }
    let text = scrape(&s);
    assert_eq!(
        series(&text, "meridian_query_log_lines_total{outcome=\"written\"}"),
        Some(4.0)
    );
}

#[test]
fn the_query_log_is_rate_limited_and_names_the_datacenter() {
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"geo\"\nttl = 30\n\
         nets = {{ \"81.2.69.0/24\" = [\"eu\"] }}\n\
         [[pools.www.datacenters]]\nname = \"us\"\nlatitude = 39.0\nlongitude = -77.5\nendpoints = [{{ address = \"192.0.2.1\" }}]\n\
         [[pools.www.datacenters]]\nname = \"eu\"\nlatitude = 50.1\nlongitude = 8.7\nendpoints = [{{ address = \"192.0.2.2\" }}]\n"
    );
    let s = Server::start_ops(
        &[("r.test.toml", &zone)],
        "[query_log]\nenabled = true\nmax_lines_per_second = 3\npath = \"queries.jsonl\"\n",
    );
    let path = s.zones_dir().parent().unwrap().join("queries.jsonl");
    // Thirty queries from one dig, well within a second or two.
    // dig's options before the first name apply to every query.
    let mut args = vec!["+subnet=81.2.69.0/24"];
    args.extend(std::iter::repeat_n("www.r.test", 30));
    let start = Instant::now();
    s.dig(&args);
    let seconds = start.elapsed().as_secs() + 1;
    std::thread::sleep(Duration::from_millis(500));
    let lines = read_log(&path);
    assert!(!lines.is_empty());
    assert!(
        lines.len() as u64 <= 3 * (seconds + 1),
        "{} lines in about {seconds} s",
        lines.len()
    );
    assert_eq!(lines[0]["datacenter"], "eu");
    assert_eq!(lines[0]["answers"][0], "192.0.2.2");
    let text = scrape(&s);
    let dropped = series(&text, "meridian_query_log_lines_total{outcome=\"dropped\"}").unwrap();
    assert_eq!(dropped as usize + lines.len(), 30, "{text}");
}

#[test]
fn readiness_waits_for_the_first_probe_round() {
    // A backend that accepts connections and never answers: the first probe takes its whole
    // timeout, and the server must not say it is ready before.
    let silent = TcpListener::bind("127.0.0.73:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"round_robin\"\nttl = 30\n\
         check = {{ type = \"http\", port = {port}, path = \"/\", interval = \"5s\", timeout = \"2s\" }}\n\
         endpoints = [{{ address = \"127.0.0.73\" }}]\n"
    );
    let s = Server::start_ops(&[("ready.test.toml", &zone)], "");
    assert_eq!(s.get("/healthz"), (200, "ok\n".to_owned()));
    let (status, body) = s.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(series(&scrape(&s), "meridian_ready") == Some(0.0));
    eventually(
        Duration::from_secs(6),
        "ready after the first round",
        || s.get("/readyz").0 == 200,
    );
    assert!(series(&scrape(&s), "meridian_ready") == Some(1.0));
    drop(silent);
}

#[test]
fn sigterm_finishes_tcp_answers_saves_health_and_exits_zero() {
    let backend = Backend::start(Ipv4Addr::new(127, 0, 0, 74), 0);
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"round_robin\"\nttl = 30\ncheck = {}\nendpoints = [{{ address = \"127.0.0.74\" }}]\n",
        http_check(backend.addr.port())
    );
    let mut s = Server::start_ops(
        &[("t.test.toml", &zone)],
        "[health]\nstate_file = \"health.json\"\n",
    );
    s.wait_log("unknown -> up", 1);
    let state_file = s.zones_dir().parent().unwrap().join("health.json");
    std::fs::remove_file(&state_file).ok();

    // A TCP query in flight: the length and half the message are sent before SIGTERM, the
    // rest after. It must still be answered.
    let query = tcp_query("www.t.test");
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let framed = [&(query.len() as u16).to_be_bytes()[..], &query].concat();
    stream.write_all(&framed[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&framed[10..]).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..2], &query[..2], "the reply to our query");
    assert_eq!(u16::from_be_bytes([reply[6], reply[7]]), 1, "one answer");

    let start = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let saved = std::fs::read_to_string(&state_file).expect("state file written at exit");
    assert!(saved.contains("127.0.0.74"), "{saved}");
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect(("127.0.0.1", s.port)).is_err());
}

/// A plain query for `name` A, ID 0x4d52.
fn tcp_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x4d, 0x52, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The status page as headless Chromium renders it (after its script has fetched the
/// status), and a screenshot of it.
fn render_page(url: &str, screenshot: Option<&std::path::Path>) -> String {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is needed for the status page test (apt-get install chromium)");
    let profile = std::env::temp_dir().join(format!("meridian-chromium-{}", std::process::id()));
    let mut command = std::process::Command::new(chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=4000",
        "--window-size=1280,1100",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let out = command.arg(url).output().expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_shows_zones_pools_and_datacenters_in_chromium() {
    let up = Backend::start(Ipv4Addr::new(127, 0, 0, 75), 0);
    let port = up.addr.port();
    let zone = format!(
        "{HEAD}[pools.www]\npolicy = \"geo\"\nttl = 30\ncheck = {}\n\
         [[pools.www.datacenters]]\nname = \"ashburn\"\nlatitude = 39.0\nlongitude = -77.5\nendpoints = [{{ address = \"127.0.0.75\" }}]\n\
         [[pools.www.datacenters]]\nname = \"frankfurt\"\nlatitude = 50.1\nlongitude = 8.7\nendpoints = [{{ address = \"127.0.0.76\" }}]\n\
         [pools.rr]\nendpoints = [\"192.0.2.7\", \"192.0.2.8\"]\n",
        http_check(port)
    );
    let s = Server::start_ops(&[("page.test.toml", &zone)], "");
    s.wait_log("unknown -> up", 1);
    s.wait_log("unknown -> down", 1);
    for _ in 0..4 {
        s.dig(&["www.page.test", "A"]);
    }
    let (status, json) = s.get("/status.json");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dcs = &status["pools"][0]["datacenters"];
    assert_eq!(dcs[0]["state"], "up", "{json}");
    assert_eq!(dcs[1]["state"], "down", "{json}");
    assert_eq!(dcs[0]["recent_answers"], 4);

    let url = format!("http://{}/", s.api_addr());
    let dom = render_page(&url, None);
    assert!(
        dom.contains(r#"data-loaded="true""#),
        "the script ran: {dom}"
    );
    // Every zone and every pool, geo or not; no cluster column on a single server.
    let rr = &status["all_pools"][0];
    assert_eq!(
        (&rr["name"], &rr["endpoints"]),
        (&"rr.page.test.".into(), &2.into()),
        "{json}"
    );
    let policy = rr["policy"].as_str().unwrap();
    for expected in [
        r#"<tr data-zone="page.test.">"#.to_owned(),
        format!(r#"<tr data-pool="rr.page.test." data-policy="{policy}" data-state="up">"#),
        r#"<tr data-pool="www.page.test." data-policy="geo" data-state="degraded">"#.to_owned(),
        r#"<th class="set-only" hidden="">opinions</th>"#.to_owned(),
        "<th>last change</th>".to_owned(),
    ] {
        assert!(dom.contains(&expected), "missing {expected}: {dom}");
    }
    for expected in [
        r#"<g class="dc" data-pool="www.page.test." data-datacenter="ashburn" data-state="up">"#,
        r#"<g class="dc" data-pool="www.page.test." data-datacenter="frankfurt" data-state="down">"#,
        r#"<tr data-datacenter="ashburn" data-state="up">"#,
        r#"<tr data-datacenter="frankfurt" data-state="down">"#,
        "ashburn 100%",
        "frankfurt 0%",
        "status 200",
    ] {
        assert!(dom.contains(expected), "missing {expected}: {dom}");
    }
    assert!(dom.contains(&format!(
        r#"data-check="http://127.0.0.76:{port}/health" data-state="down""#
    )));

    // docs/status-page.png comes from here when asked for.
    if let Ok(path) = std::env::var("MERIDIAN_SCREENSHOT") {
        render_page(&url, Some(std::path::Path::new(&path)));
    }
}
