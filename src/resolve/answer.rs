//! The second stage of an answer: from what [`find`](super::find) found, follow CNAMEs within
//! the zone, take static records or order the pool's endpoints by the decision made there,
//! drop the dead (keeping the order; the all-down rule), cap at `max_answers`. NODATA,
//! NXDOMAIN and referrals carry what RFC 2308 and RFC 1034 say.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use smallvec::SmallVec;
use std::net::IpAddr;

use super::find::{Found, PoolDecision, find_in};
use super::{Answer, Served};
use crate::policy::{Asking, Context, Decision, Order};
use crate::snapshot::Snapshot;
use crate::zone::spec::AllDown;
use crate::zone::{EndpointSet, Lookup, NameKey, Node, Pool, Zone};

/// Longest CNAME chain followed inside a zone; longer chains (or loops) are cut there.
pub(super) const MAX_CNAME_CHAIN: usize = 8;

/// Answers `qtype` for `client` from `found` (the question's [`find`](super::find)); `qname`
/// makes the question's name, for the rare answer that needs it (a wildcard's or a fallback
/// pool's records renamed). `rng` drives randomized policies.
pub fn answer<'s>(
    snapshot: &'s Snapshot,
    found: &Found<'s>,
    qname: &dyn Fn() -> Name,
    qtype: RecordType,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Answer<'s> {
    let cx = super::context(snapshot, found.health, client);
    let zone = found.zone;
    let mut answer = Answer {
        authoritative: true,
        zone: Some(zone),
        ..Answer::default()
    };
    // The name being answered: the question's (`None`), or a CNAME's target.
    let mut name: Option<Name> = None;
    // The CNAME target's lookup, once one was followed.
    let mut target: Option<Found<'s>> = None;
    for _ in 0..MAX_CNAME_CHAIN {
        let found = target.as_ref().unwrap_or(found);
        let (node, wildcard) = match found.lookup {
            Lookup::Delegation(cut) => {
                referral(zone, cut, &mut answer);
                return answer;
            }
            Lookup::NxDomain => {
                answer.rcode = ResponseCode::NXDomain;
                answer.authorities.push(&zone.negative_soa);
                return answer;
            }
            Lookup::Dname(node) => {
                let current = name.clone().unwrap_or_else(qname);
                match synthesize(node, &current, &mut answer) {
                    Some(to) if zone.origin.zone_of(&to) => {
                        target = Some(find_in(zone, &NameKey::new(&to), qtype, &cx));
                        name = Some(to);
                        continue;
                    }
                    _ => return answer,
                }
            }
            Lookup::Node(node) => (node, false),
            Lookup::Wildcard(node) => (node, true),
        };
        // The name a wildcard's records stand for: the one being answered.
        let current = || name.clone().unwrap_or_else(qname);
        let first = answer.answers.len();
        if qtype != RecordType::CNAME
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            answer.answers.extend(cname.records.iter());
            if wildcard {
                answer
                    .renamed
                    .push((first..answer.answers.len(), current()));
            }
            match &cname.records[0].data {
                RData::CNAME(to) if zone.origin.zone_of(to) => {
                    answer.at_qname.get_or_insert(answer.answers.len());
                    target = Some(find_in(zone, &NameKey::new(&to.0), qtype, &cx));
                    name = Some(to.0.clone());
                    continue;
                }
                _ => return answer,
            }
        }
        if let Some(pool) = &found.pool {
            let asked = Asked {
                wildcard,
                name: &current,
            };
            answer_pool(&cx, zone, pool, rng, asked, &mut answer);
            return answer;
        }
        let rrset_type = match qtype {
            // RFC 8482 §4.2: answer ANY with one RRset of our choice.
            RecordType::ANY => any_type(node),
            t => Some(t),
        };
        match rrset_type.and_then(|t| node.rrset(t)) {
            Some(set) => {
                answer.answers.extend(set.records.iter());
                if wildcard {
                    answer
                        .renamed
                        .push((first..answer.answers.len(), current()));
                }
                add_glue(zone, &set.records, &mut answer.additionals);
            }
            None => nodata(zone, &mut answer),
        }
        return answer;
    }
    answer
}

/// A DNAME's answer for `name` below it (RFC 6672 §3.1): the DNAME, then the CNAME it
/// synthesizes, owned by `name` and pointing at `name` with the DNAME's owner replaced by its
/// target. The target, or `None` where it would be too long (YXDOMAIN, §2.2).
fn synthesize<'s>(node: &'s Node, name: &Name, answer: &mut Answer<'s>) -> Option<Name> {
    let (Some(dname), Some(cname)) = (node.rrset(RecordType::DNAME), node.dname.as_deref()) else {
        return None;
    };
    if answer.at_qname.is_none() && answer.answers.is_empty() {
        answer.at_qname = Some(0);
    }
    answer.answers.extend(dname.records.iter());
    let RData::CNAME(to) = &cname.data else {
        return None;
    };
    let keep = name.num_labels().saturating_sub(node.name.num_labels());
    let labels: Vec<Vec<u8>> = name
        .iter()
        .take(usize::from(keep))
        .map(<[u8]>::to_vec)
        .collect();
    let Ok(target) = crate::presentation::name_from_labels(labels, Some(&to.0)) else {
        answer.rcode = ResponseCode::YXDomain;
        return None;
    };
    let at = answer.answers.len();
    answer.answers.push(cname);
    answer.renamed.push((at..at + 1, name.clone()));
    answer.retarget = Some((at, target.clone()));
    Some(target)
}

/// A referral for the name asked: the cut's NS set and its glue, not authoritative. A CNAME
/// chain into a delegation stops there.
fn referral<'s>(zone: &'s Zone, cut: &'s Node, answer: &mut Answer<'s>) {
    if answer.answers.is_empty() {
        answer.authoritative = false;
        if let Some(ns) = cut.rrset(RecordType::NS) {
            answer.authorities.extend(&ns.records);
            add_glue(zone, &ns.records, &mut answer.additionals);
        }
    }
}

/// The name a pool answers for, when its records' own owner is not it.
struct Asked<'a> {
    /// The pool was found through a wildcard.
    wildcard: bool,
    /// The name being answered.
    name: &'a dyn Fn() -> Name,
}

/// The pool's part of the answer: its live endpoints in the decided order, or what its
/// all-down rule says.
fn answer_pool<'s>(
    cx: &Context<'_>,
    zone: &'s Zone,
    found: &PoolDecision<'s>,
    rng: &mut fastrand::Rng,
    asked: Asked<'_>,
    answer: &mut Answer<'s>,
) {
    let (pool, set, owner) = (found.pool, found.set, found.owner);
    let mut order = Order::new();
    let picked = pick(
        cx,
        pool,
        set,
        &found.decision,
        rng,
        &mut order,
        &mut answer.ecs_scope,
    );
    let (set, pool, owner) = match picked {
        Picked::Some => (set, pool, owner),
        Picked::NoEndpoints => return nodata(zone, answer),
        // `order` holds every endpoint (fail open) in case the rule says serve them.
        Picked::AllDown => match all_down(zone, pool, set) {
            AllDownAnswer::ServeAll => (set, pool, owner),
            AllDownAnswer::Fallback(fb_owner, fb_pool, fb_set) => {
                // The fallback picks by its own health and, if it is all down too, hands out
                // all of its endpoints.
                let mut fb = Order::new();
                let decision = fb_set.policy.decide(cx);
                let scope = &mut answer.ecs_scope;
                match pick(cx, fb_pool, fb_set, &decision, rng, &mut fb, scope) {
                    Picked::NoEndpoints => (set, pool, owner),
                    _ => {
                        order = fb;
                        (fb_set, fb_pool, fb_owner)
                    }
                }
            }
            AllDownAnswer::Servfail => {
                answer.rcode = ResponseCode::ServFail;
                answer.authoritative = false;
                return;
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
        owner,
        datacenter: order.first().map_or(0, |&i| set.datacenter_of(i)),
    });
    answer.pool_order = order;
    // A fallback pool's records carry its own name, a wildcard pool's the wildcard: answer for
    // the name asked.
    if asked.wildcard || !std::ptr::eq(set, found.set) {
        let name = (asked.name)();
        answer.renamed.push((answer.pool_records(), name));
    }
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

/// Orders `set` for this query by `decision`, drops endpoints that are down or drained (keeping the policy's
/// order of the rest), then applies `max_answers`. When none is live, `order` keeps them all,
/// in the policy's order, for the fail-open answer.
fn pick(
    cx: &Context<'_>,
    pool: &Pool,
    set: &EndpointSet,
    decision: &Decision,
    rng: &mut fastrand::Rng,
    order: &mut Order,
    scope: &mut u8,
) -> Picked {
    order.clear();
    let live = |i: u32| set.live(i, cx.health);
    let mut asking = Asking {
        decision,
        cx: Some(cx),
        live: &live,
        rng,
        feedback: set.feedback(cx.health),
    };
    // Where every endpoint is live, the first `max_answers` are the answer: a pool of
    // thousands is not ordered whole for each query.
    let limit = match set.always_live {
        true => pool.max_answers as usize,
        false => usize::MAX,
    };
    set.policy.order_for(&mut asking, limit, order);
    *scope = (*scope).max(decision.scope);
    let outcome = match (order.is_empty(), order.iter().any(|&i| live(i))) {
        (true, _) => Picked::NoEndpoints,
        (false, false) => Picked::AllDown,
        (false, true) => {
            order.retain(|i| live(*i));
            Picked::Some
        }
    };
    order.truncate(pool.max_answers as usize);
    outcome
}

enum AllDownAnswer<'s> {
    ServeAll,
    /// The fallback pool's owner, the pool, its set of the family asked.
    Fallback(&'s Name, &'s Pool, &'s EndpointSet),
    Servfail,
    Nodata,
}

/// The pool's all-down rule: its fallback pool if it has one, else `all_down`.
fn all_down<'s>(zone: &'s Zone, pool: &'s Pool, set: &EndpointSet) -> AllDownAnswer<'s> {
    if let Some(target) = &pool.fallback
        && let Some(node) = zone.node(target)
        && let Some(p) = &node.pool
        && let Some(s) = p.endpoints(family(pool, set))
    {
        return AllDownAnswer::Fallback(&node.name, p, s);
    }
    match pool.all_down {
        AllDown::ServeAll => AllDownAnswer::ServeAll,
        AllDown::Servfail => AllDownAnswer::Servfail,
        AllDown::Nodata => AllDownAnswer::Nodata,
    }
}

/// The record type of `set`, one of `pool`'s two.
fn family(pool: &Pool, set: &EndpointSet) -> RecordType {
    match std::ptr::eq(set, &pool.v4) {
        true => RecordType::A,
        false => RecordType::AAAA,
    }
}

/// NODATA: NOERROR, no records of the type, the SOA in the authority section (RFC 2308 §2.2).
fn nodata<'s>(zone: &'s Zone, answer: &mut Answer<'s>) {
    answer.authorities.push(&zone.negative_soa);
}

/// The RRset that stands for the node in a minimal ANY answer.
pub(super) fn any_type(node: &Node) -> Option<RecordType> {
    if let Some(pool) = &node.pool {
        if !pool.v4.is_empty() {
            return Some(RecordType::A);
        }
        if !pool.v6.is_empty() {
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
