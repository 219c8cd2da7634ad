//! A zone file's document changed by many edits in a row (a compaction, a read after a
//! replay): its record sets and pools are found through an index built once and removed
//! record sets are dropped at the end, so that n edits cost what they touch, not n times the
//! zone's size. Each edit changes the text as `edit` does, keeping comments and layout.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::Name;

use super::change::{Edit, ZoneEdit};
use super::edit::{self, EditError, ZoneDocument};

/// A document and where its record sets and pools are.
pub struct EditedDocument {
    doc: ZoneDocument,
    origin: Name,
    /// The position of each record set in the document's `records`, by owner and type code.
    records: HashMap<(Name, u16), usize>,
    /// Positions of record sets removed, dropped by [`EditedDocument::finish`].
    removed: HashSet<usize>,
    /// The key in `pools` of each pool, by its owner name.
    pools: HashMap<Name, String>,
}

impl EditedDocument {
    pub fn new(doc: ZoneDocument, origin: &Name) -> Self {
        let origin = origin.to_lowercase();
        let mut records = HashMap::new();
        for (at, key) in edit::record_keys(&doc, &origin).into_iter().enumerate() {
            if let Some(key) = key {
                records.entry(key).or_insert(at);
            }
        }
        let mut pools = HashMap::new();
        for key in edit::pool_keys(&doc) {
            if let Some(owner) = owner(&origin, &key) {
                pools.entry(owner).or_insert(key);
            }
        }
        Self {
            doc,
            origin,
            records,
            removed: HashSet::new(),
            pools,
        }
    }

    /// Applies one edit, as `ZoneEdit::apply_to_document` does.
    pub fn apply(&mut self, change: &ZoneEdit) -> Result<(), EditError> {
        match &change.edit {
            Edit::SetRecords(spec) => {
                let key = self.record_key(&spec.name, &spec.rtype);
                let at = key.as_ref().and_then(|k| self.records.get(k).copied());
                let now = edit::set_records_at(&mut self.doc, at, spec)?;
                if let Some(key) = key {
                    self.records.insert(key, now);
                }
            }
            Edit::RemoveRecords { name, rtype } => {
                let key = self.record_key(name, rtype);
                let at = key.and_then(|k| self.records.remove(&k));
                let at =
                    at.ok_or_else(|| EditError::NotFound(format!("record set {name} {rtype}")))?;
                self.removed.insert(at);
            }
            Edit::SetPool { name, pool } => {
                let key = self.pool_key(name).unwrap_or_else(|| name.clone());
                edit::set_pool_at(&mut self.doc, &key, pool)?;
                if let Some(owner) = owner(&self.origin, &key) {
                    self.pools.insert(owner, key);
                }
            }
            Edit::RemovePool { name } => {
                let key = self.pool_key(name);
                let key = key.ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
                edit::remove_pool_at(&mut self.doc, &key);
                if let Some(owner) = owner(&self.origin, &key) {
                    self.pools.remove(&owner);
                }
            }
            Edit::PatchEndpoint {
                pool,
                address,
                patch,
            } => {
                let key = self.pool_key(pool);
                let key = key.ok_or_else(|| EditError::NotFound(format!("pool {pool}")))?;
                edit::patch_endpoint_at(&mut self.doc, &key, pool, *address, patch)?;
            }
        }
        if let Some(serial) = change.serial {
            edit::set_serial(&mut self.doc, serial);
        }
        Ok(())
    }

    /// The document with every edit applied.
    pub fn finish(mut self) -> ZoneDocument {
        if !self.removed.is_empty() {
            edit::remove_records_at(&mut self.doc, &self.removed);
        }
        self.doc
    }

    fn record_key(&self, name: &str, rtype: &str) -> Option<(Name, u16)> {
        Some((
            owner(&self.origin, name)?,
            crate::presentation::type_code(rtype)?,
        ))
    }

    /// The key in `pools` of pool `name`, if it exists: the same string, or the same name
    /// written another way.
    fn pool_key(&self, name: &str) -> Option<String> {
        let pools = self
            .doc
            .get("pools")
            .and_then(toml_edit::Item::as_table_like);
        if pools.is_some_and(|p| p.contains_key(name)) {
            return Some(name.to_owned());
        }
        self.pools.get(&owner(&self.origin, name)?).cloned()
    }
}

/// `name` made absolute against `origin`, in lower case (`None`: not a name).
fn owner(origin: &Name, name: &str) -> Option<Name> {
    Some(crate::zone::parse_owner(origin, name).ok()?.to_lowercase())
}
