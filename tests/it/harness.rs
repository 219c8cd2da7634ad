//! Starts the real `meridian` binary on loopback ports it picks itself, and queries it with
//! `dig` (and raw sockets where dig cannot express the probe).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use meridian::fixture::ZONE_HEAD;

/// An HTTP check every 200 ms; down after 2 failures, up after 2 successes.
pub fn http_check(port: u16) -> String {
    format!(
        r#"{{ type = "http", port = {port}, path = "/health", interval = "200ms", timeout = "150ms", fall = 2, rise = 2, body = "healthy" }}"#
    )
}

/// Runs BIND's `nsupdate` with `args` on `script` (given whole: `server`, `send`…): (success,
/// stderr).
pub fn nsupdate(args: &[&str], script: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("nsupdate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsupdate is installed (bind9-dnsutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

/// A test that cannot run here: it says so and is skipped on a developer's machine, and fails
/// in CI (`CI` set), where `.ci/run` installs everything the suite needs.
pub fn cannot_run(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}: .ci/run provides it, so under CI this is a failure");
    }
    eprintln!("SKIPPED: {why}");
}

/// Polls `f` until it holds (at most `within`); returns how long it took.
pub fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
    start.elapsed()
}

/// The variables `dir`/environment lists (`NAME=value` lines), for the server's environment.
fn environment(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("environment")).unwrap_or_default();
    let pairs = text.lines().filter_map(|l| l.split_once('='));
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// A fresh folder with `zones/` holding these files.
fn with_zones(zones: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new();
    let zones_dir = dir.0.join("zones");
    std::fs::create_dir_all(&zones_dir).unwrap();
    for (name, text) in zones {
        std::fs::write(zones_dir.join(name), text).unwrap();
    }
    dir
}

/// A fresh folder with a copy of the repository's bundled `zones/`.
fn bundled_zones() -> TempDir {
    let dir = TempDir::new();
    let zones_dir = dir.0.join("zones");
    std::fs::create_dir_all(&zones_dir).unwrap();
    for entry in std::fs::read_dir(repo().join("zones")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, zones_dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "meridian-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The SHA-256 of an API token, as `meridian hash-token` prints it.
pub fn token_hash(token: &str) -> String {
    let out = Command::new(binary())
        .args(["hash-token", token])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_meridian")
}

/// A running server. Killed (by PID) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub port6: Option<u16>,
    /// The API's address, when the config has an `[api]`.
    pub api: Option<std::net::SocketAddr>,
    pub dir: TempDir,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Serves the given zone files (name, contents) on 127.0.0.1 and [::1], free ports.
    pub fn start(zones: &[(&str, &str)]) -> Self {
        Self::start_geo(zones, None)
    }

    /// Like [`Server::start`], with a copy of the GeoIP database at `geoip` as `geoip.mmdb`.
    pub fn start_geo(zones: &[(&str, &str)], geoip: Option<&Path>) -> Self {
        Self::start_geo_with(zones, geoip, "")
    }

    /// Like [`Server::start_geo`], with `extra` appended to the config (`[api]`…).
    pub fn start_geo_with(zones: &[(&str, &str)], geoip: Option<&Path>, extra: &str) -> Self {
        let dir = TempDir::new();
        let zones_dir = dir.0.join("zones");
        std::fs::create_dir_all(&zones_dir).unwrap();
        for (name, text) in zones {
            std::fs::write(zones_dir.join(name), text).unwrap();
        }
        std::fs::write(dir.0.join("extra.toml"), extra).unwrap();
        Self::start_in(dir, geoip)
    }

    /// Like [`Server::start`], with `server` added to the config's `[server]` table.
    pub fn start_server(zones: &[(&str, &str)], server: &str) -> Self {
        Self::start_full(zones, server, "")
    }

    /// Like [`Server::start`], with `server` added to `[server]` and `extra` appended.
    pub fn start_full(zones: &[(&str, &str)], server: &str, extra: &str) -> Self {
        let dir = with_zones(zones);
        std::fs::write(dir.0.join("server.toml"), server).unwrap();
        std::fs::write(dir.0.join("extra.toml"), extra).unwrap();
        Self::start_in(dir, None)
    }

    /// Like [`Server::start`], with `extra` appended to the config (`[cookies]`…).
    pub fn start_config(zones: &[(&str, &str)], extra: &str) -> Self {
        Self::start_full(zones, "", extra)
    }

    /// Like [`Server::start_config`], with these variables in the server's environment.
    pub fn start_config_env(zones: &[(&str, &str)], extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = with_zones(zones);
        std::fs::write(dir.0.join("extra.toml"), extra).unwrap();
        let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        std::fs::write(dir.0.join("environment"), lines.join("\n")).unwrap();
        Self::start_in(dir, None)
    }

    /// Like [`Server::start`], with a health state file `health.json`.
    pub fn start_with_health_file(zones: &[(&str, &str)]) -> Self {
        let dir = TempDir::new();
        let zones_dir = dir.0.join("zones");
        std::fs::create_dir_all(&zones_dir).unwrap();
        for (name, text) in zones {
            std::fs::write(zones_dir.join(name), text).unwrap();
        }
        std::fs::write(
            dir.0.join("extra.toml"),
            "[health]\nstate_file = \"health.json\"\n",
        )
        .unwrap();
        Self::start_in(dir, None)
    }

    /// Like [`Server::start`], with the HTTP API on a free port and three tokens: `write-token`
    /// (write scope), `read-token` (read scope) and `other-token` (write scope, zone
    /// `other.test` only).
    pub fn start_api(zones: &[(&str, &str)]) -> Self {
        let dir = TempDir::new();
        let zones_dir = dir.0.join("zones");
        std::fs::create_dir_all(&zones_dir).unwrap();
        for (name, text) in zones {
            std::fs::write(zones_dir.join(name), text).unwrap();
        }
        let hash = token_hash;
        let api = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"writer\"\nsha256 = \"{}\"\nscope = \"write\"\n\
             [[api.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nscope = \"read\"\n\
             [[api.tokens]]\nname = \"other\"\nsha256 = \"{}\"\nscope = \"write\"\nzones = [\"other.test\"]\n",
            hash("write-token"),
            hash("read-token"),
            hash("other-token")
        );
        std::fs::write(dir.0.join("extra.toml"), api).unwrap();
        Self::start_in(dir, None)
    }

    /// Serves `zones` with the API on (no tokens) and `extra` appended to the config
    /// (`[health]`, `[query_log]`…).
    pub fn start_ops(zones: &[(&str, &str)], extra: &str) -> Self {
        let dir = TempDir::new();
        let zones_dir = dir.0.join("zones");
        std::fs::create_dir_all(&zones_dir).unwrap();
        for (name, text) in zones {
            std::fs::write(zones_dir.join(name), text).unwrap();
        }
        let config = format!("[api]\nlisten = \"127.0.0.1:0\"\n{extra}");
        std::fs::write(dir.0.join("extra.toml"), config).unwrap();
        Self::start_in(dir, None)
    }

    /// One HTTP/1.1 request to the API: (status, headers in lower case, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        self.http_at(method, &format!("/api/v1{path}"), token, body, headers)
    }

    /// `GET` of a path outside `/api/v1` (metrics, status page, probes): (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.http_at("GET", path, None, None, &[]);
        (status, body)
    }

    /// The API's address.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api.expect("the API is configured")
    }

    fn http_at(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        use std::io::{Read, Write};
        let addr = self.api_addr();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect::<Vec<_>>();
        // Chunked bodies (axum streams some): undo the framing.
        let body = if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            let mut out = String::new();
            let mut rest = rest;
            while let Some((size, tail)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                out.push_str(&tail[..n]);
                rest = &tail[n + 2..];
            }
            out
        } else {
            rest.to_owned()
        };
        (status, headers, body)
    }

    /// Starts the server again on the same folder and config (after `terminate`).
    pub fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new()));
        let geo = dir.0.join("geoip.mmdb");
        let geo = geo.exists().then(|| {
            let keep = dir.0.join("geoip-copy.mmdb");
            std::fs::copy(&geo, &keep).unwrap();
            keep
        });
        Self::start_in(dir, geo.as_deref())
    }

    /// Serves a copy of the repository's bundled `zones/` and GeoIP database.
    pub fn start_default() -> Self {
        let dir = bundled_zones();
        let server = Self::start_in(dir, Some(&repo().join("geoip/meridian-test.mmdb")));
        // `www` is checked against local backends that are not running: wait for the first
        // round to settle so that every test sees the same (all down, fail-open) pool.
        server.wait_log("unknown -> down", 4);
        server
    }

    /// [`Server::start_default`] with the API (and so metrics and the status page) on.
    pub fn start_default_with_api() -> Self {
        let dir = bundled_zones();
        std::fs::write(
            dir.0.join("extra.toml"),
            "[api]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        Self::start_in(dir, Some(&repo().join("geoip/meridian-test.mmdb")))
    }

    /// The copy of the GeoIP database this server reads.
    pub fn geoip(&self) -> PathBuf {
        self.dir.0.join("geoip.mmdb")
    }

    fn start_in(dir: TempDir, geoip: Option<&Path>) -> Self {
        let mut text = "[server]\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\nudp_workers = 2\n[zones]\ndirectory = \"zones\"\n".to_owned();
        if let Some(db) = geoip {
            std::fs::copy(db, dir.0.join("geoip.mmdb")).unwrap();
            text.push_str("[geoip]\ndatabase = \"geoip.mmdb\"\nwatch_interval_secs = 1\n");
        }
        if let Ok(server) = std::fs::read_to_string(dir.0.join("server.toml")) {
            // `server.toml` may set the worker count itself.
            let workers = match server.contains("udp_workers") {
                true => String::new(),
                false => "udp_workers = 2\n".to_owned(),
            };
            text = text.replace("udp_workers = 2\n", &format!("{workers}{server}"));
        }
        if let Ok(extra) = std::fs::read_to_string(dir.0.join("extra.toml")) {
            text.push_str(&extra);
        }
        Self::launch(dir, &text)
    }

    /// The repository's own `meridian.toml`, zones and GeoIP database, as README.md starts
    /// them, but on ports of the system's choosing. The folder is the server's working dir.
    pub fn start_shipped() -> Self {
        let dir = bundled_zones();
        std::fs::create_dir_all(dir.0.join("geoip")).unwrap();
        std::fs::copy(
            repo().join("geoip/meridian-test.mmdb"),
            dir.0.join("geoip/meridian-test.mmdb"),
        )
        .unwrap();
        let text = std::fs::read_to_string(repo().join("meridian.toml"))
            .unwrap()
            .replace(":5300\"", ":0\"")
            .replace("127.0.0.1:8053", "127.0.0.1:0");
        Self::launch(dir, &text)
    }

    /// Starts `meridian serve` on `text` written as `dir`/meridian.toml and waits for its ports.
    fn launch(dir: TempDir, text: &str) -> Self {
        let config = dir.0.join("meridian.toml");
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(&dir.0)
            .envs(environment(&dir.0))
            .env("MERIDIAN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start meridian");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("API listening on ").nth(1) {
                    let addr = rest.split(' ').next().unwrap_or_default().to_owned();
                    let _ = tx.send(format!("API {addr}"));
                } else if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split(' ').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (mut port, mut port6, mut api) = (None, None, None);
        let wants_api = text.contains("[api]");
        let deadline = Instant::now() + Duration::from_secs(20);
        while port.is_none() || port6.is_none() || (wants_api && api.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(addr) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("server did not start: {}", log.lock().unwrap());
            };
            if let Some(a) = addr.strip_prefix("API ") {
                api = Some(a.parse().unwrap());
                continue;
            }
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            match addr.is_ipv4() {
                true => port = Some(addr.port()),
                false => port6 = Some(addr.port()),
            }
        }
        Self {
            child,
            port: port.unwrap(),
            port6,
            api,
            dir,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn zones_dir(&self) -> PathBuf {
        self.dir.0.join("zones")
    }

    /// The server's folder: its config, zones and working directory.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Sends a signal by PID (`kill -SIG pid`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the log holds `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs dig against the IPv4 listener and parses the reply.
    pub fn dig(&self, args: &[&str]) -> Reply {
        Reply::parse(&self.dig_raw("127.0.0.1", self.port, args))
    }

    pub fn dig6(&self, args: &[&str]) -> Reply {
        Reply::parse(&self.dig_raw("::1", self.port6.expect("ipv6 listener"), args))
    }

    pub fn dig_raw(&self, server: &str, port: u16, args: &[&str]) -> String {
        let out = Command::new("dig")
            .arg(format!("@{server}"))
            .args(["-p", &port.to_string(), "+time=2", "+tries=1"])
            .args(args)
            .output()
            .expect("dig is installed (apt-get install bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `+short` answer lines for each of many questions, asked in one dig run.
    pub fn short_many(&self, name: &str, rtype: &str, count: usize) -> Vec<String> {
        let mut args = vec!["+short".to_owned()];
        for _ in 0..count {
            args.push(name.to_owned());
            args.push(rtype.to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.dig_raw("127.0.0.1", self.port, &args)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parts of dig's output the tests look at.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: String,
    pub flags: Vec<String>,
    pub question: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// `; EDNS: …` line, when the reply carried OPT.
    pub edns: Option<String>,
    pub raw: String,
}

impl Reply {
    pub fn parse(text: &str) -> Self {
        let mut reply = Reply {
            raw: text.to_owned(),
            ..Reply::default()
        };
        let mut section: Option<&mut Vec<String>> = None;
        for line in text.lines() {
            if let Some(rest) = line.split("status: ").nth(1) {
                reply.status = rest.split(',').next().unwrap().to_owned();
            }
            if let Some(rest) = line.strip_prefix(";; flags: ") {
                let flags = rest.split(';').next().unwrap();
                reply.flags = flags.split_whitespace().map(str::to_owned).collect();
            }
            if line.starts_with("; EDNS:") {
                reply.edns = Some(line.to_owned());
            }
            if line.trim().is_empty() {
                section = None;
                continue;
            }
            section = match line {
                ";; QUESTION SECTION:" => Some(&mut reply.question),
                ";; ANSWER SECTION:" => Some(&mut reply.answer),
                ";; AUTHORITY SECTION:" => Some(&mut reply.authority),
                ";; ADDITIONAL SECTION:" => Some(&mut reply.additional),
                _ => {
                    if let Some(s) = section.as_mut() {
                        s.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
                    }
                    section
                }
            };
        }
        reply
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The RDATA of the answer records (owner, TTL, class and type removed).
    pub fn answer_data(&self) -> Vec<String> {
        self.answer.iter().map(|l| rdata(l)).collect()
    }

    /// TTL of a section line.
    pub fn ttl(line: &str) -> u32 {
        line.split(' ').nth(1).unwrap().parse().unwrap()
    }

    pub fn rtype(line: &str) -> &str {
        line.split(' ').nth(3).unwrap()
    }
}

pub fn rdata(line: &str) -> String {
    line.split(' ').skip(4).collect::<Vec<_>>().join(" ")
}
