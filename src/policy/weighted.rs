//! `weighted`: smooth weighted round-robin as nginx does it. Every endpoint's current weight
//! grows by its weight, the largest is picked and loses the total. This spreads a heavy
//! endpoint's turns evenly instead of in bursts.
//!
//! The picks repeat with a period of the (gcd-reduced) total weight, so the whole cycle is
//! computed once when the zone is built; an answer is then one atomic step through it, with
//! no lock on the query path and exactly the weights over every full cycle.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Weighted {
    pub(super) n: usize,
    /// The endpoint picked first at each step of one period.
    cycle: Box<[u32]>,
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

    fn order_for(&self, _asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        self.order(limit, out);
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
    fn gcd_reduces_the_cycle() {
        let w = Weighted::new(&[500, 100]);
        assert_eq!(w.cycle.len(), 6);
        let picks = firsts(&w, 600);
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 500);
    }
}
