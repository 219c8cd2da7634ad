//! TCP that no single client can take: a network's connections are capped, and when every
//! place is taken the idlest connection is closed for a newcomer, who is served at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{Server, ZONE_HEAD};

/// Opens `count` TCP connections from `from` to `server` and keeps them, idle.
fn hold(from: &str, server: SocketAddr, count: usize) -> Vec<socket2::Socket> {
    (0..count)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            let source: SocketAddr = format!("{from}:0").parse().unwrap();
            socket.bind(&source.into()).unwrap();
            socket.connect(&server.into()).unwrap();
            socket
        })
        .collect()
}

fn metric(s: &Server, reason: &str) -> u64 {
    let (_, text) = s.get("/metrics");
    let series = format!("meridian_tcp_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_new_client_is_served_at_once_while_one_source_holds_two_thousand_connections() {
    for (server, counted) in [
        // The default share of a network: the flood's connections past it are refused.
        ("", "network_full"),
        // No useful share, a small total: every newcomer closes the idlest.
        (
            "tcp_max_connections = 100\ntcp_max_per_network = 100000\n",
            "idle_evicted",
        ),
    ] {
        let s = Server::start_full(
            &[("example.test.toml", ZONE_HEAD)],
            server,
            "[api]\nlisten = \"127.0.0.1:0\"\n",
        );
        let address: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
        let held = hold("127.0.0.2", address, 2000);
        crate::harness::eventually(Duration::from_secs(10), counted, || {
            metric(&s, counted) >= 1800
        });
        let start = Instant::now();
        let r = s.dig(&[
            "-b",
            "127.0.1.3",
            "+tcp",
            "+tries=1",
            "+time=2",
            "ns1.example.test",
            "A",
        ]);
        let took = start.elapsed();
        assert_eq!(r.answer_data(), ["192.0.2.1"], "{server}: {}", r.raw);
        assert!(
            took < Duration::from_secs(1),
            "{server}: answered after {took:?}"
        );
        drop(held);
    }
}
