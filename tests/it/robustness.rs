//! Malformed and unusual messages: never a crash, never a disturbed neighbour. Raw sockets
//! where dig cannot write the probe.

use std::net::UdpSocket;
use std::time::Duration;

use crate::harness::Server;

fn exchange(port: u16, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(packet, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// A query for `www.example.test` type A, with `qdcount` and flags as given.
fn query(id: u16, flags: u16, qdcount: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&qdcount.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for _ in 0..qdcount {
        p.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    }
    p
}

fn rcode(reply: &[u8]) -> u8 {
    reply[3] & 0x0f
}

#[test]
fn garbage_burst_then_a_valid_query_is_answered() {
    let s = Server::start_default();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..2000 {
        let len = (next() % 600) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && p.len() >= 12 {
            // Plausible headers: a query with 1 question and random counts.
            p[2] &= 0x7f;
            p[4] = 0;
            p[5] = 1;
        }
        sock.send_to(&p, ("127.0.0.1", s.port)).unwrap();
    }
    // Truncated and self-referencing names, huge counts.
    let mut evil = query(1, 0x0100, 1);
    evil.truncate(20);
    sock.send_to(&evil, ("127.0.0.1", s.port)).unwrap();
    let mut pointer_loop = query(2, 0x0100, 0);
    pointer_loop[5] = 1;
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    sock.send_to(&pointer_loop, ("127.0.0.1", s.port)).unwrap();
    // TCP garbage too: a length prefix promising more than is sent, then close.
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        let _ = tcp.write_all(&[0xff, 0xff, 1, 2, 3]);
    }
    let r = s.dig(&["www.example.test", "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert_eq!(r.answer.len(), 4);
    assert!(s.dig(&["+tcp", "mail.example.test", "A"]).has_flag("aa"));
}

#[test]
fn malformed_and_unsupported_messages_get_the_right_rcode() {
    let s = Server::start_default();
    // Two questions: FORMERR.
    let r = exchange(s.port, &query(7, 0x0100, 2)).expect("reply");
    assert_eq!(&r[..2], &7u16.to_be_bytes());
    assert_eq!(rcode(&r), 1, "FORMERR");
    // A cut-off question: FORMERR.
    let mut cut = query(8, 0x0100, 1);
    cut.truncate(18);
    assert_eq!(rcode(&exchange(s.port, &cut).expect("reply")), 1);
    // No question: FORMERR.
    assert_eq!(
        rcode(&exchange(s.port, &query(9, 0x0100, 0)).expect("reply")),
        1
    );
    // A response (QR set) is never answered: no reflection.
    assert!(exchange(s.port, &query(10, 0x8100, 1)).is_none());
    // Shorter than a header: dropped.
    assert!(exchange(s.port, &[1, 2, 3]).is_none());
    // A good one still works on the same path.
    let ok = exchange(s.port, &query(11, 0x0100, 1)).expect("reply");
    assert_eq!(rcode(&ok), 0);
    assert_eq!(ok[2] & 0x04, 0x04, "AA");
    assert_eq!(ok[3] & 0x80, 0, "no RA");
}

#[test]
fn opcodes_classes_and_transfers() {
    let s = Server::start_default();
    // NOTIFY to a primary without a key that may send it: REFUSED (see tests/it/protocols.rs);
    // an opcode we do not implement: NOTIMP.
    let notify = s.dig(&["+opcode=notify", "example.test", "SOA"]);
    assert_eq!(notify.status, "REFUSED", "{}", notify.raw);
    let status = s.dig(&["+opcode=status", "example.test", "SOA"]);
    assert_eq!(status.status, "NOTIMP", "{}", status.raw);
    let chaos = s.dig(&["-c", "CH", "version.bind", "TXT"]);
    assert_eq!(chaos.status, "REFUSED", "{}", chaos.raw);
    let axfr = s.dig_raw("127.0.0.1", s.port, &["example.test", "AXFR"]);
    assert!(
        axfr.contains("Transfer failed") || axfr.contains("REFUSED"),
        "{axfr}"
    );
}

#[test]
fn bursts_from_many_peers_get_every_reply_at_the_right_peer() {
    // Everything is sent before anything is read, so the server takes the queries in batches
    // of many datagrams from many sources (IPv4 and IPv6) and must send each reply back to
    // the socket that asked, with its own ID.
    let s = Server::start_default();
    let targets = [
        ("127.0.0.1", "127.0.0.1:0", s.port),
        ("::1", "[::1]:0", s.port6.unwrap()),
    ];
    let mut sockets = Vec::new();
    for (server, bind, port) in targets {
        for _ in 0..8 {
            let sock = UdpSocket::bind(bind).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            sock.connect((server, port)).unwrap();
            sockets.push(sock);
        }
    }
    // 128 in flight per family: well inside the default socket receive buffer.
    const PER_SOCKET: u16 = 16;
    for (k, sock) in sockets.iter().enumerate() {
        for i in 0..PER_SOCKET {
            sock.send(&query(k as u16 * 1000 + i, 0x0100, 1)).unwrap();
        }
    }
    for (k, sock) in sockets.iter().enumerate() {
        let mut ids = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(rcode(&buf[..n]), 0);
            assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 4, "four answers");
            ids.push(u16::from_be_bytes([buf[0], buf[1]]));
            if ids.len() == usize::from(PER_SOCKET) {
                break;
            }
        }
        ids.sort_unstable();
        let want: Vec<u16> = (0..PER_SOCKET).map(|i| k as u16 * 1000 + i).collect();
        assert_eq!(ids, want, "socket {k}");
    }
}
