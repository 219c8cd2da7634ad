//! The TCP listener (RFC 7766): length-prefixed messages, several per connection, an idle
//! timeout, and open connections held by `connections` (a cap per network, the idlest closed
//! for a newcomer when all are in use).

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connections::{Admitted, Closed, Connections};
use super::observe;
use super::querylog::QueryLog;
use super::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
use crate::snapshot::Current;

#[derive(Debug, Clone)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    /// The open connections, shared by every listener of the transport.
    pub connections: Arc<Connections>,
    pub settings: Arc<Settings>,
    /// Where UPDATE, NOTIFY and zone transfers go.
    pub manager: Option<Arc<super::manage::Manager>>,
}

pub async fn serve(
    listener: TcpListener,
    state: Arc<Current>,
    limits: TcpLimits,
    query_log: Option<Arc<QueryLog>>,
    shutdown: CancellationToken,
) {
    let (connections, stop) = (limits.connections.clone(), shutdown.clone());
    accept(
        listener,
        connections,
        stop,
        move |mut stream, peer, admitted| {
            let (state, log) = (state.clone(), query_log.clone());
            let limits = limits.clone();
            async move {
                let served = connection(
                    &mut stream,
                    peer.ip(),
                    Transport::Tcp,
                    &state,
                    &limits,
                    log.as_deref(),
                    &admitted,
                );
                if let Err(error) = served.await {
                    tracing::debug!(%error, %peer, "tcp connection ended");
                }
            }
        },
    )
    .await;
}

/// Accepts connections on `listener` until `shutdown`, each admitted by `open` (or closed at
/// once), each served by the task `serve` makes of it; then stops accepting (the listener
/// closes), lets connections finish the message they are in, and cuts off whatever is still
/// open after the grace period. TCP and TLS alike.
pub(super) async fn accept<F, Fut>(
    listener: TcpListener,
    open: Arc<Connections>,
    shutdown: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Admitted) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(admitted) = open.admit(peer.ip(), &shutdown, |closed| note_closed(closed, peer))
        else {
            // Its network holds its share: closed at once, nothing read.
            drop(stream);
            continue;
        };
        let connection = serve(stream, peer, admitted);
        connections.spawn(connection);
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!("closing connections still busy after {SHUTDOWN_GRACE:?}");
        connections.shutdown().await;
    }
}

/// Counts (and for a network over its share, logs) a connection not kept.
fn note_closed(closed: Closed, peer: SocketAddr) {
    crate::metrics::global().record_tcp_closed(closed == Closed::IdleEvicted);
    if closed == Closed::NetworkFull {
        tracing::debug!(%peer, "tcp connection refused: its network holds its share");
    }
}

/// How long in-flight TCP answers may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves one connection (TCP, or TLS once its handshake is done): messages one after another
/// until the client closes, it idles out, or shutdown (or a newcomer that needs its place)
/// comes between two messages (a message that has started is always answered).
pub(super) async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: std::net::IpAddr,
    transport: Transport,
    state: &Current,
    limits: &TcpLimits,
    query_log: Option<&QueryLog>,
    admitted: &Admitted,
) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::new();
    let mut buf = Vec::new();
    loop {
        let len = tokio::select! {
            len = tokio::time::timeout(limits.idle_timeout, stream.read_u16()) => match len {
                Ok(Ok(len)) => usize::from(len),
                // Idle, or the client closed: both end the connection quietly.
                Ok(Err(_)) | Err(_) => return Ok(()),
            },
            _ = admitted.close.cancelled() => return Ok(()),
        };
        admitted.touch();
        let started = std::time::Instant::now();
        buf.resize(len, 0);
        tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out reading a message"))??;
        if limits.manager.is_some() && super::manage::wants(&buf, true) {
            managed(limits, &buf, peer, stream).await?;
            continue;
        }
        let snapshot = state.load();
        let mut outcome = Outcome::default();
        let mut reply = Vec::with_capacity(512);
        let incoming = Incoming {
            query: &buf,
            source: peer,
            transport,
        };
        let mut with = Responder {
            rng: &mut rng,
            memo: None,
            settings: &limits.settings,
            now: super::respond::unix_now(),
            reference: false,
        };
        if !respond_into(&snapshot, incoming, &mut with, &mut outcome, &mut reply) {
            let signed = outcome.signed;
            drop(snapshot);
            if signed {
                managed(limits, &buf, peer, stream).await?;
            }
            continue;
        }
        observe(&outcome, peer, transport, &reply, query_log);
        crate::metrics::global().record_latency(transport, started.elapsed(), 1);
        drop(snapshot);
        write_framed(stream, &reply, limits.idle_timeout).await?;
    }
}

/// Hands `query` to the manager (UPDATE, NOTIFY, a transfer, a signed query) and writes what
/// comes back: several messages for a transfer.
async fn managed<S: tokio::io::AsyncWrite + Unpin>(
    limits: &TcpLimits,
    query: &[u8],
    peer: std::net::IpAddr,
    stream: &mut S,
) -> std::io::Result<()> {
    let Some(manager) = &limits.manager else {
        return Ok(());
    };
    let (manager, query) = (manager.clone(), query.to_vec());
    let replies = tokio::task::spawn_blocking(move || manager.handle(&query, peer, true))
        .await
        .unwrap_or_default();
    for reply in replies {
        write_framed(stream, &reply, limits.idle_timeout).await?;
    }
    Ok(())
}

/// Writes one message with its length before it (RFC 1035 §4.2.2).
async fn write_framed<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    tokio::time::timeout(timeout, stream.write_all(&framed))
        .await
        .map_err(|_| std::io::Error::other("timed out writing a reply"))?
}
