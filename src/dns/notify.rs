//! NOTIFY out (RFC 1996): when a zone's serial changes, its change goes into the IXFR history,
//! and each configured secondary is told, over UDP, signed with `[transfer] notify_key` if one
//! is set, and told again (1, 2, 4, 8 s apart) until it answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio_util::sync::CancellationToken;

use super::history::History;
use super::tsig;
use crate::config::{TransferConfig, TsigConfig};
use crate::snapshot::Current;

/// How often the served serials are looked at.
const WATCH: Duration = Duration::from_millis(200);
/// Tries per secondary and change (RFC 1996 §3.6: a few, spaced out).
const TRIES: u32 = 5;

/// Follows the zones' serials until `shutdown`: each change goes into `history` (for IXFR),
/// then NOTIFY is sent for it.
pub async fn run_watch(
    current: Arc<Current>,
    history: Arc<History>,
    transfer: TransferConfig,
    keys: Vec<TsigConfig>,
    shutdown: CancellationToken,
) {
    // Only a server that transfers zones keeps their history.
    let keep_history = !transfer.allow.is_empty()
        || keys.iter().any(|k| {
            k.operations
                .contains(&crate::config::TsigOperation::Transfer)
        });
    if !keep_history && transfer.notify.is_empty() {
        return;
    }
    let key = transfer.notify_key.as_ref().and_then(|name| {
        let config = keys.iter().find(|k| &k.name == name)?;
        Some(Arc::new(tsig::Key::new(config)))
    });
    let mut known: HashMap<Name, u32> = served_serials(&current);
    let mut tick = tokio::time::interval(WATCH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if keep_history {
            history.observe(&current.load());
        }
        let now = served_serials(&current);
        for (origin, serial) in &now {
            if known.get(origin) == Some(serial) {
                continue;
            }
            for &secondary in &transfer.notify {
                let (origin, key) = (origin.clone(), key.clone());
                tokio::spawn(notify(origin, *serial, secondary, key));
            }
        }
        known = now;
    }
}

fn served_serials(current: &Current) -> HashMap<Name, u32> {
    let snapshot = current.load();
    snapshot
        .zones
        .iter()
        .map(|z| (z.origin.clone(), z.serial()))
        .collect()
}

/// Tells `secondary` that `origin` is at `serial`, until it answers or the tries run out.
async fn notify(origin: Name, serial: u32, secondary: SocketAddr, key: Option<Arc<tsig::Key>>) {
    let bind: SocketAddr = match secondary {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
        return;
    };
    let mut wait = Duration::from_secs(1);
    for _ in 0..TRIES {
        let id = fastrand::u16(..);
        let Some(message) = message(&origin, id, key.as_deref()) else {
            return;
        };
        if socket.send_to(&message, secondary).await.is_ok() {
            let mut buf = [0u8; 4096];
            let answered = tokio::time::timeout(wait, async {
                loop {
                    match socket.recv_from(&mut buf).await {
                        Ok((n, from))
                            if from == secondary && n >= 4 && buf[..2] == id.to_be_bytes() =>
                        {
                            return buf[3] & 0x0f;
                        }
                        Ok(_) => continue,
                        Err(_) => return 0xff,
                    }
                }
            });
            match answered.await {
                Ok(0) => {
                    tracing::info!("NOTIFY {origin} serial {serial} to {secondary}: acknowledged");
                    return;
                }
                Ok(rcode) => {
                    tracing::warn!("NOTIFY {origin} to {secondary}: answered with rcode {rcode}");
                    return;
                }
                Err(_) => {}
            }
        }
        wait *= 2;
    }
    tracing::warn!("NOTIFY {origin} serial {serial} to {secondary}: no answer after {TRIES} tries");
}

/// A NOTIFY for `origin` (RFC 1996 §3.7: AA, the zone's SOA as the question), signed with
/// `key` if given.
fn message(origin: &Name, id: u16, key: Option<&tsig::Key>) -> Option<Vec<u8>> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message
        .queries
        .push(Query::query(origin.clone(), RecordType::SOA));
    let mut bytes = message.to_vec().ok()?;
    if let Some(key) = key {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        tsig::Signer::request(key).sign(&mut bytes, now, 0);
    }
    Some(bytes)
}
