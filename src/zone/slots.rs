//! A zone's own health slots, numbered when the zone is built: its probes (one per distinct
//! (address, check) in the zone), its failover sets and its adaptive groups. Numbering them per
//! zone, not across all zones, lets a changed zone be rebuilt alone and the others be shared
//! between snapshots as they are; each zone's health view is indexed by its own slots.

use std::collections::{HashMap, HashSet};

use super::{Name, Node, Pool, adaptive};
use crate::health::feedback::Group;
use crate::health::{EndpointHealth, ProbeKey};
use crate::policy::Policy;

/// What a zone's health view is indexed by.
#[derive(Debug, Default)]
pub struct Slots {
    /// Every distinct (address, check) of the zone, by probe slot.
    pub probes: Vec<ProbeKey>,
    /// The pools each probe serves, by probe slot (for logs).
    pub probe_users: Vec<Vec<String>>,
    /// Every failover endpoint set, by failover slot.
    pub failovers: Vec<super::FailoverSet>,
    /// Every adaptive group of endpoints, and how many feedback slots they have.
    pub feedback_groups: Vec<Group>,
    pub feedback_slots: usize,
    /// The probe slot of each probe.
    by_probe: HashMap<ProbeKey, u32>,
}

/// Numbers the slots of the zone's `nodes` and records them in its endpoint sets.
pub(super) fn number(nodes: &mut [(Box<[u8]>, Node)]) -> Slots {
    let mut slots = Slots::default();
    let mut by_key = std::mem::take(&mut slots.by_probe);
    // In the order of the pools' keys (their lower-case wire names): stable across runs and
    // reloads, and a byte comparison where a million-endpoint zone spent a tenth of its load
    // comparing names label by label. Only the pools that have something to number.
    let mut pools: Vec<(&Box<[u8]>, &mut Node)> = nodes
        .iter_mut()
        .filter(|(_, node)| node.pool.as_ref().is_some_and(has_slots))
        .map(|(key, node)| (&*key, node))
        .collect();
    pools.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, node) in pools {
        let name = &node.name;
        let Some(pool) = node.pool.as_mut() else {
            continue;
        };
        for (family, set) in [("A", &mut pool.v4), ("AAAA", &mut pool.v6)] {
            for ep in set.health.iter_mut() {
                let Some(key) = &ep.probe else { continue };
                let slot = *by_key.entry(key.clone()).or_insert_with(|| {
                    slots.probes.push(key.clone());
                    slots.probe_users.push(Vec::new());
                    (slots.probes.len() - 1) as u32
                });
                ep.slot = Some(slot);
                let users = &mut slots.probe_users[slot as usize];
                let pool_name = name.to_string();
                if !users.contains(&pool_name) {
                    users.push(pool_name);
                }
            }
            if let Policy::Failover(f) = &mut set.policy {
                f.slot = Some(slots.failovers.len() as u32);
                slots.failovers.push(super::FailoverSet {
                    id: format!("{name}/{family}"),
                    preempt: f.preempt,
                    tiers: f
                        .tiers
                        .iter()
                        .map(|t| t.iter().map(|&i| health_of(&set.health, i)).collect())
                        .collect(),
                });
            }
            if !set.adaptive.is_empty() && !set.is_empty() {
                set.feedback = Some(slots.feedback_slots as u32);
                adaptive::groups(name, family, set, &mut slots.feedback_groups);
                slots.feedback_slots += set.len();
            }
        }
    }
    slots.by_probe = by_key;
    slots
}

/// Whether `pool` has a probe, a failover set or an adaptive group.
fn has_slots(pool: &Pool) -> bool {
    [&pool.v4, &pool.v6].into_iter().any(|set| {
        matches!(set.policy, Policy::Failover(_))
            || !set.adaptive.is_empty()
            || set.health.iter().any(|h| h.probe.is_some())
    })
}

/// Gives `pool` (replacing `old`, pool `name` of the zone of `slots`) the zone's existing
/// slots, if it can keep them: the same probes as `old`, each already serving it, and no
/// failover set or adaptive group in either (those are numbered with the whole zone). `false`:
/// the zone must be built again.
pub(super) fn reuse(slots: &Slots, name: &Name, old: &Pool, pool: &mut Pool) -> bool {
    let numbered_alone = |p: &Pool| {
        [&p.v4, &p.v6]
            .iter()
            .all(|set| set.adaptive.is_empty() && !matches!(set.policy, Policy::Failover(_)))
    };
    if !numbered_alone(old) || !numbered_alone(pool) {
        return false;
    }
    let probes = |p: &Pool| -> HashSet<ProbeKey> {
        let health = p.v4.health.iter().chain(&p.v6.health);
        health.filter_map(|h| h.probe.clone()).collect()
    };
    if probes(old) != probes(pool) {
        return false;
    }
    let user = name.to_string();
    for ep in pool.v4.health.iter_mut().chain(pool.v6.health.iter_mut()) {
        let Some(key) = &ep.probe else { continue };
        match slots.by_probe.get(key) {
            Some(&slot) if slots.probe_users[slot as usize].contains(&user) => ep.slot = Some(slot),
            _ => return false,
        }
    }
    true
}

/// Endpoint `i`'s health in a set's `health` (empty: every one plain).
fn health_of(health: &[EndpointHealth], i: u32) -> EndpointHealth {
    health
        .get(i as usize)
        .unwrap_or(&EndpointHealth::PLAIN)
        .clone()
}
