//! A nameserver set sharing its zones, registrations and health through etcd. etcd is the
//! authority: a change made through any instance's API is a conditional write in etcd (the
//! zone's key must still be at the revision this instance served it at: `If-Match` holds across
//! the set, and two racing writes give one success and one conflict); every instance, the
//! writer included, applies what etcd committed from its watch (`replica`), into its own
//! zones folder and journal, which are its local copy: it starts and serves from them when
//! etcd is away. The writer acknowledges once etcd has committed the change and it serves it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;
use crate::health::{ProbeKey, Status, quorum};
use crate::store::etcd::{Etcd, EtcdError, Marker};
use crate::store::pieces::Meta;
use crate::store::registry;
use crate::store::shared::Keys;
use crate::zone::Name;

/// A committed change is served by its writer within this, or acknowledged anyway (it is
/// durable in etcd; the watch brings it).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The local file that remembers which etcd revision the zones folder holds.
pub const STATE_FILE: &str = ".etcd-state";

/// This instance's view of the set.
#[derive(Debug)]
pub struct Cluster {
    pub(super) etcd: Etcd,
    pub(super) keys: Keys,
    pub(super) config: ClusterConfig,
    state_file: PathBuf,
    connected: AtomicBool,
    /// The etcd revision this instance serves, and its waiters.
    applied: Mutex<i64>,
    applied_moved: Condvar,
    /// The revision the local copy holds durably (synced), and the one last written to the
    /// state file.
    durable: AtomicI64,
    saved: AtomicI64,
    /// Each shared zone as served here: changed together with the served zone, after it.
    zones: Mutex<HashMap<Name, SharedZone>>,
    /// Each registration's lease.
    pub(super) leases: Mutex<HashMap<registry::Key, i64>>,
    opinions: Mutex<Opinions>,
    /// Own opinions not yet written to etcd.
    outbox: Mutex<HashMap<String, Status>>,
    pub(super) outbox_ready: tokio::sync::Notify,
    /// This instance's lease (its presence and its opinions).
    pub(super) lease: AtomicI64,
    /// Per zone, the lock that makes this instance's writes one at a time.
    writes: Mutex<HashMap<Name, Arc<Mutex<()>>>>,
    /// The lease write markers are put under, and when it was granted.
    markers_lease: Mutex<(i64, Option<Instant>)>,
    /// Makes write ids unique: this run's random part, and a counter.
    run: u64,
    next_write: AtomicU64,
    /// The revision served here, sampled once a second, for compacting etcd's history; the
    /// revision compacted up to.
    history: Mutex<std::collections::VecDeque<(Instant, i64)>>,
    compacted: AtomicI64,
    last_compaction: Mutex<Option<Instant>>,
}

/// A write marker's lease: it outlives the write by at least `MARKER_KEPT`. Short, since
/// each change leaves one marker in etcd until then.
const MARKER_LEASE: u64 = 150;
const MARKER_ROTATE: Duration = Duration::from_secs(30);
/// How long a write's outcome can be told after it was sent.
pub const MARKER_KEPT: Duration = Duration::from_secs(MARKER_LEASE - MARKER_ROTATE.as_secs());

/// A zone of the set as this instance serves it.
#[derive(Debug, Clone)]
pub struct SharedZone {
    /// The revision of its metadata key: the zone's version (its ETag).
    pub revision: i64,
    pub meta: Meta,
    /// The revision it was last read whole at: changes up to there are in.
    pub read_at: i64,
}

/// The other instances' opinions.
#[derive(Debug, Default)]
struct Opinions {
    /// The live instances, this one included.
    instances: BTreeSet<String>,
    /// Probe → instance → its opinion.
    by_probe: HashMap<String, HashMap<String, Status>>,
}

/// What `.etcd-state` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Saved {
    pub cluster_id: String,
    pub revision: i64,
}

/// Why a change to the set could not be made.
pub(super) fn unavailable(error: impl std::fmt::Display) -> super::UpdateError {
    crate::metrics::global().record_store_write_refused();
    super::UpdateError::Unavailable(error.to_string())
}

impl Cluster {
    pub fn new(config: ClusterConfig, zones_dir: &Path) -> Result<Self, String> {
        let etcd = Etcd::new(&config.etcd)?;
        let keys = Keys::new(&config.etcd.prefix);
        let mut instances = BTreeSet::new();
        instances.insert(config.instance.clone());
        Ok(Self {
            etcd,
            keys,
            config,
            state_file: zones_dir.join(STATE_FILE),
            connected: AtomicBool::new(false),
            applied: Mutex::new(0),
            applied_moved: Condvar::new(),
            durable: AtomicI64::new(0),
            saved: AtomicI64::new(0),
            zones: Mutex::default(),
            leases: Mutex::default(),
            opinions: Mutex::new(Opinions {
                instances,
                by_probe: HashMap::new(),
            }),
            outbox: Mutex::default(),
            outbox_ready: tokio::sync::Notify::new(),
            lease: AtomicI64::new(0),
            writes: Mutex::default(),
            markers_lease: Mutex::new((0, None)),
            run: fastrand::u64(..),
            next_write: AtomicU64::new(1),
            history: Mutex::default(),
            compacted: AtomicI64::new(0),
            last_compaction: Mutex::default(),
        })
    }

    /// A new write id and its marker (see [`Marker`]). The id ends with the time it was made
    /// (Unix seconds), so that an id whose marker has expired is told from one that never
    /// committed.
    pub(super) fn new_write(&self) -> (String, String) {
        let n = self.next_write.fetch_add(1, Ordering::Relaxed);
        let now = super::unix_ms() / 1000;
        let id = format!("{}.{:016x}.{n}.t{now}", self.config.instance, self.run);
        let key = self.keys.write(&id);
        (id, key)
    }

    pub(super) fn marker<'a>(&self, key: &'a str) -> Marker<'a> {
        Marker {
            key,
            lease: lock(&self.markers_lease).0,
        }
    }

    /// Grants the markers' lease anew every `MARKER_ROTATE` (the old ones run out alone).
    pub(super) async fn rotate_markers_lease(&self) -> Result<(), EtcdError> {
        let due = lock(&self.markers_lease)
            .1
            .is_none_or(|at| at.elapsed() >= MARKER_ROTATE);
        if due {
            let lease = self.etcd.grant(MARKER_LEASE).await?;
            *lock(&self.markers_lease) = (lease, Some(Instant::now()));
        }
        Ok(())
    }

    /// Compacts etcd's history up to the revision served here `keep_history` ago, every
    /// quarter of it: one instance does for the set (the first live one by name), and not
    /// more often, since each compaction walks etcd's whole index (a second and more at a
    /// million keys) and those queued faster than etcd runs them leave the history to grow.
    /// A watch or restart that needs the dropped history reads every key again instead.
    pub(super) async fn compact_history(&self) {
        let keep = self.config.keep_history;
        if keep.is_zero() {
            return;
        }
        let now = Instant::now();
        let due = {
            let mut history = lock(&self.history);
            if history
                .back()
                .is_none_or(|(at, _)| now - *at >= Duration::from_secs(1))
            {
                history.push_back((now, self.applied()));
            }
            let mut due = None;
            while let Some(&(at, revision)) = history.front()
                && now - at >= keep
            {
                due = Some(revision);
                history.pop_front();
            }
            due
        };
        let Some(revision) = due.filter(|&r| r > self.compacted.load(Ordering::Relaxed)) else {
            return;
        };
        let first = self.instances().first().map(String::as_str) == Some(self.instance());
        let every = (keep / 4).max(Duration::from_secs(1));
        let last = *lock(&self.last_compaction);
        if !first || last.is_some_and(|at| now - at < every) {
            return;
        }
        *lock(&self.last_compaction) = Some(now);
        match self.etcd.compact(revision).await {
            Ok(()) => self.compacted.store(revision, Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "etcd: cannot compact its history"),
        }
    }

    /// Whether write `id` is too old for its marker to tell whether it committed.
    pub fn write_too_old(id: &str) -> bool {
        let made = id.rsplit('.').next().and_then(|s| s.strip_prefix('t'));
        let made = made.and_then(|s| s.parse::<u64>().ok());
        let now = super::unix_ms() / 1000;
        made.is_some_and(|made| now.saturating_sub(made) >= MARKER_KEPT.as_secs())
    }

    /// Whether write `id` committed: its revision, `None` if not (by now).
    pub fn write_committed(&self, id: &str) -> Result<Option<i64>, super::UpdateError> {
        let key = self.keys.write(id);
        self.block_on(self.etcd.revision_of(&key))
    }

    /// Refuses a change while this instance is not in the set: its copy may be stale, so no
    /// lookup, validation or If-Match check is made on it.
    pub(super) fn ensure_connected(&self) -> Result<(), super::UpdateError> {
        match self.connected() {
            true => Ok(()),
            false => Err(unavailable(
                "etcd is unreachable: changes are refused until it is back (answers go on)",
            )),
        }
    }

    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Whether the connection changed.
    pub(super) fn set_connected(&self, connected: bool) -> bool {
        crate::metrics::global().set_store_connected(connected);
        self.connected.swap(connected, Ordering::Relaxed) != connected
    }

    /// The etcd revision served here.
    pub fn applied(&self) -> i64 {
        *lock(&self.applied)
    }

    pub(super) fn set_applied(&self, revision: i64) {
        let mut applied = lock(&self.applied);
        if revision > *applied {
            *applied = revision;
            crate::metrics::global().set_store_revision(revision);
            self.applied_moved.notify_all();
        }
    }

    /// The local copy holds `revision` durably.
    pub(super) fn set_durable(&self, revision: i64) {
        self.durable.fetch_max(revision, Ordering::Relaxed);
    }

    /// Waits (a blocking thread) until revision `revision` is served here; whether it is.
    pub(super) fn wait_applied(&self, revision: i64) -> bool {
        let applied = lock(&self.applied);
        let (applied, _) = self
            .applied_moved
            .wait_timeout_while(applied, APPLY_WAIT, |a| *a < revision)
            .unwrap_or_else(|e| e.into_inner());
        *applied >= revision
    }

    /// Zone `origin` as served here, if the set has it.
    pub fn zone(&self, origin: &Name) -> Option<SharedZone> {
        lock(&self.zones).get(origin).cloned()
    }

    /// Records what is served of `origin` now (`None`: not in the set). Called once the
    /// served zone is changed: a writer that reads the new revision finds the new zone.
    pub(super) fn set_zone(&self, origin: &Name, zone: Option<SharedZone>) {
        let mut zones = lock(&self.zones);
        match zone {
            Some(z) => zones.insert(origin.clone(), z),
            None => zones.remove(origin),
        };
    }

    /// The ETag of zone `origin` at `revision`: the same on every instance.
    pub fn tag(origin: &Name, revision: i64) -> String {
        crate::store::etag(&format!("{} {revision}", origin.to_lowercase()))
    }

    /// The lock of this instance's writes to `origin`.
    pub(super) fn writes(&self, origin: &Name) -> Arc<Mutex<()>> {
        lock(&self.writes)
            .entry(origin.clone())
            .or_default()
            .clone()
    }

    /// Runs `future` from a blocking thread of the runtime, connected or not (applying what
    /// etcd holds, while catching up).
    pub(super) fn block_on_any<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, EtcdError>>,
    ) -> Result<T, EtcdError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        handle.block_on(future)
    }

    /// Runs `future` from a blocking thread of the runtime (the writer path's callers).
    pub(super) fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, EtcdError>>,
    ) -> Result<T, super::UpdateError> {
        self.ensure_connected()?;
        let handle = tokio::runtime::Handle::try_current().map_err(unavailable)?;
        handle.block_on(future).map_err(|error| match error {
            EtcdError::OutcomeUnknown(marker) => {
                let id = marker.rsplit('/').next().unwrap_or_default().to_owned();
                super::UpdateError::OutcomeUnknown(id)
            }
            other => unavailable(other),
        })
    }

    /// The revision the zones folder held when this instance last ran, and whose etcd.
    pub(super) fn saved(&self) -> Saved {
        let text = std::fs::read_to_string(&self.state_file).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Remembers the revision the local copy holds in the state file, if it moved (once a second: a restart
    /// that finds an older one re-reads a little more, nothing is lost).
    pub fn save(&self, cluster_id: &str) {
        let revision = self.durable.load(Ordering::Relaxed);
        if self.saved.swap(revision, Ordering::Relaxed) == revision {
            return;
        }
        let saved = Saved {
            cluster_id: cluster_id.to_owned(),
            revision,
        };
        let text = serde_json::to_string(&saved).unwrap_or_default();
        if let Err(error) = crate::sys::write_atomic(&self.state_file, text.as_bytes()) {
            tracing::warn!(%error, "cannot write {}", self.state_file.display());
            self.saved.store(0, Ordering::Relaxed);
        }
    }

    /// Queues this instance's opinion of `probe` for etcd.
    pub(super) fn queue_opinion(&self, probe: String, status: Status) {
        lock(&self.outbox).insert(probe, status);
        self.outbox_ready.notify_one();
    }

    /// The opinions queued so far.
    pub(super) fn take_outbox(&self) -> HashMap<String, Status> {
        std::mem::take(&mut *lock(&self.outbox))
    }

    /// Records another instance's opinion (`None`: withdrawn); whether anything changed.
    pub(super) fn set_opinion(&self, instance: &str, probe: &str, status: Option<Status>) -> bool {
        if instance == self.instance() {
            return false;
        }
        let mut opinions = lock(&self.opinions);
        let of_probe = opinions.by_probe.entry(probe.to_owned()).or_default();
        let before = match status {
            Some(s) => of_probe.insert(instance.to_owned(), s),
            None => of_probe.remove(instance),
        };
        if of_probe.is_empty() {
            opinions.by_probe.remove(probe);
        }
        before != status
    }

    /// Records an instance joining or leaving; whether the set changed.
    pub(super) fn set_instance(&self, instance: &str, live: bool) -> bool {
        let mut opinions = lock(&self.opinions);
        if instance == self.instance() {
            return false;
        }
        match live {
            true => opinions.instances.insert(instance.to_owned()),
            false => opinions.instances.remove(instance),
        }
    }

    /// Forgets every other instance and opinion (before a fresh listing).
    pub(super) fn clear_others(&self) {
        let mut opinions = lock(&self.opinions);
        opinions.by_probe.clear();
        opinions.instances.retain(|i| i == &self.config.instance);
    }

    /// The live instances, this one included.
    pub fn instances(&self) -> Vec<String> {
        lock(&self.opinions).instances.iter().cloned().collect()
    }

    /// Whether this instance probes `probe` (all do unless `probes_per_endpoint` is set, and
    /// all do while etcd is away: each then decides alone).
    pub fn assigned(&self, probe: &str) -> bool {
        let per_endpoint = self.config.probes_per_endpoint;
        if per_endpoint == 0 || !self.connected() {
            return true;
        }
        let instances = self.instances();
        quorum::assigned(self.instance(), &instances, probe, per_endpoint)
    }

    /// The state of each of `probes` decided from `own` (this instance's statuses, in order)
    /// and the other live instances' opinions. Alone (etcd away, or no one else): `own`.
    pub(super) fn decide(&self, probes: &[ProbeKey], own: Vec<Status>) -> Vec<Status> {
        if !self.connected() {
            return own;
        }
        let opinions = lock(&self.opinions);
        if opinions.by_probe.is_empty() && self.config.probes_per_endpoint == 0 {
            return own;
        }
        let instances: Vec<String> = opinions.instances.iter().cloned().collect();
        let per_endpoint = self.config.probes_per_endpoint;
        probes
            .iter()
            .zip(own)
            .map(|(key, mine)| {
                let probe = key.to_string();
                let others = opinions.by_probe.get(&probe);
                let probes_it = quorum::assigned(self.instance(), &instances, &probe, per_endpoint);
                let mine = probes_it.then_some(mine);
                // Only the instances that probe it now (an opinion left from before the set
                // changed does not count).
                let theirs = others
                    .into_iter()
                    .flatten()
                    .filter(|(i, _)| quorum::assigned(i, &instances, &probe, per_endpoint));
                let theirs = theirs.map(|(_, s)| *s);
                match quorum::decide(self.config.quorum, mine.into_iter().chain(theirs)) {
                    // Nobody has an opinion yet: what this instance last knew.
                    Status::Unknown => mine.unwrap_or(Status::Unknown),
                    decided => decided,
                }
            })
            .collect()
    }

    /// Every instance's opinion of `probe` (this one's is `own`), for views.
    pub fn opinions_of(&self, probe: &str, own: Status) -> Vec<(String, Status)> {
        let mine = self.assigned(probe);
        let opinions = lock(&self.opinions);
        let instances: Vec<String> = opinions.instances.iter().cloned().collect();
        let per_endpoint = self.config.probes_per_endpoint;
        let mut all: Vec<(String, Status)> = opinions
            .by_probe
            .get(probe)
            .into_iter()
            .flatten()
            .filter(|(i, _)| quorum::assigned(i, &instances, probe, per_endpoint))
            .map(|(i, s)| (i.clone(), *s))
            .collect();
        if mine {
            all.push((self.instance().to_owned(), own));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_id_tells_whether_its_marker_can_have_expired() {
        let now = super::super::unix_ms() / 1000;
        let id = |secs: u64| format!("a.00000000000000ff.7.t{secs}");
        assert!(!Cluster::write_too_old(&id(now)));
        assert!(!Cluster::write_too_old(
            &id(now - MARKER_KEPT.as_secs() + 5)
        ));
        assert!(Cluster::write_too_old(&id(now - MARKER_KEPT.as_secs())));
        // An id without a time (another version's) is never called too old.
        assert!(!Cluster::write_too_old("a.00000000000000ff.7"));
    }
}
