//! TSIG (RFC 8945): a request's signature checked with a shared key, and the reply signed with
//! it (each message of a zone transfer chained to the one before). HMAC-SHA256/384/512 through
//! ring, which rustls already brings. Worked on the wire bytes: the MAC covers the message as
//! it was sent, without its TSIG record.

use hickory_proto::rr::Name;

use crate::config::{TsigAlgorithm, TsigConfig, TsigOperation};
use crate::dnssec::HmacKey;

/// TSIG's record type and class (RFC 8945 §4.2).
const TSIG: u16 = 250;
const ANY: u16 = 255;
/// The time window we sign our replies with (RFC 8945 §10: 300 s recommended).
const FUDGE: u16 = 300;

/// Room a reply keeps for our TSIG record: the key name, the fixed fields and a SHA-512 MAC.
pub const RECORD_ROOM: u16 = 255 + 10 + 16 + 10 + 64;

/// TSIG error codes (RFC 8945 §3: the extended RCODE in the TSIG record).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;
pub const BADTRUNC: u16 = 22;

/// One shared key and what it may do.
#[derive(Debug)]
pub struct Key {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    hmac: HmacKey,
    /// The zones it may be used for (`None`: every zone).
    pub zones: Option<Vec<Name>>,
    pub operations: Vec<TsigOperation>,
}

impl Key {
    pub fn new(config: &TsigConfig) -> Self {
        Self {
            name: config.name.to_lowercase(),
            algorithm: config.algorithm,
            hmac: HmacKey::new(config.algorithm, &config.secret),
            zones: config.zones.clone(),
            operations: config.operations.clone(),
        }
    }

    /// Whether it may be used for `operation` in zone `origin`.
    pub fn allows(&self, operation: TsigOperation, origin: &Name) -> bool {
        self.operations.contains(&operation)
            && self
                .zones
                .as_ref()
                .is_none_or(|zones| zones.iter().any(|z| z == origin))
    }
}

/// The algorithm's name on the wire (RFC 8945 §6).
fn algorithm_name(algorithm: TsigAlgorithm) -> &'static str {
    match algorithm {
        TsigAlgorithm::HmacSha256 => "hmac-sha256.",
        TsigAlgorithm::HmacSha384 => "hmac-sha384.",
        TsigAlgorithm::HmacSha512 => "hmac-sha512.",
    }
}

fn mac_len(algorithm: TsigAlgorithm) -> usize {
    match algorithm {
        TsigAlgorithm::HmacSha256 => 32,
        TsigAlgorithm::HmacSha384 => 48,
        TsigAlgorithm::HmacSha512 => 64,
    }
}

/// A request's TSIG record, as read.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where it starts in the message.
    pub start: usize,
    pub key_name: Name,
    pub algorithm: Name,
    pub time: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
}

/// What a request's signature says.
#[derive(Debug)]
pub enum Verdict<'k> {
    /// No TSIG record.
    Unsigned,
    /// Signed by this key, and the MAC and time are good: sign the reply with `signer`.
    Good(Signer<'k>, Box<Record>),
    /// Refused with NOTAUTH and this TSIG error (RFC 8945 §5.2): the reply carries a TSIG
    /// record with the error, signed by `signer` where there is one (BADTIME).
    Bad {
        error: u16,
        record: Box<Record>,
        signer: Option<Signer<'k>>,
    },
    /// Malformed (a TSIG record not last, a MAC of impossible length): FORMERR.
    Malformed,
}

/// Signs the replies of one signed request, each chained to the MAC before it.
#[derive(Debug, Clone)]
pub struct Signer<'k> {
    pub key: &'k Key,
    /// The request's (then the last reply's) MAC.
    prior: Vec<u8>,
    /// The request's time, for a BADTIME reply.
    request_time: u64,
    /// Replies signed so far.
    count: usize,
}

/// Reads and checks the TSIG record of `message` against `keys` at `now` (Unix seconds).
pub fn verify<'k>(message: &[u8], keys: &'k [Key], now: u64) -> Verdict<'k> {
    let record = match find(message) {
        Ok(Some(record)) => record,
        Ok(None) => return Verdict::Unsigned,
        Err(()) => return Verdict::Malformed,
    };
    let key = keys.iter().find(|k| {
        k.name == record.key_name.to_lowercase()
            && record.algorithm.to_lowercase().to_ascii() == algorithm_name(k.algorithm)
    });
    let Some(key) = key else {
        let error = BADKEY;
        return Verdict::Bad {
            error,
            record: Box::new(record),
            signer: None,
        };
    };
    let full = mac_len(key.algorithm);
    if record.mac.len() > full || record.mac.len() < (full / 2).max(10) {
        return Verdict::Malformed;
    }
    let mut signed = unsigned_copy(message, &record);
    variables(&mut signed, key, record.time, record.fudge, 0, &[]);
    let expected = key.hmac.sign(&signed);
    if !constant_time_eq(&expected[..record.mac.len()], &record.mac) {
        let error = BADSIG;
        return Verdict::Bad {
            error,
            record: Box::new(record),
            signer: None,
        };
    }
    let signer = Signer {
        key,
        prior: record.mac.clone(),
        request_time: record.time,
        count: 0,
    };
    // We take only whole MACs.
    if record.mac.len() < full {
        let error = BADTRUNC;
        let signer = Some(signer);
        return Verdict::Bad {
            error,
            record: Box::new(record),
            signer,
        };
    }
    if now.abs_diff(record.time) > u64::from(record.fudge) {
        let signer = Some(signer);
        let error = BADTIME;
        return Verdict::Bad {
            error,
            record: Box::new(record),
            signer,
        };
    }
    Verdict::Good(signer, Box::new(record))
}

impl Signer<'_> {
    /// Appends our TSIG record to `reply` (a whole message) and counts it in ARCOUNT. The first
    /// reply's MAC covers the request's MAC and every TSIG variable; the next ones of a zone
    /// transfer the previous MAC and the timers only (RFC 8945 §5.3.1).
    pub fn sign(&mut self, reply: &mut Vec<u8>, now: u64, error: u16) {
        let mut covered = Vec::with_capacity(reply.len() + 128);
        // A request of ours (NOTIFY) covers no prior MAC.
        if !self.prior.is_empty() {
            covered.extend_from_slice(&(self.prior.len() as u16).to_be_bytes());
            covered.extend_from_slice(&self.prior);
        }
        covered.extend_from_slice(reply);
        let time = if error == BADTIME {
            self.request_time
        } else {
            now
        };
        let other = match error {
            BADTIME => now.to_be_bytes()[2..].to_vec(),
            _ => Vec::new(),
        };
        match self.count {
            0 => variables(&mut covered, self.key, time, FUDGE, error, &other),
            _ => {
                covered.extend_from_slice(&time.to_be_bytes()[2..]);
                covered.extend_from_slice(&FUDGE.to_be_bytes());
            }
        }
        let mac = self.key.hmac.sign(&covered);
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        append(reply, self.key, time, &mac, id, error, &other);
        self.prior = mac;
        self.count += 1;
    }
}

impl<'k> Signer<'k> {
    /// Signs a request of ours (a NOTIFY) with `key`.
    pub fn request(key: &'k Key) -> Self {
        Self {
            key,
            prior: Vec::new(),
            request_time: 0,
            count: 0,
        }
    }
}

/// Appends an unsigned TSIG record carrying `error` (BADKEY, BADSIG: RFC 8945 §5.3.2).
pub fn append_error(reply: &mut Vec<u8>, record: &Record, error: u16) {
    let mut out = Vec::new();
    wire_name(&mut out, &record.key_name);
    out.extend_from_slice(&TSIG.to_be_bytes());
    out.extend_from_slice(&ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = Vec::new();
    wire_name(&mut rdata, &record.algorithm);
    rdata.extend_from_slice(&record.time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&record.fudge.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    rdata.extend_from_slice(&record.original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    reply.extend_from_slice(&out);
    bump_arcount(reply);
}

/// Our TSIG record: key name, type, class, TTL, then the RDATA with the MAC.
fn append(
    reply: &mut Vec<u8>,
    key: &Key,
    time: u64,
    mac: &[u8],
    id: u16,
    error: u16,
    other: &[u8],
) {
    wire_name(reply, &key.name);
    reply.extend_from_slice(&TSIG.to_be_bytes());
    reply.extend_from_slice(&ANY.to_be_bytes());
    reply.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = Vec::with_capacity(96);
    wire_ascii(&mut rdata, algorithm_name(key.algorithm));
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    reply.extend_from_slice(&rdata);
    bump_arcount(reply);
}

fn bump_arcount(message: &mut [u8]) {
    let count = u16::from_be_bytes([message[10], message[11]]).wrapping_add(1);
    message[10..12].copy_from_slice(&count.to_be_bytes());
}

/// The TSIG variables (RFC 8945 §4.3.3), canonical names.
fn variables(out: &mut Vec<u8>, key: &Key, time: u64, fudge: u16, error: u16, other: &[u8]) {
    wire_name(out, &key.name);
    out.extend_from_slice(&ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    wire_ascii(out, algorithm_name(key.algorithm));
    out.extend_from_slice(&time.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
}

/// The message as it was before its TSIG record was added: without it, ARCOUNT one less, the
/// original ID.
fn unsigned_copy(message: &[u8], record: &Record) -> Vec<u8> {
    let mut copy = message[..record.start].to_vec();
    copy[0..2].copy_from_slice(&record.original_id.to_be_bytes());
    let count = u16::from_be_bytes([copy[10], copy[11]]).saturating_sub(1);
    copy[10..12].copy_from_slice(&count.to_be_bytes());
    copy
}

/// A name in canonical wire form: lower case, uncompressed.
fn wire_name(out: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
}

fn wire_ascii(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TSIG record of `message`, if it has one; `Err` if the message cannot be walked or a
/// TSIG record is not the last one (RFC 8945 §5.1: FORMERR).
/// Whether `message` carries a TSIG record (well placed or not: the manager judges it).
pub fn is_signed(message: &[u8]) -> bool {
    !matches!(find(message), Ok(None))
}

/// The message as signed: without its TSIG record, ARCOUNT one less, the original ID.
pub fn without_tsig(message: &[u8], record: &Record) -> Vec<u8> {
    unsigned_copy(message, record)
}

fn find(message: &[u8]) -> Result<Option<Record>, ()> {
    let mut at = 12;
    let count = |i: usize| {
        message
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (qd, an, ns, ar) = (
        count(4).ok_or(())?,
        count(6).ok_or(())?,
        count(8).ok_or(())?,
        count(10).ok_or(())?,
    );
    for _ in 0..qd {
        at = skip_name(message, at)? + 4;
    }
    let records = usize::from(an) + usize::from(ns) + usize::from(ar);
    for i in 0..records {
        let start = at;
        let name_end = skip_name(message, at)?;
        let fixed = message.get(name_end..name_end + 10).ok_or(())?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at = name_end + 10 + rdlen;
        if at > message.len() {
            return Err(());
        }
        if rtype == TSIG {
            let last = i + 1 == records && i >= records - usize::from(ar);
            if !last || at != message.len() {
                return Err(());
            }
            return read_record(message, start, name_end + 10, at).map(Some);
        }
    }
    Ok(None)
}

fn read_record(message: &[u8], start: usize, rdata: usize, end: usize) -> Result<Record, ()> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut decoder = BinDecoder::new(message);
    decoder.read_slice(start).map_err(drop)?;
    let key_name = Name::read(&mut decoder).map_err(drop)?;
    let mut decoder = BinDecoder::new(message);
    decoder.read_slice(rdata).map_err(drop)?;
    let algorithm = Name::read(&mut decoder).map_err(drop)?;
    let at = message.len() - decoder.len();
    let bytes = message.get(at..end).ok_or(())?;
    let u16_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(())
    };
    let time = bytes
        .get(0..6)
        .ok_or(())?
        .iter()
        .fold(0u64, |t, b| t << 8 | u64::from(*b));
    let fudge = u16_at(6)?;
    let mac_size = usize::from(u16_at(8)?);
    let mac = bytes.get(10..10 + mac_size).ok_or(())?.to_vec();
    let original_id = u16_at(10 + mac_size)?;
    Ok(Record {
        start,
        key_name,
        algorithm,
        time,
        fudge,
        mac,
        original_id,
    })
}

/// Where the name at `at` ends (after its terminal label or compression pointer).
fn skip_name(message: &[u8], mut at: usize) -> Result<usize, ()> {
    loop {
        let len = *message.get(at).ok_or(())?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(&TsigConfig {
            name: Name::from_ascii("k.").unwrap(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: b"0123456789abcdef".to_vec(),
            zones: None,
            operations: vec![TsigOperation::Update],
        })
    }

    /// A query for `t.` A, signed by `key` at `time`, as a client would.
    fn signed_query(key: &Key, time: u64) -> Vec<u8> {
        let mut message = vec![
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b't', 0, 0, 1, 0, 1,
        ];
        // A request's MAC covers no prior MAC.
        let mut covered = message.clone();
        variables(&mut covered, key, time, FUDGE, 0, &[]);
        let mac = key.hmac.sign(&covered);
        append(&mut message, key, time, &mac, 0x1234, 0, &[]);
        message
    }

    #[test]
    fn a_good_signature_is_taken_and_a_bad_one_refused() {
        let keys = [key()];
        let query = signed_query(&keys[0], 1_000_000);
        assert!(matches!(
            verify(&query, &keys, 1_000_010),
            Verdict::Good(..)
        ));
        let mut tampered = query.clone();
        tampered[13] = b'u';
        assert!(matches!(
            verify(&tampered, &keys, 1_000_010),
            Verdict::Bad { error: BADSIG, .. }
        ));
        assert!(matches!(
            verify(&query, &keys, 1_000_400),
            Verdict::Bad { error: BADTIME, .. }
        ));
        let other = [Key::new(&TsigConfig {
            name: Name::from_ascii("other.").unwrap(),
            ..TsigConfig::default()
        })];
        assert!(matches!(
            verify(&query, &other, 1_000_010),
            Verdict::Bad { error: BADKEY, .. }
        ));
        let unsigned = &query[..19];
        let mut unsigned = unsigned.to_vec();
        unsigned[11] = 0;
        assert!(matches!(verify(&unsigned, &keys, 0), Verdict::Unsigned));
    }

    #[test]
    fn a_truncated_mac_is_refused() {
        let keys = [key()];
        let query = signed_query(&keys[0], 1_000_000);
        let record = find(&query).unwrap().unwrap();
        // Rebuild with the MAC cut to 16 of its 32 bytes.
        let mut short = query[..record.start].to_vec();
        short[11] = 0;
        append(
            &mut short,
            &keys[0],
            1_000_000,
            &record.mac[..16],
            0x1234,
            0,
            &[],
        );
        assert!(matches!(
            verify(&short, &keys, 1_000_000),
            Verdict::Bad {
                error: BADSIG | BADTRUNC,
                ..
            }
        ));
        let mut tiny = query[..record.start].to_vec();
        tiny[11] = 0;
        append(
            &mut tiny,
            &keys[0],
            1_000_000,
            &record.mac[..4],
            0x1234,
            0,
            &[],
        );
        assert!(matches!(
            verify(&tiny, &keys, 1_000_000),
            Verdict::Malformed
        ));
    }
}
