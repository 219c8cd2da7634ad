//! A UDP worker's memo of encoded replies. While a zone and its health stay the same (across
//! snapshots: a change to another zone keeps them), an answer whose policy order is
//! fixed (see `resolve::Found::memo_key` and `policy::Decision`: static records, `all` and `failover` pools,
//! `geo` pools whose datacenters order their endpoints the same way every time) is a pure
//! function of (node, type, decision): the reply is encoded once and later replies copy it,
//! patching the ID, RD and CD, the question as sent (letter case) and the OPT record with the
//! client's ECS scope. Rotating, weighted and random pools are never memoized: their next
//! answer differs.

use hickory_proto::op::ResponseCode;
use rustc_hash::FxHashMap;

use super::wire;
use crate::policy::Decided;
use crate::zone::Node;

/// Entries kept before the memo starts afresh: bounds memory whatever the query mix.
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct Memo {
    entries: FxHashMap<Key, Entry>,
    /// Replies answered from the memo so far.
    pub hits: u64,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    /// The node's address: unique within the snapshot the memo is for.
    node: usize,
    qtype: u16,
    decided: Decided,
}

/// One encoded reply: its header as the first asker got it and everything between the
/// question and the OPT record.
#[derive(Debug)]
pub struct Entry {
    /// The zone's version and health view's version it was encoded from: a change elsewhere
    /// keeps it, a change to the zone or its health does not.
    stamp: Stamp,
    header: [u8; 12],
    body: Box<[u8]>,
    pub rcode: ResponseCode,
    /// The datacenter that answered, where a pool did (for the metrics).
    pub datacenter: Option<usize>,
}

/// A zone's version and its health view's version (see `Entry::stamp`).
pub type Stamp = (u64, u64);

impl Memo {
    /// The reply memoized for (`node`, `qtype`, `decided`) of the zone and health `stamp`.
    pub fn get(
        &mut self,
        stamp: Stamp,
        node: &Node,
        qtype: u16,
        decided: &Decided,
    ) -> Option<&Entry> {
        let key = Key {
            node: std::ptr::from_ref(node) as usize,
            qtype,
            decided: decided.clone(),
        };
        // A node's address may be reused by a later zone's: the stamp tells them apart.
        let found = self.entries.get(&key).filter(|e| e.stamp == stamp);
        self.hits += u64::from(found.is_some());
        found
    }

    /// Keeps `encoded` for (`node`, `qtype`, `decided`).
    pub fn put(
        &mut self,
        stamp: Stamp,
        node: &Node,
        qtype: u16,
        decided: Decided,
        encoded: Encoded<'_>,
    ) {
        let Encoded {
            reply,
            question_end,
            opt_at,
            rcode,
            datacenter,
        } = encoded;
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        let mut header: [u8; 12] = reply[..12].try_into().expect("a reply has a header");
        if opt_at < reply.len() {
            // The OPT record is written per reply: count it out.
            let additionals = u16::from_be_bytes([header[10], header[11]]) - 1;
            header[10..12].copy_from_slice(&additionals.to_be_bytes());
        }
        let key = Key {
            node: std::ptr::from_ref(node) as usize,
            qtype,
            decided,
        };
        let entry = Entry {
            stamp,
            header,
            body: reply[question_end..opt_at].into(),
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
}

impl Entry {
    /// Writes the reply to `query` (question ending at `question_end`) into `out`.
    pub fn write(
        &self,
        query: &[u8],
        question_end: usize,
        opt: Option<&wire::Opt<'_>>,
        out: &mut Vec<u8>,
    ) {
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
        out.extend_from_slice(&self.body);
        if let Some(opt) = opt {
            wire::emit_opt(out, opt, self.rcode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::respond::{Incoming, Outcome, Responder, Settings, Transport, respond_into};
    use crate::fixture;
    use crate::snapshot::Snapshot;

    #[test]
    fn a_change_to_one_zone_keeps_the_answers_memoized_for_the_others() {
        let zone = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\
                    [[records]]\nname = \"www\"\ntype = \"A\"\ndata = [\"192.0.2.1\"]\n";
        let before = fixture::snapshot(&[("a.test.", zone), ("b.test.", zone)], fixture::Geo::None);
        // b.test. rebuilt (a new version), a.test. shared as it was.
        let b = crate::zone::Name::from_ascii("b.test.").unwrap();
        let rebuilt = fixture::zone_set(&[("b.test.", zone)]).shared()[0].clone();
        let after = Snapshot {
            generation: before.generation + 1,
            zones: std::sync::Arc::new(
                before
                    .zones
                    .with_zone(&b, std::sync::Arc::into_inner(rebuilt)),
            ),
            geo: None,
            health: before.health.clone(),
        };
        let mut memo = Memo::default();
        let mut ask = |snapshot: &Snapshot, zone: &[u8]| {
            let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(b"\x03www");
            q.extend_from_slice(zone);
            q.extend_from_slice(b"\x00\x01\x00\x01");
            let mut with = Responder {
                rng: &mut fastrand::Rng::with_seed(1),
                memo: Some(&mut memo),
                settings: &Settings::new(1232),
                now: 1_800_000_000,
                reference: false,
            };
            let incoming = Incoming {
                query: &q,
                source: "127.0.0.1".parse().unwrap(),
                transport: Transport::Udp,
            };
            let mut out = Vec::new();
            respond_into(
                snapshot,
                incoming,
                &mut with,
                &mut Outcome::default(),
                &mut out,
            );
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
}
