//! The UDP listener: worker threads blocked in `recvmmsg`, each on a socket of its own (see
//! `listen`), with its own buffers, RNG and reply memo, answering a batch of datagrams at a time (see [`super::batch`]). Plain
//! blocking threads rather than tokio tasks: a DNS answer is a few microseconds of CPU with no
//! await in it, and going through the reactor for every datagram (readiness, wake-up,
//! re-registration) cost more than the answer itself.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;

use super::batch::{BATCH, Batch};
use super::memo::Memo;
use super::observe;
use super::querylog::QueryLog;
use super::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
use crate::snapshot::Current;

/// How often an idle worker looks at the shutdown token.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

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
    if let Some((index, workers)) = pin
        && let Err(error) = crate::sys::pin_worker(index, workers)
    {
        tracing::warn!(%error, "cannot keep UDP worker {index} on its CPUs");
    }
    if let Err(error) = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(SHUTDOWN_POLL)))
    {
        tracing::error!(%error, "cannot set up the UDP socket");
        return;
    }
    let mut batch = Batch::new();
    let mut rng = fastrand::Rng::new();
    let mut memo = Memo::default();
    // One reply buffer per datagram of a batch, reused: no allocation per reply.
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    while !shutdown.is_cancelled() {
        match batch.receive(&socket) {
            Ok(received) => {
                datagrams.fetch_add(received as u64, Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(error) => {
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        }
        // One clock read and one snapshot a batch: every reply of the batch leaves in the
        // same send, so the batch's time in the server is each query's.
        let started = Instant::now();
        let snapshot = state.load();
        let now = super::respond::unix_now();
        // On the stack: no allocation a batch (at low rates a batch is one datagram).
        let mut answered: SmallVec<[(Outcome<'_>, SocketAddr); BATCH]> = SmallVec::new();
        for (query, peer) in batch.datagrams() {
            if let Some(managed) = &managed
                && super::manage::wants(query, false)
            {
                let _ = managed.try_send((query.to_vec(), peer));
                continue;
            }
            let mut outcome = Outcome::default();
            let out = &mut replies[answered.len()];
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
            if respond_into(&snapshot, incoming, &mut with, &mut outcome, out) {
                answered.push((outcome, peer));
            }
        }
        let sending: SmallVec<[(&[u8], SocketAddr); BATCH]> = answered
            .iter()
            .zip(&replies)
            .map(|((_, peer), reply)| (reply.as_slice(), *peer))
            .collect();
        batch.send(&socket, &sending);
        let metrics = crate::metrics::global();
        metrics.record_latency(Transport::Udp, started.elapsed(), answered.len() as u64);
        for ((outcome, peer), reply) in answered.iter().zip(&replies) {
            observe(
                outcome,
                peer.ip(),
                Transport::Udp,
                reply,
                query_log.as_deref(),
            );
        }
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
