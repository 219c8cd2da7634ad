//! Registrations made through a nameserver set (see `cluster`; zone changes: `set_writes`):
//! validated here by the same build as start-up, written to etcd under a lease of their TTL,
//! and acknowledged once etcd committed them and this instance serves them (its watch applies
//! them, as every other instance's does).

use std::time::Duration;

use super::cluster::{Cluster, unavailable};
use super::registrations::Registering;
use super::{Control, UpdateError};
use crate::store::etcd::Written;
use crate::store::registry::{Key, Registration};
use crate::zone::Name;

impl Control {
    /// [`Control::register`] in a set: a renewal renews the registration's lease; a new
    /// registration (or a changed one) is written under a new lease of its TTL, which etcd
    /// ends everywhere at once if it is not renewed.
    pub(super) fn register_shared(
        &self,
        cluster: &Cluster,
        registration: Registration,
        ttl: Duration,
    ) -> Result<Registering, UpdateError> {
        cluster.ensure_connected()?;
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
        cluster.ensure_connected()?;
        let at = cluster.keys.registration(key);
        let (_, marker) = cluster.new_write();
        let deleted = cluster.block_on(cluster.etcd.delete_once(&at, cluster.marker(&marker)))?;
        let deleted = match deleted {
            Written::At(revision) => {
                cluster.wait_applied(revision);
                true
            }
            Written::Conflict(_) => false,
        };
        let lease = cluster.leases.lock().ok().and_then(|l| l.get(key).copied());
        if let Some(lease) = lease {
            let _ = cluster.block_on(cluster.etcd.revoke(lease));
        }
        Ok(deleted)
    }
}
