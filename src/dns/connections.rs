//! Who holds the TCP (or TLS) connections, so that no single client can take them all: at most
//! `per_network` open from one network (IPv4 /24, IPv6 /56, as rate limiting counts), and when
//! every one of the `max` is in use a new client is served by closing the connection idle the
//! longest (as Knot's tcp-idle-reset and NSD do), not made to wait for a timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// Why a connection was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Refused at once: its network already holds `per_network` connections.
    NetworkFull,
    /// Closed for a newcomer: it was the longest idle when every connection was in use.
    IdleEvicted,
}

/// The open connections of one transport.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    per_network: usize,
    prefixes: (u8, u8),
    epoch: Instant,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Open>,
    by_network: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Open {
    network: IpAddr,
    activity: Arc<AtomicU64>,
    close: CancellationToken,
}

/// One admitted connection: closed when its token is cancelled (shutdown, or evicted), its
/// place given back when this is dropped.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    connections: Arc<Connections>,
    activity: Arc<AtomicU64>,
    pub close: CancellationToken,
}

impl Admitted {
    /// The connection did something (a message in or out): it is not idle.
    pub fn touch(&self) {
        self.activity.store(self.connections.now_millis(), Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.connections.lock();
        if let Some(open) = table.open.remove(&self.id) {
            table.release(open.network);
        }
    }
}

impl Table {
    fn release(&mut self, network: IpAddr) {
        if let Some(n) = self.by_network.get_mut(&network) {
            *n -= 1;
            if *n == 0 {
                self.by_network.remove(&network);
            }
        }
    }
}

impl Connections {
    pub fn new(max: usize, per_network: usize, prefixes: (u8, u8)) -> Self {
        Self {
            max: max.max(1),
            per_network: per_network.max(1),
            prefixes,
            epoch: Instant::now(),
            table: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The network `peer` is counted in.
    fn network(&self, peer: IpAddr) -> IpAddr {
        match crate::geo::canonical(peer) {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefixes.0.min(32)));
                IpAddr::V4((u32::from(v4) & mask.unwrap_or(0)).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefixes.1.min(128)));
                IpAddr::V6((u128::from(v6) & mask.unwrap_or(0)).into())
            }
        }
    }

    /// Admits a connection from `peer` (closed with `shutdown` too), closing the longest idle
    /// one if every place is taken; or says why it is refused. What was closed is reported to
    /// `closed` (for metrics and logs).
    pub fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        shutdown: &CancellationToken,
        closed: impl Fn(Closed),
    ) -> Result<Admitted, Closed> {
        let network = self.network(peer);
        let now = self.now_millis();
        let mut table = self.lock();
        if table.by_network.get(&network).copied().unwrap_or(0) >= self.per_network {
            closed(Closed::NetworkFull);
            return Err(Closed::NetworkFull);
        }
        if table.open.len() >= self.max {
            let idlest = table
                .open
                .iter()
                .min_by_key(|(_, open)| open.activity.load(Relaxed))
                .map(|(id, _)| *id);
            if let Some(open) = idlest.and_then(|id| table.open.remove(&id)) {
                open.close.cancel();
                table.release(open.network);
                closed(Closed::IdleEvicted);
            }
        }
        table.next += 1;
        let id = table.next;
        let activity = Arc::new(AtomicU64::new(now));
        let close = shutdown.child_token();
        table.open.insert(
            id,
            Open {
                network,
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        *table.by_network.entry(network).or_default() += 1;
        Ok(Admitted {
            id,
            connections: self.clone(),
            activity,
            close,
        })
    }

    /// How many are open.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_capped_and_the_idlest_makes_way() {
        let c = Arc::new(Connections::new(3, 2, (24, 56)));
        let shutdown = CancellationToken::new();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let admit = |s: &str| c.admit(ip(s), &shutdown, |_| {});
        let a = admit("192.0.2.1").unwrap();
        let b = admit("192.0.2.2").unwrap();
        // A third from the same /24: refused.
        assert_eq!(admit("192.0.2.3").unwrap_err(), Closed::NetworkFull);
        std::thread::sleep(std::time::Duration::from_millis(5));
        a.touch();
        let d = admit("198.51.100.1").unwrap();
        // Full: the idlest (b, never touched since) is closed for the newcomer.
        let e = admit("203.0.113.1").unwrap();
        assert!(b.close.is_cancelled() && !a.close.is_cancelled());
        assert_eq!(c.open(), 3);
        drop(b);
        assert_eq!(
            c.open(),
            3,
            "an evicted connection's place is already given"
        );
        // Its network's place is free again.
        let f = admit("192.0.2.4").unwrap();
        assert_eq!(c.open(), 3);
        drop((a, d, e, f));
        assert_eq!(c.open(), 0);
    }
}
