//! DNSSEC online signing of one reply (RFC 4035), for a query with DO to a signed zone: every
//! RRset of the answer and authority sections gets its RRSIGs (a delegation's NS and glue
//! stay unsigned), and a negative answer gets compact denial of existence (RFC 9824): an NSEC
//! at the name asked whose next name is `\000.<name>`, listing the types the name has (NODATA)
//! or only NXNAME (the name does not exist; the reply is then NOERROR, or NXDOMAIN for a
//! client that set the Compact Answers OK flag, RFC 9824 §4). A referral carries the cut's DS
//! RRset, or the NSEC that proves there is none. No zone walking is
//! possible. Signatures are cached by the signed data (`dnssec::ZoneSigner`), so an RRset
//! answered again — a rotated order of the same endpoints is the same RRset — is not signed
//! again. Encoded by hickory's encoder, without the OPT record (the caller writes it, as for
//! a memoized reply); answers without DO never come here.

use hickory_proto::op::{Metadata, Query, ResponseCode, emit_message_parts};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::dnssec::{self, ZoneSigner};
use crate::resolve::Answer;
use crate::zone::Zone;

/// A signed reply, up to its OPT record.
#[derive(Debug, Default)]
pub struct Signed {
    pub reply: Vec<u8>,
    /// Its response code (compact denial answers NOERROR where the name does not exist).
    pub rcode: ResponseCode,
    /// Until when its signatures are the current ones (Unix seconds).
    pub fresh_until: u32,
}

/// The signed reply to a question for `qname` answered by `answer` from `zone` (which has a
/// signer), at `now`, for a client that takes compact answers (`compact_ok`) or not.
pub fn signed_reply(
    metadata: &Metadata,
    question: Option<&Query>,
    qname: &Name,
    answer: &Answer<'_>,
    zone: &Zone,
    (now, compact_ok): (u32, bool),
) -> Signed {
    let Some(signer) = zone.signer.as_deref() else {
        return Signed::default();
    };
    let mut metadata = *metadata;
    // Each record as it goes out, with the name it is signed as: its own, a wildcard's
    // synthesized records too (signed online as the name asked, they need no proof that the
    // name does not exist).
    let answers: Vec<(Record, Name)> = answer
        .answer_records()
        .map(|out| {
            let signed_as = out.name.clone();
            (out, signed_as)
        })
        .collect();
    let mut authorities: Vec<(Record, Name)> = answer
        .authorities
        .iter()
        .map(|r| ((*r).clone(), r.name.clone()))
        .collect();
    let negative = answers.is_empty()
        && answer.authoritative
        && matches!(answer.rcode, ResponseCode::NoError | ResponseCode::NXDomain);
    let referral = !answer.authoritative
        && authorities
            .iter()
            .any(|(r, _)| r.record_type() == RecordType::NS);
    if negative {
        let types = match answer.rcode {
            ResponseCode::NXDomain => vec![dnssec::NXNAME],
            _ => types_at(zone, qname),
        };
        let ttl = zone.negative_soa.ttl;
        let nsec = record(
            qname,
            ttl,
            RecordType::NSEC,
            dnssec::compact_nsec(qname, &types),
        );
        authorities.push((nsec, qname.clone()));
        if !(compact_ok && answer.rcode == ResponseCode::NXDomain) {
            metadata.response_code = ResponseCode::NoError;
        }
    } else if referral && let Some((ns, _)) = authorities.first() {
        // The cut's DS RRset, signed (RFC 4035 §3.1.4.1); or an NSEC there that says it has
        // none (the cut has NS only).
        let cut = ns.name.clone();
        match zone.node(&cut).and_then(|n| n.rrset(RecordType::DS)) {
            Some(ds) => authorities.extend(ds.records.iter().map(|r| (r.clone(), cut.clone()))),
            None => {
                let nsec = dnssec::compact_nsec(&cut, &[u16::from(RecordType::NS)]);
                let nsec = record(&cut, ns.ttl, RecordType::NSEC, nsec);
                authorities.push((nsec, cut));
            }
        }
    }
    let mut fresh_until = u32::MAX;
    let mut sign = |records: Vec<(Record, Name)>, skip_ns: bool| {
        sign_section(records, zone, signer, now, skip_ns, &mut fresh_until)
    };
    let answers = sign(answers, false);
    let authorities = sign(authorities, referral);
    let mut buf = Vec::with_capacity(1024);
    let mut encoder = BinEncoder::new(&mut buf);
    let result = emit_message_parts(
        &metadata,
        &mut question.into_iter(),
        &mut answers.iter(),
        &mut authorities.iter(),
        &mut answer.additionals.iter().copied(),
        None,
        None,
        &mut encoder,
    );
    if let Err(error) = result {
        tracing::error!(%error, "cannot encode a signed reply");
        buf.clear();
    }
    Signed {
        reply: buf,
        rcode: metadata.response_code,
        fresh_until,
    }
}

/// The types `qname` has in `zone` (static sets and its pool's families): a wildcard's where
/// the wildcard stands for it (RFC 4592 §3.3.1).
fn types_at(zone: &Zone, qname: &Name) -> Vec<u16> {
    let node = match zone.lookup(&qname.to_lowercase(), true) {
        crate::zone::Lookup::Node(node) | crate::zone::Lookup::Wildcard(node) => node,
        _ => return Vec::new(),
    };
    let mut types: Vec<u16> = node.rrsets.iter().map(|s| u16::from(s.rtype)).collect();
    if let Some(pool) = &node.pool {
        if !pool.v4.is_empty() {
            types.push(u16::from(RecordType::A));
        }
        if !pool.v6.is_empty() {
            types.push(u16::from(RecordType::AAAA));
        }
    }
    types
}

/// A record of raw record data.
fn record(owner: &Name, ttl: u32, rtype: RecordType, rdata: Vec<u8>) -> Record {
    let data = RData::Unknown {
        code: rtype,
        rdata: NULL::with(rdata),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

/// `records` with each RRset (consecutive records of one owner and type) followed by its
/// RRSIGs; NS sets below the apex (a delegation) left unsigned when `skip_ns`. `fresh_until`
/// is lowered to when the first of these signatures is remade.
fn sign_section(
    records: Vec<(Record, Name)>,
    zone: &Zone,
    signer: &ZoneSigner,
    now: u32,
    skip_ns: bool,
    fresh_until: &mut u32,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(records.len() * 2);
    let mut i = 0;
    while i < records.len() {
        let (first, signed_as) = &records[i];
        let same = |(r, _): &(Record, Name)| {
            r.name == first.name && r.record_type() == first.record_type()
        };
        let len = records[i..].iter().take_while(|r| same(r)).count();
        let set = &records[i..i + len];
        out.extend(set.iter().map(|(r, _)| r.clone()));
        let unsigned =
            skip_ns && first.record_type() == RecordType::NS && first.name != zone.origin;
        if !unsigned {
            let mut rdatas: Vec<Vec<u8>> = set.iter().map(|(r, _)| canonical(r)).collect();
            let rtype = u16::from(first.record_type());
            let sigs = signer.rrsigs(signed_as, rtype, first.ttl, &mut rdatas, &zone.origin, now);
            *fresh_until = (*fresh_until).min(sigs.fresh_until);
            for sig in sigs.records {
                out.push(record(&first.name, first.ttl, RecordType::RRSIG, sig));
            }
        }
        i += len;
    }
    out
}

/// A record's data in canonical form (RFC 4034 §6.2: names in lower case, uncompressed).
fn canonical(record: &Record) -> Vec<u8> {
    let wire = crate::presentation::record_wire(record);
    crate::presentation::canonical_rdata(u16::from(record.record_type()), &wire)
}
