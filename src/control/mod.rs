//! The one writer path: everything that changes what is served — start-up, reload (SIGHUP,
//! the API), API edits of a zone, probe results, GeoIP database reloads — goes through
//! [`Control`], which builds a new snapshot (sharing what did not change) and publishes it in
//! the [`Current`] cell the query path reads. Writers are serialized by one lock; readers never
//! wait. Zones are read and written through the [`Store`] interface.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

mod apply;
pub mod cluster;
mod edits;
mod registrations;
mod replica;
mod set_writes;
mod shared;
#[cfg(test)]
mod tests;
mod ticks;

pub use cluster::Cluster;
pub use edits::Edited;
pub use registrations::{Registering, unix_ms};
pub use replica::run_replica;
pub use ticks::run_ticks;

use crate::config::Sources;
use crate::geo::{GeoDb, GeoError};
use crate::health::feedback::FeedbackState;
use crate::health::{
    self, Health, HealthView, ProbeKey, ProbeRecords, ProbeReport, ProbeSink, Status,
};
use crate::snapshot::{Current, Snapshot};
use crate::store::{FileStore, Store};
use crate::zone::{self, ZoneError, ZoneSet};

/// A zone of more nodes than this frees enough memory when replaced to give it back.
const LARGE_ZONE: usize = 10_000;

/// Why a load or reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// Its message holds the cause, so it has no `source` to print a second time.
    #[error("GeoIP database {0}")]
    Geo(GeoError),
}

impl From<GeoError> for LoadError {
    fn from(error: GeoError) -> Self {
        LoadError::Geo(error)
    }
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
    /// The nameserver set's store (etcd) cannot take changes now: nothing changed.
    #[error("{0}")]
    Unavailable(String),
    /// The change was sent to etcd and no answer came back: it may have been committed. The
    /// write's id tells which, once etcd answers (`GET /api/v1/writes/{id}`).
    #[error("etcd did not answer whether write {0} was committed")]
    OutcomeUnknown(String),
}

/// What a change of a zone's whole text left.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The new text (`None`: the zone is gone).
    pub text: Option<String>,
    /// Its ETag.
    pub etag: Option<String>,
}

/// The served snapshot and everything that rebuilds it.
#[derive(Debug)]
pub struct Control {
    current: Arc<Current>,
    store: Box<dyn Store>,
    geoip: Option<PathBuf>,
    probes: ProbeRecords,
    /// Loads, slow starts and latency shares of the adaptive sets, between snapshots.
    feedback: FeedbackState,
    /// The probes the served zones need, for the prober to follow.
    targets: watch::Sender<Arc<[ProbeKey]>>,
    /// Held while a snapshot is built and published: one writer at a time.
    writer: Mutex<()>,
    /// Zone changes appended so far (to see when they pause).
    changes: AtomicU64,
    /// The model of each zone's TOML document that has been edited, as the edits left it
    /// (see `edits`): locked by the one writer.
    specs: Mutex<HashMap<zone::Name, crate::store::model::ZoneModel>>,
    /// The nameserver set this instance shares its zones and health with, if any.
    cluster: Option<Arc<Cluster>>,
}

impl Control {
    /// Loads the zones, the GeoIP database and the health state file; fails if any zone or
    /// the database is invalid.
    pub fn load(sources: Sources) -> Result<Self, LoadError> {
        // A missing zones folder is named as itself, not as the journal inside it.
        std::fs::read_dir(&sources.zones_dir).map_err(|cause| ZoneError::Read {
            path: sources.zones_dir.clone(),
            cause,
        })?;
        let store =
            FileStore::open(sources.zones_dir.clone()).map_err(|cause| ZoneError::Read {
                path: sources.zones_dir.join(crate::store::journal::FILE),
                cause,
            })?;
        let zones = store.load(None)?;
        let geo = open_geo(sources.geoip.as_deref())?;
        let cluster = match &sources.cluster {
            Some(config) => {
                let cluster = Cluster::new(config.clone(), &sources.zones_dir);
                let cluster = cluster.map_err(|message| ZoneError::Name {
                    path: PathBuf::from("[store]"),
                    message,
                })?;
                Some(Arc::new(cluster))
            }
            None => None,
        };
        let models = store.take_models();
        let mut control = Self::new(Box::new(store), sources, zones, geo);
        control.cluster = cluster;
        *control.specs.get_mut().unwrap_or_else(|e| e.into_inner()) = models;
        crate::sys::release_freed_memory();
        Ok(control)
    }

    /// A control over already built zones, without files (tests, tools).
    pub fn from_zones(zones: ZoneSet) -> Self {
        let store = FileStore::new(PathBuf::new());
        Self::new(Box::new(store), Sources::default(), zones, None)
    }

    fn new(
        store: Box<dyn Store>,
        sources: Sources,
        zones: ZoneSet,
        geo: Option<Arc<GeoDb>>,
    ) -> Self {
        let zones = Arc::new(zones);
        let control = Self {
            current: Arc::default(),
            store,
            geoip: sources.geoip,
            probes: ProbeRecords::load(sources.health_file),
            feedback: FeedbackState::default(),
            targets: watch::channel(Arc::from(&[][..])).0,
            writer: Mutex::new(()),
            changes: AtomicU64::new(0),
            specs: Mutex::default(),
            cluster: None,
        };
        control.send_targets(&zones.probes);
        control.publish(&control.writer(), zones, geo);
        control
    }

    /// Gives the prober the probes this instance runs: all of `probes`, or in a set that
    /// shares the probing, this instance's share.
    fn send_targets(&self, probes: &[ProbeKey]) {
        let mine: Arc<[ProbeKey]> = match &self.cluster {
            Some(cluster) => probes
                .iter()
                .filter(|k| cluster.assigned(&k.to_string()))
                .cloned()
                .collect(),
            None => Arc::from(probes),
        };
        if **self.targets.borrow() != *mine {
            self.targets.send_replace(mine);
        }
    }

    /// The state of `probe` as decided now (in a set, from the live instances' opinions).
    pub fn decided(&self, probe: &ProbeKey) -> Status {
        self.statuses(std::slice::from_ref(probe))[0]
    }

    /// The state of each of `probes`: this instance's own probe results, or in a set, the
    /// decision of the live instances' opinions.
    fn statuses(&self, probes: &[ProbeKey]) -> Vec<Status> {
        let own = self.probes.statuses(probes);
        match &self.cluster {
            Some(cluster) => cluster.decide(probes, own),
            None => own,
        }
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cell the query path loads its snapshot from.
    pub fn current(&self) -> &Arc<Current> {
        &self.current
    }

    /// The snapshot being served. Never hold it across an `.await`.
    pub fn snapshot(&self) -> crate::cell::Loaded<Snapshot> {
        self.current.load()
    }

    /// Where the zones live.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The nameserver set, if this instance is in one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Re-reads the zones and the GeoIP database (SIGHUP): the zones whose files changed are
    /// built again, the others kept. All or nothing: on any error the old zones and database
    /// keep serving. In a set, the zones come from etcd: only the database is re-read.
    pub fn reload(&self) -> Result<usize, LoadError> {
        if self.cluster.is_some() {
            self.reload_geo()?;
            return Ok(self.current.load().zones.len());
        }
        let result = (|| {
            let writer = self.writer();
            self.forget_specs(None);
            let served = self.current.load().zones.clone();
            let zones = Arc::new(self.store.load(Some(&served))?);
            let geo = open_geo(self.geoip.as_deref())?;
            let count = zones.len();
            self.publish(&writer, zones, geo);
            Ok(count)
        })();
        crate::sys::release_freed_memory();
        crate::metrics::global().record_reload(result.is_ok());
        result
    }

    /// Changes one zone, all or nothing: `change` gets the current TOML text (`None`: no
    /// document) and returns the new one (`None`: remove the zone). One writer at a time, the
    /// new text is built alone (the other zones are shared with the served snapshot) through
    /// the same build as start-up, appended to the store, and served; then, outside the writer
    /// lock so that changes arriving together share one sync, it is made durable. Only then is
    /// it acknowledged (`Ok`). A change refused by the build or the append changes nothing; one
    /// whose sync fails is refused and the served zones go back to what is durable.
    pub fn update_zone<E: From<UpdateError>>(
        &self,
        origin: &zone::Name,
        mut change: impl FnMut(Option<crate::store::Doc>) -> Result<Option<String>, E>,
    ) -> Result<Updated, E> {
        if let Some(cluster) = &self.cluster {
            let (text, etag) = self.update_shared(cluster, origin, &mut change)?;
            return Ok(Updated { text, etag });
        }
        let writer = self.writer();
        let current = self.store.read(origin).map_err(UpdateError::from)?;
        let next = change(current)?;
        self.forget_specs(Some(origin));
        let registered = self.store.registered(origin);
        let zone = self
            .store
            .load_one(origin, next.as_deref(), &registered)
            .map_err(UpdateError::from)?;
        let ticket = self
            .store
            .append(origin, next.as_deref())
            .map_err(UpdateError::from)?;
        self.commit(writer, origin, Some(zone), ticket, true)?;
        let etag = next.as_deref().map(crate::store::etag);
        Ok(Updated { text: next, etag })
    }

    /// Serves a change appended to the store (`zone`: `origin` rebuilt with it, `None`: nothing
    /// served changes) and releases the writer lock; then waits until the change is durable.
    /// A failed sync: the change is refused and what is durable is served again. `whole`: the
    /// zone was built whole (a large one frees enough memory to give back).
    fn commit(
        &self,
        writer: MutexGuard<'_, ()>,
        origin: &zone::Name,
        zone: Option<Option<zone::Zone>>,
        ticket: crate::store::Ticket,
        whole: bool,
    ) -> Result<(), UpdateError> {
        let large = whole
            && zone
                .as_ref()
                .is_some_and(|z| z.as_ref().is_some_and(|z| z.len() > LARGE_ZONE));
        self.serve_appended(writer, origin, zone);
        if let Err(error) = self.store.sync(ticket) {
            tracing::error!(%error, "a change to {origin} could not be made durable; serving what is");
            self.serve_durable();
            return Err(UpdateError::Io(error));
        }
        if large {
            crate::sys::release_freed_memory();
        }
        Ok(())
    }

    /// Serves a change appended to the store (`zone`: `origin` rebuilt with it, `None`: nothing
    /// served changes) and releases the writer lock; its sync is the caller's.
    fn serve_appended(
        &self,
        writer: MutexGuard<'_, ()>,
        origin: &zone::Name,
        zone: Option<Option<zone::Zone>>,
    ) {
        self.changes.fetch_add(1, Ordering::Relaxed);
        if let Some(zone) = zone {
            let served = self.current.load();
            let zones = Arc::new(served.zones.with_zone(origin, zone));
            let geo = served.geo.clone();
            drop(served);
            self.publish(&writer, zones, geo);
        }
    }

    /// After a failed sync: the store forgets what was not made durable, and the zones as a
    /// restart would load them are served.
    fn serve_durable(&self) {
        let writer = self.writer();
        self.forget_specs(None);
        let loaded = self
            .store
            .recover()
            .map_err(|e| e.to_string())
            .and_then(|()| self.store.load(None).map_err(|e| e.to_string()));
        match loaded {
            Ok(zones) => {
                let geo = self.current.load().geo.clone();
                self.publish(&writer, Arc::new(zones), geo);
            }
            Err(error) => tracing::error!(%error, "cannot reload the durable zones"),
        }
    }

    /// Writes the journaled changes into the zone files (`force`: whatever the journal's size)
    /// so that the files are current for an operator and a reload. Called when changes have
    /// paused, when the journal is large, and at shutdown.
    pub fn compact(&self, force: bool) {
        // Not under the writer lock: changes go on meanwhile (see `store::journal`).
        if let Err(error) = self.store.compact(force) {
            tracing::error!(%error, "cannot compact the journal into the zone files");
        }
    }

    /// Re-reads only the GeoIP database (its file changed); the zones stay as they are. A file
    /// that cannot be opened is refused and the old database keeps serving.
    pub fn reload_geo(&self) -> Result<Option<String>, GeoError> {
        let writer = self.writer();
        let Some(geo) = open_geo(self.geoip.as_deref())? else {
            return Ok(None);
        };
        let description = geo.describe();
        let zones = self.current.load().zones.clone();
        self.publish(&writer, zones, Some(geo));
        drop(writer);
        // The steering tables' build freed its working memory.
        crate::sys::release_freed_memory();
        Ok(Some(description))
    }

    /// The snapshot a change would give, built but not served (for `simulate`): the served
    /// zones with `zone`'s document replaced by the text given, and the served database or
    /// the one at `geoip`. Health and measurements are left out (every endpoint live).
    pub fn preview(
        &self,
        zone: Option<(&zone::Name, &str)>,
        geoip: Option<&Path>,
    ) -> Result<Snapshot, LoadError> {
        let current = self.current.load();
        let zones = match zone {
            Some((origin, text)) => {
                let registered = self.store.registered(origin);
                let built = self.store.load_one(origin, Some(text), &registered)?;
                Arc::new(current.zones.with_zone(origin, built))
            }
            None => current.zones.clone(),
        };
        let geo = match geoip {
            Some(path) => Some(Arc::new(GeoDb::open(path)?)),
            None => current.geo.clone(),
        };
        Ok(Snapshot {
            generation: 0,
            zones,
            geo,
            health: Arc::default(),
        })
    }

    /// The configured database path, if any.
    pub fn geoip_path(&self) -> Option<&Path> {
        self.geoip.as_deref()
    }

    /// Every probe's record, for views of the fleet's health.
    pub fn probe_records(&self) -> std::collections::HashMap<ProbeKey, health::ProbeRecord> {
        self.probes.all()
    }

    /// Ready to take traffic: zones are loaded (they are, once a `Control` exists) and every
    /// probed endpoint has been probed once by this process (see [`ProbeRecords::ready`]).
    pub fn ready(&self) -> bool {
        self.probes.ready(&self.targets.borrow())
    }

    /// Writes the health state file now (also done on every change; this is for shutdown).
    pub fn save_health_now(&self) {
        self.probes.save_now();
    }

    /// Publishes the served zones and database again, with the health as it is now.
    fn republish(&self, writer: &MutexGuard<'_, ()>) {
        let snapshot = self.current.load();
        let (zones, geo) = (snapshot.zones.clone(), snapshot.geo.clone());
        drop(snapshot);
        self.publish(writer, zones, geo);
    }

    /// Builds the health view for `zones` from the probe records (carrying each failover set's
    /// active tier over from the served snapshot), prepares the geo pools' steering tables for
    /// `geo`, and publishes the new snapshot. `_writer` proves the caller is the one writer.
    fn publish(&self, _writer: &MutexGuard<'_, ()>, zones: Arc<ZoneSet>, geo: Option<Arc<GeoDb>>) {
        let old = self.current.load();
        let same_geo = old.geo.as_ref().map(Arc::as_ptr) == geo.as_ref().map(Arc::as_ptr);
        let same_zones = Arc::ptr_eq(&old.zones, &zones);
        if let Some(db) = &geo
            && (!same_geo || !same_zones)
        {
            let missing = crate::policy::geo::Geo::steer_all(zones.geo_pools(), db);
            if !missing.is_empty() {
                self.build_steering(zones.clone(), db.clone(), missing);
            }
        }
        let statuses: Vec<Vec<Status>> = zones
            .iter()
            .map(|z| self.statuses(&z.slots.probes))
            .collect();
        let borrowed: Vec<&[Status]> = statuses.iter().map(Vec::as_slice).collect();
        let feedback = self.feedback_for(&zones, &borrowed);
        let views = zones
            .iter()
            .zip(statuses)
            .zip(feedback)
            .map(|((zone, status), feedback)| {
                let mut view = HealthView {
                    status,
                    active_tier: Vec::new(),
                    feedback,
                    version: 0,
                };
                // The active tiers the same zone's failover sets had, kept where they still
                // apply.
                let before = old.zones.index_of(&zone.origin).map(|i| {
                    let tiers = &old.health.zone(i).active_tier;
                    let ids = old.zones.iter().nth(i).map(|z| &z.slots.failovers);
                    (ids.into_iter().flatten().map(|f| f.id.as_str()), tiers)
                });
                let previous: Vec<(&str, u16)> = before
                    .map(|(ids, tiers)| ids.zip(tiers.iter().copied()).collect())
                    .unwrap_or_default();
                let sets = zone.slots.failovers.iter();
                let sets = sets.map(|f| (f.id.as_str(), f.preempt, f.live_tiers(&view)));
                view.active_tier = health::active_tiers(previous.into_iter(), sets);
                kept_view(&old, zone, view)
            })
            .collect();
        let health = Health { zones: views };
        // The prober follows the probes; a change that keeps them does not wake it.
        if !same_zones && old.zones.probes != zones.probes {
            self.send_targets(&zones.probes);
        }
        drop(old);
        self.current.publish(zones, geo, Arc::new(health));
    }
}

impl Control {
    /// Builds the steering tables `missing` for `db` on a thread of their own (a walk of the
    /// whole database: seconds for DB-IP City), while the pools that lack them answer from the
    /// database directly; then hands them to the pools of whatever snapshot is served by then.
    fn build_steering(&self, zones: Arc<ZoneSet>, db: Arc<GeoDb>, missing: Vec<String>) {
        let current = self.current.clone();
        let build = move || {
            let (mut zones, mut db, mut missing) = (zones, db, missing);
            loop {
                crate::policy::geo::Geo::build_tables(zones.geo_pools(), &db, &missing);
                db.release_pages();
                // A snapshot published meanwhile may have missed the tables: until the
                // served one has had them.
                let served = current.load();
                let Some(geo) = served.geo.clone() else {
                    break;
                };
                (zones, db) = (served.zones.clone(), geo);
                drop(served);
                missing = crate::policy::geo::Geo::steer_all(zones.geo_pools(), &db);
                if missing.is_empty() && Arc::ptr_eq(&current.load().zones, &zones) {
                    break;
                }
            }
        };
        let spawned = std::thread::Builder::new()
            .name("geo-steering".into())
            .spawn(build);
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start building geo steering tables");
        }
    }

    /// Whether geo steering tables are being built (the pools that lack them answer from the
    /// database directly meanwhile).
    pub fn steering_pending(&self) -> bool {
        crate::policy::geo::steering_pending()
    }
}

impl ProbeSink for Control {
    fn targets(&self) -> watch::Receiver<Arc<[ProbeKey]>> {
        self.targets.subscribe()
    }

    fn last_status(&self, key: &ProbeKey) -> Status {
        self.probes.status(key)
    }

    /// Records the result; a status change is logged with the pools it affects and published
    /// in a new snapshot.
    fn report(&self, key: &ProbeKey, report: ProbeReport) {
        let now = std::time::Instant::now();
        if let Some(load) = report.load {
            self.feedback.report_load(key.addr, load as f32, now);
        }
        if !self.probes.record(key, &report) {
            return;
        }
        if report.old == Status::Down && report.changed == Some(Status::Up) {
            self.feedback.recovered(key.addr, now);
        }
        if let (Some(cluster), Some(status)) = (&self.cluster, report.changed) {
            cluster.queue_opinion(key.to_string(), status);
        }
        let writer = self.writer();
        let snapshot = self.current.load();
        let pools = snapshot
            .zones
            .probes
            .iter()
            .position(|k| k == key)
            .map(|slot| snapshot.zones.probe_users[slot].join(", "))
            .unwrap_or_default();
        let (old, new) = (report.old, report.changed.unwrap_or(report.old));
        let reason = match &report.result {
            Ok(seen) | Err(seen) => seen,
        };
        match new {
            Status::Down => tracing::warn!("health: {key} ({pools}) {old} -> {new}: {reason}"),
            _ => tracing::info!("health: {key} ({pools}) {old} -> {new}: {reason}"),
        }
        let (zones, geo) = (snapshot.zones.clone(), snapshot.geo.clone());
        drop(snapshot);
        self.publish(&writer, zones, geo);
    }
}

/// The served view of `zone` where it says the same as `view` (so that the answers memoized
/// for the zone stay valid), else `view` with a version of its own.
fn kept_view(old: &Snapshot, zone: &zone::Zone, view: HealthView) -> Arc<HealthView> {
    if let Some(i) = old.zones.index_of(&zone.origin)
        && let Some(before) = old.health.zones.get(i)
        && before.same_as(&view)
    {
        return before.clone();
    }
    Arc::new(view.stamped())
}

fn open_geo(path: Option<&Path>) -> Result<Option<Arc<GeoDb>>, GeoError> {
    Ok(path.map(GeoDb::open).transpose()?.map(Arc::new))
}
