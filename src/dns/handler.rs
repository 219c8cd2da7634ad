//! One DNS message in, one reply out: header checks, EDNS (RFC 6891), the call to [`resolve`],
//! and the encoding of the reply with truncation for UDP. Pure apart from the policy state in
//! the snapshot, so the same bytes come back over UDP and TCP.

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode, emit_message_parts,
};
use std::net::IpAddr;

use hickory_proto::rr::rdata::opt::{ClientSubnet as HickorySubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};

use super::ecs;
use crate::resolve::{Answer, resolve};
use crate::state::Snapshot;

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
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let Ok(request) = Message::from_vec(query) else {
        return Some(error_reply(
            &header.metadata,
            None,
            ResponseCode::FormErr,
            None,
        ));
    };
    let edns = request.edns.as_ref().map(|_| {
        let mut ours = Edns::new();
        ours.set_max_payload(udp_payload);
        ours
    });
    let question = request.queries.first();
    let subnet = match request.edns {
        Some(_) => ecs::find(query),
        None => Ok(None),
    };
    let edns_ref = edns.as_ref();
    let Ok(subnet) = subnet else {
        // RFC 7871 §7.1.1: a malformed ECS option is a FORMERR.
        return Some(error_reply(
            &request.metadata,
            question,
            ResponseCode::FormErr,
            edns_ref,
        ));
    };
    let edns = edns_ref;

    if request.op_code != OpCode::Query {
        return Some(error_reply(
            &request.metadata,
            question,
            ResponseCode::NotImp,
            edns,
        ));
    }
    let [question] = request.queries.as_slice() else {
        return Some(error_reply(
            &request.metadata,
            question,
            ResponseCode::FormErr,
            edns,
        ));
    };
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 §6.1.3: we speak EDNS version 0 only.
        return Some(error_reply(
            &request.metadata,
            Some(question),
            ResponseCode::BADVERS,
            edns,
        ));
    }
    let refuse = |rcode| Some(error_reply(&request.metadata, Some(question), rcode, edns));
    match question.query_type() {
        RecordType::OPT => return refuse(ResponseCode::FormErr),
        // No zone transfers.
        RecordType::AXFR | RecordType::IXFR => return refuse(ResponseCode::Refused),
        _ => {}
    }
    if question.query_class() != DNSClass::IN {
        return refuse(ResponseCode::Refused);
    }

    let used = subnet.filter(ecs::ClientSubnet::usable);
    let client = used.map_or(source, |s| s.addr);
    let answer = resolve(
        snapshot,
        question.name(),
        question.query_type(),
        client,
        rng,
    );
    // RFC 7871 §7.2.1: echo family, address and source prefix, with the scope the answer
    // depended on; scope 0 when the subnet was not used.
    let mut edns_with_ecs = None;
    if let (Some(subnet), Some(base)) = (subnet, edns) {
        let mut scope = match used {
            Some(_) => answer.ecs_scope,
            None => 0,
        };
        // An IPv4-mapped IPv6 subnet was located as IPv4: count the 96 mapping bits back in.
        if scope > 0 && subnet.addr.is_ipv6() && crate::geo::canonical(subnet.addr).is_ipv4() {
            scope = scope.saturating_add(96).min(128);
        }
        let mut with = base.clone();
        with.options_mut()
            .insert(EdnsOption::Subnet(HickorySubnet::new(
                subnet.addr,
                subnet.source_prefix,
                scope,
            )));
        edns_with_ecs = Some(with);
    }
    let edns = edns_with_ecs.as_ref().or(edns);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;

    let limit = match (transport, &request.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(theirs)) => {
            usize::from(theirs.max_payload().clamp(512, udp_payload.max(512)))
        }
    };
    let reply = encode(&metadata, Some(question), &answer, edns);
    if reply.len() <= limit {
        return Some(reply);
    }
    // RFC 2181 §9: a reply that does not fit is sent empty with TC set; the client asks again
    // over TCP and gets the whole answer.
    metadata.truncation = true;
    Some(encode(&metadata, Some(question), &Answer::default(), edns))
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
    encode(&metadata, question, &answer, edns)
}

fn encode(
    metadata: &Metadata,
    question: Option<&Query>,
    answer: &Answer<'_>,
    edns: Option<&Edns>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    let result = emit_message_parts(
        metadata,
        &mut question.into_iter(),
        &mut answer.answers.iter().map(AsRef::as_ref),
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
