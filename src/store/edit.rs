//! Changes to one zone file's text that keep its comments and layout where they can
//! (toml_edit): replace or remove a record set or a pool, patch an endpoint, bump the serial.
//! The edited text is then validated by the same load and build as start-up before it is
//! written.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use serde::Serialize;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// A zone file open for editing (toml_edit stays named only in `store`).
pub type ZoneDocument = DocumentMut;

use crate::zone::spec::{Force, PoolSpec, RecordSpec};

/// Why an edit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// Changes to one endpoint (PATCH). `force: Some(None)` clears an override.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// A load report (`least_load`): served at once, not written to the zone.
    #[serde(skip_serializing)]
    pub load: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<bool>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub force: Option<Option<Force>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Force>>, D::Error> {
    use serde::Deserialize;
    Option::<Force>::deserialize(d).map(Some)
}

pub fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Invalid(format!("the zone file does not parse: {e}")))
}

/// A serde value as a TOML table item.
fn to_table<T: Serialize>(value: &T) -> Result<Table, EditError> {
    let text = toml::to_string(value).map_err(|e| EditError::Invalid(e.to_string()))?;
    let doc = parse(&text)?;
    Ok(doc.as_table().clone())
}

/// Two owner names are the same name once made absolute against the origin.
fn same_name(origin: &Name, a: &str, b: &str) -> bool {
    match (
        crate::zone::parse_owner(origin, a),
        crate::zone::parse_owner(origin, b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Replaces the record set `name`/`rtype` (or adds it at the end).
pub fn set_records(
    doc: &mut DocumentMut,
    origin: &Name,
    spec: &RecordSpec,
) -> Result<(), EditError> {
    let at = records(doc)?.map(|array| {
        let mut tables = array.iter();
        tables.position(|t| matches(t, origin, &spec.name, &spec.rtype))
    });
    set_records_at(doc, at.flatten(), spec).map(drop)
}

/// The document's record sets, if it has any.
fn records(doc: &DocumentMut) -> Result<Option<&toml_edit::ArrayOfTables>, EditError> {
    match doc.get("records") {
        None => Ok(None),
        Some(item) => item.as_array_of_tables().map(Some).ok_or_else(not_tables),
    }
}

fn not_tables() -> EditError {
    EditError::Invalid("records must be an array of tables".into())
}

/// Replaces the record set at position `at` of the document's record sets with `spec`
/// (`None`: adds it at the end): where it is now.
pub(super) fn set_records_at(
    doc: &mut DocumentMut,
    at: Option<usize>,
    spec: &RecordSpec,
) -> Result<usize, EditError> {
    let table = to_table(spec)?;
    let records = doc
        .entry("records")
        .or_insert(Item::ArrayOfTables(Default::default()));
    let array = records.as_array_of_tables_mut().ok_or_else(not_tables)?;
    match at.and_then(|at| array.get_mut(at)) {
        Some(existing) => {
            // Keep the entry's place (and the comments before it).
            let decor = existing.decor().clone();
            *existing = table;
            *existing.decor_mut() = decor;
            Ok(at.expect("found at `at`"))
        }
        None => {
            array.push(table);
            Ok(array.len() - 1)
        }
    }
}

fn matches(t: &Table, origin: &Name, name: &str, rtype: &str) -> bool {
    let field = |k: &str| {
        t.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let code = |t: &str| crate::presentation::type_code(t);
    same_name(origin, &field("name"), name)
        && code(&field("type")).is_some_and(|c| Some(c) == code(rtype))
}

/// Removes the record set `name`/`rtype`.
pub fn remove_records(
    doc: &mut DocumentMut,
    origin: &Name,
    name: &str,
    rtype: &str,
) -> Result<(), EditError> {
    let array = doc
        .get_mut("records")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| EditError::NotFound(format!("record set {name} {rtype}")))?;
    let index = (0..array.len())
        .find(|&i| {
            array
                .get(i)
                .is_some_and(|t| matches(t, origin, name, rtype))
        })
        .ok_or_else(|| EditError::NotFound(format!("record set {name} {rtype}")))?;
    array.remove(index);
    if array.is_empty() {
        doc.remove("records");
    }
    Ok(())
}

/// Removes the record sets at the positions `removed` of the document's record sets.
pub(super) fn remove_records_at(doc: &mut DocumentMut, removed: &std::collections::HashSet<usize>) {
    let Some(array) = doc
        .get_mut("records")
        .and_then(Item::as_array_of_tables_mut)
    else {
        return;
    };
    let mut at = 0;
    array.retain(|_| {
        at += 1;
        !removed.contains(&(at - 1))
    });
    if array.is_empty() {
        doc.remove("records");
    }
}

/// Each record set of the document: its owner name (absolute, lower case) and type code.
pub(super) fn record_keys(doc: &DocumentMut, origin: &Name) -> Vec<Option<(Name, u16)>> {
    let Ok(Some(array)) = records(doc) else {
        return Vec::new();
    };
    let key = |t: &Table| {
        let field = |k: &str| t.get(k).and_then(|v| v.as_str());
        let owner = crate::zone::parse_owner(origin, field("name")?).ok()?;
        Some((
            owner.to_lowercase(),
            crate::presentation::type_code(field("type")?)?,
        ))
    };
    array.iter().map(key).collect()
}

/// The keys of the document's pools.
pub(super) fn pool_keys(doc: &DocumentMut) -> Vec<String> {
    let pools = doc.get("pools").and_then(Item::as_table_like);
    pools.map_or_else(Vec::new, |p| p.iter().map(|(k, _)| k.to_owned()).collect())
}

/// The key of pool `name` in the `pools` table, if it exists: the same string first (a
/// lookup), else the same name written another way.
fn pool_key(doc: &DocumentMut, origin: &Name, name: &str) -> Option<String> {
    let pools = doc.get("pools")?.as_table_like()?;
    if pools.contains_key(name) {
        return Some(name.to_owned());
    }
    pools
        .iter()
        .map(|(k, _)| k.to_owned())
        .find(|k| same_name(origin, k, name))
}

/// Replaces pool `name` (or adds it).
pub fn set_pool(
    doc: &mut DocumentMut,
    origin: &Name,
    name: &str,
    spec: &PoolSpec,
) -> Result<(), EditError> {
    let key = pool_key(doc, origin, name).unwrap_or_else(|| name.to_owned());
    set_pool_at(doc, &key, spec)
}

/// Replaces (or adds) the pool whose key in `pools` is `key`.
pub(super) fn set_pool_at(
    doc: &mut DocumentMut,
    key: &str,
    spec: &PoolSpec,
) -> Result<(), EditError> {
    let table = to_table(spec)?;
    // What a pool that says nothing holds: not written where the file did not say it.
    let defaults = toml::from_str::<PoolSpec>("")
        .map_err(|e| EditError::Invalid(e.to_string()))
        .and_then(|d| to_table(&d))?;
    let pools = doc.entry("pools").or_insert(Item::Table(Table::new()));
    let Some(pools) = pools.as_table_mut() else {
        return Err(EditError::Invalid("pools must be a table".into()));
    };
    pools.set_implicit(true);
    match pools.get_mut(key).and_then(Item::as_table_mut) {
        Some(old) => super::restyle::merge(old, table, &defaults),
        None => {
            let table = super::restyle::without_defaults(table, &defaults);
            pools.insert(key, Item::Table(table));
        }
    }
    Ok(())
}

/// Removes pool `name`.
pub fn remove_pool(doc: &mut DocumentMut, origin: &Name, name: &str) -> Result<(), EditError> {
    let key =
        pool_key(doc, origin, name).ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
    remove_pool_at(doc, &key);
    Ok(())
}

/// Removes the pool whose key in `pools` is `key`.
pub(super) fn remove_pool_at(doc: &mut DocumentMut, key: &str) {
    if let Some(pools) = doc.get_mut("pools").and_then(Item::as_table_like_mut) {
        pools.remove(key);
    }
}

/// Applies `patch` to the endpoint `address` of pool `name` (in its endpoints or any of its
/// datacenters').
pub fn patch_endpoint(
    doc: &mut DocumentMut,
    origin: &Name,
    name: &str,
    address: IpAddr,
    patch: &EndpointPatch,
) -> Result<(), EditError> {
    let key =
        pool_key(doc, origin, name).ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
    patch_endpoint_at(doc, &key, name, address, patch)
}

/// [`patch_endpoint`] of the pool whose key in `pools` is `key` (`name`: as the edit wrote it).
pub(super) fn patch_endpoint_at(
    doc: &mut DocumentMut,
    key: &str,
    name: &str,
    address: IpAddr,
    patch: &EndpointPatch,
) -> Result<(), EditError> {
    let pool = doc
        .get_mut("pools")
        .and_then(|p| p.get_mut(key))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| EditError::NotFound(format!("pool {name}")))?;
    let mut done = false;
    visit_endpoints(pool, &mut |ep| {
        let here = ep
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| a.parse::<IpAddr>().ok());
        if here == Some(address) {
            apply(ep, patch);
            done = true;
        }
    });
    match done {
        true => Ok(()),
        false => Err(EditError::NotFound(format!(
            "endpoint {address} in pool {name}"
        ))),
    }
}

fn apply(ep: &mut dyn TableLike, patch: &EndpointPatch) {
    if let Some(w) = patch.weight {
        ep.insert("weight", Item::Value(Value::from(i64::from(w))));
    }
    match patch.drain {
        Some(true) => {
            ep.insert("drain", Item::Value(Value::from(true)));
        }
        Some(false) => {
            ep.remove("drain");
        }
        None => {}
    }
    match patch.force {
        Some(Some(force)) => {
            let text = match force {
                Force::Up => "up",
                Force::Down => "down",
            };
            ep.insert("force", Item::Value(Value::from(text)));
        }
        Some(None) => {
            ep.remove("force");
        }
        None => {}
    }
}

/// Calls `f` on every endpoint table of a pool: `endpoints`, and `datacenters[*].endpoints`,
/// whether written as inline tables or as arrays of tables.
fn visit_endpoints(pool: &mut dyn TableLike, f: &mut dyn FnMut(&mut dyn TableLike)) {
    if let Some(eps) = pool.get_mut("endpoints") {
        visit_list(eps, f);
    }
    if let Some(dcs) = pool.get_mut("datacenters") {
        match dcs {
            Item::ArrayOfTables(a) => {
                for dc in a.iter_mut() {
                    if let Some(eps) = dc.get_mut("endpoints") {
                        visit_list(eps, f);
                    }
                }
            }
            Item::Value(Value::Array(a)) => {
                for dc in a.iter_mut() {
                    if let Value::InlineTable(dc) = dc
                        && let Some(eps) = dc.get_mut("endpoints")
                        && let Value::Array(eps) = eps
                    {
                        visit_array(eps, f);
                    }
                }
            }
            _ => {}
        }
    }
}

fn visit_list(list: &mut Item, f: &mut dyn FnMut(&mut dyn TableLike)) {
    match list {
        Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                f(t);
            }
        }
        Item::Value(Value::Array(a)) => visit_array(a, f),
        _ => {}
    }
}

/// Endpoints in an array: inline tables, or addresses alone, which become a table only when
/// `f` gives them a setting.
fn visit_array(endpoints: &mut Array, f: &mut dyn FnMut(&mut dyn TableLike)) {
    for v in endpoints.iter_mut() {
        match v {
            Value::InlineTable(t) => f(t),
            Value::String(address) => {
                let mut table = InlineTable::new();
                table.insert("address", Value::from(address.value().as_str()));
                f(&mut table);
                if table.len() > 1 {
                    let decor = v.decor().clone();
                    *v = Value::InlineTable(table);
                    *v.decor_mut() = decor;
                }
            }
            _ => {}
        }
    }
}

/// The serial of the document's `[soa]`, if it has one.
pub fn serial(doc: &DocumentMut) -> Option<u32> {
    let serial = doc
        .get("soa")?
        .as_table_like()?
        .get("serial")?
        .as_integer()?;
    u32::try_from(serial).ok()
}

/// Sets the SOA serial (if the document has an `[soa]`).
pub fn set_serial(doc: &mut DocumentMut, serial: u32) {
    if let Some(soa) = doc.get_mut("soa").and_then(Item::as_table_like_mut) {
        soa.insert("serial", Item::Value(Value::from(i64::from(serial))));
    }
}

/// Sets the SOA serial to at least `previous + 1` (RFC 1982 arithmetic is not needed for
/// serials that only grow by one). Zones whose SOA comes from a master file keep theirs.
pub fn bump_serial(doc: &mut DocumentMut, previous: Option<u32>) {
    let Some(soa) = doc.get_mut("soa").and_then(Item::as_table_like_mut) else {
        return;
    };
    let written = soa.get("serial").and_then(|s| s.as_integer()).unwrap_or(0);
    let next = match previous {
        Some(p) => written.max(i64::from(p) + 1),
        None => written,
    };
    let next = next.min(i64::from(u32::MAX));
    soa.insert("serial", Item::Value(Value::from(next)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# the zone
ns = ["ns1"]

[soa] # start of authority
mname = "ns1"
rname = "hm"
serial = 7

# mail
[[records]]
name = "mail"
type = "A"
data = ["192.0.2.25"]

# the web
[pools.www]
policy = "round_robin"
endpoints = [
  { address = "192.0.2.10" }, # first
  { address = "192.0.2.11", weight = 2 },
]

[pools.api]
policy = "round_robin"
endpoints = ["192.0.2.20", "192.0.2.21"] # short form
"#;

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn patches_keep_comments() {
        let mut doc = parse(TEXT).unwrap();
        let patch = EndpointPatch {
            weight: Some(5),
            drain: Some(true),
            force: Some(Some(Force::Down)),
            load: None,
        };
        patch_endpoint(
            &mut doc,
            &origin(),
            "www.example.test.",
            "192.0.2.11".parse().unwrap(),
            &patch,
        )
        .unwrap();
        bump_serial(&mut doc, Some(7));
        let out = doc.to_string();
        assert!(
            out.contains("# the zone") && out.contains("# first") && out.contains("# mail"),
            "{out}"
        );
        assert!(
            out.contains("weight = 5")
                && out.contains("drain = true")
                && out.contains("force = \"down\""),
            "{out}"
        );
        assert!(out.contains("serial = 8"), "{out}");
        let clear = EndpointPatch {
            force: Some(None),
            drain: Some(false),
            ..Default::default()
        };
        patch_endpoint(
            &mut doc,
            &origin(),
            "www",
            "192.0.2.11".parse().unwrap(),
            &clear,
        )
        .unwrap();
        let out = doc.to_string();
        assert!(!out.contains("force") && !out.contains("drain"), "{out}");
        let missing = patch_endpoint(
            &mut doc,
            &origin(),
            "www",
            "192.0.2.99".parse().unwrap(),
            &clear,
        );
        assert!(matches!(missing, Err(EditError::NotFound(_))));
    }

    #[test]
    fn an_address_alone_becomes_a_table_only_when_patched_with_a_setting() {
        let mut doc = parse(TEXT).unwrap();
        let at = |a: &str| a.parse().unwrap();
        let undrain = EndpointPatch {
            drain: Some(false),
            ..Default::default()
        };
        patch_endpoint(&mut doc, &origin(), "api", at("192.0.2.20"), &undrain).unwrap();
        assert_eq!(doc.to_string(), TEXT);
        let weigh = EndpointPatch {
            weight: Some(3),
            ..Default::default()
        };
        patch_endpoint(&mut doc, &origin(), "api", at("192.0.2.21"), &weigh).unwrap();
        let out = doc.to_string();
        assert!(
            out.contains(
                r#"endpoints = ["192.0.2.20", { address = "192.0.2.21", weight = 3 }] # short form"#
            ),
            "{out}"
        );
        let spec: crate::zone::spec::ZoneSpec = toml::from_str(&out).unwrap();
        let weights: Vec<u32> = spec.pools["api"]
            .endpoints
            .iter()
            .map(|e| e.weight)
            .collect();
        assert_eq!(weights, [1, 3]);
    }

    #[test]
    fn record_sets_are_replaced_in_place_added_and_removed() {
        let mut doc = parse(TEXT).unwrap();
        let spec = RecordSpec {
            name: "mail.example.test.".into(),
            rtype: "a".into(),
            ttl: Some(60),
            data: vec!["192.0.2.26".into()],
        };
        set_records(&mut doc, &origin(), &spec).unwrap();
        let txt = RecordSpec {
            name: "@".into(),
            rtype: "TXT".into(),
            ttl: None,
            data: vec!["\"hi\"".into()],
        };
        set_records(&mut doc, &origin(), &txt).unwrap();
        let out = doc.to_string();
        assert!(
            out.contains("192.0.2.26") && !out.contains("192.0.2.25") && out.contains("# mail"),
            "{out}"
        );
        assert_eq!(out.matches("[[records]]").count(), 2, "{out}");
        remove_records(&mut doc, &origin(), "mail", "A").unwrap();
        assert!(!doc.to_string().contains("192.0.2.26"));
        assert!(remove_records(&mut doc, &origin(), "mail", "A").is_err());
    }
}
