//! Reading a request: the header, the one question, the OPT record (RFC 6891) and its Client
//! Subnet option (RFC 7871), then the checks of what we serve. The usual shape is read directly
//! from the bytes; anything else goes through hickory-proto's whole-message decoder.

use std::net::IpAddr;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::cookies::RequestCookie;
use super::ecs::{self, ClientSubnet};
use super::options::{self, Options};
use crate::zone::NameKey;

/// Where the question's labels are: (end of the question, label offsets, label count). Read
/// once, for the decoder, the zone key and the encoder's compression pointers.
pub type Labels = (usize, [u16; 64], usize);

/// A request that passed every check: what the stages after decoding read. Kept small (it is
/// returned by value for every query): the label offsets stay with the caller, and the zone
/// key is made where it is used ([`Question::key`]).
pub struct Question<'q> {
    pub query: &'q [u8],
    pub metadata: Metadata,
    pub labels: Option<&'q Labels>,
    pub qtype: RecordType,
    pub edns: Option<RequestEdns>,
    /// The Client Subnet as sent (echoed in the reply), and the one the answer is for: usable
    /// (RFC 7871 §7.1.2) or none.
    pub subnet: Option<ClientSubnet>,
    pub used: Option<ClientSubnet>,
    /// The request had an NSID option (RFC 5001): the reply says which server answered.
    pub nsid: bool,
    /// Its COOKIE option (RFC 7873).
    pub cookie: Option<RequestCookie>,
    /// Who the answer is for: the usable ECS address, else the packet's source.
    pub client: IpAddr,
    /// The question in hickory's form, where the whole-message decoder read it.
    decoded: Option<Query>,
}

/// What reading a message gives.
pub enum Read<'q> {
    /// Not a DNS header, or a response: nothing is sent (answering those would let anyone
    /// bounce traffic off us).
    Drop,
    /// A reply with only this response code (and the question, and our OPT where the request
    /// had one).
    Refuse(Refusal),
    Question(Question<'q>),
}

/// An error reply's parts.
pub struct Refusal {
    pub metadata: Metadata,
    pub question: Option<Query>,
    pub rcode: ResponseCode,
    /// The request's OPT record, if it had one (the reply then has ours).
    pub edns: Option<RequestEdns>,
    /// The request had an NSID option.
    pub nsid: bool,
}

/// Reads `query` (whose question's labels are `labels`, see [`question_labels`]) from
/// `source` and checks it, in the order RFC 6891 and RFC 7871 give the errors: a malformed
/// message or ECS option (FORMERR), opcode (NOTIMP), question count (FORMERR), EDNS version
/// (BADVERS), meta types and transfers, class.
pub fn read<'q>(query: &'q [u8], labels: Option<&'q Labels>, source: IpAddr) -> Read<'q> {
    let Some(header) = read_header(query) else {
        return Read::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Read::Drop;
    }
    let Ok(request) = decode(query, &header, labels) else {
        return Read::Refuse(Refusal {
            metadata: header.metadata,
            question: None,
            rcode: ResponseCode::FormErr,
            edns: None,
            nsid: false,
        });
    };
    let (subnet, nsid, cookie) = match (&request.edns, request.subnet) {
        (_, Some(read)) => (read, request.nsid, request.cookie),
        (Some(_), None) => match options::find(query) {
            Ok(found) => (Ok(found.subnet), found.nsid, found.cookie),
            Err(()) => (Err(()), false, None),
        },
        (None, None) => (Ok(None), false, None),
    };
    let refuse = |rcode| {
        let question = match request.lean_question {
            Some(_) => Query::read(&mut BinDecoder::new(&query[12..])).ok(),
            None => request.queries.first().cloned(),
        };
        Read::Refuse(Refusal {
            metadata: request.metadata,
            question,
            rcode,
            edns: request.edns,
            nsid,
        })
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
    let used = subnet.filter(ClientSubnet::usable);
    Read::Question(Question {
        query,
        metadata: request.metadata,
        labels,
        qtype,
        edns: request.edns,
        subnet,
        used,
        nsid,
        cookie,
        client: used.map_or(source, |s| s.addr),
        decoded: request.queries.into_iter().next(),
    })
}

impl Question<'_> {
    /// Makes `key` the question's name as a zone key, from its bytes (filled in place: a key
    /// is 385 bytes, not worth a copy a query).
    pub fn key_into(&self, key: &mut NameKey) {
        match self.labels {
            Some((_, offsets, count)) if key.read_wire(self.query, &offsets[..*count]) => {}
            _ => *key = NameKey::new(&self.name()),
        }
    }

    /// The question in hickory's form, decoded now where the lean path did not (rare replies
    /// need it: hickory's encoder, a fallback pool's renamed records).
    pub fn hickory(&self) -> Option<std::borrow::Cow<'_, Query>> {
        match &self.decoded {
            Some(q) => Some(std::borrow::Cow::Borrowed(q)),
            None => Query::read(&mut BinDecoder::new(&self.query[12..]))
                .ok()
                .map(std::borrow::Cow::Owned),
        }
    }

    /// The question's name.
    pub fn name(&self) -> Name {
        self.hickory().map(|q| q.name().clone()).unwrap_or_default()
    }
}

/// The 12-byte header (RFC 1035 §4.1.1), read as hickory's `Header::read` does, without its
/// decoder's checks on every byte.
pub(super) fn read_header(query: &[u8]) -> Option<Header> {
    let &[i1, i2, flags1, flags2, q1, q2, an1, an2, ns1, ns2, ar1, ar2] = query.first_chunk()?;
    let bit = |byte: u8, mask: u8| byte & mask != 0;
    let message_type = match bit(flags1, 0x80) {
        true => MessageType::Response,
        false => MessageType::Query,
    };
    let op_code = OpCode::from_u8((flags1 & 0x78) >> 3);
    let mut metadata = Metadata::new(u16::from_be_bytes([i1, i2]), message_type, op_code);
    metadata.authoritative = bit(flags1, 0x04);
    metadata.truncation = bit(flags1, 0x02);
    metadata.recursion_desired = bit(flags1, 0x01);
    metadata.recursion_available = bit(flags2, 0x80);
    metadata.authentic_data = bit(flags2, 0x20);
    metadata.checking_disabled = bit(flags2, 0x10);
    metadata.response_code = ResponseCode::from_low(flags2 & 0x0f);
    let counts = HeaderCounts {
        queries: u16::from_be_bytes([q1, q2]),
        answers: u16::from_be_bytes([an1, an2]),
        authorities: u16::from_be_bytes([ns1, ns2]),
        additionals: u16::from_be_bytes([ar1, ar2]),
    };
    Some(Header { metadata, counts })
}

/// Where the labels of the question's name start, for compression pointers to its suffixes.
/// `None` when the question is not a plain uncompressed name of at most 64 labels (then the
/// caller falls back; 64 holds an IPv6 reverse name's 34).
pub fn question_labels(query: &[u8]) -> Option<Labels> {
    let mut offsets = [0u16; 64];
    let mut count = 0;
    let mut pos = 12;
    loop {
        let len = *query.get(pos)? as usize;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 || count == offsets.len() {
            return None;
        }
        offsets[count] = pos as u16;
        count += 1;
        pos += 1 + len;
    }
    // Name end + type + class.
    let end = pos + 1 + 4;
    (end <= query.len()).then_some((end, offsets, count))
}

/// What the query path reads of a request.
pub(super) struct Request {
    pub(super) metadata: Metadata,
    /// The questions hickory decoded (the whole-message path); empty (no allocation) when the
    /// lean path read the one question.
    pub(super) queries: Vec<Query>,
    /// The one question the lean path read, as (type, class); its name stays in the message
    /// (the zone key is made from its bytes) and is decoded only for a reply that needs it.
    pub(super) lean_question: Option<(RecordType, DNSClass)>,
    pub(super) edns: Option<RequestEdns>,
    /// The Client Subnet option, where the lean decoder already read it.
    pub(super) subnet: Option<Result<Option<ecs::ClientSubnet>, ()>>,
    /// An NSID option, where the lean decoder read the options.
    pub(super) nsid: bool,
    /// The COOKIE option, where the lean decoder read the options.
    pub(super) cookie: Option<RequestCookie>,
}

/// What the query path reads of a request's OPT record (RFC 6891 §6.1.3); the options are read
/// from the wire where needed (`ecs::find`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEdns {
    pub(super) max_payload: u16,
    pub(super) version: u8,
    pub(super) rcode_high: u8,
    /// DO (RFC 3225): copied into the reply's OPT.
    pub dnssec_ok: bool,
}

impl From<&Edns> for RequestEdns {
    fn from(edns: &Edns) -> Self {
        Self {
            max_payload: edns.max_payload(),
            version: edns.version(),
            rcode_high: edns.rcode_high(),
            dnssec_ok: edns.flags().dnssec_ok,
        }
    }
}

/// The OPT record that ends `rest` (the message after its question), read directly when it has
/// the usual shape: root owner, well-formed Client Subnet and NSID options or none, and nothing
/// after it. `None` for anything else, which hickory's decoder then judges.
fn lean_opt(rest: &[u8]) -> Option<(RequestEdns, Options)> {
    let (&[0, 0, 41, p1, p2, rcode_high, version, flags, _, l1, l2], rdata) =
        rest.split_first_chunk::<11>()?
    else {
        return None;
    };
    if rdata.len() != usize::from(u16::from_be_bytes([l1, l2])) {
        return None;
    }
    let options = options::read(rdata, true).ok()?;
    // hickory reads payloads under 512 as 512 (RFC 6891 §6.2.5).
    let edns = RequestEdns {
        max_payload: u16::from_be_bytes([p1, p2]).max(512),
        version,
        rcode_high,
        dnssec_ok: flags & 0x80 != 0,
    };
    Some((edns, options))
}

/// Decodes a request. The usual shape — one question and at most an OPT record — is read
/// directly; anything else goes through hickory's whole-message decoder.
pub(super) fn decode(
    query: &[u8],
    header: &Header,
    labels: Option<&Labels>,
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
            let subnet = edns.map(|(edns, options)| {
                metadata.merge_response_code(edns.rcode_high);
                Ok(options.subnet)
            });
            return Ok(Request {
                metadata,
                queries: Vec::new(),
                lean_question: Some(question),
                edns: edns.map(|(edns, _)| edns),
                subnet,
                nsid: edns.is_some_and(|(_, options)| options.nsid),
                cookie: edns.and_then(|(_, options)| options.cookie),
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
        nsid: false,
        cookie: None,
    })
}
