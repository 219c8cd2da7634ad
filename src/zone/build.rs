//! Turns a [`ZoneSpec`] (plus an optional master file's records) into a [`Zone`], checking
//! everything an authoritative server must refuse. The one build used by start-up, reload and
//! (later) the API.

use std::collections::BTreeMap;
use std::fmt;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::spec::ZoneSpec;
use super::{Node, RrSet, Zone};
use super::{master, pool};

/// One step of the path to a field in the zone model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The field an error is about, e.g. `pools.www.endpoints[2].weight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub(super) fn key(mut self, k: &str) -> Self {
        self.0.push(Seg::Key(k.to_owned()));
        self
    }
    pub(super) fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }
}

fn field(k: &str) -> FieldPath {
    FieldPath::default().key(k)
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Why a zone was refused: the field and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BuildError {
    pub field: FieldPath,
    pub message: String,
}

pub(super) fn err(field: FieldPath, message: impl Into<String>) -> BuildError {
    BuildError {
        field,
        message: message.into(),
    }
}

/// A record set collected from any source, with where it came from for errors.
struct Collected {
    records: Vec<Record>,
    from: FieldPath,
}

/// Builds and validates one zone. `master` holds the records of the zone's master file, if any.
pub fn build_zone(
    origin: &Name,
    spec: &ZoneSpec,
    master: Option<Vec<Record>>,
) -> Result<Zone, BuildError> {
    let origin = origin.to_lowercase();
    let sets = collect_sets(&origin, spec, master)?;
    let (soa, negative_soa) = apex(&origin, &sets)?;
    let mut nodes = static_nodes(&origin, sets)?;
    add_pools(&origin, spec, &mut nodes)?;
    // Every ancestor up to the apex exists, so that empty non-terminals answer NODATA. (Most
    // names of a large zone are the apex's children: nothing to add for them.)
    // (Labels counted with `iter`: `num_labels` leaves a wildcard's `*` out.)
    let children = origin.iter().count() + 1;
    let names: Vec<Name> = nodes
        .keys()
        .filter(|name| name.iter().count() > children)
        .cloned()
        .collect();
    for name in names {
        let mut parent = name.base_name();
        while origin.zone_of(&parent) && parent != origin {
            nodes.entry(parent.clone()).or_default();
            parent = parent.base_name();
        }
    }
    nodes.entry(origin.clone()).or_default();
    check_pools_above_cuts(&origin, &nodes)?;
    let has_cuts = nodes.values().any(|n| n.is_cut);
    let has_dnames = nodes.values().any(|n| n.dname.is_some());
    let has_wildcards = nodes.keys().any(is_wildcard);
    let origin_label = origin.to_ascii();
    let mut nodes: Vec<_> = nodes
        .into_iter()
        .map(|(name, mut node)| {
            let key = super::key::owned(&name);
            node.name = name;
            (key, node)
        })
        .collect();
    let slots = super::slots::number(&mut nodes);
    Ok(Zone {
        origin_key: super::key::owned(&origin),
        origin_labels: usize::from(origin.num_labels()),
        origin,
        soa,
        negative_soa,
        nodes: super::nodes::NodeMap::new(nodes),
        counters: crate::metrics::global().zone(&origin_label),
        has_cuts,
        has_dnames,
        has_wildcards,
        slots: std::sync::Arc::new(slots),
        master_file: None,
        version: super::next_version(),
        read_from: None,
        pool_transfer: spec.transfer.unwrap_or_default(),
        signer: None,
        changed: std::time::SystemTime::now(),
    })
}

/// The nodes of the static record sets `spec` gives (no master file), checked alone.
pub(super) fn static_only(origin: &Name, spec: &ZoneSpec) -> Result<Nodes, BuildError> {
    static_nodes(origin, collect_sets(origin, spec, None)?)
}

/// Whether `name` is a wildcard, `*.<name>` (RFC 4592 §2.1.1).
pub(super) fn is_wildcard(name: &Name) -> bool {
    name.iter().next() == Some(b"*".as_slice())
}

type Sets = BTreeMap<(Name, RecordType), Collected>;
type Nodes = rustc_hash::FxHashMap<Name, Node>;

/// Every record set of the zone, from the master file, `[soa]`, `ns` and `[[records]]`: owners
/// inside the zone, each set defined in one place.
fn collect_sets(
    origin: &Name,
    spec: &ZoneSpec,
    master: Option<Vec<Record>>,
) -> Result<Sets, BuildError> {
    let origin = origin.clone();
    let mut sets: Sets = BTreeMap::new();
    let mut add = |mut record: Record, from: &FieldPath| -> Result<(), BuildError> {
        // Owners are served in lower case, as Knot serves them; data keeps its case.
        let owner = record.name.to_lowercase();
        record.name = owner.clone();
        if !origin.zone_of(&owner) {
            return Err(err(
                from.clone(),
                format!("{owner} is outside the zone {origin}"),
            ));
        }
        let key = (owner, record.record_type());
        // One search of the map a record (a large zone's build spends its time here).
        match sets.entry(key) {
            std::collections::btree_map::Entry::Occupied(set) if set.get().from != *from => {
                let (owner, rtype) = set.key();
                let message = format!("{owner} {rtype} is already defined by {}", set.get().from);
                Err(err(from.clone(), message))
            }
            std::collections::btree_map::Entry::Occupied(mut set) => {
                set.get_mut().records.push(record);
                Ok(())
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Collected {
                    records: vec![record],
                    from: from.clone(),
                });
                Ok(())
            }
        }
    };

    if let Some(records) = master {
        let from = field("master_file");
        for record in records {
            add(record, &from)?;
        }
    }

    if let Some(soa) = soa_record(&origin, spec)? {
        add(soa, &field("soa"))?;
    }

    for (i, ns) in spec.ns.iter().enumerate() {
        let target = master::parse_owner(&origin, ns).map_err(|e| err(field("ns").index(i), e))?;
        let record = Record::from_rdata(origin.clone(), spec.ttl, RData::NS(NS(target)));
        add(record, &field("ns"))?;
    }

    for (i, rec) in spec.records.iter().enumerate() {
        let at = field("records").index(i);
        let code = crate::presentation::type_code(&rec.rtype).ok_or_else(|| {
            err(
                at.clone().key("type"),
                format!("unknown type {}", rec.rtype),
            )
        })?;
        let rtype = RecordType::from(code);
        if rtype == RecordType::SOA {
            return Err(err(at.key("type"), "the SOA goes in [soa]"));
        }
        if crate::presentation::is_meta(code) {
            return Err(err(
                at.key("type"),
                format!("{} cannot be served", rec.rtype),
            ));
        }
        if rec.data.is_empty() {
            return Err(err(at.key("data"), "at least one record is needed"));
        }
        let ttl = rec.ttl.unwrap_or(spec.ttl);
        for (j, data) in rec.data.iter().enumerate() {
            let record = master::parse_record(&origin, &rec.name, ttl, rtype, data)
                .map_err(|e| err(at.clone().key("data").index(j), e))?;
            add(record, &at)?;
        }
    }

    Ok(sets)
}

/// The SOA record `[soa]` gives, if it is there.
fn soa_record(origin: &Name, spec: &ZoneSpec) -> Result<Option<Record>, BuildError> {
    let Some(soa) = &spec.soa else {
        return Ok(None);
    };
    let name =
        |k: &str, v: &str| master::parse_owner(origin, v).map_err(|e| err(field("soa").key(k), e));
    let rdata = SOA::new(
        name("mname", &soa.mname)?,
        name("rname", &soa.rname)?,
        soa.serial,
        soa.refresh,
        soa.retry,
        soa.expire,
        soa.minimum,
    );
    let ttl = soa.ttl.unwrap_or(spec.ttl);
    Ok(Some(Record::from_rdata(
        origin.clone(),
        ttl,
        RData::SOA(rdata),
    )))
}

/// The apex's SOA (required, with the NS set) and the SOA negative answers carry (TTL:
/// min(SOA TTL, MINIMUM), RFC 2308 §3).
fn apex(origin: &Name, sets: &Sets) -> Result<(Record, Record), BuildError> {
    // The SOA and NS at the apex are required; every other check works on the collected sets.
    let soa = sets
        .get(&(origin.clone(), RecordType::SOA))
        .map(|s| s.records[0].clone())
        .ok_or_else(|| {
            err(
                field("soa"),
                "missing: give [soa] or an SOA in the master file",
            )
        })?;
    if !sets.contains_key(&(origin.clone(), RecordType::NS)) {
        return Err(err(field("ns"), "a zone needs at least one NS record"));
    }
    let minimum = match &soa.data {
        RData::SOA(s) => s.minimum,
        _ => unreachable!("SOA set holds SOA data"),
    };
    let mut negative_soa = soa.clone();
    negative_soa.ttl = soa.ttl.min(minimum);

    Ok((soa, negative_soa))
}

/// The static record sets as nodes; an SOA only at the apex, a CNAME alone at its name.
fn static_nodes(origin: &Name, sets: Sets) -> Result<Nodes, BuildError> {
    let mut nodes: Nodes = Default::default();
    for ((owner, rtype), mut set) in sets {
        if rtype == RecordType::SOA && owner != *origin {
            return Err(err(set.from, "an SOA is only allowed at the apex"));
        }
        set.records = dedup(set.records);
        check_rrset_size(&owner, rtype, &set)?;
        let node = nodes.entry(owner.clone()).or_default();
        node.is_cut |= rtype == RecordType::NS && owner != *origin;
        if rtype == RecordType::DNAME {
            node.dname = Some(Box::new(dname_synthesis(&owner, &set)?));
        }
        node.rrsets.push(RrSet {
            rtype,
            records: set.records,
        });
        let has_cname = node.rrset(RecordType::CNAME).is_some();
        if has_cname && (node.rrsets.len() > 1 || owner == *origin) {
            return Err(err(
                set.from,
                format!("{owner} has a CNAME, which must be the only record at its name"),
            ));
        }
    }

    Ok(nodes)
}

/// An RRset must fit in one message (65,535 bytes, RFC 1035 §4.2.2): one that cannot could be
/// neither answered nor transferred, so it is refused here rather than when it is sent.
fn check_rrset_size(owner: &Name, rtype: RecordType, set: &Collected) -> Result<(), BuildError> {
    let fixed = crate::presentation::name_wire_len(owner) + 10;
    let size: usize = set
        .records
        .iter()
        .map(|r| fixed + crate::presentation::record_wire(r).len())
        .sum();
    match size <= usize::from(u16::MAX) - 12 {
        true => Ok(()),
        false => Err(err(
            set.from.clone(),
            format!("{owner} {rtype} takes {size} bytes, more than one DNS message holds (65,535)"),
        )),
    }
}

/// The CNAME a DNAME synthesizes (RFC 6672 §3.1), before it is renamed and retargeted for the
/// name asked: owned by the DNAME's owner, with its TTL and its target. One DNAME a name.
fn dname_synthesis(owner: &Name, set: &Collected) -> Result<Record, BuildError> {
    let [dname] = set.records.as_slice() else {
        return Err(err(
            set.from.clone(),
            format!("{owner} has more than one DNAME (RFC 6672 §2.4)"),
        ));
    };
    let wire = crate::presentation::record_wire(dname);
    let (labels, _) = crate::presentation::read_name(&wire, 0, wire.len())
        .map_err(|e| err(set.from.clone(), e))?;
    let target = Name::from_labels(labels).map_err(|e| err(set.from.clone(), e.to_string()))?;
    let cname = RData::CNAME(hickory_proto::rr::rdata::CNAME(target));
    Ok(Record::from_rdata(owner.clone(), dname.ttl, cname))
}

/// Every pool at its node (no static A, AAAA or CNAME beside it), and their fallbacks checked.
fn add_pools(origin: &Name, spec: &ZoneSpec, nodes: &mut Nodes) -> Result<(), BuildError> {
    nodes.reserve(spec.pools.len());
    let mut fallbacks = Vec::new();
    for (built, (pool_name, _)) in build_pools(origin, &spec.pools)
        .into_iter()
        .zip(&spec.pools)
    {
        let (owner, pool) = built?;
        let node = nodes.entry(owner.clone()).or_default();
        if let Some(clash) = [RecordType::A, RecordType::AAAA, RecordType::CNAME]
            .into_iter()
            .find(|t| node.rrset(*t).is_some())
        {
            return Err(err(
                field("pools").key(pool_name),
                format!(
                    "{owner} also has static {clash} records; a pool answers A and AAAA itself"
                ),
            ));
        }
        let pool = pool?;
        if let Some(target) = &pool.fallback {
            fallbacks.push((pool_name, target.clone()));
        }
        node.pool = Some(pool);
    }

    for (pool_name, target) in fallbacks {
        if nodes.get(&target).is_none_or(|n| n.pool.is_none()) {
            return Err(err(
                field("pools").key(pool_name).key("fallback"),
                format!("{target} is not a pool of this zone"),
            ));
        }
    }

    Ok(())
}

/// A pool at or below a cut would never be reached.
fn check_pools_above_cuts(origin: &Name, nodes: &Nodes) -> Result<(), BuildError> {
    for (name, node) in nodes {
        if node.pool.is_some() {
            let mut above = name.clone();
            // By depth, not by equality: a name outside the origin must not loop at the root.
            while above.num_labels() > origin.num_labels() {
                if nodes.get(&above).is_some_and(|n| n.is_cut) {
                    return Err(err(
                        field("pools"),
                        format!("{name} is at or below the delegation {above}"),
                    ));
                }
                above = above.base_name();
            }
        }
    }

    Ok(())
}

/// A pool built, or why not: the owner name's error first, then the pool's.
type BuiltPool = Result<(Name, Result<super::Pool, BuildError>), BuildError>;

/// Every pool's owner name and build, in `pools` order. A zone of many pools builds them on two
/// threads: each pool is independent of the others.
fn build_pools(origin: &Name, pools: &BTreeMap<String, super::spec::PoolSpec>) -> Vec<BuiltPool> {
    let build = |(pool_name, pool): (&String, &super::spec::PoolSpec)| -> BuiltPool {
        let at = field("pools").key(pool_name);
        let owner = Name::parse(pool_name, Some(origin))
            .map_err(|e| err(at.clone(), format!("invalid name: {e}")))?
            .to_lowercase();
        if !origin.zone_of(&owner) {
            return Err(err(at, format!("{owner} is outside the zone {origin}")));
        }
        let built = pool::build_pool(origin, &owner, pool, &at);
        Ok((owner, built))
    };
    if pools.len() < 1000 {
        return pools.iter().map(build).collect();
    }
    let half = pools.len() / 2;
    std::thread::scope(|s| {
        let tail = s.spawn(|| pools.iter().skip(half).map(build).collect::<Vec<_>>());
        let mut built: Vec<BuiltPool> = pools.iter().take(half).map(build).collect();
        built.extend(tail.join().expect("a pool build does not panic"));
        built
    })
}

/// Two identical records in one set are one record (RFC 2181 §5).
fn dedup(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    for r in records {
        if !out.iter().any(|o| o.data == r.data) {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(records: &str) -> Result<Zone, BuildError> {
        let text = format!("{}{records}", crate::fixture::ZONE_HEAD);
        let spec: ZoneSpec = toml::from_str(&text).unwrap();
        build_zone(&Name::from_ascii("t.test.").unwrap(), &spec, None)
    }

    #[test]
    fn an_rrset_that_cannot_fit_in_a_message_is_refused() {
        // Distinct records (identical ones are one record, RFC 2181 §5).
        let data = |n: usize| {
            let strings: Vec<String> = (0..n).map(|i| format!("'\"{i:0>255}\"'")).collect();
            strings.join(", ")
        };
        let set = |n: usize| {
            format!(
                "[[records]]\nname = \"big\"\ntype = \"TXT\"\ndata = [{}]\n",
                data(n)
            )
        };
        assert!(build(&set(200)).is_ok());
        let error = build(&set(300)).unwrap_err();
        assert_eq!(error.field.to_string(), "records[1]");
        assert!(
            error.message.contains("more than one DNS message holds"),
            "{error}"
        );
    }

    #[test]
    fn a_dname_is_one_record_at_its_name() {
        let two = "[[records]]\nname = \"d\"\ntype = \"DNAME\"\ndata = [\"a.example.\", \"b.example.\"]\n";
        assert!(
            build(two)
                .unwrap_err()
                .message
                .contains("more than one DNAME")
        );
    }
}
