//! The encodings of single RDATA fields: numbers and mnemonics, periods with units, RRSIG
//! times, character-strings, base64, hex, base32hex, type bitmaps, ILNP locators and EUIs.

use std::fmt::Write as _;

use base64::Engine;

use super::lexer::{Token, unescape};

/// A decimal number up to `max`.
pub fn number(token: &Token, max: u64) -> Result<u64, String> {
    let text = token.shown();
    let value: u64 = match !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        true => text.parse().unwrap_or(u64::MAX),
        false => return Err(format!("{text} is not a number")),
    };
    match value <= max {
        true => Ok(value),
        false => Err(format!("{text} is more than {max}")),
    }
}

pub fn mnemonic<T: Copy + Into<u64>>(
    token: &Token,
    names: &[(T, &str)],
    max: u64,
) -> Result<u64, String> {
    if let Some((code, _)) = names
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(&token.shown()))
    {
        return Ok((*code).into());
    }
    number(token, max)
}

/// Seconds, as a number or with units: `3600`, `1h`, `1w2d3h4m5s` (as BIND and Knot read TTLs).
pub fn period(text: &str) -> Result<u32, String> {
    let bad = || format!("{text} is not a time in seconds (or with units s, m, h, d, w)");
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u32>().map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total += n * unit;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

/// RRSIG's time (RFC 4034 §3.2): `YYYYMMDDHHmmSS` in UTC, or seconds since the epoch.
pub fn time(text: &str) -> Result<u32, String> {
    let bad = || format!("{text} is not a time (YYYYMMDDHHmmSS)");
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if text.len() != 14 {
        return text.parse::<u32>().map_err(|_| bad());
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap_or(0);
    let (y, mo, d, h, mi, s) = (n(0..4), n(4..6), n(6..8), n(8..10), n(10..12), n(12..14));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Ok(seconds.rem_euclid(1 << 32) as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn time_text(seconds: u32) -> String {
    let secs = u64::from(seconds);
    let date = crate::civil::date(secs).replace('-', "");
    let rem = secs % 86_400;
    format!(
        "{date}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A character-string from a token: at most 255 bytes once its escapes are read.
pub fn char_string(out: &mut Vec<u8>, token: &Token) -> Result<(), String> {
    char_string_bytes(out, &unescape(&token.text)?)
}

pub fn char_string_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u8::try_from(bytes.len())
        .map_err(|_| format!("a string of {} octets (at most 255)", bytes.len()))?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Bytes as a string's presentation: `"` and `\` escaped, bytes outside printable ASCII as
/// `\DDD`; in quotes, or (a CAA tag) bare.
pub fn write_string(out: &mut String, bytes: &[u8], quote: bool) {
    if quote {
        out.push('"');
    }
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    if quote {
        out.push('"');
    }
}

/// The tokens' text run together (base64 and hex may be cut by blanks).
pub fn joined(tokens: &[Token]) -> String {
    tokens.iter().map(Token::shown).collect()
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not valid base64: {e}"))
}

pub fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("{text}: hex needs two digits an octet"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| format!("{text} is not hex")))
        .collect()
}

pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

const BASE32HEX: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";

pub fn base32hex_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let value = BASE32HEX
            .iter()
            .position(|x| *x == c.to_ascii_uppercase())
            .ok_or_else(|| format!("{text} is not base32hex"))?;
        buffer = buffer << 5 | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

pub fn base32hex_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for &b in bytes {
        buffer = buffer << 8 | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32HEX[(buffer >> bits & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32HEX[(buffer << (5 - bits) & 31) as usize]));
    }
    out
}

/// The type bitmap of `codes` (RFC 4034 §4.1.2): a window of up to 32 octets for each 256 types.
pub fn bitmap(out: &mut Vec<u8>, mut codes: Vec<u16>) {
    codes.sort_unstable();
    codes.dedup();
    let mut at = 0;
    while at < codes.len() {
        let window = codes[at] >> 8;
        let mut bits = [0u8; 32];
        let mut used = 0;
        while at < codes.len() && codes[at] >> 8 == window {
            let low = usize::from(codes[at] & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            used = low / 8 + 1;
            at += 1;
        }
        out.push(window as u8);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
    }
}

pub fn check_bitmap(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0;
    let mut last: Option<u8> = None;
    while at < bytes.len() {
        let (window, len) = (bytes[at], *bytes.get(at + 1).ok_or("a cut type bitmap")?);
        if last.is_some_and(|l| l >= window) || !(1..=32).contains(&len) {
            return Err("a malformed type bitmap".into());
        }
        last = Some(window);
        at += 2 + usize::from(len);
    }
    match at == bytes.len() {
        true => Ok(()),
        false => Err("a cut type bitmap".into()),
    }
}

/// The types a bitmap lists, in order.
pub fn bitmap_codes(bytes: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    let mut at = 0;
    while at + 1 < bytes.len() {
        let (window, len) = (u16::from(bytes[at]), usize::from(bytes[at + 1]));
        for (i, octet) in bytes[at + 2..(at + 2 + len).min(bytes.len())]
            .iter()
            .enumerate()
        {
            for bit in 0..8 {
                if octet & (0x80 >> bit) != 0 {
                    codes.push(window << 8 | (i * 8 + bit) as u16);
                }
            }
        }
        at += 2 + len;
    }
    codes
}

pub fn l64(text: &str) -> Result<[u8; 8], String> {
    let groups: Vec<&str> = text.split(':').collect();
    let bad = || format!("{text} is not a 64-bit locator (xxxx:xxxx:xxxx:xxxx)");
    if groups.len() != 4 || groups.iter().any(|g| g.len() != 4) {
        return Err(bad());
    }
    let mut out = [0u8; 8];
    for (i, g) in groups.iter().enumerate() {
        let v = u16::from_str_radix(g, 16).map_err(|_| bad())?;
        out[i * 2..i * 2 + 2].copy_from_slice(&v.to_be_bytes());
    }
    Ok(out)
}

pub fn eui(text: &str, octets: usize) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let bad = || format!("{text} is not an EUI-{} (xx-xx-…)", octets * 8);
    if parts.len() != octets || parts.iter().any(|p| p.len() != 2) {
        return Err(bad());
    }
    parts
        .iter()
        .map(|p| u8::from_str_radix(p, 16).map_err(|_| bad()))
        .collect()
}

pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
