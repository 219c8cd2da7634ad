//! The first stage of an answer: where the question lands in the snapshot, and what the
//! pool there decides for this client. Made once per query; the reply memo is keyed on it.

use hickory_proto::rr::RecordType;
use std::net::IpAddr;

use crate::health::HealthView;
use crate::policy::{Context, Decided, Decision, Reuse, Rotation};
use crate::snapshot::Snapshot;
use crate::zone::{EndpointSet, Lookup, Name, NameKey, Node, Pool, Zone};

/// What a question finds: its zone, the lookup of its name there, and where a pool answers the
/// asked type at that name, the pool, its endpoint set and its policy's decision.
#[derive(Debug, Clone, Copy)]
pub struct Found<'s> {
    pub zone: &'s Zone,
    /// The zone's health.
    pub health: &'s HealthView,
    pub lookup: Lookup<'s>,
    pub pool: Option<PoolDecision<'s>>,
}

/// A pool's endpoint set with the decision its policy made for this client.
#[derive(Debug, Clone, Copy)]
pub struct PoolDecision<'s> {
    /// The pool's owner name.
    pub owner: &'s Name,
    pub pool: &'s Pool,
    pub set: &'s EndpointSet,
    pub decision: Decision,
}

/// Finds `key` (asked with `qtype` by `client`) in the snapshot; `None` where no zone of ours
/// holds it (REFUSED).
pub fn find<'s>(
    snapshot: &'s Snapshot,
    key: &NameKey,
    qtype: RecordType,
    client: IpAddr,
) -> Option<Found<'s>> {
    let (i, zone) = snapshot.zones.find_indexed(key)?;
    let health = snapshot.health.zone(i);
    Some(find_in(
        zone,
        key,
        qtype,
        &super::context(snapshot, health, client),
    ))
}

/// [`find`] within `zone` (a CNAME target in the zone, too).
pub(super) fn find_in<'s>(
    zone: &'s Zone,
    key: &NameKey,
    qtype: RecordType,
    cx: &Context<'s>,
) -> Found<'s> {
    let lookup = zone.lookup_key(key, qtype == RecordType::DS);
    let pool = match lookup {
        Lookup::Node(node) | Lookup::Wildcard(node)
            if qtype == RecordType::CNAME || node.rrset(RecordType::CNAME).is_none() =>
        {
            pool_of(node, qtype).map(|(pool, set)| PoolDecision {
                owner: &node.name,
                pool,
                set,
                decision: set.policy.decide(cx),
            })
        }
        _ => None,
    };
    Found {
        zone,
        health: cx.health,
        lookup,
        pool,
    }
}

/// The pool set that answers `qtype` at `node`, if any (ANY: the RRset that stands for the
/// node, RFC 8482 §4.2).
fn pool_of(node: &Node, qtype: RecordType) -> Option<(&Pool, &EndpointSet)> {
    let pool = node.pool.as_ref()?;
    let rrset_type = match qtype {
        RecordType::ANY => super::answer::any_type(node)?,
        t => t,
    };
    Some((pool, pool.endpoints(rrset_type)?))
}

/// What a reply may be memoized under besides the decision's key (see [`Found::memo_key`]).
#[derive(Debug)]
pub struct Memoizable<'s> {
    pub node: &'s Node,
    /// The decision's ECS scope.
    pub scope: u8,
    /// The answer may be a rotation (see [`Found::rotation`]): a memoized one rotates on, and
    /// one is kept only where it is the whole rotation.
    pub rotated: bool,
}

impl<'s> Found<'s> {
    /// What a reply to this question may be memoized under: the node and the decision's key,
    /// where the answer is a function of them within the snapshot (static records, pools whose
    /// order is fixed) or may be a rotation of one (see [`Found::rotation`]). `None` where it
    /// depends on more: a weighted cycle, a random draw, a CNAME chain, a referral, a name
    /// that does not exist, or an ANY, CNAME or DS question.
    pub fn memo_key(&self, qtype: RecordType) -> Option<(Decided, Memoizable<'s>)> {
        if matches!(qtype, RecordType::ANY | RecordType::CNAME | RecordType::DS) {
            return None;
        }
        let Lookup::Node(node) = self.lookup else {
            return None;
        };
        if node.rrset(RecordType::CNAME).is_some() {
            return None;
        }
        let (decided, scope, rotated) = match &self.pool {
            Some(p) => match p.set.reuse {
                Reuse::Fixed => (p.decision.memo_key()?, p.decision.scope, false),
                Reuse::Rotated => (p.decision.memo_key()?, p.decision.scope, true),
                Reuse::Never => return None,
            },
            None => (0, 0, false),
        };
        let memoizable = Memoizable {
            node,
            scope,
            rotated,
        };
        Some((decided, memoizable))
    }

    /// The rotation a memoized rotating reply served by `datacenter` moves on (see
    /// [`Policy::rotation_of`]).
    pub fn rotation_of(&self, datacenter: usize) -> Option<Rotation<'s>> {
        self.pool.as_ref()?.set.policy.rotation_of(datacenter)
    }

    /// Where the pool's answer is the same endpoints rotated (see `Policy::rotation`), that
    /// rotation.
    pub fn rotation(&self) -> Option<Rotation<'s>> {
        let p = self.pool.as_ref()?;
        let checked = |i: u32| p.set.health(i).live(self.health);
        let live = (!p.set.always_live).then_some(&checked as &dyn Fn(u32) -> bool);
        p.set
            .policy
            .rotation(&p.decision, live, p.pool.max_answers as usize)
    }
}
