//! The messages that manage zones rather than ask about them — RFC 2136 UPDATE, RFC 1996
//! NOTIFY, zone transfers (AXFR/IXFR, TCP only) — and every query signed with TSIG. Each is
//! checked for its TSIG signature (RFC 8945) first and its reply signed with the same key; a
//! signed query is answered by the query path from its unsigned form, then signed (§5.3). Off
//! the query path: the listeners hand such a message here and send what comes back (several
//! messages for a transfer).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use super::transfer::{self, reply};
use super::tsig::{self, Verdict};
use super::update;
use crate::config::{TransferConfig, TsigOperation};
use crate::control::Control;

/// Answers UPDATE, NOTIFY and transfers.
#[derive(Debug)]
pub struct Manager {
    control: Arc<Control>,
    keys: Vec<tsig::Key>,
    transfer: TransferConfig,
    /// Our EDNS payload size: the most a signed answer over UDP takes, its TSIG record included.
    udp_payload: u16,
    /// The zones' recent changes, for IXFR (kept up by `notify::run_watch`).
    pub history: Arc<super::history::History>,
}

/// Whether `message` is for the [`Manager`]: an UPDATE or NOTIFY request, or over TCP a
/// transfer (AXFR/IXFR). A quick look at the header and the question's type. (A query signed
/// with TSIG comes here too, found by the query path: `Outcome::signed`.)
pub fn wants(message: &[u8], tcp: bool) -> bool {
    let Some(&flags) = message.get(2) else {
        return false;
    };
    if flags & 0x80 != 0 {
        return false;
    }
    match (flags >> 3) & 0x0f {
        4 | 5 => true,
        0 if tcp => matches!(question_type(message), Some(251 | 252)),
        _ => false,
    }
}

/// The type of the message's first question.
fn question_type(message: &[u8]) -> Option<u16> {
    let mut at = 12;
    loop {
        let len = *message.get(at)?;
        match len {
            0 => break,
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    let t = message.get(at + 1..at + 3)?;
    Some(u16::from_be_bytes([t[0], t[1]]))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Manager {
    pub fn new(
        control: Arc<Control>,
        keys: &[crate::config::TsigConfig],
        transfer: TransferConfig,
        udp_payload: u16,
    ) -> Self {
        Self {
            control,
            udp_payload,
            keys: keys.iter().map(tsig::Key::new).collect(),
            transfer,
            history: Arc::default(),
        }
    }

    /// The replies to `query` from `peer` (none: nothing is sent). Blocks while an UPDATE is
    /// made durable: call it off the async threads.
    pub fn handle(&self, query: &[u8], peer: IpAddr, tcp: bool) -> Vec<Vec<u8>> {
        let now = unix_now();
        let Ok(request) = Message::from_vec(query) else {
            return formerr(query).into_iter().collect();
        };
        let mut signer = match tsig::verify(query, &self.keys, now) {
            Verdict::Unsigned => None,
            Verdict::Good(mut signer, record) if is_question(&request) => {
                return self.signed_query(query, &record, &mut signer, peer, tcp, now);
            }
            Verdict::Good(signer, _) => Some(signer),
            Verdict::Malformed => return encode(reply(&request, ResponseCode::FormErr)),
            Verdict::Bad {
                error,
                record,
                signer,
            } => {
                tracing::info!("TSIG {error} from {peer} with key {}", record.key_name);
                let mut out = encode(reply(&request, ResponseCode::NotAuth));
                for message in &mut out {
                    match &mut signer.clone() {
                        Some(signer) => signer.sign(message, now, error),
                        None => tsig::append_error(message, &record, error),
                    }
                }
                return out;
            }
        };
        let key = signer.as_ref().map(|s| s.key);
        let replies = match request.metadata.op_code {
            OpCode::Update => vec![self.update(&request, query, key, peer)],
            OpCode::Notify => vec![self.notify(&request, key)],
            OpCode::Query if tcp => self.transfer(&request, key, peer),
            _ => vec![reply(&request, ResponseCode::Refused)],
        };
        let mut out: Vec<Vec<u8>> = replies.into_iter().flat_map(encode).collect();
        if let Some(signer) = &mut signer {
            for message in &mut out {
                signer.sign(message, now, 0);
            }
        }
        out
    }

    /// A signed query (RFC 8945 §5.3): answered as the query path answers its unsigned form, over
    /// UDP within our payload size less the TSIG record, then signed.
    fn signed_query(
        &self,
        query: &[u8],
        record: &tsig::Record,
        signer: &mut tsig::Signer<'_>,
        peer: IpAddr,
        tcp: bool,
        now: u64,
    ) -> Vec<Vec<u8>> {
        let unsigned = tsig::without_tsig(query, record);
        let transport = match tcp {
            true => super::respond::Transport::Tcp,
            false => super::respond::Transport::Udp,
        };
        let room = self.udp_payload.saturating_sub(tsig::RECORD_ROOM).max(512);
        let snapshot = self.control.snapshot();
        let mut rng = fastrand::Rng::new();
        let reply = super::respond::respond(&snapshot, &unsigned, peer, transport, room, &mut rng);
        let Some(mut reply) = reply else {
            return Vec::new();
        };
        signer.sign(&mut reply, now, 0);
        vec![reply]
    }

    /// RFC 2136: only with a key that may update the zone.
    fn update(
        &self,
        request: &Message,
        raw: &[u8],
        key: Option<&tsig::Key>,
        peer: IpAddr,
    ) -> Message {
        let origin = match update::zone_of(request) {
            Ok(origin) => origin,
            Err(rcode) => return reply(request, rcode),
        };
        if self.control.snapshot().zones.get(&origin).is_none() {
            return reply(request, ResponseCode::NotAuth);
        }
        if !key.is_some_and(|k| k.allows(TsigOperation::Update, &origin)) {
            tracing::info!("UPDATE of {origin} from {peer} refused: no key that may update it");
            return reply(request, ResponseCode::Refused);
        }
        if self.control.store().read_only(&origin) {
            return reply(request, ResponseCode::Refused);
        }
        match update::apply(&self.control, &origin, request, raw) {
            Ok(()) => {
                tracing::info!(
                    "UPDATE of {origin} from {peer} with key {}",
                    key.map(|k| k.name.to_string()).unwrap_or_default()
                );
                reply(request, ResponseCode::NoError)
            }
            Err(rcode) => reply(request, rcode),
        }
    }

    /// RFC 1996 §3.10 on a primary: acknowledged for a key allowed to notify the zone, refused
    /// otherwise (we do not pull zones from anyone).
    fn notify(&self, request: &Message, key: Option<&tsig::Key>) -> Message {
        let Some(origin) = request.queries.first().map(|q| q.name().to_lowercase()) else {
            return reply(request, ResponseCode::FormErr);
        };
        if self.control.snapshot().zones.get(&origin).is_none() {
            return reply(request, ResponseCode::NotAuth);
        }
        match key.is_some_and(|k| k.allows(TsigOperation::Notify, &origin)) {
            true => reply(request, ResponseCode::NoError),
            false => reply(request, ResponseCode::Refused),
        }
    }

    /// AXFR/IXFR: to a key allowed to transfer the zone, or to an allowed address.
    fn transfer(&self, request: &Message, key: Option<&tsig::Key>, peer: IpAddr) -> Vec<Message> {
        let Some(query) = request.queries.first() else {
            return vec![reply(request, ResponseCode::FormErr)];
        };
        let origin = query.name().to_lowercase();
        let snapshot = self.control.snapshot();
        let Some(zone) = snapshot.zones.get(&origin).filter(|z| z.origin == origin) else {
            return vec![reply(request, ResponseCode::NotAuth)];
        };
        let by_key = key.is_some_and(|k| k.allows(TsigOperation::Transfer, &origin));
        let by_address = key.is_none() && self.transfer.allow.iter().any(|net| net.contains(&peer));
        if !(by_key || by_address) {
            tracing::info!("{} of {origin} from {peer} refused", query.query_type());
            return vec![reply(request, ResponseCode::Refused)];
        }
        tracing::info!(
            "{} of {origin} (serial {}) to {peer}",
            query.query_type(),
            zone.serial()
        );
        debug_assert!(matches!(
            query.query_type(),
            RecordType::AXFR | RecordType::IXFR
        ));
        transfer::answer(request, zone, &self.history)
    }
}

/// Whether `request` asks a question the query path answers (not a transfer, an UPDATE or a
/// NOTIFY).
fn is_question(request: &Message) -> bool {
    request.metadata.op_code == OpCode::Query
        && request
            .queries
            .first()
            .is_none_or(|q| !matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
}

fn encode(message: Message) -> Vec<Vec<u8>> {
    match message.to_vec() {
        Ok(bytes) => vec![bytes],
        Err(error) => {
            tracing::error!(%error, "cannot encode a reply");
            Vec::new()
        }
    }
}

/// A FORMERR with the request's ID, for a message hickory cannot decode.
fn formerr(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..4)?;
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&header[..2]);
    out[2] = 0x80 | (header[2] & 0x78);
    out[3] = ResponseCode::FormErr.low();
    Some(out)
}
