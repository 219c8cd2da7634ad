//! A zone's own health slots, numbered when the zone is built: its probes (one per distinct
//! (address, check) in the zone), its failover sets and its adaptive groups. Numbering them per
//! zone, not across all zones, lets a changed zone be rebuilt alone and the others be shared
//! between snapshots as they are; each zone's health view is indexed by its own slots.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::{Node, adaptive};
use crate::health::ProbeKey;
use crate::health::feedback::Group;
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
}

/// Numbers the slots of the zone's `nodes` and records them in its endpoint sets.
pub(super) fn number(nodes: &mut FxHashMap<Box<[u8]>, Node>) -> Slots {
    let mut slots = Slots::default();
    let mut by_key: HashMap<ProbeKey, u32> = HashMap::new();
    // In the order of the pools' keys (their lower-case wire names): stable across runs and
    // reloads, and a byte comparison where a million-endpoint zone spent a tenth of its load
    // comparing names label by label.
    let mut pools: Vec<(&Box<[u8]>, &mut Node)> = nodes
        .iter_mut()
        .filter(|(_, node)| node.pool.is_some())
        .collect();
    pools.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, node) in pools {
        let name = &node.name;
        let Some(pool) = node.pool.as_mut() else {
            continue;
        };
        for (family, set) in [("A", &mut pool.v4), ("AAAA", &mut pool.v6)] {
            for ep in &mut set.health {
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
                        .map(|t| t.iter().map(|&i| set.health[i as usize].clone()).collect())
                        .collect(),
                });
            }
            if !set.adaptive.is_empty() && !set.records.is_empty() {
                set.feedback = Some(slots.feedback_slots as u32);
                adaptive::groups(name, family, set, &mut slots.feedback_groups);
                slots.feedback_slots += set.records.len();
            }
        }
    }
    slots
}
