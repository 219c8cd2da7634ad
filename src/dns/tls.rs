//! DNS over TLS (RFC 7858): TLS (rustls) around the TCP listener's message loop, so that the
//! answers are byte-for-byte those over TCP, with TCP's limits — connections, idle timeout
//! (which also bounds the handshake), pipelined messages. The certificate and key are read
//! again on SIGHUP; a pair that does not load is refused and the old one serves on.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::querylog::QueryLog;
use super::respond::Transport;
use super::tcp::{TcpLimits, accept, connection};
use crate::config::TlsConfig;
use crate::snapshot::Current;

/// The acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    // RFC 7858 §3.2 (and RFC 8310): the ALPN of DNS over TLS.
    config.alpn_protocols = vec![b"dot".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Re-reads the certificate and key on every SIGHUP until `shutdown`.
pub async fn reload_on_hangup(
    config: TlsConfig,
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        match acceptor_for(&config) {
            Ok(fresh) => {
                acceptor.store(Arc::new(fresh));
                tracing::info!("DNS over TLS: certificate reloaded");
            }
            Err(error) => tracing::error!(
                "DNS over TLS: certificate reload refused, the old one serves on: {error}"
            ),
        }
    }
}

pub fn acceptor_for(config: &TlsConfig) -> Result<TlsAcceptor, String> {
    acceptor(&config.cert_file, &config.key_file)
}

/// Accepts TLS connections on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
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
        move |stream, peer, admitted| {
            let acceptor = acceptor.load_full();
            let (state, log) = (state.clone(), query_log.clone());
            let limits = limits.clone();
            async move {
                // A client that does not finish its handshake within the idle timeout is dropped.
                let handshake = tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream));
                let mut stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return tracing::debug!(%error, %peer, "tls handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "tls handshake timed out"),
                };
                let served = connection(
                    &mut stream,
                    peer.ip(),
                    Transport::Tls,
                    &state,
                    &limits,
                    log.as_deref(),
                    &admitted,
                );
                if let Err(error) = served.await {
                    tracing::debug!(%error, %peer, "tls connection ended");
                }
            }
        },
    )
    .await;
}
