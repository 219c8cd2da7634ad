//! The journal's records: a payload length (u32, big-endian), the first 8 bytes of the
//! payload's SHA-256, then the payload: a kind byte and its body. Kinds: 1, a zone's new TOML
//! text (origin length as u16, origin, text); 0, its TOML document removed (origin length,
//! origin); 2, a change to the registry of endpoints registered through the API (JSON).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::registry::{Change, Registry};
use crate::zone::Name;

/// One journal record.
#[derive(Debug, Clone)]
pub enum Record {
    /// A zone's new TOML text (`None`: its TOML document removed).
    Zone(Name, Option<String>),
    Registry(Change),
}

/// A record's bytes.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut payload = Vec::new();
    match record {
        Record::Zone(origin, text) => {
            let origin = origin.to_ascii();
            payload.push(u8::from(text.is_some()));
            payload.extend_from_slice(&(origin.len() as u16).to_be_bytes());
            payload.extend_from_slice(origin.as_bytes());
            payload.extend_from_slice(text.as_deref().unwrap_or_default().as_bytes());
        }
        Record::Registry(change) => {
            payload.push(2);
            payload.extend(serde_json::to_vec(change).expect("a registry change serializes"));
        }
    }
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&Sha256::digest(&payload)[..8]);
    out.extend_from_slice(&payload);
    out
}

/// The record at the start of `bytes` and its length, if it is whole and sound.
pub fn decode(bytes: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = bytes.get(4..12)?;
    let payload = bytes.get(12..12 + len)?;
    if Sha256::digest(payload)[..8] != *sum {
        return None;
    }
    let (&kind, rest) = payload.split_first()?;
    let record = match kind {
        0 | 1 => {
            let origin_len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
            let origin = std::str::from_utf8(rest.get(2..2 + origin_len)?).ok()?;
            let origin = Name::from_ascii(origin).ok()?;
            let text = std::str::from_utf8(rest.get(2 + origin_len..)?).ok()?;
            Record::Zone(origin, (kind == 1).then(|| text.to_owned()))
        }
        2 => Record::Registry(serde_json::from_slice(rest).ok()?),
        _ => return None,
    };
    Some((record, 12 + len))
}

/// What a journal's bytes hold, applied over a registry loaded from its file.
pub struct Replayed {
    /// The latest text of each zone.
    pub texts: HashMap<Name, Option<String>>,
    pub registry: Registry,
    /// The length of the whole, sound records (the rest is a torn or corrupt tail).
    pub good: usize,
}

pub fn replay(bytes: &[u8], mut registry: Registry) -> Replayed {
    let mut texts = HashMap::new();
    let mut at = 0;
    while let Some((record, len)) = decode(&bytes[at..]) {
        match record {
            Record::Zone(origin, text) => {
                texts.insert(origin, text);
            }
            Record::Registry(change) => registry.apply(change),
        }
        at += len;
    }
    Replayed {
        texts,
        registry,
        good: at,
    }
}
