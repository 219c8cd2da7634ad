//! Response rate limiting against the running binary: a flood from one network (another
//! loopback address than the exempt 127.0.0.1) is cut to the configured rate, every second
//! limited reply slips out truncated, and everyone else is answered meanwhile.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{Server, ZONE_HEAD};

/// A query for ns1.example.test A with id `id`, with an OPT record carrying `cookie` if given.
fn query(id: u16, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(cookie.is_some())]);
    q.extend_from_slice(b"\x03ns1\x07example\x04test\x00\x00\x01\x00\x01");
    if let Some(cookie) = cookie {
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&(4 + cookie.len() as u16).to_be_bytes());
        q.extend_from_slice(&[0, 10]);
        q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        q.extend_from_slice(cookie);
    }
    q
}

/// Replies to `count` queries sent at once from `from`: (full answers, truncated ones).
fn flood(server: SocketAddr, from: &str, count: u16, cookie: Option<&[u8]>) -> (usize, usize) {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for id in 0..count {
        socket.send_to(&query(id, cookie), server).unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Ok(n) = socket.recv(&mut buf) {
        match (buf[2] & 0x02 != 0, u16::from_be_bytes([buf[6], buf[7]])) {
            (true, 0) if n >= 12 => truncated += 1,
            (false, 1) => full += 1,
            other => panic!("unexpected reply {other:?}: {:?}", &buf[..n]),
        }
        if Instant::now() > deadline {
            break;
        }
    }
    (full, truncated)
}

/// Waits for the start of a second, so that a flood falls within one.
fn start_of_a_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1000 - into) + 20));
}

#[test]
fn a_flood_is_cut_to_the_rate_and_others_are_answered() {
    let config = "[rate_limit]\nresponses_per_second = 20\nslip = 2\n";
    let s = Server::start_config(&[("example.test.toml", ZONE_HEAD)], config);
    let server: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    start_of_a_second();
    let (full, truncated) = flood(server, "127.0.0.2", 200, None);
    // 20 answered in the second (±20 %), then of the 180 limited every second one slips.
    assert!((16..=24).contains(&full), "{full} answered");
    assert!((72..=108).contains(&truncated), "{truncated} truncated");
    // Meanwhile: another /24, and the exempt address, are answered in full.
    assert_eq!(flood(server, "127.0.1.1", 10, None), (10, 0));
    assert_eq!(flood(server, "127.0.0.1", 100, None), (100, 0));
    // The limited network is still answered over TCP.
    let r = s.dig(&["-b", "127.0.0.2", "+tcp", "ns1.example.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.1"], "{}", r.raw);
    // The next second it is answered again.
    start_of_a_second();
    assert_eq!(flood(server, "127.0.0.2", 5, None), (5, 0));
}

#[test]
fn a_server_cookie_of_ours_exempts_its_source() {
    let config = "[rate_limit]\nresponses_per_second = 5\n[cookies]\nsecret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n";
    let s = Server::start_config(&[("example.test.toml", ZONE_HEAD)], config);
    let server: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    // Learn our server cookie from 127.0.0.3.
    let socket = UdpSocket::bind(("127.0.0.3", 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(&query(1, Some(&[7; 8])), server).unwrap();
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).unwrap();
    let cookie = buf[..n]
        .windows(4)
        .position(|w| w == [0, 10, 0, 24])
        .map(|at| buf[at + 4..at + 28].to_vec());
    let cookie = cookie.expect("a COOKIE option with client and server cookie");
    drop(socket);
    start_of_a_second();
    assert_eq!(flood(server, "127.0.0.3", 50, Some(&cookie)), (50, 0));
    // Without it the same source is limited.
    let (full, _) = flood(server, "127.0.0.3", 50, None);
    assert!(full <= 6, "{full}");
}

/// The server's resident memory (KiB).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_table_does_not_grow_with_the_number_of_sources() {
    let config = "[rate_limit]\nresponses_per_second = 5\ntable_size = 4096\n";
    let s = Server::start_config(&[("example.test.toml", ZONE_HEAD)], config);
    let server: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    let _ = flood(server, "127.0.0.2", 20, None);
    let before = rss_kib(s.pid());
    // 16,000 networks, a few queries each: far more keys than slots (a map of them would
    // grow by a megabyte or more).
    for network in 0..16_000u32 {
        let from = format!("127.{}.{}.1", 1 + network / 256, network % 256);
        let socket = UdpSocket::bind((from.as_str(), 0)).unwrap();
        for id in 0..3 {
            socket.send_to(&query(id, None), server).unwrap();
        }
    }
    // Everything sent has been answered or dropped by now.
    let _ = flood(server, "127.0.1.1", 1, None);
    let after = rss_kib(s.pid());
    assert!(
        after < before + 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // And the churned table still limits: a fresh network flooding is cut to the rate.
    start_of_a_second();
    let (full, _) = flood(server, "127.0.200.1", 100, None);
    assert!(full <= 7, "{full} answered at 5 a second");
}

/// A steady flood of 1,000 queries a second from one network for 30 s, spread by the kernel
/// over the UDP workers (eight source ports), with 2 and with 8 workers: every whole second it
/// gets the configured 100 full answers (±20 %), whichever worker answers and however far
/// apart the workers' clock readings are.
#[test]
fn a_long_flood_is_held_to_the_rate_on_every_worker() {
    for workers in [2, 8] {
        long_flood(workers);
    }
}

fn long_flood(workers: usize) {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let config = "[rate_limit]\nresponses_per_second = 100\nslip = 0\n";
    let server_config = format!("udp_workers = {workers}\n");
    let s = Server::start_full(&[("example.test.toml", ZONE_HEAD)], &server_config, config);
    let server: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let per_second: Arc<Mutex<BTreeMap<u64, usize>>> = Arc::default();
    let sockets: Vec<Arc<UdpSocket>> = (0..8)
        .map(|_| Arc::new(UdpSocket::bind("127.0.0.2:0").unwrap()))
        .collect();
    let until = now() + Duration::from_secs(33);
    let receivers: Vec<_> = sockets
        .iter()
        .map(|socket| {
            let (socket, counts) = (socket.clone(), per_second.clone());
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while now() < until + Duration::from_secs(1) {
                    if let Ok(n) = socket.recv(&mut buf)
                        && n >= 12
                        && u16::from_be_bytes([buf[6], buf[7]]) == 1
                    {
                        *counts.lock().unwrap().entry(now().as_secs()).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    // Each worker reads the wall clock once a second, from its first query after a second
    // idle: queries to the workers spread over a second put their readings out of phase, as
    // hours of uneven traffic do.
    std::thread::sleep(Duration::from_millis(1200));
    for (k, socket) in sockets.iter().enumerate() {
        socket.send_to(&query(k as u16, None), server).unwrap();
        std::thread::sleep(Duration::from_millis(120));
    }
    let flood_start = now().as_secs();
    let mut id = 0u16;
    while now() < until {
        let socket = &sockets[usize::from(id) % sockets.len()];
        socket.send_to(&query(id, None), server).unwrap();
        id = id.wrapping_add(1);
        std::thread::sleep(Duration::from_micros(1000));
    }
    for receiver in receivers {
        receiver.join().unwrap();
    }
    let counts = per_second.lock().unwrap().clone();
    // Whole seconds of the steady flood only: from two seconds after it began (its first
    // seconds share a window that began before it, which a flood fills at once while the next
    // window starts in the same second), and not its last.
    let whole: Vec<(u64, usize)> = counts
        .into_iter()
        .filter(|(second, _)| *second >= flood_start + 2 && *second < until.as_secs())
        .collect();
    let whole = &whole[..];
    assert!(whole.len() >= 25, "{workers} workers: {whole:?}");
    for (second, full) in whole {
        assert!(
            (80..=120).contains(full),
            "second {second}: {full} full answers, {whole:?}"
        );
    }
}
