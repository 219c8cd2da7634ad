//! The UDP listener: worker threads blocked in `recv_from` on the same socket, each with its
//! own receive buffer and RNG. Plain blocking threads rather than tokio tasks: a DNS answer is
//! a few microseconds of CPU with no await in it, and going through the reactor for every
//! datagram (readiness, wake-up, re-registration) cost more than the answer itself.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handler::{Outcome, Transport, respond_observed};
use super::observe;
use crate::querylog::QueryLog;
use crate::state::State;

/// Largest UDP datagram; queries are far smaller, but a short buffer would cut a long one and
/// turn it into FORMERR instead of a proper parse.
const RECV_BUFFER: usize = 65_535;

/// How often an idle worker looks at the shutdown token.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Answers datagrams on `socket` until `shutdown` is cancelled. Blocks the calling thread.
pub fn serve(
    socket: UdpSocket,
    state: Arc<State>,
    udp_payload: u16,
    query_log: Option<Arc<QueryLog>>,
    shutdown: CancellationToken,
) {
    if let Err(error) = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(SHUTDOWN_POLL)))
    {
        tracing::error!(%error, "cannot set up the UDP socket");
        return;
    }
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut rng = fastrand::Rng::new();
    while !shutdown.is_cancelled() {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(error) => {
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        };
        let started = std::time::Instant::now();
        let snapshot = state.snapshot();
        let mut outcome = Outcome::default();
        let reply = respond_observed(
            &snapshot,
            &buf[..len],
            peer.ip(),
            Transport::Udp,
            udp_payload,
            &mut rng,
            &mut outcome,
        );
        let Some(reply) = reply else { continue };
        if let Err(error) = socket.send_to(&reply, peer) {
            tracing::debug!(%error, %peer, "udp send failed");
        }
        observe(
            &outcome,
            peer.ip(),
            Transport::Udp,
            &reply,
            started,
            query_log.as_deref(),
        );
    }
}
