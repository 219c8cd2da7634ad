//! A zone's TOML document as the writer path keeps it between changes: the parsed model with
//! its record sets and pools found by owner name through an index, so that an edit, its undo
//! and a read of one record set cost the same at ten names or at two hundred thousand.

use std::collections::HashMap;

use hickory_proto::rr::Name;

use super::change::Edit;
use super::edit::EditError;
use crate::zone::spec::{EndpointSpec, PoolSpec, RecordSpec, ZoneSpec};

/// A zone's document model and its owner-name index.
#[derive(Debug, Clone)]
pub struct ZoneModel {
    origin: Name,
    spec: ZoneSpec,
    /// The positions in `spec.records` of the record sets at each owner name.
    owners: HashMap<Name, Vec<usize>>,
    /// The owner name of each entry of `spec.records` (`None`: not a name; the zone's build
    /// refuses it).
    owner_of: Vec<Option<Name>>,
    /// The key in `spec.pools` of each pool, by its owner name.
    pools: HashMap<Name, String>,
}

/// What an edit of a model replaced, to put it back (see [`ZoneModel::revert`]).
#[derive(Debug)]
pub enum Undo {
    /// Record set `at` was replaced by the edit (`Some`: what it was) or pushed (`None`).
    Set { at: usize, old: Option<RecordSpec> },
    /// Record set `at` was removed (the last one moved into its place).
    Removed { at: usize, old: RecordSpec },
    /// Pool `key` was replaced or removed (`Some`: what it was) or added (`None`).
    Pool {
        key: String,
        old: Option<Box<PoolSpec>>,
    },
}

impl ZoneModel {
    pub fn new(origin: &Name, spec: ZoneSpec) -> Self {
        let mut model = Self {
            origin: origin.to_lowercase(),
            spec,
            owners: HashMap::new(),
            owner_of: Vec::new(),
            pools: HashMap::new(),
        };
        let names: Vec<Option<Name>> = model
            .spec
            .records
            .iter()
            .map(|r| model.owner(&r.name))
            .collect();
        for (at, name) in names.iter().enumerate() {
            if let Some(name) = name {
                model.owners.entry(name.clone()).or_default().push(at);
            }
        }
        model.owner_of = names;
        let keys: Vec<String> = model.spec.pools.keys().cloned().collect();
        for key in keys {
            if let Some(name) = model.owner(&key) {
                model.pools.entry(name).or_insert(key);
            }
        }
        model
    }

    pub fn spec(&self) -> &ZoneSpec {
        &self.spec
    }

    pub fn into_spec(self) -> ZoneSpec {
        self.spec
    }

    /// Sets the SOA serial, if the document has an `[soa]`.
    pub fn set_serial(&mut self, serial: Option<u32>) {
        if let (Some(soa), Some(serial)) = (self.spec.soa.as_mut(), serial) {
            soa.serial = serial;
        }
    }

    /// The SOA serial, if the document has an `[soa]`.
    pub fn serial(&self) -> Option<u32> {
        self.spec.soa.as_ref().map(|soa| soa.serial)
    }

    /// `name` made absolute against the origin, in lower case (`None`: not a name).
    fn owner(&self, name: &str) -> Option<Name> {
        let owner = crate::zone::parse_owner(&self.origin, name).ok()?;
        Some(owner.to_lowercase())
    }

    /// The record sets at `owner` (absolute, any case).
    pub fn records_at(&self, owner: &Name) -> impl Iterator<Item = &RecordSpec> {
        let at = self.owners.get(&owner.to_lowercase());
        at.into_iter().flatten().map(|&i| &self.spec.records[i])
    }

    /// The record set `name`/`rtype`, if there is one.
    pub fn record_set(&self, name: &str, rtype: &str) -> Option<&RecordSpec> {
        self.position(name, rtype).map(|at| &self.spec.records[at])
    }

    fn position(&self, name: &str, rtype: &str) -> Option<usize> {
        let code = crate::presentation::type_code(rtype)?;
        let at = self.owners.get(&self.owner(name)?)?;
        let same = |&&i: &&usize| {
            let here = &self.spec.records[i].rtype;
            crate::presentation::type_code(here) == Some(code)
        };
        at.iter().find(same).copied()
    }

    /// The key in the document's `pools` of pool `name`, if it exists: the same string, or
    /// the same name written another way.
    pub fn pool_key(&self, name: &str) -> Option<&str> {
        if let Some((key, _)) = self.spec.pools.get_key_value(name) {
            return Some(key);
        }
        self.pools.get(&self.owner(name)?).map(String::as_str)
    }

    /// Pool `name`, if it exists.
    pub fn pool(&self, name: &str) -> Option<&PoolSpec> {
        self.spec.pools.get(self.pool_key(name)?)
    }

    /// Applies `edit`, as `ZoneEdit::apply_to_document` does to the document's text (the
    /// serial aside): what it replaced, to undo it.
    pub fn apply(&mut self, edit: &Edit) -> Result<Undo, EditError> {
        match edit {
            Edit::SetRecords(set) => Ok(match self.position(&set.name, &set.rtype) {
                Some(at) => {
                    let old = std::mem::replace(&mut self.spec.records[at], set.clone());
                    Undo::Set { at, old: Some(old) }
                }
                None => {
                    let at = self.spec.records.len();
                    self.push_record(set.clone());
                    Undo::Set { at, old: None }
                }
            }),
            Edit::RemoveRecords { name, rtype } => {
                let at = self.position(name, rtype);
                let at =
                    at.ok_or_else(|| EditError::NotFound(format!("record set {name} {rtype}")))?;
                let old = self.swap_remove_record(at);
                Ok(Undo::Removed { at, old })
            }
            Edit::SetPool { name, pool } => {
                let key = self.pool_key(name).unwrap_or(name).to_owned();
                let old = self.insert_pool(key.clone(), PoolSpec::clone(pool));
                Ok(Undo::Pool {
                    key,
                    old: old.map(Box::new),
                })
            }
            Edit::RemovePool { name } => {
                let key = self.pool_key(name);
                let key = key.ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
                let key = key.to_owned();
                let old = self.remove_pool(&key);
                Ok(Undo::Pool {
                    key,
                    old: old.map(Box::new),
                })
            }
            Edit::PatchEndpoint {
                pool,
                address,
                patch,
            } => {
                let missing = || EditError::NotFound(format!("pool {pool}"));
                let key = self.pool_key(pool).ok_or_else(missing)?.to_owned();
                let entry = self.spec.pools.get_mut(&key).ok_or_else(missing)?;
                let old = Box::new(entry.clone());
                let endpoints = entry.endpoints.iter_mut();
                let endpoints =
                    endpoints.chain(entry.datacenters.iter_mut().flat_map(|d| &mut d.endpoints));
                let mut found = false;
                for endpoint in endpoints.filter(|e| e.address == *address) {
                    patch_spec(endpoint, patch);
                    found = true;
                }
                match found {
                    true => Ok(Undo::Pool {
                        key,
                        old: Some(old),
                    }),
                    false => Err(EditError::NotFound(format!(
                        "endpoint {address} in pool {pool}"
                    ))),
                }
            }
        }
    }

    /// Puts back what an edit replaced (the last edit applied first).
    pub fn revert(&mut self, undo: Undo) {
        match undo {
            Undo::Set { at, old: Some(old) } => self.spec.records[at] = old,
            Undo::Set { at, old: None } => {
                debug_assert_eq!(at + 1, self.spec.records.len());
                self.swap_remove_record(at);
            }
            Undo::Removed { at, old } => {
                // The removal moved the last record set into `at`: move it back.
                self.push_record(old);
                let last = self.spec.records.len() - 1;
                if at != last {
                    self.swap_records(at, last);
                }
            }
            Undo::Pool {
                key,
                old: Some(old),
            } => {
                self.insert_pool(key, *old);
            }
            Undo::Pool { key, old: None } => {
                self.remove_pool(&key);
            }
        }
    }

    fn push_record(&mut self, record: RecordSpec) {
        let at = self.spec.records.len();
        let owner = self.owner(&record.name);
        if let Some(owner) = &owner {
            self.owners.entry(owner.clone()).or_default().push(at);
        }
        self.owner_of.push(owner);
        self.spec.records.push(record);
    }

    /// Removes record set `at`, moving the last one into its place.
    fn swap_remove_record(&mut self, at: usize) -> RecordSpec {
        let last = self.spec.records.len() - 1;
        if at != last {
            self.swap_records(at, last);
        }
        if let Some(owner) = self.owner_of.pop().flatten() {
            self.unindex(&owner, last);
        }
        self.spec.records.pop().expect("a record set at `at`")
    }

    /// Swaps two record sets, keeping the index true.
    fn swap_records(&mut self, a: usize, b: usize) {
        let (slot_a, slot_b) = (self.slot(a), self.slot(b));
        for (slot, to) in [(slot_a, b), (slot_b, a)] {
            if let Some((owner, i)) = slot
                && let Some(list) = self.owners.get_mut(&owner)
            {
                list[i] = to;
            }
        }
        self.spec.records.swap(a, b);
        self.owner_of.swap(a, b);
    }

    /// Where record set `at` is in its owner's list.
    fn slot(&self, at: usize) -> Option<(Name, usize)> {
        let owner = self.owner_of[at].clone()?;
        let i = self.owners.get(&owner)?.iter().position(|&x| x == at)?;
        Some((owner, i))
    }

    fn unindex(&mut self, owner: &Name, at: usize) {
        if let Some(list) = self.owners.get_mut(owner) {
            list.retain(|&i| i != at);
            if list.is_empty() {
                self.owners.remove(owner);
            }
        }
    }

    fn insert_pool(&mut self, key: String, pool: PoolSpec) -> Option<PoolSpec> {
        if let Some(owner) = self.owner(&key) {
            self.pools.insert(owner, key.clone());
        }
        self.spec.pools.insert(key, pool)
    }

    fn remove_pool(&mut self, key: &str) -> Option<PoolSpec> {
        if let Some(owner) = self.owner(key)
            && self.pools.get(&owner).is_some_and(|k| k == key)
        {
            self.pools.remove(&owner);
        }
        self.spec.pools.remove(key)
    }
}

fn patch_spec(endpoint: &mut EndpointSpec, patch: &super::edit::EndpointPatch) {
    if let Some(weight) = patch.weight {
        endpoint.weight = weight;
    }
    if let Some(drain) = patch.drain {
        endpoint.drain = drain;
    }
    if let Some(force) = patch.force {
        endpoint.force = force;
    }
}
