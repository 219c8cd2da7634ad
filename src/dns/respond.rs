//! One DNS message in, one reply out: the stages of an answer, in the order they run. Each
//! stage is a call into the module that owns it; a feature that acts on every query (rate
//! limiting, cookies, NSID, signing) is one more step here, in a file of its own. Pure apart
//! from the policy state in the snapshot, so the same bytes come back over UDP and TCP.

use std::net::IpAddr;

use hickory_proto::op::{Metadata, ResponseCode};

use super::memo::{Encoded, Memo};
use super::reference;
use super::request::{self, Question, Read, RequestEdns};
use super::wire::{self, Ecs, Opt};
use crate::metrics::QueryLabels;
use crate::resolve::{self, Answer, Found, Served};
use crate::snapshot::Snapshot;
use crate::zone::Zone;

pub use crate::metrics::Transport;

/// Classic DNS over UDP without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// One message to answer.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'q> {
    pub query: &'q [u8],
    pub source: IpAddr,
    pub transport: Transport,
}

/// What every reply of this server carries, from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The payload size our OPT record advertises, and the most we send over UDP.
    pub udp_payload: u16,
    /// Our NSID (RFC 5001), for clients that ask.
    pub nsid: Option<Box<[u8]>>,
}

impl Settings {
    pub fn new(udp_payload: u16) -> Self {
        Self {
            udp_payload,
            nsid: None,
        }
    }

    /// Our NSID where the request `asked` for it (RFC 5001 §2.1: only then).
    pub fn nsid(&self, asked: bool) -> Option<&[u8]> {
        self.nsid.as_deref().filter(|_| asked)
    }
}

/// What a listener lends each message it answers.
#[derive(Debug)]
pub struct Responder<'w> {
    /// Drives randomized policies.
    pub rng: &'w mut fastrand::Rng,
    /// A UDP worker's memo of encoded replies (see [`super::memo`]).
    pub memo: Option<&'w mut Memo>,
    pub settings: &'w Settings,
    /// hickory's encoder instead of ours: the reference the fast one is tested against.
    pub reference: bool,
}

/// What the query path tells the metrics and the query log about one reply.
#[derive(Debug, Default)]
pub struct Outcome<'s> {
    pub qtype: Option<hickory_proto::rr::RecordType>,
    pub rcode: ResponseCode,
    pub zone: Option<&'s Zone>,
    pub served: Option<Served<'s>>,
    /// The Client Subnet the answer was decided for, if one was used.
    pub subnet: Option<(IpAddr, u8)>,
}

impl Outcome<'_> {
    pub fn labels(&self) -> QueryLabels<'_> {
        QueryLabels {
            zone: self.zone.map(|z| &*z.counters),
            qtype: self.qtype,
            rcode: self.rcode,
            policy: self.served.map(|s| s.set.policy.label()),
            answered_by: self
                .served
                .and_then(|s| s.pool.answers.by_datacenter.get(s.datacenter))
                .map(|c| &**c),
        }
    }
}

/// Builds the reply to `query` from `source` afresh (no memo), or `None` when nothing must be
/// sent.
pub fn respond(
    snapshot: &Snapshot,
    query: &[u8],
    source: IpAddr,
    transport: Transport,
    udp_payload: u16,
    rng: &mut fastrand::Rng,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let incoming = Incoming {
        query,
        source,
        transport,
    };
    let settings = Settings::new(udp_payload);
    let mut with = Responder {
        rng,
        memo: None,
        settings: &settings,
        reference: false,
    };
    respond_into(
        snapshot,
        incoming,
        &mut with,
        &mut Outcome::default(),
        &mut out,
    )
    .then_some(out)
}

/// Answers `incoming` into `out` (cleared first; the UDP workers reuse theirs), reporting what
/// was answered in `outcome`; false when nothing must be sent.
pub fn respond_into<'s>(
    snapshot: &'s Snapshot,
    incoming: Incoming<'_>,
    with: &mut Responder<'_>,
    outcome: &mut Outcome<'s>,
    out: &mut Vec<u8>,
) -> bool {
    // 1. Read and check the request: header, question, OPT, Client Subnet.
    let labels = request::question_labels(incoming.query);
    let question = match request::read(incoming.query, labels.as_ref(), incoming.source) {
        Read::Drop => return false,
        Read::Refuse(refusal) => {
            outcome.qtype = refusal.question.as_ref().map(|q| q.query_type());
            outcome.rcode = refusal.rcode;
            *out = reference::refusal(&refusal, with.settings);
            return true;
        }
        Read::Question(question) => question,
    };
    outcome.qtype = Some(question.qtype);
    outcome.subnet = question.used.map(|s| (s.addr, s.source_prefix));
    let reply = Reply::new(&question, incoming.transport, with.settings);
    // 2. Find: the zone (REFUSED if none), the node, the pool's decision for this client.
    let key = question.key();
    let found = resolve::find(snapshot, &key, question.qtype, question.client);
    // 3. A reply memoized for this node, type and decision in this snapshot: copied, patched.
    let memo_key = match (&with.memo, &found) {
        (Some(_), Some(found)) if !with.reference && question.labels.is_some() => {
            found.memo_key(question.qtype)
        }
        _ => None,
    };
    if let (Some(memo), Some((node, decided, scope))) = (with.memo.as_deref_mut(), &memo_key)
        && let Some(entry) = memo.get(snapshot.generation, node, question.qtype.into(), decided)
    {
        let end = question.labels.map_or(0, |l| l.0);
        entry.write(question.query, end, reply.opt(*scope).as_ref(), out);
        if out.len() <= reply.limit {
            outcome.rcode = entry.rcode;
            outcome.zone = found.as_ref().map(|f| f.zone);
            outcome.served = served(found.as_ref(), entry.datacenter);
            return true;
        }
    }
    // 4. Answer: CNAMEs, static records, or the pool's live endpoints in the decided order.
    let answer = match &found {
        Some(found) => {
            let qname = || question.name();
            let (qtype, client) = (question.qtype, question.client);
            resolve::answer(snapshot, found, &qname, qtype, client, with.rng)
        }
        None => Answer::refused(),
    };
    outcome.rcode = answer.rcode;
    outcome.zone = answer.zone;
    outcome.served = answer.served;
    // 5. Encode; a reply too large for UDP goes out empty with TC set (RFC 2181 §9), and the
    // client asks again over TCP.
    let mut metadata = Metadata::response_from_request(&question.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;
    let opt = reply.opt(answer.ecs_scope);
    let opt_at = encode(&question, &metadata, &answer, opt, with.reference, out);
    if out.len() > reply.limit {
        metadata.truncation = true;
        encode(
            &question,
            &metadata,
            &Answer::default(),
            opt,
            with.reference,
            out,
        );
        return true;
    }
    // 6. Memoize the fixed answer `find` stood for: not a fallback pool's or a wildcard's
    // (renamed) nor one that followed a CNAME.
    if let (Some(memo), Some((node, decided, scope)), Some(labels)) =
        (with.memo.as_deref_mut(), memo_key, question.labels)
        && answer.renamed.is_empty()
        && answer.at_qname.is_none()
        && answer.ecs_scope == scope
    {
        let encoded = Encoded {
            reply: out,
            question_end: labels.0,
            opt_at,
            rcode: answer.rcode,
            datacenter: answer.served.map(|s| s.datacenter),
        };
        memo.put(
            snapshot.generation,
            node,
            question.qtype.into(),
            decided,
            encoded,
        );
    }
    true
}

/// The pool `find` chose, serving from `datacenter` (a memoized reply's).
fn served<'s>(found: Option<&Found<'s>>, datacenter: Option<usize>) -> Option<Served<'s>> {
    let pool = found?.pool?;
    Some(Served {
        pool: pool.pool,
        set: pool.set,
        datacenter: datacenter?,
    })
}

/// Encodes with our encoder (or hickory's, for the reference or a question written with
/// compression pointers); returns where the OPT record starts.
fn encode(
    question: &Question<'_>,
    metadata: &Metadata,
    answer: &Answer<'_>,
    opt: Option<Opt<'_>>,
    reference: bool,
    out: &mut Vec<u8>,
) -> usize {
    match question.labels.filter(|_| !reference) {
        Some((end, offsets, count)) => {
            let labels = &offsets[..*count];
            wire::encode(
                question.query,
                *end,
                labels,
                metadata,
                answer,
                opt.as_ref(),
                out,
            )
        }
        None => {
            let asked = question.hickory();
            let edns = reference::edns(opt);
            *out = reference::encode(metadata, asked.as_deref(), answer, edns.as_ref());
            out.len()
        }
    }
}

/// What every reply to one request shares: its size limit and its OPT record.
struct Reply<'a> {
    limit: usize,
    /// The request's OPT record, if it had one.
    edns: Option<RequestEdns>,
    payload: u16,
    subnet: Option<super::ecs::ClientSubnet>,
    used: bool,
    nsid: Option<&'a [u8]>,
}

impl<'a> Reply<'a> {
    fn new(question: &Question<'_>, transport: Transport, settings: &'a Settings) -> Self {
        let limit = match (transport, &question.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(theirs)) => {
                usize::from(theirs.max_payload.clamp(512, settings.udp_payload.max(512)))
            }
        };
        Self {
            limit,
            edns: question.edns,
            payload: settings.udp_payload,
            subnet: question.subnet,
            used: question.used.is_some(),
            nsid: settings.nsid(question.nsid),
        }
    }

    /// Our OPT record: DO copied (RFC 3225 §3), the ECS option echoed (RFC 7871 §7.2.1: family,
    /// address and source prefix as sent, with the scope the answer depended on; 0 when the
    /// subnet was not used), our NSID if asked.
    fn opt(&self, scope: u8) -> Option<Opt<'a>> {
        let theirs = self.edns?;
        Some(Opt {
            payload: self.payload,
            dnssec_ok: theirs.dnssec_ok,
            ecs: self.subnet.map(|subnet| {
                let mut scope = if self.used { scope } else { 0 };
                // An IPv4-mapped IPv6 subnet was located as IPv4: count the mapping bits back.
                if scope > 0
                    && subnet.addr.is_ipv6()
                    && crate::geo::canonical(subnet.addr).is_ipv4()
                {
                    scope = scope.saturating_add(96).min(128);
                }
                Ecs {
                    addr: subnet.addr,
                    source: subnet.source_prefix,
                    scope,
                }
            }),
            nsid: self.nsid,
        })
    }
}
