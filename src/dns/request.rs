//! Reading a request: the header, the one question, the OPT record (RFC 6891) and its Client
//! Subnet option (RFC 7871), then the checks of what we serve. The usual shape is read directly
//! from the bytes; anything else goes through hickory-proto's whole-message decoder.

use std::net::IpAddr;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::ecs::ClientSubnet;
use super::options::{self, Options};
use crate::zone::NameKey;

/// Where the question's labels are: (end of the question, label offsets, label count). Read
/// once, for the decoder, the zone key and the encoder's compression pointers.
pub type Labels = (usize, [u16; 64], usize);

/// A request that passed every check: what the stages after decoding read. Kept small (it is
/// returned by value for every query): the label offsets stay with the caller, and the zone
/// key is made where it is used ([`Question::key_into`]).
pub struct Question<'q> {
    pub query: &'q [u8],
    pub metadata: Metadata,
    pub labels: Option<&'q Labels>,
    pub qtype: RecordType,
    pub edns: Option<RequestEdns>,
    /// What its OPT record's options ask for: the Client Subnet as sent (echoed in the reply),
    /// NSID (RFC 5001: the reply says which server answered), its COOKIE (RFC 7873).
    pub options: Options,
    /// The Client Subnet the answer is for: the one sent where usable (RFC 7871 §7.1.2).
    pub used: Option<ClientSubnet>,
    /// The OPT record's bytes, where the usual read found it ending the message with only
    /// options it knows (our reply's may be a patched copy: `wire::Opt::echo`).
    pub opt: Option<&'q [u8]>,
    /// Who the answer is for: the usable ECS address, else the packet's source.
    pub client: IpAddr,
    /// The question in hickory's form, where the whole-message decoder read it (boxed: rare,
    /// and it would triple the size of what every query moves).
    decoded: Option<Box<Query>>,
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
    /// Signed with TSIG: for the manager, which checks the signature and signs the answer.
    Signed,
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
/// `source` and checks it. The usual request is read in one pass ([`read_usual`]); anything
/// else, errors included, by hickory's whole-message decoder ([`read_whole`]).
pub fn read<'q>(query: &'q [u8], labels: Option<&'q Labels>, source: IpAddr) -> Read<'q> {
    match read_usual(query, labels, source) {
        Some(question) => Read::Question(question),
        None => read_whole(query, labels, source),
    }
}

/// The usual request — a query (opcode QUERY) with one uncompressed IN question of an ordinary
/// type and at most an OPT record of version 0 with only ECS, NSID and COOKIE options, all
/// well-formed — read straight from the bytes into its `Question`. `None` for anything else:
/// [`read_whole`] judges it, and must read what this reads (tested on fuzzed queries).
pub(super) fn read_usual<'q>(
    query: &'q [u8],
    labels: Option<&'q Labels>,
    source: IpAddr,
) -> Option<Question<'q>> {
    let &(end, _, _) = labels?;
    // One question, no answers or authorities, at most one additional.
    let &[_, _, flags1, _, 0, 1, 0, 0, 0, 0, 0, additionals] = query.first_chunk::<12>()? else {
        return None;
    };
    // QR clear and opcode QUERY; hickory refuses names over 255 bytes (RFC 1035 §2.3.4).
    if flags1 & 0xf8 != 0 || additionals > 1 || end - 4 - 12 > 255 {
        return None;
    }
    let field = |at: usize| u16::from_be_bytes([query[at], query[at + 1]]);
    let qtype = RecordType::from(field(end - 4));
    if field(end - 2) != u16::from(DNSClass::IN)
        || matches!(qtype, RecordType::OPT | RecordType::AXFR | RecordType::IXFR)
        || u16::from(qtype) == NXNAME
    {
        return None;
    }
    let (edns, options, opt) = match additionals {
        0 => (None, Options::default(), None),
        _ => {
            let opt = query.get(end..)?;
            let (edns, options) = lean_opt(opt)?;
            (edns, options, Some(opt))
        }
    };
    let used = options.subnet.filter(ClientSubnet::usable);
    Some(Question {
        query,
        metadata: read_header(query)?.metadata,
        labels,
        qtype,
        edns,
        options,
        used,
        opt,
        client: used.map_or(source, |s| s.addr),
        decoded: None,
    })
}

/// [`read`] by hickory's whole-message decoder, checking in the order RFC 6891 and RFC 7871
/// give the errors: a malformed message or ECS option (FORMERR), opcode (NOTIMP), question
/// count (FORMERR), EDNS version (BADVERS), meta types and transfers, class.
#[cold]
#[inline(never)]
pub(super) fn read_whole<'q>(
    query: &'q [u8],
    labels: Option<&'q Labels>,
    source: IpAddr,
) -> Read<'q> {
    let Some(header) = read_header(query) else {
        return Read::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Read::Drop;
    }
    // A signed query never has the usual shape (its TSIG record follows any OPT).
    if super::tsig::is_signed(query) {
        return Read::Signed;
    }
    let Ok(message) = Message::from_vec(query) else {
        return Read::Refuse(Refusal {
            metadata: header.metadata,
            question: None,
            rcode: ResponseCode::FormErr,
            edns: None,
            nsid: false,
        });
    };
    let edns = message.edns.as_ref().map(RequestEdns::from);
    let options = match edns {
        Some(_) => options::find(query),
        None => Ok(Options::default()),
    };
    let mut queries = message.queries;
    let refuse = |rcode, queries: Vec<Query>, nsid| {
        Read::Refuse(Refusal {
            metadata: message.metadata,
            question: queries.into_iter().next(),
            rcode,
            edns,
            nsid,
        })
    };
    let Ok(options) = options else {
        // RFC 7871 §7.1.1: a malformed ECS option is a FORMERR.
        return refuse(ResponseCode::FormErr, queries, false);
    };
    if message.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp, queries, options.nsid);
    }
    if queries.len() != 1 {
        return refuse(ResponseCode::FormErr, queries, options.nsid);
    }
    let (qtype, qclass) = (queries[0].query_type(), queries[0].query_class());
    if edns.is_some_and(|e| e.version > 0) {
        // RFC 6891 §6.1.3: we speak EDNS version 0 only.
        return refuse(ResponseCode::BADVERS, queries, options.nsid);
    }
    match qtype {
        // RFC 9824 §3.5: NXNAME is a meta type that is never asked for.
        RecordType::OPT => return refuse(ResponseCode::FormErr, queries, options.nsid),
        t if u16::from(t) == NXNAME => {
            return refuse(ResponseCode::FormErr, queries, options.nsid);
        }
        // No zone transfers.
        RecordType::AXFR | RecordType::IXFR => {
            return refuse(ResponseCode::Refused, queries, options.nsid);
        }
        _ => {}
    }
    if qclass != DNSClass::IN {
        return refuse(ResponseCode::Refused, queries, options.nsid);
    }
    let used = options.subnet.filter(ClientSubnet::usable);
    Read::Question(Question {
        query,
        metadata: message.metadata,
        labels,
        qtype,
        edns,
        options,
        used,
        opt: None,
        client: used.map_or(source, |s| s.addr),
        decoded: queries.pop().map(Box::new),
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
    #[cold]
    #[inline(never)]
    pub fn hickory(&self) -> Option<std::borrow::Cow<'_, Query>> {
        match &self.decoded {
            Some(q) => Some(std::borrow::Cow::Borrowed(&**q)),
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

/// What the query path reads of a request's OPT record (RFC 6891 §6.1.3); the options are read
/// from the wire where needed (`ecs::find`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEdns {
    pub(super) max_payload: u16,
    pub(super) version: u8,
    pub(super) rcode_high: u8,
    /// DO (RFC 3225): copied into the reply's OPT.
    pub dnssec_ok: bool,
    /// CO, Compact Answers OK (RFC 9824 §4): a signed answer for a name that does not exist
    /// may carry NXDOMAIN.
    pub compact_ok: bool,
}

/// RFC 9824's NXNAME type, which only compact denial's NSEC bitmaps carry.
const NXNAME: u16 = 128;

/// The CO flag among the EDNS flags (RFC 9824 §4: the bit after DO).
pub const COMPACT_OK: u16 = 0x4000;

impl From<&Edns> for RequestEdns {
    fn from(edns: &Edns) -> Self {
        Self {
            max_payload: edns.max_payload(),
            version: edns.version(),
            rcode_high: edns.rcode_high(),
            dnssec_ok: edns.flags().dnssec_ok,
            compact_ok: edns.flags().z & COMPACT_OK != 0,
        }
    }
}

/// The OPT record that ends `rest` (the message after its question), read directly when it has
/// the usual shape: root owner, no extended rcode bits, version 0, well-formed ECS, NSID and
/// COOKIE options or none, and nothing after it. `None` for anything else, which hickory's
/// decoder then judges.
fn lean_opt(rest: &[u8]) -> Option<(Option<RequestEdns>, Options)> {
    let (&[0, 0, 41, p1, p2, 0, 0, flags, _, l1, l2], rdata) = rest.split_first_chunk::<11>()?
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
        version: 0,
        rcode_high: 0,
        dnssec_ok: flags & 0x80 != 0,
        compact_ok: u16::from(flags) << 8 & COMPACT_OK != 0,
    };
    Some((Some(edns), options))
}
