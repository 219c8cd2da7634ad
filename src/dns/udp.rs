//! The UDP listener: worker threads blocked in `recv_from` on the same socket, each with its
//! own receive buffer and RNG. Plain blocking threads rather than tokio tasks: a DNS answer is
//! a few microseconds of CPU with no await in it, and going through the reactor for every
//! datagram (readiness, wake-up, re-registration) cost more than the answer itself.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handler::{Transport, respond};
use crate::state::State;

/// Largest UDP datagram; queries are far smaller, but a short buffer would cut a long one and
/// turn it into FORMERR instead of a proper parse.
const RECV_BUFFER: usize = 65_535;

/// How often an idle worker looks at the shutdown token.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Answers datagrams on `socket` until `shutdown` is cancelled. Blocks the calling thread.
pub fn serve(socket: UdpSocket, state: Arc<State>, udp_payload: u16, shutdown: CancellationToken) {
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
        let reply = respond(
            &state.snapshot(),
            &buf[..len],
            peer.ip(),
            Transport::Udp,
            udp_payload,
            &mut rng,
        );
        if let Some(reply) = reply
            && let Err(error) = socket.send_to(&reply, peer)
        {
            tracing::debug!(%error, %peer, "udp send failed");
        }
    }
}
