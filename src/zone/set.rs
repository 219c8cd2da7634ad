//! Every zone served. Each zone is shared (`Arc`) by the snapshots it is unchanged in: a change
//! to one zone builds that zone alone and a new set around it (see `control`).

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{Name, NameKey, Zone};
use crate::health::ProbeKey;
use crate::policy::Policy;

/// Every zone we are authoritative for, and the probes they need.
#[derive(Debug, Default)]
pub struct ZoneSet {
    /// In origin order; a zone's place here is its place in the snapshot's health.
    zones: Vec<Arc<Zone>>,
    /// Place in `zones` by the key of the origin.
    index: FxHashMap<Box<[u8]>, usize>,
    /// Every distinct (address, check) of every zone: what the prober follows.
    pub probes: Vec<ProbeKey>,
    /// The pools each of `probes` serves, across zones (for logs and views).
    pub probe_users: Vec<Vec<String>>,
}

impl ZoneSet {
    pub fn new(zones: impl IntoIterator<Item = Zone>) -> Self {
        Self::of(zones.into_iter().map(Arc::new).collect())
    }

    /// A set of these zones, one per origin.
    pub fn of(mut zones: Vec<Arc<Zone>>) -> Self {
        zones.sort_by(|a, b| a.origin.cmp(&b.origin));
        let index = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.origin_key.clone(), i))
            .collect();
        let mut by_key: HashMap<&ProbeKey, usize> = HashMap::new();
        let (mut probes, mut probe_users) = (Vec::new(), Vec::<Vec<String>>::new());
        for zone in &zones {
            for (key, users) in zone.slots.probes.iter().zip(&zone.slots.probe_users) {
                let at = *by_key.entry(key).or_insert_with(|| {
                    probes.push(key.clone());
                    probe_users.push(Vec::new());
                    probes.len() - 1
                });
                probe_users[at].extend(users.iter().cloned());
            }
        }
        Self {
            zones,
            index,
            probes,
            probe_users,
        }
    }

    /// This set with `origin`'s zone replaced by `zone` (`None`: removed); every other zone is
    /// shared, not rebuilt.
    pub fn with_zone(&self, origin: &Name, zone: Option<Zone>) -> Self {
        let key = super::key::owned(&origin.to_lowercase());
        let mut zones: Vec<Arc<Zone>> = self
            .zones
            .iter()
            .filter(|z| z.origin_key != key)
            .cloned()
            .collect();
        zones.extend(zone.map(Arc::new));
        Self::of(zones)
    }

    /// The zone of this exact origin, if the set has one.
    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.index_of(origin).map(|i| &self.zones[i])
    }

    /// The place of the zone of this exact origin, if the set has one.
    pub fn index_of(&self, origin: &Name) -> Option<usize> {
        let key = super::key::owned(&origin.to_lowercase());
        self.index.get(&key).copied()
    }

    /// Every geo pool's policy, both families.
    pub fn geo_pools(&self) -> impl Iterator<Item = &crate::policy::geo::Geo> {
        self.zones
            .iter()
            .flat_map(|zone| zone.pools())
            .flat_map(|(_, pool)| [&pool.v4.policy, &pool.v6.policy])
            .filter_map(|policy| match policy {
                Policy::Geo(geo) => Some(&**geo),
                _ => None,
            })
    }

    /// The zone that holds `name`: the one with the longest origin that is a suffix of it.
    pub fn find(&self, name: &Name) -> Option<&Zone> {
        self.find_key(&NameKey::new(name))
    }

    /// [`ZoneSet::find`] by key.
    pub fn find_key(&self, key: &NameKey) -> Option<&Zone> {
        self.find_indexed(key).map(|(_, zone)| zone)
    }

    /// [`ZoneSet::find_key`] with the zone's place in the set (its health's place in the
    /// snapshot).
    pub fn find_indexed(&self, key: &NameKey) -> Option<(usize, &Zone)> {
        // A server has a handful of zones: comparing each origin with the name's tail beats
        // hashing every suffix of the name.
        if self.zones.len() <= 8 {
            return self
                .zones
                .iter()
                .enumerate()
                .filter(|(_, z)| {
                    z.origin_labels <= key.num_labels()
                        && key.suffix(z.origin_labels) == &*z.origin_key
                })
                .max_by_key(|(_, z)| z.origin_labels)
                .map(|(i, z)| (i, &**z));
        }
        (0..=key.num_labels())
            .rev()
            .find_map(|n| self.index.get(key.suffix(n)))
            .map(|&i| (i, &*self.zones[i]))
    }

    /// The zones in origin order: a zone's place here is its health's place in the snapshot.
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter().map(|z| &**z)
    }

    /// The zones as shared, to tell which ones two sets have in common.
    pub fn shared(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}
