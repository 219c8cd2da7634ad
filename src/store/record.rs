//! The journal's records: a payload length (u32, big-endian), the first 8 bytes of the
//! payload's SHA-256, then the payload: a kind byte and its body. Kinds: 1, a zone's new TOML
//! text (origin length as u16, origin, text); 0, its TOML document removed (origin length,
//! origin); 2, a change to the registry of endpoints registered through the API (JSON); 3, an
//! edit of a zone's document (origin length, origin, the edit as JSON: see `change`); 4, the
//! entity tag a compacted zone keeps (origin length, origin, its file's digest, its tag).
//! 5, the sequence number the next change takes (u64), at the head of a journal written anew.
//! A change's kind byte has its high bit set and is followed by the change's sequence number
//! (u64, big-endian), one more than the change before it: a change lost to damage shows as a
//! gap. (Records without one, from before sequence numbers, are read as they were.)

use std::collections::HashMap;

use super::change::ZoneEdit;
use super::registry::{Change, Registry};
use crate::zone::Name;

/// One journal record.
#[derive(Debug, Clone)]
pub enum Record {
    /// A zone's new TOML text (`None`: its TOML document removed).
    Zone(Name, Option<String>),
    Registry(Change),
    Edit(Name, Box<ZoneEdit>),
    /// A compacted zone's tag, while its file's digest is the one given.
    Tag(Name, Kept),
    /// The sequence number of the next change: a change lost at the head of the journal shows
    /// as a gap too.
    Next(u64),
}

/// A compacted zone's file digest and the tag it keeps while its file has that digest.
pub type Kept = ([u8; 32], [u8; 32]);

/// The zone and its body, after the kind byte.
fn with_origin(payload: &mut Vec<u8>, origin: &Name, body: &[u8]) {
    let origin = origin.to_ascii();
    payload.extend_from_slice(&(origin.len() as u16).to_be_bytes());
    payload.extend_from_slice(origin.as_bytes());
    payload.extend_from_slice(body);
}

/// [`with_origin`] read back.
fn origin_and_body(rest: &[u8]) -> Option<(Name, &[u8])> {
    let origin_len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let origin = std::str::from_utf8(rest.get(2..2 + origin_len)?).ok()?;
    Some((Name::from_ascii(origin).ok()?, rest.get(2 + origin_len..)?))
}

/// The kind bit of a record that carries a sequence number.
const NUMBERED: u8 = 0x80;

/// A record's bytes; a change carries its sequence number `seq`.
pub fn encode(record: &Record, seq: Option<u64>) -> Vec<u8> {
    let mut payload = Vec::new();
    match record {
        Record::Zone(origin, text) => {
            payload.push(u8::from(text.is_some()));
            let text = text.as_deref().unwrap_or_default();
            with_origin(&mut payload, origin, text.as_bytes());
        }
        Record::Tag(origin, (file, tag)) => {
            payload.push(4);
            with_origin(&mut payload, origin, &[&file[..], &tag[..]].concat());
        }
        Record::Edit(origin, edit) => {
            payload.push(3);
            let json = serde_json::to_vec(edit).expect("an edit serializes");
            with_origin(&mut payload, origin, &json);
        }
        Record::Registry(change) => {
            payload.push(2);
            payload.extend(serde_json::to_vec(change).expect("a registry change serializes"));
        }
        Record::Next(seq) => {
            payload.push(5);
            payload.extend(seq.to_be_bytes());
        }
    }
    if let Some(seq) = seq {
        payload[0] |= NUMBERED;
        payload.splice(1..1, seq.to_be_bytes());
    }
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crate::digest::sha256(&[&payload])[..8]);
    out.extend_from_slice(&payload);
    out
}

/// The record at the start of `bytes`, its sequence number if it has one, and its length, if
/// it is whole and sound.
pub fn decode(bytes: &[u8]) -> Option<(Record, Option<u64>, usize)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = bytes.get(4..12)?;
    let payload = bytes.get(12..12 + len)?;
    if crate::digest::sha256(&[payload])[..8] != *sum {
        return None;
    }
    let (&kind, mut rest) = payload.split_first()?;
    let seq = match kind & NUMBERED {
        0 => None,
        _ => {
            let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            rest = &rest[8..];
            Some(seq)
        }
    };
    let kind = kind & !NUMBERED;
    let record = match kind {
        0 | 1 => {
            let (origin, text) = origin_and_body(rest)?;
            let text = std::str::from_utf8(text).ok()?;
            Record::Zone(origin, (kind == 1).then(|| text.to_owned()))
        }
        2 => Record::Registry(serde_json::from_slice(rest).ok()?),
        3 => {
            let (origin, json) = origin_and_body(rest)?;
            Record::Edit(origin, serde_json::from_slice(json).ok()?)
        }
        4 => {
            let (origin, body) = origin_and_body(rest)?;
            let file = body.get(..32)?.try_into().ok()?;
            let tag = body.get(32..64)?.try_into().ok()?;
            Record::Tag(origin, (file, tag))
        }
        5 => Record::Next(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)),
        _ => return None,
    };
    Some((record, seq, 12 + len))
}

/// The checksum a record's bytes carry (what a zone's tag is chained with).
pub fn sum(bytes: &[u8]) -> [u8; 8] {
    bytes[4..12].try_into().expect("a record has a checksum")
}

/// A zone's changes in the journal: its latest whole text, if one was written (`None` inside:
/// its document removed; `None`: its file's), the edits since, and the checksums of the
/// records since the whole text (or the file).
#[derive(Debug, Default)]
pub struct Changes {
    pub text: Option<Option<String>>,
    pub edits: Vec<ZoneEdit>,
    pub sums: Vec<[u8; 8]>,
}

/// What a journal's bytes hold, applied over a registry loaded from its file.
pub struct Replayed {
    /// The changes of each zone.
    pub zones: HashMap<Name, Changes>,
    /// The tags compacted zones keep.
    pub kept: HashMap<Name, Kept>,
    /// Whether any record changed the registry.
    pub registry_changed: bool,
    pub registry: Registry,
    /// Where the last whole, sound record ends (the rest is a torn or corrupt tail).
    pub good: usize,
    /// Damaged byte ranges with sound records after them: skipped, the records after applied.
    pub skipped: Vec<std::ops::Range<usize>>,
    /// The sequence numbers missing between sound changes: changes lost to damage.
    pub lost: Vec<std::ops::RangeInclusive<u64>>,
    /// The last change's sequence number, if it has one.
    pub last_seq: Option<u64>,
    /// How many sound records were read.
    pub records: usize,
}

/// One sound record of a journal's bytes.
pub struct Scanned {
    pub record: Record,
    pub seq: Option<u64>,
    /// Its checksum (what a zone's tag is chained with).
    pub sum: [u8; 8],
}

/// A journal's bytes read record by record.
pub struct Scan {
    pub records: Vec<Scanned>,
    /// Where the last whole, sound record ends (the rest is a torn or corrupt tail).
    pub good: usize,
    /// Damaged byte ranges with sound records after them.
    pub skipped: Vec<std::ops::Range<usize>>,
    /// The sequence numbers missing between sound changes: changes lost to damage.
    pub lost: Vec<std::ops::RangeInclusive<u64>>,
    /// The last change's sequence number, if it has one.
    pub last_seq: Option<u64>,
}

/// Every sound record of `bytes`, in order: damage is skipped up to the next sound record
/// (each record's checksum makes a false start all but impossible).
pub fn scan(bytes: &[u8]) -> Scan {
    let (mut at, mut good) = (0, 0);
    let (mut records, mut skipped, mut lost) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_seq: Option<u64> = None;
    loop {
        let (record, seq, len) = match decode(&bytes[at..]) {
            Some(found) => found,
            None => match (at + 1..bytes.len()).find(|&y| decode(&bytes[y..]).is_some()) {
                Some(next) if at < bytes.len() => {
                    skipped.push(at..next);
                    at = next;
                    continue;
                }
                _ => break,
            },
        };
        // A `Next` record stands for the change before the one it names.
        let seq = match record {
            Record::Next(next) => next.checked_sub(1),
            _ => seq,
        };
        if let Some(seq) = seq {
            if let Some(last) = last_seq
                && seq > last + 1
            {
                lost.push(last + 1..=seq - 1);
            }
            last_seq = Some(last_seq.map_or(seq, |last| last.max(seq)));
        }
        let sum = sum(&bytes[at..]);
        records.push(Scanned { record, seq, sum });
        at += len;
        good = at;
    }
    Scan {
        records,
        good,
        skipped,
        lost,
        last_seq,
    }
}

pub fn replay(bytes: &[u8], mut registry: Registry) -> Replayed {
    let mut zones: HashMap<Name, Changes> = HashMap::new();
    let mut kept = HashMap::new();
    let mut registry_changed = false;
    let scan = scan(bytes);
    let records = scan.records.len();
    for Scanned { record, sum, .. } in scan.records {
        match record {
            Record::Zone(origin, text) => {
                let changes = zones.entry(origin).or_default();
                *changes = Changes {
                    text: Some(text),
                    edits: Vec::new(),
                    sums: Vec::new(),
                };
            }
            Record::Edit(origin, edit) => {
                let changes = zones.entry(origin).or_default();
                changes.edits.push(*edit);
                changes.sums.push(sum);
            }
            Record::Registry(change) => {
                registry.apply(change);
                registry_changed = true;
            }
            Record::Tag(origin, tag) => {
                kept.insert(origin, tag);
            }
            Record::Next(_) => {}
        }
    }
    Replayed {
        zones,
        kept,
        registry_changed,
        registry,
        good: scan.good,
        skipped: scan.skipped,
        lost: scan.lost,
        last_seq: scan.last_seq,
        records,
    }
}
