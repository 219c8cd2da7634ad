//! DNS over the network: the sockets (`listen` binds them; `udp`, `tcp`, `batch`, and `tls`:
//! DNS over TLS around the TCP message loop), reading a request (`request`, `ecs`),
//! [`respond`] (the stages of one answer, a page) and what every reply shares (`reply`: size
//! limit, OPT record), the fast reply encoder (`wire`), hickory's reference encoder for errors
//! (`reference`), a UDP worker's reply memo (`memo`), and the query log (`querylog`). Off the
//! query path, [`manage`] answers the messages that manage zones: `update` (RFC 2136),
//! `transfer` (AXFR/IXFR, from `history`), NOTIFY in; `notify` sends NOTIFY out; `tsig` signs
//! and checks them all.
//!
//! We own the UDP and TCP loops rather than use hickory-server's `Server`: its response path
//! accepts only its own `MessageResponse` and spawns a task per datagram, while one encoder of
//! ours gives byte-identical replies over both transports, controls truncation and keeps the
//! query path free of per-request machinery (see shared/notes/fast-path.md). hickory-proto does
//! all wire parsing and encoding.

mod batch;
mod connections;
pub mod cookies;
pub mod ecs;
pub mod history;
mod listen;
pub mod manage;
pub mod memo;
pub mod notify;
pub mod options;
pub mod querylog;
pub mod ratelimit;
mod reference;
mod reply;
pub mod request;
pub mod respond;
mod sign;
mod tcp;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod transfer;
pub mod tsig;
mod udp;
mod update;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Steering};
use crate::snapshot::Current;
use querylog::QueryLog;
use respond::{Outcome, Settings, Transport};

pub use tcp::TcpLimits;

/// Sockets bound for every listen address: UDP and TCP on the same port, a UDP socket for
/// each worker and as many TCP listeners (see `listen`).
pub struct Listeners {
    /// Per listen address, its workers' sockets.
    udp: Vec<Vec<std::net::UdpSocket>>,
    tcp: Vec<TcpListener>,
    steering: Steering,
    /// DNS over TLS, with its certificate.
    tls: Option<(
        Vec<TcpListener>,
        Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>,
    )>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.as_ref().map(|(l, _)| l))
            .finish()
    }
}

impl Listeners {
    /// Binds UDP and TCP on each address, for `workers` workers. Port 0 picks a port free for
    /// both.
    pub fn bind(addrs: &[SocketAddr], workers: usize, steering: Steering) -> io::Result<Self> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for &addr in addrs {
            let bound = listen::bind(addr, workers, steering)?;
            // Each socket's counter shows in the metrics from the start.
            if let Some(first) = bound.udp.first() {
                let listen = first.local_addr()?.to_string();
                for index in 0..bound.udp.len() {
                    crate::metrics::global().udp_socket(&listen, index);
                }
            }
            udp.push(bound.udp);
            for listener in bound.tcp {
                tcp.push(TcpListener::from_std(listener)?);
            }
        }
        Ok(Self {
            udp,
            tcp,
            steering,
            tls: None,
        })
    }

    /// Binds DNS over TLS as `config` says, with its certificate loaded.
    pub async fn bind_tls(&mut self, config: &crate::config::TlsConfig) -> io::Result<()> {
        let acceptor = tls::acceptor_for(config).map_err(io::Error::other)?;
        let mut listeners = Vec::new();
        for &addr in &config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
            tracing::info!("DNS over TLS on {}", listener.local_addr()?);
            listeners.push(listener);
        }
        let acceptor = Arc::new(arc_swap::ArcSwap::from_pointee(acceptor));
        self.tls = Some((listeners, acceptor));
        Ok(())
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|group| group.first()?.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` is cancelled; UPDATE, NOTIFY and transfers go to `manager`. A
    /// listener that fails (a panic) stops the server, and is the error returned.
    pub async fn serve(
        self,
        state: Arc<Current>,
        config: &Config,
        query_log: Option<Arc<QueryLog>>,
        manager: Option<Arc<manage::Manager>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let mut tasks = JoinSet::new();
        let settings = Arc::new(Settings {
            udp_payload: config.udp_payload,
            nsid: config.nsid.clone(),
            cookies: config
                .cookies
                .map(|c| cookies::Cookies::new(c.secret, c.staging)),
            rate_limit: config.rate_limit.clone().map(ratelimit::RateLimiter::new),
        });
        for group in self.udp {
            let Some(first) = group.first() else {
                continue;
            };
            let listen = first
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            // UPDATE and NOTIFY datagrams, handed over by the workers, answered one by one.
            let managed = match (&manager, first.try_clone()) {
                (Some(manager), Ok(reply_socket)) => {
                    let (sender, receiver) = tokio::sync::mpsc::channel(MANAGED_QUEUE);
                    tasks.spawn(udp::manage(reply_socket, receiver, manager.clone()));
                    Some(sender)
                }
                _ => None,
            };
            let workers = group.len();
            for (index, socket) in group.into_iter().enumerate() {
                let worker = udp::Worker {
                    datagrams: crate::metrics::global().udp_socket(&listen, index),
                    pin: (self.steering == Steering::Cpu).then_some((index, workers)),
                    state: state.clone(),
                    settings: settings.clone(),
                    query_log: query_log.clone(),
                    managed: managed.clone(),
                };
                let shutdown = shutdown.clone();
                tasks.spawn_blocking(move || udp::serve(socket, worker, shutdown));
            }
        }
        let connections = || {
            Arc::new(connections::Connections::new(
                config.tcp_max_connections,
                config.tcp_max_per_network,
                (24, 56),
            ))
        };
        let limits = TcpLimits {
            idle_timeout: config.tcp_idle_timeout,
            connections: connections(),
            settings,
            manager,
        };
        for listener in self.tcp {
            tasks.spawn(tcp::serve(
                listener,
                state.clone(),
                limits.clone(),
                query_log.clone(),
                shutdown.clone(),
            ));
        }
        if let (Some((listeners, acceptor)), Some(tls)) = (self.tls, &config.tls) {
            tasks.spawn(tls::reload_on_hangup(
                tls.clone(),
                acceptor.clone(),
                shutdown.clone(),
            ));
            // As many TLS connections again, apart from the TCP ones.
            let limits = TcpLimits {
                connections: connections(),
                ..limits.clone()
            };
            for listener in listeners {
                tasks.spawn(tls::serve(
                    listener,
                    acceptor.clone(),
                    state.clone(),
                    limits.clone(),
                    query_log.clone(),
                    shutdown.clone(),
                ));
            }
        }
        let mut failed = Ok(());
        while let Some(done) = tasks.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "listener task failed");
                failed = Err(std::io::Error::other(format!("a listener failed: {error}")));
                shutdown.cancel();
            }
        }
        failed
    }
}

/// UPDATE and NOTIFY datagrams waiting at most (more are dropped, as a busy server drops
/// queries).
const MANAGED_QUEUE: usize = 256;

/// After a reply is sent: count it, and offer it to the query log. (Its latency is recorded
/// by the listener: per batch for UDP.)
fn observe(
    outcome: &Outcome<'_>,
    source: std::net::IpAddr,
    transport: Transport,
    reply: &[u8],
    query_log: Option<&QueryLog>,
) {
    crate::metrics::global().record_query(&outcome.labels(), transport);
    if let Some(log) = query_log {
        log.offer(outcome, source, transport, reply);
    }
}
