//! A zone's document as a nameserver set keeps it in etcd: its metadata (everything but the
//! record sets and pools: SOA, NS, TTL, DNSSEC…) under one key, each record set and each pool
//! under its own, so that a change writes only what it changes and every instance applies it
//! as the same edit the API makes locally. The pieces of one version of the zone share a
//! *generation*, named in the metadata: a whole-zone write (the set's first start, a PUT of
//! the whole zone) writes a new generation beside the old one and switches to it with one
//! write of the metadata, so that no instance ever serves half of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::change::Edit;
use super::model::ZoneModel;
use crate::zone::Name;
use crate::zone::spec::{PoolSpec, RecordSpec, ZoneSpec};

/// What the metadata key holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The generation the zone's pieces are under.
    pub generation: String,
    /// The document without its record sets and pools.
    pub zone: ZoneSpec,
}

impl Meta {
    pub fn serial(&self) -> Option<u32> {
        self.zone.soa.as_ref().map(|s| s.serial)
    }

    /// The same metadata with another serial.
    pub fn with_serial(&self, serial: Option<u32>) -> Meta {
        let mut meta = self.clone();
        if let (Some(soa), Some(serial)) = (meta.zone.soa.as_mut(), serial) {
            soa.serial = serial;
        }
        meta
    }

    /// Whether `other` differs from this in more than its serial (the zone is then read
    /// whole again rather than edited).
    pub fn differs_beyond_serial(&self, other: &Meta) -> bool {
        let a = serde_json::to_value(self.with_serial(Some(0))).ok();
        let b = serde_json::to_value(other.with_serial(Some(0))).ok();
        a != b || self.generation != other.generation
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One piece of a zone, named by what its key says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Piece {
    /// The record sets of type `rtype` (its mnemonic, upper case) at `owner`.
    Records { owner: String, rtype: String },
    /// The pool at `owner`.
    Pool { owner: String },
}

/// What a pool's key holds: the pool and the key the document names it by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolPiece {
    pub name: String,
    pub pool: PoolSpec,
}

/// Pieces changed, each with its new value (`None`: gone).
pub type Changed = Vec<(Piece, Option<Vec<u8>>)>;

/// A zone cut into pieces: its metadata and each piece's value.
#[derive(Debug, Clone)]
pub struct Pieces {
    pub meta: ZoneSpec,
    pub values: BTreeMap<Piece, Vec<u8>>,
}

/// `spec` cut into pieces; an owner that is not a name is refused (as the build refuses it).
pub fn split(origin: &Name, spec: &ZoneSpec) -> Result<Pieces, String> {
    let mut meta = spec.clone();
    meta.records = Vec::new();
    meta.pools = BTreeMap::new();
    let mut records: BTreeMap<Piece, Vec<&RecordSpec>> = BTreeMap::new();
    for set in &spec.records {
        records
            .entry(records_piece(origin, set)?)
            .or_default()
            .push(set);
    }
    let mut values: BTreeMap<Piece, Vec<u8>> = records
        .into_iter()
        .map(|(piece, sets)| (piece, serde_json::to_vec(&sets).unwrap_or_default()))
        .collect();
    for (name, pool) in &spec.pools {
        let piece = Piece::Pool {
            owner: owner(origin, name)?,
        };
        let value = pool_value(name, pool);
        values.entry(piece).or_insert(value);
    }
    Ok(Pieces { meta, values })
}

/// The document put back together from its metadata and its pieces' values (a value that
/// does not read is an error: the zone is not served half).
pub fn assemble<'a>(
    meta: &Meta,
    values: impl IntoIterator<Item = (Piece, &'a [u8])>,
) -> Result<ZoneSpec, String> {
    let mut spec = meta.zone.clone();
    for (piece, value) in values {
        match piece {
            Piece::Records { owner, rtype } => {
                let sets: Vec<RecordSpec> = serde_json::from_slice(value)
                    .map_err(|e| format!("record sets {owner} {rtype}: {e}"))?;
                spec.records.extend(sets);
            }
            Piece::Pool { owner } => {
                let pool: PoolPiece =
                    serde_json::from_slice(value).map_err(|e| format!("pool {owner}: {e}"))?;
                spec.pools.insert(pool.name, pool.pool);
            }
        }
    }
    Ok(spec)
}

/// The pieces `edit` changes in `model` (already edited): each with its new value (`None`:
/// the piece is gone).
pub fn changed_by(origin: &Name, model: &ZoneModel, edit: &Edit) -> Result<Changed, String> {
    let records = |name: &str, rtype: &str| -> Result<_, String> {
        let code = crate::presentation::type_code(rtype)
            .ok_or_else(|| format!("{rtype} is not a record type"))?;
        let owner = parse_owner(origin, name)?;
        let sets: Vec<&RecordSpec> = model
            .records_at(&owner)
            .filter(|s| crate::presentation::type_code(&s.rtype) == Some(code))
            .collect();
        let piece = Piece::Records {
            owner: owner.to_ascii(),
            rtype: crate::presentation::type_name(code),
        };
        let value = (!sets.is_empty()).then(|| serde_json::to_vec(&sets).unwrap_or_default());
        Ok(vec![(piece, value)])
    };
    let pool = |name: &str| -> Result<_, String> {
        let piece = Piece::Pool {
            owner: owner(origin, name)?,
        };
        let key = model.pool_key(name).map(str::to_owned);
        let value = key.map(|key| pool_value(&key, &model.spec().pools[&key]));
        Ok(vec![(piece, value)])
    };
    match edit {
        Edit::SetRecords(set) => records(&set.name, &set.rtype),
        Edit::RemoveRecords { name, rtype } => records(name, rtype),
        Edit::SetPool { name, .. } | Edit::RemovePool { name } => pool(name),
        Edit::PatchEndpoint { pool: name, .. } => pool(name),
    }
}

/// The edit that makes a zone's document hold `value` at `piece` (`None`: removes it); `None`
/// when the value holds more than one record set entry (a document written that way is read
/// whole instead).
pub fn edit_of(piece: &Piece, value: Option<&[u8]>) -> Result<Option<Edit>, String> {
    Ok(match (piece, value) {
        (Piece::Records { owner, rtype }, None) => Some(Edit::RemoveRecords {
            name: owner.clone(),
            rtype: rtype.clone(),
        }),
        (Piece::Records { owner, rtype }, Some(value)) => {
            let mut sets: Vec<RecordSpec> = serde_json::from_slice(value)
                .map_err(|e| format!("record sets {owner} {rtype}: {e}"))?;
            match sets.len() {
                1 => Some(Edit::SetRecords(sets.remove(0))),
                _ => None,
            }
        }
        (Piece::Pool { owner }, None) => Some(Edit::RemovePool {
            name: owner.clone(),
        }),
        (Piece::Pool { owner }, Some(value)) => {
            let pool: PoolPiece =
                serde_json::from_slice(value).map_err(|e| format!("pool {owner}: {e}"))?;
            Some(Edit::SetPool {
                name: pool.name,
                pool: Box::new(pool.pool),
            })
        }
    })
}

/// The pieces whose values differ between `old` and `new` (`None`: gone in `new`).
pub fn diff(old: &Pieces, new: &Pieces) -> Changed {
    let mut changed = Vec::new();
    for (piece, value) in &new.values {
        if old.values.get(piece) != Some(value) {
            changed.push((piece.clone(), Some(value.clone())));
        }
    }
    for piece in old.values.keys() {
        if !new.values.contains_key(piece) {
            changed.push((piece.clone(), None));
        }
    }
    changed
}

fn records_piece(origin: &Name, set: &RecordSpec) -> Result<Piece, String> {
    let code = crate::presentation::type_code(&set.rtype)
        .ok_or_else(|| format!("{} is not a record type", set.rtype))?;
    Ok(Piece::Records {
        owner: owner(origin, &set.name)?,
        rtype: crate::presentation::type_name(code),
    })
}

fn pool_value(name: &str, pool: &PoolSpec) -> Vec<u8> {
    let piece = PoolPiece {
        name: name.to_owned(),
        pool: pool.clone(),
    };
    serde_json::to_vec(&piece).unwrap_or_default()
}

fn parse_owner(origin: &Name, name: &str) -> Result<Name, String> {
    let owner = crate::zone::parse_owner(origin, name).map_err(|e| format!("{name}: {e}"))?;
    Ok(owner.to_lowercase())
}

/// `name` as a key names it: absolute, lower case.
fn owner(origin: &Name, name: &str) -> Result<String, String> {
    parse_owner(origin, name).map(|n| n.to_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = r#"
ttl = 300
ns = ["ns1.example.com."]
[soa]
mname = "ns1.example.com."
rname = "hostmaster.example.com."
serial = 7
[[records]]
name = "@"
type = "MX"
data = ["10 mx.example.com."]
[[records]]
name = "www"
type = "txt"
data = ["\"a\""]
[[records]]
name = "www.example.com."
type = "TXT"
data = ["\"b\""]
[pools.api]
policy = "round_robin"
endpoints = [{ address = "192.0.2.1" }]
"#;

    fn origin() -> Name {
        Name::from_ascii("example.com.").unwrap()
    }

    #[test]
    fn a_zone_split_and_assembled_is_the_same_zone() {
        let spec: ZoneSpec = toml::from_str(ZONE).unwrap();
        let pieces = split(&origin(), &spec).unwrap();
        let keys: Vec<_> = pieces.values.keys().cloned().collect();
        let records = |owner: &str, rtype: &str| Piece::Records {
            owner: owner.into(),
            rtype: rtype.into(),
        };
        assert_eq!(
            keys,
            vec![
                records("example.com.", "MX"),
                records("www.example.com.", "TXT"),
                Piece::Pool {
                    owner: "api.example.com.".into()
                },
            ],
            "one piece per owner and type, both TXT entries in one"
        );
        let meta = Meta {
            generation: "g".into(),
            zone: pieces.meta.clone(),
        };
        assert!(meta.zone.records.is_empty() && meta.zone.pools.is_empty());
        let values = pieces.values.iter().map(|(p, v)| (p.clone(), v.as_slice()));
        let back = assemble(&meta, values).unwrap();
        let json = |s: &ZoneSpec| serde_json::to_value(s).unwrap();
        assert_eq!(json(&back), json(&spec));
    }

    #[test]
    fn an_edit_changes_only_its_piece_and_reads_back_as_the_same_edit() {
        let spec: ZoneSpec = toml::from_str(ZONE).unwrap();
        let before = split(&origin(), &spec).unwrap();
        let mut model = ZoneModel::new(&origin(), spec);
        let edit = Edit::SetRecords(RecordSpec {
            name: "mail".into(),
            rtype: "a".into(),
            ttl: None,
            data: vec!["192.0.2.9".into()],
        });
        model.apply(&edit).unwrap();
        let changed = changed_by(&origin(), &model, &edit).unwrap();
        let after = split(&origin(), model.spec()).unwrap();
        assert_eq!(changed, diff(&before, &after));
        let (piece, value) = &changed[0];
        assert_eq!(
            *piece,
            Piece::Records {
                owner: "mail.example.com.".into(),
                rtype: "A".into()
            }
        );
        let again = edit_of(piece, value.as_deref()).unwrap().unwrap();
        assert!(matches!(again, Edit::SetRecords(s) if s.data == ["192.0.2.9"]));
        let removed = Edit::RemovePool { name: "api".into() };
        model.apply(&removed).unwrap();
        let changed = changed_by(&origin(), &model, &removed).unwrap();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].1.is_none(), "the pool's piece is gone");
    }

    #[test]
    fn a_changed_serial_is_not_a_changed_zone() {
        let spec: ZoneSpec = toml::from_str(ZONE).unwrap();
        let meta = Meta {
            generation: "g".into(),
            zone: split(&origin(), &spec).unwrap().meta,
        };
        let bumped = meta.with_serial(Some(8));
        assert_eq!(bumped.serial(), Some(8));
        assert!(!meta.differs_beyond_serial(&bumped));
        let mut other = bumped.clone();
        other.zone.ttl = 60;
        assert!(meta.differs_beyond_serial(&other));
    }
}
