//! This instance's side of a nameserver set: a connection to etcd that announces the instance
//! under a lease, catches the local copy up from the revision it had (changed keys read,
//! deleted ones found by a listing), then follows the watch, applying each committed change
//! through the one writer path exactly as a local change is (into the zones folder and its
//! journal: the local copy that start-up serves when etcd is away), and publishes this
//! instance's probe opinions. When etcd goes away the connection ends: answers go on from the
//! local copy, health is decided from this instance's own probes, changes are refused; it is
//! tried again every 200 ms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Control;
use super::apply::Listed;
use super::cluster::Cluster;
use super::set_writes::Generation;
use crate::health::Status;
use crate::store::etcd::{EtcdError, Listing, MAX_TXN_OPS, Op, Written};
use crate::store::pieces;
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

/// Follows etcd until `shutdown`, if this instance is in a set.
pub async fn run_replica(control: Arc<Control>, shutdown: CancellationToken) {
    let Some(cluster) = control.cluster().cloned() else {
        return;
    };
    let mut reported = false;
    loop {
        let result = tokio::select! {
            result = connection(&control, &cluster) => result,
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
async fn connection(control: &Arc<Control>, cluster: &Arc<Cluster>) -> Result<(), EtcdError> {
    let lease = cluster.etcd.grant(LEASE_TTL).await?;
    cluster
        .lease
        .store(lease, std::sync::atomic::Ordering::Relaxed);
    let me = cluster.keys.instance(cluster.instance());
    cluster.etcd.put(&me, b"{}", lease).await?;
    // Renewed beside the connection, so that a long catch-up or change (a large zone read whole)
    // does not let it run out.
    let (lost, mut lease_lost) = tokio::sync::oneshot::channel();
    let keeper = tokio::spawn(keep_lease(cluster.clone(), lease, lost));
    let _keeper = AbortOnDrop(keeper.abort_handle());
    cluster.rotate_markers_lease().await?;
    let revision = tokio::select! {
        revision = catch_up(control, cluster) => revision?,
        lost = &mut lease_lost => return Err(lease_error(lost)),
    };
    let cluster_id = cluster.etcd.list(&me, true, 0).await?.cluster_id;
    // The connection stays with the member its watch is on: when that member stops answering or
    // loses its leader, requests move to another, and the connection starts again there.
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
                let applied = tokio::task::spawn_blocking(move || {
                    let applied = control.apply_events(&cluster, events, revision);
                    crate::metrics::global().record_store_apply(arrived.elapsed());
                    applied
                })
                .await;
                applied.map_err(|e| EtcdError::Refused(e.to_string()))??;
            }
            lost = &mut lease_lost => return Err(lease_error(lost)),
            _ = keepalive.tick() => {
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

/// Renews `lease` every `KEEPALIVE` until that fails: why, sent to `lost`.
async fn keep_lease(
    cluster: Arc<Cluster>,
    lease: i64,
    lost: tokio::sync::oneshot::Sender<EtcdError>,
) {
    let mut tick = tokio::time::interval(KEEPALIVE);
    loop {
        tick.tick().await;
        let why = match cluster.etcd.keep_alive(lease).await {
            Ok(true) => continue,
            Ok(false) => EtcdError::Refused("this instance's lease expired".into()),
            Err(error) => error,
        };
        let _ = lost.send(why);
        return;
    }
}

fn lease_error(lost: Result<EtcdError, tokio::sync::oneshot::error::RecvError>) -> EtcdError {
    lost.unwrap_or_else(|_| EtcdError::Unreachable("the lease's keepalive stopped".into()))
}

/// Aborts a task when the connection that started it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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

/// Brings the local copy to etcd's current state; the revision it is at. Zones kept whole
/// under one key (sets of an earlier version) are first moved into pieces; an empty set is
/// first filled with this instance's zones (the set's first start).
async fn catch_up(control: &Arc<Control>, cluster: &Arc<Cluster>) -> Result<i64, EtcdError> {
    let keys = &cluster.keys;
    let legacy = cluster.etcd.list(&keys.legacy_zones(), false, 0).await?;
    if !legacy.kvs.is_empty() {
        migrate(cluster, &legacy).await?;
    }
    let saved = cluster.saved();
    let mut metas = cluster.etcd.list(&keys.metas(), false, 0).await?;
    // Another etcd than the one the local copy came from (or the same, emptied and
    // restarted): read everything.
    let same = saved.cluster_id == metas.cluster_id && saved.revision <= metas.revision;
    let had = if same { saved.revision } else { 0 };
    let mut seeded = HashMap::new();
    if metas.kvs.is_empty() && had == 0 {
        seeded = seed(control, cluster).await?;
        if !seeded.is_empty() {
            let count = seeded.len();
            tracing::info!("etcd: the set had no zones; wrote this instance's {count}");
        }
        // Whoever filled it: listed again.
        metas = cluster.etcd.list(&keys.metas(), false, 0).await?;
    }
    let revision = metas.revision;
    let listed = Listed {
        metas,
        registrations: cluster.etcd.list(&keys.registrations(), true, 0).await?,
        changed: cluster.etcd.list(&keys.registrations(), false, had).await?,
        instances: cluster.etcd.list(&keys.instances(), true, 0).await?,
        health: cluster.etcd.list(&keys.health(), false, 0).await?,
        had,
        seeded,
    };
    let (control, cluster) = (control.clone(), cluster.clone());
    tokio::task::spawn_blocking(move || control.apply_listing(&cluster, listed))
        .await
        .map_err(|e| EtcdError::Refused(e.to_string()))??;
    Ok(revision)
}

/// Writes each of this instance's TOML zones that etcd does not hold; the revision of each
/// one written.
async fn seed(control: &Control, cluster: &Cluster) -> Result<HashMap<Name, i64>, EtcdError> {
    let origins: Vec<Name> = control
        .snapshot()
        .zones
        .iter()
        .map(|z| z.origin.clone())
        .collect();
    let mut seeded = HashMap::new();
    for origin in origins {
        let Ok(Some(doc)) = control.store.read(&origin) else {
            continue;
        };
        let meta = cluster.keys.meta(&origin);
        let guards = [(meta.as_str(), 0)];
        let written = write_whole(cluster, &origin, &doc.text, &guards, &[]).await?;
        if let Some(Written::At(revision)) = written {
            seeded.insert(origin, revision);
        }
    }
    Ok(seeded)
}

/// Moves each zone kept whole under one key into pieces (one instance does; the others'
/// conditions fail) and deletes the old key with the switch; how many.
async fn migrate(cluster: &Cluster, legacy: &Listing) -> Result<usize, EtcdError> {
    let mut moved = 0;
    for kv in &legacy.kvs {
        let Some(Key::Legacy(origin)) = cluster.keys.parse(&kv.key) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&kv.value) else {
            tracing::error!("etcd: {} is not UTF-8 text; left where it is", kv.key);
            continue;
        };
        let meta = cluster.keys.meta(&origin);
        let guards = [(meta.as_str(), 0), (kv.key.as_str(), kv.mod_revision)];
        let also = [Op::Delete(kv.key.clone())];
        match write_whole(cluster, &origin, text, &guards, &also).await? {
            Some(Written::At(_)) => {
                tracing::info!(
                    "etcd: {origin} moved from one key to a key per record set and pool"
                );
                moved += 1;
            }
            Some(Written::Conflict(_)) if cluster.etcd.get(&meta).await?.0.is_some() => {
                tracing::warn!(
                    "etcd: {} is left from an earlier version and ignored: {origin} is kept \
                     in pieces already",
                    kv.key
                );
            }
            Some(Written::Conflict(_)) => {}
            None => {}
        }
    }
    Ok(moved)
}

/// Writes zone `origin`'s document `text` as a new generation if `guards` hold, with `also`;
/// `None` (logged) if the text cannot be cut into pieces.
async fn write_whole(
    cluster: &Cluster,
    origin: &Name,
    text: &str,
    guards: &[(&str, i64)],
    also: &[Op],
) -> Result<Option<Written>, EtcdError> {
    let pieces = crate::zone::zone_spec(text)
        .map_err(|e| e.to_string())
        .and_then(|spec| pieces::split(origin, &spec));
    let pieces = match pieces {
        Ok(pieces) => pieces,
        Err(error) => {
            tracing::error!("{origin}: cannot be written to etcd: {error}");
            return Ok(None);
        }
    };
    let generation = Generation {
        origin,
        zone: pieces.meta,
        values: &pieces.values,
        old: None,
    };
    let written = cluster
        .write_generation(generation, guards, also, None)
        .await?;
    Ok(Some(written))
}

/// After the connection changed: the prober's share and the health decisions again.
async fn refresh(control: &Arc<Control>) {
    let control = control.clone();
    let _ = tokio::task::spawn_blocking(move || control.set_changed()).await;
}

pub(super) fn status_of(value: &[u8]) -> Option<Status> {
    match value {
        b"up" => Some(Status::Up),
        b"down" => Some(Status::Down),
        _ => None,
    }
}

impl Control {
    /// The set's membership or opinions changed: the prober's share and the decisions again.
    pub(super) fn set_changed(&self) {
        let writer = self.writer();
        let probes = self.current.load().zones.probes.clone();
        self.send_targets(&probes);
        self.republish(&writer);
    }
}
