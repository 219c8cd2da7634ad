//! `meridian check` and start-up refusal of broken zones.

use std::process::Command;

use crate::harness::{TempDir, binary, repo};

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(repo().join("meridian.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("example.test. serial"), "{stdout}");
    assert!(stdout.contains("3 pools"), "{stdout}");
    assert!(stdout.contains("GeoIP: Meridian-Test-City"), "{stdout}");
}

fn check_broken(zone: &str) -> (bool, String) {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    std::fs::write(dir.0.join("zones/bad.test.toml"), zone).unwrap();
    std::fs::write(dir.0.join("meridian.toml"), "").unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_file_line_and_field() {
    let base = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n";
    let cases = [
        (
            format!("{base}[pools.www]\nendpoints = [{{ address = \"192.0.2.1\", wieght = 2 }}]\n"),
            ":7: pools.www.endpoints[0].wieght: unknown field",
        ),
        (
            format!("{base}[pools.www]\nendpoints = [\n  {{ address = \"192.0.2.300\" }},\n]\n"),
            ":8: pools.www.endpoints[0].address",
        ),
        (
            format!("{base}[pools.www]\nendpoints = [\"192.0.2.1\",\n  \"192.0.2.256\"]\n"),
            ":8: pools.www.endpoints[1]: \"192.0.2.256\" is not an IP address",
        ),
        (
            format!("{base}[pools.www]\nendpoints = [7]\n"),
            ":7: pools.www.endpoints[0]: invalid type: integer `7`, expected an IP address or an endpoint table",
        ),
        (
            format!("{base}[pools.www]\nendpoints = [\"192.0.2.1\", \"192.0.2.1\"]\n"),
            ":7: pools.www.endpoints[1].address: 192.0.2.1 is listed twice",
        ),
        (
            format!("{base}[[records]]\nname = \"x\"\ntype = \"MX\"\ndata = [\"ten mail\"]\n"),
            ":9: records[0].data[0]",
        ),
        (
            format!("{base}[[records]]\nname = \"x\"\ntype = \"BOGUS\"\ndata = [\"1\"]\n"),
            ":8: records[0].type",
        ),
        (
            format!("{base}[pools.www]\npolicy = \"nearest\"\nendpoints = []\n"),
            ":7: pools.www.policy",
        ),
        (
            "[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n".to_owned(),
            "ns: a zone needs at least one NS",
        ),
        // The adaptive policies' settings, where they do not apply.
        (
            format!("{base}[pools.www]\nweights = \"latency\"\nendpoints = [\"192.0.2.1\"]\n"),
            "pools.www.weights: latency weights need a weighted policy",
        ),
        (
            format!(
                "{base}[pools.www]\npolicy = \"weighted\"\nweights = \"latency\"\nendpoints = [\"192.0.2.1\"]\n"
            ),
            "pools.www.weights: latency weights need a health check",
        ),
        (
            format!(
                "{base}[pools.www]\npolicy = \"weighted\"\nmin_share = 0.5\nendpoints = [\"192.0.2.1\"]\n"
            ),
            "pools.www.min_share: only with weights = \"latency\"",
        ),
        (
            format!("{base}[pools.www]\nslow_start = \"30s\"\nendpoints = [\"192.0.2.1\"]\n"),
            "pools.www.slow_start: slow start needs a weighted policy",
        ),
        (
            format!(
                "{base}[pools.www]\npolicy = \"weighted\"\nload_ttl = \"30s\"\nendpoints = [\"192.0.2.1\"]\n"
            ),
            "pools.www.load_ttl: only least_load pools read loads",
        ),
        (
            format!(
                "{base}[pools.www]\npolicy = \"sticky\"\nsticky_prefix_v4 = 33\nendpoints = [\"192.0.2.1\"]\n"
            ),
            "pools.www.sticky_prefix_v4: must be at most 32",
        ),
        (
            format!("{base}[pools.www]\nsticky_prefix_v6 = 48\nendpoints = [\"192.0.2.1\"]\n"),
            "pools.www.sticky_prefix_v6: only sticky pools",
        ),
        (
            format!(
                "{base}[pools.www]\ncheck = {{ type = \"tcp\", port = 80, load_header = \"X-Load\" }}\nendpoints = [\"192.0.2.1\"]\n"
            ),
            "pools.www.check.load_header: only http and https checks read a load",
        ),
    ];
    for (zone, want) in cases {
        let (ok, stderr) = check_broken(&zone);
        assert!(!ok, "accepted:\n{zone}");
        assert!(stderr.contains("bad.test.toml"), "{stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    }
}

#[test]
fn serve_refuses_to_start_on_a_broken_zone() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    std::fs::write(dir.0.join("zones/bad.test.toml"), "ns = 1\n").unwrap();
    std::fs::write(
        dir.0.join("meridian.toml"),
        "[server]\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.test.toml:1: ns"), "{stderr}");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut s = crate::harness::Server::start_default();
    // An open TCP connection must not hold the shutdown up.
    let _idle = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    assert_eq!(s.dig(&["www.example.test", "A"]).status, "NOERROR");
    let status = s.terminate();
    assert!(status.success(), "{status:?}\n{}", s.log());
    s.wait_log("stopped", 1);
}

/// A folder with the bundled zone and `config` as `meridian.toml`.
fn with_config(config: &str) -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("zones")).unwrap();
    std::fs::copy(
        repo().join("zones/example.test.toml"),
        dir.0.join("zones/example.test.toml"),
    )
    .unwrap();
    std::fs::write(dir.0.join("meridian.toml"), config).unwrap();
    dir
}

/// `meridian <command> --config <dir>/meridian.toml`: (exit status, stderr).
fn run(dir: &TempDir, command: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(binary())
        .args([command, "--config"])
        .arg(dir.0.join("meridian.toml"))
        .env_remove("MERIDIAN_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const LISTEN: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndirectory = \"zones\"\n";

#[test]
fn what_serve_refuses_check_refuses_and_both_exit_non_zero() {
    for (token, says) in [
        (
            "env = \"MERIDIAN_TEST_UNSET_TOKEN\"",
            "environment variable MERIDIAN_TEST_UNSET_TOKEN is not set",
        ),
        (
            "sha256 = \"ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé\"",
            "sha256 must be 64 hex digits",
        ),
    ] {
        let dir = with_config(&format!(
            "{LISTEN}[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\n{token}\nscope = \"read\"\n"
        ));
        for command in ["check", "serve"] {
            let (status, stderr) = run(&dir, command);
            assert!(!status.success(), "{command}: {stderr}");
            assert!(stderr.contains(says), "{command}: {stderr}");
            assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        }
    }
}

#[test]
fn a_missing_tls_certificate_is_refused_by_check_and_serve() {
    let dir = with_config(&format!(
        "{LISTEN}[tls]\nlisten = [\"127.0.0.1:0\"]\ncert_file = \"missing.pem\"\nkey_file = \"missing-key.pem\"\n"
    ));
    for command in ["check", "serve"] {
        let (status, stderr) = run(&dir, command);
        assert!(!status.success(), "{command}: {stderr}");
        assert!(stderr.contains("missing.pem"), "{command}: {stderr}");
    }
}

#[test]
fn an_api_port_in_use_stops_serve_with_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = with_config(&format!("{LISTEN}[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    let (status, stderr) = run(&dir, "serve");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("API on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = with_config(LISTEN);
    let mut child = Command::new(binary())
        .args(["simulate", "--config"])
        .arg(dir.0.join("meridian.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written, as `| head` does once it has its lines.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// What a newcomer gets wrong first, answered in one line that names the thing: each cause
/// once, the missing folder itself, a config error at its file, line and field.
#[test]
fn config_errors_are_one_line_naming_the_file_line_and_field() {
    let missing = TempDir::new();
    let (status, stderr) = run(&missing, "check");
    assert!(!status.success());
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("meridian.toml: cannot read"), "{stderr}");
    let dir =
        with_config("[server]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndirectory = \"nowhere\"\n");
    let (status, stderr) = run(&dir, "check");
    assert!(!status.success());
    assert!(stderr.contains("nowhere: cannot read"), "{stderr}");
    assert!(!stderr.contains(".journal"), "{stderr}");
    let dir =
        with_config("[server]\nlisten = [\"127.0.0.1:0\"]\n[geoip]\ndatabase = \"absent.mmdb\"\n");
    let (status, stderr) = run(&dir, "check");
    assert!(!status.success());
    assert!(
        stderr.contains("GeoIP database ") && stderr.contains("absent.mmdb: cannot read"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    let cases = [
        (
            "[server]\nudp_workers = \"x\"\n",
            "meridian.toml:2: server.udp_workers: invalid type",
        ),
        (
            "[server]\n\nudp_workerz = 2\n",
            "meridian.toml:3: server.udp_workerz: unknown field",
        ),
        (
            "[api]\nlisten = \"127.0.0.1:99999\"\n",
            "meridian.toml:2: api.listen: invalid socket address",
        ),
    ];
    for (config, says) in cases {
        let (status, stderr) = run(&with_config(config), "check");
        assert!(!status.success());
        assert!(stderr.contains(says), "{config}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{config}: {stderr}");
    }
}
