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
    /// The networks sources are counted by and the exempt ones, as masks over addresses as
    /// integers: a reply's check is a few ANDs (ipnet's `contains` and `trunc` cost more than
    /// the rest of it).
    masks: (u32, u128),
    exempt_v4: Vec<(u32, u32)>,
    exempt_v6: Vec<(u128, u128)>,
}

/// The masks of IPv4 and IPv6 networks of `prefix` bits.
fn masks(prefix: u8) -> (u32, u128) {
    let v4 = u32::MAX.checked_shl(32 - u32::from(prefix.min(32)));
    let v6 = u128::MAX.checked_shl(128 - u32::from(prefix.min(128)));
    (v4.unwrap_or(0), v6.unwrap_or(0))
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        let size = limits.table_size.next_power_of_two().max(1);
        let (mut exempt_v4, mut exempt_v6) = (Vec::new(), Vec::new());
        for net in &limits.exempt {
            match net.trunc() {
                IpNet::V4(v4) => {
                    let mask = masks(v4.prefix_len()).0;
                    exempt_v4.push((u32::from(v4.network()), mask));
                }
                IpNet::V6(v6) => {
                    let mask = masks(v6.prefix_len()).1;
                    exempt_v6.push((u128::from(v6.network()), mask));
                }
            }
        }
        Self {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            masks: (masks(limits.ipv4_prefix).0, masks(limits.ipv6_prefix).1),
            exempt_v4,
            exempt_v6,
            limits,
        }
    }

    /// Counts one reply of `class` to `source` at `now` (Unix seconds) and says what to do.
    pub fn account(&self, source: IpAddr, class: Class, now: u32) -> Action {
        let network = match crate::geo::canonical(source) {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                if self.exempt_v4.iter().any(|&(net, mask)| bits & mask == net) {
                    return Action::Send;
                }
                IpAddr::V4((bits & self.masks.0).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                if self.exempt_v6.iter().any(|&(net, mask)| bits & mask == net) {
                    return Action::Send;
                }
                IpAddr::V6((bits & self.masks.1).into())
            }
        };
        let hash = slot_hash(network, class);
        let slot = &self.slots[hash as usize & (self.slots.len() - 1)];
        let (tag, second) = (hash >> 40, u64::from(now & 0xffff));
        let mut count = 0;
        let _ = slot.fetch_update(Relaxed, Relaxed, |word| {
            let (count_now, kept) = next_count(word, tag, second);
            count = count_now;
            Some(tag << 40 | kept << 24 | count.min(0xff_ffff))
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

/// How far a slot's second may be ahead of a worker's and still be the current one: workers
/// read the clock once a batch, each on its own phase, so near a second's end one may still
/// say the second before while another has moved on.
const CLOCK_SKEW: u64 = 2;

/// The count of a slot (its word: tag 24 bits | second 16 bits | count 24 bits) after one more
/// reply of the key tagged `tag` at `second`, and the second it is counted in. A slot's second
/// only moves forward: a reply whose second is a little behind the slot's counts in the
/// slot's, so two workers whose clocks straddle a second do not reset each other's count.
fn next_count(word: u64, tag: u64, second: u64) -> (u64, u64) {
    let stored = (word >> 24) & 0xffff;
    let ahead = stored.wrapping_sub(second) & 0xffff;
    match word >> 40 == tag && ahead <= CLOCK_SKEW {
        true => ((word & 0xff_ffff) + 1, stored),
        false => (1, second),
    }
}

/// A well-mixed hash of (network, class): its low bits pick the slot, its high 24 the tag.
/// (FxHash, used before, gave every IPv6 /56 of a /48 the same slot and tag: neighbours shared
/// one count.) Two rounds of splitmix64's finalizer, over the address's halves.
fn slot_hash(network: IpAddr, class: Class) -> u64 {
    fn mix(mut x: u64) -> u64 {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let bits = match network {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    mix(mix((bits >> 64) as u64 ^ class as u64) ^ bits as u64)
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
#[cold]
#[inline(never)]
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
    fn workers_whose_clocks_straddle_a_second_share_one_count() {
        let l = limiter(10, 0);
        let source: IpAddr = "192.0.2.7".parse().unwrap();
        // Two workers, one a second behind the other, alternating: the first reply counts in
        // the earlier second, every later one in the later second: 1 + 10 answers in all.
        let sent = (0..40)
            .filter(|i| l.account(source, Class::Positive, 1000 + (i % 2)) == Action::Send)
            .count();
        assert_eq!(sent, 11);
        // The next second starts a new count; a slot long idle is not taken for the current one.
        assert_eq!(l.account(source, Class::Positive, 1002), Action::Send);
        assert_eq!(
            next_count(5 << 24 | 7, 0, 105).0,
            1,
            "a stale second resets"
        );
        assert_eq!(
            next_count(5 << 24 | 7, 0, 4),
            (8, 5),
            "a second behind counts on"
        );
        assert_eq!(
            next_count(5 << 24 | 7, 1, 5),
            (1, 5),
            "another key's slot resets"
        );
    }

    #[test]
    fn ipv6_sources_count_by_their_network_and_exempt_networks_are_not_counted() {
        let l = RateLimiter::new(Limits {
            exempt: vec![
                "2001:db8:ff::/48".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..limiter(3, 0).limits
        });
        let at = |a: &str| l.account(a.parse().unwrap(), Class::Positive, 5);
        assert!((0..3).all(|_| at("2001:db8:1:2::1") == Action::Send));
        // The same /56, then another /56.
        assert_eq!(at("2001:db8:1:ff::9"), Action::Drop);
        assert_eq!(at("2001:db8:1:100::1"), Action::Send);
        assert!((0..10).all(|_| at("2001:db8:ff:1::1") == Action::Send));
        assert!((0..10).all(|_| at("10.200.0.1") == Action::Send));
        // An IPv4-mapped source is its IPv4 address.
        assert!((0..3).all(|_| at("192.0.2.1") == Action::Send));
        assert_eq!(at("::ffff:192.0.2.9"), Action::Drop);
    }

    #[test]
    fn neighbouring_networks_get_slots_and_tags_of_their_own() {
        let l = limiter(1, 0);
        // 256 IPv6 /56 networks of one /48, and 256 IPv4 /24 networks of one /16: each is
        // counted alone, so its first reply goes out however many its neighbours sent.
        let sources = (0..256u128)
            .map(|i| {
                IpAddr::from(std::net::Ipv6Addr::from(
                    (0x2001_0db8_0001_u128 << 80) | (i << 72) | 1,
                ))
            })
            .chain((0..=255u8).map(|i| IpAddr::from([198, 18, i, 1])));
        for source in sources {
            assert_eq!(
                l.account(source, Class::Positive, 5),
                Action::Send,
                "{source}"
            );
        }
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
