//! The shared state the query path reads: an immutable [`Snapshot`] behind `ArcSwap`. Readers do
//! one atomic load per query; writers (reload, the GeoIP watcher, the prober, later the API)
//! build a whole new snapshot and swap it in, one writer at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use crate::geo::{GeoDb, GeoError};
use crate::health::{self, HealthView, ProbeKey, ProbeRecord, Status};
use crate::zone::{self, ZoneError, ZoneSet};

/// Everything one answer needs, frozen.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Unique for the process's life (0 only for snapshots built by hand in tests): what a
    /// worker's reply memo (`dns::memo`) is valid for. A number, not the snapshot's address,
    /// which a later snapshot may reuse.
    pub generation: u64,
    pub zones: Arc<ZoneSet>,
    /// The GeoIP database, where one is configured.
    pub geo: Option<Arc<GeoDb>>,
    /// Endpoint states by health slot of `zones`.
    pub health: Arc<HealthView>,
}

/// A value the query path reads without a lock and a snapshot build replaces: for parts of a
/// snapshot that outlive it (a geo pool's steering table). arc-swap stays named here.
#[derive(Debug)]
pub struct Swappable<T>(arc_swap::ArcSwapOption<T>);

impl<T> Default for Swappable<T> {
    fn default() -> Self {
        Self(arc_swap::ArcSwapOption::empty())
    }
}

impl<T> Swappable<T> {
    /// Calls `f` with the current value (no reference count taken).
    pub fn read<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        f(self.0.load().as_deref())
    }

    /// The current value, held.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.load_full()
    }

    pub fn replace(&self, value: Option<Arc<T>>) {
        self.0.store(value);
    }
}

/// Why a load or reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("GeoIP database {0}")]
    Geo(#[from] GeoError),
}

/// Why a zone change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The changed zone (or the set with it) does not build: nothing was written.
    #[error(transparent)]
    Invalid(#[from] ZoneError),
    /// It could not be made durable: nothing changed in what is served.
    #[error("cannot write the zone file: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the state comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub zones_dir: PathBuf,
    pub geoip: Option<PathBuf>,
    /// Last-known endpoint states, read at start and rewritten on every change.
    pub health_file: Option<PathBuf>,
}

/// The current snapshot and how to rebuild it.
#[derive(Debug)]
pub struct State {
    current: ArcSwap<Snapshot>,
    sources: Sources,
    /// What the prober knows, by probe. Writers hold this lock while they build and swap a
    /// snapshot, which serializes them.
    probes: Mutex<HashMap<ProbeKey, ProbeRecord>>,
    /// The zone set as it changes, for the prober to follow.
    zones_tx: watch::Sender<Arc<ZoneSet>>,
    /// Set once every endpoint has been probed once; stays set (see [`State::ready`]).
    ready: std::sync::atomic::AtomicBool,
}

impl State {
    /// Loads the zones folder, the GeoIP database and the health state file; fails if any zone
    /// or the database is invalid.
    pub fn load(sources: Sources) -> Result<Self, LoadError> {
        let zones = Arc::new(zone::load_dir(&sources.zones_dir)?);
        let geo = sources
            .geoip
            .as_deref()
            .map(GeoDb::open)
            .transpose()?
            .map(Arc::new);
        let probes = sources
            .health_file
            .as_deref()
            .map(health::load_state_file)
            .unwrap_or_default();
        let state = Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            sources,
            probes: Mutex::new(probes),
            zones_tx: watch::channel(zones.clone()).0,
            ready: Default::default(),
        };
        state.publish(&state.lock(), zones, geo);
        crate::sys::release_freed_memory();
        Ok(state)
    }

    /// A state over already built zones (tests, tools).
    pub fn from_zones(zones: ZoneSet) -> Self {
        let zones = Arc::new(zones);
        let state = Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            sources: Sources::default(),
            probes: Mutex::new(HashMap::new()),
            zones_tx: watch::channel(zones.clone()).0,
            ready: Default::default(),
        };
        state.publish(&state.lock(), zones, None);
        state
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ProbeKey, ProbeRecord>> {
        self.probes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot to answer one query from. Never hold it across an `.await`.
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The zone set as it changes (the prober follows it).
    pub fn subscribe_zones(&self) -> watch::Receiver<Arc<ZoneSet>> {
        self.zones_tx.subscribe()
    }

    /// Re-reads the zones folder and the GeoIP database (SIGHUP). All or nothing: on any
    /// error the old zones and database keep serving.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let result = self.reload_inner();
        crate::metrics::global().record_reload(result.is_ok());
        result
    }

    fn reload_inner(&self) -> Result<usize, LoadError> {
        let probes = self.lock();
        let zones = Arc::new(zone::load_dir(&self.sources.zones_dir)?);
        let geo = self
            .sources
            .geoip
            .as_deref()
            .map(GeoDb::open)
            .transpose()?
            .map(Arc::new);
        let count = zones.len();
        self.publish(&probes, zones.clone(), geo);
        drop(probes);
        self.zones_tx.send_replace(zones);
        crate::sys::release_freed_memory();
        Ok(count)
    }

    /// Changes one zone's file, all or nothing, one writer at a time: `change` gets the
    /// current TOML text (`None`: no file) and returns the new one (`None`: remove it). The
    /// new text goes through the same load and build as start-up; only then is it written
    /// durably, and only then swapped into the serving snapshot — so an acknowledged change is
    /// on disk and in the answers, and a refused one changes nothing.
    pub fn update_zone<E: From<UpdateError>>(
        &self,
        origin: &zone::Name,
        change: impl FnOnce(Option<String>) -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        let probes = self.lock();
        let store = crate::store::ZoneStore::new(self.sources.zones_dir.clone());
        let current = store.read(origin).map_err(UpdateError::from)?;
        let next = change(current)?;
        let overrides = HashMap::from([(origin.clone(), next.clone())]);
        let zones =
            zone::load_dir_with(&self.sources.zones_dir, &overrides).map_err(UpdateError::from)?;
        store
            .write(origin, next.as_deref())
            .map_err(UpdateError::from)?;
        let zones = Arc::new(zones);
        let geo = self.current.load().geo.clone();
        self.publish(&probes, zones.clone(), geo);
        drop(probes);
        self.zones_tx.send_replace(zones);
        crate::sys::release_freed_memory();
        Ok(next)
    }

    /// The zones folder.
    pub fn zones_dir(&self) -> &Path {
        &self.sources.zones_dir
    }

    /// Re-reads only the GeoIP database (it changed on disk); the zones stay as they are. A
    /// file that cannot be opened is refused and the old database keeps serving.
    pub fn reload_geo(&self) -> Result<Option<String>, GeoError> {
        let probes = self.lock();
        let Some(path) = &self.sources.geoip else {
            return Ok(None);
        };
        let geo = GeoDb::open(path)?;
        let description = geo.describe();
        let zones = self.current.load().zones.clone();
        self.publish(&probes, zones, Some(Arc::new(geo)));
        // The steering tables' build freed its working memory.
        crate::sys::release_freed_memory();
        Ok(Some(description))
    }

    /// The configured database path, if any.
    pub fn geoip_path(&self) -> Option<&Path> {
        self.sources.geoip.as_deref()
    }

    /// The last-known status of a probe (`unknown` if never probed, even in an earlier run).
    pub fn probe_status(&self, key: &ProbeKey) -> Status {
        self.lock().get(key).map_or(Status::Unknown, |r| r.status)
    }

    /// Every probe's record, for views of the fleet's health.
    pub fn probe_records(&self) -> HashMap<ProbeKey, ProbeRecord> {
        self.lock().clone()
    }

    /// Records one probe result. A status change is logged with the pools it affects, saved
    /// to the state file, and published in a new snapshot.
    pub fn record_probe(
        &self,
        key: &ProbeKey,
        changed: Option<Status>,
        old: Status,
        result: Result<String, String>,
        latency: Duration,
    ) {
        let mut probes = self.lock();
        let record = probes.entry(key.clone()).or_default();
        record.last_latency = Some(latency);
        record.last_checked = Some(SystemTime::now());
        if let Err(failure) = &result {
            crate::metrics::global()
                .record_probe_failure(&key.to_string(), health::failure_reason(failure));
        }
        let reason = match &result {
            Ok(seen) | Err(seen) => seen.clone(),
        };
        record.last_result = Some(result);
        let Some(new) = changed else { return };
        record.status = new;
        record.since = SystemTime::now();
        let snapshot = self.current.load();
        let pools = snapshot
            .zones
            .probes
            .iter()
            .position(|k| k == key)
            .map(|slot| snapshot.zones.probe_users[slot].join(", "))
            .unwrap_or_default();
        match new {
            Status::Down => tracing::warn!("health: {key} ({pools}) {old} -> {new}: {reason}"),
            _ => tracing::info!("health: {key} ({pools}) {old} -> {new}: {reason}"),
        }
        let (zones, geo) = (snapshot.zones.clone(), snapshot.geo.clone());
        drop(snapshot);
        self.publish(&probes, zones, geo);
        self.save_health(&probes);
    }

    /// Ready to take traffic: zones are loaded (they are, once a `State` exists) and the first
    /// probe round is done: every probed endpoint has a result of this process's own. It
    /// latches: endpoints added later do not take a serving server out of rotation.
    pub fn ready(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let probes = self.lock();
        let snapshot = self.current.load();
        let done = snapshot
            .zones
            .probes
            .iter()
            .all(|k| probes.get(k).is_some_and(|r| r.last_result.is_some()));
        if done {
            self.ready.store(true, Ordering::Relaxed);
        }
        done
    }

    /// Writes the state file now (also done on every change; this is for shutdown).
    pub fn save_health_now(&self) {
        self.save_health(&self.lock());
    }

    fn save_health(&self, probes: &HashMap<ProbeKey, ProbeRecord>) {
        if let Some(path) = &self.sources.health_file
            && let Err(error) = health::save_state_file(path, probes)
        {
            tracing::error!(%error, "cannot write the health state file {}", path.display());
        }
    }

    /// Builds the health view for `zones` from the probe records (carrying each failover set's
    /// active tier over from the current snapshot) and swaps in the new snapshot. Callers hold
    /// the probes lock, which serializes writers.
    fn publish(
        &self,
        probes: &HashMap<ProbeKey, ProbeRecord>,
        zones: Arc<ZoneSet>,
        geo: Option<Arc<GeoDb>>,
    ) {
        let old = self.current.load();
        let same_geo = old.geo.as_ref().map(Arc::as_ptr) == geo.as_ref().map(Arc::as_ptr);
        if let Some(db) = geo.as_deref()
            && (!same_geo || !Arc::ptr_eq(&old.zones, &zones))
        {
            crate::policy::geo::Geo::prepare_all(zones.geo_pools(), db);
            db.release_pages();
        }
        let mut view = HealthView {
            status: zones
                .probes
                .iter()
                .map(|k| probes.get(k).map_or(Status::Unknown, |r| r.status))
                .collect(),
            active_tier: Vec::new(),
        };
        let previous: HashMap<&str, u16> = old
            .zones
            .failovers
            .iter()
            .zip(old.health.active_tier.iter())
            .map(|(f, &t)| (f.id.as_str(), t))
            .collect();
        view.active_tier = zones
            .failovers
            .iter()
            .map(|f| {
                let before = previous.get(f.id.as_str()).copied();
                let now = health::active_tier(before, f.preempt, &f.live_tiers(&view));
                if before.is_some_and(|b| b != now) {
                    tracing::warn!("health: failover {} now answers from tier {now}", f.id);
                }
                now
            })
            .collect();
        static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.current.store(Arc::new(Snapshot {
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            zones,
            geo,
            health: Arc::new(view),
        }));
    }
}

/// Re-reads the GeoIP database whenever its file changes (size or modification time), until
/// `shutdown`. Replace the file atomically (write a temp file, then rename) so that a
/// half-written file is never read; a bad file is refused and logged anyway.
pub async fn watch_geoip(
    state: Arc<State>,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(path) = state.geoip_path().map(ToOwned::to_owned) else {
        return;
    };
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = stamp(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        let state = state.clone();
        match tokio::task::spawn_blocking(move || state.reload_geo()).await {
            Ok(Ok(Some(db))) => tracing::info!("reloaded GeoIP database: {db}"),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::error!("GeoIP reload refused, the old database keeps serving: {error}")
            }
            Err(error) => tracing::error!(%error, "GeoIP reload failed"),
        }
    }
}
