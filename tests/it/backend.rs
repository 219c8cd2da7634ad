//! A tiny HTTP backend on a loopback address that a test switches between healthy, failing
//! (500), slow, alternating and closed, and that counts the requests it gets. It can answer
//! after a delay (±20 % jitter) and report a load in an `X-Load` header.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Healthy = 0,
    Error = 1,
    Slow = 2,
    /// 200 and 500 in turn: a flapping backend.
    Alternate = 3,
    /// Not listening: connections are refused.
    Closed = 4,
}

pub struct Backend {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tuning: Arc<Tuning>,
}

/// How a healthy answer is given.
#[derive(Default)]
struct Tuning {
    /// Delay before answering, in µs (each answer ±20 %).
    delay_us: AtomicU64,
    /// The `X-Load` header's value + 1 (0: no header).
    load: AtomicU64,
    /// Requests from these addresses get 500 (a backend one vantage point cannot use).
    refused: std::sync::Mutex<Vec<std::net::IpAddr>>,
}

impl Backend {
    /// Listens on `ip:port` (port 0: any).
    pub fn start(ip: Ipv4Addr, port: u16) -> Self {
        let listener = TcpListener::bind((ip, port)).expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(Mode::Healthy as u8));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tuning = Arc::new(Tuning::default());
        let (m, r, s, t) = (mode.clone(), requests.clone(), stop.clone(), tuning.clone());
        std::thread::spawn(move || serve(listener, addr, m, r, s, t));
        Self {
            addr,
            mode,
            requests,
            stop,
            tuning,
        }
    }

    /// Answers after about this long (±20 %, a new draw each time).
    pub fn set_delay(&self, delay: Duration) {
        self.tuning
            .delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Reports this load in an `X-Load` header (`None`: no header).
    pub fn set_load(&self, load: Option<u64>) {
        self.tuning
            .load
            .store(load.map_or(0, |l| l + 1), Ordering::SeqCst);
    }

    /// Answers 500 to requests from `peers` only.
    pub fn refuse_from(&self, peers: &[&str]) {
        let peers = peers.iter().map(|p| p.parse().unwrap()).collect();
        *self.tuning.refused.lock().unwrap() = peers;
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tuning: Arc<Tuning>,
) {
    let mut rng = fastrand::Rng::with_seed(u64::from(addr.port()));
    let mut listener = Some(listener);
    let mut turn = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let current = mode.load(Ordering::SeqCst);
        if current == Mode::Closed as u8 {
            listener = None;
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr) {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        l.set_nonblocking(true).unwrap();
        let Ok((mut stream, peer)) = l.accept() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf);
        let status = match current {
            c if c == Mode::Error as u8 => "500 Internal Server Error",
            c if c == Mode::Slow as u8 => {
                std::thread::sleep(Duration::from_millis(1500));
                "200 OK"
            }
            c if c == Mode::Alternate as u8 => {
                turn += 1;
                if turn.is_multiple_of(2) {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                }
            }
            _ => "200 OK",
        };
        let status = match tuning.refused.lock().unwrap().contains(&peer.ip()) {
            true => "500 Internal Server Error",
            false => status,
        };
        let delay = tuning.delay_us.load(Ordering::SeqCst) as f64;
        if delay > 0.0 {
            let jittered = delay * (0.8 + 0.4 * rng.f64());
            std::thread::sleep(Duration::from_micros(jittered as u64));
        }
        let load = match tuning.load.load(Ordering::SeqCst) {
            0 => String::new(),
            l => format!("X-Load: {}\r\n", l - 1),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\n{load}Content-Length: 7\r\nConnection: close\r\n\r\nhealthy"
        );
    }
}
