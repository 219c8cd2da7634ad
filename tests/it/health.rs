//! Health checks against real backends on loopback started by the test.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Mode};
use crate::harness::{Reply, Server, eventually, http_check};

use crate::harness::ZONE_HEAD as HEAD;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Two backends on 127.0.0.a and 127.0.0.b, same port.
fn pair(a: u8, b: u8) -> (Backend, Backend) {
    let first = Backend::start(ip(a), 0);
    let second = Backend::start(ip(b), first.addr.port());
    (first, second)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_dead_endpoint_leaves_the_answers_and_comes_back() {
    let (a, b) = pair(21, 22);
    let zone = format!(
        "{HEAD}[pools.p]\npolicy = \"round_robin\"\nttl = 30\nmin_ttl = 5\ncheck = {}\nendpoints = [{{ address = \"127.0.0.21\" }}, {{ address = \"127.0.0.22\" }}]\n",
        http_check(a.addr.port())
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> up", 2);
    let answer = || s.dig(&["p.h.test", "A"]);
    assert_eq!(sorted(answer().answer_data()), ["127.0.0.21", "127.0.0.22"]);
    assert_eq!(Reply::ttl(&answer().answer[0]), 30);

    // 500: gone within fall × interval plus slack.
    b.set(Mode::Error);
    let took = eventually(Duration::from_secs(3), "b leaves", || {
        answer().answer_data() == ["127.0.0.21"]
    });
    assert!(took < Duration::from_millis(2000), "{took:?}");
    s.wait_log("up -> down: status 500", 1);
    // Degraded: half the TTL.
    assert_eq!(Reply::ttl(&answer().answer[0]), 15);

    // Back after `rise` successes.
    b.set(Mode::Healthy);
    eventually(Duration::from_secs(3), "b returns", || {
        answer().answer.len() == 2
    });
    assert_eq!(Reply::ttl(&answer().answer[0]), 30);

    // Slow (past the timeout) and closed count as failures too.
    b.set(Mode::Slow);
    eventually(Duration::from_secs(4), "slow b leaves", || {
        answer().answer.len() == 1
    });
    s.wait_log("timeout", 1);
    b.set(Mode::Healthy);
    eventually(Duration::from_secs(3), "b returns", || {
        answer().answer.len() == 2
    });
    b.set(Mode::Closed);
    eventually(Duration::from_secs(3), "closed b leaves", || {
        answer().answer.len() == 1
    });
    s.wait_log("connection refused", 1);
    drop(a);
}

#[test]
fn a_flapping_backend_does_not_flap_the_answers() {
    let (a, b) = pair(23, 24);
    // fall = rise = 3 against a backend that fails every other probe: never three in a row.
    let check = http_check(a.addr.port()).replace("fall = 2, rise = 2", "fall = 3, rise = 3");
    let zone = format!(
        "{HEAD}[pools.p]\npolicy = \"all\"\ncheck = {check}\nendpoints = [{{ address = \"127.0.0.23\" }}, {{ address = \"127.0.0.24\" }}]\n"
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> up", 2);
    b.set(Mode::Alternate);
    let before = b.requests();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2000) {
        assert_eq!(s.dig(&["p.h.test", "A"]).answer.len(), 2);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.requests() >= before + 6,
        "the backend was probed meanwhile"
    );
    assert!(!s.log().contains("-> down"), "{}", s.log());
    drop(a);
}

#[test]
fn all_down_rules() {
    let alive = Backend::start(ip(25), 0);
    let port = alive.addr.port();
    // Nothing listens on 127.0.0.26..29 at that port: TCP checks are refused.
    let tcp =
        format!(r#"{{ type = "tcp", port = {port}, interval = "200ms", fall = 1, rise = 1 }}"#);
    let zone = format!(
        r#"{HEAD}
[pools.alive]
check = {http}
endpoints = [{{ address = "127.0.0.25" }}]
[pools.open]
check = {tcp}
endpoints = [{{ address = "127.0.0.26" }}, {{ address = "127.0.0.27" }}]
[pools.fail]
all_down = "servfail"
check = {tcp}
endpoints = [{{ address = "127.0.0.26" }}]
[pools.empty]
all_down = "nodata"
check = {tcp}
endpoints = [{{ address = "127.0.0.27" }}]
[pools.backup]
fallback = "alive"
check = {tcp}
endpoints = [{{ address = "127.0.0.28" }}]
"#,
        http = http_check(port)
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> down", 3);
    s.wait_log("unknown -> up", 1);
    let open = s.dig(&["open.h.test", "A"]);
    assert_eq!(
        sorted(open.answer_data()),
        ["127.0.0.26", "127.0.0.27"],
        "serve_all: {}",
        open.raw
    );
    let fail = s.dig(&["fail.h.test", "A"]);
    assert_eq!(fail.status, "SERVFAIL", "{}", fail.raw);
    let empty = s.dig(&["empty.h.test", "A"]);
    assert_eq!(empty.status, "NOERROR");
    assert!(
        empty.answer.is_empty() && empty.authority.len() == 1,
        "{}",
        empty.raw
    );
    let backup = s.dig(&["backup.h.test", "A"]);
    assert_eq!(
        backup.answer_data(),
        ["127.0.0.25"],
        "fallback: {}",
        backup.raw
    );
    assert!(
        backup.answer[0].starts_with("backup.h.test."),
        "owner is the name asked"
    );
}

#[test]
fn geo_fails_over_to_the_next_datacenter() {
    let (a, b) = pair(31, 32);
    let zone = format!(
        r#"{HEAD}
[pools.g]
policy = "geo"
check = {check}
[pools.g.nets]
"127.0.0.0/8" = ["near", "far"]
[[pools.g.datacenters]]
name = "near"
latitude = 50.1
longitude = 8.7
endpoints = [{{ address = "127.0.0.31" }}]
[[pools.g.datacenters]]
name = "far"
latitude = 1.3
longitude = 103.8
endpoints = [{{ address = "127.0.0.32" }}]
"#,
        check = http_check(a.addr.port())
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> up", 2);
    let answer = || s.dig(&["g.h.test", "A"]).answer_data();
    assert_eq!(answer(), ["127.0.0.31"]);
    a.set(Mode::Error);
    eventually(Duration::from_secs(3), "far takes over", || {
        answer() == ["127.0.0.32"]
    });
    a.set(Mode::Healthy);
    eventually(Duration::from_secs(3), "near is back", || {
        answer() == ["127.0.0.31"]
    });
    drop(b);
}

fn failover_zone(port: u16, preempt: bool) -> String {
    format!(
        "{HEAD}[pools.f]\npolicy = \"failover\"\npreempt = {preempt}\ncheck = {}\nendpoints = [{{ address = \"127.0.0.41\", tier = 0 }}, {{ address = \"127.0.0.42\", tier = 1 }}]\n",
        http_check(port)
    )
}

#[test]
fn failover_preemptive_and_not() {
    for preempt in [true, false] {
        let (primary, secondary) = pair(41, 42);
        let s = Server::start(&[("h.test.toml", &failover_zone(primary.addr.port(), preempt))]);
        s.wait_log("unknown -> up", 2);
        // Only the tier in charge is handed out: its backup never rides along behind it.
        let first = || s.dig(&["f.h.test", "A"]).answer_data().join(" ");
        assert_eq!(first(), "127.0.0.41");
        primary.set(Mode::Error);
        eventually(Duration::from_secs(3), "secondary takes over", || {
            first() == "127.0.0.42"
        });
        primary.set(Mode::Healthy);
        s.wait_log("-> up", 3);
        if preempt {
            eventually(Duration::from_secs(3), "primary is back", || {
                first() == "127.0.0.41"
            });
        } else {
            // Non-preemptive: the secondary keeps serving after the primary recovered…
            std::thread::sleep(Duration::from_millis(600));
            assert_eq!(first(), "127.0.0.42");
            // …until it fails itself.
            secondary.set(Mode::Error);
            eventually(Duration::from_secs(3), "primary again", || {
                first() == "127.0.0.41"
            });
        }
    }
}

#[test]
fn drain_and_force() {
    let (a, b) = pair(43, 44);
    let c = Backend::start(ip(45), a.addr.port());
    c.set(Mode::Error);
    let zone = format!(
        "{HEAD}[pools.p]\npolicy = \"all\"\ncheck = {}\nendpoints = [{{ address = \"127.0.0.43\", drain = true }}, {{ address = \"127.0.0.44\", force = \"down\" }}, {{ address = \"127.0.0.45\", force = \"up\" }}]\n",
        http_check(a.addr.port())
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> down", 1);
    // Drained and forced-down are not handed out; forced-up is, though its probe fails.
    assert_eq!(s.dig(&["p.h.test", "A"]).answer_data(), ["127.0.0.45"]);
    let before = a.requests();
    eventually(
        Duration::from_secs(3),
        "drained endpoint still probed",
        || a.requests() > before + 1,
    );
    assert!(b.requests() > 0, "forced endpoints are probed too");
}

#[test]
fn states_survive_a_restart_and_removed_endpoints_stop_being_probed() {
    let (a, b) = pair(46, 47);
    let port = a.addr.port();
    // rise = 3 at 1 s: a remembered "down" takes ≥ 2 s to clear.
    let check = format!(
        r#"{{ type = "http", port = {port}, interval = "1s", timeout = "500ms", fall = 1, rise = 3 }}"#
    );
    let zone = format!(
        "{HEAD}[pools.p]\npolicy = \"all\"\ncheck = {check}\nendpoints = [{{ address = \"127.0.0.46\" }}, {{ address = \"127.0.0.47\" }}]\n"
    );
    b.set(Mode::Error);
    let mut s = Server::start_with_health_file(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> down", 1);
    assert!(s.terminate().success());
    let saved = std::fs::read_to_string(s.dir.0.join("health.json")).unwrap();
    assert!(
        saved.contains("127.0.0.47") && saved.contains("\"down\""),
        "{saved}"
    );

    // Restart with b healthy again: it stays out until it has risen, not from the first probe.
    b.set(Mode::Healthy);
    let s = s.restart();
    assert_eq!(
        s.dig(&["p.h.test", "A"]).answer_data(),
        ["127.0.0.46"],
        "remembered down"
    );
    eventually(Duration::from_secs(6), "b rises", || {
        s.dig(&["p.h.test", "A"]).answer.len() == 2
    });

    // Remove b from the zone: its probe stops at once.
    let without = zone.replace(", { address = \"127.0.0.47\" }", "");
    std::fs::write(s.zones_dir().join("h.test.toml"), without).unwrap();
    s.signal("HUP");
    s.wait_log("stopped probing http://127.0.0.47", 1);
    let count = b.requests();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        b.requests(),
        count,
        "a removed endpoint is not probed any more"
    );
    assert!(a.requests() > 0);
}

/// An HTTPS backend (python's http.server behind TLS, with a self-signed certificate for
/// `backend.test` made by openssl) on `ip`, returning its port. Killed on drop.
/// The certificate folder lives as long as the server that reads it.
struct TlsBackend(
    std::process::Child,
    #[allow(dead_code)] crate::harness::TempDir,
);

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_backend(ip: &str) -> Option<(TlsBackend, u16)> {
    let dir = crate::harness::TempDir::new();
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=backend.test",
        ])
        .args(["-addext", "subjectAltName=DNS:backend.test", "-keyout"])
        .arg(dir.0.join("key.pem"))
        .arg("-out")
        .arg(dir.0.join("cert.pem"))
        .output()
        .ok()?
        .status
        .success();
    if !ok {
        return None;
    }
    let port = std::net::TcpListener::bind((ip, 0))
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       ok = self.headers.get('User-Agent', '').startswith('meridian-health/')\n\
         \x20       self.send_response(200 if ok else 400); self.send_header('Content-Length', '6'); self.end_headers(); self.wfile.write(b'tls ok')\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('{ip}', {port}), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{cert}', '{key}')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        cert = dir.0.join("cert.pem").display(),
        key = dir.0.join("key.pem").display(),
    );
    let child = std::process::Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .ok()?;
    // Wait until it listens.
    let start = Instant::now();
    while std::net::TcpStream::connect((ip, port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((TlsBackend(child, dir), port))
}

#[test]
fn https_checks_verify_certificates_unless_told_not_to() {
    let Some((_backend, port)) = tls_backend("127.0.0.51") else {
        crate::harness::cannot_run("https check test: openssl or python3 is missing");
        return;
    };
    // Same backend, two pools: one verifies (a self-signed certificate fails), one does not.
    let zone = format!(
        r#"{HEAD}
[pools.strict]
all_down = "nodata"
check = {{ type = "https", port = {port}, sni = "backend.test", body = "tls ok", interval = "300ms", timeout = "250ms", fall = 1, rise = 1 }}
endpoints = [{{ address = "127.0.0.51" }}]
[pools.lax]
all_down = "nodata"
check = {{ type = "https", port = {port}, sni = "backend.test", body = "tls ok", verify_tls = false, interval = "300ms", timeout = "250ms", fall = 1, rise = 1 }}
endpoints = [{{ address = "127.0.0.51" }}]
"#
    );
    let s = Server::start(&[("h.test.toml", &zone)]);
    s.wait_log("unknown -> down", 1);
    s.wait_log("unknown -> up", 1);
    assert!(s.dig(&["strict.h.test", "A"]).answer.is_empty());
    assert_eq!(s.dig(&["lax.h.test", "A"]).answer_data(), ["127.0.0.51"]);
    let log = s.log();
    let down = log.lines().find(|l| l.contains("unknown -> down")).unwrap();
    assert!(
        down.to_lowercase().contains("certificate") || down.contains("issuer"),
        "{down}"
    );
}
