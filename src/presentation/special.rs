//! The RDATA whose layout is not a plain list of fields: LOC (RFC 1876), APL (RFC 3123) and
//! IPSECKEY (RFC 4025, the gateway's form set by an earlier field).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use hickory_proto::rr::Name as DnsName;

use super::name;
use super::rdata::{Cursor, read_name, wire_name};
use super::scalars::{base64_decode, hex_upper, number};

/// LOC's reference values: 2^31 for the equator and the prime meridian (thousandths of an arc
/// second), 100,000 m below the WGS 84 spheroid for altitude (centimetres).
const EQUATOR: i64 = 1 << 31;
const ALTITUDE_BASE: i64 = 10_000_000;

/// `d [m [s]] N|S d [m [s]] E|W alt[m] [size[m] [hp[m] [vp[m]]]]`.
pub fn parse_loc(cursor: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let tokens: Vec<String> = cursor.rest().iter().map(|t| t.shown()).collect();
    let mut at = 0;
    let latitude = angle(&tokens, &mut at, ('N', 'S'), 90)?;
    let longitude = angle(&tokens, &mut at, ('E', 'W'), 180)?;
    let altitude = tokens.get(at).ok_or("LOC needs an altitude")?;
    let altitude = metres(altitude, -10_000_000, 4_284_967_295)? + ALTITUDE_BASE;
    at += 1;
    let mut precision = [0x12u8, 0x16, 0x13]; // 1 m, 10,000 m, 10 m
    for slot in &mut precision {
        if let Some(text) = tokens.get(at) {
            *slot = encode_precision(metres(text, 0, 9_000_000_000)?)?;
            at += 1;
        }
    }
    if let Some(extra) = tokens.get(at) {
        return Err(format!("unexpected '{extra}' in LOC"));
    }
    out.push(0);
    out.extend(precision);
    out.extend(((EQUATOR + latitude) as u32).to_be_bytes());
    out.extend(((EQUATOR + longitude) as u32).to_be_bytes());
    out.extend((altitude as u32).to_be_bytes());
    Ok(())
}

/// Degrees, minutes and seconds up to the hemisphere letter, in thousandths of an arc second.
fn angle(
    tokens: &[String],
    at: &mut usize,
    hemispheres: (char, char),
    max: i64,
) -> Result<i64, String> {
    let mut parts: Vec<String> = Vec::new();
    loop {
        let token = tokens
            .get(*at)
            .ok_or("LOC ends before its hemisphere letter")?;
        *at += 1;
        let upper = token.to_ascii_uppercase();
        if upper == hemispheres.0.to_string() || upper == hemispheres.1.to_string() {
            let sign = if upper == hemispheres.0.to_string() {
                1
            } else {
                -1
            };
            let bad = || {
                format!(
                    "LOC: {} is not degrees [minutes [seconds]]",
                    parts.join(" ")
                )
            };
            let degrees: i64 = parts.first().ok_or_else(bad)?.parse().map_err(|_| bad())?;
            let minutes: i64 = parts
                .get(1)
                .map_or(Ok(0), |m: &String| m.parse())
                .map_err(|_| bad())?;
            let millis = parts
                .get(2)
                .map_or(Ok(0), |s| thousandths(s))
                .map_err(|_| bad())?;
            if parts.len() > 3 || degrees > max || minutes > 59 || millis >= 60_000 {
                return Err(bad());
            }
            let value = (degrees * 3600 + minutes * 60) * 1000 + millis;
            if value > max * 3_600_000 {
                return Err(bad());
            }
            return Ok(sign * value);
        }
        parts.push(token.clone());
        if parts.len() > 3 {
            return Err(format!(
                "LOC: no {}/{} after the degrees",
                hemispheres.0, hemispheres.1
            ));
        }
    }
}

/// `12.345` as 12345 thousandths.
fn thousandths(text: &str) -> Result<i64, ()> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) || whole.is_empty() {
        return Err(());
    }
    let whole: i64 = whole.parse().map_err(|_| ())?;
    let frac: i64 = format!("{frac:0<3}").parse().map_err(|_| ())?;
    Ok(whole * 1000 + frac)
}

/// Metres with up to two decimals (a trailing `m` allowed), in centimetres within `min..=max`.
fn metres(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let bad = || format!("LOC: {text} is not a length in metres");
    let body = text.strip_suffix(['m', 'M']).unwrap_or(text);
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let cm = (whole * 100 + frac) * if negative { -1 } else { 1 };
    match (min..=max).contains(&cm) {
        true => Ok(cm),
        false => Err(bad()),
    }
}

/// A size or precision in centimetres as LOC's mantissa and power of ten (RFC 1876 §2).
fn encode_precision(cm: i64) -> Result<u8, String> {
    let mut exponent = 0;
    let mut mantissa = cm;
    // One significant digit is kept (RFC 1876 §2): what is below it is dropped.
    while mantissa >= 10 && exponent < 9 {
        mantissa /= 10;
        exponent += 1;
    }
    match mantissa <= 9 {
        true => Ok((mantissa as u8) << 4 | exponent),
        false => Err("LOC: a size of more than 90,000 km".into()),
    }
}

fn precision_text(byte: u8) -> String {
    let cm = u64::from(byte >> 4) * 10u64.pow(u32::from(byte & 0x0f).min(9));
    format!("{}.{:02}m", cm / 100, cm % 100)
}

pub fn loc_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let word = |i: usize| {
        i64::from(u32::from_be_bytes([
            wire[i],
            wire[i + 1],
            wire[i + 2],
            wire[i + 3],
        ]))
    };
    if wire[0] != 0 {
        return format!("\\# 16 {}", hex_upper(wire));
    }
    for (value, letters) in [
        (word(4) - EQUATOR, ('N', 'S')),
        (word(8) - EQUATOR, ('E', 'W')),
    ] {
        let letter = if value < 0 { letters.1 } else { letters.0 };
        let v = value.abs();
        let _ = write!(
            out,
            "{} {} {}.{:03} {letter} ",
            v / 3_600_000,
            v / 60_000 % 60,
            v / 1000 % 60,
            v % 1000
        );
    }
    let altitude = word(12) - ALTITUDE_BASE;
    let sign = if altitude < 0 { "-" } else { "" };
    let _ = write!(
        out,
        "{sign}{}.{:02}m",
        altitude.abs() / 100,
        altitude.abs() % 100
    );
    for byte in &wire[1..4] {
        out.push(' ');
        out.push_str(&precision_text(*byte));
    }
    out
}

/// `[!]afi:address/prefix` items (RFC 3123 §5), possibly none.
pub fn parse_apl(cursor: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    for token in cursor.rest() {
        let text = token.shown();
        let bad = || format!("APL: {text} is not [!]afi:address/prefix");
        let (negated, item) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let (family, rest) = item.split_once(':').ok_or_else(bad)?;
        let (address, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let (family, mut octets, max): (u16, Vec<u8>, u8) = match family {
            "1" => (
                1,
                address
                    .parse::<Ipv4Addr>()
                    .map_err(|_| bad())?
                    .octets()
                    .to_vec(),
                32,
            ),
            "2" => (
                2,
                address
                    .parse::<Ipv6Addr>()
                    .map_err(|_| bad())?
                    .octets()
                    .to_vec(),
                128,
            ),
            _ => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        while octets.last() == Some(&0) {
            octets.pop();
        }
        out.extend(family.to_be_bytes());
        out.push(prefix);
        out.push(u8::from(negated) << 7 | octets.len() as u8);
        out.extend(octets);
    }
    Ok(())
}

pub fn check_apl(wire: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while at < wire.len() {
        let header = wire.get(at..at + 4).ok_or("a cut APL item")?;
        let len = usize::from(header[3] & 0x7f);
        let max = match u16::from_be_bytes([header[0], header[1]]) {
            1 => 4,
            2 => 16,
            _ => 0xff,
        };
        if len > max {
            return Err("an APL address longer than its family's".into());
        }
        at += 4 + len;
    }
    match at == wire.len() {
        true => Ok(()),
        false => Err("a cut APL item".into()),
    }
}

pub fn apl_text(wire: &[u8]) -> String {
    let mut at = 0;
    let mut items = Vec::new();
    while at + 4 <= wire.len() {
        let family = u16::from_be_bytes([wire[at], wire[at + 1]]);
        let (prefix, negated, len) = (
            wire[at + 2],
            wire[at + 3] & 0x80 != 0,
            usize::from(wire[at + 3] & 0x7f),
        );
        let data = &wire[at + 4..(at + 4 + len).min(wire.len())];
        let address = match family {
            1 => {
                let mut o = [0u8; 4];
                o[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
                Ipv4Addr::from(o).to_string()
            }
            _ => {
                let mut o = [0u8; 16];
                o[..data.len().min(16)].copy_from_slice(&data[..data.len().min(16)]);
                Ipv6Addr::from(o).to_string()
            }
        };
        items.push(format!(
            "{}{family}:{address}/{prefix}",
            if negated { "!" } else { "" }
        ));
        at += 4 + len;
    }
    items.join(" ")
}

/// `precedence gateway-type algorithm gateway [public key]` (RFC 4025 §3).
pub fn parse_ipseckey(
    cursor: &mut Cursor<'_>,
    origin: &DnsName,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.push(number(cursor.next("a precedence")?, 255)? as u8);
    let kind = number(cursor.next("a gateway type")?, 3)? as u8;
    out.push(kind);
    out.push(number(cursor.next("an algorithm")?, 255)? as u8);
    let gateway = cursor.next("a gateway")?;
    let text = gateway.shown();
    match kind {
        0 if text == "." => {}
        0 => return Err("IPSECKEY: gateway type 0 takes '.'".into()),
        1 => out.extend(
            text.parse::<Ipv4Addr>()
                .map_err(|_| format!("{text} is not an IPv4 address"))?
                .octets(),
        ),
        2 => out.extend(
            text.parse::<Ipv6Addr>()
                .map_err(|_| format!("{text} is not an IPv6 address"))?
                .octets(),
        ),
        _ => wire_name(out, &name::parse(gateway, origin)?),
    }
    let key: String = cursor.rest().iter().map(|t| t.shown()).collect();
    out.extend(base64_decode(&key)?);
    Ok(())
}

pub fn read_ipseckey(m: &[u8], at: usize, end: usize, out: &mut Vec<u8>) -> Result<usize, String> {
    let head = m
        .get(at..at + 3)
        .filter(|_| at + 3 <= end)
        .ok_or("a cut IPSECKEY")?;
    out.extend_from_slice(head);
    let mut p = at + 3;
    match head[1] {
        0 => {}
        1 | 2 => {
            let len = if head[1] == 1 { 4 } else { 16 };
            out.extend_from_slice(
                m.get(p..p + len)
                    .filter(|_| p + len <= end)
                    .ok_or("a cut IPSECKEY")?,
            );
            p += len;
        }
        3 => {
            let (labels, next) = read_name(m, p, end)?;
            for label in labels {
                out.push(label.len() as u8);
                out.extend_from_slice(label);
            }
            out.push(0);
            p = next;
        }
        _ => return Err("an unknown IPSECKEY gateway type".into()),
    }
    out.extend_from_slice(&m[p..end]);
    Ok(end)
}

pub fn ipseckey_text(wire: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let _ = write!(out, "{} {} {} ", wire[0], wire[1], wire[2]);
    let rest = &wire[3..];
    let key = match wire[1] {
        0 => {
            out.push('.');
            rest
        }
        1 => {
            let _ = write!(
                out,
                "{}",
                Ipv4Addr::from(<[u8; 4]>::try_from(&rest[..4]).unwrap_or_default())
            );
            &rest[4..]
        }
        2 => {
            let _ = write!(
                out,
                "{}",
                Ipv6Addr::from(<[u8; 16]>::try_from(&rest[..16]).unwrap_or_default())
            );
            &rest[16..]
        }
        _ => {
            let (labels, next) = read_name(rest, 0, rest.len())?;
            let labels = labels.into_iter().map(<[u8]>::to_vec).collect();
            name::write(&mut out, &name::from_labels(labels, None)?);
            &rest[next..]
        }
    };
    if !key.is_empty() {
        out.push(' ');
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(key));
    }
    Ok(out)
}
