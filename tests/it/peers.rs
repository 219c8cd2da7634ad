//! Other DNS servers run by the tests as references and as secondaries: Knot (`knotd`, Debian
//! `knot`) and BIND 9 (`named`, Debian `bind9`), each on a free loopback port in a folder of its
//! own, stopped by PID when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{TempDir, eventually};

/// A loopback port free for UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A key both sides of a transfer know.
pub struct Key<'a> {
    pub name: &'a str,
    pub secret: &'a str,
}

/// A running peer server.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
    log: &'static str,
}

impl Peer {
    /// Knot serving `zone_text` for `origin` as a primary (the reference for zone data), its
    /// transfers open to loopback.
    pub fn knot_primary(origin: &str, zone_text: &str) -> Self {
        Self::knot_primaries(&[(origin.to_owned(), zone_text.to_owned())])
    }

    /// Knot serving each (origin, master file text) as a primary.
    pub fn knot_primaries(zones: &[(String, String)]) -> Self {
        let dir = TempDir::new();
        let mut conf = String::from(
            "acl:\n  - id: transfer\n    address: 127.0.0.1\n    action: transfer\nzone:\n",
        );
        for (i, (origin, text)) in zones.iter().enumerate() {
            let file = dir.0.join(format!("zone{i}.db"));
            std::fs::write(&file, text).unwrap();
            conf.push_str(&format!(
                "  - domain: {origin}\n    file: \"{}\"\n    zonefile-sync: -1\n    \
                 zonefile-load: whole\n    journal-content: none\n    semantic-checks: off\n    \
                 acl: transfer\n",
                file.display()
            ));
        }
        Self::knot(dir, "", &conf)
    }

    /// NSD as a secondary of `origin` from `primary_port`, transfers signed with `key`.
    pub fn nsd_secondary(origin: &str, primary_port: u16, key: &Key<'_>) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let d = dir.0.display();
        let conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  zonesdir: \"{d}\"\n  username: \"\"\n  \
             chroot: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/peer.log\"\n  xfrdir: \"{d}\"\n\
             remote-control:\n  control-enable: no\n\
             key:\n  name: \"{name}\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n\
             zone:\n  name: \"{origin}\"\n  zonefile: \"secondary.db\"\n  \
             request-xfr: 127.0.0.1@{primary_port} {name}\n  allow-notify: 127.0.0.1 {name}\n  \
             provide-xfr: 127.0.0.1 NOKEY\n",
            name = key.name,
            secret = key.secret,
        );
        std::fs::write(dir.0.join("nsd.conf"), conf).unwrap();
        let mut command = Command::new("nsd");
        command
            .args(["-d", "-c"])
            .arg(dir.0.join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::start(
            command,
            port,
            dir,
            "nsd is installed (apt-get install nsd; .ci/run does it)",
        )
    }

    /// Knot as a secondary of `origin` from `primary_port`, transfers signed with `key`.
    pub fn knot_secondary(origin: &str, primary_port: u16, key: &Key<'_>) -> Self {
        let dir = TempDir::new();
        let extra = format!(
            "key:\n  - id: {}\n    algorithm: hmac-sha256\n    secret: {}\n\
             remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n    key: {}\n\
             acl:\n  - id: notify\n    address: 127.0.0.1\n    key: {}\n    action: notify\n\
             \x20 - id: onwards\n    address: 127.0.0.1\n    action: transfer\n",
            key.name, key.secret, key.name, key.name
        );
        let zone = format!(
            "zone:\n  - domain: {origin}\n    file: \"{}/secondary.db\"\n    master: primary\n    \
             acl: [notify, onwards]\n",
            dir.0.display()
        );
        Self::knot(dir, &extra, &zone)
    }

    fn knot(dir: TempDir, extra: &str, zone: &str) -> Self {
        let port = free_port();
        let d = dir.0.display();
        let conf = format!(
            "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n\
             database:\n  storage: \"{d}\"\n\
             control:\n  listen: \"{d}/knot.sock\"\n\
             log:\n  - target: \"{d}/peer.log\"\n    any: info\n{extra}{zone}"
        );
        std::fs::write(dir.0.join("knot.conf"), conf).unwrap();
        let mut command = Command::new("knotd");
        command
            .arg("-c")
            .arg(dir.0.join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::start(
            command,
            port,
            dir,
            "knotd is installed (apt-get install knot; .ci/run does it)",
        )
    }

    /// BIND 9 on `port` as a secondary of `origin` from `primary_port`, every exchange signed
    /// with `key`.
    pub fn named_secondary(port: u16, origin: &str, primary_port: u16, key: &Key<'_>) -> Self {
        let dir = TempDir::new();
        let d = dir.0.display();
        let conf = format!(
            "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }};\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  \
             managed-keys-directory \"{d}\";\n  recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n\
             controls {{ }};\n\
             key \"{name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n\
             server 127.0.0.1 {{ keys {{ {name}; }}; }};\n\
             zone \"{origin}\" {{ type secondary; primaries port {primary_port} {{ 127.0.0.1 key {name}; }}; \
             file \"secondary.db\"; allow-notify {{ 127.0.0.1; }}; }};\n",
            name = key.name,
            secret = key.secret,
        );
        std::fs::write(dir.0.join("named.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.0.join("peer.log")).unwrap();
        let mut command = Command::new("named");
        command
            .args(["-g", "-c"])
            .arg(dir.0.join("named.conf"))
            .stdout(Stdio::null())
            .stderr(log);
        Self::start(
            command,
            port,
            dir,
            "named is installed (apt-get install bind9; .ci/run does it)",
        )
    }

    /// Starts `command` (the peer on `port`, its files in `dir`, its log `peer.log`) and waits
    /// until it answers; `missing` says how to install it.
    fn start(mut command: Command, port: u16, dir: TempDir, missing: &str) -> Self {
        let child = command.spawn().expect(missing);
        let peer = Peer {
            child,
            port,
            dir,
            log: "peer.log",
        };
        peer.wait_listening();
        peer
    }

    fn wait_listening(&self) {
        eventually(Duration::from_secs(20), "the peer server answers", || {
            Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "+time=1",
                    "+tries=1",
                ])
                .args(["version.server", "CH", "TXT"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status:"))
        });
    }

    /// What the peer has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join(self.log)).unwrap_or_default()
    }

    /// Runs `knotc` against this Knot with `args`.
    pub fn knotc(&self, args: &[&str]) -> String {
        let out = Command::new("knotc")
            .arg("-s")
            .arg(self.dir.0.join("knot.sock"))
            .args(args)
            .output()
            .expect("knotc is installed with knot");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
