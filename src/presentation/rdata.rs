//! Record data both ways, field by field: presentation tokens to wire form (checking every
//! length where it is written), wire form from a message (compressed names expanded) to the
//! uncompressed form we keep, and wire form back to presentation text. A type is the list of its
//! fields (`types::TYPES`); the few whose layout is not a list live in `special`.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name as DnsName;

use super::lexer::{Token, unescape};
use super::scalars::*;
use super::{name, special, svcb, types};

/// One field of a type's RDATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    U8,
    U16,
    U32,
    /// A 32-bit number of seconds, also written with units (`1h30m`): SOA timers, TTLs.
    Period,
    /// A DNSSEC algorithm: a number or its mnemonic.
    Alg,
    /// A CERT type: a number or its mnemonic.
    CertType,
    /// A record type (RRSIG's type covered).
    Type,
    /// RRSIG's times: `YYYYMMDDHHmmSS` or seconds.
    Time,
    Name,
    V4,
    V6,
    /// One `<character-string>`: a length octet and at most 255 bytes.
    Str,
    /// One or more character-strings, to the end.
    Strs,
    /// Base64, to the end (blanks inside allowed).
    Base64,
    /// Hex, to the end (blanks inside allowed).
    Hex,
    /// NSEC3's salt: a length octet and hex, `-` for none.
    Salt,
    /// NSEC3's next hashed owner: a length octet and base32hex.
    Hash,
    /// NSEC's type bitmap (RFC 4034 §4.1.2), to the end.
    Bitmap,
    /// CAA's tag: a length octet and letters and digits.
    Tag,
    /// One string to the end with no length octet: CAA's value, URI's target.
    Rest,
    /// ILNP's 64-bit locator or node id, `xxxx:xxxx:xxxx:xxxx`.
    L64,
    Eui48,
    Eui64,
    Loc,
    Apl,
    Ipseckey,
    /// SVCB and HTTPS parameters, to the end.
    Svcb,
}

impl Field {
    /// What the field holds, for "… is missing".
    fn what(self) -> &'static str {
        match self {
            Field::Name => "a name",
            Field::V4 => "an IPv4 address",
            Field::V6 => "an IPv6 address",
            Field::Str | Field::Rest => "a string",
            Field::Tag => "a tag",
            Field::Type => "a type",
            Field::Time | Field::Period => "a time",
            Field::Alg => "an algorithm",
            Field::Salt => "a salt",
            Field::Hash => "a hashed name",
            Field::L64 => "a locator",
            Field::Eui48 | Field::Eui64 => "an EUI",
            _ => "a number",
        }
    }
}

/// Tokens of one RDATA, consumed field by field.
pub struct Cursor<'t> {
    pub tokens: &'t [Token],
    pub at: usize,
}

impl<'t> Cursor<'t> {
    pub fn next(&mut self, what: &str) -> Result<&'t Token, String> {
        let token = self
            .tokens
            .get(self.at)
            .ok_or_else(|| format!("{what} is missing"))?;
        self.at += 1;
        Ok(token)
    }

    pub fn rest(&mut self) -> &'t [Token] {
        let rest = &self.tokens[self.at.min(self.tokens.len())..];
        self.at = self.tokens.len();
        rest
    }
}

/// The wire form of RDATA written as `tokens` for a type of `fields`.
pub fn parse(fields: &[Field], tokens: &[Token], origin: &DnsName) -> Result<Vec<u8>, String> {
    let mut cursor = Cursor { tokens, at: 0 };
    let mut out = Vec::new();
    for field in fields {
        parse_field(*field, &mut cursor, origin, &mut out)?;
    }
    if let Some(extra) = tokens.get(cursor.at) {
        return Err(format!(
            "unexpected '{}' after the record data",
            extra.shown()
        ));
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(format!(
            "{} octets of record data (at most 65535)",
            out.len()
        ));
    }
    Ok(out)
}

fn parse_field(
    field: Field,
    cursor: &mut Cursor<'_>,
    origin: &DnsName,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match field {
        Field::Strs => {
            let rest = cursor.rest();
            if rest.is_empty() {
                return Err("a string is missing".into());
            }
            for token in rest {
                char_string(out, token)?;
            }
        }
        Field::Base64 | Field::Hex => {
            let text = joined(cursor.rest());
            match (text.is_empty(), field) {
                (true, _) => return Err("the key, digest or data is missing".into()),
                (false, Field::Base64) => out.extend(base64_decode(&text)?),
                (false, _) => out.extend(hex_decode(&text)?),
            }
        }
        Field::Bitmap => {
            let mut codes = Vec::new();
            for token in cursor.rest() {
                codes.push(
                    types::code(&token.shown())
                        .ok_or_else(|| format!("unknown type {}", token.shown()))?,
                );
            }
            bitmap(out, codes);
        }
        Field::Loc => special::parse_loc(cursor, out)?,
        Field::Apl => special::parse_apl(cursor, out)?,
        Field::Ipseckey => special::parse_ipseckey(cursor, origin, out)?,
        Field::Svcb => svcb::parse_svcb(cursor, out)?,
        _ => parse_word(field, cursor.next(field.what())?, origin, out)?,
    }
    Ok(())
}

/// A field written as one token.
fn parse_word(
    field: Field,
    token: &Token,
    origin: &DnsName,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let text = token.shown();
    match field {
        Field::U8 => out.push(number(token, u8::MAX.into())? as u8),
        Field::U16 => out.extend((number(token, u16::MAX.into())? as u16).to_be_bytes()),
        Field::U32 => out.extend((number(token, u32::MAX.into())? as u32).to_be_bytes()),
        Field::Period => out.extend(period(&text)?.to_be_bytes()),
        Field::Alg => out.push(mnemonic(token, types::ALGORITHMS, u8::MAX.into())? as u8),
        Field::CertType => {
            let code = mnemonic(token, types::CERT_TYPES, u16::MAX.into())? as u16;
            out.extend(code.to_be_bytes());
        }
        Field::Type => {
            let code = types::code(&text).ok_or_else(|| format!("unknown type {text}"))?;
            out.extend(code.to_be_bytes());
        }
        Field::Time => out.extend(time(&text)?.to_be_bytes()),
        Field::Name => wire_name(out, &name::parse(token, origin)?),
        Field::V4 => {
            let addr: Ipv4Addr = text
                .parse()
                .map_err(|_| format!("{text} is not an IPv4 address"))?;
            out.extend(addr.octets());
        }
        Field::V6 => {
            let addr: Ipv6Addr = text
                .parse()
                .map_err(|_| format!("{text} is not an IPv6 address"))?;
            out.extend(addr.octets());
        }
        Field::Str => char_string(out, token)?,
        Field::Salt => {
            let salt = match token.text.as_slice() {
                b"-" => Vec::new(),
                _ => hex_decode(&text)?,
            };
            out.push(u8::try_from(salt.len()).map_err(|_| "a salt of more than 255 octets")?);
            out.extend(salt);
        }
        Field::Hash => {
            let hash = base32hex_decode(&text)?;
            out.push(u8::try_from(hash.len()).map_err(|_| "a hash of more than 255 octets")?);
            out.extend(hash);
        }
        Field::Tag => {
            let tag = unescape(&token.text)?;
            if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                return Err(format!("{text}: a tag is letters and digits"));
            }
            char_string_bytes(out, &tag)?;
        }
        Field::Rest => out.extend(unescape(&token.text)?),
        Field::L64 => out.extend(l64(&text)?),
        Field::Eui48 => out.extend(eui(&text, 6)?),
        Field::Eui64 => out.extend(eui(&text, 8)?),
        _ => unreachable!("{field:?} is read by parse_field"),
    }
    Ok(())
}

/// RDATA of a type of `fields` read from `message[start..end]`: names expanded from their
/// compression pointers (and in lower case where `lower`), every length checked. The result is
/// the uncompressed form kept in zones.
pub fn read(
    fields: &[Field],
    message: &[u8],
    start: usize,
    end: usize,
    lower: bool,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(end - start);
    let mut at = start;
    for field in fields {
        at = read_field(*field, message, at, end, lower, &mut out)?;
    }
    if at != end {
        return Err(format!("{} octets left over", end - at));
    }
    Ok(out)
}

fn take(message: &[u8], at: usize, len: usize, end: usize) -> Result<&[u8], String> {
    match at + len <= end {
        true => Ok(&message[at..at + len]),
        false => Err("record data ends early".into()),
    }
}

fn read_field(
    field: Field,
    m: &[u8],
    at: usize,
    end: usize,
    lower: bool,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    let fixed = |len: usize, out: &mut Vec<u8>| -> Result<usize, String> {
        out.extend_from_slice(take(m, at, len, end)?);
        Ok(at + len)
    };
    match field {
        Field::U8 | Field::Alg => fixed(1, out),
        Field::U16 | Field::CertType | Field::Type => fixed(2, out),
        Field::U32 | Field::Period | Field::Time | Field::V4 => fixed(4, out),
        Field::V6 => fixed(16, out),
        Field::L64 | Field::Eui64 => fixed(8, out),
        Field::Eui48 => fixed(6, out),
        Field::Loc => fixed(16, out),
        Field::Name => {
            let (labels, next) = read_name(m, at, end)?;
            for label in labels {
                out.push(label.len() as u8);
                match lower {
                    true => out.extend(label.iter().map(u8::to_ascii_lowercase)),
                    false => out.extend_from_slice(label),
                }
            }
            out.push(0);
            Ok(next)
        }
        Field::Str | Field::Salt | Field::Hash | Field::Tag => {
            let len = usize::from(*take(m, at, 1, end)?.first().unwrap_or(&0));
            fixed(1 + len, out)
        }
        Field::Strs => {
            if at >= end {
                return Err("a string is missing".into());
            }
            let mut p = at;
            while p < end {
                p += 1 + usize::from(m[p]);
            }
            match p == end {
                true => fixed(end - at, out),
                false => Err("a string runs past the record data".into()),
            }
        }
        Field::Base64 | Field::Hex | Field::Rest => fixed(end - at, out),
        Field::Bitmap => {
            check_bitmap(take(m, at, end - at, end)?)?;
            fixed(end - at, out)
        }
        Field::Apl => {
            special::check_apl(take(m, at, end - at, end)?)?;
            fixed(end - at, out)
        }
        Field::Svcb => {
            svcb::check_svcb(take(m, at, end - at, end)?)?;
            fixed(end - at, out)
        }
        Field::Ipseckey => special::read_ipseckey(m, at, end, out),
    }
}

/// The labels of the name at `at` in `message` (pointers followed, backwards only), and where
/// the name ends at its first position.
pub fn read_name(message: &[u8], mut at: usize, end: usize) -> Result<(Vec<&[u8]>, usize), String> {
    let mut labels = Vec::new();
    let mut after = None;
    let mut octets = 1;
    let mut limit = end;
    loop {
        let len = *message
            .get(at)
            .filter(|_| at < limit)
            .ok_or("a name runs past the data")?;
        match len {
            0 => break,
            l if l & 0xc0 == 0xc0 => {
                let low = *message.get(at + 1).ok_or("a cut compression pointer")?;
                let target = usize::from(u16::from_be_bytes([l & 0x3f, low]));
                if target >= at {
                    return Err("a compression pointer that does not point back".into());
                }
                after.get_or_insert(at + 2);
                limit = at;
                at = target;
            }
            l if l & 0xc0 == 0 => {
                let label = message
                    .get(at + 1..at + 1 + usize::from(l))
                    .ok_or("a label runs past the data")?;
                octets += 1 + label.len();
                if octets > 255 {
                    return Err("a name of more than 255 octets".into());
                }
                labels.push(label);
                at += 1 + usize::from(l);
            }
            _ => return Err("an unknown label type".into()),
        }
    }
    let next = after.unwrap_or(at + 1);
    match next <= end {
        true => Ok((labels, next)),
        false => Err("a name runs past the record data".into()),
    }
}

/// Presentation text of RDATA `wire` (uncompressed, as `read` or `parse` make it).
pub fn write(fields: &[Field], wire: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let mut at = 0;
    for field in fields {
        let mut part = Vec::new();
        let next = read_field(*field, wire, at, wire.len(), false, &mut part)?;
        if !matches!(*field, Field::Bitmap | Field::Svcb | Field::Apl) || !part.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            write_field(*field, &part, &mut out)?;
        }
        at = next;
    }
    Ok(out)
}

fn write_field(field: Field, part: &[u8], out: &mut String) -> Result<(), String> {
    let be = |n: usize| {
        part.iter()
            .take(n)
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b))
    };
    let text = match field {
        Field::U8 | Field::Alg => part[0].to_string(),
        Field::U16 | Field::CertType => be(2).to_string(),
        Field::U32 | Field::Period => be(4).to_string(),
        Field::Type => types::name(be(2) as u16),
        Field::Time => time_text(be(4) as u32),
        Field::Name => {
            let (labels, _) = read_name(part, 0, part.len())?;
            let labels = labels.into_iter().map(<[u8]>::to_vec).collect();
            name::to_text(&name::from_labels(labels, None)?)
        }
        Field::V4 => Ipv4Addr::from(<[u8; 4]>::try_from(part).unwrap_or_default()).to_string(),
        Field::V6 => Ipv6Addr::from(<[u8; 16]>::try_from(part).unwrap_or_default()).to_string(),
        Field::Str | Field::Tag => string_text(&part[1..], field == Field::Str),
        Field::Strs => {
            let mut strings = Vec::new();
            let mut p = 0;
            while p < part.len() {
                let len = usize::from(part[p]);
                strings.push(string_text(&part[p + 1..p + 1 + len], true));
                p += 1 + len;
            }
            strings.join(" ")
        }
        Field::Rest => string_text(part, true),
        Field::Base64 => base64_encode(part),
        Field::Hex => hex_upper(part),
        Field::Salt if part.len() == 1 => "-".to_owned(),
        Field::Salt => hex_upper(&part[1..]),
        Field::Hash => base32hex_encode(&part[1..]),
        Field::Bitmap => {
            let names: Vec<String> = bitmap_codes(part).into_iter().map(types::name).collect();
            names.join(" ")
        }
        Field::L64 => {
            let groups: Vec<String> = part
                .chunks(2)
                .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
                .collect();
            groups.join(":")
        }
        Field::Eui48 | Field::Eui64 => {
            let octets: Vec<String> = part.iter().map(|b| format!("{b:02x}")).collect();
            octets.join("-")
        }
        Field::Loc => special::loc_text(part),
        Field::Apl => special::apl_text(part),
        Field::Ipseckey => special::ipseckey_text(part)?,
        Field::Svcb => svcb::svcb_text(part),
    };
    out.push_str(&text);
    Ok(())
}

fn string_text(bytes: &[u8], quote: bool) -> String {
    let mut out = String::new();
    write_string(&mut out, bytes, quote);
    out
}

/// `name` in uncompressed wire form, as it is written (case kept).
pub fn wire_name(out: &mut Vec<u8>, name: &DnsName) {
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}
