//! hickory-proto's own encoder: every error reply (FORMERR, NOTIMP, REFUSED, BADVERS), the rare
//! question written with compression pointers, and the reference the fast encoder
//! (`dns::wire`) is tested against, reply for reply.

use hickory_proto::op::{Edns, Metadata, Query, ResponseCode, emit_message_parts};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::{ClientSubnet as HickorySubnet, EdnsOption};
use hickory_proto::serialize::binary::BinEncoder;

use hickory_proto::rr::rdata::opt::NSIDPayload;

use super::request::Refusal;
use super::respond::Settings;
use super::wire::Opt;
use crate::resolve::Answer;

/// A reply that carries only a response code (and the question, where one was read, and our
/// OPT record where the request had one).
#[cold]
#[inline(never)]
pub fn refusal(refusal: &Refusal, settings: &Settings) -> Vec<u8> {
    let opt = refusal.edns.map(|theirs| Opt {
        payload: settings.udp_payload,
        dnssec_ok: theirs.dnssec_ok,
        compact_ok: theirs.dnssec_ok && theirs.compact_ok,
        ecs: None,
        nsid: settings.nsid(refusal.nsid),
        cookie: None,
        echo: None,
    });
    error(
        &refusal.metadata,
        refusal.question.as_ref(),
        refusal.rcode,
        opt,
    )
}

/// A reply to `request` with only `rcode`, the question and `opt`.
pub fn error(
    request: &Metadata,
    question: Option<&Query>,
    rcode: ResponseCode,
    opt: Option<Opt<'_>>,
) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = rcode;
    let edns = edns(opt);
    encode(&metadata, question, &Answer::default(), edns.as_ref())
}

/// hickory's form of our OPT record, for the reference encoder.
pub fn edns(opt: Option<Opt<'_>>) -> Option<Edns> {
    let opt = opt?;
    let mut edns = Edns::new();
    edns.set_max_payload(opt.payload);
    edns.set_dnssec_ok(opt.dnssec_ok);
    if opt.compact_ok {
        edns.flags_mut().z |= super::request::COMPACT_OK;
    }
    if let Some(ecs) = opt.ecs {
        edns.options_mut()
            .insert(EdnsOption::Subnet(HickorySubnet::new(
                ecs.addr, ecs.source, ecs.scope,
            )));
    }
    if let Some(nsid) = opt.nsid
        && let Ok(payload) = NSIDPayload::new(nsid)
    {
        edns.options_mut().insert(EdnsOption::NSID(payload));
    }
    if let Some(cookie) = opt.cookie {
        // hickory has no type of its own for the COOKIE option.
        let option = EdnsOption::Unknown(10, cookie.to_vec());
        edns.options_mut().insert(option);
    }
    Some(edns)
}

/// hickory-proto's own encoder: error replies, the rare compressed question, and the reference
/// the fast encoder is tested against.
#[cold]
#[inline(never)]
pub fn encode(
    metadata: &Metadata,
    question: Option<&Query>,
    answer: &Answer<'_>,
    edns: Option<&Edns>,
) -> Vec<u8> {
    // The degraded TTL and a fallback pool's owner are applied to copies here; the fast
    // encoder writes them directly.
    let answers: Vec<Record> = answer.answer_records().collect();
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    let result = emit_message_parts(
        metadata,
        &mut question.into_iter(),
        &mut answers.iter(),
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
