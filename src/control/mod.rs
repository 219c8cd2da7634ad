//! The one writer path: everything that changes what is served — start-up, reload (SIGHUP,
//! the API), API edits of a zone, probe results, GeoIP database reloads — goes through
//! [`Control`], which builds a new snapshot (sharing what did not change) and publishes it in
//! the [`Current`] cell the query path reads. Writers are serialized by one lock; readers never
//! wait. Zones are read and written through the [`Store`] interface.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::config::Sources;
use crate::geo::{GeoDb, GeoError};
use crate::health::feedback::{FeedbackState, Measured, ZoneInput};
use crate::health::{
    self, Health, HealthView, ProbeKey, ProbeRecords, ProbeReport, ProbeSink, Status,
};
use crate::snapshot::{Current, Snapshot};
use crate::store::{FileStore, Store};
use crate::zone::{self, ZoneError, ZoneSet};

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
}

impl Control {
    /// Loads the zones, the GeoIP database and the health state file; fails if any zone or
    /// the database is invalid.
    pub fn load(sources: Sources) -> Result<Self, LoadError> {
        let store = FileStore::new(sources.zones_dir.clone());
        let zones = store.load()?;
        let geo = open_geo(sources.geoip.as_deref())?;
        let control = Self::new(Box::new(store), sources, zones, geo);
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
            targets: watch::channel(Arc::from(zones.probes.as_slice())).0,
            writer: Mutex::new(()),
        };
        control.publish(&control.writer(), zones, geo);
        control
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

    /// Re-reads every zone and the GeoIP database (SIGHUP). All or nothing: on any error the
    /// old zones and database keep serving.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let result = (|| {
            let writer = self.writer();
            let zones = Arc::new(self.store.load()?);
            let geo = open_geo(self.geoip.as_deref())?;
            let count = zones.len();
            self.publish(&writer, zones, geo);
            Ok(count)
        })();
        crate::sys::release_freed_memory();
        crate::metrics::global().record_reload(result.is_ok());
        result
    }

    /// Changes one zone, all or nothing, one writer at a time: `change` gets the current TOML
    /// text (`None`: no document) and returns the new one (`None`: remove the zone). The new
    /// text goes through the same build as start-up; only then is it written durably, and only
    /// then served — so an acknowledged change is durable and in the answers, and a refused
    /// one changes nothing.
    pub fn update_zone<E: From<UpdateError>>(
        &self,
        origin: &zone::Name,
        change: impl FnOnce(Option<String>) -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        let writer = self.writer();
        let current = self.store.read(origin).map_err(UpdateError::from)?;
        let next = change(current)?;
        // Only the changed zone is built; the others are shared with the served snapshot.
        let zone = self
            .store
            .load_one(origin, next.as_deref())
            .map_err(UpdateError::from)?;
        self.store
            .write(origin, next.as_deref())
            .map_err(UpdateError::from)?;
        let current = self.current.load();
        let zones = Arc::new(current.zones.with_zone(origin, zone));
        let geo = current.geo.clone();
        drop(current);
        self.publish(&writer, zones, geo);
        drop(writer);
        crate::sys::release_freed_memory();
        Ok(next)
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
                let built = self.store.load_one(origin, Some(text))?;
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
        self.probes.ready(&self.current.load().zones.probes)
    }

    /// Writes the health state file now (also done on every change; this is for shutdown).
    pub fn save_health_now(&self) {
        self.probes.save_now();
    }

    /// Records the load an endpoint reported (through the API) and serves it at once.
    pub fn report_load(&self, address: std::net::IpAddr, load: f32) {
        let writer = self.writer();
        self.feedback
            .report_load(address, load, std::time::Instant::now());
        self.republish(&writer);
    }

    /// Recomputes the adaptive sets' feedback (slow starts ramp, loads expire, response times
    /// move) and publishes a new snapshot if it changed. Called every second.
    pub fn refresh_feedback(&self) {
        let writer = self.writer();
        let snapshot = self.current.load();
        if snapshot
            .zones
            .iter()
            .all(|z| z.slots.feedback_groups.is_empty())
        {
            return;
        }
        let statuses: Vec<&[Status]> = (0..snapshot.zones.len())
            .map(|i| snapshot.health.zone(i).status.as_slice())
            .collect();
        let feedback = self.feedback_for(&snapshot.zones, &statuses);
        let changed = feedback
            .iter()
            .enumerate()
            .any(|(i, f)| *f != snapshot.health.zone(i).feedback);
        if changed {
            drop(snapshot);
            self.republish(&writer);
        }
    }

    /// The feedback of every zone's adaptive sets now, with its probe statuses `status`.
    fn feedback_for(&self, zones: &ZoneSet, status: &[&[Status]]) -> Vec<Vec<health::Feedback>> {
        let rtts: Vec<Vec<Option<f64>>> = zones
            .iter()
            .map(|z| match z.slots.feedback_groups.is_empty() {
                true => Vec::new(),
                false => self.probes.rtts(&z.slots.probes),
            })
            .collect();
        let inputs: Vec<ZoneInput<'_>> = zones
            .iter()
            .zip(status)
            .zip(&rtts)
            .map(|((zone, status), rtt)| ZoneInput {
                groups: &zone.slots.feedback_groups,
                slots: zone.slots.feedback_slots,
                measured: Measured { status, rtt },
            })
            .collect();
        self.feedback.compute(&inputs, std::time::Instant::now())
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
        if let Some(db) = geo.as_deref()
            && (!same_geo || !same_zones)
        {
            crate::policy::geo::Geo::prepare_all(zones.geo_pools(), db);
            db.release_pages();
        }
        let statuses: Vec<Vec<Status>> = zones
            .iter()
            .map(|z| self.probes.statuses(&z.slots.probes))
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
                Arc::new(view)
            })
            .collect();
        let health = Health { zones: views };
        if !same_zones {
            self.targets
                .send_replace(Arc::from(zones.probes.as_slice()));
        }
        drop(old);
        self.current.publish(zones, geo, Arc::new(health));
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

/// Refreshes the adaptive sets' feedback every second until `shutdown`: slow starts ramp,
/// loads expire and response-time shares move between the events that publish anyway.
pub async fn run_feedback(control: Arc<Control>, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let control = control.clone();
                // The writer lock may be held by a long reload: not on a runtime thread.
                let _ = tokio::task::spawn_blocking(move || control.refresh_feedback()).await;
            }
            _ = shutdown.cancelled() => break,
        }
    }
}

fn open_geo(path: Option<&Path>) -> Result<Option<Arc<GeoDb>>, GeoError> {
    Ok(path.map(GeoDb::open).transpose()?.map(Arc::new))
}
