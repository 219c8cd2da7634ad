//! The UDP listener: worker threads blocked in `recvmmsg`, each on a socket of its own (see
//! `listen`), with its own buffers, RNG and reply memo, answering a batch of datagrams at a time (see [`super::batch`]). Plain
//! blocking threads rather than tokio tasks: a DNS answer is a few microseconds of CPU with no
//! await in it, and going through the reactor for every datagram (readiness, wake-up,
//! re-registration) cost more than the answer itself.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::batch::{BATCH, Batch};
use super::memo::Memo;
use super::observe;
use super::querylog::QueryLog;
use super::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
use crate::snapshot::Current;

/// How often an idle worker looks at the shutdown token.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// How many batches a busy worker answers between looks at it.
const SHUTDOWN_CHECK: u32 = 64;

/// A datagram for the manager (UPDATE, NOTIFY) and where it came from.
pub type Managed = tokio::sync::mpsc::Sender<(Vec<u8>, SocketAddr)>;

/// What a UDP worker shares with the others.
pub struct Worker {
    /// Datagrams received on this worker's socket (the metrics).
    pub datagrams: Arc<AtomicU64>,
    /// (this worker, of how many): run on the CPUs whose datagrams it gets (CPU steering).
    pub pin: Option<(usize, usize)>,
    pub state: Arc<Current>,
    pub settings: Arc<Settings>,
    pub query_log: Option<Arc<QueryLog>>,
    /// Where UPDATE and NOTIFY go.
    pub managed: Option<Managed>,
}

/// Answers datagrams on `socket` until `shutdown` is cancelled; UPDATE and NOTIFY go to the
/// manager. Blocks the calling thread.
pub fn serve(socket: UdpSocket, worker: Worker, shutdown: CancellationToken) {
    let Worker {
        datagrams,
        pin,
        state,
        settings,
        query_log,
        managed,
    } = worker;
    if !set_up(&socket, pin) {
        return;
    }
    let mut batch = Batch::new();
    let mut rng = fastrand::Rng::new();
    let mut memo = Memo::default();
    let mut clock = Clock::new();
    // One reply buffer per datagram of a batch, and the answered datagrams' peers and
    // outcomes, all reused: nothing allocated or moved a batch.
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut peers: Vec<SocketAddr> = Vec::with_capacity(BATCH);
    let mut spare: Vec<Outcome<'static>> = Vec::with_capacity(BATCH);
    // The snapshot, held from batch to batch while no other is published: an idle worker lets
    // an old one go within `SHUTDOWN_POLL`.
    let mut held = state.hold();
    let mut batches = 0u32;
    loop {
        // Under load, every `SHUTDOWN_CHECK` batches; idle, on every receive timeout.
        batches = batches.wrapping_add(1);
        if batches.is_multiple_of(SHUTDOWN_CHECK) && shutdown.is_cancelled() {
            break;
        }
        match batch.receive(&socket) {
            Ok(received) => {
                datagrams.fetch_add(received as u64, Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                batches = SHUTDOWN_CHECK - 1;
                held = state.hold();
                continue;
            }
            Err(error) => {
                receive_failed(&error);
                continue;
            }
        }
        // One clock read and one snapshot a batch: every reply of the batch leaves in the
        // same send, so the batch's time in the server is each query's.
        let (started, now) = clock.read();
        if state.published() != held.0 {
            held = state.hold();
        }
        let snapshot = &held.1;
        let mut answered: Vec<Outcome<'_>> = recycle(std::mem::take(&mut spare));
        peers.clear();
        for (query, peer) in batch.datagrams() {
            if let Some(managed) = &managed
                && super::manage::wants(query, false)
            {
                let _ = managed.try_send((query.to_vec(), peer));
                continue;
            }
            let mut outcome = Outcome::default();
            let out = &mut replies[peers.len()];
            let incoming = Incoming {
                query,
                source: peer.ip(),
                transport: Transport::Udp,
            };
            let mut with = Responder {
                rng: &mut rng,
                memo: Some(&mut memo),
                settings: &settings,
                now,
                reference: false,
            };
            if respond_into(snapshot, incoming, &mut with, &mut outcome, out) {
                answered.push(outcome);
                peers.push(peer);
            } else if outcome.signed
                && let Some(managed) = &managed
            {
                let _ = managed.try_send((query.to_vec(), peer));
            }
        }
        batch.send(&socket, (&replies[..peers.len()], &peers));
        let metrics = crate::metrics::global();
        let elapsed = Duration::from_nanos(crate::sys::monotonic_nanos().saturating_sub(started));
        metrics.record_latency(Transport::Udp, elapsed, peers.len() as u64);
        for ((outcome, peer), reply) in answered.iter().zip(&peers).zip(&replies) {
            observe(
                outcome,
                peer.ip(),
                Transport::Udp,
                reply,
                query_log.as_deref(),
            );
        }
        spare = recycle(answered);
    }
}

/// Out of the worker loop's line: a failed receive is rare, and its log call is a lot of code.
#[cold]
#[inline(never)]
fn receive_failed(error: &std::io::Error) {
    tracing::debug!(%error, "udp receive failed");
}

/// Keeps the worker on its CPUs (`pin`: this worker, of how many), and makes its socket block
/// with a timeout; false if the socket cannot be set up.
fn set_up(socket: &UdpSocket, pin: Option<(usize, usize)>) -> bool {
    if let Some((index, workers)) = pin
        && let Err(error) = crate::sys::pin_worker(index, workers)
    {
        tracing::warn!(%error, "cannot keep UDP worker {index} on its CPUs");
    }
    let set = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(SHUTDOWN_POLL)));
    if let Err(error) = &set {
        tracing::error!(%error, "cannot set up the UDP socket");
    }
    set.is_ok()
}

/// `v` emptied, for elements of another lifetime: the standard library collects a `Vec`'s own
/// iterator in place, so its allocation is kept (a batch's outcomes borrow that batch's
/// snapshot; the vector outlives them all).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// A worker's clock: the batch's start on the monotonic clock in nanoseconds (its latency) and
/// the Unix second (cookies, signatures), the wall clock read at most once a second instead of
/// on every batch.
struct Clock {
    /// When the wall clock was last read, and the second it said.
    read_at: u64,
    unix: u32,
}

impl Clock {
    fn new() -> Self {
        Self {
            read_at: crate::sys::monotonic_nanos(),
            unix: super::respond::unix_now(),
        }
    }

    fn read(&mut self) -> (u64, u32) {
        let now = crate::sys::monotonic_nanos();
        if now.wrapping_sub(self.read_at) >= 1_000_000_000 {
            self.read_at = now;
            self.unix = super::respond::unix_now();
        }
        (now, self.unix)
    }
}

/// Answers the UPDATE and NOTIFY datagrams the workers hand over, one at a time (an UPDATE
/// waits for its write to be durable), until the workers are gone.
pub async fn manage(
    socket: UdpSocket,
    mut managed: tokio::sync::mpsc::Receiver<(Vec<u8>, SocketAddr)>,
    manager: Arc<super::manage::Manager>,
) {
    let socket = Arc::new(socket);
    while let Some((query, peer)) = managed.recv().await {
        let (socket, manager) = (socket.clone(), manager.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for reply in manager.handle(&query, peer.ip(), false) {
                if let Err(error) = socket.send_to(&reply, peer) {
                    tracing::debug!(%error, "cannot answer {peer}");
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SOA serial a worker answers for `zone` on `to`.
    fn serial(client: &UdpSocket, to: SocketAddr) -> u32 {
        let query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x06\x00\x01";
        client.send_to(query, to).unwrap();
        let mut reply = [0u8; 512];
        let n = client.recv(&mut reply).unwrap();
        let message = hickory_proto::op::Message::from_vec(&reply[..n]).unwrap();
        match message.answers[0].data {
            hickory_proto::rr::RData::SOA(ref soa) => soa.serial,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_worker_answers_from_each_published_snapshot_and_lets_the_old_one_go() {
        let zone = |serial: u32| {
            let text =
                crate::fixture::ZONE_HEAD.replace("serial = 1", &format!("serial = {serial}"));
            crate::fixture::snapshot(&[("example.test.", &text)], crate::fixture::Geo::None)
        };
        let state = Arc::new(Current::default());
        let publish = |s: crate::snapshot::Snapshot| state.publish(s.zones, s.geo, s.health);
        publish(zone(7));
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let worker = Worker {
            datagrams: Arc::default(),
            pin: None,
            state: state.clone(),
            settings: Arc::new(Settings::new(1232)),
            query_log: None,
            managed: None,
        };
        let shutdown = CancellationToken::new();
        let serving = std::thread::spawn({
            let shutdown = shutdown.clone();
            move || serve(socket, worker, shutdown)
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(serial(&client, to), 7);
        let old = state.hold().1;
        publish(zone(8));
        // Idle, the worker lets the old snapshot go within its receive timeout...
        std::thread::sleep(SHUTDOWN_POLL * 3);
        assert_eq!(Arc::strong_count(&old), 1);
        // ...and answers from the new one.
        assert_eq!(serial(&client, to), 8);
        // And it stops when told, idle or not.
        let asked = std::time::Instant::now();
        shutdown.cancel();
        serving.join().unwrap();
        assert!(asked.elapsed() < SHUTDOWN_POLL * 5, "{:?}", asked.elapsed());
    }

    #[test]
    fn recycling_keeps_the_allocation() {
        let spare: Vec<Outcome<'static>> = Vec::with_capacity(BATCH);
        let at = spare.as_ptr() as usize;
        let mut outcomes: Vec<Outcome<'_>> = recycle(spare);
        assert_eq!(
            (outcomes.as_ptr() as usize, outcomes.capacity()),
            (at, BATCH)
        );
        outcomes.push(Outcome::default());
        let spare: Vec<Outcome<'static>> = recycle(outcomes);
        assert_eq!((spare.as_ptr() as usize, spare.len()), (at, 0));
    }
}
