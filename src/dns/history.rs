//! The change history IXFR answers from (RFC 1995): each time a zone's serial changes, the
//! records it lost and gained since the serial before, kept for the last `DELTAS` changes of
//! zones up to `MAX_NAMES` names (a larger zone, or a serial older than the history, gets the
//! whole zone instead).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use hickory_proto::rr::{Name, Record};

use super::transfer;
use crate::snapshot::Snapshot;

/// Changes kept per zone.
const DELTAS: usize = 64;
/// Zones of more names than this keep no history (their copy and diff would cost too much).
const MAX_NAMES: usize = 50_000;

/// One serial change of a zone.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The SOA before and after.
    pub from: Record,
    pub to: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

#[derive(Debug, Default)]
struct ZoneHistory {
    /// The serial and records last seen.
    last: Option<(u32, Vec<Record>)>,
    deltas: VecDeque<Delta>,
}

/// Every zone's history.
#[derive(Debug, Default)]
pub struct History {
    zones: Mutex<HashMap<Name, ZoneHistory>>,
}

impl History {
    /// Records the changes of serial in `snapshot` since the last look.
    pub fn observe(&self, snapshot: &Snapshot) {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.retain(|origin, _| snapshot.zones.get(origin).is_some());
        for zone in snapshot.zones.iter() {
            let history = zones.entry(zone.origin.clone()).or_default();
            let serial = zone.serial();
            if history.last.as_ref().is_some_and(|(s, _)| *s == serial) {
                continue;
            }
            if zone.len() > MAX_NAMES {
                *history = ZoneHistory::default();
                continue;
            }
            let records = transfer::records(zone);
            if let Some((_, before)) = history.last.take() {
                let delta = diff(&before, &records);
                if history.deltas.len() == DELTAS {
                    history.deltas.pop_front();
                }
                history.deltas.push_back(delta);
            }
            history.last = Some((serial, records));
        }
    }

    /// The changes that take zone `origin` from `serial` to `current`, if the history has them
    /// all.
    pub fn since(&self, origin: &Name, serial: u32, current: u32) -> Option<Vec<Delta>> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let history = zones.get(origin)?;
        let start = history
            .deltas
            .iter()
            .position(|d| soa_serial(&d.from) == serial)?;
        let chain: Vec<Delta> = history.deltas.iter().skip(start).cloned().collect();
        let ends_now = chain.last().is_some_and(|d| soa_serial(&d.to) == current);
        let linked = chain
            .windows(2)
            .all(|w| soa_serial(&w[0].to) == soa_serial(&w[1].from));
        (ends_now && linked).then_some(chain)
    }
}

fn soa_serial(record: &Record) -> u32 {
    match &record.data {
        hickory_proto::rr::RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

/// What changed from `before` to `after` (each SOA first and last, as `transfer::records`
/// gives them).
fn diff(before: &[Record], after: &[Record]) -> Delta {
    let inner = |r: &[Record]| r[1..r.len() - 1].to_vec();
    let (old, new) = (inner(before), inner(after));
    let key = |r: &Record| r.to_string();
    let old_keys: HashSet<String> = old.iter().map(key).collect();
    let new_keys: HashSet<String> = new.iter().map(key).collect();
    Delta {
        from: before[0].clone(),
        to: after[0].clone(),
        removed: old
            .into_iter()
            .filter(|r| !new_keys.contains(&key(r)))
            .collect(),
        added: new
            .into_iter()
            .filter(|r| !old_keys.contains(&key(r)))
            .collect(),
    }
}
