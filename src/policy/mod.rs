//! Pool policies: how a pool orders its endpoints for one answer. One policy per file, dispatched
//! by [`Policy`] in two steps: [`Policy::decide`] (what the order depends on for this client,
//! made once per query by `resolve::find`) and [`Policy::order_for`] (the endpoints, by that
//! decision). Policies only order; health filtering and `max_answers` are applied outside.
//! Weighted policies scale each weight by the endpoint's [`Feedback`] share (latency weights,
//! slow start) where its set is adaptive.

mod all;
mod failover;
pub mod geo;
mod least_load;
mod round_robin;
pub mod sticky;
mod weighted;
mod weighted_random;

/// Endpoint indices in answer order; inline for answers of typical size.
pub type Order = smallvec::SmallVec<[u32; 16]>;

/// A decision's datacenter order as a memo key ([`Decision::memo_key`]): a byte a datacenter
/// (its index + 1, so that orders of different lengths differ), up to `DECIDED_MAX` of them;
/// longer orders are not memoized.
pub type Decided = u64;
const DECIDED_MAX: usize = 8;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::geo::GeoDb;
use crate::health::{Feedback, HealthView};
use crate::metrics::PolicyLabel;

pub use all::All;
pub use failover::Failover;
pub use geo::Geo;
pub use least_load::LeastLoad;
pub use round_robin::{Rotation, RoundRobin};
pub use sticky::Sticky;
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
    /// The same client network gets the same endpoints (weighted rendezvous hashing).
    Sticky,
    /// The least loaded (by reported load, per weight) lead, by the power of two choices.
    LeastLoad,
}

impl PolicyKind {
    /// Whether endpoint weights mean anything to it (and so latency weights and slow start).
    pub fn weighs(self) -> bool {
        matches!(
            self,
            Self::Weighted | Self::WeightedRandom | Self::Sticky | Self::LeastLoad
        )
    }
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
    Sticky(Sticky),
    LeastLoad(LeastLoad),
}

/// A policy's decision for one client: the datacenter order of a geo pool (empty for the
/// others) and the ECS scope it has. On the stack, and small (a byte a datacenter: a pool has
/// at most `MAX_DATACENTERS`): the query path makes and moves one per pool answer.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    order: [u8; geo::MAX_DATACENTERS],
    len: u8,
    /// ECS scope prefix (RFC 7871 §7.2.1): how many bits of the client's address it depended
    /// on; 0 when it did not depend on the client.
    pub scope: u8,
}

impl Decision {
    /// A decision for datacenters in `order` (at most `MAX_DATACENTERS`) with this scope.
    pub fn new(order: &[u16], scope: u8) -> Self {
        let mut d = Self {
            order: [0; geo::MAX_DATACENTERS],
            len: order.len() as u8,
            scope,
        };
        for (to, &from) in d.order.iter_mut().zip(order) {
            *to = from as u8;
        }
        d
    }

    /// The datacenters, best first.
    pub fn order(&self) -> &[u8] {
        &self.order[..usize::from(self.len)]
    }

    /// What a memoized reply of this decision is keyed on, where its policy's order is
    /// [`Policy::fixed`]; `None` where the order is too long to keep inline.
    pub fn memo_key(&self) -> Option<Decided> {
        let order = self.order();
        (order.len() <= DECIDED_MAX).then(|| {
            order
                .iter()
                .fold(0, |key, &dc| key << 8 | (u64::from(dc) + 1))
        })
    }
}

/// Whether encoded replies of a set's answers can be reused (see `dns::memo`), worked out once
/// when the set is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The order is fixed by the decision ([`Policy::fixed`]).
    Fixed,
    /// Answers may be rotations ([`Policy::rotation`]): round-robin, or a geo pool with a
    /// round-robin datacenter.
    Rotated,
    /// Neither: every answer is made afresh.
    Never,
}

/// Who is asking and what is known right now, for policies that depend on it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The ECS address where one was sent and is usable, else the packet's source.
    pub addr: IpAddr,
    pub geo: Option<&'a GeoDb>,
    pub health: &'a HealthView,
}

/// What every policy does, each in its own file; `Policy::strategy` is the one place that
/// dispatches to them.
pub trait Strategy: std::fmt::Debug + Send + Sync {
    /// How the metrics count its answers: the label set names every policy.
    fn label(&self) -> PolicyLabel;

    /// The name zone files, logs and `explain` use: its label's.
    fn name(&self) -> &'static str {
        self.label().name()
    }

    /// Whether the order is fixed by the snapshot and the decision alone (no rotation,
    /// weighted cycle or random draw): what lets `dns::memo` reuse an encoded reply.
    fn fixed(&self) -> bool;

    /// What the order depends on for this client (`None`: no client in particular): the one
    /// place a policy looks at who is asking. Most depend on nobody.
    fn decide(&self, _cx: Option<&Context<'_>>) -> Decision {
        Decision::new(&[], 0)
    }

    /// Appends up to `limit` endpoint indices to `out`, best first, for `asking.decision`.
    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order);
}

/// What a policy orders for.
pub struct Asking<'a, 'c> {
    /// The decision [`Strategy::decide`] made for this client.
    pub decision: &'a Decision,
    /// Who is asking; `None` for a geo datacenter's inner policy.
    pub cx: Option<&'a Context<'c>>,
    /// Which endpoints may be handed out, for policies whose choice depends on it (a geo
    /// datacenter with none live passes its traffic on).
    pub live: &'a dyn Fn(u32) -> bool,
    /// The query thread's RNG, for randomized policies.
    pub rng: &'a mut fastrand::Rng,
    /// What is measured of each endpoint, where the set is adaptive; empty where it is not.
    pub feedback: &'a [Feedback],
}

impl Asking<'_, '_> {
    /// The share of its configured weight endpoint `i` has now (1 outside adaptive sets).
    pub fn share(&self, i: usize) -> f64 {
        self.feedback.get(i).map_or(1.0, |f| f64::from(f.share))
    }

    /// Endpoint `i`'s current load, if it has one.
    pub fn load(&self, i: usize) -> Option<f32> {
        self.feedback.get(i).and_then(|f| f.load)
    }

    /// Whether some endpoint's weight is scaled down now.
    pub fn scaled(&self) -> bool {
        self.feedback.iter().any(|f| f.share < 1.0)
    }
}

/// What a flat policy is built from: its endpoints' addresses and weights, in configured
/// order, and the pool's sticky prefixes.
#[derive(Debug, Clone, Copy)]
pub struct Members<'a> {
    pub addresses: &'a [IpAddr],
    /// Each in `1..=MAX_WEIGHT`.
    pub weights: &'a [u32],
    pub sticky: sticky::Prefixes,
}

impl Policy {
    /// Builds a flat policy over `members`. `Geo` and `Failover` pools are built from their
    /// datacenters and tiers instead (see `zone::pool`).
    pub fn new(kind: PolicyKind, members: Members<'_>) -> Self {
        let weights = members.weights;
        match kind {
            PolicyKind::Geo | PolicyKind::Failover => {
                unreachable!("geo and failover pools are built from their datacenters and tiers")
            }
            PolicyKind::RoundRobin => Self::RoundRobin(RoundRobin::new(weights.len())),
            PolicyKind::Weighted => Self::Weighted(Weighted::new(weights)),
            PolicyKind::WeightedRandom => Self::WeightedRandom(WeightedRandom::new(weights)),
            PolicyKind::All => Self::All(All::new(weights.len())),
            PolicyKind::Sticky => {
                Self::Sticky(Sticky::new(members.addresses, weights, members.sticky))
            }
            PolicyKind::LeastLoad => Self::LeastLoad(LeastLoad::new(weights)),
        }
    }

    /// The one dispatch to the policies.
    fn strategy(&self) -> &dyn Strategy {
        match self {
            Self::RoundRobin(p) => p,
            Self::Weighted(p) => p,
            Self::WeightedRandom(p) => p,
            Self::All(p) => p,
            Self::Geo(p) => &**p,
            Self::Failover(p) => p,
            Self::Sticky(p) => p,
            Self::LeastLoad(p) => p,
        }
    }

    /// The decision for this client, made once per query (`resolve::find`). Within one
    /// snapshot, equal fixed decisions give equal orders.
    pub fn decide(&self, cx: &Context<'_>) -> Decision {
        self.strategy().decide(Some(cx))
    }

    /// Appends up to `limit` endpoint indices to `out`, best first, for `asking`.
    pub fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        self.strategy().order_for(asking, limit, out);
    }

    /// Whether the order is fixed by the snapshot and the decision alone (no rotation,
    /// weighted cycle or random draw): equal decisions then give equal answers.
    pub fn fixed(&self) -> bool {
        self.strategy().fixed()
    }

    pub fn name(&self) -> &'static str {
        self.strategy().name()
    }

    /// Whether each client gets one order from it, within a snapshot: no rotation, cycle or
    /// draw (a sticky pool's order is its client network's; a geo pool's is its client's
    /// datacenters', each ordered so).
    pub fn per_client(&self) -> bool {
        match self {
            Self::Sticky(_) => true,
            Self::Geo(geo) => geo.datacenters.iter().all(|dc| dc.inner.per_client()),
            other => other.fixed(),
        }
    }

    /// Where every answer for `decision` is a [`Rotation`]: a round-robin set, or a geo pool
    /// whose one serving datacenter is round-robin, with every endpoint live (`live`; `None`: all
    /// are) and no more than `max_answers`. Does not move the rotation on.
    pub fn rotation(
        &self,
        decision: &Decision,
        live: Option<&dyn Fn(u32) -> bool>,
        max_answers: usize,
    ) -> Option<Rotation<'_>> {
        let rotation = match self {
            Self::Geo(geo) => {
                let mut serving = geo.serving(decision.order(), live.unwrap_or(&|_| true));
                let dc = usize::from(serving.next()?);
                if serving.next().is_some() {
                    return None;
                }
                self.rotation_of(dc)
                    .filter(|r| r.n == geo.datacenters[dc].endpoints.len())?
            }
            _ => self.rotation_of(0)?,
        };
        let (first, n) = (rotation.first, rotation.n);
        let all_live = live.is_none_or(|live| (first..first + n as u32).all(live));
        (n >= 2 && n <= max_answers && all_live).then_some(rotation)
    }

    /// The rotation of the round-robin set, or of a geo pool's round-robin `datacenter`,
    /// whether or not answers are rotations now: what a memoized rotating reply moves on (its
    /// memo stamp and key vouch that [`Policy::rotation`] found this one when it was kept).
    pub fn rotation_of(&self, datacenter: usize) -> Option<Rotation<'_>> {
        match self {
            Self::RoundRobin(rr) => Some(Rotation {
                first: 0,
                n: rr.n,
                policy: rr,
            }),
            Self::Geo(geo) => {
                let dc = geo.datacenters.get(datacenter)?;
                let Self::RoundRobin(rr) = &dc.inner else {
                    return None;
                };
                // A datacenter's endpoints are consecutive in the pool (see `Geo::order`).
                Some(Rotation {
                    first: *dc.endpoints.first()?,
                    n: rr.n,
                    policy: rr,
                })
            }
            _ => None,
        }
    }

    /// How replies of this policy's answers may be reused (see `dns::memo`).
    pub fn reuse(&self) -> Reuse {
        let rotates = |p: &Policy| matches!(p, Self::RoundRobin(rr) if rr.n > 1);
        match self {
            _ if self.fixed() => Reuse::Fixed,
            Self::Geo(geo) if geo.datacenters.iter().any(|dc| rotates(&dc.inner)) => Reuse::Rotated,
            other if rotates(other) => Reuse::Rotated,
            _ => Reuse::Never,
        }
    }

    /// How the metrics count answers of this policy.
    pub fn label(&self) -> PolicyLabel {
        self.strategy().label()
    }
}

/// `start, start+1, …, n-1, 0, …, start-1`, at most `limit` of them: the rotation shared by
/// round-robin and by the tail of a weighted answer.
fn rotated(n: usize, start: usize, limit: usize, out: &mut Order) {
    out.extend((start..n).chain(0..start).take(limit).map(|i| i as u32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_keys_tell_every_short_order_apart_and_long_ones_have_none() {
        let orders: [&[u16]; 7] = [&[], &[0], &[1], &[0, 1], &[1, 0], &[0, 0], &[63; 8]];
        let keys: Vec<Decided> = orders
            .iter()
            .map(|o| Decision::new(o, 0).memo_key().unwrap())
            .collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), orders.len(), "{keys:?}");
        assert_eq!(Decision::new(&[1; 9], 0).memo_key(), None);
    }
}
