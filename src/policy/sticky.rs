//! `sticky`: the same client network gets the same endpoints for as long as they are live —
//! the DNS form of IP-hash stickiness (PowerDNS `pickchashed`, NS1 `STICKY`).
//!
//! Weighted rendezvous (highest-random-weight) hashing: every endpoint scores the client's
//! network with a hash of the two, `weight / -ln(hash)`, and the endpoints are handed out by
//! score. An endpoint's hash comes from its address, not its place in the list, so removing or
//! adding one of N endpoints moves only the networks it led or comes to lead, about 1/N of
//! them, where modulo hashing would move almost all. The hashes are fixed (no per-process key),
//! so that every instance of a nameserver set answers a network alike.

use std::net::IpAddr;

use super::{Asking, Context, Decision, Order, Strategy};
use crate::metrics::PolicyLabel;

/// How much of the client's address picks its endpoints: its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefixes {
    pub v4: u8,
    pub v6: u8,
}

impl Default for Prefixes {
    /// /24 and /56: a typical customer network, as RRL and ECS aggregate them.
    fn default() -> Self {
        Self { v4: 24, v6: 56 }
    }
}

impl Prefixes {
    /// The prefix length for `addr`'s family: the ECS scope of a sticky answer.
    pub fn of(&self, addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => self.v4,
            IpAddr::V6(_) => self.v6,
        }
    }

    /// The client's network (`addr` cut to its prefix), hashed.
    pub fn network_key(&self, addr: IpAddr) -> u64 {
        match addr {
            IpAddr::V4(a) => {
                let bits = u64::from(u32::from(a)) & mask(self.v4, 32);
                mix(bits ^ (4 << 56) ^ u64::from(self.v4) << 40)
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let kept = match self.v6 {
                    0 => 0,
                    n => bits & (u128::MAX << (128 - u32::from(n.min(128)))),
                };
                mix(mix(kept as u64) ^ (kept >> 64) as u64 ^ (6 << 56) ^ u64::from(self.v6) << 40)
            }
        }
    }
}

fn mask(prefix: u8, bits: u32) -> u64 {
    match u32::from(prefix).min(bits) {
        0 => 0,
        n => (u64::MAX << (64 - n)) >> (64 - bits),
    }
}

/// SplitMix64's finalizer: every input bit flips each output bit with probability ½.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// An endpoint's own hash seed: its address, hashed.
pub fn seed(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => mix(u64::from(u32::from(a)) ^ 0x0404_0404 << 32),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            mix(mix(bits as u64) ^ (bits >> 64) as u64)
        }
    }
}

#[derive(Debug)]
pub struct Sticky {
    /// Per endpoint, in configured order.
    seeds: Box<[u64]>,
    weights: Box<[u32]>,
    /// Every weight is the same: the hash alone ranks (no logarithm).
    equal: bool,
    pub prefixes: Prefixes,
}

impl Sticky {
    pub fn new(addresses: &[IpAddr], weights: &[u32], prefixes: Prefixes) -> Self {
        Self {
            seeds: addresses.iter().map(|&a| seed(a)).collect(),
            weights: weights.into(),
            equal: weights.windows(2).all(|w| w[0] == w[1]),
            prefixes,
        }
    }

    /// Endpoint `i`'s score for the network `key`: higher leads. `share` scales its weight.
    pub fn score(&self, i: usize, key: u64, share: f64) -> f64 {
        let hash = mix(self.seeds[i] ^ key);
        if self.equal && share == 1.0 {
            return hash as f64;
        }
        // A uniform draw in (0, 1) from the hash's top 53 bits; -ln of it is exponential, and
        // weight / Exp(1) makes P(i leads) = weight_i / Σ weight.
        let uniform = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        f64::from(self.weights[i]) * share / -uniform.ln()
    }

    /// Appends up to `limit` endpoints for the network `key`, best score first.
    pub fn order(&self, key: u64, share: &dyn Fn(usize) -> f64, limit: usize, out: &mut Order) {
        let mut scored: smallvec::SmallVec<[(f64, u32); 16]> = (0..self.seeds.len())
            .map(|i| (self.score(i, key, share(i)), i as u32))
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.extend(scored.iter().take(limit).map(|&(_, i)| i));
    }
}

impl Strategy for Sticky {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::Sticky
    }

    /// Never memoized: the order is the client network's, and a memoized reply is keyed on
    /// the decision alone.
    fn fixed(&self) -> bool {
        self.seeds.len() <= 1
    }

    /// The order depends on the client's network: that is the answer's ECS scope.
    fn decide(&self, cx: Option<&Context<'_>>) -> Decision {
        Decision::new(&[], cx.map_or(0, |cx| self.prefixes.of(cx.addr)))
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        let key = asking.cx.map_or(0, |cx| self.prefixes.network_key(cx.addr));
        self.order(key, &|i| asking.share(i), limit, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_not_the_host_picks() {
        let p = Prefixes::default();
        let a = p.network_key("198.51.100.7".parse().unwrap());
        assert_eq!(a, p.network_key("198.51.100.250".parse().unwrap()));
        assert_ne!(a, p.network_key("198.51.101.7".parse().unwrap()));
        let b = p.network_key("2001:db8:0:ff01::1".parse().unwrap());
        assert_eq!(b, p.network_key("2001:db8:0:ffaa::2".parse().unwrap()));
        assert_ne!(b, p.network_key("2001:db8:0:fe00::1".parse().unwrap()));
    }
}
