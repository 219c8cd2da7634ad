//! `weighted_random`: a random order drawn without replacement, each draw in proportion to the
//! weights still in the urn.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;

#[derive(Debug)]
pub struct WeightedRandom {
    pub(super) weights: Box<[u32]>,
    total: u64,
}

impl WeightedRandom {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.into(),
            total: weights.iter().map(|&w| u64::from(w)).sum(),
        }
    }

    pub fn order(&self, rng: &mut fastrand::Rng, limit: usize, out: &mut Order) {
        let start = out.len();
        out.extend(0..self.weights.len() as u32);
        let drawn = &mut out[start..];
        let mut remaining = self.total;
        for k in 0..drawn.len().min(limit) {
            if remaining == 0 {
                break;
            }
            let mut ticket = rng.u64(0..remaining);
            let mut pick = k;
            for (j, &idx) in drawn.iter().enumerate().skip(k) {
                let w = u64::from(self.weights[idx as usize]);
                if ticket < w {
                    pick = j;
                    break;
                }
                ticket -= w;
            }
            drawn.swap(k, pick);
            remaining -= u64::from(self.weights[drawn[k] as usize]);
        }
        out.truncate(start + limit.min(self.weights.len()));
    }

    /// [`WeightedRandom::order`] with each weight scaled by `share`.
    fn order_scaled(
        &self,
        share: &dyn Fn(usize) -> f64,
        rng: &mut fastrand::Rng,
        limit: usize,
        out: &mut Order,
    ) {
        let start = out.len();
        let mut urn: smallvec::SmallVec<[(f64, u32); 16]> = (0..self.weights.len())
            .map(|i| (f64::from(self.weights[i]) * share(i), i as u32))
            .collect();
        for _ in 0..urn.len().min(limit) {
            let total: f64 = urn.iter().map(|u| u.0).sum();
            let mut ticket = rng.f64() * total;
            let pick = urn
                .iter()
                .position(|u| {
                    ticket -= u.0;
                    ticket < 0.0
                })
                .unwrap_or(urn.len() - 1);
            out.push(urn.remove(pick).1);
        }
        debug_assert!(out.len() - start <= limit);
    }
}

impl Strategy for WeightedRandom {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::WeightedRandom
    }

    fn fixed(&self) -> bool {
        self.weights.len() <= 1
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        if asking.scaled() {
            let feedback = asking.feedback;
            let share = |i: usize| feedback.get(i).map_or(1.0, |f| f64::from(f.share));
            self.order_scaled(&share, asking.rng, limit, out);
        } else {
            self.order(asking.rng, limit, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_appears_once() {
        let p = WeightedRandom::new(&[1, 2, 3, 4]);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100 {
            let mut out = Order::new();
            p.order(&mut rng, usize::MAX, &mut out);
            let mut sorted = out.clone();
            sorted.sort();
            assert_eq!(sorted[..], [0, 1, 2, 3]);
        }
    }

    #[test]
    fn scaled_weights_lead_in_proportion() {
        let p = WeightedRandom::new(&[1, 1]);
        let mut rng = fastrand::Rng::with_seed(3);
        let share = |i: usize| if i == 0 { 1.0 } else { 0.1 };
        let n = 50_000;
        let mut slow = 0;
        for _ in 0..n {
            let mut out = Order::new();
            p.order_scaled(&share, &mut rng, usize::MAX, &mut out);
            assert_eq!(out.len(), 2);
            slow += usize::from(out[0] == 1);
        }
        let s = slow as f64 / n as f64;
        assert!((s - 0.1 / 1.1).abs() < 0.01, "{s}");
    }

    #[test]
    fn first_pick_follows_weights() {
        let p = WeightedRandom::new(&[5, 1]);
        let mut rng = fastrand::Rng::with_seed(42);
        let n = 60_000;
        let mut heavy = 0;
        for _ in 0..n {
            let mut out = Order::new();
            p.order(&mut rng, 1, &mut out);
            assert_eq!(out.len(), 1);
            heavy += usize::from(out[0] == 0);
        }
        let share = heavy as f64 / n as f64;
        assert!((share - 5.0 / 6.0).abs() < 0.01, "share {share}");
    }
}
