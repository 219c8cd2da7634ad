//! The UDP listener: worker tasks share one socket, each with its own receive buffer and RNG.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::handler::{Transport, respond};
use crate::state::State;

/// Largest UDP datagram; queries are far smaller, but a short buffer would cut a long one and
/// turn it into FORMERR instead of a proper parse.
const RECV_BUFFER: usize = 65_535;

pub async fn serve(
    socket: Arc<UdpSocket>,
    state: Arc<State>,
    udp_payload: u16,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut rng = fastrand::Rng::new();
    loop {
        let (len, peer): (usize, SocketAddr) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(error) => {
                    tracing::debug!(%error, "udp receive failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        // The snapshot guard is dropped before the send's `.await`.
        let reply = respond(
            &state.snapshot(),
            &buf[..len],
            peer.ip(),
            Transport::Udp,
            udp_payload,
            &mut rng,
        );
        if let Some(reply) = reply
            && let Err(error) = socket.send_to(&reply, peer).await
        {
            tracing::debug!(%error, %peer, "udp send failed");
        }
    }
}
