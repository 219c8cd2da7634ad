//! One change to a zone's document as the API makes it and the journal records it: a record
//! set or a pool replaced or removed, an endpoint patched. The same change is applied to the
//! parsed zone model that a change is built from (here, with an undo for a change that turns
//! out invalid) and to the zone file's text when the journal is compacted into it (`edit`,
//! keeping its comments), so that a change costs what it touches, not the zone's size.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};

use super::edit::{self, EditError, EndpointPatch, ZoneDocument, same_name};
use crate::zone::spec::{EndpointSpec, PoolSpec, RecordSpec, ZoneSpec};

/// A change to one zone's document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", content = "with", rename_all = "snake_case")]
pub enum Edit {
    SetRecords(RecordSpec),
    RemoveRecords {
        name: String,
        rtype: String,
    },
    SetPool {
        name: String,
        pool: Box<PoolSpec>,
    },
    RemovePool {
        name: String,
    },
    PatchEndpoint {
        pool: String,
        address: IpAddr,
        patch: EndpointPatch,
    },
}

/// A change as the journal records it: the edit and the SOA serial it left (`None`: the
/// document has no `[soa]`; the master file's serves).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneEdit {
    pub edit: Edit,
    pub serial: Option<u32>,
}

impl ZoneEdit {
    /// Applies it to a zone file's document, keeping its comments and layout.
    pub fn apply_to_document(
        &self,
        doc: &mut ZoneDocument,
        origin: &Name,
    ) -> Result<(), EditError> {
        match &self.edit {
            Edit::SetRecords(spec) => edit::set_records(doc, origin, spec)?,
            Edit::RemoveRecords { name, rtype } => edit::remove_records(doc, origin, name, rtype)?,
            Edit::SetPool { name, pool } => edit::set_pool(doc, origin, name, pool)?,
            Edit::RemovePool { name } => edit::remove_pool(doc, origin, name)?,
            Edit::PatchEndpoint {
                pool,
                address,
                patch,
            } => edit::patch_endpoint(doc, origin, pool, *address, patch)?,
        }
        if let Some(serial) = self.serial {
            edit::set_serial(doc, serial);
        }
        Ok(())
    }
}

/// What an edit of a zone model replaced, to put it back.
#[derive(Debug)]
pub enum Undo {
    Records(Vec<RecordSpec>),
    Pool(String, Option<Box<PoolSpec>>),
}

impl Undo {
    pub fn revert(self, spec: &mut ZoneSpec) {
        match self {
            Undo::Records(records) => spec.records = records,
            Undo::Pool(key, Some(pool)) => {
                spec.pools.insert(key, *pool);
            }
            Undo::Pool(key, None) => {
                spec.pools.remove(&key);
            }
        }
    }
}

/// The key of pool `name` in `spec`: the same string first (the usual case, and a lookup),
/// else the same name written another way.
pub fn pool_key(spec: &ZoneSpec, origin: &Name, name: &str) -> Option<String> {
    if spec.pools.contains_key(name) {
        return Some(name.to_owned());
    }
    // An absolute name whose relative form is the key.
    let apex = origin.to_ascii();
    let relative = name
        .strip_suffix(apex.as_str())
        .and_then(|n| n.strip_suffix('.'));
    if let Some(relative) = relative
        && spec.pools.contains_key(relative)
    {
        return Some(relative.to_owned());
    }
    let mut keys = spec.pools.keys();
    keys.find(|k| same_name(origin, k, name)).cloned()
}

/// Applies `edit` to the zone model `spec`, as [`ZoneEdit::apply_to_document`] does to its
/// text (the serial aside): what it replaced, to undo it.
pub fn apply_to_spec(spec: &mut ZoneSpec, origin: &Name, edit: &Edit) -> Result<Undo, EditError> {
    let same_set = |r: &RecordSpec, name: &str, rtype: &str| {
        same_name(origin, &r.name, name) && r.rtype.eq_ignore_ascii_case(rtype)
    };
    match edit {
        Edit::SetRecords(set) => {
            let undo = Undo::Records(spec.records.clone());
            match spec
                .records
                .iter_mut()
                .find(|r| same_set(r, &set.name, &set.rtype))
            {
                Some(existing) => *existing = set.clone(),
                None => spec.records.push(set.clone()),
            }
            Ok(undo)
        }
        Edit::RemoveRecords { name, rtype } => {
            let at = spec.records.iter().position(|r| same_set(r, name, rtype));
            let at = at.ok_or_else(|| EditError::NotFound(format!("record set {name} {rtype}")))?;
            let undo = Undo::Records(spec.records.clone());
            spec.records.remove(at);
            Ok(undo)
        }
        Edit::SetPool { name, pool } => {
            let key = pool_key(spec, origin, name).unwrap_or_else(|| name.clone());
            let old = spec.pools.insert(key.clone(), PoolSpec::clone(pool));
            Ok(Undo::Pool(key, old.map(Box::new)))
        }
        Edit::RemovePool { name } => {
            let key = pool_key(spec, origin, name)
                .ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
            let old = spec.pools.remove(&key);
            Ok(Undo::Pool(key, old.map(Box::new)))
        }
        Edit::PatchEndpoint {
            pool,
            address,
            patch,
        } => {
            let key = pool_key(spec, origin, pool)
                .ok_or_else(|| EditError::NotFound(format!("pool {pool}")))?;
            let entry = spec.pools.get_mut(&key).expect("the key was found");
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
                true => Ok(Undo::Pool(key, Some(old))),
                false => Err(EditError::NotFound(format!(
                    "endpoint {address} in pool {pool}"
                ))),
            }
        }
    }
}

fn patch_spec(endpoint: &mut EndpointSpec, patch: &EndpointPatch) {
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

/// The owner name whose record sets an edit changes, if it is one.
pub fn records_changed(edit: &Edit) -> Option<&str> {
    match edit {
        Edit::SetRecords(set) => Some(&set.name),
        Edit::RemoveRecords { name, .. } => Some(name),
        _ => None,
    }
}

/// The pool an edit changes and keeps (so that it can be rebuilt alone), if it is one.
pub fn pool_changed(edit: &Edit) -> Option<&str> {
    match edit {
        Edit::SetPool { name, .. } => Some(name),
        Edit::PatchEndpoint { pool, .. } => Some(pool),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# the zone
ns = ["ns1"]

[soa]
mname = "ns1"
rname = "hm"
serial = 7

[[records]]
name = "www" # the site
type = "TXT"
data = ["\"a\""]

[pools.api]
policy = "weighted"
endpoints = ["192.0.2.1", { address = "192.0.2.2", weight = 2 }]

[pools.geo]
policy = "geo"
[[pools.geo.datacenters]]
name = "eu"
latitude = 50.0
longitude = 8.0
endpoints = ["192.0.2.9"]
"#;

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    fn edits() -> Vec<Edit> {
        let patch: EndpointPatch =
            serde_json::from_str(r#"{"weight": 5, "drain": true, "force": "down"}"#).unwrap();
        let unforce: EndpointPatch = serde_json::from_str(r#"{"force": null}"#).unwrap();
        let pool: Box<PoolSpec> =
            serde_json::from_str(r#"{"policy": "round_robin", "endpoints": ["198.51.100.1"]}"#)
                .unwrap();
        vec![
            Edit::PatchEndpoint {
                pool: "api".into(),
                address: "192.0.2.1".parse().unwrap(),
                patch,
            },
            Edit::PatchEndpoint {
                pool: "geo.example.test.".into(),
                address: "192.0.2.9".parse().unwrap(),
                patch: unforce,
            },
            Edit::SetRecords(RecordSpec {
                name: "www".into(),
                rtype: "txt".into(),
                ttl: Some(60),
                data: vec!["\"b\"".into()],
            }),
            Edit::SetRecords(RecordSpec {
                name: "mail".into(),
                rtype: "A".into(),
                ttl: None,
                data: vec!["192.0.2.25".into()],
            }),
            Edit::SetPool {
                name: "new".into(),
                pool,
            },
            Edit::RemovePool { name: "api".into() },
            Edit::RemoveRecords {
                name: "WWW".into(),
                rtype: "TXT".into(),
            },
        ]
    }

    /// The model and the text, changed the two ways, say the same; through the journal's
    /// JSON too.
    #[test]
    fn the_model_and_the_text_change_alike() {
        let origin = origin();
        let mut doc = edit::parse(TEXT).unwrap();
        let mut spec: ZoneSpec = toml::from_str(TEXT).unwrap();
        for (i, edit) in edits().into_iter().enumerate() {
            let json = serde_json::to_string(&ZoneEdit {
                edit,
                serial: Some(8 + i as u32),
            })
            .unwrap();
            let change: ZoneEdit = serde_json::from_str(&json).unwrap();
            change.apply_to_document(&mut doc, &origin).unwrap();
            apply_to_spec(&mut spec, &origin, &change.edit).unwrap();
            spec.soa.as_mut().unwrap().serial = change.serial.unwrap();
            let from_text: ZoneSpec = toml::from_str(&doc.to_string()).unwrap();
            assert_eq!(
                serde_json::to_value(&from_text).unwrap(),
                serde_json::to_value(&spec).unwrap(),
                "after {json}"
            );
        }
        assert!(doc.to_string().starts_with("# the zone"), "comments kept");
    }

    #[test]
    fn an_undo_puts_back_what_an_edit_replaced() {
        let origin = origin();
        let mut spec: ZoneSpec = toml::from_str(TEXT).unwrap();
        let before = serde_json::to_value(&spec).unwrap();
        for edit in edits() {
            let undo = apply_to_spec(&mut spec, &origin, &edit).unwrap();
            undo.revert(&mut spec);
            assert_eq!(serde_json::to_value(&spec).unwrap(), before);
        }
        let missing = Edit::PatchEndpoint {
            pool: "api".into(),
            address: "203.0.113.1".parse().unwrap(),
            patch: EndpointPatch::default(),
        };
        assert!(matches!(
            apply_to_spec(&mut spec, &origin, &missing),
            Err(EditError::NotFound(_))
        ));
        assert_eq!(serde_json::to_value(&spec).unwrap(), before);
    }
}
