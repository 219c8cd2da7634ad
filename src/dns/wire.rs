//! The reply encoder of the query path. It writes the wire format directly: the question is
//! copied from the query as sent (which keeps the 0x20 letter case and makes every owner name
//! that ends the question a two-byte pointer into it), records follow with their RDATA encoded
//! by hickory-proto, and the OPT record (with ECS) is written by hand. This is several times
//! cheaper than building and encoding a `Message` (see shared/notes/fast-path.md), and
//! `handler::encode_reference` — hickory's own encoder — stays as the check it is tested against.

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::resolve::Answer;

/// The OPT record of a reply (RFC 6891 §6.1.2): our payload size, DO copied from the request
/// (RFC 3225 §3), and the ECS (RFC 7871 §6), NSID (RFC 5001) and COOKIE (RFC 7873 §4: the
/// client cookie, then ours) options, in that order.
#[derive(Debug, Clone, Copy)]
pub struct Opt<'a> {
    pub payload: u16,
    pub dnssec_ok: bool,
    /// CO (RFC 9824 §4), echoed where the request set it with DO.
    pub compact_ok: bool,
    pub ecs: Option<Ecs>,
    pub nsid: Option<&'a [u8]>,
    pub cookie: Option<[u8; 24]>,
    /// The request's OPT record, where it holds only the Client Subnet option `ecs` echoes
    /// (and nothing follows it): ours is its bytes with four patched ([`emit_opt`]).
    pub echo: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy)]
pub struct Ecs {
    pub addr: std::net::IpAddr,
    pub source: u8,
    pub scope: u8,
}

/// Encodes a reply to `query` (whose question ends at `question_end`). `labels` are the offsets
/// of the question's labels (from [`super::request::question_labels`]). Writes into `out` (cleared first),
/// which the UDP workers reuse from one reply to the next. Returns where the OPT record starts
/// (the end when there is none).
pub fn encode(
    query: &[u8],
    question_end: usize,
    labels: &[u16],
    metadata: &Metadata,
    answer: &Answer<'_>,
    opt: Option<&Opt<'_>>,
    out: &mut Vec<u8>,
) -> usize {
    out.clear();
    header(out, metadata, 1, answer, opt.is_some());
    out.extend_from_slice(&query[12..question_end]);
    let pointer_to = |name: &Name| -> Option<u16> {
        // A name equal to the question or to one of its suffixes points into the question.
        let n = name.num_labels() as usize;
        let q = labels.len();
        if name.is_root() || n > q {
            return None;
        }
        let suffix_is_name = name.iter().zip(&labels[q - n..]).all(|(label, &at)| {
            let at = usize::from(at);
            let len = usize::from(query[at]);
            query
                .get(at + 1..at + 1 + len)
                .is_some_and(|asked| asked.eq_ignore_ascii_case(label))
        });
        suffix_is_name.then(|| labels[q - n])
    };
    // Records of one RRset sit next to each other in the zone (one slice), and a pool's
    // endpoints share the pool's name: both reuse the previous record's owner encoding instead
    // of comparing names (hickory's `Name` comparison costs hundreds of instructions).
    let mut last: Option<(*const Record, Option<u16>)> = None;
    let pool_records = answer.pool_records();
    let answers = (0..answer.answer_count()).map(|i| {
        let (data, own_ttl) = answer_data(answer, i);
        let same_pool = i > pool_records.start && pool_records.contains(&i);
        // Owned by the question's name: a pointer to it, no comparison.
        let at_qname = answer.at_qname.is_none_or(|n| i < n);
        let known = match (at_qname, labels.first()) {
            (true, Some(&first)) => Some(first),
            _ => None,
        };
        (
            answer.owner(i),
            answer.ttl(i, own_ttl),
            same_pool,
            known,
            data,
        )
    });
    let origin_pointer = origin_pointer(answer, labels);
    let others = answer
        .authorities
        .iter()
        .chain(answer.additionals.iter())
        .map(|&r| {
            let soa = answer
                .zone
                .is_some_and(|z| std::ptr::eq(r, &z.soa) || std::ptr::eq(r, &z.negative_soa));
            (
                &r.name,
                r.ttl,
                false,
                origin_pointer.filter(|_| soa),
                Data::Record(r),
            )
        });
    for (owner, ttl, same_pool, known, data) in answers.chain(others) {
        let record = match data {
            Data::Record(record) => record as *const Record,
            Data::Address(_) | Data::Cname(_) => std::ptr::null(),
        };
        let next_in_set = |previous: *const Record| {
            !record.is_null() && std::ptr::eq(previous.wrapping_add(1), record)
        };
        let pointer = match last {
            _ if known.is_some() => known,
            Some((previous, p)) if same_pool || next_in_set(previous) => p,
            _ => pointer_to(owner),
        };
        last = Some((record, pointer));
        match data {
            Data::Address(address) => emit_address(out, address, owner, ttl, pointer),
            Data::Record(record) => emit_record(out, record, owner, ttl, pointer),
            Data::Cname(target) => emit_cname(out, target, owner, ttl, pointer),
        }
    }
    let opt_at = out.len();
    if let Some(opt) = opt {
        emit_opt(out, opt, metadata.response_code);
    }
    opt_at
}

/// What answer record `i` is written from, and its own TTL: a pool's endpoint its address from
/// the set's compact array and the pool's TTL, a DNAME's synthesis its CNAME target, any other
/// its record.
fn answer_data<'a>(answer: &'a Answer<'_>, i: usize) -> (Data<'a>, u32) {
    match (answer.endpoint(i), answer.served) {
        (Some((set, index)), Some(served)) => (Data::Address(set.rdata(index)), served.pool.ttl),
        _ => match answer.target(i) {
            Some(target) => (Data::Cname(target), answer.answers[i].ttl),
            None => (Data::Record(answer.answers[i]), answer.answers[i].ttl),
        },
    }
}

/// Where the zone's origin is in the question (the SOA's owner, a suffix of the question).
fn origin_pointer(answer: &Answer<'_>, labels: &[u16]) -> Option<u16> {
    let zone = answer.zone?;
    let q = labels.len();
    let n = zone.origin_labels();
    (n > 0 && n <= q).then(|| labels[q - n])
}

/// The 12-byte header. `answer`'s sections give the counts (RFC 1035 §4.1.1).
fn header(out: &mut Vec<u8>, m: &Metadata, qdcount: u16, answer: &Answer<'_>, opt: bool) {
    let op: u8 = m.op_code.into();
    let flags1 = 0x80
        | (op << 3)
        | (u8::from(m.authoritative) << 2)
        | (u8::from(m.truncation) << 1)
        | u8::from(m.recursion_desired);
    let flags2 = (u8::from(m.recursion_available) << 7)
        | (u8::from(m.authentic_data) << 5)
        | (u8::from(m.checking_disabled) << 4)
        | m.response_code.low();
    out.extend_from_slice(&m.id.to_be_bytes());
    out.extend_from_slice(&[flags1, flags2]);
    for count in [
        qdcount,
        answer.answer_count() as u16,
        answer.authorities.len() as u16,
        (answer.additionals.len() + usize::from(opt)) as u16,
    ] {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

/// What a record of the reply is written from.
enum Data<'a> {
    Record(&'a Record),
    /// A pool endpoint's address (4 bytes: A, 16: AAAA), class IN.
    Address(&'a [u8]),
    /// A CNAME to this name, class IN: a DNAME's synthesis (RFC 6672 §3.1).
    Cname(&'a Name),
}

fn emit_owner(out: &mut Vec<u8>, owner: &Name, pointer: Option<u16>) {
    match pointer {
        Some(p) => out.extend_from_slice(&(0xc000 | p).to_be_bytes()),
        None => emit_name(out, owner),
    }
}

/// An A or AAAA record. Copies of a length known at compile time are a few moves, where a
/// slice's length made each one a call to `memcpy`.
fn emit_address(out: &mut Vec<u8>, address: &[u8], owner: &Name, ttl: u32, pointer: Option<u16>) {
    emit_owner(out, owner, pointer);
    let [t0, t1, t2, t3] = ttl.to_be_bytes();
    if let Ok(&[a, b, c, d]) = <&[u8; 4]>::try_from(address) {
        out.extend_from_slice(&[0, 1, 0, 1, t0, t1, t2, t3, 0, 4, a, b, c, d]);
    } else {
        let [l0, l1] = (address.len() as u16).to_be_bytes();
        out.extend_from_slice(&[0, 28, 0, 1, t0, t1, t2, t3, l0, l1]);
        match <&[u8; 16]>::try_from(address) {
            Ok(v6) => out.extend_from_slice(v6),
            Err(_) => out.extend_from_slice(address),
        }
    }
}

/// A CNAME record to `target`, as a DNAME synthesizes it.
fn emit_cname(out: &mut Vec<u8>, target: &Name, owner: &Name, ttl: u32, pointer: Option<u16>) {
    emit_owner(out, owner, pointer);
    out.extend_from_slice(&[0, 5, 0, 1]);
    out.extend_from_slice(&ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    emit_name(out, target);
    let rdlength = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&rdlength.to_be_bytes());
}

fn emit_record(out: &mut Vec<u8>, record: &Record, owner: &Name, ttl: u32, pointer: Option<u16>) {
    emit_owner(out, owner, pointer);
    out.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let start = out.len();
    match &record.data {
        // The records pools hand out, and the common static ones, written directly; names in
        // RDATA uncompressed (always valid, RFC 1035 §4.1.4 allows but never requires it).
        RData::A(a) => out.extend_from_slice(&a.0.octets()),
        RData::AAAA(a) => out.extend_from_slice(&a.0.octets()),
        RData::SOA(soa) => {
            emit_name(out, &soa.mname);
            emit_name(out, &soa.rname);
            for value in [
                soa.serial,
                soa.refresh as u32,
                soa.retry as u32,
                soa.expire as u32,
                soa.minimum,
            ] {
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        RData::NS(name) => emit_name(out, &name.0),
        RData::CNAME(name) => emit_name(out, &name.0),
        RData::PTR(name) => emit_name(out, &name.0),
        RData::MX(mx) => {
            out.extend_from_slice(&mx.preference.to_be_bytes());
            emit_name(out, &mx.exchange);
        }
        data => {
            let offset = out.len() as u32;
            let mut encoder = BinEncoder::with_offset(out, offset);
            if data.emit(&mut encoder).is_err() {
                tracing::error!(record = %record, "cannot encode record data");
            }
        }
    }
    let rdlength = (out.len() - start) as u16;
    out[length_at..length_at + 2].copy_from_slice(&rdlength.to_be_bytes());
}

/// A name, uncompressed and as stored (lower case).
fn emit_name(out: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

/// The high byte of our OPT record's flags: DO and CO.
fn opt_flags(opt: &Opt<'_>) -> u8 {
    u8::from(opt.dnssec_ok) << 7 | u8::from(opt.compact_ok) << 6
}

/// OPT: root owner, type 41, class = our payload size, TTL = extended rcode, version 0 and the
/// DO flag; then the ECS option echoed with its scope, our NSID and the cookies.
pub fn emit_opt(out: &mut Vec<u8>, opt: &Opt<'_>, rcode: ResponseCode) {
    if let (Some(theirs), Some(ecs)) = (opt.echo, opt.ecs) {
        // Root owner, type, class, TTL, RDLENGTH, then the ECS option: code, length, family,
        // source prefix, scope, the address as sent.
        let at = out.len();
        out.extend_from_slice(theirs);
        let [p1, p2] = opt.payload.max(512).to_be_bytes();
        let flags = opt_flags(opt);
        out[at + 3..at + 9].copy_from_slice(&[p1, p2, rcode.high(), 0, flags, 0]);
        out[at + 18] = ecs.scope;
        return;
    }
    // The record's fixed part and the ECS option, put together on the stack and copied once.
    let mut head = [0u8; 11 + 8 + 16];
    let [p1, p2] = opt.payload.max(512).to_be_bytes();
    let flags = opt_flags(opt);
    head[..11].copy_from_slice(&[0, 0, 41, p1, p2, rcode.high(), 0, flags, 0, 0, 0]);
    let mut used = 11;
    if let Some(ecs) = opt.ecs {
        let (family, octets): (u8, [u8; 16]) = match ecs.addr {
            std::net::IpAddr::V4(a) => {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&a.octets());
                (1, o)
            }
            std::net::IpAddr::V6(a) => (2, a.octets()),
        };
        let len = usize::from(ecs.source.div_ceil(8)).min(16);
        let option = [0, 8, 0, 4 + len as u8, 0, family, ecs.source, ecs.scope];
        head[11..19].copy_from_slice(&option);
        head[19..19 + len].copy_from_slice(&octets[..len]);
        used = 19 + len;
    }
    let length_at = out.len() + 9;
    out.extend_from_slice(&head[..used]);
    if let Some(nsid) = opt.nsid {
        out.extend_from_slice(&3u16.to_be_bytes());
        out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
        out.extend_from_slice(nsid);
    }
    if let Some(cookie) = &opt.cookie {
        out.extend_from_slice(&10u16.to_be_bytes());
        out.extend_from_slice(&24u16.to_be_bytes());
        out.extend_from_slice(cookie);
    }
    let rdlength = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&rdlength.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_opt_record_is_the_one_written_afresh() {
        // (family, source prefix, address as sent), and the answer's scope.
        let cases: [(u8, u8, &[u8], u8); 5] = [
            (1, 24, &[81, 2, 69], 16),
            (1, 0, &[], 0),
            (1, 32, &[192, 0, 2, 1], 24),
            (2, 56, &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 2], 48),
            (
                2,
                128,
                &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                0,
            ),
        ];
        for (family, source, address, scope) in cases {
            let mut option = vec![0, family, source, 0];
            option.extend_from_slice(address);
            let subnet = crate::dns::ecs::parse(&option).unwrap();
            // The request's OPT: payload 4096, DO and a Z bit set, the ECS option.
            let mut theirs = vec![0, 0, 41, 0x10, 0, 0, 0, 0x81, 0x01];
            theirs.extend_from_slice(&(4 + option.len() as u16).to_be_bytes());
            theirs.extend_from_slice(&[0, 8]);
            theirs.extend_from_slice(&(option.len() as u16).to_be_bytes());
            theirs.extend_from_slice(&option);
            for (dnssec_ok, rcode) in [
                (true, ResponseCode::NoError),
                (false, ResponseCode::BADVERS),
            ] {
                let opt = |echo| Opt {
                    payload: 1232,
                    dnssec_ok,
                    compact_ok: false,
                    ecs: Some(Ecs {
                        addr: subnet.addr,
                        source: subnet.source_prefix,
                        scope,
                    }),
                    nsid: None,
                    cookie: None,
                    echo,
                };
                let (mut fresh, mut echoed) = (vec![7], vec![7]);
                emit_opt(&mut fresh, &opt(None), rcode);
                emit_opt(&mut echoed, &opt(Some(&theirs)), rcode);
                assert_eq!(echoed, fresh, "{option:?}");
            }
        }
    }
}
