//! `failover`: ordered tiers of endpoints. The tier in charge answers; which one that is (first
//! live tier, or with `preempt = false` the one that took over until it fails) is decided when
//! health changes, not per query, and read from the health view.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;

#[derive(Debug)]
pub struct Failover {
    /// Index of this set in the health view's `active_tier`; assigned across all zones.
    pub slot: Option<u32>,
    pub preempt: bool,
    /// Endpoint indices per tier, tier 0 first.
    pub tiers: Vec<Vec<u32>>,
}

impl Failover {
    /// The active tier's endpoints, then the other tiers' in tier order as a last resort.
    pub fn order(&self, active: u16, limit: usize, out: &mut Order) {
        let active = (active as usize).min(self.tiers.len().saturating_sub(1));
        let rest = (0..self.tiers.len()).filter(|&t| t != active);
        let all = std::iter::once(active).chain(rest);
        out.extend(all.flat_map(|t| self.tiers[t].iter().copied()).take(limit));
    }
}

impl Strategy for Failover {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::Failover
    }

    fn fixed(&self) -> bool {
        true
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        // The active tier is the health view's (tier 0 for an inner policy, which has none).
        let active = asking
            .cx
            .zip(self.slot)
            .and_then(|(cx, s)| cx.health.active_tier.get(s as usize).copied())
            .unwrap_or(0);
        self.order(active, limit, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_tier_leads() {
        let f = Failover {
            slot: Some(0),
            preempt: true,
            tiers: vec![vec![0], vec![1, 2], vec![3]],
        };
        let mut out = Order::new();
        f.order(1, usize::MAX, &mut out);
        assert_eq!(out[..], [1, 2, 0, 3]);
        out.clear();
        f.order(0, 2, &mut out);
        assert_eq!(out[..], [0, 1]);
    }
}
