//! `failover`: ordered tiers of endpoints. Only the tier in charge answers — its backups never
//! ride along behind it, so resolvers that shuffle an answer do not send traffic to them; which
//! tier that is (first live tier, or with `preempt = false` the one that took over until it
//! fails) is decided when health changes, not per query, and read from the health view.

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
    /// The endpoints of the tier that answers: the active tier if it has a live endpoint, else
    /// the first tier (from tier 0) that has one; where none has, the active tier's, for the
    /// pool's all-down rule.
    pub fn order(&self, active: u16, live: &dyn Fn(u32) -> bool, limit: usize, out: &mut Order) {
        let Some(last) = self.tiers.len().checked_sub(1) else {
            return;
        };
        let active = usize::from(active).min(last);
        let has_live = |t: &usize| self.tiers[*t].iter().any(|&i| live(i));
        let tier = std::iter::once(active)
            .chain(0..self.tiers.len())
            .find(has_live)
            .unwrap_or(active);
        out.extend(self.tiers[tier].iter().copied().take(limit));
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
        self.order(active, asking.live, limit, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answering_tier_is_handed_out() {
        let f = Failover {
            slot: Some(0),
            preempt: true,
            tiers: vec![vec![0], vec![1, 2], vec![3]],
        };
        let order = |active: u16, dead: &[u32], limit: usize| {
            let mut out = Order::new();
            f.order(active, &|i| !dead.contains(&i), limit, &mut out);
            out.to_vec()
        };
        assert_eq!(order(0, &[], usize::MAX), [0]);
        assert_eq!(order(1, &[], usize::MAX), [1, 2]);
        assert_eq!(order(1, &[], 1), [1]);
        // The active tier dead: the first tier with a live endpoint, from the top.
        assert_eq!(order(0, &[0], usize::MAX), [1, 2]);
        assert_eq!(order(1, &[1, 2], usize::MAX), [0]);
        assert_eq!(order(0, &[0, 1, 2], usize::MAX), [3]);
        // None live: the active tier's, for the all-down rule.
        assert_eq!(order(2, &[0, 1, 2, 3], usize::MAX), [3]);
    }
}
