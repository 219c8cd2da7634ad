//! Pool policies: how a pool orders its endpoints for one answer. One policy per file, dispatched
//! by [`Policy`]. Policies only order; health filtering and `max_answers` are applied outside.

mod all;
mod round_robin;
mod weighted;
mod weighted_random;

use serde::{Deserialize, Serialize};

pub use all::All;
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
}

impl Policy {
    /// Builds the policy for endpoints with these weights (each in `1..=MAX_WEIGHT`).
    pub fn new(kind: PolicyKind, weights: &[u32]) -> Self {
        match kind {
            PolicyKind::RoundRobin => Self::RoundRobin(RoundRobin::new(weights.len())),
            PolicyKind::Weighted => Self::Weighted(Weighted::new(weights)),
            PolicyKind::WeightedRandom => Self::WeightedRandom(WeightedRandom::new(weights)),
            PolicyKind::All => Self::All(All::new(weights.len())),
        }
    }

    /// Appends up to `limit` endpoint indices to `out`, best first.
    pub fn order(&self, rng: &mut fastrand::Rng, limit: usize, out: &mut Vec<u32>) {
        match self {
            Self::RoundRobin(p) => p.order(limit, out),
            Self::Weighted(p) => p.order(limit, out),
            Self::WeightedRandom(p) => p.order(rng, limit, out),
            Self::All(p) => p.order(limit, out),
        }
    }
}

/// `start, start+1, …, n-1, 0, …, start-1`, at most `limit` of them: the rotation shared by
/// round-robin and by the tail of a weighted answer.
fn rotated(n: usize, start: usize, limit: usize, out: &mut Vec<u32>) {
    out.extend((start..n).chain(0..start).take(limit).map(|i| i as u32));
}
