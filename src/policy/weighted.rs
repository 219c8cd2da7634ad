//! `weighted`: smooth weighted round-robin as nginx does it. Every endpoint's current weight
//! grows by its weight, the largest is picked and loses the total. This spreads a heavy
//! endpoint's turns evenly instead of in bursts.
//!
//! The picks repeat with a period of the (gcd-reduced) total weight, so the whole cycle is
//! computed once when the zone is built; an answer is then one atomic step through it, with
//! no lock on the query path and exactly the weights over every full cycle.
//!
//! While some weight is scaled down (latency weights, slow start) the effective weights are
//! not integers and change with every measurement, so there is no cycle to precompute: each
//! step then picks by the golden-ratio sequence over the cumulative effective weights, which
//! spreads the picks as evenly and in the same long-run proportion.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Weighted {
    pub(super) n: usize,
    /// The endpoint picked first at each step of one period.
    cycle: Box<[u32]>,
    weights: Box<[u32]>,
    next: AtomicUsize,
}

impl Weighted {
    /// `weights` are each in `1..=MAX_WEIGHT`, which bounds the cycle to n × MAX_WEIGHT steps.
    pub fn new(weights: &[u32]) -> Self {
        let gcd = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
        let reduced: Vec<i64> = weights.iter().map(|&w| i64::from(w / gcd)).collect();
        let total: i64 = reduced.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut cycle = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(&reduced) {
                *c += w;
            }
            // Ties go to the earlier endpoint, as in nginx.
            let mut best = 0;
            for (i, &c) in current.iter().enumerate() {
                if c > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            cycle.push(best as u32);
        }
        Self {
            n: weights.len(),
            cycle: cycle.into_boxed_slice(),
            weights: weights.into(),
            next: AtomicUsize::new(0),
        }
    }

    /// The pick leads; the other endpoints follow in configured order after it, so a client
    /// that takes more than one address still gets them all.
    pub fn order(&self, limit: usize, out: &mut Order) {
        if self.cycle.is_empty() {
            return;
        }
        let step = self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len();
        super::rotated(self.n, self.cycle[step] as usize, limit, out);
    }

    /// [`Weighted::order`] with each weight scaled by `share`.
    fn order_scaled(&self, share: &dyn Fn(usize) -> f64, limit: usize, out: &mut Order) {
        let weights: smallvec::SmallVec<[f64; 16]> = (0..self.n)
            .map(|i| f64::from(self.weights[i]) * share(i))
            .collect();
        let step = self.next.fetch_add(1, Ordering::Relaxed) as f64;
        // Weyl's sequence: step × (golden ratio − 1) mod 1 is evenly spread for every run of steps.
        let mut ticket = (step * 0.618_033_988_749_895).fract() * weights.iter().sum::<f64>();
        let mut pick = self.n - 1;
        for (i, w) in weights.iter().enumerate() {
            if ticket < *w {
                pick = i;
                break;
            }
            ticket -= w;
        }
        super::rotated(self.n, pick, limit, out);
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Strategy for Weighted {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::Weighted
    }

    fn fixed(&self) -> bool {
        self.n <= 1
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        match asking.scaled() && self.n > 0 {
            true => self.order_scaled(&|i| asking.share(i), limit, out),
            false => self.order(limit, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(w: &Weighted, count: usize) -> Vec<u32> {
        (0..count)
            .map(|_| {
                let mut out = Order::new();
                w.order(usize::MAX, &mut out);
                assert_eq!(out.len(), w.n);
                out[0]
            })
            .collect()
    }

    #[test]
    fn matches_nginx_sequence() {
        // nginx's documented example: weights a=5, b=1, c=1 give a a b a c a a.
        let w = Weighted::new(&[5, 1, 1]);
        assert_eq!(firsts(&w, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn full_cycle_split_is_exact() {
        let w = Weighted::new(&[3, 1]);
        let picks = firsts(&w, 400);
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 300);
        // Smooth: the light endpoint never leads twice in a row.
        assert!(picks.windows(2).all(|p| !(p[0] == 1 && p[1] == 1)));
    }

    #[test]
    fn scaled_weights_keep_their_proportion_and_spread() {
        let w = Weighted::new(&[1, 1]);
        let share = |i: usize| if i == 0 { 1.0 } else { 0.25 };
        let picks: Vec<u32> = (0..1000)
            .map(|_| {
                let mut out = Order::new();
                w.order_scaled(&share, usize::MAX, &mut out);
                out[0]
            })
            .collect();
        let light = picks.iter().filter(|&&p| p == 1).count();
        assert!((195..=205).contains(&light), "{light}");
        assert!(picks.windows(2).all(|p| !(p[0] == 1 && p[1] == 1)));
    }

    #[test]
    fn gcd_reduces_the_cycle() {
        let w = Weighted::new(&[500, 100]);
        assert_eq!(w.cycle.len(), 6);
        let picks = firsts(&w, 600);
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 500);
    }
}
