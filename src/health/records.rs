//! What the prober has found so far, by probe: the records behind the status page, the metrics
//! and the health view; the state file they are saved to; and readiness. Its own lock: the
//! writer path (`control`) reads it to build a snapshot, the prober writes it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{ProbeKey, ProbeRecord, Status, statefile};

/// One probe's result, as the prober reports it.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The status before this result.
    pub old: Status,
    /// The new status, where this result changed it (after rise/fall).
    pub changed: Option<Status>,
    /// What was seen: "status 200", "connection refused"…
    pub result: Result<String, String>,
    pub latency: Duration,
    /// The load the check's response reported, where it is configured to read one.
    pub load: Option<f64>,
}

/// Weight of the newest response time in the smoothed one.
const RTT_ALPHA: f64 = 0.2;

/// The smoothed response time after one more sample (an exponentially weighted moving
/// average, seeded by the first sample).
pub fn smooth(old: Option<f64>, sample: f64) -> f64 {
    match old {
        Some(old) => old + RTT_ALPHA * (sample - old),
        None => sample,
    }
}

#[derive(Debug, Default)]
pub struct ProbeRecords {
    records: Mutex<HashMap<ProbeKey, ProbeRecord>>,
    /// Last-known states, read at start and rewritten on every change.
    state_file: Option<PathBuf>,
    /// Set once every endpoint has been probed once; stays set (see [`ProbeRecords::ready`]).
    ready: AtomicBool,
}

impl ProbeRecords {
    /// The records saved in `state_file` (none if it is absent or unreadable).
    pub fn load(state_file: Option<PathBuf>) -> Self {
        let records = state_file
            .as_deref()
            .map(statefile::load)
            .unwrap_or_default();
        Self {
            records: Mutex::new(records),
            state_file,
            ready: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ProbeKey, ProbeRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last-known status of a probe (`unknown` if never probed, even in an earlier run).
    pub fn status(&self, key: &ProbeKey) -> Status {
        self.lock().get(key).map_or(Status::Unknown, |r| r.status)
    }

    /// The status of each of `probes`, in order: a health view's `status`.
    pub fn statuses(&self, probes: &[ProbeKey]) -> Vec<Status> {
        let records = self.lock();
        probes
            .iter()
            .map(|k| records.get(k).map_or(Status::Unknown, |r| r.status))
            .collect()
    }

    /// The smoothed response time of each of `probes`, in order, in seconds.
    pub fn rtts(&self, probes: &[ProbeKey]) -> Vec<Option<f64>> {
        let records = self.lock();
        probes
            .iter()
            .map(|k| records.get(k).and_then(|r| r.rtt))
            .collect()
    }

    /// Every probe's record, for views of the fleet's health.
    pub fn all(&self) -> HashMap<ProbeKey, ProbeRecord> {
        self.lock().clone()
    }

    /// Records one result; a status change is saved to the state file. Returns whether the
    /// status changed.
    pub fn record(&self, key: &ProbeKey, report: &ProbeReport) -> bool {
        let mut records = self.lock();
        let record = records.entry(key.clone()).or_default();
        record.last_latency = Some(report.latency);
        if report.result.is_ok() {
            record.rtt = Some(smooth(record.rtt, report.latency.as_secs_f64()));
        }
        record.last_checked = Some(SystemTime::now());
        record.last_result = Some(report.result.clone());
        let Some(new) = report.changed else {
            return false;
        };
        record.status = new;
        record.since = SystemTime::now();
        self.save(&records);
        true
    }

    /// Ready to take traffic: every one of `probes` has a result of this process's own. It
    /// latches: endpoints added later do not take a serving server out of rotation.
    pub fn ready(&self, probes: &[ProbeKey]) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let records = self.lock();
        let done = probes
            .iter()
            .all(|k| records.get(k).is_some_and(|r| r.last_result.is_some()));
        if done {
            self.ready.store(true, Ordering::Relaxed);
        }
        done
    }

    /// Writes the state file now (also done on every change; this is for shutdown).
    pub fn save_now(&self) {
        self.save(&self.lock());
    }

    fn save(&self, records: &HashMap<ProbeKey, ProbeRecord>) {
        if let Some(path) = &self.state_file
            && let Err(error) = statefile::save(path, records)
        {
            tracing::error!(%error, "cannot write the health state file {}", path.display());
        }
    }
}
