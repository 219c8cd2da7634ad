//! The TCP listener (RFC 7766): length-prefixed messages, several per connection, an idle
//! timeout, and a cap on open connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handler::{Transport, respond};
use crate::state::State;

#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub udp_payload: u16,
}

pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "tcp accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = connection(stream, peer.ip(), &state, limits) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "tcp connection ended");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn connection(
    mut stream: TcpStream,
    peer: std::net::IpAddr,
    state: &State,
    limits: TcpLimits,
) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::new();
    let mut buf = Vec::new();
    loop {
        let len = match tokio::time::timeout(limits.idle_timeout, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            // Idle, or the client closed: both end the connection quietly.
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        buf.resize(len, 0);
        tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out reading a message"))??;
        let reply = respond(
            &state.snapshot(),
            &buf,
            peer,
            Transport::Tcp,
            limits.udp_payload,
            &mut rng,
        );
        let Some(reply) = reply else { continue };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}
