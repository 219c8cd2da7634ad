//! DNS over TLS (RFC 7858) against the real binary: `kdig +tls` gets what TCP gets, a Rust TLS
//! client gets the same bytes, a client that never finishes its handshake is dropped after the
//! idle timeout, and SIGHUP loads a new certificate.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls;

use crate::harness::{Server, TempDir, ZONE_HEAD, eventually};

/// A certificate for `name` and 127.0.0.1 signed by the folder's test CA, as
/// `<file>.pem`/`<file>.key`.
fn certificate(dir: &Path, file: &str, name: &str) {
    let extensions = format!("subjectAltName=DNS:{name},IP:127.0.0.1\n");
    crate::certs::leaf(dir, file, name, &extensions);
}

fn start() -> (Server, u16, TempDir) {
    let certs = TempDir::new();
    certificate(&certs.0, "tls", "dns.t.test");
    let zone = format!(
        "{ZONE_HEAD}[[records]]\nname = \"txt\"\ntype = \"TXT\"\ndata = [\"\\\"over tls\\\"\"]\n"
    );
    let config = format!(
        "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert_file = \"{0}/tls.pem\"\nkey_file = \"{0}/tls.key\"\n",
        certs.0.display()
    );
    let zones = [("t.test.toml", zone.as_str())];
    let server = Server::start_full(&zones, "tcp_idle_timeout_secs = 1\n", &config);
    server.wait_log("DNS over TLS on ", 1);
    let port = server
        .log()
        .split("DNS over TLS on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("the TLS port in the log");
    (server, port, certs)
}

/// A TXT query for txt.t.test with ID 0x4242.
fn query() -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["txt", "t", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]);
    q
}

fn exchange<S: Read + Write>(stream: &mut S, message: &[u8]) -> Vec<u8> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).unwrap();
    reply
}

fn tls_client(
    ca: &Path,
    port: u16,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

#[test]
fn dns_over_tls_answers_as_tcp_does() {
    let (s, port, certs) = start();
    let kdig = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tls",
            "+short",
            "txt.t.test",
            "TXT",
        ])
        .output()
        .expect("kdig is installed (knot-dnsutils)");
    assert_eq!(String::from_utf8_lossy(&kdig.stdout).trim(), "\"over tls\"");
    // The same bytes over TLS (certificate verified) as over TCP, two messages pipelined.
    let mut tls = tls_client(&certs.0.join("ca.pem"), port, "dns.t.test");
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..2 {
        let over_tls = exchange(&mut tls, &query());
        assert_eq!(over_tls, exchange(&mut tcp, &query()));
        assert!(over_tls.windows(8).any(|w| w == b"over tls"));
    }
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped_and_sighup_loads_a_new_certificate() {
    let (s, port, certs) = start();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = idle.read(&mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "dropped after the idle timeout (1 s): {took:?}"
    );
    // A new certificate, loaded on SIGHUP.
    certificate(&certs.0, "tls", "renewed.t.test");
    s.signal("HUP");
    s.wait_log("certificate reloaded", 1);
    eventually(Duration::from_secs(2), "the new certificate", || {
        let mut tls = tls_client(&certs.0.join("ca.pem"), port, "renewed.t.test");
        exchange(&mut tls, &query())
            .windows(8)
            .any(|w| w == b"over tls")
    });
}
