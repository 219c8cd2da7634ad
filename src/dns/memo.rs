//! A UDP worker's memo of encoded replies. While a zone and its health stay the same (across
//! snapshots: a change to another zone keeps them), an answer whose policy order is
//! fixed (see `resolve::Found::memo_key` and `policy::Decision`: static records, `all` and `failover` pools,
//! `geo` pools whose datacenters order their endpoints the same way every time) is a pure
//! function of (node, type, decision): the reply is encoded once and later replies copy it,
//! patching the ID, RD and CD, the question as sent (letter case) and the OPT record with the
//! client's ECS scope. Rotating, weighted and random pools are never memoized: their next
//! answer differs. A signed reply (DO to a signed zone) is memoized like the others until its
//! first signature is due to be remade.

use hickory_proto::op::ResponseCode;
use rustc_hash::FxHashMap;

use super::wire;
use crate::policy::{Decided, Rotation};
use crate::zone::Node;

/// Entries kept before the memo starts afresh: bounds memory whatever the query mix.
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct Memo {
    entries: FxHashMap<Key, Entry>,
    /// Replies answered from the memo so far.
    pub hits: u64,
}

/// What a memoized reply answers.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The node's address: unique within the snapshot the memo is for.
    node: usize,
    qtype: u16,
    decided: Decided,
    /// With its signatures (DO to a signed zone).
    signed: bool,
}

impl Key {
    pub fn new(node: &Node, qtype: u16, decided: Decided, signed: bool) -> Self {
        Self {
            node: std::ptr::from_ref(node) as usize,
            qtype,
            decided,
            signed,
        }
    }
}

/// One encoded reply: its header as the first asker got it and everything between the
/// question and the OPT record.
#[derive(Debug)]
pub struct Entry {
    /// The zone's version and health view's version it was encoded from: a change elsewhere
    /// keeps it, a change to the zone or its health does not.
    stamp: Stamp,
    /// Until when it may be copied (Unix seconds): a signed reply's signatures are remade.
    fresh_until: u32,
    /// A rotating answer's records: each copy rotates them (see `Rotating`).
    rotating: Option<Rotating>,
    header: [u8; 12],
    body: Box<[u8]>,
    pub rcode: ResponseCode,
    /// The datacenter that answered, where a pool did (for the metrics).
    pub datacenter: Option<usize>,
}

/// The body of a rotating answer starts with its `n` rotated records, `record_len` bytes each
/// (one owner, one type: they differ only in address), as encoded starting at `start`.
#[derive(Debug, Clone, Copy)]
struct Rotating {
    n: usize,
    start: usize,
    record_len: usize,
}

/// A zone's version and its health view's version (see `Entry::stamp`).
pub type Stamp = (u64, u64);

impl Memo {
    /// The reply memoized for `key` of the zone and health `stamp`, still fresh at `now`.
    pub fn get(&mut self, stamp: Stamp, key: &Key, now: u32) -> Option<&Entry> {
        // A node's address may be reused by a later zone's: the stamp tells them apart.
        let found = self
            .entries
            .get(key)
            .filter(|e| e.stamp == stamp && now < e.fresh_until);
        self.hits += u64::from(found.is_some());
        found
    }

    /// Keeps `encoded` for `key`.
    pub fn put(&mut self, stamp: Stamp, key: Key, encoded: Encoded<'_>) {
        let Encoded {
            reply,
            question_end,
            opt_at,
            rcode,
            datacenter,
            fresh_until,
            rotation,
        } = encoded;
        let body = &reply[question_end..opt_at];
        let rotating = match rotation {
            Some((n, start)) => match equal_records(body, n) {
                Some(record_len) => Some(Rotating {
                    n,
                    start,
                    record_len,
                }),
                None => return,
            },
            None => None,
        };
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        let mut header: [u8; 12] = reply[..12].try_into().expect("a reply has a header");
        if opt_at < reply.len() {
            // The OPT record is written per reply: count it out.
            let additionals = u16::from_be_bytes([header[10], header[11]]) - 1;
            header[10..12].copy_from_slice(&additionals.to_be_bytes());
        }
        let entry = Entry {
            stamp,
            fresh_until,
            rotating,
            header,
            body: body.into(),
            rcode,
            datacenter,
        };
        self.entries.insert(key, entry);
    }
}

/// A reply as the encoder wrote it.
#[derive(Debug)]
pub struct Encoded<'a> {
    /// The whole reply.
    pub reply: &'a [u8],
    /// Where its question ends.
    pub question_end: usize,
    /// Where its OPT record starts (its end when it has none).
    pub opt_at: usize,
    pub rcode: ResponseCode,
    /// The datacenter that answered, where a pool did (for the metrics).
    pub datacenter: Option<usize>,
    /// Until when it may be copied (`u32::MAX`: while the stamp holds).
    pub fresh_until: u32,
    /// A rotation's answer: (n, where it started) — its first `n` answer records rotate.
    pub rotation: Option<(usize, usize)>,
}

/// The length of each of the first `n` records of `body` (the answer section's start), where
/// they are all the same length.
fn equal_records(body: &[u8], n: usize) -> Option<usize> {
    let mut at = 0;
    let mut len = None;
    for _ in 0..n {
        let mut end = at;
        // The owner: a pointer, or labels ending in one or in the root.
        loop {
            let byte = *body.get(end)?;
            match byte {
                0 => break end += 1,
                b if b & 0xc0 == 0xc0 => break end += 2,
                b => end += 1 + usize::from(b),
            }
        }
        let rdlength = u16::from_be_bytes([*body.get(end + 8)?, *body.get(end + 9)?]);
        end += 10 + usize::from(rdlength);
        if end > body.len() || len.is_some_and(|l| l != end - at) {
            return None;
        }
        len = Some(end - at);
        at = end;
    }
    len
}

impl Entry {
    /// Whether it is a rotating answer's (its copies need the pool's rotation).
    pub fn rotates(&self) -> bool {
        self.rotating.is_some()
    }

    /// Writes the reply to `query` (question ending at `question_end`) into `out`; a rotating
    /// answer's starting where `rotation` is now. False (nothing written) for a rotating
    /// answer without its rotation.
    pub fn write(
        &self,
        query: &[u8],
        question_end: usize,
        opt: Option<&wire::Opt<'_>>,
        rotation: Option<&Rotation<'_>>,
        out: &mut Vec<u8>,
    ) -> bool {
        let rotate_by = match (self.rotating, rotation) {
            (None, _) => None,
            (Some(r), Some(now)) if now.n == r.n => {
                Some((now.next_start() + r.n - r.start) % r.n * r.record_len)
            }
            (Some(_), _) => return false,
        };
        out.clear();
        out.extend_from_slice(&self.header);
        // The asker's ID, and RD and CD copied from the request (RFC 1035 §4.1.1, RFC 4035
        // §3.1.6); the rest of the flags are the answer's.
        out[..2].copy_from_slice(&query[..2]);
        out[2] = (self.header[2] & !0x01) | (query[2] & 0x01);
        out[3] = (self.header[3] & !0x10) | (query[3] & 0x10);
        if opt.is_some() {
            let additionals = u16::from_be_bytes([out[10], out[11]]) + 1;
            out[10..12].copy_from_slice(&additionals.to_be_bytes());
        }
        out.extend_from_slice(&query[12..question_end]);
        match (rotate_by, self.rotating) {
            (Some(shift), Some(r)) => {
                let records = &self.body[..r.n * r.record_len];
                out.extend_from_slice(&records[shift..]);
                out.extend_from_slice(&records[..shift]);
                out.extend_from_slice(&self.body[records.len()..]);
            }
            _ => out.extend_from_slice(&self.body),
        }
        if let Some(opt) = opt {
            wire::emit_opt(out, opt, self.rcode);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
    use crate::fixture;
    use crate::snapshot::Snapshot;

    /// The reply to `query` as a UDP worker with `memo` makes it at `now`.
    fn answer(snapshot: &Snapshot, query: &[u8], memo: &mut Memo, now: u32) -> Vec<u8> {
        let mut with = Responder {
            rng: &mut fastrand::Rng::with_seed(1),
            memo: Some(memo),
            settings: &Settings::new(1232),
            now,
            reference: false,
        };
        let incoming = Incoming {
            query,
            source: "127.0.0.1".parse().unwrap(),
            transport: Transport::Udp,
        };
        let (outcome, mut out) = (&mut Outcome::default(), Vec::new());
        respond_into(snapshot, incoming, &mut with, outcome, &mut out);
        out
    }

    #[test]
    fn a_change_to_one_zone_keeps_the_answers_memoized_for_the_others() {
        let zone = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\
                    [[records]]\nname = \"www\"\ntype = \"A\"\ndata = [\"192.0.2.1\"]\n";
        let before = fixture::snapshot(&[("a.test.", zone), ("b.test.", zone)], fixture::Geo::None);
        // b.test. rebuilt (a new version), a.test. shared as it was.
        let b = crate::zone::Name::from_ascii("b.test.").unwrap();
        let rebuilt = fixture::zone("b.test.", zone);
        let after = Snapshot {
            generation: before.generation + 1,
            zones: std::sync::Arc::new(before.zones.with_zone(&b, Some(rebuilt))),
            geo: None,
            health: before.health.clone(),
        };
        let mut memo = Memo::default();
        let mut ask = |snapshot: &Snapshot, zone: &[u8]| {
            let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(b"\x03www");
            q.extend_from_slice(zone);
            q.extend_from_slice(b"\x00\x01\x00\x01");
            answer(snapshot, &q, &mut memo, 1_800_000_000);
            memo.hits
        };
        let (a, b) = (b"\x01a\x04test\x00", b"\x01b\x04test\x00");
        ask(&before, a);
        ask(&before, b);
        assert_eq!(ask(&before, a), 1);
        assert_eq!(ask(&after, a), 2, "a.test. did not change: still memoized");
        assert_eq!(ask(&after, b), 2, "b.test. changed: encoded again");
        assert_eq!(ask(&after, b), 3);
    }

    #[test]
    fn a_signed_reply_is_memoized_until_its_signatures_are_remade() {
        use crate::dnssec::{FLAGS_CSK, Role, SigningKey, Timing, ZoneSigner};
        let zone = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\
                    [[records]]\nname = \"www\"\ntype = \"A\"\ndata = [\"192.0.2.1\"]\n";
        let unsigned = fixture::snapshot(&[("a.test.", zone)], fixture::Geo::None);
        let mut signed = fixture::zone("a.test.", zone);
        let der = SigningKey::generate(crate::dnssec::Algorithm::Ed25519).unwrap();
        let key = SigningKey::from_pkcs8(&der, FLAGS_CSK).unwrap();
        let signer = ZoneSigner::new(vec![(key, Role::Combined)], Timing::default());
        signed.signer = Some(std::sync::Arc::new(signer));
        let a = crate::zone::Name::from_ascii("a.test.").unwrap();
        let snapshot = Snapshot {
            generation: 2,
            zones: std::sync::Arc::new(unsigned.zones.with_zone(&a, Some(signed))),
            geo: None,
            health: unsigned.health.clone(),
        };
        let mut memo = Memo::default();
        let mut ask = |id: u8, dnssec_ok: bool, now: u32| {
            let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
            q.extend_from_slice(b"\x03www\x01a\x04test\x00\x00\x01\x00\x01");
            let flags = if dnssec_ok { 0x80 } else { 0 };
            q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, flags, 0, 0, 0]);
            let out = answer(&snapshot, &q, &mut memo, now);
            (memo.hits, out)
        };
        let now = 1_800_000_000;
        let (_, first) = ask(1, true, now);
        let rrsig = |reply: &[u8]| {
            let message = hickory_proto::op::Message::from_vec(reply).unwrap();
            let rrsigs: Vec<String> = message
                .answers
                .iter()
                .filter(|r| r.record_type() == hickory_proto::rr::RecordType::RRSIG)
                .map(|r| format!("{:?}", r.data))
                .collect();
            assert_eq!(rrsigs.len(), 1, "{message:?}");
            rrsigs[0].clone()
        };
        let (hits, again) = ask(2, true, now + 1);
        assert_eq!(hits, 1, "the signed reply came from the memo");
        assert_eq!(
            (again[1], &again[2..]),
            (2, &first[2..]),
            "the same reply, our ID"
        );
        // Without DO: the unsigned reply, memoized apart.
        let (hits, plain) = ask(3, false, now);
        assert_eq!(hits, 1);
        assert!(plain.len() < first.len());
        // An hour on the signatures are remade: the memoized reply is not copied.
        let (hits, later) = ask(4, true, now + crate::dnssec::REFRESH);
        assert_eq!(hits, 1);
        assert_ne!(rrsig(&later), rrsig(&first));
    }

    /// A rotating answer copied from the memo is, byte for byte, the one a fresh encoding
    /// gives at the same point of the rotation: flat round-robin pools (A, AAAA), a geo pool
    /// whose datacenters rotate, and the same signed (DO).
    #[test]
    fn a_rotating_answer_from_the_memo_is_the_fresh_one() {
        use crate::dnssec::{Algorithm, FLAGS_CSK, Role, SigningKey, Timing, ZoneSigner};
        let zone = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\
                    [pools.rr]\nendpoints = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\", \
                    \"192.0.2.4\", \"2001:db8::1\", \"2001:db8::2\", \"2001:db8::3\"]\n\
                    [pools.geo]\npolicy = \"geo\"\n\
                    [[pools.geo.datacenters]]\nname = \"eu\"\nlatitude = 50.1\nlongitude = 8.7\n\
                    policy = \"round_robin\"\nendpoints = [\"198.51.100.1\", \"198.51.100.2\", \"198.51.100.3\"]\n\
                    [[pools.geo.datacenters]]\nname = \"us\"\nlatitude = 40.7\nlongitude = -74.0\n\
                    policy = \"round_robin\"\nendpoints = [\"203.0.113.1\", \"203.0.113.2\"]\n";
        let der = SigningKey::generate(Algorithm::Ed25519).unwrap();
        // Two snapshots of the same zones: each rotates on its own.
        let make = |signed: bool| {
            let plain = fixture::snapshot(&[("a.test.", zone)], fixture::Geo::None);
            if !signed {
                return plain;
            }
            let mut zone = fixture::zone("a.test.", zone);
            let key = SigningKey::from_pkcs8(&der, FLAGS_CSK).unwrap();
            let signer = ZoneSigner::new(vec![(key, Role::Combined)], Timing::default());
            zone.signer = Some(std::sync::Arc::new(signer));
            let origin = crate::zone::Name::from_ascii("a.test.").unwrap();
            Snapshot {
                generation: 2,
                zones: std::sync::Arc::new(plain.zones.with_zone(&origin, Some(zone))),
                geo: None,
                health: plain.health.clone(),
            }
        };
        for signed in [false, true] {
            let (memoized, fresh) = (make(signed), make(signed));
            let mut memo = Memo::default();
            for (name, qtype) in [(&b"\x02rr"[..], 1u8), (b"\x02rr", 28), (b"\x03geo", 1)] {
                let mut firsts = std::collections::HashSet::new();
                for id in 0..9u8 {
                    let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
                    q.extend_from_slice(name);
                    q.extend_from_slice(b"\x01a\x04test\x00\x00");
                    q.extend_from_slice(&[qtype, 0, 1]);
                    let flags = if signed { 0x80 } else { 0 };
                    q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, flags, 0, 0, 0]);
                    let now = 1_800_000_000;
                    let copied = answer(&memoized, &q, &mut memo, now);
                    let made = answer(&fresh, &q, &mut Memo::default(), now);
                    assert_eq!(copied, made, "{name:?} {qtype} #{id} signed {signed}");
                    firsts.insert(copied[q.len() - 11..].to_vec());
                }
                assert!(firsts.len() > 1, "the answers rotate");
            }
            assert_eq!(memo.hits, 3 * 8, "signed {signed}");
        }
    }
}
