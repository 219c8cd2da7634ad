//! One change to a zone's document as the API makes it and the journal records it: a record
//! set or a pool replaced or removed, an endpoint patched. The same change is applied to the
//! parsed zone model that a change is built from (`model`, with an undo for a change that
//! turns out invalid) and to the zone file's text when the journal is compacted into it
//! (`edit`, keeping its comments), so that a change costs what it touches, not the zone's
//! size.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};

use super::document::EditedDocument;
use super::edit::{EditError, EndpointPatch, ZoneDocument};
use crate::zone::spec::{PoolSpec, RecordSpec};

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
    /// Applies it to a zone file's document, keeping its comments and layout (many edits in
    /// a row: see [`EditedDocument`]).
    pub fn apply_to_document(
        &self,
        doc: &mut ZoneDocument,
        origin: &Name,
    ) -> Result<(), EditError> {
        let mut edited = EditedDocument::new(std::mem::take(doc), origin);
        let applied = edited.apply(self);
        *doc = edited.finish();
        applied
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
    use crate::store::edit;
    use crate::store::model::ZoneModel;
    use crate::zone::spec::ZoneSpec;

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
        let mut model = ZoneModel::new(&origin, toml::from_str(TEXT).unwrap());
        // The same edits in a row on one document, as a compaction applies them.
        let mut in_a_row = EditedDocument::new(edit::parse(TEXT).unwrap(), &origin);
        for (i, edit) in edits().into_iter().chain(churn()).enumerate() {
            let json = serde_json::to_string(&ZoneEdit {
                edit,
                serial: Some(8 + i as u32),
            })
            .unwrap();
            let change: ZoneEdit = serde_json::from_str(&json).unwrap();
            change.apply_to_document(&mut doc, &origin).unwrap();
            in_a_row.apply(&change).unwrap();
            model.apply(&change.edit).unwrap();
            model.set_serial(change.serial);
            let from_text: ZoneSpec = toml::from_str(&doc.to_string()).unwrap();
            assert_eq!(sorted(&from_text), sorted(model.spec()), "after {json}");
        }
        assert!(doc.to_string().starts_with("# the zone"), "comments kept");
        assert_eq!(in_a_row.finish().to_string(), doc.to_string());
    }

    /// Record sets added to and removed from many names, in an order that moves them about.
    fn churn() -> Vec<Edit> {
        let set = |i: usize, rtype: &str| {
            Edit::SetRecords(RecordSpec {
                name: format!("n{}", i % 7),
                rtype: rtype.into(),
                ttl: Some(i as u32),
                data: vec![format!("\"{i}\"")],
            })
        };
        let remove = |i: usize, rtype: &str| Edit::RemoveRecords {
            name: format!("N{}.example.test.", i % 7),
            rtype: rtype.into(),
        };
        let mut out = Vec::new();
        for i in 0..40 {
            out.push(set(i, ["TXT", "SPF"][i % 2]));
            if i % 3 == 2 {
                out.push(remove(i - 1, ["TXT", "SPF"][(i - 1) % 2]));
            }
        }
        out
    }

    /// A model as JSON with its record sets in one order (removals may reorder them).
    fn sorted(spec: &ZoneSpec) -> serde_json::Value {
        let mut value = serde_json::to_value(spec).unwrap();
        if let Some(records) = value.get_mut("records").and_then(|r| r.as_array_mut()) {
            records.sort_by_key(|r| r.to_string().to_lowercase());
        }
        value
    }

    #[test]
    fn an_undo_puts_back_what_an_edit_replaced() {
        let origin = origin();
        let mut model = ZoneModel::new(&origin, toml::from_str(TEXT).unwrap());
        for edit in churn() {
            model.apply(&edit).unwrap();
        }
        for edit in edits().into_iter().chain(churn()) {
            let before = serde_json::to_value(model.spec()).unwrap();
            let Ok(undo) = model.apply(&edit) else {
                continue;
            };
            model.revert(undo);
            assert_eq!(
                serde_json::to_value(model.spec()).unwrap(),
                before,
                "{edit:?}"
            );
            // The index is as true after the undo as before it.
            model.apply(&edit).unwrap();
        }
        let fresh = ZoneModel::new(&origin, model.spec().clone());
        for record in &model.spec().records {
            let found = fresh.record_set(&record.name, &record.rtype).unwrap();
            assert_eq!(
                model.record_set(&record.name, &record.rtype).unwrap().data,
                found.data
            );
        }
        let missing = Edit::PatchEndpoint {
            pool: "new".into(),
            address: "203.0.113.1".parse().unwrap(),
            patch: EndpointPatch::default(),
        };
        let before = serde_json::to_value(model.spec()).unwrap();
        assert!(matches!(model.apply(&missing), Err(EditError::NotFound(_))));
        assert_eq!(serde_json::to_value(model.spec()).unwrap(), before);
    }
}
