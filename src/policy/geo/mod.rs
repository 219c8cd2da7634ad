//! `geo`: send each client to the nearest datacenter. The client's network is matched against
//! `nets` first (longest prefix), then located with the GeoIP database and matched against the
//! `map` (subdivision, then country, then continent), and otherwise the datacenters are ranked
//! by great-circle distance less their `bias`. Clients that cannot be located get the `default`
//! order. Each datacenter orders its own endpoints with its inner policy.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

mod rank;
mod steer;
#[cfg(test)]
mod tests;

use super::{Asking, Context, Decision, Order, Policy, Strategy};
use crate::geo::GeoDb;
use crate::metrics::PolicyLabel;

pub use rank::{Ranking, Reason};
pub use steer::{Steering, steering_pending};

/// One datacenter of a geo pool, for one address family.
#[derive(Debug)]
pub struct Datacenter {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Where it is on the unit sphere (from latitude and longitude), for ranking.
    pub position: [f64; 3],
    /// Km subtracted from the distance: a positive bias draws clients from farther away.
    pub bias_km: f64,
    /// The pool-level indices of this datacenter's endpoints (of this family).
    pub endpoints: Vec<u32>,
    /// Orders `endpoints` (indices into that list).
    pub inner: Policy,
}

/// Explicit code → datacenter order maps, most specific first.
#[derive(Debug, Clone, Default)]
pub struct GeoMap {
    pub subdivision: HashMap<String, Vec<u16>>,
    pub country: HashMap<String, Vec<u16>>,
    pub continent: HashMap<String, Vec<u16>>,
    /// For located clients that match no key; distance ranking when absent.
    pub default: Option<Vec<u16>>,
}

#[derive(Debug)]
pub struct Geo {
    /// Unique for the process's life (see [`Geo::next_id`]): keys this pool's cached rankings.
    pub id: u64,
    pub datacenters: Vec<Datacenter>,
    /// Longest prefix first.
    pub nets: Vec<(IpNet, Vec<u16>)>,
    pub map: GeoMap,
    /// For clients that cannot be located.
    pub default: Vec<u16>,
    pub max_datacenters: usize,
    /// The prefixes of the sticky inner policies, where some datacenter has one.
    pub sticky: Option<super::sticky::Prefixes>,
    /// The datacenter order of every database network, once [`Geo::prepare_all`] has built it for
    /// the snapshot's database (`steer`). Swapped, not locked: the query path only loads it.
    pub steering: crate::cell::Swappable<Steering>,
}

/// Most datacenters one geo pool may have, so that a decision fits on the stack (and each
/// index in a byte).
pub const MAX_DATACENTERS: usize = 64;

/// Rankings of located clients, per query thread, by (pool id, GeoIP record): ranking costs a
/// great-circle distance per datacenter, and the clients of one record always rank alike.
/// Pools of at most `CACHED_DATACENTERS` datacenters are cached; the map is cleared when full.
const CACHED_DATACENTERS: usize = 16;
const RANKINGS: usize = 1 << 16;
type RankKey = (u64, (u64, usize));
thread_local! {
    static RANKED: std::cell::RefCell<rustc_hash::FxHashMap<RankKey, ([u16; CACHED_DATACENTERS], u8)>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Geo {
    /// A fresh pool id.
    pub fn next_id() -> u64 {
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The decision for `client`: the datacenter order (all of them, best first) and its ECS
    /// scope, from the steering table where it has the client, else with the ranking of
    /// located clients cached per GeoIP record. The query path and `explain` both decide here;
    /// [`Geo::explain`] adds why.
    pub fn decide(&self, client: IpAddr, db: Option<&GeoDb>) -> Decision {
        let n = self.datacenters.len();
        let nets = self.nets.iter().any(|(net, _)| net.contains(&client));
        if !nets && let Some(db) = db {
            let mut order = [0u16; MAX_DATACENTERS];
            if let Some((len, prefix)) = self.steered(client, db, &mut order) {
                return Decision::new(&order[..len], self.scope(client, prefix));
            }
        }
        let located = match db {
            Some(db) if !nets && n <= CACHED_DATACENTERS => db.locate(client),
            _ => {
                let d = self.explain(client, db);
                return Decision::new(d.order(), d.scope);
            }
        };
        let scope = self.scope(client, located.prefix);
        let (Some(location), Some(record)) = (located.location, located.record) else {
            let mut d = Ranking::new(Reason::Unlocated);
            d.fill(&self.default, n);
            return Decision::new(d.order(), scope);
        };
        let key = (self.id, record);
        let cached = RANKED.with(|cache| cache.borrow().get(&key).copied());
        let (ranked, len) = cached.unwrap_or_else(|| {
            let d = self.rank(&location);
            let mut ranked = [0u16; CACHED_DATACENTERS];
            ranked[..d.len].copy_from_slice(d.order());
            RANKED.with(|cache| {
                let mut cache = cache.borrow_mut();
                if cache.len() >= RANKINGS {
                    cache.clear();
                }
                cache.insert(key, (ranked, d.len as u8));
            });
            (ranked, d.len as u8)
        });
        Decision::new(&ranked[..usize::from(len)], scope)
    }

    /// The ECS scope of an answer decided by a network of length `prefix` around `client`: at
    /// least that, and long enough to leave out every more specific `nets` entry nearby, which
    /// would answer differently (RFC 7871 §7.2.1: never wider than correct).
    fn scope(&self, client: IpAddr, prefix: u8) -> u8 {
        let mut scope = prefix;
        for (net, _) in &self.nets {
            if net.prefix_len() <= prefix || net.contains(&client) {
                continue;
            }
            let common = common_prefix(client, net.network());
            if let Some(common) = common
                && common >= prefix
            {
                scope = scope.max((common + 1).min(net.prefix_len()));
            }
        }
        scope
    }

    /// The datacenters that serve, in `order` (a decision's): the first `max_datacenters` that
    /// have a live endpoint. A datacenter with none passes its traffic on.
    pub fn serving<'a>(
        &'a self,
        order: &'a [u8],
        live: &'a dyn Fn(u32) -> bool,
    ) -> impl Iterator<Item = u16> + 'a {
        order
            .iter()
            .map(|&i| u16::from(i))
            .filter(|&i| {
                self.datacenters[usize::from(i)]
                    .endpoints
                    .iter()
                    .any(|&e| live(e))
            })
            .take(self.max_datacenters)
    }

    /// Appends up to `limit` pool endpoint indices: from the serving datacenters of the
    /// decision's order, each ordering its own endpoints with its inner policy for the same
    /// client.
    pub fn order(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        let outer_live = asking.live;
        for dc in self.serving(asking.decision.order(), outer_live) {
            let room = limit.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let dc = &self.datacenters[usize::from(dc)];
            // The inner policy sees this datacenter's own indices; map them to the pool's. A
            // datacenter's endpoints are consecutive in the pool.
            let first = dc.endpoints.first().map_or(0, |&e| e as usize);
            let feedback = asking
                .feedback
                .get(first..first + dc.endpoints.len())
                .unwrap_or_default();
            let live = |i: u32| outer_live(dc.endpoints[i as usize]);
            let decision = dc.inner.strategy().decide(asking.cx);
            let mut inner = Asking {
                decision: &decision,
                cx: asking.cx,
                live: &live,
                rng: asking.rng,
                feedback,
            };
            let start = out.len();
            dc.inner.order_for(&mut inner, room, out);
            for i in &mut out[start..] {
                *i = dc.endpoints[*i as usize];
            }
        }
    }
}

impl Strategy for Geo {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::Geo
    }

    /// Fixed where every datacenter orders its endpoints the same way every time.
    fn fixed(&self) -> bool {
        self.datacenters.iter().all(|dc| dc.inner.fixed())
    }

    /// Without a client it decides as for one it cannot locate. Where a datacenter's inner
    /// policy is sticky, the answer depends on the client's network too.
    fn decide(&self, cx: Option<&Context<'_>>) -> Decision {
        match cx {
            Some(cx) => {
                let mut decision = Geo::decide(self, cx.addr, cx.geo);
                if let Some(sticky) = &self.sticky {
                    decision.scope = decision.scope.max(sticky.of(cx.addr));
                }
                decision
            }
            None => Geo::decide(self, IpAddr::from([0, 0, 0, 0]), None),
        }
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        self.order(asking, limit, out);
    }
}

/// Leading bits two addresses of the same family share.
fn common_prefix(a: IpAddr, b: IpAddr) -> Option<u8> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            Some((u32::from(a) ^ u32::from(b)).leading_zeros().min(32) as u8)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            Some((u128::from(a) ^ u128::from(b)).leading_zeros().min(128) as u8)
        }
        _ => None,
    }
}
