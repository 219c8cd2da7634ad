//! The answer to one question, as a pure function of the snapshot: zone, node, static records or
//! a pool's ordered endpoints, NODATA, NXDOMAIN, referral or REFUSED. No I/O and no wire format;
//! `dns/` encodes what this returns.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use smallvec::SmallVec;
use std::net::IpAddr;

use crate::policy::{Context, Decided, Order};
use crate::state::Snapshot;
use crate::zone::spec::AllDown;
use crate::zone::{EndpointSet, Lookup, NameKey, Node, Pool, Zone};

/// Longest CNAME chain followed inside a zone; longer chains (or loops) are cut there.
const MAX_CNAME_CHAIN: usize = 8;

/// What to answer. Records borrow from the snapshot.
#[derive(Debug, Default)]
pub struct Answer<'s> {
    pub rcode: ResponseCode,
    /// AA: set when the answer comes from our zone data (not on referrals or REFUSED).
    pub authoritative: bool,
    /// Borrowed from the snapshot; inline up to a typical answer's size (no allocation).
    pub answers: SmallVec<[&'s Record; 8]>,
    pub authorities: SmallVec<[&'s Record; 4]>,
    pub additionals: SmallVec<[&'s Record; 4]>,
    /// (first index, TTL): the answer records from that index on go out with this TTL, the
    /// degraded pool's, instead of their own.
    pub degraded_ttl: Option<(usize, u32)>,
    /// ECS scope prefix (RFC 7871 §7.2.1): how many bits of the client's address the answer
    /// depended on; 0 when it did not depend on the client at all.
    pub ecs_scope: u8,
    /// The zone that answered (none for REFUSED), for metrics and the query log.
    pub zone: Option<&'s Zone>,
    /// The pool that answered, if one did.
    pub served: Option<Served<'s>>,
    /// Which of `answers` are the pool's records: they share one owner name, so the encoder
    /// compares it once.
    pub pool_records: std::ops::Range<usize>,
    /// The pool's endpoint indices behind `pool_records`, in answer order: the encoder writes
    /// their addresses from the set's `rdata` without reading the records.
    pub pool_order: Order,
    /// The owner the pool's records go out with when it is not their own: a fallback pool
    /// answers for the name asked.
    pub renamed: Option<Name>,
    /// How many of `answers` (from the first) are owned by the question's name: all of them
    /// (`None`) unless a CNAME was followed. The encoder points these at the question.
    pub at_qname: Option<usize>,
}

/// Which pool answered and from where: what the metrics and the query log report.
#[derive(Debug, Clone, Copy)]
pub struct Served<'s> {
    pub pool: &'s Pool,
    pub set: &'s EndpointSet,
    /// The datacenter of the first endpoint handed out (index in the pool's configured order).
    pub datacenter: usize,
}

impl Served<'_> {
    pub fn datacenter_name(&self) -> Option<&str> {
        self.set.datacenter_name(self.datacenter)
    }
}

impl Answer<'_> {
    /// The owner name answer record `i` goes out with.
    pub fn owner<'a>(&'a self, i: usize, record: &'a Record) -> &'a Name {
        match &self.renamed {
            Some(name) if self.pool_records.contains(&i) => name,
            _ => &record.name,
        }
    }

    fn refused() -> Self {
        Self {
            rcode: ResponseCode::Refused,
            ..Self::default()
        }
    }
}

/// Answers `qtype` at `qname` (class IN) for a client at `client` (the ECS address where one is
/// used). `rng` drives randomized policies.
pub fn resolve<'s>(
    snapshot: &'s Snapshot,
    qname: &Name,
    qtype: RecordType,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Answer<'s> {
    resolve_key(
        snapshot,
        &|| qname.clone(),
        NameKey::new(qname),
        qtype,
        client,
        rng,
    )
}

/// [`resolve()`] with the key of the question's name already made (from the query's bytes);
/// the name itself is only made, by `qname`, in the rare answer that needs it.
pub fn resolve_key<'s>(
    snapshot: &'s Snapshot,
    qname: &dyn Fn() -> Name,
    key: NameKey,
    qtype: RecordType,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Answer<'s> {
    resolve_found(snapshot, qname, key, None, qtype, client, rng)
}

/// [`resolve_key`], where `found` is the zone and the lookup of `key` in it when the caller
/// already made them ([`fixed`] does).
pub fn resolve_found<'s>(
    snapshot: &'s Snapshot,
    qname: &dyn Fn() -> Name,
    mut key: NameKey,
    found: Option<Found<'s>>,
    qtype: RecordType,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Answer<'s> {
    let cx = Context {
        addr: crate::geo::canonical(client),
        geo: snapshot.geo.as_deref(),
        health: &snapshot.health,
    };
    let Some(zone) = found
        .map(|f| f.zone)
        .or_else(|| snapshot.zones.find_key(&key))
    else {
        return Answer::refused();
    };
    let mut first = found.map(|f| f.lookup);
    let mut answer = Answer {
        authoritative: true,
        zone: Some(zone),
        ..Answer::default()
    };
    let mut order = Order::new();
    // The name being answered: the question's (`None`), or a CNAME's target.
    let mut name: Option<Name> = None;
    for _ in 0..MAX_CNAME_CHAIN {
        let lookup = first
            .take()
            .unwrap_or_else(|| zone.lookup_key(&key, qtype == RecordType::DS));
        let node = match lookup {
            Lookup::Delegation(cut) => {
                // A referral only for the name asked; a CNAME chain into a delegation stops.
                if answer.answers.is_empty() {
                    answer.authoritative = false;
                    if let Some(ns) = cut.rrset(RecordType::NS) {
                        answer.authorities.extend(&ns.records);
                        add_glue(zone, &ns.records, &mut answer.additionals);
                    }
                }
                return answer;
            }
            Lookup::NxDomain => {
                answer.rcode = ResponseCode::NXDomain;
                answer.authorities.push(&zone.negative_soa);
                return answer;
            }
            Lookup::Node(node) => node,
        };

        if qtype != RecordType::CNAME
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            answer.answers.extend(cname.records.iter());
            match &cname.records[0].data {
                RData::CNAME(target) if zone.origin.zone_of(target) => {
                    answer.at_qname.get_or_insert(answer.answers.len());
                    key = NameKey::new(&target.0);
                    name = Some(target.0.clone());
                    continue;
                }
                _ => return answer,
            }
        }

        let rrset_type = match qtype {
            // RFC 8482 §4.2: answer ANY with one RRset of our choice.
            RecordType::ANY => match any_type(node) {
                Some(t) => t,
                None => return nodata(zone, answer),
            },
            t => t,
        };
        if let Some(pool) = &node.pool
            && let Some(set) = pool.endpoints(rrset_type)
        {
            let node_set = set;
            let picked = pick(&cx, pool, set, rng, &mut order, &mut answer.ecs_scope);
            let (set, pool) = match picked {
                Picked::Some => (set, pool),
                Picked::NoEndpoints => return nodata(zone, answer),
                // `order` holds every endpoint (fail open) in case the rule says serve them.
                Picked::AllDown => match all_down(zone, pool, rrset_type) {
                    AllDownAnswer::ServeAll => (set, pool),
                    AllDownAnswer::Fallback(fb_pool, fb_set) => {
                        // The fallback picks by its own health and, if it is all down too,
                        // hands out all of its endpoints.
                        let mut fb = Order::new();
                        match pick(&cx, fb_pool, fb_set, rng, &mut fb, &mut answer.ecs_scope) {
                            Picked::NoEndpoints => (set, pool),
                            _ => {
                                order = fb;
                                (fb_set, fb_pool)
                            }
                        }
                    }
                    AllDownAnswer::Servfail => {
                        answer.rcode = ResponseCode::ServFail;
                        answer.authoritative = false;
                        return answer;
                    }
                    AllDownAnswer::Nodata => return nodata(zone, answer),
                },
            };
            // While some endpoint is down, the pool's answers carry its shorter TTL.
            if set.degraded(cx.health) {
                answer.degraded_ttl = Some((answer.answers.len(), pool.degraded_ttl));
            }
            answer.served = Some(Served {
                pool,
                set,
                datacenter: order.first().map_or(0, |&i| set.datacenter_of(i)),
            });
            let records = &set.records;
            // A fallback pool's records carry its own name: answer for the name asked.
            let renamed = !std::ptr::eq(set, node_set);
            let first = answer.answers.len();
            answer.pool_records = first..first + order.len();
            answer
                .answers
                .extend(order.iter().map(|&i| &records[i as usize]));
            answer.pool_order = order;
            if renamed {
                answer.renamed = Some(name.clone().unwrap_or_else(qname));
            }
            return answer;
        }
        return match node.rrset(rrset_type) {
            Some(set) => {
                answer.answers.extend(set.records.iter());
                add_glue(zone, &set.records, &mut answer.additionals);
                answer
            }
            None => nodata(zone, answer),
        };
    }
    answer
}

/// Where the answer to a question is a pure function of the snapshot, the node and
/// `decided`: what a memoized reply (`dns::memo`) may stand for.
#[derive(Debug)]
pub struct Fixed<'s> {
    pub zone: &'s Zone,
    pub node: &'s Node,
    /// The pool policy's decision for this client (empty where there is no choice).
    pub decided: Decided,
    /// The ECS scope the decision has: [`Answer::ecs_scope`] of the answer.
    pub scope: u8,
}

/// The zone of a question and the lookup of its name there, made once.
#[derive(Debug, Clone, Copy)]
pub struct Found<'s> {
    pub zone: &'s Zone,
    pub lookup: Lookup<'s>,
}

/// [`Fixed`] for this question and client; otherwise what was found on the way (for
/// [`resolve_found`]), where the answer depends on more: a rotation, a random draw, a CNAME
/// chain, a referral, a name that does not exist.
pub fn fixed<'s>(
    snapshot: &'s Snapshot,
    key: &NameKey,
    qtype: RecordType,
    client: IpAddr,
) -> Result<Fixed<'s>, Option<Found<'s>>> {
    if matches!(qtype, RecordType::ANY | RecordType::CNAME | RecordType::DS) {
        return Err(None);
    }
    let zone = snapshot.zones.find_key(key).ok_or(None)?;
    let lookup = zone.lookup_key(key, false);
    let found = Found { zone, lookup };
    let Lookup::Node(node) = lookup else {
        return Err(Some(found));
    };
    if node.rrset(RecordType::CNAME).is_some() {
        return Err(Some(found));
    }
    let (decided, scope) = match node.pool.as_ref().and_then(|p| p.endpoints(qtype)) {
        Some(set) => set
            .policy
            .decision(&Context {
                addr: crate::geo::canonical(client),
                geo: snapshot.geo.as_deref(),
                health: &snapshot.health,
            })
            .ok_or(Some(found))?,
        None => (Decided::new(), 0),
    };
    Ok(Fixed {
        zone,
        node,
        decided,
        scope,
    })
}

/// The outcome of asking a pool's policy for an order.
#[derive(Debug, PartialEq, Eq)]
enum Picked {
    /// `order` holds the live endpoints, best first, capped at `max_answers`.
    Some,
    /// The pool has no endpoint of this family at all.
    NoEndpoints,
    /// It has some, but none is up.
    AllDown,
}

/// Orders `set` for this query, drops endpoints that are down or drained (keeping the policy's
/// order of the rest), then applies `max_answers`. When none is live, `order` keeps them all,
/// in the policy's order, for the fail-open answer.
fn pick(
    cx: &Context<'_>,
    pool: &Pool,
    set: &EndpointSet,
    rng: &mut fastrand::Rng,
    order: &mut Order,
    scope: &mut u8,
) -> Picked {
    order.clear();
    let live = |i: u32| set.live(i, cx.health);
    *scope = (*scope).max(set.policy.order_for(cx, &live, rng, usize::MAX, order));
    let outcome = match (order.is_empty(), order.iter().any(|&i| live(i))) {
        (true, _) => Picked::NoEndpoints,
        (false, false) => Picked::AllDown,
        (false, true) => {
            order.retain(|i| live(*i));
            Picked::Some
        }
    };
    order.truncate(pool.max_answers);
    outcome
}

enum AllDownAnswer<'s> {
    ServeAll,
    Fallback(&'s Pool, &'s EndpointSet),
    Servfail,
    Nodata,
}

/// The pool's all-down rule: its fallback pool if it has one, else `all_down`.
fn all_down<'s>(zone: &'s Zone, pool: &'s Pool, rtype: RecordType) -> AllDownAnswer<'s> {
    if let Some(target) = &pool.fallback
        && let Some(p) = zone.node(target).and_then(|n| n.pool.as_ref())
        && let Some(s) = p.endpoints(rtype)
    {
        return AllDownAnswer::Fallback(p, s);
    }
    match pool.all_down {
        AllDown::ServeAll => AllDownAnswer::ServeAll,
        AllDown::Servfail => AllDownAnswer::Servfail,
        AllDown::Nodata => AllDownAnswer::Nodata,
    }
}

/// NODATA: NOERROR, no records of the type, the SOA in the authority section (RFC 2308 §2.2).
fn nodata<'s>(zone: &'s Zone, mut answer: Answer<'s>) -> Answer<'s> {
    answer.authorities.push(&zone.negative_soa);
    answer
}

/// The RRset that stands for the node in a minimal ANY answer.
fn any_type(node: &Node) -> Option<RecordType> {
    if let Some(pool) = &node.pool {
        if !pool.v4.records.is_empty() {
            return Some(RecordType::A);
        }
        if !pool.v6.records.is_empty() {
            return Some(RecordType::AAAA);
        }
    }
    node.rrsets.first().map(|s| s.rtype)
}

/// Additional-section addresses for the names that NS, MX and SRV records point at, where this
/// zone holds them as static records (RFC 1035 §3.3.11, §3.3.9; RFC 2782).
fn add_glue<'s>(zone: &'s Zone, records: &'s [Record], out: &mut SmallVec<[&'s Record; 4]>) {
    for record in records {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        if !zone.origin.zone_of(target) {
            continue;
        }
        if let Some(node) = zone.node(target) {
            for t in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = node.rrset(t) {
                    for r in &set.records {
                        if !out.iter().any(|o| std::ptr::eq(*o, r)) {
                            out.push(r);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{ZoneSet, build_zone, spec::ZoneSpec};

    const ZONE: &str = r#"
        ttl = 3600
        ns = ["ns1", "ns2.example.test."]
        [soa]
        mname = "ns1"
        rname = "hostmaster"
        serial = 1
        minimum = 60
        [[records]]
        name = "ns1"
        type = "A"
        data = ["192.0.2.53"]
        [[records]]
        name = "@"
        type = "MX"
        data = ["10 mail"]
        [[records]]
        name = "mail"
        type = "A"
        data = ["192.0.2.25"]
        [[records]]
        name = "docs"
        type = "CNAME"
        data = ["www"]
        [[records]]
        name = "loop1"
        type = "CNAME"
        data = ["loop2"]
        [[records]]
        name = "loop2"
        type = "CNAME"
        data = ["loop1"]
        [[records]]
        name = "x.y.deep"
        type = "TXT"
        data = ['"hi"']
        [[records]]
        name = "sub"
        type = "NS"
        data = ["ns.sub"]
        [[records]]
        name = "ns.sub"
        type = "A"
        data = ["192.0.2.99"]
        [pools.www]
        policy = "round_robin"
        endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }, { address = "2001:db8::1" }]
    "#;

    fn snapshot() -> Snapshot {
        let spec: ZoneSpec = toml::from_str(ZONE).unwrap();
        let origin = Name::from_ascii("example.test.").unwrap();
        let zone = build_zone(&origin, &spec, None).unwrap();
        Snapshot {
            generation: 1,
            zones: std::sync::Arc::new(ZoneSet::new([zone])),
            geo: None,
            health: Default::default(),
        }
    }

    fn ask<'s>(s: &'s Snapshot, name: &str, t: RecordType) -> Answer<'s> {
        let mut rng = fastrand::Rng::with_seed(1);
        let client = "192.0.2.1".parse().unwrap();
        resolve(s, &Name::from_ascii(name).unwrap(), t, client, &mut rng)
    }

    fn data(records: &[&Record]) -> Vec<String> {
        records.iter().map(|r| r.data.to_string()).collect()
    }

    fn refs(records: &[&Record]) -> Vec<String> {
        records.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn outside_our_zones_is_refused() {
        let s = snapshot();
        let a = ask(&s, "example.org.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::Refused);
        assert!(!a.authoritative);
    }

    #[test]
    fn nxdomain_and_nodata_carry_the_negative_soa() {
        let s = snapshot();
        let a = ask(&s, "nope.example.test.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert_eq!(a.authorities.len(), 1);
        assert_eq!(a.authorities[0].ttl, 60, "min(SOA TTL, MINIMUM)");
        let a = ask(&s, "mail.example.test.", RecordType::AAAA);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn empty_non_terminal_is_nodata() {
        let s = snapshot();
        let a = ask(&s, "y.deep.example.test.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(a.authorities.len(), 1);
    }

    #[test]
    fn cname_chain_includes_the_pool_target() {
        let s = snapshot();
        let a = ask(&s, "DOCS.example.test.", RecordType::A);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(a.answers.len(), 3);
        assert!(a.authoritative);
        let a = ask(&s, "docs.example.test.", RecordType::CNAME);
        assert_eq!(a.answers.len(), 1);
    }

    #[test]
    fn cname_loops_end() {
        let s = snapshot();
        let a = ask(&s, "loop1.example.test.", RecordType::A);
        assert_eq!(a.answers.len(), MAX_CNAME_CHAIN);
    }

    #[test]
    fn pools_rotate_per_family() {
        let s = snapshot();
        let first = data(&ask(&s, "www.example.test.", RecordType::A).answers);
        let second = data(&ask(&s, "www.example.test.", RecordType::A).answers);
        assert_eq!(first, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(second, ["192.0.2.2", "192.0.2.1"]);
        let v6 = ask(&s, "www.example.test.", RecordType::AAAA);
        assert_eq!(data(&v6.answers), ["2001:db8::1"]);
        let mx = ask(&s, "www.example.test.", RecordType::MX);
        assert!(mx.answers.is_empty());
        assert_eq!(mx.authorities.len(), 1);
    }

    #[test]
    fn mx_gets_glue() {
        let s = snapshot();
        let a = ask(&s, "example.test.", RecordType::MX);
        assert_eq!(data(&a.answers), ["10 mail.example.test."]);
        assert_eq!(refs(&a.additionals), ["192.0.2.25"]);
    }

    #[test]
    fn delegations_refer() {
        let s = snapshot();
        let a = ask(&s, "host.sub.example.test.", RecordType::A);
        assert!(!a.authoritative);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty());
        assert_eq!(refs(&a.authorities), ["ns.sub.example.test."]);
        assert_eq!(refs(&a.additionals), ["192.0.2.99"]);
        // DS at the cut is the parent's to answer.
        let a = ask(&s, "sub.example.test.", RecordType::DS);
        assert!(a.authoritative);
    }

    #[test]
    fn any_is_minimal() {
        let s = snapshot();
        let a = ask(&s, "example.test.", RecordType::ANY);
        let types: std::collections::HashSet<_> =
            a.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types.len(), 1);
    }
}
