//! `round_robin`: every answer starts one endpoint further, `i = (i + 1) mod n`, so over n
//! answers each endpoint leads once.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct RoundRobin {
    pub(super) n: usize,
    /// Shared by all query threads; Relaxed is enough, only the spread matters.
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            next: AtomicUsize::new(0),
        }
    }

    pub fn order(&self, limit: usize, out: &mut Order) {
        if self.n == 0 {
            return;
        }
        super::rotated(self.n, self.next_start(), limit, out);
    }

    /// Where the next answer starts (and the rotation moves on by one).
    pub fn next_start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.n.max(1)
    }
}

/// An answer that is the same endpoints every time, rotated: the pool's endpoints `first ..
/// first + n`, all live and all shown, rotated by a round-robin policy. The reply memo keeps
/// such a reply once and rotates its records itself (`dns::memo`).
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub first: u32,
    pub n: usize,
    pub(super) policy: &'a RoundRobin,
}

impl Rotation<'_> {
    /// Where this answer starts, as `RoundRobin::order` would have it.
    pub fn next_start(&self) -> usize {
        self.policy.next_start()
    }
}

impl Strategy for RoundRobin {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::RoundRobin
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

    #[test]
    fn rotates_by_one_each_answer() {
        let rr = RoundRobin::new(3);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut out = Order::new();
            rr.order(usize::MAX, &mut out);
            seen.push(out.to_vec());
        }
        assert_eq!(
            seen,
            [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
        );
    }

    #[test]
    fn every_endpoint_leads_equally_often() {
        let rr = RoundRobin::new(6);
        let mut leads = [0; 6];
        for _ in 0..600 {
            let mut out = Order::new();
            rr.order(2, &mut out);
            assert_eq!(out.len(), 2);
            leads[out[0] as usize] += 1;
        }
        assert_eq!(leads, [100; 6]);
    }
}
