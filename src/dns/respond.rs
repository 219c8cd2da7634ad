//! One DNS message in, one reply out: the stages of an answer, in the order they run. Each
//! stage is a call into the module that owns it; a feature that acts on every query (rate
//! limiting, cookies, NSID, signing) is one more step here, in a file of its own. Pure apart
//! from the policy state in the snapshot, so the same bytes come back over UDP and TCP.

use std::net::IpAddr;

use hickory_proto::op::{Metadata, ResponseCode};

use super::cookies::{Cookies, Verdict};
use super::memo::{Encoded, Entry as MemoEntry, Key as MemoKey, Memo};
use super::ratelimit::{Action, RateLimiter, class_of, truncate};
use super::reference;
use super::reply::Reply;
use super::request::{self, Question, Read};
use super::wire::{self, Opt};
use crate::metrics::QueryLabels;
use crate::resolve::{self, Answer, Found, Memoizable, Served};
use crate::snapshot::Snapshot;
use crate::zone::{NameKey, Zone};

pub use crate::metrics::Transport;
/// The RNG randomized policies draw from (for callers outside the crate: benches, fuzzing).
pub use fastrand::Rng;

/// One message to answer.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'q> {
    pub query: &'q [u8],
    pub source: IpAddr,
    pub transport: Transport,
}

/// What every reply of this server carries, from its configuration.
#[derive(Debug)]
pub struct Settings {
    /// The payload size our OPT record advertises, and the most we send over UDP.
    pub udp_payload: u16,
    /// Our NSID (RFC 5001), for clients that ask.
    pub nsid: Option<Box<[u8]>>,
    /// DNS Cookies (RFC 7873), where they are on.
    pub cookies: Option<Cookies>,
    /// Response rate limiting, where it is on.
    pub rate_limit: Option<RateLimiter>,
}

impl Settings {
    pub fn new(udp_payload: u16) -> Self {
        Self {
            udp_payload,
            nsid: None,
            cookies: None,
            rate_limit: None,
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
    /// Unix time in seconds (a UDP worker reads the clock once a batch): server cookies' stamp.
    pub now: u32,
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
    /// Where the question ends in the request (and the reply), if it was read.
    pub question_end: Option<usize>,
    /// The request carried a server cookie of ours: its source is not spoofed.
    pub cookie_valid: bool,
    /// The request is signed with TSIG: nothing was answered, the listener hands it to the
    /// manager (`dns::manage`).
    pub signed: bool,
}

impl Outcome<'_> {
    pub fn labels(&self) -> QueryLabels<'_> {
        QueryLabels {
            zone: self.zone.map(|z| &*z.counters),
            qtype: self.qtype,
            rcode: self.rcode,
            policy: self.served.map(|s| s.set.policy.label()),
            answered_by: self.served.and_then(|s| s.pool.answers.get(s.datacenter)),
        }
    }
}

/// Unix time in seconds, as server cookies stamp it.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
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
        now: unix_now(),
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
    if !answer_into(snapshot, incoming, with, outcome, out) {
        return false;
    }
    // 8. Response rate limiting: UDP replies only (TCP proves the source), and not to a source
    // that proved itself with a server cookie of ours.
    let limiter = with.settings.rate_limit.as_ref();
    match limiter.filter(|_| incoming.transport == Transport::Udp && !outcome.cookie_valid) {
        Some(limiter) => match limiter.account(incoming.source, class_of(out), with.now) {
            Action::Send => true,
            Action::Slip => outcome.question_end.is_some_and(|end| {
                truncate(out, end);
                true
            }),
            Action::Drop => false,
        },
        None => true,
    }
}

/// Steps 1 to 7 of [`respond_into`]: the reply as it is before rate limiting.
fn answer_into<'s>(
    snapshot: &'s Snapshot,
    incoming: Incoming<'_>,
    with: &mut Responder<'_>,
    outcome: &mut Outcome<'s>,
    out: &mut Vec<u8>,
) -> bool {
    // 1. Read and check the request: header, question, OPT, Client Subnet (borrowed, 240 B).
    let labels = request::question_labels(incoming.query);
    let read = request::read(incoming.query, labels.as_ref(), incoming.source);
    let question = match &read {
        Read::Question(question) => question,
        other => return not_a_question(other, with.settings, outcome, out),
    };
    outcome.qtype = Some(question.qtype);
    outcome.subnet = question.used.map(|s| (s.addr, s.source_prefix));
    outcome.question_end = question.labels.map(|l| l.0);
    let reply = Reply::new(question, incoming, with);
    outcome.cookie_valid = reply.cookie == Some(Verdict::Valid);
    // 2. Cookies (RFC 7873 §5.2.4): a server cookie we did not make, over UDP, gets BADCOOKIE
    // with ours, and the client asks again with it; over TCP the connection vouches for it.
    if reply.cookie == Some(Verdict::Invalid) && incoming.transport == Transport::Udp {
        outcome.rcode = ResponseCode::BADCOOKIE;
        *out = reply.badcookie(question);
        return true;
    }
    // 3. Find: the zone (REFUSED if none), the node, the pool's decision for this client.
    let found = find(snapshot, question);
    // 4. A reply memoized for this node, type and decision of this zone and health: copied,
    // patched. Signed answers (DO to a signed zone) are memoized apart, until their
    // signatures are remade.
    let signing = question.edns.as_ref().is_some_and(|e| e.dnssec_ok)
        && found.as_ref().is_some_and(|f| f.zone.signer.is_some());
    let memo_key = found
        .as_ref()
        .filter(|_| with.memo.is_some() && !with.reference)
        .and_then(|found| memo_key(question, found, signing));
    let stamp = found
        .as_ref()
        .map_or((0, 0), |f| (f.zone.version, f.health.version));
    if let (Some(memo), Some((key, memoizable))) = (with.memo.as_deref_mut(), &memo_key)
        && let Some(entry) = memo.get(stamp, key, with.now)
        && copy_memoized(entry, found.as_ref(), memoizable, question, &reply, out)
    {
        outcome.rcode = entry.rcode;
        outcome.zone = found.as_ref().map(|f| f.zone);
        outcome.served = served(found.as_ref(), entry.datacenter);
        return true;
    }
    // 5. Answer: CNAMEs, static records, or the pool's live endpoints in the decided order.
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
    // 6. Encode, with DNSSEC's signatures and denial proofs for DO to a signed zone; a reply
    // too large for UDP goes out empty with TC set.
    let encoded = match answer.zone.filter(|_| signing) {
        Some(zone) => sign_into(question, &answer, &reply, zone, with.now, out),
        None => encode_fitting(question, &answer, &reply, with.reference, out)
            .map(|opt_at| (opt_at, answer.rcode, u32::MAX)),
    };
    let Some((opt_at, rcode, fresh_until)) = encoded else {
        return true;
    };
    // 7. Memoize the fixed (or rotating) answer `find` stood for: not a fallback pool's or a
    // wildcard's (renamed) nor one that followed a CNAME.
    if let (Some(memo), Some((key, memoizable)), Some(labels)) =
        (with.memo.as_deref_mut(), memo_key, question.labels)
        && answer.renamed.is_empty()
        && answer.at_qname.is_none()
        && answer.ecs_scope == memoizable.scope
        && let Some(rotation) = memo_rotation(found.as_ref(), &memoizable, &answer)
    {
        let encoded = Encoded {
            reply: out,
            question_end: labels.0,
            opt_at,
            rcode,
            datacenter: answer.served.map(|s| s.datacenter),
            fresh_until,
            rotation,
        };
        memo.put(stamp, key, encoded);
    }
    true
}

/// Step 1 for a request that is not a question to answer: nothing sent (dropped, or signed and
/// so the manager's), or a refusal with only its response code.
#[cold]
#[inline(never)]
fn not_a_question(
    read: &Read<'_>,
    settings: &Settings,
    outcome: &mut Outcome<'_>,
    out: &mut Vec<u8>,
) -> bool {
    match read {
        Read::Refuse(refusal) => {
            outcome.qtype = refusal.question.as_ref().map(|q| q.query_type());
            outcome.rcode = refusal.rcode;
            *out = reference::refusal(refusal, settings);
            true
        }
        Read::Signed => {
            outcome.signed = true;
            false
        }
        Read::Drop | Read::Question(_) => false,
    }
}

/// Step 3: where `question` lands, and its pool's decision.
fn find<'s>(snapshot: &'s Snapshot, question: &Question<'_>) -> Option<Found<'s>> {
    let mut key = NameKey::empty();
    question.key_into(&mut key);
    resolve::find(snapshot, &key, question.qtype, question.client)
}

/// Encodes the reply into `out`; where it does not fit (UDP), it goes out empty with TC set
/// (RFC 2181 §9) and the client asks again over TCP: then `None`, else where the OPT record
/// starts.
fn encode_fitting(
    question: &Question<'_>,
    answer: &Answer<'_>,
    reply: &Reply<'_>,
    reference: bool,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let mut metadata = Metadata::response_from_request(&question.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;
    let opt = reply.opt(answer.ecs_scope);
    let opt_at = encode(question, &metadata, answer, opt, reference, out);
    if out.len() <= reply.limit {
        return Some(opt_at);
    }
    metadata.truncation = true;
    encode(question, &metadata, &Answer::default(), opt, reference, out);
    None
}

/// The signed reply (see [`super::sign`]) into `out`, with our OPT record; one too large for
/// UDP goes out empty with TC set (then `None`). Else where its OPT record starts, its
/// response code and until when its signatures are current.
#[cold]
#[inline(never)]
fn sign_into(
    question: &Question<'_>,
    answer: &Answer<'_>,
    reply: &Reply<'_>,
    zone: &Zone,
    now: u32,
    out: &mut Vec<u8>,
) -> Option<(usize, ResponseCode, u32)> {
    let mut metadata = Metadata::response_from_request(&question.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;
    let asked = question.hickory();
    let qname = question.name();
    let compact_ok = question.edns.as_ref().is_some_and(|e| e.compact_ok);
    let signed = super::sign::signed_reply(
        &metadata,
        asked.as_deref(),
        &qname,
        answer,
        zone,
        (now, compact_ok),
    );
    *out = signed.reply;
    let opt_at = out.len();
    let opt = reply.opt(answer.ecs_scope);
    if let Some(opt) = &opt
        && out.len() >= 12
    {
        let additionals = u16::from_be_bytes([out[10], out[11]]) + 1;
        out[10..12].copy_from_slice(&additionals.to_be_bytes());
        wire::emit_opt(out, opt, signed.rcode);
    }
    if out.len() <= reply.limit {
        return Some((opt_at, signed.rcode, signed.fresh_until));
    }
    metadata.truncation = true;
    metadata.response_code = signed.rcode;
    let edns = reference::edns(opt);
    *out = reference::encode(
        &metadata,
        asked.as_deref(),
        &Answer::default(),
        edns.as_ref(),
    );
    None
}

/// Step 4: the memoized reply `entry` for `question` into `out`, a rotating one rotated on;
/// false where it cannot be (it would not fit).
fn copy_memoized(
    entry: &MemoEntry,
    found: Option<&Found<'_>>,
    memoizable: &Memoizable<'_>,
    question: &Question<'_>,
    reply: &Reply<'_>,
    out: &mut Vec<u8>,
) -> bool {
    let (end, opt) = (
        question.labels.map_or(0, |l| l.0),
        reply.opt(memoizable.scope),
    );
    // The rotation it was kept with: the same stamp and key, the same serving datacenter.
    let rotation = match entry.rotates() {
        true => found
            .zip(entry.datacenter)
            .and_then(|(f, dc)| f.rotation_of(dc)),
        false => None,
    };
    entry.write(question.query, end, opt.as_ref(), rotation.as_ref(), out)
        && out.len() <= reply.limit
}

/// How `answer` is memoized: `Some(None)` as it is, `Some(Some((n, start)))` as a rotation
/// (see `Found::rotation`) of `n` records that started at `start`, `None` not at all (an answer
/// of a set that may rotate that is not now the whole rotation).
fn memo_rotation(
    found: Option<&Found<'_>>,
    memoizable: &Memoizable<'_>,
    answer: &Answer<'_>,
) -> Option<Option<(usize, usize)>> {
    if !memoizable.rotated {
        return Some(None);
    }
    let rotation = found?.rotation()?;
    let start = answer.pool_order.first()?.checked_sub(rotation.first)? as usize;
    let n = rotation.n;
    let rotated = (0..n).map(|k| rotation.first + ((start + k) % n) as u32);
    let whole = answer.pool_records() == (0..n) && answer.pool_order.iter().copied().eq(rotated);
    whole.then_some(Some((n, start)))
}

/// What a reply to `question` is memoized under (with its ECS scope and rotation), where it
/// can be.
fn memo_key<'s>(
    question: &Question<'_>,
    found: &Found<'s>,
    signed: bool,
) -> Option<(MemoKey, Memoizable<'s>)> {
    question.labels?;
    // A signed reply for a client that takes compact answers (RFC 9824) is not shared.
    if signed && question.edns.as_ref().is_some_and(|e| e.compact_ok) {
        return None;
    }
    let (decided, memoizable) = found.memo_key(question.qtype)?;
    let key = MemoKey::new(memoizable.node, question.qtype.into(), decided, signed);
    Some((key, memoizable))
}

/// The pool `find` chose, serving from `datacenter` (a memoized reply's).
fn served<'s>(found: Option<&Found<'s>>, datacenter: Option<usize>) -> Option<Served<'s>> {
    let pool = found?.pool?;
    Some(Served {
        pool: pool.pool,
        set: pool.set,
        owner: pool.owner,
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
