//! The presentation format of DNS data (RFC 1035 §5.1, RFC 3597): the one reader for every
//! way records come in — master files, the `data` strings of TOML zones, the HTTP API, and
//! (from the wire) RFC 2136 UPDATE — and the one writer for every way they go out as text.
//! Record data is kept as its uncompressed wire form, byte for byte what was written; hickory's
//! typed form only for the types the answer path reads (addresses, names it follows, the SOA).

mod lexer;
pub mod master;
mod name;
mod rdata;
mod scalars;
mod special;
mod svcb;
mod types;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder, Restrict};

pub use lexer::{Entry, LexError, Token, entries, unescape};
pub use name::{
    from_labels as name_from_labels, parse as parse_name_token, to_text as name_text,
    wire_len as name_wire_len,
};
pub use rdata::read_name;
pub use scalars::{bitmap as type_bitmap, period};
pub use types::{code as type_code, is_meta, name as type_name};

/// The wire form of RDATA of type `rtype` written as `tokens`: the type's own syntax, or RFC
/// 3597's `\# length hex` for any type.
pub fn parse_rdata(rtype: u16, tokens: &[Token], origin: &Name) -> Result<Vec<u8>, String> {
    if types::is_meta(rtype) {
        return Err(format!("{} is not zone data", types::name(rtype)));
    }
    if tokens
        .first()
        .is_some_and(|t| t.text == b"\\#" && !t.quoted)
    {
        let wire = generic(&tokens[1..])?;
        // A known type's generic form must still be well-formed data of that type.
        if let Some(info) = types::info(rtype) {
            rdata::read(info.fields, &wire, 0, wire.len(), false)
                .map_err(|e| format!("not valid {} data: {e}", info.name))?;
        }
        return Ok(wire);
    }
    let info = types::info(rtype).ok_or_else(|| {
        format!(
            "{} data must be written as \\# length hex (RFC 3597)",
            types::name(rtype)
        )
    })?;
    rdata::parse(info.fields, tokens, origin).map_err(|e| format!("{}: {e}", info.name))
}

/// `\# length hex…` (RFC 3597 §5).
fn generic(tokens: &[Token]) -> Result<Vec<u8>, String> {
    let length = tokens.first().ok_or("\\# needs a length")?;
    let length = scalars::number(length, u16::MAX.into())? as usize;
    let hex: String = tokens[1..].iter().map(Token::shown).collect();
    let wire = scalars::hex_decode(&hex)?;
    match wire.len() == length {
        true => Ok(wire),
        false => Err(format!("\\# says {length} octets but gives {}", wire.len())),
    }
}

/// Record data written as one string (a TOML `data` item, an API value): the type's syntax,
/// over several lines in parentheses if need be, `;` comments outside quotes.
pub fn parse_data(rtype: u16, data: &str, origin: &Name) -> Result<Vec<u8>, String> {
    let entries = lexer::entries(data).map_err(|e| e.message)?;
    match entries.as_slice() {
        [] => Err("no record data".into()),
        [entry] => parse_rdata(rtype, &entry.tokens, origin),
        _ => Err("one record's data, not several lines".into()),
    }
}

/// RDATA of type `rtype` at `message[start..end]`, as a message carries it (names maybe
/// compressed), in the uncompressed form zones keep; checked as well-formed for a known type.
pub fn rdata_from_message(
    rtype: u16,
    message: &[u8],
    start: usize,
    end: usize,
) -> Result<Vec<u8>, String> {
    match types::info(rtype) {
        Some(info) => rdata::read(info.fields, message, start, end, false),
        None => Ok(message[start..end].to_vec()),
    }
}

/// The presentation text of RDATA `wire` of type `rtype`; `\# length hex` for a type without
/// a known form (or data that is not well formed for its type).
pub fn rdata_text(rtype: u16, wire: &[u8]) -> String {
    if let Some(info) = types::info(rtype)
        && let Ok(text) = rdata::write(info.fields, wire)
    {
        return text;
    }
    match wire.is_empty() {
        true => "\\# 0".to_owned(),
        false => format!("\\# {} {}", wire.len(), scalars::hex_upper(wire)),
    }
}

/// RDATA in DNSSEC's canonical form (RFC 4034 §6.2): names in lower case for the types that
/// say so, everything else as it is.
pub fn canonical_rdata(rtype: u16, wire: &[u8]) -> Vec<u8> {
    match types::info(rtype) {
        Some(info) if types::lower_in_canonical_form(rtype) => {
            rdata::read(info.fields, wire, 0, wire.len(), true).unwrap_or_else(|_| wire.to_vec())
        }
        _ => wire.to_vec(),
    }
}

/// Types the answer path reads in hickory's typed form: addresses, the SOA, and the names it
/// follows (CNAME) or adds addresses for (NS, MX, SRV). Every other type is kept as bytes.
fn typed(rtype: u16) -> bool {
    matches!(rtype, 1 | 2 | 5 | 6 | 12 | 15 | 28 | 33)
}

/// A record of `owner`, `ttl` and type `rtype` with data `wire` (as `parse_rdata` makes it).
pub fn record(owner: Name, ttl: u32, rtype: u16, wire: Vec<u8>) -> Result<Record, String> {
    let data = match typed(rtype) {
        true => {
            let mut decoder = BinDecoder::new(&wire);
            let length = Restrict::new(wire.len() as u16);
            let data = RData::read(&mut decoder, RecordType::from(rtype), length)
                .map_err(|e| format!("{}: {e}", types::name(rtype)))?;
            if decoder.index() != wire.len() {
                return Err(format!("{}: octets left over", types::name(rtype)));
            }
            data
        }
        false => RData::Unknown {
            code: RecordType::from(rtype),
            rdata: match wire.is_empty() {
                true => NULL::new(),
                false => NULL::with(wire),
            },
        },
    };
    Ok(Record::from_rdata(owner, ttl, data))
}

/// The uncompressed wire form of a record's data, names as written.
pub fn record_wire(record: &Record) -> Vec<u8> {
    if let RData::Unknown { rdata, .. } = &record.data {
        return rdata.anything.clone();
    }
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    encoder.set_canonical_form(false);
    let _ = record.data.emit(&mut encoder);
    // hickory compresses no names in RDATA it emits alone (no earlier names to point at).
    out
}

/// The presentation text of a record's data.
pub fn record_text(record: &Record) -> String {
    rdata_text(u16::from(record.record_type()), &record_wire(record))
}

/// A record's type as text: its mnemonic, or `TYPEnnn`.
pub fn record_type_text(rtype: RecordType) -> String {
    types::name(u16::from(rtype))
}

#[cfg(test)]
mod tests;
