//! This instance's side of a nameserver set: a session with etcd that announces the instance
//! under a lease, catches the local copy up from the revision it had (changed keys read,
//! deleted ones found by a listing), then follows the watch, applying each committed change
//! through the one writer path exactly as a local change is (into the zones folder and its
//! journal: the local copy that start-up serves when etcd is away), and publishes this
//! instance's probe opinions. When etcd goes away the session ends: answers go on from the
//! local copy, health is decided from this instance's own probes, changes are refused; it is
//! tried again every 200 ms.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Control;
use super::cluster::Cluster;
use crate::health::Status;
use crate::store::etcd::{EtcdError, Event, Listing};
use crate::store::registry::{self, Registration};
use crate::store::shared::Key;
use crate::zone::Name;

/// This instance's lease: its opinions and presence outlive it by at most this.
const LEASE_TTL: u64 = 3;
/// How often the lease is renewed (and etcd's reachability checked).
const KEEPALIVE: Duration = Duration::from_millis(500);
/// A lost connection is tried again this often.
const RETRY: Duration = Duration::from_millis(200);
/// The most watched changes applied together.
const MAX_BATCH: usize = 1024;
/// etcd's limit of operations in one transaction.
const MAX_TXN_OPS: usize = 128;

/// Follows etcd until `shutdown`, if this instance is in a set.
pub async fn run_replica(control: Arc<Control>, shutdown: CancellationToken) {
    let Some(cluster) = control.cluster().cloned() else {
        return;
    };
    let mut reported = false;
    loop {
        let result = tokio::select! {
            result = session(&control, &cluster) => result,
            _ = shutdown.cancelled() => break,
        };
        let why = result.err().map_or_else(String::new, |e| e.to_string());
        if cluster.set_connected(false) {
            tracing::warn!("etcd: lost ({why}); answering from the local copy, refusing changes");
            refresh(&control).await;
        } else if !why.is_empty() && !std::mem::replace(&mut reported, true) {
            tracing::warn!("etcd: {why}; trying again every {} ms", RETRY.as_millis());
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.cancelled() => break,
        }
        if cluster.connected() {
            reported = false;
        }
    }
    // Leaving: this instance's opinions go with its lease, now rather than at its expiry.
    let lease = cluster.lease.load(std::sync::atomic::Ordering::Relaxed);
    if lease != 0 {
        let revoke = cluster.etcd.revoke(lease);
        let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
    }
}

/// One connection: announce, catch up, follow. Returns when etcd cannot be reached.
async fn session(control: &Arc<Control>, cluster: &Arc<Cluster>) -> Result<(), EtcdError> {
    let lease = cluster.etcd.grant(LEASE_TTL).await?;
    cluster
        .lease
        .store(lease, std::sync::atomic::Ordering::Relaxed);
    let me = cluster.keys.instance(cluster.instance());
    cluster.etcd.put(&me, b"{}", lease).await?;
    cluster.rotate_markers_lease().await?;
    let revision = catch_up(control, cluster).await?;
    let cluster_id = cluster.etcd.list(&me, true, 0).await?.cluster_id;
    // The session stays with the member its watch is on: when that member stops answering or
    // loses its leader, requests move to another, and the session starts again there.
    let member = cluster.etcd.preferred();
    let mut watch = cluster
        .etcd
        .watch(&cluster.keys.all(), revision + 1)
        .await?;
    cluster.set_connected(true);
    tracing::info!(
        "etcd: in the set as {} through {} at revision {revision}",
        cluster.instance(),
        cluster.etcd.endpoint(member)
    );
    for (key, record) in control.probe_records() {
        if record.status != Status::Unknown {
            cluster.queue_opinion(key.to_string(), record.status);
        }
    }
    refresh(control).await;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    loop {
        tokio::select! {
            batch = watch.next() => {
                let (mut revision, mut events) = batch?;
                let arrived = Instant::now();
                // What else has arrived goes in the same batch (one sync of the local copy).
                while events.len() < MAX_BATCH {
                    let Ok(more) = tokio::time::timeout(Duration::ZERO, watch.next()).await else {
                        break;
                    };
                    let (at, more) = more?;
                    revision = at;
                    events.extend(more);
                }
                let (control, cluster) = (control.clone(), cluster.clone());
                let _ = tokio::task::spawn_blocking(move || {
                        control.apply_events(&cluster, events, revision);
                        crate::metrics::global().record_store_apply(arrived.elapsed());
                })
                .await;
            }
            _ = keepalive.tick() => {
                if !cluster.etcd.keep_alive(lease).await? {
                    return Err(EtcdError::Refused("this instance's lease expired".into()));
                }
                if cluster.etcd.preferred() != member {
                    return Err(EtcdError::Unreachable(format!(
                        "member {} has no leader or does not answer; moving to {}",
                        cluster.etcd.endpoint(member),
                        cluster.etcd.endpoint(cluster.etcd.preferred()),
                    )));
                }
                cluster.rotate_markers_lease().await?;
                cluster.compact_history().await;
                cluster.save(&cluster_id);
            }
            _ = cluster.outbox_ready.notified() => publish_opinions(cluster, lease).await?,
        }
    }
}

/// Writes this instance's queued opinions (a failed write queues them again).
async fn publish_opinions(cluster: &Cluster, lease: i64) -> Result<(), EtcdError> {
    let queued: Vec<(String, Vec<u8>)> = cluster
        .take_outbox()
        .into_iter()
        .map(|(probe, status)| {
            let key = cluster.keys.opinion(cluster.instance(), &probe);
            (key, status.to_string().into_bytes())
        })
        .collect();
    for batch in queued.chunks(MAX_TXN_OPS) {
        if let Err(error) = cluster.etcd.put_all(batch, lease).await {
            for (key, value) in &queued {
                let probe = key.rsplit_once(cluster.instance()).map_or("", |(_, p)| p);
                let status = status_of(value).unwrap_or_default();
                cluster.queue_opinion(probe.trim_start_matches('/').to_owned(), status);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Brings the local copy to etcd's current state; the revision it is at. An empty prefix is
/// first filled with this instance's zones (the set's first start).
async fn catch_up(control: &Arc<Control>, cluster: &Arc<Cluster>) -> Result<i64, EtcdError> {
    let prefix = cluster.keys.all();
    let saved = cluster.saved();
    let mut listing = cluster.etcd.list(&prefix, true, 0).await?;
    // Another etcd than the one the local copy came from (or the same, emptied and
    // restarted): read everything.
    let had = match saved.cluster_id == listing.cluster_id && saved.revision <= listing.revision {
        true => saved.revision,
        false => 0,
    };
    let zones = |l: &Listing| {
        l.kvs
            .iter()
            .filter(|kv| matches!(cluster.keys.parse(&kv.key), Some(Key::Zone(_))))
            .count()
    };
    if zones(&listing) == 0 && had == 0 {
        let seeded = seed(control, cluster).await?;
        if seeded > 0 {
            tracing::info!("etcd: the set had no zones; wrote this instance's {seeded}");
        }
        // Whoever filled it: listed again.
        listing = cluster.etcd.list(&prefix, true, 0).await?;
    }
    let changed = cluster.etcd.list(&prefix, false, had).await?;
    let health = cluster.etcd.list(&cluster.keys.health(), false, 0).await?;
    let revision = listing.revision;
    let (control, cluster) = (control.clone(), cluster.clone());
    tokio::task::spawn_blocking(move || {
        control.apply_listing(&cluster, &listing, changed, &health);
    })
    .await
    .map_err(|e| EtcdError::Refused(e.to_string()))?;
    Ok(revision)
}

/// Writes each of this instance's TOML zones that etcd does not hold; how many.
async fn seed(control: &Control, cluster: &Cluster) -> Result<usize, EtcdError> {
    let origins: Vec<Name> = control
        .snapshot()
        .zones
        .iter()
        .map(|z| z.origin.clone())
        .collect();
    let mut seeded = 0;
    for origin in origins {
        let Ok(Some(doc)) = control.store.read(&origin) else {
            continue;
        };
        let key = cluster.keys.zone(&origin);
        let written = cluster
            .etcd
            .write_if(&key, Some(doc.text.as_bytes()), 0, 0, None);
        if let crate::store::etcd::Written::At(_) = written.await? {
            seeded += 1;
        }
    }
    Ok(seeded)
}

/// After the connection changed: the prober's share and the health decisions again.
async fn refresh(control: &Arc<Control>) {
    let control = control.clone();
    let _ = tokio::task::spawn_blocking(move || control.set_changed()).await;
}

fn status_of(value: &[u8]) -> Option<Status> {
    match value {
        b"up" => Some(Status::Up),
        b"down" => Some(Status::Down),
        _ => None,
    }
}

impl Control {
    /// The set's membership or opinions changed: the prober's share and the decisions again.
    fn set_changed(&self) {
        let writer = self.writer();
        let probes = self.current.load().zones.probes.clone();
        self.send_targets(&probes);
        self.republish(&writer);
    }

    /// Applies a fresh listing: `keys` (every key, no values), `changed` (the keys changed
    /// since the local copy's revision, with values), `health` (every opinion).
    fn apply_listing(&self, cluster: &Cluster, keys: &Listing, changed: Listing, health: &Listing) {
        let mut zones = HashSet::new();
        let mut registrations = HashSet::new();
        cluster.clear_others();
        for kv in &keys.kvs {
            match cluster.keys.parse(&kv.key) {
                Some(Key::Zone(origin)) => {
                    cluster.set_zone_revision(&origin, Some(kv.mod_revision));
                    zones.insert(origin);
                }
                Some(Key::Registration(key)) => {
                    // Its lease, so that a renewal through this instance renews it (a restart
                    // does not lose it).
                    let mut leases = cluster.leases.lock().unwrap_or_else(|e| e.into_inner());
                    leases.insert(key.clone(), kv.lease);
                    registrations.insert(key);
                }
                Some(Key::Instance(name)) => {
                    cluster.set_instance(&name, true);
                }
                _ => {}
            }
        }
        for kv in &health.kvs {
            if let Some(Key::Opinion { instance, probe }) = cluster.keys.parse(&kv.key) {
                cluster.set_opinion(&instance, &probe, status_of(&kv.value));
            }
        }
        let events = changed.kvs.into_iter().map(Event::Put);
        let events = events.filter(|e| !matches!(e, Event::Put(kv) if matches!(cluster.keys.parse(&kv.key), Some(Key::Opinion { .. } | Key::Instance(_)))));
        self.apply_events(cluster, events.collect(), 0);
        // What etcd no longer holds.
        let served: Vec<Name> = self
            .current
            .load()
            .zones
            .iter()
            .map(|z| z.origin.clone())
            .collect();
        for origin in served {
            if !zones.contains(&origin)
                && matches!(self.store.read(&origin), Ok(Some(_)))
                && let Some(ticket) = self.apply_zone(cluster, &origin, None, keys.revision)
            {
                let _ = self.store.sync(ticket);
            }
        }
        for r in self.store.registrations() {
            if !registrations.contains(&r.key()) {
                self.apply_registration(cluster, r.key(), None);
            }
        }
        self.set_changed();
        cluster.set_applied(keys.revision);
        cluster.set_durable(keys.revision);
    }

    /// Applies committed changes, then serves `revision` (0: the caller does).
    fn apply_events(&self, cluster: &Cluster, events: Vec<Event>, revision: i64) {
        let mut health = false;
        // The local copy is synced once for the batch (etcd has it durably already).
        let mut ticket = None;
        for event in events {
            let (key, value, at, lease) = match event {
                Event::Put(kv) => (kv.key, Some(kv.value), kv.mod_revision, kv.lease),
                Event::Delete { key, mod_revision } => (key, None, mod_revision, 0),
            };
            match cluster.keys.parse(&key) {
                Some(Key::Zone(origin)) => {
                    let text = value.map(String::from_utf8);
                    match text.transpose() {
                        Ok(text) => {
                            ticket = self.apply_zone(cluster, &origin, text, at).or(ticket);
                        }
                        Err(_) => tracing::error!("etcd: {key} is not UTF-8 text; ignored"),
                    }
                }
                Some(Key::Registration(key)) => {
                    let parsed = value.map(|v| serde_json::from_slice::<Registration>(&v));
                    match parsed.transpose() {
                        Ok(r) => self.apply_registration(cluster, key, r.map(|r| (r, lease))),
                        Err(e) => tracing::error!("etcd: registration {key:?}: {e}; ignored"),
                    }
                }
                Some(Key::Instance(name)) => health |= cluster.set_instance(&name, value.is_some()),
                Some(Key::Opinion { instance, probe }) => {
                    let status = value.as_deref().and_then(status_of);
                    health |= cluster.set_opinion(&instance, &probe, status);
                }
                None => {}
            }
        }
        if health {
            self.set_changed();
        }
        if revision > 0 {
            // Served: the writers waiting for it are answered (etcd has it durably).
            cluster.set_applied(revision);
        }
        match ticket.map_or(Ok(()), |t| self.store.sync(t)) {
            Ok(()) if revision > 0 => cluster.set_durable(revision),
            Ok(()) => {}
            // The next start catches up from the revision the local copy last had.
            Err(error) => tracing::error!(%error, "cannot sync the local copy of the set's zones"),
        }
    }

    /// Serves zone `origin` as etcd holds it at `revision` (`None`: removed), appended to the
    /// local copy (the ticket to sync, if anything was); a zone that does not build here is
    /// logged and the old one kept.
    fn apply_zone(
        &self,
        cluster: &Cluster,
        origin: &Name,
        text: Option<String>,
        revision: i64,
    ) -> Option<crate::store::Ticket> {
        let writer = self.writer();
        cluster.set_zone_revision(origin, text.is_some().then_some(revision));
        let current = match self.store.read(origin) {
            Ok(doc) => doc.map(|d| d.text),
            Err(error) => {
                tracing::error!(%error, "{origin}: cannot read the local copy");
                None
            }
        };
        if current == text {
            return None;
        }
        self.forget_specs(Some(origin));
        let registered = self.store.registered(origin);
        let built = self.store.load_one(origin, text.as_deref(), &registered);
        let appended = built.map_err(|e| e.to_string()).and_then(|zone| {
            let ticket = self.store.append(origin, text.as_deref());
            ticket.map(|t| (zone, t)).map_err(|e| e.to_string())
        });
        match appended {
            Ok((zone, ticket)) => {
                self.serve_appended(writer, origin, Some(zone));
                Some(ticket)
            }
            Err(error) => {
                tracing::error!(
                    "{origin} as etcd holds it at revision {revision} cannot be served here; \
                     the old one is: {error}"
                );
                None
            }
        }
    }

    /// Serves a registration as etcd holds it (`None`: ended).
    fn apply_registration(
        &self,
        cluster: &Cluster,
        key: registry::Key,
        registration: Option<(Registration, i64)>,
    ) {
        let Ok(origin) = Name::from_ascii(&key.zone) else {
            return;
        };
        let mut leases = cluster.leases.lock().unwrap_or_else(|e| e.into_inner());
        let result = match registration {
            Some((registration, lease)) => {
                leases.insert(key, lease);
                drop(leases);
                self.register_here(&origin, registration).map(drop)
            }
            None => {
                leases.remove(&key);
                drop(leases);
                self.remove(&origin, &key.pool, key.address, None).map(drop)
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "etcd: a registration in {origin}");
        }
    }
}
