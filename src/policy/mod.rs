//! Pool policies: how a pool orders its endpoints for one answer. One policy per file, dispatched
//! by [`Policy`]. Policies only order; health filtering and `max_answers` are applied outside.

mod all;
mod failover;
pub mod geo;
mod round_robin;
mod weighted;
mod weighted_random;

/// Endpoint indices in answer order; inline for answers of typical size.
pub type Order = smallvec::SmallVec<[u32; 16]>;

/// A geo pool's datacenter order as [`Policy::decision`] gives it; longer orders are not
/// memoized (they would not stay inline).
pub type Decided = smallvec::SmallVec<[u16; DECIDED_INLINE]>;
const DECIDED_INLINE: usize = 8;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::geo::GeoDb;
use crate::health::HealthView;

pub use all::All;
pub use failover::Failover;
pub use geo::Geo;
pub use round_robin::RoundRobin;
pub use weighted::Weighted;
pub use weighted_random::WeightedRandom;

/// The policy names accepted in zone files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Rotate the order by one on every answer.
    #[default]
    RoundRobin,
    /// Smooth weighted round-robin (nginx).
    Weighted,
    /// Random order, drawn without replacement in proportion to weight.
    WeightedRandom,
    /// The configured order, always.
    All,
    /// Nearest datacenter by GeoIP, with `nets` and `map` overrides.
    Geo,
    /// Ordered tiers: the first tier with an endpoint up answers.
    Failover,
}

/// Largest weight one endpoint may have; keeps the smooth-WRR cycle small.
pub const MAX_WEIGHT: u32 = 1000;

/// A built policy over `n` endpoints (indices `0..n` in configured order).
#[derive(Debug)]
pub enum Policy {
    RoundRobin(RoundRobin),
    Weighted(Weighted),
    WeightedRandom(WeightedRandom),
    All(All),
    /// Boxed: far larger than the flat policies.
    Geo(Box<Geo>),
    Failover(Failover),
}

/// Who is asking and what is known right now, for policies that depend on it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The ECS address where one was sent and is usable, else the packet's source.
    pub addr: IpAddr,
    pub geo: Option<&'a GeoDb>,
    pub health: &'a HealthView,
}

impl Policy {
    /// Builds a flat policy for endpoints with these weights (each in `1..=MAX_WEIGHT`).
    /// `Geo` pools are built from their datacenters instead (see `zone::build`).
    pub fn new(kind: PolicyKind, weights: &[u32]) -> Self {
        match kind {
            PolicyKind::Geo | PolicyKind::Failover => {
                unreachable!("geo and failover pools are built from their datacenters and tiers")
            }
            PolicyKind::RoundRobin => Self::RoundRobin(RoundRobin::new(weights.len())),
            PolicyKind::Weighted => Self::Weighted(Weighted::new(weights)),
            PolicyKind::WeightedRandom => Self::WeightedRandom(WeightedRandom::new(weights)),
            PolicyKind::All => Self::All(All::new(weights.len())),
        }
    }

    /// Appends up to `limit` endpoint indices to `out`, best first.
    pub fn order(&self, rng: &mut fastrand::Rng, limit: usize, out: &mut Order) {
        match self {
            Self::RoundRobin(p) => p.order(limit, out),
            Self::Weighted(p) => p.order(limit, out),
            Self::WeightedRandom(p) => p.order(rng, limit, out),
            Self::All(p) => p.order(limit, out),
            // Without a client the geo pool answers as for one it cannot locate.
            Self::Geo(p) => {
                let nowhere = IpAddr::from([0, 0, 0, 0]);
                p.order(nowhere, None, &|_| true, rng, limit, out);
            }
            Self::Failover(p) => p.order(0, limit, out),
        }
    }

    /// Like [`Policy::order`], for one query. `live` tells which endpoints may be handed out,
    /// for policies whose choice depends on it (a geo datacenter with none live passes its
    /// traffic on). Returns the ECS scope prefix: how much of the client's address the order
    /// depended on (0 for every policy but `geo`).
    pub fn order_for(
        &self,
        cx: &Context<'_>,
        live: &dyn Fn(u32) -> bool,
        rng: &mut fastrand::Rng,
        limit: usize,
        out: &mut Order,
    ) -> u8 {
        match self {
            Self::Geo(p) => p.order(cx.addr, cx.geo, live, rng, limit, out),
            Self::Failover(p) => {
                let active = p
                    .slot
                    .and_then(|s| cx.health.active_tier.get(s as usize).copied())
                    .unwrap_or(0);
                p.order(active, limit, out);
                0
            }
            flat => {
                flat.order(rng, limit, out);
                0
            }
        }
    }

    /// What an answer of this policy depends on besides the snapshot: nothing for a fixed
    /// order, the datacenter order for `geo` (with its ECS scope). `None` when it also depends
    /// on a rotation, a weighted cycle or a random draw. Within one snapshot, equal decisions
    /// give equal orders: what lets `dns::memo` reuse an encoded reply.
    pub fn decision(&self, cx: &Context<'_>) -> Option<(Decided, u8)> {
        match self {
            Self::Geo(p) if self.fixed() => {
                let (order, len, scope) = p.decide_order(cx.addr, cx.geo);
                order
                    .get(..len)
                    .filter(|o| o.len() <= DECIDED_INLINE)
                    .map(|o| (Decided::from_slice(o), scope))
            }
            _ if self.fixed() => Some((Decided::new(), 0)),
            _ => None,
        }
    }

    /// Whether the order is fixed by the snapshot (and, for `geo`, the client) alone.
    fn fixed(&self) -> bool {
        match self {
            Self::All(_) | Self::Failover(_) => true,
            Self::RoundRobin(p) => p.n <= 1,
            Self::Weighted(p) => p.n <= 1,
            Self::WeightedRandom(p) => p.weights.len() <= 1,
            Self::Geo(p) => p.datacenters.iter().all(|dc| dc.inner.fixed()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin(_) => "round_robin",
            Self::Weighted(_) => "weighted",
            Self::WeightedRandom(_) => "weighted_random",
            Self::All(_) => "all",
            Self::Geo(_) => "geo",
            Self::Failover(_) => "failover",
        }
    }
}

/// `start, start+1, …, n-1, 0, …, start-1`, at most `limit` of them: the rotation shared by
/// round-robin and by the tail of a weighted answer.
fn rotated(n: usize, start: usize, limit: usize, out: &mut Order) {
    out.extend((start..n).chain(0..start).take(limit).map(|i| i as u32));
}
