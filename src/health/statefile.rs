//! The health state file: last-known states saved atomically and read back at start, so that a
//! restart does not forget that an endpoint is dead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{CheckSpec, ProbeKey, ProbeRecord, Status};

#[derive(Serialize, Deserialize)]
struct Entry {
    address: IpAddr,
    check: CheckSpec,
    status: Status,
    /// Unix seconds of the last change.
    since: u64,
}

/// Reads a state file. A missing file is an empty state; an unreadable one is logged and
/// ignored (every endpoint starts unknown, as on a first start).
pub fn load(path: &Path) -> HashMap<ProbeKey, ProbeRecord> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(error) => {
            tracing::warn!(%error, "cannot read health state file {}", path.display());
            return HashMap::new();
        }
    };
    let entries: Vec<Entry> = match serde_json::from_str(&text) {
        Ok(e) => e,
        Err(error) => {
            tracing::warn!(%error, "ignoring unreadable health state file {}", path.display());
            return HashMap::new();
        }
    };
    entries
        .into_iter()
        .map(|e| {
            let key = ProbeKey {
                addr: e.address,
                check: Arc::new(e.check),
            };
            let record = ProbeRecord {
                status: e.status,
                since: SystemTime::UNIX_EPOCH + Duration::from_secs(e.since),
                ..ProbeRecord::default()
            };
            (key, record)
        })
        .collect()
}

/// Writes the states atomically: a temp file beside it, fsync, rename, fsync of the folder.
pub fn save(path: &Path, records: &HashMap<ProbeKey, ProbeRecord>) -> std::io::Result<()> {
    let mut entries: Vec<Entry> = records
        .iter()
        .filter(|(_, r)| r.status != Status::Unknown)
        .map(|(k, r)| Entry {
            address: k.addr,
            check: (*k.check).clone(),
            status: r.status,
            since: r
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
        .collect();
    entries.sort_by_key(|e| e.address);
    let json = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
    crate::sys::write_atomic(path, &json)
}
