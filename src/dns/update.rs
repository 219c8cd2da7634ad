//! RFC 2136 UPDATE, signed with a TSIG key allowed to update the zone: the prerequisites are
//! checked against the zone as served, then the updates are made to the zone's document —
//! static record sets changed in place (any type, at any name, pool names included), an A/AAAA
//! added at (or deleted from) a pool's name becoming an endpoint of that pool — and the whole
//! message goes through the same validation and durable write as an API change
//! (`Control::update_zone`): all or nothing, answered once it is on disk and in the answers.
//! Record data is taken from the message's own bytes and written as presentation text by the
//! one writer (`presentation`), so what a client sends is what is served.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordData, RecordType};

use crate::control::{Control, UpdateError};
use crate::presentation;
use crate::store::edit::{self, EditError};
use crate::store::model::ZoneModel;
use crate::zone::Zone;
use crate::zone::spec::{EndpointSpec, RecordSpec};

/// Why an UPDATE was refused: its response code.
#[derive(Debug)]
pub struct Refused(pub ResponseCode);

impl From<UpdateError> for Refused {
    fn from(error: UpdateError) -> Self {
        tracing::info!(%error, "UPDATE refused");
        Self(match error {
            UpdateError::Invalid(_) => ResponseCode::Refused,
            UpdateError::Io(_) | UpdateError::Unavailable(_) | UpdateError::OutcomeUnknown(_) => {
                ResponseCode::ServFail
            }
        })
    }
}

impl From<EditError> for Refused {
    fn from(error: EditError) -> Self {
        tracing::info!(%error, "UPDATE refused");
        Self(ResponseCode::Refused)
    }
}

/// The zone an UPDATE is for (its zone section), if it names one well.
pub fn zone_of(request: &Message) -> Result<Name, ResponseCode> {
    match request.queries.as_slice() {
        [zone] if zone.query_type() == RecordType::SOA && zone.query_class() == DNSClass::IN => {
            Ok(zone.name().to_lowercase())
        }
        _ => Err(ResponseCode::FormErr),
    }
}

/// Applies `request` (already authorized for `origin`; `raw` its bytes) through `control`.
pub fn apply(
    control: &Control,
    origin: &Name,
    request: &Message,
    raw: &[u8],
) -> Result<(), ResponseCode> {
    let snapshot = control.snapshot();
    let Some(zone) = snapshot.zones.get(origin) else {
        return Err(ResponseCode::NotAuth);
    };
    prescan(origin, &request.authorities)?;
    let data = RawData::read(raw, request).ok_or(ResponseCode::FormErr)?;
    check_prerequisites(zone, origin, &request.answers, &data.prerequisites)?;
    let mut sets = Sets::default();
    for (update, wire) in request.authorities.iter().zip(&data.updates) {
        sets.apply(zone, origin, update, wire);
    }
    drop(snapshot);
    if sets.is_empty() {
        return Ok(());
    }
    let result = control.update_zone(origin, |doc| -> Result<Option<String>, Refused> {
        let doc = doc.ok_or(Refused(ResponseCode::NotAuth))?;
        sets.write(origin, &doc.text).map(Some)
    });
    result.map(drop).map_err(|Refused(rcode)| rcode)
}

/// RFC 2136 §3.4.1: every update's class, type and name are checked before anything is done.
fn prescan(origin: &Name, updates: &[Record]) -> Result<(), ResponseCode> {
    for update in updates {
        if !origin.zone_of(&update.name) {
            return Err(ResponseCode::NotZone);
        }
        let rtype = update.record_type();
        let meta = matches!(rtype, RecordType::AXFR | RecordType::IXFR | RecordType::OPT);
        let ok = match update.dns_class {
            DNSClass::IN => !meta && rtype != RecordType::ANY,
            DNSClass::ANY => update.ttl == 0 && update.data.is_update(),
            DNSClass::NONE => update.ttl == 0 && !meta && rtype != RecordType::ANY,
            _ => false,
        };
        if !ok {
            return Err(ResponseCode::FormErr);
        }
    }
    Ok(())
}

/// The record data of the prerequisite and update sections, read from the message's bytes
/// (names in RDATA expanded), in the order hickory lists those records.
struct RawData {
    prerequisites: Vec<Vec<u8>>,
    updates: Vec<Vec<u8>>,
}

impl RawData {
    fn read(message: &[u8], request: &Message) -> Option<Self> {
        let count = |at: usize| usize::from(u16::from_be_bytes([message[at], message[at + 1]]));
        if message.len() < 12 {
            return None;
        }
        let mut at = 12;
        for _ in 0..count(4) {
            at = presentation::read_name(message, at, message.len()).ok()?.1 + 4;
        }
        let mut section = |n: usize| -> Option<Vec<Vec<u8>>> {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                at = presentation::read_name(message, at, message.len()).ok()?.1;
                let fixed = message.get(at..at + 10)?;
                let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
                let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
                let (start, end) = (at + 10, at + 10 + len);
                if end > message.len() {
                    return None;
                }
                let wire = match len {
                    0 => Vec::new(),
                    _ => presentation::rdata_from_message(rtype, message, start, end).ok()?,
                };
                out.push(wire);
                at = end;
            }
            Some(out)
        };
        let prerequisites = section(count(6))?;
        let updates = section(count(8))?;
        (prerequisites.len() == request.answers.len() && updates.len() == request.authorities.len())
            .then_some(Self {
                prerequisites,
                updates,
            })
    }
}

/// Record data as compared (RFC 2136 §1.1.1): names in lower case.
fn comparable(rtype: RecordType, wire: &[u8]) -> Vec<u8> {
    presentation::canonical_rdata(u16::from(rtype), wire)
}

/// RFC 2136 §3.2: the prerequisites, against the zone as served.
fn check_prerequisites(
    zone: &Zone,
    origin: &Name,
    prerequisites: &[Record],
    data: &[Vec<u8>],
) -> Result<(), ResponseCode> {
    let mut value_dependent: BTreeMap<(Name, RecordType), Vec<Vec<u8>>> = BTreeMap::new();
    for (p, wire) in prerequisites.iter().zip(data) {
        if p.ttl != 0 {
            return Err(ResponseCode::FormErr);
        }
        if !origin.zone_of(&p.name) {
            return Err(ResponseCode::NotZone);
        }
        let name = p.name.to_lowercase();
        let rtype = p.record_type();
        match (p.dns_class, rtype) {
            (DNSClass::ANY, RecordType::ANY) if !in_use(zone, &name) => {
                return Err(ResponseCode::NXDomain);
            }
            (DNSClass::ANY, _)
                if rtype != RecordType::ANY && current(zone, &name, rtype).is_empty() =>
            {
                return Err(ResponseCode::NXRRSet);
            }
            (DNSClass::NONE, RecordType::ANY) if in_use(zone, &name) => {
                return Err(ResponseCode::YXDomain);
            }
            (DNSClass::NONE, _)
                if rtype != RecordType::ANY && !current(zone, &name, rtype).is_empty() =>
            {
                return Err(ResponseCode::YXRRSet);
            }
            (DNSClass::IN, _) => value_dependent
                .entry((name, rtype))
                .or_default()
                .push(comparable(rtype, wire)),
            (DNSClass::ANY | DNSClass::NONE, _) => {}
            _ => return Err(ResponseCode::FormErr),
        }
    }
    for ((name, rtype), mut wanted) in value_dependent {
        let mut have: Vec<Vec<u8>> = current(zone, &name, rtype)
            .iter()
            .map(|w| comparable(rtype, w))
            .collect();
        wanted.sort();
        wanted.dedup();
        have.sort();
        if wanted != have {
            return Err(ResponseCode::NXRRSet);
        }
    }
    Ok(())
}

/// Whether `name` has any record (static or a pool).
fn in_use(zone: &Zone, name: &Name) -> bool {
    zone.node(name).is_some_and(|n| !n.is_empty())
}

/// The data of the records `zone` answers at `name` of `rtype`: its static set, or its
/// pool's endpoints.
fn current(zone: &Zone, name: &Name, rtype: RecordType) -> Vec<Vec<u8>> {
    let Some(node) = zone.node(name) else {
        return Vec::new();
    };
    if let Some(set) = node.pool.as_ref().and_then(|p| p.endpoints(rtype)) {
        return set
            .records(name, 0)
            .map(|r| presentation::record_wire(&r))
            .collect();
    }
    let set = node.rrset(rtype);
    set.map(|s| s.records.iter().map(presentation::record_wire).collect())
        .unwrap_or_default()
}

/// Record data in uncompressed wire form.
type Rdata = Vec<u8>;

/// The record sets and pools an UPDATE changes, as they end up.
#[derive(Debug, Default)]
struct Sets {
    /// (owner, type) → (TTL, record data); empty: removed.
    records: BTreeMap<(Name, RecordType), (u32, Vec<Rdata>)>,
    /// Pool owner → its endpoints' addresses of each family as they end up.
    pools: BTreeMap<Name, Vec<IpAddr>>,
}

impl Sets {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.pools.is_empty()
    }

    /// One update (RFC 2136 §3.4.2) with record data `wire`, on what earlier ones left.
    fn apply(&mut self, zone: &Zone, origin: &Name, update: &Record, wire: &[u8]) {
        let name = update.name.to_lowercase();
        let rtype = update.record_type();
        // The apex's SOA and NS come from the zone's own settings: left alone.
        if name == *origin && matches!(rtype, RecordType::SOA | RecordType::NS | RecordType::ANY) {
            return;
        }
        let pool = zone.node(&name).and_then(|n| n.pool.as_ref());
        if let Some(pool) = pool.filter(|_| matches!(rtype, RecordType::A | RecordType::AAAA)) {
            let addresses = self
                .pools
                .entry(name)
                .or_insert_with(|| pool.v4.addresses().chain(pool.v6.addresses()).collect());
            let family = |a: &IpAddr| a.is_ipv4() == (rtype == RecordType::A);
            match (update.dns_class, update.data.ip_addr()) {
                (DNSClass::IN, Some(address)) if !addresses.contains(&address) => {
                    addresses.push(address)
                }
                (DNSClass::ANY, _) => addresses.retain(|a| !family(a)),
                (DNSClass::NONE, Some(address)) => addresses.retain(|a| *a != address),
                _ => {}
            }
            return;
        }
        // RFC 2136 §3.4.2.2: a CNAME is not added beside other data, nor other data beside a
        // CNAME.
        if update.dns_class == DNSClass::IN && self.clashes_with_cname(zone, &name, rtype) {
            tracing::info!("UPDATE: {rtype} at {name} ignored: a CNAME must be alone");
            return;
        }
        let types: Vec<RecordType> = match rtype {
            RecordType::ANY => zone
                .node(&name)
                .map(|n| n.rrsets.iter().map(|s| s.rtype).collect())
                .unwrap_or_default(),
            t => vec![t],
        };
        for rtype in types {
            let entry = self
                .records
                .entry((name.clone(), rtype))
                .or_insert_with(|| {
                    let set = zone.node(&name).and_then(|n| n.rrset(rtype));
                    let ttl = set
                        .and_then(|s| s.records.first())
                        .map_or(update.ttl, |r| r.ttl);
                    (ttl, current(zone, &name, rtype))
                });
            let same = |w: &Vec<u8>| comparable(rtype, w) == comparable(rtype, wire);
            match update.dns_class {
                DNSClass::IN => {
                    entry.0 = update.ttl;
                    if !entry.1.iter().any(same) {
                        entry.1.push(wire.to_vec());
                    }
                }
                DNSClass::ANY => entry.1.clear(),
                DNSClass::NONE => entry.1.retain(|w| !same(w)),
                _ => {}
            }
        }
    }

    /// Whether adding `rtype` at `name` would put a CNAME beside other data, as the zone and the
    /// updates before this one leave it.
    fn clashes_with_cname(&self, zone: &Zone, name: &Name, rtype: RecordType) -> bool {
        let node = zone.node(name);
        let has = |t: RecordType| match self.records.get(&(name.clone(), t)) {
            Some((_, data)) => !data.is_empty(),
            None => node.and_then(|n| n.rrset(t)).is_some(),
        };
        let has_pool = node.is_some_and(|n| n.pool.is_some());
        let dnssec = |t: RecordType| matches!(t, RecordType::RRSIG | RecordType::NSEC);
        match rtype {
            RecordType::CNAME => {
                has_pool
                    || node.is_some_and(|n| {
                        n.rrsets.iter().any(|s| {
                            s.rtype != RecordType::CNAME && !dnssec(s.rtype) && has(s.rtype)
                        })
                    })
                    || self.records.iter().any(|((n, t), (_, data))| {
                        n == name && *t != RecordType::CNAME && !dnssec(*t) && !data.is_empty()
                    })
            }
            t if dnssec(t) => false,
            _ => has(RecordType::CNAME),
        }
    }

    /// The zone document `text` with the changes made and its serial bumped.
    fn write(&self, origin: &Name, text: &str) -> Result<String, Refused> {
        let mut doc = edit::parse(text)?;
        for ((name, rtype), (ttl, records)) in &self.records {
            let code = u16::from(*rtype);
            let (owner, rtype) = (presentation::name_text(name), presentation::type_name(code));
            if records.is_empty() {
                match edit::remove_records(&mut doc, origin, &owner, &rtype) {
                    Ok(()) | Err(EditError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let spec = RecordSpec {
                name: owner,
                rtype,
                ttl: Some(*ttl),
                data: records
                    .iter()
                    .map(|w| presentation::rdata_text(code, w))
                    .collect(),
            };
            edit::set_records(&mut doc, origin, &spec)?;
        }
        if !self.pools.is_empty() {
            let spec = crate::zone::zone_spec(text).map_err(|_| Refused(ResponseCode::ServFail))?;
            let model = ZoneModel::new(origin, spec);
            for (owner, addresses) in &self.pools {
                let owner = owner.to_ascii();
                let key = model
                    .pool_key(&owner)
                    .ok_or(Refused(ResponseCode::Refused))?;
                let mut pool = model.spec().pools[key].clone();
                // Endpoints of a geo pool live in its datacenters: not changed by UPDATE.
                if !pool.datacenters.is_empty() {
                    return Err(Refused(ResponseCode::Refused));
                }
                pool.endpoints.retain(|e| addresses.contains(&e.address));
                for address in addresses {
                    if !pool.endpoints.iter().any(|e| e.address == *address) {
                        pool.endpoints.push(EndpointSpec::at(*address));
                    }
                }
                edit::set_pool(&mut doc, origin, key, &pool)?;
            }
        }
        let serial = edit::serial(&doc);
        edit::bump_serial(&mut doc, serial);
        Ok(doc.to_string())
    }
}
