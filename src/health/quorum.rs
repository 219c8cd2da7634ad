//! Health decided by a set of instances: each probes and publishes its opinion of an endpoint;
//! the endpoint's state is decided from the opinions of the live instances by a quorum rule.
//! And which instances probe an endpoint, when not all do: rendezvous hashing, so that an
//! instance joining or leaving moves only its own share of the endpoints.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::Status;
use crate::config::Quorum;

/// The state decided from `opinions` (the known ones of the instances that probe the endpoint)
/// by `quorum`: `Down` when enough of them see it fail, `Up` when any sees it up and not
/// enough fail, `Unknown` when none has probed it yet.
pub fn decide(quorum: Quorum, opinions: impl IntoIterator<Item = Status>) -> Status {
    let (mut up, mut down) = (0usize, 0usize);
    for opinion in opinions {
        match opinion {
            Status::Up => up += 1,
            Status::Down => down += 1,
            Status::Unknown => {}
        }
    }
    let total = up + down;
    let out = match quorum {
        Quorum::Majority => down * 2 > total,
        Quorum::Any => down > 0,
        Quorum::All => total > 0 && down == total,
    };
    match (total, out) {
        (0, _) => Status::Unknown,
        (_, true) => Status::Down,
        (_, false) => Status::Up,
    }
}

/// Whether `me` is among the `per_endpoint` instances of `instances` that probe `probe`
/// (`per_endpoint` 0, or no more instances than that: every instance probes it).
pub fn assigned(me: &str, instances: &[String], probe: &str, per_endpoint: usize) -> bool {
    if per_endpoint == 0 || instances.len() <= per_endpoint {
        return true;
    }
    let mine = score(me, probe);
    // Mine is in the top `per_endpoint` if fewer than that score higher (ties by name).
    let higher = instances
        .iter()
        .filter(|i| i.as_str() != me)
        .filter(|i| (score(i, probe), i.as_str()) > (mine, me))
        .count();
    higher < per_endpoint
}

/// The rendezvous weight of `instance` for `probe`: a fixed-key hash, the same on every
/// instance.
fn score(instance: &str, probe: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0x6d65_7269_6469_616e, 0x7175_6f72_756d_0001);
    hasher.write(instance.as_bytes());
    hasher.write_u8(0xff);
    hasher.write(probe.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Down, Unknown, Up};

    #[test]
    fn quorum_rules_decide_from_known_opinions() {
        assert_eq!(decide(Quorum::Majority, [Up, Up, Down]), Up);
        assert_eq!(decide(Quorum::Majority, [Up, Down, Down]), Down);
        assert_eq!(decide(Quorum::Majority, [Up, Down]), Up, "a tie keeps it");
        assert_eq!(decide(Quorum::Any, [Up, Up, Down]), Down);
        assert_eq!(decide(Quorum::All, [Up, Down, Down]), Up);
        assert_eq!(decide(Quorum::All, [Down, Down, Unknown]), Down);
        assert_eq!(decide(Quorum::Majority, [Unknown]), Unknown);
        assert_eq!(decide(Quorum::Majority, []), Unknown);
    }

    #[test]
    fn each_endpoint_gets_exactly_its_share_of_probers() {
        let instances: Vec<String> = (0..5).map(|i| format!("ns{i}")).collect();
        let mut load = vec![0usize; 5];
        for e in 0..1000 {
            let probe = format!("tcp://192.0.2.{}:{}", e % 250, 80 + e / 250);
            let chosen: Vec<usize> = (0..5)
                .filter(|&i| assigned(&instances[i], &instances, &probe, 2))
                .collect();
            assert_eq!(chosen.len(), 2, "{probe}");
            chosen.iter().for_each(|&i| load[i] += 1);
        }
        // 2,000 probes over 5 instances: about 400 each.
        assert!(load.iter().all(|&l| (300..500).contains(&l)), "{load:?}");
        assert!(assigned("ns0", &instances[..2], "x", 2), "two of two: all");
        assert!(assigned("ns3", &instances, "x", 0), "0: all");
    }

    #[test]
    fn an_instance_leaving_moves_only_its_own_endpoints() {
        let all: Vec<String> = (0..4).map(|i| format!("ns{i}")).collect();
        let fewer: Vec<String> = all[..3].to_vec();
        for e in 0..200 {
            let probe = format!("tcp://198.51.100.{e}:80");
            for me in &fewer {
                if assigned(me, &all, &probe, 2) {
                    assert!(assigned(me, &fewer, &probe, 2), "{me} kept {probe}");
                }
            }
        }
    }
}
