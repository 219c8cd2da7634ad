//! Zone transfers out over TCP: AXFR (RFC 5936) and IXFR (RFC 1995). A transfer is the zone as
//! served: its SOA, every static record, each pool as the plain A/AAAA records of its whole
//! endpoint set (or nothing, for a pool with `transfer = "omit"`, its own or its zone's: a
//! secondary cannot steer),
//! and the SOA again. IXFR answers with the same whole zone (RFC 1995 §4 allows it where the
//! history is not kept), or with the SOA alone to a client already at the current serial.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

use super::history::{Delta, History};
use crate::zone::Zone;
use crate::zone::spec::PoolTransfer;

/// Records per message: well under 64 KiB for any record we serve.
const RECORDS_PER_MESSAGE: usize = 200;

/// Every record of `zone` in transfer order: SOA, the rest by owner name, SOA.
pub fn records(zone: &Zone) -> Vec<Record> {
    let mut nodes: Vec<_> = zone.nodes().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = vec![zone.soa.clone()];
    for node in nodes {
        for set in &node.rrsets {
            if set.rtype != RecordType::SOA {
                out.extend(set.records.iter().cloned());
            }
        }
        let sent =
            |p: &&crate::zone::Pool| p.transfer.unwrap_or(zone.pool_transfer) == PoolTransfer::All;
        if let Some(pool) = node.pool.as_ref().filter(sent) {
            out.extend(pool.v4.records(&node.name, pool.ttl));
            out.extend(pool.v6.records(&node.name, pool.ttl));
        }
    }
    out.push(zone.soa.clone());
    out
}

/// The reply messages to a transfer `request` of `zone`: the whole zone; or for an IXFR from
/// the current serial (or a later one) its SOA alone, and from an older one the differences
/// `history` has (RFC 1995 §4), else the whole zone.
pub fn answer(request: &Message, zone: &Zone, history: &History) -> Vec<Message> {
    let ixfr_serial = match request.queries.first().map(|q| q.query_type()) {
        Some(RecordType::IXFR) => request.authorities.iter().find_map(|r| match &r.data {
            hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
            _ => None,
        }),
        _ => None,
    };
    let up_to_date = ixfr_serial.is_some_and(|s| !serial_lt(s, zone.serial()));
    let deltas = ixfr_serial.and_then(|s| history.since(&zone.origin, s, zone.serial()));
    let all = match (up_to_date, deltas) {
        (true, _) => vec![zone.soa.clone()],
        (false, Some(deltas)) => incremental(zone, &deltas),
        (false, None) => records(zone),
    };
    let mut messages = Vec::new();
    for (i, chunk) in all.chunks(RECORDS_PER_MESSAGE).enumerate() {
        let mut message = reply(request, ResponseCode::NoError);
        message.metadata.authoritative = true;
        if i > 0 {
            message.queries.clear();
        }
        message.answers.extend(chunk.iter().cloned());
        messages.push(message);
    }
    messages
}

/// An incremental transfer: the current SOA, then each change as its old SOA, the records it
/// removed, its new SOA and the records it added, then the current SOA again.
fn incremental(zone: &Zone, deltas: &[Delta]) -> Vec<Record> {
    let mut out = vec![zone.soa.clone()];
    for delta in deltas {
        out.push(delta.from.clone());
        out.extend(delta.removed.iter().cloned());
        out.push(delta.to.clone());
        out.extend(delta.added.iter().cloned());
    }
    out.push(zone.soa.clone());
    out
}

/// An empty reply to `request` with `rcode`, its question echoed.
pub fn reply(request: &Message, rcode: ResponseCode) -> Message {
    let mut message = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    message.metadata.response_code = rcode;
    message.metadata.recursion_desired = request.metadata.recursion_desired;
    message.queries.extend(request.queries.iter().cloned());
    if request.metadata.op_code != OpCode::Query {
        message.metadata.authoritative = rcode == ResponseCode::NoError;
    }
    message
}

/// `a < b` in serial number arithmetic (RFC 1982).
fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_across_the_wrap() {
        assert!(serial_lt(1, 2));
        assert!(serial_lt(u32::MAX, 3));
        assert!(!serial_lt(5, 5));
        assert!(!serial_lt(3, u32::MAX));
    }

    #[test]
    fn a_transfer_is_the_soa_the_records_and_the_pools_then_the_soa() {
        let text = format!(
            "transfer = \"omit\"\n{}[pools.www]\ntransfer = \"all\"\n\
             endpoints = [\"192.0.2.1\", \"2001:db8::1\"]\n\
             [pools.hidden]\nendpoints = [\"192.0.2.9\"]\n",
            crate::fixture::ZONE_HEAD
        );
        let zones = crate::fixture::zone_set(&[("t.", &text)]);
        let all = records(zones.iter().next().unwrap());
        assert_eq!(all.first().unwrap().record_type(), RecordType::SOA);
        assert_eq!(all.last().unwrap().record_type(), RecordType::SOA);
        let text: Vec<String> = all.iter().map(|r| r.to_string()).collect();
        assert!(text.iter().any(|r| r.contains("192.0.2.1")), "{text:?}");
        assert!(text.iter().any(|r| r.contains("2001:db8::1")), "{text:?}");
        assert!(
            !text.iter().any(|r| r.contains("192.0.2.9")),
            "omitted: {text:?}"
        );
    }
}
