//! Changes made through a nameserver set (see `cluster`): validated here by the same build as
//! start-up, written to etcd conditionally on the revision this instance serves, and
//! acknowledged once etcd committed them and this instance serves them (its watch applies them,
//! as every other instance's does). A write that lost a race with another instance catches up
//! and is made again on the new state (where `If-Match` then refuses it, it is refused).

use std::time::{Duration, Instant};

use super::cluster::{Cluster, Pending, unavailable};
use super::registrations::Registering;
use super::{Control, Edited, UpdateError};
use crate::store::Doc;
use crate::store::change::{Edit, ZoneEdit};
use crate::store::edit::{self, EditError};
use crate::store::etcd::Written;
use crate::store::registry::{Key, Registration};
use crate::zone::Name;

/// A write that keeps losing races is given up after this long.
const GIVE_UP: Duration = Duration::from_secs(10);

impl Control {
    /// [`Control::update_zone`] in a set. One writer of the zone at a time on this instance,
    /// each working on the text the previous one wrote (served or not yet): its changes follow
    /// each other at the pace of etcd's commits, and wait for the watch only to answer.
    pub(super) fn update_shared<E: From<UpdateError>>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        change: &mut dyn FnMut(Option<Doc>) -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        let origin = origin.to_lowercase();
        let writing = cluster.writing(&origin);
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let mut pending = writing.lock().unwrap_or_else(|e| e.into_inner());
            let (current, revision) = self.latest(cluster, &origin, &mut pending)?;
            let before = current.as_ref().map(|d| d.text.clone());
            let next = change(current)?;
            if next == before {
                return Ok(next);
            }
            let registered = self.store.registered(&origin);
            self.store
                .load_one(&origin, next.as_deref(), &registered)
                .map_err(UpdateError::from)?;
            let key = cluster.keys.zone(&origin);
            let value = next.as_deref().map(str::as_bytes);
            let write = cluster.etcd.write_if(&key, value, revision, 0);
            match cluster.block_on(write)? {
                Written::At(revision) => {
                    *pending = Some(Pending {
                        text: next.clone(),
                        revision,
                    });
                    drop(pending);
                    if !cluster.wait_applied(revision) {
                        tracing::warn!(
                            "{origin}: committed at revision {revision}, not yet served here"
                        );
                    }
                    return Ok(next);
                }
                // Another instance changed the zone first: serve what it did, then try again.
                Written::Conflict(now) => {
                    *pending = None;
                    drop(pending);
                    if Instant::now() > deadline {
                        let message =
                            format!("{origin} kept changing under this change; try again");
                        return Err(unavailable(message).into());
                    }
                    cluster.wait_applied(now);
                    std::thread::sleep(Duration::from_micros(fastrand::u64(0..2000)));
                }
            }
        }
    }

    /// Zone `origin`'s latest document as this instance knows it — its own last write if the
    /// watch has not served it yet, else what it serves — and the key's revision there.
    fn latest(
        &self,
        cluster: &Cluster,
        origin: &Name,
        pending: &mut Option<Pending>,
    ) -> Result<(Option<Doc>, i64), UpdateError> {
        let _writer = self.writer();
        let served = cluster.zone_revision(origin);
        if let Some(p) = pending.as_ref().filter(|p| p.revision > served) {
            let doc = p.text.as_ref().map(|text| Doc {
                etag: crate::store::etag(text),
                text: text.clone(),
            });
            return Ok((doc, p.revision));
        }
        *pending = None;
        Ok((self.store.read(origin)?, served))
    }

    /// [`Control::edit_zone`] in a set: the edit applied to the zone's document, its serial
    /// bumped, written whole.
    pub(super) fn edit_shared<E>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        edit: Edit,
        check: &mut dyn FnMut(Option<&str>) -> Result<(), E>,
    ) -> Result<Edited, E>
    where
        E: From<UpdateError> + From<EditError>,
    {
        let mut serial = None;
        let text = self.update_shared::<E>(cluster, origin, &mut |doc: Option<Doc>| {
            check(doc.as_ref().map(|d| d.etag.as_str()))?;
            let doc = doc.ok_or_else(|| E::from(EditError::NotFound(format!("zone {origin}"))))?;
            let mut document = edit::parse(&doc.text).map_err(E::from)?;
            let edit = ZoneEdit {
                edit: edit.clone(),
                serial: edit::serial(&document).map(|s| s.saturating_add(1)),
            };
            edit.apply_to_document(&mut document, origin)
                .map_err(E::from)?;
            serial = edit.serial;
            Ok(Some(document.to_string()))
        })?;
        Ok(Edited {
            serial,
            etag: text.as_deref().map(crate::store::etag).unwrap_or_default(),
        })
    }

    /// [`Control::register`] in a set: a renewal renews the registration's lease; a new
    /// registration (or a changed one) is written under a new lease of its TTL, which etcd
    /// ends everywhere at once if it is not renewed.
    pub(super) fn register_shared(
        &self,
        cluster: &Cluster,
        registration: Registration,
        ttl: Duration,
    ) -> Result<Registering, UpdateError> {
        let key = registration.key();
        let lease = cluster
            .leases
            .lock()
            .map(|l| l.get(&key).copied())
            .ok()
            .flatten();
        if self.renews(&registration)
            && let Some(lease) = lease
            && cluster.block_on(cluster.etcd.keep_alive(lease))?
        {
            return Ok(Registering::Renewed);
        }
        // Validated as the pool would be built with it.
        let origin = Name::from_ascii(&registration.zone).map_err(unavailable)?;
        let mut registered = self.store.registered(&origin);
        registered.retain(|r| !(r.pool == key.pool && r.address == key.address));
        registered.push(registration.endpoint.clone());
        self.build_registered(&origin, &key.pool, &registered)?;
        let value = serde_json::to_vec(&registration).map_err(unavailable)?;
        let seconds = ttl.as_secs_f64().ceil() as u64;
        let new_lease = cluster.block_on(cluster.etcd.grant(seconds.max(1)))?;
        let at = cluster.keys.registration(&key);
        let revision = cluster.block_on(cluster.etcd.put(&at, &value, new_lease))?;
        cluster.wait_applied(revision);
        if let Some(old) = lease {
            let _ = cluster.block_on(cluster.etcd.revoke(old));
        }
        Ok(Registering::Added)
    }

    /// [`Control::unregister`] in a set.
    pub(super) fn unregister_shared(
        &self,
        cluster: &Cluster,
        key: &Key,
    ) -> Result<bool, UpdateError> {
        let at = cluster.keys.registration(key);
        let (revision, deleted) = cluster.block_on(cluster.etcd.delete(&at))?;
        if deleted {
            cluster.wait_applied(revision);
        }
        let lease = cluster.leases.lock().ok().and_then(|l| l.get(key).copied());
        if let Some(lease) = lease {
            let _ = cluster.block_on(cluster.etcd.revoke(lease));
        }
        Ok(deleted)
    }
}
