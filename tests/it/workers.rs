//! Every UDP worker receives on a socket of its own (SO_REUSEPORT): the kernel spreads
//! datagrams over them by source (hash) or by the CPU that received them (`udp_steering =
//! "cpu"`); an address already in use is refused at start.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Server, TempDir, ZONE_HEAD, binary};

/// The server's UDP sockets bound to 127.0.0.1:`port`, as the kernel lists them.
fn sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .count()
}

/// Datagrams each worker socket on 127.0.0.1 received so far, by socket number.
fn datagrams(s: &Server) -> Vec<u64> {
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200);
    let listen = format!("listen=\"127.0.0.1:{}\"", s.port);
    let mut counts: Vec<(usize, u64)> = text
        .lines()
        .filter(|l| l.starts_with("meridian_udp_socket_datagrams_total{") && l.contains(&listen))
        .map(|l| {
            let socket = l
                .split("socket=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let count = l.rsplit(' ').next().unwrap();
            (socket.parse().unwrap(), count.parse().unwrap())
        })
        .collect();
    assert!(!counts.is_empty(), "no {listen} in {text}");
    counts.sort();
    counts.into_iter().map(|(_, c)| c).collect()
}

/// An A query for `www.example.test`.
fn query() -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    q
}

const ZONE: &str = "[[records]]\nname = \"www\"\ntype = \"A\"\ndata = [\"192.0.2.7\"]\n";

#[test]
fn each_udp_worker_receives_on_its_own_socket() {
    let zone = format!("{ZONE_HEAD}{ZONE}");
    let s = Server::start_ops(&[("example.test.toml", &zone)], "");
    assert_eq!(
        sockets_on(s.port),
        2,
        "two workers, two sockets on the port"
    );
    // Queries from 64 source ports: the kernel's hash of the source spreads them.
    for _ in 0..64 {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        client.send_to(&query(), ("127.0.0.1", s.port)).unwrap();
        let mut buf = [0u8; 512];
        let len = client.recv(&mut buf).expect("an answer");
        assert_eq!(&buf[..2], &[0x42, 0x42][..]);
        assert!(len > 12);
    }
    let counts = datagrams(&s);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "both sockets received: {counts:?}"
    );
    assert!(counts.iter().sum::<u64>() >= 64, "{counts:?}");
}

#[test]
fn cpu_steering_gives_each_datagram_to_the_worker_of_its_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs (CI has two)");
    let zone = format!("{ZONE_HEAD}{ZONE}");
    let api = "[api]\nlisten = \"127.0.0.1:0\"\n";
    let s = Server::start_full(
        &[("example.test.toml", &zone)],
        "udp_steering = \"cpu\"\n",
        api,
    );
    // On loopback a datagram is received on the sender's CPU: dig kept on CPU 0, then 1.
    for cpu in [0usize, 1] {
        let before = datagrams(&s);
        for _ in 0..10 {
            let out = Command::new("taskset")
                .args(["-c", &cpu.to_string(), "dig", "+short", "+tries=1", "-p"])
                .arg(s.port.to_string())
                .args(["@127.0.0.1", "www.example.test", "A"])
                .output()
                .expect("taskset (util-linux) and dig");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.7");
        }
        let after = datagrams(&s);
        assert_eq!(
            after[cpu] - before[cpu],
            10,
            "CPU {cpu}: {before:?} → {after:?}"
        );
        assert_eq!(
            after[1 - cpu],
            before[1 - cpu],
            "CPU {cpu}: {before:?} → {after:?}"
        );
    }
}

#[test]
fn an_address_already_in_use_is_refused_at_start() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new();
    std::fs::create_dir(dir.0.join("zones")).unwrap();
    let config =
        format!("[server]\nlisten = [\"127.0.0.1:{port}\"]\n[zones]\ndirectory = \"zones\"\n");
    std::fs::write(dir.0.join("m.toml"), config).unwrap();
    let out = Command::new("timeout")
        .args(["20", binary(), "serve", "--config"])
        .arg(dir.0.join("m.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot bind 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("in use"), "{err}");
}
