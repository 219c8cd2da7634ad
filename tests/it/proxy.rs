//! A UDP proxy between a client and the server under test that changes messages on the way:
//! it adds an EDNS Client Subnet option to queries (for clients such as `delv` that cannot
//! send one), or flips a byte of the first RRSIG in answers (a tampered reply). Its own
//! minimal wire parsing, independent of the server's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the proxy changes.
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds this ECS option (family, source prefix, scope 0, address bytes) to each query's OPT.
    ClientSubnet(Vec<u8>),
    /// Flips the last byte of the first RRSIG in the answer section of replies to `qtype`.
    Rrsig { qtype: u16 },
}

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on a loopback port of its own, in front of the server on `upstream`.
    pub fn start(upstream: u16, change: Change) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let upstream: SocketAddr = ([127, 0, 0, 1], upstream).into();
            let mut buf = [0u8; 65535];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, client)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = forward(&buf[..len], upstream, &change) {
                    let _ = socket.send_to(&reply, client);
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The changed query sent upstream and its changed reply.
fn forward(query: &[u8], upstream: SocketAddr, change: &Change) -> Option<Vec<u8>> {
    let mut query = query.to_vec();
    if let Change::ClientSubnet(option) = change {
        add_option(&mut query, option)?;
    }
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(&query, upstream).ok()?;
    let mut buf = [0u8; 65535];
    let len = socket.recv(&mut buf).ok()?;
    let mut reply = buf[..len].to_vec();
    if let Change::Rrsig { qtype } = change
        && question_type(&query) == Some(*qtype)
    {
        flip_first_rrsig(&mut reply);
    }
    Some(reply)
}

/// Appends an ECS option (code 8) to the query's OPT record, its last record.
fn add_option(query: &mut Vec<u8>, option: &[u8]) -> Option<()> {
    let arcount = u16::from_be_bytes([query[10], query[11]]);
    let mut at = skip_name(query, 12)? + 4;
    if arcount != 1 || query.get(at..at + 3)? != [0, 0, 41] {
        return None;
    }
    at += 1 + 2 + 2 + 4;
    let rdlength = u16::from_be_bytes([query[at], query[at + 1]]);
    let added = 4 + option.len() as u16;
    query[at..at + 2].copy_from_slice(&(rdlength + added).to_be_bytes());
    query.extend_from_slice(&8u16.to_be_bytes());
    query.extend_from_slice(&(option.len() as u16).to_be_bytes());
    query.extend_from_slice(option);
    Some(())
}

fn question_type(message: &[u8]) -> Option<u16> {
    let at = skip_name(message, 12)?;
    Some(u16::from_be_bytes([
        *message.get(at)?,
        *message.get(at + 1)?,
    ]))
}

/// Flips the last byte of the first RRSIG of the answer section.
fn flip_first_rrsig(reply: &mut [u8]) -> Option<()> {
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    let mut at = skip_name(reply, 12)? + 4;
    for _ in 0..answers {
        at = skip_name(reply, at)?;
        let rtype = u16::from_be_bytes([*reply.get(at)?, *reply.get(at + 1)?]);
        let rdlength = usize::from(u16::from_be_bytes([reply[at + 8], reply[at + 9]]));
        let end = at + 10 + rdlength;
        if rtype == 46 {
            *reply.get_mut(end - 1)? ^= 0x01;
            return Some(());
        }
        at = end;
    }
    None
}

/// Where the name starting at `at` ends (labels, or a compression pointer).
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}
