//! A real one-member etcd (Debian's `etcd-server`) on free loopback ports, with its own data
//! folder; stopped by PID when dropped. And the members of a Meridian nameserver set on it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Server, TempDir};

pub struct Etcd {
    child: Option<Child>,
    pub client: u16,
    peer: u16,
    dir: TempDir,
    /// Serving clients over TLS, requiring client certificates: the folder of the certificates
    /// (`ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key`).
    pub tls: Option<std::path::PathBuf>,
}

/// One JSON request to the gateway on loopback port `port`: the body of a 200 answer within
/// `wait`.
fn gateway(port: u16, path: &str, body: &str, wait: Duration) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let request = format!(
        // HTTP/1.0: the answer comes whole, never chunked.
        "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let ok = answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200");
    ok.then(|| answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))?
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Etcd {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Serving clients over TLS with client certificates (made here with `openssl`).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let mut etcd = Self {
            child: None,
            client: free_port(),
            peer: free_port(),
            dir: TempDir::new(),
            tls: None,
        };
        if tls {
            let certs = etcd.dir.0.join("certs");
            make_certificates(&certs);
            etcd.tls = Some(certs);
        }
        etcd.spawn();
        etcd
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    fn spawn(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log_path = self.dir.0.join("etcd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new("etcd");
        command
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.0.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")]);
        if let Some(certs) = &self.tls {
            command
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(certs.join("ca.pem"))
                .arg("--cert-file")
                .arg(certs.join("server.pem"))
                .arg("--key-file")
                .arg(certs.join("server.key"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (apt-get install etcd-server; .ci/run does it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let ready = || match self.tls {
            Some(_) => log().contains("ready to serve client requests"),
            None => self.call("/v3/kv/range", r#"{"key":"AA=="}"#).is_some(),
        };
        while !ready() {
            assert!(Instant::now() < deadline, "etcd did not start: {}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One JSON request to etcd's gateway: the body of a 200 answer.
    pub fn call(&self, path: &str, body: &str) -> Option<String> {
        gateway(self.client, path, body, Duration::from_secs(5))
    }

    /// Kills etcd (SIGKILL, by PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let server = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n";
    crate::certs::leaf(dir, "server", "server", server);
    crate::certs::leaf(dir, "client", "client", "extendedKeyUsage=clientAuth\n");
}

/// A member of a set on `etcd` named `instance`, serving `zones` (its local copy to start
/// with), with the API (token `write-token`) and `extra` config; started once it has joined.
pub fn member(etcd: &Etcd, instance: &str, zones: &[(&str, &str)], extra: &str) -> Server {
    let server = start_member(etcd, instance, zones, extra, "");
    server.wait_log("etcd: in the set as", 1);
    server
}

/// A member as [`member`] with `store` added to its `[store]`, not waited for.
pub fn start_member(
    etcd: &Etcd,
    instance: &str,
    zones: &[(&str, &str)],
    extra: &str,
    store: &str,
) -> Server {
    start_member_on(&[etcd.url()], instance, zones, extra, store)
}

/// A member of a set on the etcd members at `endpoints` (tried in that order), not waited for.
pub fn start_member_on(
    endpoints: &[String],
    instance: &str,
    zones: &[(&str, &str)],
    extra: &str,
    store: &str,
) -> Server {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let config = format!(
        "{extra}\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"writer\"\nsha256 = \"{}\"\nscope = \"write\"\n\
         [store]\nbackend = \"etcd\"\nendpoints = [{}]\nprefix = \"/test\"\ninstance = \"{instance}\"\n{store}",
        crate::harness::token_hash("write-token"),
        endpoints.join(", ")
    );
    Server::start_config(zones, &config)
}

/// A real three-member etcd cluster on loopback, each member with its own data folder; every
/// member is stopped by PID when dropped. For the fault tests: kill, freeze and restart any.
pub struct EtcdSet {
    members: Vec<SetMember>,
    dir: TempDir,
}

struct SetMember {
    child: Option<Child>,
    client: u16,
    peer: u16,
}

impl EtcdSet {
    pub fn start() -> Self {
        let members = (0..3)
            .map(|_| SetMember {
                child: None,
                client: free_port(),
                peer: free_port(),
            })
            .collect();
        let mut set = Self {
            members,
            dir: TempDir::new(),
        };
        for i in 0..3 {
            set.spawn(i);
        }
        set.wait_leader();
        set
    }

    /// The client URLs, member `first` first (each instance prefers another member).
    pub fn urls(&self, first: usize) -> Vec<String> {
        (0..3)
            .map(|i| format!("http://127.0.0.1:{}", self.members[(first + i) % 3].client))
            .collect()
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .map(|(n, m)| format!("m{n}=http://127.0.0.1:{}", m.peer))
            .collect();
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join(format!("m{i}.log")))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(self.dir.0.join(format!("m{i}")))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (apt-get install etcd-server; .ci/run does it)");
        self.members[i].child = Some(child);
    }

    /// One JSON request to member `i`'s gateway: the body of a 200 answer.
    fn call(&self, i: usize, path: &str, body: &str) -> Option<String> {
        gateway(self.members[i].client, path, body, Duration::from_secs(2))
    }

    /// The member that leads now, as the running members see it.
    pub fn leader(&self) -> Option<usize> {
        for i in 0..3 {
            if self.members[i].child.is_none() {
                continue;
            }
            let Some(status) = self.call(i, "/v3/maintenance/status", "{}") else {
                continue;
            };
            let status: serde_json::Value = serde_json::from_str(&status).ok()?;
            let leader = status["leader"].as_str().unwrap_or_default().to_owned();
            if status["header"]["member_id"].as_str() == Some(leader.as_str()) {
                return Some(i);
            }
        }
        None
    }

    /// Waits (up to 20 s) until a leader is elected; which.
    pub fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            assert!(Instant::now() < deadline, "no etcd leader elected");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs member `i` (by PID) and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) member `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.members[i].child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for EtcdSet {
    fn drop(&mut self) {
        for i in 0..3 {
            if self.members[i].child.is_some() {
                let _ = self.signal_quietly(i);
            }
            self.kill(i);
        }
    }
}

impl EtcdSet {
    /// A frozen member is thawed before it is killed, so that it leaves no stopped process.
    fn signal_quietly(&self, i: usize) -> Option<()> {
        let pid = self.members[i].child.as_ref()?.id();
        Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .ok()
            .map(drop)
    }
}
