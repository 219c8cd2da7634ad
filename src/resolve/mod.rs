//! The answer to one question, as a pure function of the snapshot, in two named stages:
//! [`find`] (the zone — REFUSED if none —, the name's node, and for a pool its policy's decision
//! and ECS scope, made once) and [`answer`] (CNAMEs followed, static records, or the pool's
//! endpoints ordered by that decision, the dead dropped, the all-down rule, `max_answers`;
//! NODATA, NXDOMAIN, referrals). No I/O and no wire format: `dns/` encodes what this returns.

mod answer;
mod find;

pub use answer::answer;
pub use find::{Found, Memoizable, PoolDecision, find};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

use smallvec::SmallVec;
use std::net::IpAddr;

use crate::health::HealthView;
use crate::policy::{Context, Order};
use crate::snapshot::Snapshot;
use crate::zone::{EndpointSet, NameKey, Pool, Zone};

/// What to answer. Records borrow from the snapshot.
#[derive(Debug, Default)]
pub struct Answer<'s> {
    pub rcode: ResponseCode,
    /// AA: set when the answer comes from our zone data (not on referrals or REFUSED).
    pub authoritative: bool,
    /// Borrowed from the snapshot; inline up to a typical answer's size (no allocation). A
    /// pool's endpoints follow these in the answer section (see [`Answer::pool_records`]):
    /// they have no record of their own.
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
    /// The pool's endpoints handed out (indices in `served`'s set), in answer order: the
    /// encoder writes their addresses from the set's `rdata`.
    pub pool_order: Order,
    /// Answer records that go out with another owner than their own: a wildcard's records
    /// with the name they stand for (RFC 4592 §3.3.1), a fallback pool's with the name asked.
    /// Empty (no allocation) in most answers.
    pub renamed: Vec<(std::ops::Range<usize>, Name)>,
    /// How many of `answers` (from the first) are owned by the question's name: all of them
    /// (`None`) unless a CNAME was followed. The encoder points these at the question.
    pub at_qname: Option<usize>,
    /// The answer record (a DNAME's synthesis template, see `zone::Node::dname`) that goes out
    /// as a CNAME to this name instead of its own target (RFC 6672 §3.1).
    pub retarget: Option<(usize, Name)>,
}

/// Which pool answered and from where: what the metrics and the query log report.
#[derive(Debug, Clone, Copy)]
pub struct Served<'s> {
    pub pool: &'s Pool,
    pub set: &'s EndpointSet,
    /// The pool's owner name, which its endpoints' records carry (unless renamed).
    pub owner: &'s Name,
    /// The datacenter of the first endpoint handed out (index in the pool's configured order).
    pub datacenter: usize,
}

impl Served<'_> {
    pub fn datacenter_name(&self) -> Option<&str> {
        self.set.datacenter_name(self.datacenter)
    }
}

impl<'s> Answer<'s> {
    /// How many records the answer section has: `answers`, then the pool's endpoints.
    pub fn answer_count(&self) -> usize {
        self.answers.len() + self.pool_order.len()
    }

    /// Which answer records are the pool's endpoints: they follow `answers` and share one
    /// owner name.
    pub fn pool_records(&self) -> std::ops::Range<usize> {
        let first = self.answers.len();
        first..first + self.pool_order.len()
    }

    /// The set and index of answer record `i`, if it is a pool's endpoint.
    pub fn endpoint(&self, i: usize) -> Option<(&'s EndpointSet, u32)> {
        let k = i.checked_sub(self.answers.len())?;
        Some((self.served?.set, *self.pool_order.get(k)?))
    }

    /// The owner name answer record `i` goes out with.
    pub fn owner(&self, i: usize) -> &Name {
        match self
            .renamed
            .iter()
            .find(|(records, _)| records.contains(&i))
        {
            Some((_, name)) => name,
            None => match (self.answers.get(i), self.served) {
                (Some(record), _) => &record.name,
                (None, Some(served)) => served.owner,
                (None, None) => panic!("answer record {i} of {}", self.answer_count()),
            },
        }
    }

    /// Answer record `i` as it goes out: its owner and TTL applied, a pool's endpoint made a
    /// record. For the readers off the fast path (reference encoder, signing, `explain`).
    pub fn answer_record(&self, i: usize) -> Record {
        let mut record = match (self.answers.get(i), self.endpoint(i), self.served) {
            (Some(&record), _, _) => record.clone(),
            (None, Some((set, index)), Some(served)) => {
                set.record(index, self.owner(i), served.pool.ttl)
            }
            _ => panic!("answer record {i} of {}", self.answer_count()),
        };
        record.ttl = self.ttl(i, record.ttl);
        record.name = self.owner(i).clone();
        if let Some(target) = self.target(i) {
            record.data =
                hickory_proto::rr::RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone()));
        }
        record
    }

    /// The CNAME target answer record `i` goes out with instead of its own, if it is a DNAME's
    /// synthesized CNAME.
    pub fn target(&self, i: usize) -> Option<&Name> {
        self.retarget
            .as_ref()
            .filter(|(at, _)| *at == i)
            .map(|(_, name)| name)
    }

    /// Every answer record as it goes out (see [`Answer::answer_record`]).
    pub fn answer_records(&self) -> impl Iterator<Item = Record> + '_ {
        (0..self.answer_count()).map(|i| self.answer_record(i))
    }

    /// The TTL answer record `i` goes out with, its own being `own`: the degraded pool's
    /// shorter TTL from `degraded_ttl`'s index on.
    pub fn ttl(&self, i: usize, own: u32) -> u32 {
        match self.degraded_ttl {
            Some((from, ttl)) if i >= from => ttl,
            _ => own,
        }
    }

    /// REFUSED: no zone of ours holds the name.
    pub fn refused() -> Self {
        Self {
            rcode: ResponseCode::Refused,
            ..Self::default()
        }
    }
}

/// Answers `qtype` at `qname` (class IN) for a client at `client` (the ECS address where one is
/// used): [`find`] then [`answer`]. `rng` drives randomized policies.
pub fn resolve<'s>(
    snapshot: &'s Snapshot,
    qname: &Name,
    qtype: RecordType,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Answer<'s> {
    match find(snapshot, &NameKey::new(qname), qtype, client) {
        Some(found) => answer(snapshot, &found, &|| qname.clone(), qtype, client, rng),
        None => Answer::refused(),
    }
}

/// Who is asking, as the policies of a zone with health `health` see it.
fn context<'s>(snapshot: &'s Snapshot, health: &'s HealthView, client: IpAddr) -> Context<'s> {
    Context {
        addr: crate::geo::canonical(client),
        geo: snapshot.geo.as_deref(),
        health,
    }
}

#[cfg(test)]
mod policy_tests;

#[cfg(test)]
mod tests {
    use super::*;

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
        crate::fixture::snapshot(&[("example.test.", ZONE)], crate::fixture::Geo::None)
    }

    fn ask<'s>(s: &'s Snapshot, name: &str, t: RecordType) -> Answer<'s> {
        let mut rng = fastrand::Rng::with_seed(1);
        let client = "192.0.2.1".parse().unwrap();
        resolve(s, &Name::from_ascii(name).unwrap(), t, client, &mut rng)
    }

    /// The answer section's data, pool endpoints included.
    fn data(a: &Answer<'_>) -> Vec<String> {
        a.answer_records()
            .map(|r| crate::presentation::record_text(&r))
            .collect()
    }

    fn refs(records: &[&Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| crate::presentation::record_text(r))
            .collect()
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
        assert!(a.answer_count() == 0);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn empty_non_terminal_is_nodata() {
        let s = snapshot();
        let a = ask(&s, "y.deep.example.test.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answer_count() == 0);
        assert_eq!(a.authorities.len(), 1);
    }

    #[test]
    fn cname_chain_includes_the_pool_target() {
        let s = snapshot();
        let a = ask(&s, "DOCS.example.test.", RecordType::A);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(a.answer_count(), 3);
        assert!(a.authoritative);
        let a = ask(&s, "docs.example.test.", RecordType::CNAME);
        assert_eq!(a.answer_count(), 1);
    }

    #[test]
    fn cname_loops_end() {
        let s = snapshot();
        let a = ask(&s, "loop1.example.test.", RecordType::A);
        assert_eq!(a.answer_count(), answer::MAX_CNAME_CHAIN);
    }

    #[test]
    fn pools_rotate_per_family() {
        let s = snapshot();
        let first = data(&ask(&s, "www.example.test.", RecordType::A));
        let second = data(&ask(&s, "www.example.test.", RecordType::A));
        assert_eq!(first, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(second, ["192.0.2.2", "192.0.2.1"]);
        let v6 = ask(&s, "www.example.test.", RecordType::AAAA);
        assert_eq!(data(&v6), ["2001:db8::1"]);
        let mx = ask(&s, "www.example.test.", RecordType::MX);
        assert!(mx.answer_count() == 0);
        assert_eq!(mx.authorities.len(), 1);
    }

    #[test]
    fn mx_gets_glue() {
        let s = snapshot();
        let a = ask(&s, "example.test.", RecordType::MX);
        assert_eq!(data(&a), ["10 mail.example.test."]);
        assert_eq!(refs(&a.additionals), ["192.0.2.25"]);
    }

    #[test]
    fn delegations_refer() {
        let s = snapshot();
        let a = ask(&s, "host.sub.example.test.", RecordType::A);
        assert!(!a.authoritative);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answer_count() == 0);
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
            a.answer_records().map(|r| r.record_type()).collect();
        assert_eq!(types.len(), 1);
    }
}

#[cfg(test)]
mod wildcard_tests {
    //! RFC 4592 §2.2.1's example zone, question by question.

    use super::*;

    const RFC4592: &str = r#"
        ns = ["ns.example.com.", "ns.example.net."]
        [soa]
        mname = "ns.example.com."
        rname = "hostmaster"
        serial = 1
        [[records]]
        name = "*"
        type = "TXT"
        data = ['"this is a wildcard"']
        [[records]]
        name = "*"
        type = "MX"
        data = ["10 host1"]
        [[records]]
        name = "sub.*"
        type = "TXT"
        data = ['"this is not a wildcard"']
        [[records]]
        name = "host1"
        type = "A"
        data = ["192.0.2.1"]
        [[records]]
        name = "_ssh._tcp.host1"
        type = "SRV"
        data = ["0 0 22 host1"]
        [[records]]
        name = "_ssh._tcp.host2"
        type = "SRV"
        data = ["0 0 22 host2"]
        [[records]]
        name = "subdel"
        type = "NS"
        data = ["ns.example.com.", "ns.example.net."]
    "#;

    /// (rcode, answer as "owner type data" lines, authority types).
    fn ask(name: &str, t: RecordType) -> (ResponseCode, Vec<String>, Vec<RecordType>) {
        let s = crate::fixture::snapshot(&[("example.", RFC4592)], crate::fixture::Geo::None);
        let mut rng = fastrand::Rng::with_seed(1);
        let client = "192.0.2.9".parse().unwrap();
        let a = resolve(&s, &Name::from_ascii(name).unwrap(), t, client, &mut rng);
        let answers = a
            .answer_records()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.name,
                    r.record_type(),
                    crate::presentation::record_text(&r)
                )
            })
            .collect();
        let authority = a.authorities.iter().map(|r| r.record_type()).collect();
        (a.rcode, answers, authority)
    }

    #[test]
    fn the_rfc_4592_examples() {
        use RecordType::*;
        let (rcode, answers, _) = ask("host3.example.", MX);
        assert_eq!(rcode, ResponseCode::NoError);
        assert_eq!(answers, ["host3.example. MX 10 host1.example."]);
        // The wildcard owns MX and TXT only: NODATA, with the SOA.
        let (rcode, answers, authority) = ask("host3.example.", A);
        assert_eq!(
            (rcode, answers.len(), authority),
            (ResponseCode::NoError, 0, vec![SOA])
        );
        let (_, answers, _) = ask("foo.bar.example.", TXT);
        assert_eq!(answers, ["foo.bar.example. TXT \"this is a wildcard\""]);
        // host1 exists: the wildcard does not apply to it.
        let (rcode, answers, _) = ask("host1.example.", MX);
        assert_eq!((rcode, answers.len()), (ResponseCode::NoError, 0));
        // sub.*.example exists: a literal name, not a wildcard match.
        let (rcode, answers, _) = ask("sub.*.example.", MX);
        assert_eq!((rcode, answers.len()), (ResponseCode::NoError, 0));
        // The closest encloser _tcp.host1.example (an empty non-terminal) has no wildcard.
        let (rcode, _, authority) = ask("_telnet._tcp.host1.example.", SRV);
        assert_eq!((rcode, authority), (ResponseCode::NXDomain, vec![SOA]));
        // Below a delegation: a referral, never a wildcard answer.
        let (rcode, answers, authority) = ask("host.subdel.example.", A);
        assert_eq!(
            (rcode, answers.len(), authority),
            (ResponseCode::NoError, 0, vec![NS, NS])
        );
        // The closest encloser is *.example itself, which has no wildcard child.
        let (rcode, _, _) = ask("ghost.*.example.", MX);
        assert_eq!(rcode, ResponseCode::NXDomain);
        // The wildcard asked for by name is an ordinary name.
        let (_, answers, _) = ask("*.example.", TXT);
        assert_eq!(answers, ["*.example. TXT \"this is a wildcard\""]);
    }
}
