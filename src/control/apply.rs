//! What etcd committed, applied to this instance through the one writer path, into the
//! zones folder and its journal (the local copy, synced once per batch): a change to a zone's
//! pieces as the same edits the API makes locally (costing what it touches, whatever the
//! zone's size), a zone switched to a new generation or changed beyond its serial read whole,
//! registrations, and the set's instances and their opinions.

use std::collections::{HashMap, HashSet};

use super::Control;
use super::cluster::{Cluster, SharedZone};
use crate::store::Ticket;
use crate::store::change::Edit;
use crate::store::etcd::{EtcdError, Event, Listing};
use crate::store::pieces::{self, Meta, Piece};
use crate::store::registry::{self, Registration};
use crate::store::shared::Key;
use crate::zone::Name;

/// What etcd holds, listed when a connection starts (see `replica::catch_up`).
pub(super) struct Listed {
    /// Every zone's metadata, with values.
    pub metas: Listing,
    /// Every registration, without values.
    pub registrations: Listing,
    /// The registrations changed since the local copy's revision, with values.
    pub changed: Listing,
    pub instances: Listing,
    pub health: Listing,
    /// The revision the local copy holds.
    pub had: i64,
    /// The zones this instance just wrote from its local copy, at these revisions.
    pub seeded: HashMap<Name, i64>,
}

/// What one batch of events does to a zone.
enum Pending {
    /// Edits in order, and the zone as served once they are applied.
    Edits {
        edits: Vec<Edit>,
        zone: Box<SharedZone>,
    },
    /// Read whole from etcd.
    Read,
    Removed,
}

impl Control {
    /// Applies a fresh listing; an error if a zone could not be read from etcd (the connection
    /// starts again).
    pub(super) fn apply_listing(&self, cluster: &Cluster, listed: Listed) -> Result<(), EtcdError> {
        cluster.clear_others();
        for kv in &listed.instances.kvs {
            if let Some(Key::Instance(name)) = cluster.keys.parse(&kv.key) {
                cluster.set_instance(&name, true);
            }
        }
        for kv in &listed.health.kvs {
            if let Some(Key::Opinion { instance, probe }) = cluster.keys.parse(&kv.key) {
                cluster.set_opinion(&instance, &probe, super::replica::status_of(&kv.value));
            }
        }
        let mut ticket = None;
        let mut in_set = HashSet::new();
        for kv in &listed.metas.kvs {
            let Some(Key::Meta(origin)) = cluster.keys.parse(&kv.key) else {
                continue;
            };
            in_set.insert(origin.clone());
            let here = matches!(self.store.read(&origin), Ok(Some(_)));
            let current = kv.mod_revision <= listed.had
                || listed.seeded.get(&origin) == Some(&kv.mod_revision);
            match serde_json::from_slice::<Meta>(&kv.value) {
                // Unchanged since the local copy's revision (or written from it): served as
                // it is.
                Ok(meta) if here && current => {
                    let zone = SharedZone {
                        revision: kv.mod_revision,
                        meta,
                        read_at: listed.metas.revision,
                    };
                    cluster.set_zone(&origin, Some(zone));
                }
                _ => ticket = self.read_whole(cluster, &origin)?.or(ticket),
            }
        }
        // What etcd no longer holds.
        let served: Vec<Name> = self
            .current
            .load()
            .zones
            .iter()
            .map(|z| z.origin.clone())
            .collect();
        for origin in served {
            if !in_set.contains(&origin) && matches!(self.store.read(&origin), Ok(Some(_))) {
                ticket = self.remove_zone(cluster, &origin).or(ticket);
            }
        }
        self.apply_registrations(cluster, &listed);
        if let Err(error) = self.store.sync(ticket) {
            tracing::error!(%error, "cannot sync the local copy of the set's zones");
        }
        self.set_changed();
        cluster.set_applied(listed.metas.revision);
        cluster.set_durable(listed.metas.revision);
        Ok(())
    }

    /// The registrations of a fresh listing: their leases (so that a renewal through this
    /// instance renews them, a restart does not lose them), the changed ones, the gone ones.
    fn apply_registrations(&self, cluster: &Cluster, listed: &Listed) {
        let mut registrations = HashSet::new();
        for kv in &listed.registrations.kvs {
            if let Some(Key::Registration(key)) = cluster.keys.parse(&kv.key) {
                let mut leases = cluster.leases.lock().unwrap_or_else(|e| e.into_inner());
                leases.insert(key.clone(), kv.lease);
                registrations.insert(key);
            }
        }
        for kv in &listed.changed.kvs {
            if let Some(Key::Registration(key)) = cluster.keys.parse(&kv.key) {
                match serde_json::from_slice::<Registration>(&kv.value) {
                    Ok(r) => self.apply_registration(cluster, key, Some((r, kv.lease))),
                    Err(e) => tracing::error!("etcd: registration {key:?}: {e}; ignored"),
                }
            }
        }
        for r in self.store.registrations() {
            if !registrations.contains(&r.key()) {
                self.apply_registration(cluster, r.key(), None);
            }
        }
    }

    /// Applies committed changes, then serves `revision`; an error if a zone could not be
    /// read from etcd (the connection starts again, and catches up from what is durable).
    pub(super) fn apply_events(
        &self,
        cluster: &Cluster,
        events: Vec<Event>,
        revision: i64,
    ) -> Result<(), EtcdError> {
        let mut health = false;
        let mut pending: HashMap<Name, Pending> = HashMap::new();
        // The local copy is synced once for the batch (etcd has it durably already).
        let mut ticket = None;
        for event in events {
            let (key, value, at, lease) = match event {
                Event::Put(kv) => (kv.key, Some(kv.value), kv.mod_revision, kv.lease),
                Event::Delete { key, mod_revision } => (key, None, mod_revision, 0),
            };
            match cluster.keys.parse(&key) {
                Some(Key::Meta(origin)) => meta_event(cluster, &mut pending, origin, value, at),
                Some(Key::Piece {
                    origin,
                    generation,
                    piece,
                }) => piece_event(&mut pending, origin, &generation, &piece, value, at),
                Some(Key::Legacy(_)) if value.is_some() => tracing::warn!(
                    "etcd: {key} holds a whole zone, as sets of an earlier version kept it; \
                     ignored (this version keeps a key per record set: upgrade every instance)"
                ),
                Some(Key::Registration(key)) => {
                    // In order with the zones' changes (a registration needs its pool).
                    let zones = std::mem::take(&mut pending);
                    ticket = self.apply_pending(cluster, zones)?.or(ticket);
                    let parsed = value.map(|v| serde_json::from_slice::<Registration>(&v));
                    match parsed.transpose() {
                        Ok(r) => self.apply_registration(cluster, key, r.map(|r| (r, lease))),
                        Err(e) => tracing::error!("etcd: registration {key:?}: {e}; ignored"),
                    }
                }
                Some(Key::Instance(name)) => health |= cluster.set_instance(&name, value.is_some()),
                Some(Key::Opinion { instance, probe }) => {
                    let status = value.as_deref().and_then(super::replica::status_of);
                    health |= cluster.set_opinion(&instance, &probe, status);
                }
                _ => {}
            }
        }
        ticket = self.apply_pending(cluster, pending)?.or(ticket);
        if health {
            self.set_changed();
        }
        // Served: the writers waiting for it are answered (etcd has it durably).
        cluster.set_applied(revision);
        match self.store.sync(ticket) {
            Ok(()) => cluster.set_durable(revision),
            // The next start catches up from the revision the local copy last had.
            Err(error) => tracing::error!(%error, "cannot sync the local copy of the set's zones"),
        }
        Ok(())
    }

    /// Applies what a batch did to each zone; the ticket to sync.
    fn apply_pending(
        &self,
        cluster: &Cluster,
        pending: HashMap<Name, Pending>,
    ) -> Result<Ticket, EtcdError> {
        let mut ticket = None;
        for (origin, change) in pending {
            let applied = match change {
                Pending::Edits { edits, zone } if !edits.is_empty() => {
                    match self.apply_edits(&origin, &edits, zone.meta.serial()) {
                        Ok(applied) => {
                            cluster.set_zone(&origin, Some(*zone));
                            applied
                        }
                        Err(error) => {
                            tracing::warn!(
                                "{origin}: a change committed at revision {} does not apply \
                                 here ({error}); reading the zone whole",
                                zone.revision
                            );
                            self.read_whole(cluster, &origin)?
                        }
                    }
                }
                // Only the serial changed.
                Pending::Edits { .. } | Pending::Read => self.read_whole(cluster, &origin)?,
                Pending::Removed => self.remove_zone(cluster, &origin),
            };
            ticket = applied.or(ticket);
        }
        Ok(ticket)
    }

    /// Reads zone `origin` whole from etcd (its metadata and its generation's pieces at one
    /// revision) and serves it; the ticket to sync.
    fn read_whole(&self, cluster: &Cluster, origin: &Name) -> Result<Ticket, EtcdError> {
        let started = std::time::Instant::now();
        let read = cluster.block_on_any(async {
            let (meta, at) = cluster.etcd.get(&cluster.keys.meta(origin)).await?;
            let Some(meta) = meta else {
                return Ok(None);
            };
            let revision = meta.mod_revision;
            let meta: Meta = serde_json::from_slice(&meta.value)
                .map_err(|e| EtcdError::Refused(format!("{origin}'s metadata: {e}")))?;
            let prefix = cluster.keys.generation(origin, &meta.generation);
            let kvs = cluster.etcd.list_at(&prefix, at).await?;
            Ok(Some((revision, meta, kvs, at)))
        })?;
        let Some((revision, meta, kvs, at)) = read else {
            return Ok(self.remove_zone(cluster, origin));
        };
        let values = kvs
            .iter()
            .filter_map(|kv| match cluster.keys.parse(&kv.key) {
                Some(Key::Piece { piece, .. }) => Some((piece, kv.value.as_slice())),
                _ => None,
            });
        let text = pieces::assemble(&meta, values)
            .and_then(|spec| toml::to_string(&spec).map_err(|e| e.to_string()));
        let text = match text {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(
                    "{origin} as etcd holds it at revision {revision} cannot be read: {error}; \
                     the old one is served"
                );
                return Ok(None);
            }
        };
        let listed = started.elapsed();
        let pieces = kvs.len();
        let (applied, ticket) = self.apply_zone(origin, Some(text), revision);
        tracing::info!(
            "etcd: read {origin} whole at revision {revision} ({pieces} record sets and pools): \
             {} ms to read, {} ms in all",
            listed.as_millis(),
            started.elapsed().as_millis()
        );
        if applied {
            let zone = SharedZone {
                revision,
                meta,
                read_at: at,
            };
            cluster.set_zone(origin, Some(zone));
        }
        Ok(ticket)
    }

    fn remove_zone(&self, cluster: &Cluster, origin: &Name) -> Ticket {
        let (_, ticket) = self.apply_zone(origin, None, 0);
        cluster.set_zone(origin, None);
        ticket
    }

    /// Serves zone `origin` as `text` (`None`: removed), appended to the local copy: whether
    /// it is served, and the ticket to sync. A zone that does not build here is logged and
    /// the old one kept.
    fn apply_zone(&self, origin: &Name, text: Option<String>, revision: i64) -> (bool, Ticket) {
        let writer = self.writer();
        let current = match self.store.read(origin) {
            Ok(doc) => doc.map(|d| d.text),
            Err(error) => {
                tracing::error!(%error, "{origin}: cannot read the local copy");
                None
            }
        };
        if current == text {
            return (true, None);
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
                (true, ticket)
            }
            Err(error) => {
                tracing::error!(
                    "{origin} as etcd holds it at revision {revision} cannot be served here; \
                     the old one is: {error}"
                );
                (false, None)
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

/// A zone's metadata changed at revision `at` (`None`: the zone was deleted). Every change
/// writes it first in its transaction: a serial alone starts the edits that follow it; a
/// new generation or other metadata has the zone read whole.
fn meta_event(
    cluster: &Cluster,
    pending: &mut HashMap<Name, Pending>,
    origin: Name,
    value: Option<Vec<u8>>,
    at: i64,
) {
    let known = match pending.get(&origin) {
        Some(Pending::Edits { zone, .. }) => Some((**zone).clone()),
        // Read whole at the end of the batch: whatever this is, it is in.
        Some(Pending::Read) => return,
        Some(Pending::Removed) => None,
        None => cluster.zone(&origin),
    };
    if known.as_ref().is_some_and(|k| at <= k.read_at) {
        return;
    }
    let Some(value) = value else {
        pending.insert(origin, Pending::Removed);
        return;
    };
    let meta: Meta = match serde_json::from_slice(&value) {
        Ok(meta) => meta,
        Err(error) => {
            tracing::error!("etcd: {origin}'s metadata: {error}; ignored");
            return;
        }
    };
    match known {
        Some(known) if !known.meta.differs_beyond_serial(&meta) => {
            let zone = Box::new(SharedZone {
                revision: at,
                meta,
                read_at: known.read_at,
            });
            match pending.get_mut(&origin) {
                Some(Pending::Edits { zone: z, .. }) => *z = zone,
                _ => {
                    let edits = Vec::new();
                    pending.insert(origin, Pending::Edits { edits, zone });
                }
            }
        }
        _ => {
            pending.insert(origin, Pending::Read);
        }
    }
}

/// A piece changed at revision `at`: an edit, if it is part of a change whose metadata came
/// first (the pieces of a generation not yet switched to, and of one switched from, are not).
fn piece_event(
    pending: &mut HashMap<Name, Pending>,
    origin: Name,
    generation: &str,
    piece: &Piece,
    value: Option<Vec<u8>>,
    at: i64,
) {
    let Some(Pending::Edits { edits, zone }) = pending.get_mut(&origin) else {
        return;
    };
    if zone.meta.generation != generation || zone.revision != at {
        return;
    }
    match pieces::edit_of(piece, value.as_deref()) {
        Ok(Some(edit)) => edits.push(edit),
        Ok(None) => {
            pending.insert(origin, Pending::Read);
        }
        Err(error) => {
            tracing::warn!("etcd: {origin}: {error}; reading the zone whole");
            pending.insert(origin, Pending::Read);
        }
    }
}
