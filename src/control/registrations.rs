//! Endpoints registered through the API with heartbeats: registering adds the endpoint to its
//! pool (the pool is rebuilt with it, alone where it can be), renewing only records the time (nothing served
//! changes, so a fleet's heartbeats cost a journal record each), and an endpoint not renewed
//! within its TTL leaves the answers and the registry. All of it durable, like a zone change.

use std::net::IpAddr;
use std::time::Duration;

use super::{Control, UpdateError};
use crate::store::Ticket;
use crate::store::registry::{Change, Key, Registration};
use crate::zone::spec::Registered;
use crate::zone::{Name, ZoneError};

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registering {
    /// The endpoint is new in its pool (or its weight or datacenter changed).
    Added,
    /// Only its time was renewed.
    Renewed,
}

/// Milliseconds since the Unix epoch now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The pool's name as a key: absolute, lower case.
fn pool_key(origin: &Name, pool: &str) -> Result<String, UpdateError> {
    let name = Name::parse(pool, Some(origin)).map_err(|e| invalid(format!("pool {pool}: {e}")))?;
    Ok(name.to_lowercase().to_ascii())
}

/// The registration of `endpoint` in `origin` for `ttl`, renewed at `now`.
fn registration(
    origin: &Name,
    mut endpoint: Registered,
    ttl: Duration,
    now: u64,
) -> Result<Registration, UpdateError> {
    endpoint.pool = pool_key(origin, &endpoint.pool)?;
    Ok(Registration {
        zone: origin.to_ascii(),
        endpoint,
        ttl_ms: ttl.as_millis() as u64,
        renewed_ms: now,
    })
}

fn invalid(message: String) -> UpdateError {
    UpdateError::Invalid(ZoneError::Name {
        path: std::path::PathBuf::from("registrations"),
        message,
    })
}

impl Control {
    /// Registers `endpoint` in `origin` for `ttl`, or renews its registration.
    pub fn register(
        &self,
        origin: &Name,
        endpoint: Registered,
        ttl: Duration,
    ) -> Result<Registering, UpdateError> {
        self.register_at(origin, endpoint, ttl, unix_ms())
    }

    /// [`Control::register`] at `now` (ms since the epoch).
    fn register_at(
        &self,
        origin: &Name,
        endpoint: Registered,
        ttl: Duration,
        now: u64,
    ) -> Result<Registering, UpdateError> {
        let origin = origin.to_lowercase();
        let registration = registration(&origin, endpoint, ttl, now)?;
        if let Some(cluster) = &self.cluster {
            return self.register_shared(cluster, registration, ttl);
        }
        self.register_here(&origin, registration)
    }

    /// Adds or renews `registration` in this instance's store and answers.
    pub(super) fn register_here(
        &self,
        origin: &Name,
        registration: Registration,
    ) -> Result<Registering, UpdateError> {
        let origin = origin.to_lowercase();
        let writer = self.writer();
        if self.renews(&registration) {
            let ticket = self.store.append_registry(Change::Put(registration))?;
            self.commit(writer, &origin, None, ticket, false)?;
            return Ok(Registering::Renewed);
        }
        let mut registered = self.store.registered(&origin);
        registered.retain(|r| {
            !(r.pool == registration.endpoint.pool && r.address == registration.endpoint.address)
        });
        registered.push(registration.endpoint.clone());
        let pool = &registration.endpoint.pool;
        let (zone, whole) = self.build_registered(&origin, pool, &registered)?;
        let ticket = self.store.append_registry(Change::Put(registration))?;
        self.commit(writer, &origin, Some(Some(zone)), ticket, whole)?;
        Ok(Registering::Added)
    }

    /// A renewal made on the caller's own thread, if `endpoint`'s registration is one and the
    /// writer is free: its record is appended and the ticket given, for the caller to await
    /// with `Store::wait` (a heartbeat then blocks no thread). `None`: go the whole way with
    /// [`Control::register`].
    pub fn try_renew(
        &self,
        origin: &Name,
        endpoint: &Registered,
        ttl: Duration,
    ) -> Option<Result<Ticket, UpdateError>> {
        if self.cluster.is_some() {
            return None;
        }
        let origin = origin.to_lowercase();
        let registration = match registration(&origin, endpoint.clone(), ttl, unix_ms()) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let writer = self.writer.try_lock().ok()?;
        if !self.renews(&registration) {
            return None;
        }
        let ticket = self.store.append_registry(Change::Put(registration));
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        drop(writer);
        Some(ticket.map_err(UpdateError::from))
    }

    /// After an awaited renewal could not be made durable: what is durable is served again.
    pub fn after_failed_sync(&self) {
        self.serve_durable();
    }

    /// Whether `registration` renews one as it is (only its time changes).
    pub(super) fn renews(&self, registration: &Registration) -> bool {
        let known = self.store.registration(&registration.key());
        known.is_some_and(|r| r.endpoint == registration.endpoint)
    }

    /// Removes the registration of `address` in `origin`'s `pool`; `false` if there is none.
    pub fn unregister(
        &self,
        origin: &Name,
        pool: &str,
        address: IpAddr,
    ) -> Result<bool, UpdateError> {
        if let Some(cluster) = &self.cluster {
            let origin = origin.to_lowercase();
            let key = Key::new(&origin.to_ascii(), &pool_key(&origin, pool)?, address);
            return self.unregister_shared(cluster, &key);
        }
        self.remove(origin, pool, address, None)
    }

    /// [`Control::unregister`], only if the registration has expired at `expired_at` (ms since
    /// the epoch), when given: a renewal that came in between keeps it.
    pub(super) fn remove(
        &self,
        origin: &Name,
        pool: &str,
        address: IpAddr,
        expired_at: Option<u64>,
    ) -> Result<bool, UpdateError> {
        let origin = origin.to_lowercase();
        let key = Key::new(&origin.to_ascii(), &pool_key(&origin, pool)?, address);
        let writer = self.writer();
        let Some(current) = self.store.registration(&key) else {
            return Ok(false);
        };
        if expired_at.is_some_and(|at| current.expires_ms() > at) {
            return Ok(false);
        }
        let mut registered = self.store.registered(&origin);
        registered.retain(|r| !(r.pool == key.pool && r.address == address));
        let (zone, whole) = self.build_registered(&origin, &key.pool, &registered)?;
        let ticket = self.store.append_registry(Change::Remove(key))?;
        self.commit(writer, &origin, Some(Some(zone)), ticket, whole)?;
        Ok(true)
    }

    /// Every registration, for views.
    pub fn registrations(&self) -> Vec<Registration> {
        self.store.registrations()
    }

    /// Removes the registrations whose TTL has run out since their last renewal (called every
    /// second).
    pub fn expire_registrations(&self) {
        // In a set, etcd ends the registrations' leases, everywhere at once.
        if self.cluster.is_some() {
            return;
        }
        self.expire_registrations_at(unix_ms());
    }

    /// [`Control::expire_registrations`] at `now` (ms since the epoch).
    fn expire_registrations_at(&self, now: u64) {
        let expired: Vec<Registration> = self
            .store
            .registrations()
            .into_iter()
            .filter(|r| r.expires_ms() <= now)
            .collect();
        for r in expired {
            let Ok(origin) = Name::from_ascii(&r.zone) else {
                continue;
            };
            let (pool, address) = (&r.endpoint.pool, r.endpoint.address);
            match self.remove(&origin, pool, address, Some(now)) {
                Ok(true) => tracing::info!("registration of {address} in pool {pool} expired"),
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "cannot remove the expired registration of {address} in {pool}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registration, renewal and expiry on explicit times (no waiting for a clock).
    #[test]
    fn an_endpoint_leaves_only_once_its_ttl_has_run_out_since_its_last_renewal() {
        let zone = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\
                    [pools.www]\nendpoints = [\"192.0.2.1\"]\n";
        let dir = std::env::temp_dir().join(format!("meridian-reg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.toml"), zone).unwrap();
        let sources = crate::config::Sources {
            zones_dir: dir,
            ..Default::default()
        };
        let control = Control::load(sources).unwrap();
        let origin = Name::from_ascii("t.").unwrap();
        let endpoint = Registered {
            pool: "www".into(),
            datacenter: None,
            address: "192.0.2.50".parse().unwrap(),
            weight: 1,
        };
        let ttl = Duration::from_secs(10);
        // In the registry and in the pool's answers alike.
        let served = |control: &Control| {
            let registered = control.registrations();
            let listed = registered
                .iter()
                .any(|r| r.endpoint.address == endpoint.address);
            let snapshot = control.snapshot();
            let www = Name::from_ascii("www.t.").unwrap();
            let zone = snapshot.zones.get(&origin).unwrap();
            let pool = zone.node(&www).and_then(|n| n.pool.as_ref()).unwrap();
            let answered = pool.v4.addresses().any(|a| a.to_string() == "192.0.2.50");
            assert_eq!(listed, answered);
            answered
        };
        let added = control
            .register_at(&origin, endpoint.clone(), ttl, 1_000)
            .unwrap();
        assert_eq!(added, Registering::Added);
        control.expire_registrations_at(10_999);
        assert!(served(&control), "1 ms left");
        let renewed = control
            .register_at(&origin, endpoint.clone(), ttl, 9_000)
            .unwrap();
        assert_eq!(renewed, Registering::Renewed);
        control.expire_registrations_at(11_000);
        assert!(served(&control), "renewed at 9 s: until 19 s");
        control.expire_registrations_at(19_000);
        assert!(!served(&control), "expired");
    }
}
