//! Response rate limiting (as in BIND, NSD and Knot): a UDP reply is one more response to the
//! source's network (IPv4 /24, IPv6 /56 by default) in its class (positive, negative, error);
//! over `responses_per_second` in a second, replies are dropped, but every `slip`-th goes out
//! truncated and empty, so that a real client behind a spoofed-at network retries over TCP.
//! The key is the packet's source address, never the Client Subnet (a spoofer chooses that).
//!
//! The table has a fixed number of slots of one atomic word each (a tag of the key, the second
//! and the count), updated by compare-and-swap: no lock on the query path and memory that does
//! not grow with the number of sources. Two keys in one slot reset each other's count, which
//! errs on the side of answering.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ipnet::IpNet;

use crate::metrics::Limited;

/// Response classes, counted apart (a flood of NXDOMAINs does not limit positive answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// NOERROR with records in the answer or authority (referrals too).
    Positive,
    /// NXDOMAIN or NODATA.
    Negative,
    /// Every other response code (REFUSED, FORMERR, SERVFAIL…).
    Error,
}

/// What to do with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    /// Over the rate: send it truncated and empty (TC).
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

pub use crate::config::RateLimitConfig as Limits;

#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    slots: Box<[AtomicU64]>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        let size = limits.table_size.next_power_of_two().max(1);
        Self {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            limits,
        }
    }

    /// Counts one reply of `class` to `source` at `now` (Unix seconds) and says what to do.
    pub fn account(&self, source: IpAddr, class: Class, now: u32) -> Action {
        let source = crate::geo::canonical(source);
        if self.limits.exempt.iter().any(|net| net.contains(&source)) {
            return Action::Send;
        }
        let network = match source {
            IpAddr::V4(v4) => IpNet::new(v4.into(), self.limits.ipv4_prefix),
            IpAddr::V6(v6) => IpNet::new(v6.into(), self.limits.ipv6_prefix),
        }
        .map_or(source, |net| net.trunc().network());
        let hash = rustc_hash::FxBuildHasher.hash_one((network, class));
        let slot = &self.slots[hash as usize & (self.slots.len() - 1)];
        // tag (32 bits) | second (8 bits: which second, modulo 256) | count (24 bits)
        let (tag, second) = (hash >> 32, u64::from(now & 0xff));
        let mut count = 0;
        let _ = slot.fetch_update(Relaxed, Relaxed, |word| {
            let same = word >> 32 == tag && (word >> 24) & 0xff == second;
            count = if same { (word & 0xff_ffff) + 1 } else { 1 };
            Some(tag << 32 | second << 24 | count.min(0xff_ffff))
        });
        let rate = u64::from(self.limits.responses_per_second);
        if count <= rate {
            return Action::Send;
        }
        if count == rate + 1 {
            tracing::info!("rate limit: {network} is over {rate} {class:?} responses a second");
        }
        let slip = u64::from(self.limits.slip);
        let (action, what) = match (self.limits.log_only, slip > 0 && (count - rate) % slip == 0) {
            (true, _) => (Action::Send, Limited::LogOnly),
            (false, true) => (Action::Slip, Limited::Slipped),
            (false, false) => (Action::Drop, Limited::Dropped),
        };
        crate::metrics::global().record_rate_limited(what);
        action
    }
}

/// The class of an encoded reply.
pub fn class_of(reply: &[u8]) -> Class {
    let rcode = reply.get(3).map_or(0, |b| b & 0x0f);
    let records = |at: usize| {
        reply
            .get(at..at + 2)
            .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]))
    };
    match rcode {
        // NOERROR with answers, or a referral (NS in authority, AA clear).
        0 if records(6) > 0 || (records(8) > 0 && reply[2] & 0x04 == 0) => Class::Positive,
        0 | 3 => Class::Negative,
        _ => Class::Error,
    }
}

/// `reply` cut to its header and question (ending at `question_end`), with TC set and no
/// records: what a slipped reply is.
pub fn truncate(reply: &mut Vec<u8>, question_end: usize) {
    reply.truncate(question_end);
    reply[2] |= 0x02;
    reply[6..12].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32) -> RateLimiter {
        RateLimiter::new(Limits {
            responses_per_second: rate,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: vec!["127.0.0.1/32".parse().unwrap()],
            log_only: false,
            table_size: 1024,
        })
    }

    #[test]
    fn over_the_rate_every_slip_th_reply_slips_and_the_rest_drop() {
        let l = limiter(10, 2);
        let source: IpAddr = "192.0.2.7".parse().unwrap();
        let actions: Vec<Action> = (0..20)
            .map(|_| l.account(source, Class::Positive, 5))
            .collect();
        assert!(actions[..10].iter().all(|&a| a == Action::Send));
        assert_eq!(
            actions[10..14],
            [Action::Drop, Action::Slip, Action::Drop, Action::Slip]
        );
        // The same /24, another class, another second, an exempt source.
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        assert_eq!(l.account(neighbour, Class::Positive, 5), Action::Drop);
        assert_eq!(l.account(neighbour, Class::Negative, 5), Action::Send);
        assert_eq!(l.account(source, Class::Positive, 6), Action::Send);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| l.account(local, Class::Positive, 5) == Action::Send));
        // Another /24 is not affected.
        let other: IpAddr = "192.0.3.7".parse().unwrap();
        assert_eq!(l.account(other, Class::Positive, 5), Action::Send);
    }

    #[test]
    fn replies_are_classed_by_code_and_sections() {
        let mut reply = vec![0u8; 12];
        reply[2] = 0x84; // QR AA
        reply[7] = 1; // ANCOUNT
        assert_eq!(class_of(&reply), Class::Positive);
        reply[7] = 0;
        assert_eq!(class_of(&reply), Class::Negative);
        reply[3] = 3;
        assert_eq!(class_of(&reply), Class::Negative);
        reply[3] = 5;
        assert_eq!(class_of(&reply), Class::Error);
    }
}
