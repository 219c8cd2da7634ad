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
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.client)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let ok = answer.starts_with("HTTP/1.1 200");
        ok.then(|| answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))?
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
    let config = format!(
        "{extra}\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"writer\"\nsha256 = \"{}\"\nscope = \"write\"\n\
         [store]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/test\"\ninstance = \"{instance}\"\n{store}",
        crate::harness::token_hash("write-token"),
        etcd.url()
    );
    Server::start_config(zones, &config)
}
