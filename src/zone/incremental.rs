//! Changes to a built zone that rebuild only what they touch: one pool replaced, the SOA
//! serial bumped. Every other node is shared with the zone it came from (see `nodes`), and so
//! are its health slots, so that a change costs the same in a zone of ten pools or of a
//! hundred thousand. Where a change would renumber the slots, the caller builds the whole
//! zone instead.

use std::sync::Arc;

use hickory_proto::rr::{RData, Record, RecordType};

use super::spec::{RecordSpec, ZoneSpec};
use super::{Name, Node, Pool, RrSet, Zone, build, key, slots};

impl Zone {
    /// This zone with the existing pool at `owner` replaced by `pool` (built alone), if the
    /// change keeps the zone's slots (see `slots::reuse`) and the pool's fallback is a pool
    /// of the zone. `None`: build the whole zone, which also reports what is wrong.
    pub fn with_pool(&self, owner: &Name, mut pool: Pool) -> Option<Zone> {
        let key = key::owned(&owner.to_lowercase());
        let old = self.nodes.get(&key)?;
        if !slots::reuse(&self.slots, &old.name, old.pool.as_ref()?, &mut pool) {
            return None;
        }
        if let Some(target) = &pool.fallback
            && self.node(target).is_none_or(|n| n.pool.is_none())
        {
            return None;
        }
        let node = Node {
            name: old.name.clone(),
            rrsets: old.rrsets.clone(),
            pool: Some(pool),
            is_cut: old.is_cut,
            dname: old.dname.clone(),
        };
        Some(self.with_nodes(self.nodes.replacing(&key, node)))
    }

    /// This zone with the static record sets at `owner` as `spec` (the zone's edited model)
    /// gives them, built alone, if that leaves the zone's shape as it was: no master file, not
    /// the apex, no pool at the name, no delegation there before or after, and a name that
    /// keeps some record (an emptied name may have to go) or a new name under an existing one.
    /// `None`: build the whole zone, which also reports what is wrong.
    pub fn with_records(
        &self,
        spec: &ZoneSpec,
        records: Vec<RecordSpec>,
        owner: &Name,
    ) -> Option<Zone> {
        let owner = owner.to_lowercase();
        if spec.master_file.is_some() || owner == self.origin || !self.origin.zone_of(&owner) {
            return None;
        }
        let alone = ZoneSpec {
            ttl: spec.ttl,
            records,
            ..ZoneSpec::default()
        };
        let mut nodes = build::static_only(&self.origin, &alone).ok()?;
        let rrsets = nodes.remove(&owner).map(|n| n.rrsets).unwrap_or_default();
        if rrsets.is_empty()
            || rrsets
                .iter()
                .any(|s| matches!(s.rtype, RecordType::NS | RecordType::DNAME))
        {
            return None;
        }
        let key = key::owned(&owner);
        let node = Node {
            name: owner.clone(),
            rrsets,
            pool: None,
            is_cut: false,
            dname: None,
        };
        let nodes = match self.nodes.get(&key) {
            Some(old) if old.pool.is_some() || old.is_cut || old.dname.is_some() => return None,
            Some(_) => self.nodes.replacing(&key, node),
            None if self.nodes.contains_key(&key::owned(&owner.base_name())) => {
                self.nodes.inserting(key, node)
            }
            None => return None,
        };
        let mut zone = self.with_nodes(nodes);
        zone.has_wildcards |= build::is_wildcard(&owner);
        Some(zone)
    }

    /// This zone with its SOA serial set to `serial`, if its apex holds no pool. `None`: build
    /// the whole zone.
    pub fn with_serial(&self, serial: u32) -> Option<Zone> {
        let set_serial = |record: &Record| {
            let mut record = record.clone();
            if let RData::SOA(soa) = &mut record.data {
                soa.serial = serial;
            }
            record
        };
        let apex = self.nodes.get(&self.origin_key)?;
        if apex.pool.is_some() {
            return None;
        }
        let rrsets = apex.rrsets.iter().map(|set| match set.rtype {
            RecordType::SOA => RrSet {
                rtype: set.rtype,
                records: set.records.iter().map(set_serial).collect(),
            },
            _ => set.clone(),
        });
        let node = Node {
            name: apex.name.clone(),
            rrsets: rrsets.collect(),
            pool: None,
            is_cut: apex.is_cut,
            dname: apex.dname.clone(),
        };
        let mut zone = self.with_nodes(self.nodes.replacing(&self.origin_key, node));
        zone.soa = set_serial(&self.soa);
        zone.negative_soa = set_serial(&self.negative_soa);
        Some(zone)
    }

    /// This zone with `nodes` instead of its own.
    fn with_nodes(&self, nodes: super::nodes::NodeMap) -> Zone {
        Zone {
            origin: self.origin.clone(),
            origin_key: self.origin_key.clone(),
            origin_labels: self.origin_labels,
            soa: self.soa.clone(),
            negative_soa: self.negative_soa.clone(),
            nodes,
            counters: Arc::clone(&self.counters),
            has_cuts: self.has_cuts,
            has_dnames: self.has_dnames,
            has_wildcards: self.has_wildcards,
            slots: Arc::clone(&self.slots),
            master_file: self.master_file.clone(),
            version: super::next_version(),
            read_from: self.read_from.clone(),
            pool_transfer: self.pool_transfer,
            signer: self.signer.clone(),
            changed: std::time::SystemTime::now(),
        }
    }
}
