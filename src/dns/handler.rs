//! One DNS message in, one reply out: header checks, EDNS (RFC 6891), the call to [`resolve`](crate::resolve),
//! and the encoding of the reply with truncation for UDP. Pure apart from the policy state in
//! the snapshot, so the same bytes come back over UDP and TCP.

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode, emit_message_parts,
};
use std::net::IpAddr;

use hickory_proto::rr::rdata::opt::{ClientSubnet as HickorySubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};

use super::memo::Memo;
use super::{ecs, wire};
use crate::metrics::QueryLabels;
use crate::resolve::{self, Answer, Served};
use crate::state::Snapshot;
use crate::zone::{NameKey, Zone};

/// The transport a message came over; it decides the size limit of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Classic DNS over UDP without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// Builds the reply to `query` from `source`, or `None` when nothing must be sent (not a DNS
/// header, or a response: answering those would let anyone bounce traffic off us).
pub fn respond(
    snapshot: &Snapshot,
    query: &[u8],
    source: IpAddr,
    transport: Transport,
    udp_payload: u16,
    rng: &mut fastrand::Rng,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let outcome = &mut Outcome::default();
    respond_into(
        snapshot,
        query,
        source,
        transport,
        udp_payload,
        rng,
        None,
        outcome,
        &mut out,
    )
    .then_some(out)
}

/// What the query path tells the metrics and the query log about one reply.
#[derive(Debug, Default)]
pub struct Outcome<'s> {
    pub qtype: Option<RecordType>,
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
            policy: self.served.map(|s| &s.set.policy),
            answered_by: self
                .served
                .and_then(|s| s.pool.answers.by_datacenter.get(s.datacenter))
                .map(|c| &**c),
        }
    }
}

/// [`respond`], writing the reply into `out` (cleared first; the UDP workers reuse theirs) and
/// reporting what was answered in `outcome`; false when nothing must be sent. With a `memo`,
/// fixed answers are encoded once per snapshot (see [`super::memo`]).
#[allow(clippy::too_many_arguments)]
pub fn respond_into<'s>(
    snapshot: &'s Snapshot,
    query: &[u8],
    source: IpAddr,
    transport: Transport,
    udp_payload: u16,
    rng: &mut fastrand::Rng,
    memo: Option<&mut Memo>,
    outcome: &mut Outcome<'s>,
    out: &mut Vec<u8>,
) -> bool {
    respond_with(
        snapshot,
        query,
        source,
        transport,
        udp_payload,
        rng,
        true,
        memo,
        outcome,
        out,
    )
}

/// [`respond`], with the fast encoder or (`fast == false`) hickory's reference encoder.
#[allow(clippy::too_many_arguments)]
fn respond_with<'s>(
    snapshot: &'s Snapshot,
    query: &[u8],
    source: IpAddr,
    transport: Transport,
    udp_payload: u16,
    rng: &mut fastrand::Rng,
    fast: bool,
    mut memo: Option<&mut Memo>,
    outcome: &mut Outcome<'s>,
    out: &mut Vec<u8>,
) -> bool {
    let Ok(header) = Header::read(&mut BinDecoder::new(query)) else {
        return false;
    };
    if header.metadata.message_type == MessageType::Response {
        return false;
    }
    // Where the question's labels are: read once, for the decoder, the zone key and the
    // encoder's pointers.
    let labels = wire::question_labels(query);
    let Ok(request) = decode(query, &header, labels.as_ref()) else {
        *out = noted(outcome, &header.metadata, None, ResponseCode::FormErr, None);
        return true;
    };
    // Our OPT record in hickory's form, for error replies (hickory's encoder) only.
    let our_edns = || {
        request.edns.as_ref().map(|_| {
            let mut ours = Edns::new();
            ours.set_max_payload(udp_payload);
            ours
        })
    };
    // hickory's form of the question, for replies built by its encoder (errors, the reference).
    let decoded = std::cell::OnceCell::new();
    let hickory_question = || -> Option<&Query> {
        match request.lean_question {
            Some(_) => decoded
                .get_or_init(|| Query::read(&mut BinDecoder::new(&query[12..])).ok())
                .as_ref(),
            None => request.queries.first(),
        }
    };
    // A reply with only a response code (and the question): every refusal below.
    let mut refuse = |rcode| {
        *out = noted(
            outcome,
            &request.metadata,
            hickory_question(),
            rcode,
            our_edns().as_ref(),
        );
        true
    };
    let subnet = match (&request.edns, request.subnet) {
        (_, Some(read)) => read,
        (Some(_), None) => ecs::find(query),
        (None, None) => Ok(None),
    };
    let Ok(subnet) = subnet else {
        // RFC 7871 §7.1.1: a malformed ECS option is a FORMERR.
        return refuse(ResponseCode::FormErr);
    };
    if request.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    let (qtype, qclass) = match (request.lean_question, request.queries.as_slice()) {
        (Some(question), _) => question,
        (None, [question]) => (question.query_type(), question.query_class()),
        (None, _) => return refuse(ResponseCode::FormErr),
    };
    if request.edns.as_ref().is_some_and(|e| e.version > 0) {
        // RFC 6891 §6.1.3: we speak EDNS version 0 only.
        return refuse(ResponseCode::BADVERS);
    }
    match qtype {
        RecordType::OPT => return refuse(ResponseCode::FormErr),
        // No zone transfers.
        RecordType::AXFR | RecordType::IXFR => return refuse(ResponseCode::Refused),
        _ => {}
    }
    if qclass != DNSClass::IN {
        return refuse(ResponseCode::Refused);
    }

    let used = subnet.filter(ecs::ClientSubnet::usable);
    let client = used.map_or(source, |s| s.addr);
    // The name as a hickory `Name`, for the rare answer that needs it.
    let qname = || {
        hickory_question()
            .map(|q| q.name().clone())
            .unwrap_or_default()
    };
    let key = labels
        .as_ref()
        .and_then(|(_, offsets, count)| NameKey::from_wire(query, &offsets[..*count]))
        .unwrap_or_else(|| NameKey::new(&qname()));
    let limit = match (transport, &request.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(theirs)) => {
            usize::from(theirs.max_payload.clamp(512, udp_payload.max(512)))
        }
    };
    // RFC 7871 §7.2.1: echo family, address and source prefix, with the scope the answer
    // depended on; scope 0 when the subnet was not used.
    let opt = |scope: u8| {
        request.edns.map(|_| wire::Opt {
            payload: udp_payload,
            ecs: subnet.map(|subnet| {
                let mut scope = match used {
                    Some(_) => scope,
                    None => 0,
                };
                // An IPv4-mapped IPv6 subnet was located as IPv4: count the mapping bits back in.
                if scope > 0
                    && subnet.addr.is_ipv6()
                    && crate::geo::canonical(subnet.addr).is_ipv4()
                {
                    scope = scope.saturating_add(96).min(128);
                }
                wire::Ecs {
                    addr: subnet.addr,
                    source: subnet.source_prefix,
                    scope,
                }
            }),
        })
    };
    outcome.qtype = Some(qtype);
    outcome.subnet = used.map(|s| (s.addr, s.source_prefix));
    let qtype_code = u16::from(qtype);

    // A reply memoized for this name, type and decision in this snapshot: copied and patched.
    let (fixed, found) = match (&memo, &labels) {
        (Some(_), Some(_)) if fast => match resolve::fixed(snapshot, &key, qtype, client) {
            Ok(fixed) => (Some(fixed), None),
            Err(found) => (None, found),
        },
        _ => (None, None),
    };
    if let (Some(memo), Some(fixed), Some((end, _, _))) = (memo.as_deref_mut(), &fixed, &labels)
        && let Some(entry) = memo.get(snapshot.generation, fixed.node, qtype_code, &fixed.decided)
    {
        entry.write(query, *end, opt(fixed.scope).as_ref(), out);
        if out.len() <= limit {
            outcome.rcode = entry.rcode;
            outcome.zone = Some(fixed.zone);
            outcome.served = entry.datacenter.and_then(|datacenter| {
                let pool = fixed.node.pool.as_ref()?;
                let set = pool.endpoints(qtype)?;
                Some(Served {
                    pool,
                    set,
                    datacenter,
                })
            });
            return true;
        }
    }

    // The lookups `fixed` made for the question's name, not made again.
    let found = fixed
        .as_ref()
        .map(|f| resolve::Found {
            zone: f.zone,
            lookup: crate::zone::Lookup::Node(f.node),
        })
        .or(found);
    let answer = resolve::resolve_found(snapshot, &qname, key, found, qtype, client, rng);
    outcome.rcode = answer.rcode;
    outcome.zone = answer.zone;
    outcome.served = answer.served;
    let opt = opt(answer.ecs_scope);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;

    let labels = labels.filter(|_| fast);
    let build = |metadata: &Metadata, answer: &Answer<'_>, out: &mut Vec<u8>| match &labels {
        Some((end, offsets, count)) => wire::encode(
            query,
            *end,
            &offsets[..*count],
            metadata,
            answer,
            opt.as_ref(),
            out,
        ),
        // A question written with compression pointers (legal, never seen in practice).
        None => {
            *out = encode_reference(
                metadata,
                hickory_question(),
                answer,
                hickory_edns(opt).as_ref(),
            );
            out.len()
        }
    };
    let opt_at = build(&metadata, &answer, out);
    if out.len() <= limit {
        // Memoize it if it is the fixed answer `fixed` stood for: not a fallback pool's (renamed)
        // nor one that followed a CNAME.
        if let (Some(memo), Some(fixed), Some((end, _, _))) = (memo, fixed, &labels)
            && answer.renamed.is_none()
            && answer.at_qname.is_none()
            && answer.ecs_scope == fixed.scope
        {
            let datacenter = answer.served.map(|s| s.datacenter);
            memo.put(
                snapshot.generation,
                fixed.node,
                qtype_code,
                fixed.decided,
                out,
                *end,
                opt_at,
                answer.rcode,
                datacenter,
            );
        }
        return true;
    }
    // RFC 2181 §9: a reply that does not fit is sent empty with TC set; the client asks again
    // over TCP and gets the whole answer.
    metadata.truncation = true;
    build(&metadata, &Answer::default(), out);
    true
}

/// hickory's form of our OPT record, for the reference encoder.
fn hickory_edns(opt: Option<wire::Opt>) -> Option<Edns> {
    let opt = opt?;
    let mut edns = Edns::new();
    edns.set_max_payload(opt.payload);
    if let Some(ecs) = opt.ecs {
        edns.options_mut()
            .insert(EdnsOption::Subnet(HickorySubnet::new(
                ecs.addr, ecs.source, ecs.scope,
            )));
    }
    Some(edns)
}

/// What the query path reads of a request.
struct Request {
    metadata: Metadata,
    /// The questions hickory decoded (the whole-message path); empty (no allocation) when the
    /// lean path read the one question.
    queries: Vec<Query>,
    /// The one question the lean path read, as (type, class); its name stays in the message
    /// (the zone key is made from its bytes) and is decoded only for a reply that needs it.
    lean_question: Option<(RecordType, DNSClass)>,
    edns: Option<RequestEdns>,
    /// The Client Subnet option, where the lean decoder already read it.
    subnet: Option<Result<Option<ecs::ClientSubnet>, ()>>,
}

/// What the query path reads of a request's OPT record (RFC 6891 §6.1.3); the options are read
/// from the wire where needed (`ecs::find`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestEdns {
    max_payload: u16,
    version: u8,
    rcode_high: u8,
}

impl From<&Edns> for RequestEdns {
    fn from(edns: &Edns) -> Self {
        Self {
            max_payload: edns.max_payload(),
            version: edns.version(),
            rcode_high: edns.rcode_high(),
        }
    }
}

/// The OPT record that ends `rest` (the message after its question), read directly when it has
/// the usual shape: root owner, no options or a single well-formed Client Subnet option, and
/// nothing after it. `None` for anything else, which hickory's decoder then judges.
fn lean_opt(rest: &[u8]) -> Option<(RequestEdns, Option<ecs::ClientSubnet>)> {
    let (&[0, 0, 41, p1, p2, rcode_high, version, _, _, l1, l2], rdata) =
        rest.split_first_chunk::<11>()?
    else {
        return None;
    };
    if rdata.len() != usize::from(u16::from_be_bytes([l1, l2])) {
        return None;
    }
    let subnet = match rdata {
        [] => None,
        [0, 8, l1, l2, data @ ..] if data.len() == usize::from(u16::from_be_bytes([*l1, *l2])) => {
            Some(ecs::parse(data).ok()?)
        }
        _ => return None,
    };
    // hickory reads payloads under 512 as 512 (RFC 6891 §6.2.5).
    let edns = RequestEdns {
        max_payload: u16::from_be_bytes([p1, p2]).max(512),
        version,
        rcode_high,
    };
    Some((edns, subnet))
}

/// Decodes a request. The usual shape — one question and at most an OPT record — is read
/// directly; anything else goes through hickory's whole-message decoder.
fn decode(
    query: &[u8],
    header: &Header,
    labels: Option<&(usize, [u16; 128], usize)>,
) -> Result<Request, ()> {
    let counts = header.counts;
    if counts.queries == 1
        && counts.answers == 0
        && counts.authorities == 0
        && counts.additionals <= 1
    {
        let lean = (|| {
            let &(end, _, _) = labels?;
            // hickory refuses names over 255 bytes (RFC 1035 §2.3.4); so does this path.
            if end - 4 - 12 > 255 {
                return None;
            }
            let field = |at: usize| u16::from_be_bytes([query[at], query[at + 1]]);
            let question = (
                RecordType::from(field(end - 4)),
                DNSClass::from(field(end - 2)),
            );
            let edns = match counts.additionals {
                0 => None,
                _ => Some(lean_opt(query.get(end..)?)?),
            };
            Some((question, edns))
        })();
        if let Some((question, edns)) = lean {
            let mut metadata = header.metadata;
            let subnet = edns.map(|(edns, subnet)| {
                metadata.merge_response_code(edns.rcode_high);
                Ok(subnet)
            });
            return Ok(Request {
                metadata,
                queries: Vec::new(),
                lean_question: Some(question),
                edns: edns.map(|(edns, _)| edns),
                subnet,
            });
        }
    }
    let message = Message::from_vec(query).map_err(|_| ())?;
    Ok(Request {
        metadata: message.metadata,
        queries: message.queries,
        lean_question: None,
        edns: message.edns.as_ref().map(RequestEdns::from),
        subnet: None,
    })
}

/// [`error_reply`], noting its code in `outcome`.
fn noted(
    outcome: &mut Outcome<'_>,
    request: &Metadata,
    question: Option<&Query>,
    rcode: ResponseCode,
    edns: Option<&Edns>,
) -> Vec<u8> {
    outcome.qtype = question.map(Query::query_type);
    outcome.rcode = rcode;
    error_reply(request, question, rcode, edns)
}

/// A reply that carries only a response code (and the question, where one was read).
fn error_reply(
    request: &Metadata,
    question: Option<&Query>,
    rcode: ResponseCode,
    edns: Option<&Edns>,
) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = rcode;
    let answer = Answer::default();
    encode_reference(&metadata, question, &answer, edns)
}

/// hickory-proto's own encoder: error replies, the rare compressed question, and the reference
/// the fast encoder is tested against.
pub(crate) fn encode_reference(
    metadata: &Metadata,
    question: Option<&Query>,
    answer: &Answer<'_>,
    edns: Option<&Edns>,
) -> Vec<u8> {
    // The degraded TTL and a fallback pool's owner are applied to copies here; the fast
    // encoder writes them directly.
    let answers: Vec<std::borrow::Cow<'_, Record>> = answer
        .answers
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let ttl = match answer.degraded_ttl {
                Some((from, ttl)) if i >= from => ttl,
                _ => r.ttl,
            };
            let owner = answer.owner(i, r);
            match ttl == r.ttl && std::ptr::eq(owner, &r.name) {
                true => std::borrow::Cow::Borrowed(r),
                false => {
                    let mut owned = r.clone();
                    owned.ttl = ttl;
                    owned.name = owner.clone();
                    std::borrow::Cow::Owned(owned)
                }
            }
        })
        .collect();
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    let result = emit_message_parts(
        metadata,
        &mut question.into_iter(),
        &mut answers.iter().map(AsRef::as_ref),
        &mut answer.authorities.iter().copied(),
        &mut answer.additionals.iter().copied(),
        edns,
        None,
        &mut encoder,
    );
    if let Err(e) = result {
        // Our own data failed to encode: say SERVFAIL rather than send half a message.
        tracing::error!(error = %e, "cannot encode reply");
        let mut failed = *metadata;
        failed.response_code = ResponseCode::ServFail;
        failed.authoritative = false;
        buf.clear();
        let mut encoder = BinEncoder::new(&mut buf);
        let empty: [&Record; 0] = [];
        let _ = emit_message_parts(
            &failed,
            &mut question.into_iter(),
            &mut empty.iter().copied(),
            &mut empty.iter().copied(),
            &mut empty.iter().copied(),
            edns,
            None,
            &mut encoder,
        );
    }
    buf
}

#[cfg(test)]
mod tests {
    //! The fast encoder against hickory's reference: random queries (names, case, types,
    //! EDNS, ECS, payload sizes, garbage), both replies decoded and compared section by section.

    use super::*;
    use crate::state::Snapshot;
    use crate::zone::{ZoneSet, build_zone, spec::ZoneSpec};
    use hickory_proto::op::Message;
    use hickory_proto::rr::Name;

    const ZONE: &str = r#"
        ns = ["ns1", "ns2.elsewhere.example."]
        [soa]
        mname = "ns1"
        rname = "hostmaster"
        serial = 9
        minimum = 60
        [[records]]
        name = "ns1"
        type = "A"
        data = ["192.0.2.53"]
        [[records]]
        name = "@"
        type = "MX"
        data = ["10 mail", "20 mx.elsewhere.example."]
        [[records]]
        name = "mail"
        type = "AAAA"
        data = ["2001:db8::25"]
        [[records]]
        name = "docs"
        type = "CNAME"
        data = ["web"]
        [[records]]
        name = "out"
        type = "CNAME"
        data = ["www.elsewhere.example."]
        [[records]]
        name = "sub"
        type = "NS"
        data = ["ns.sub"]
        [[records]]
        name = "ns.sub"
        type = "A"
        data = ["192.0.2.99"]
        [[records]]
        name = "big"
        type = "TXT"
        data = ["\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"", "\"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"", "\"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"", "\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"", "\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\""]
        [[records]]
        name = "_sip._udp"
        type = "SRV"
        data = ["10 60 5060 ns1"]
        [[records]]
        name = "@"
        type = "CAA"
        data = ['0 issue "ca.example"']
        [pools.web]
        policy = "all"
        endpoints = [{ address = "192.0.2.10" }, { address = "192.0.2.11" }, { address = "2001:db8::10" }]
        [pools.edge]
        policy = "geo"
        [pools.edge.nets]
        "10.0.0.0/8" = ["b"]
        [[pools.edge.datacenters]]
        name = "a"
        latitude = 40.0
        longitude = -75.0
        policy = "all"
        endpoints = [{ address = "198.51.100.1" }, { address = "2001:db8:a::1" }]
        [[pools.edge.datacenters]]
        name = "b"
        latitude = 50.0
        longitude = 8.0
        policy = "all"
        endpoints = [{ address = "198.51.100.2" }]
    "#;

    fn snapshot() -> Snapshot {
        snapshot_of(ZONE)
    }

    /// A snapshot of `zone` (as example.test.) with the bundled test GeoIP database.
    fn snapshot_of(zone: &str) -> Snapshot {
        let spec: ZoneSpec = toml::from_str(zone).unwrap();
        let zone = build_zone(&Name::from_ascii("example.test.").unwrap(), &spec, None).unwrap();
        let db = crate::geo::GeoDb::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/geoip/meridian-test.mmdb"
        )))
        .unwrap();
        Snapshot {
            generation: 1,
            zones: std::sync::Arc::new(ZoneSet::new([zone])),
            geo: Some(std::sync::Arc::new(db)),
            health: Default::default(),
        }
    }

    fn random_case(rng: &mut fastrand::Rng, name: &str) -> String {
        name.chars()
            .map(|c| {
                if rng.bool() {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    fn query(rng: &mut fastrand::Rng) -> Vec<u8> {
        let names = [
            "example.test",
            "web.example.test",
            "edge.example.test",
            "docs.example.test",
            "out.example.test",
            "mail.example.test",
            "nope.example.test",
            "a.b.sub.example.test",
            "sub.example.test",
            "big.example.test",
            "_sip._udp.example.test",
            "_udp.example.test",
            "example.org",
            "ns1.example.test",
            ".",
        ];
        let types = [1u16, 28, 2, 6, 15, 16, 33, 257, 5, 255, 43, 12, 99];
        let pick = rng.usize(..names.len());
        let name = random_case(rng, names[pick]);
        let mut q = Vec::new();
        q.extend_from_slice(&rng.u16(..).to_be_bytes());
        q.extend_from_slice(&[
            if rng.bool() { 0x01 } else { 0x00 },
            if rng.bool() { 0x10 } else { 0 },
        ]);
        let edns = rng.u8(..4);
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns > 0)]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&types[rng.usize(..types.len())].to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if edns > 0 {
            let payload: u16 = [512u16, 1232, 4096, 100][rng.usize(..4)];
            let mut options = Vec::new();
            if edns > 1 {
                let (family, source, addr): (u16, u8, Vec<u8>) = match rng.u8(..5) {
                    0 => (1, 24, vec![81, 2, 69]),
                    1 => (1, 24, vec![8, 8, 8]),
                    2 => (1, 16, vec![10, 1]),
                    3 => (2, 48, vec![0x2a, 0x00, 0x14, 0x50, 0, 0]),
                    _ => (1, 0, vec![]),
                };
                options.extend_from_slice(&8u16.to_be_bytes());
                options.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
                options.extend_from_slice(&family.to_be_bytes());
                options.extend_from_slice(&[source, 0]);
                options.extend_from_slice(&addr);
            }
            q.push(0);
            q.extend_from_slice(&41u16.to_be_bytes());
            q.extend_from_slice(&payload.to_be_bytes());
            let do_bit = if rng.bool() { 0x80 } else { 0 };
            q.extend_from_slice(&[0, 0, do_bit, 0]);
            q.extend_from_slice(&(options.len() as u16).to_be_bytes());
            q.extend_from_slice(&options);
        }
        // Now and then, damage it.
        if rng.u8(..20) == 0 {
            let at = rng.usize(..q.len());
            q[at] = rng.u8(..);
        }
        q
    }

    #[test]
    fn rotating_pools_are_never_memoized() {
        let snapshot = snapshot_of(
            r#"
            ns = ["ns1"]
            [soa]
            mname = "ns1"
            rname = "hostmaster"
            serial = 1
            [pools.rr]
            policy = "round_robin"
            endpoints = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            [pools.fixed]
            policy = "all"
            endpoints = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            "#,
        );
        let mut memo = Memo::default();
        let mut first = |name: &[u8]| {
            let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(name);
            q.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
            let mut out = Vec::new();
            let source = "127.0.0.1".parse().unwrap();
            let mut rng = fastrand::Rng::new();
            let outcome = &mut Outcome::default();
            assert!(respond_into(
                &snapshot,
                &q,
                source,
                Transport::Udp,
                1232,
                &mut rng,
                Some(&mut memo),
                outcome,
                &mut out,
            ));
            let reply = Message::from_vec(&out).unwrap();
            reply.answers[0].data.clone()
        };
        let rotated: Vec<_> = (0..3).map(|_| first(b"\x02rr")).collect();
        assert!(
            rotated[0] != rotated[1] && rotated[1] != rotated[2],
            "{rotated:?}"
        );
        let fixed: Vec<_> = (0..3).map(|_| first(b"\x05fixed")).collect();
        assert!(fixed.iter().all(|f| *f == fixed[0]), "{fixed:?}");
        assert_eq!(memo.hits, 2);
    }

    #[test]
    fn names_over_255_bytes_are_formerr_and_255_bytes_are_fine() {
        let snapshot = snapshot();
        let query = |labels: &[usize]| {
            let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for &len in labels {
                q.push(len as u8);
                q.extend(std::iter::repeat_n(b'a', len));
            }
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            q
        };
        let rcode = |q: &[u8]| {
            let reply = respond(
                &snapshot,
                q,
                "127.0.0.1".parse().unwrap(),
                Transport::Udp,
                1232,
                &mut fastrand::Rng::new(),
            )
            .unwrap();
            reply[3] & 0x0f
        };
        // 1+63 + 1+63 + 1+63 + 1+61 + 1 = 255 bytes: a name of another zone, REFUSED.
        assert_eq!(rcode(&query(&[63, 63, 63, 61])), 5);
        // One byte more: FORMERR, as hickory's decoder says.
        assert_eq!(rcode(&query(&[63, 63, 63, 62])), 1);
        assert!(Message::from_vec(&query(&[63, 63, 63, 62])).is_err());
    }

    #[test]
    fn fast_replies_mean_what_reference_replies_mean() {
        let snapshot = snapshot();
        let mut rng = fastrand::Rng::with_seed(20261121);
        let mut compared = 0;
        let mut memo = Memo::default();
        for _ in 0..20_000 {
            let q = query(&mut rng);
            // The lean decoder reads what hickory's whole-message decoder reads.
            if let Ok(header) = Header::read(&mut BinDecoder::new(&q)) {
                match (
                    decode(&q, &header, wire::question_labels(&q).as_ref()),
                    Message::from_vec(&q),
                ) {
                    (Ok(lean), Ok(full)) => {
                        assert_eq!(lean.metadata, full.metadata, "{q:?}");
                        match lean.lean_question {
                            Some((qtype, qclass)) => {
                                let [question] = full.queries.as_slice() else {
                                    panic!("{q:?}: lean read one question, hickory did not")
                                };
                                assert_eq!(qtype, question.query_type(), "{q:?}");
                                assert_eq!(qclass, question.query_class(), "{q:?}");
                            }
                            None => assert_eq!(lean.queries[..], full.queries[..], "{q:?}"),
                        }
                        let full_edns = full.edns.as_ref().map(RequestEdns::from);
                        assert_eq!(lean.edns, full_edns, "{q:?}");
                        // A Client Subnet the lean decoder read is the one the scan finds.
                        if let Some(subnet) = lean.subnet {
                            assert_eq!(subnet, ecs::find(&q), "{q:?}");
                        }
                        // The zone key read from the bytes is the decoded name's key.
                        if let Some((_, offsets, count)) = wire::question_labels(&q) {
                            let wire_key = NameKey::from_wire(&q, &offsets[..count]).unwrap();
                            let name_key = NameKey::new(full.queries[0].name());
                            assert_eq!(wire_key.as_bytes(), name_key.as_bytes(), "{q:?}");
                        }
                    }
                    (Err(()), Err(_)) => {}
                    (lean, full) => {
                        panic!("{q:?}: lean ok {} full ok {}", lean.is_ok(), full.is_ok())
                    }
                }
            }
            let transport = if rng.u8(..4) == 0 {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            let source: IpAddr = ["127.0.0.1", "10.9.9.9", "81.2.69.160"][rng.usize(..3)]
                .parse()
                .unwrap();
            let run = |fast: bool, memo: Option<&mut Memo>| {
                let mut rng = fastrand::Rng::with_seed(1);
                let mut outcome = Outcome::default();
                // A used buffer, as the UDP workers pass: the reply must replace its bytes.
                let mut out = vec![0xa5; 700];
                let sent = respond_with(
                    &snapshot,
                    &q,
                    source,
                    transport,
                    1232,
                    &mut rng,
                    fast,
                    memo,
                    &mut outcome,
                    &mut out,
                );
                let seen = (
                    outcome.qtype,
                    outcome.rcode,
                    outcome.zone.map(std::ptr::from_ref),
                    outcome
                        .served
                        .map(|s| (std::ptr::from_ref(s.set), s.datacenter)),
                    outcome.subnet,
                );
                sent.then_some((out, seen))
            };
            // Through the memo (which earlier queries filled), twice: the same bytes and the
            // same outcome as encoding afresh.
            let fresh = run(true, None);
            for _ in 0..2 {
                assert_eq!(run(true, Some(&mut memo)), fresh, "{q:?}");
            }
            let (Some((fast, _)), Some((reference, _))) = (fresh, run(false, None)) else {
                assert_eq!(run(true, None), None);
                continue;
            };
            let a = Message::from_vec(&fast).unwrap_or_else(|e| panic!("{e}: {q:?}"));
            let b = Message::from_vec(&reference).unwrap();
            assert_eq!(a.metadata, b.metadata, "{q:?}");
            assert_eq!(a.queries, b.queries, "{q:?}");
            // Record equality (RFC 2136) ignores the TTL: compare it too. Owner names may come
            // back in the question's case (a pointer into it): names compare case-insensitively.
            let full = |rs: &[Record]| -> Vec<String> {
                rs.iter()
                    .map(|r| {
                        format!(
                            "{} {} {} {}",
                            r.name.to_lowercase(),
                            r.ttl,
                            r.record_type(),
                            r.data
                        )
                    })
                    .collect()
            };
            assert_eq!(full(&a.answers), full(&b.answers), "{q:?}");
            assert_eq!(full(&a.authorities), full(&b.authorities), "{q:?}");
            assert_eq!(full(&a.additionals), full(&b.additionals), "{q:?}");
            assert_eq!(a.edns, b.edns, "{q:?}");
            // The question's letter case comes back as sent.
            if let (Some(qa), Ok(orig)) = (a.queries.first(), Message::from_vec(&q)) {
                assert!(qa.name().eq_case(orig.queries[0].name()));
            }
            compared += 1;
        }
        assert!(compared > 15_000, "{compared}");
        // Most questions have fixed answers: the memo answered them after the first time.
        assert!(memo.hits > 10_000, "{}", memo.hits);
    }
}
