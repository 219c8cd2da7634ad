//! A signed zone's signer: RRSIGs over canonical RRsets (RFC 4034 §3.1.8.1, §6.3) and the
//! NSEC of compact denial (RFC 9824). Signatures are remade every hour (`REFRESH`), each
//! RRset at its own minute of the hour (a jitter from its owner and type) so that a large zone
//! is never re-signed all at once; between two refreshes an RRset answered again — a rotated
//! order of the same addresses is the same canonical RRset — reuses its signature from the
//! cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hickory_proto::rr::Name;

use super::{ZoneKeys, canonical_name, key_tag};

/// Signatures kept at most.
const CACHE: usize = 100_000;
/// How often an RRset's signatures are remade: a served signature is never more than this
/// much older than the newest.
pub const REFRESH: u32 = 3600;

/// RRSIG, NSEC.
pub const RRSIG: u16 = 46;
pub const NSEC: u16 = 47;
/// RFC 9824's NXNAME: the name does not exist (compact denial).
pub const NXNAME: u16 = 128;

/// When signatures are valid: from `inception_back` seconds before they are made (clocks
/// behind ours) for `validity` seconds after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub validity: u32,
    pub inception_back: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            validity: 7 * 24 * 3600,
            inception_back: 3600,
        }
    }
}

/// A signed zone's keys and the signatures made so far.
#[derive(Debug)]
pub struct ZoneSigner {
    keys: ZoneKeys,
    /// Each key's tag, computed once.
    tags: Vec<u16>,
    timing: Timing,
    /// sha256(signed data) → signature; cleared when it grows past `CACHE`.
    cache: Mutex<HashMap<[u8; 32], Vec<u8>>>,
    /// Signatures made, and reused from the cache (for the metrics: the hit rate).
    pub made: AtomicU64,
    pub reused: AtomicU64,
}

/// The RRSIG record data over one RRset, and until when they are the current ones: a reply
/// that carries them may be reused until then.
#[derive(Debug, Default)]
pub struct Rrsigs {
    pub records: Vec<Vec<u8>>,
    pub fresh_until: u32,
}

impl ZoneSigner {
    pub fn new(keys: ZoneKeys, timing: Timing) -> Self {
        let tags = keys.iter().map(|(k, _)| key_tag(&k.dnskey())).collect();
        Self {
            keys,
            tags,
            timing,
            cache: Mutex::default(),
            made: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// The RRSIGs over `rrset` (record data in canonical form, each with `rtype`, class IN)
    /// owned by `owner` (the name it was signed as: a wildcard's for a synthesized answer),
    /// with `ttl`, by each key whose role signs `rtype`, signed as zone `signer` at `now` (Unix
    /// seconds).
    pub fn rrsigs(
        &self,
        owner: &Name,
        rtype: u16,
        ttl: u32,
        rrset: &mut [Vec<u8>],
        signer: &Name,
        now: u32,
    ) -> Rrsigs {
        rrset.sort();
        let owner_wire = canonical_name(owner);
        let made_at = refreshed_at(&owner_wire, rtype, now);
        let inception = made_at.saturating_sub(self.timing.inception_back);
        let expiration = made_at.saturating_add(self.timing.validity);
        let labels = owner.iter().filter(|l| *l != b"*").count() as u8;
        let mut out = Rrsigs {
            records: Vec::new(),
            fresh_until: made_at.saturating_add(REFRESH),
        };
        let signing = self.keys.iter().zip(&self.tags);
        for ((key, _), tag) in signing.filter(|((_, role), _)| role.signs(rtype)) {
            let mut rdata = rtype.to_be_bytes().to_vec();
            rdata.push(key.algorithm.number());
            rdata.push(labels);
            rdata.extend_from_slice(&ttl.to_be_bytes());
            rdata.extend_from_slice(&expiration.to_be_bytes());
            rdata.extend_from_slice(&inception.to_be_bytes());
            rdata.extend_from_slice(&tag.to_be_bytes());
            rdata.extend(canonical_name(signer));
            let mut signed = rdata.clone();
            let mut previous: Option<&Vec<u8>> = None;
            for rr in rrset.iter() {
                // Duplicates are one record (RFC 4034 §6.3).
                if previous == Some(rr) {
                    continue;
                }
                previous = Some(rr);
                signed.extend_from_slice(&owner_wire);
                signed.extend_from_slice(&rtype.to_be_bytes());
                signed.extend_from_slice(&1u16.to_be_bytes());
                signed.extend_from_slice(&ttl.to_be_bytes());
                signed.extend_from_slice(&(rr.len() as u16).to_be_bytes());
                signed.extend_from_slice(rr);
            }
            let Some(signature) = self.signature(key, &signed) else {
                continue;
            };
            rdata.extend(signature);
            out.records.push(rdata);
        }
        out
    }

    /// The signature over `signed` by `key`: from the cache, or made and kept.
    fn signature(&self, key: &super::SigningKey, signed: &[u8]) -> Option<Vec<u8>> {
        let digest = crate::digest::sha256(&[signed]);
        if let Some(cached) = self.cache.lock().ok()?.get(&digest) {
            self.reused.fetch_add(1, Relaxed);
            return Some(cached.clone());
        }
        let signature = key.sign(signed).ok()?;
        self.made.fetch_add(1, Relaxed);
        let mut cache = self.cache.lock().ok()?;
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(digest, signature.clone());
        Some(signature)
    }
}

/// When the signatures of the RRset (`owner`, `rtype`) current at `now` were made: the last
/// hourly refresh at its own offset into the hour, so that RRsets are refreshed spread over
/// the hour rather than all at its start.
fn refreshed_at(owner: &[u8], rtype: u16, now: u32) -> u32 {
    // FNV-1a: stable across runs and servers, so a set of servers refreshes alike.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in owner.iter().chain(&rtype.to_be_bytes()) {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    let offset = hash % REFRESH;
    let since = (u64::from(now) + u64::from(offset)) % u64::from(REFRESH);
    now - since as u32
}

/// NSEC record data for compact denial (RFC 9824): the next name is `\000.owner`, the types
/// those given (with RRSIG and NSEC).
pub fn compact_nsec(owner: &Name, types: &[u16]) -> Vec<u8> {
    let mut rdata = vec![1, 0];
    rdata.extend(canonical_name(owner));
    let mut all: Vec<u16> = types.to_vec();
    all.extend([RRSIG, NSEC]);
    all.sort_unstable();
    all.dedup();
    rdata.extend(type_bitmap(&all));
    rdata
}

/// The type bitmap of NSEC (RFC 4034 §4.1.2), as the presentation reader writes it.
fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::presentation::type_bitmap(&mut out, types.to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rrset_is_refreshed_hourly_at_its_own_offset() {
        let now = 1_800_000_000;
        let a = refreshed_at(b"\x03www\x04test\x00", 1, now);
        assert!(a <= now && now - a < REFRESH);
        // Within its hour the refresh time stands still; an hour on, it moves by an hour.
        assert_eq!(refreshed_at(b"\x03www\x04test\x00", 1, a + REFRESH - 1), a);
        assert_eq!(
            refreshed_at(b"\x03www\x04test\x00", 1, a + REFRESH),
            a + REFRESH
        );
        // Other RRsets at other minutes: not all at once.
        let offsets: std::collections::HashSet<u32> = (0..50u8)
            .map(|i| refreshed_at(&[1, i, 0], 1, now))
            .collect();
        assert!(offsets.len() > 40, "{offsets:?}");
    }

    #[test]
    fn the_type_bitmap_is_rfc_4034s() {
        // RFC 4034 §4.3's example: A MX RRSIG NSEC TYPE1234.
        let bitmap = type_bitmap(&[1, 15, 46, 47, 1234]);
        let mut expected = vec![0, 6, 0x40, 0x01, 0, 0, 0, 0x03, 4, 27];
        expected.extend([0; 26]);
        expected.push(0x20);
        assert_eq!(bitmap, expected);
    }
}
