//! SVCB and HTTPS service parameters (RFC 9460 §2.1, Appendix A): `key=value` pairs read in
//! any order and written sorted by key, each value in its key's own form.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::lexer::unescape;
use super::rdata::Cursor;
use super::scalars::{base64_decode, base64_encode, write_string};

/// SVCB parameter keys by name (RFC 9460 §14.3.2).
const KEYS: &[(u16, &str)] = &[
    (0, "mandatory"),
    (1, "alpn"),
    (2, "no-default-alpn"),
    (3, "port"),
    (4, "ipv4hint"),
    (5, "ech"),
    (6, "ipv6hint"),
    (7, "dohpath"),
    (8, "ohttp"),
];

fn key_code(text: &str) -> Result<u16, String> {
    if let Some((code, _)) = KEYS.iter().find(|(_, n)| *n == text) {
        return Ok(*code);
    }
    text.strip_prefix("key")
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("unknown SVCB parameter {text}"))
}

fn key_name(code: u16) -> String {
    KEYS.iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("key{code}"), |(_, n)| (*n).to_owned())
}

/// `key[=value]` parameters, in any order: written sorted by key, each at most once.
pub fn parse_svcb(cursor: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let tokens = cursor.rest();
    let mut params: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        at += 1;
        let text = token.text.clone();
        let (key, mut value) = match text.iter().position(|b| *b == b'=') {
            Some(eq) => (
                String::from_utf8_lossy(&text[..eq]).into_owned(),
                Some(text[eq + 1..].to_vec()),
            ),
            None => (String::from_utf8_lossy(&text).into_owned(), None),
        };
        // `alpn="h2,h3"`: the lexer ends the word at the quote.
        if value.as_deref() == Some(b"") && tokens.get(at).is_some_and(|t| t.quoted) {
            value = Some(tokens[at].text.clone());
            at += 1;
        }
        let code = key_code(&key)?;
        let wire = svcb_value(code, &key, value.as_deref())?;
        if params.iter().any(|(c, _)| *c == code) {
            return Err(format!("SVCB parameter {key} given twice"));
        }
        params.push((code, wire));
    }
    params.sort_by_key(|(c, _)| *c);
    for (code, value) in params {
        out.extend(code.to_be_bytes());
        out.extend(
            (u16::try_from(value.len()).map_err(|_| "an SVCB value too long")?).to_be_bytes(),
        );
        out.extend(value);
    }
    Ok(())
}

/// Items of a comma-separated list, `\,` kept inside an item (RFC 9460 Appendix A.1).
fn value_list(raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bytes = unescape(raw)?;
    // An escaped comma was `\,` (or `\\,` once unescaped twice): split at commas not after `\`.
    let mut items = vec![Vec::new()];
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if at + 1 < bytes.len() => {
                items.last_mut().expect("one item").push(bytes[at + 1]);
                at += 2;
            }
            b',' => {
                items.push(Vec::new());
                at += 1;
            }
            b => {
                items.last_mut().expect("one item").push(b);
                at += 1;
            }
        }
    }
    Ok(items)
}

fn svcb_value(code: u16, key: &str, value: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let need = || format!("SVCB parameter {key} needs a value");
    let mut out = Vec::new();
    match code {
        0 => {
            let mut codes = Vec::new();
            for item in value_list(value.ok_or_else(need)?)? {
                codes.push(key_code(&String::from_utf8_lossy(&item))?);
            }
            codes.sort_unstable();
            for c in codes {
                out.extend(c.to_be_bytes());
            }
        }
        1 => {
            for item in value_list(value.ok_or_else(need)?)? {
                if item.is_empty() || item.len() > 255 {
                    return Err("an alpn id of 1 to 255 octets".into());
                }
                out.push(item.len() as u8);
                out.extend(item);
            }
        }
        2 | 8 if value.is_some_and(|v| !v.is_empty()) => {
            return Err(format!("SVCB parameter {key} takes no value"));
        }
        2 | 8 => {}
        3 => {
            let text = String::from_utf8_lossy(value.ok_or_else(need)?).into_owned();
            out.extend(
                text.parse::<u16>()
                    .map_err(|_| format!("port {text} is not a number"))?
                    .to_be_bytes(),
            );
        }
        4 | 6 => {
            for item in value_list(value.ok_or_else(need)?)? {
                let text = String::from_utf8_lossy(&item).into_owned();
                match code {
                    4 => out.extend(
                        text.parse::<Ipv4Addr>()
                            .map_err(|_| format!("{text} is not an IPv4 address"))?
                            .octets(),
                    ),
                    _ => out.extend(
                        text.parse::<Ipv6Addr>()
                            .map_err(|_| format!("{text} is not an IPv6 address"))?
                            .octets(),
                    ),
                }
            }
        }
        5 => out.extend(base64_decode(&String::from_utf8_lossy(
            value.ok_or_else(need)?,
        ))?),
        _ => out.extend(unescape(value.unwrap_or_default())?),
    }
    Ok(out)
}

pub fn check_svcb(wire: &[u8]) -> Result<(), String> {
    let mut at = 0;
    let mut last: Option<u16> = None;
    while at < wire.len() {
        let head = wire.get(at..at + 4).ok_or("a cut SVCB parameter")?;
        let key = u16::from_be_bytes([head[0], head[1]]);
        if last.is_some_and(|l| l >= key) {
            return Err("SVCB parameters out of order".into());
        }
        last = Some(key);
        at += 4 + usize::from(u16::from_be_bytes([head[2], head[3]]));
    }
    match at == wire.len() {
        true => Ok(()),
        false => Err("a cut SVCB parameter".into()),
    }
}

pub fn svcb_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    let mut first = true;
    while at + 4 <= wire.len() {
        let key = u16::from_be_bytes([wire[at], wire[at + 1]]);
        let len = usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]]));
        let value = &wire[at + 4..(at + 4 + len).min(wire.len())];
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(&key_name(key));
        at += 4 + len;
        let list = |items: Vec<String>| items.join(",");
        let text = match key {
            0 => list(
                value
                    .chunks(2)
                    .map(|c| key_name(u16::from_be_bytes([c[0], c[1]])))
                    .collect(),
            ),
            1 => {
                let mut items = Vec::new();
                let mut p = 0;
                while p < value.len() {
                    let l = usize::from(value[p]);
                    let item = &value[p + 1..(p + 1 + l).min(value.len())];
                    let mut s = String::new();
                    for &b in item {
                        match b {
                            b',' => s.push_str("\\\\,"),
                            b'\\' => s.push_str("\\\\\\\\"),
                            b'"' => s.push_str("\\\""),
                            0x21..=0x7e => s.push(char::from(b)),
                            _ => s.push_str(&format!("\\{b:03}")),
                        }
                    }
                    items.push(s);
                    p += 1 + l;
                }
                list(items)
            }
            2 | 8 => continue,
            3 if value.len() == 2 => u16::from_be_bytes([value[0], value[1]]).to_string(),
            4 => list(
                value
                    .chunks(4)
                    .map(|c| Ipv4Addr::from(<[u8; 4]>::try_from(c).unwrap_or_default()).to_string())
                    .collect(),
            ),
            6 => list(
                value
                    .chunks(16)
                    .map(|c| {
                        Ipv6Addr::from(<[u8; 16]>::try_from(c).unwrap_or_default()).to_string()
                    })
                    .collect(),
            ),
            5 => base64_encode(value),
            _ => {
                let mut s = String::new();
                write_string(&mut s, value, false);
                s
            }
        };
        out.push_str("=\"");
        out.push_str(&text);
        out.push('"');
    }
    out
}
