//! `all`: every endpoint in configured order, as a plain multi-address record set.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;

#[derive(Debug)]
pub struct All {
    n: usize,
}

impl All {
    pub fn new(n: usize) -> Self {
        Self { n }
    }

    pub fn order(&self, limit: usize, out: &mut Order) {
        super::rotated(self.n, 0, limit, out);
    }
}

impl Strategy for All {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::All
    }

    fn fixed(&self) -> bool {
        true
    }

    fn order_for(&self, _asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        self.order(limit, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_configured_order() {
        let mut out = Order::new();
        All::new(3).order(usize::MAX, &mut out);
        assert_eq!(out[..], [0, 1, 2]);
        out.clear();
        All::new(3).order(2, &mut out);
        assert_eq!(out[..], [0, 1]);
    }
}
