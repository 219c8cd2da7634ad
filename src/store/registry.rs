//! Endpoints registered through the API, with their heartbeats: the service-registry pattern
//! (an instance registers itself with a TTL, renews it, and leaves the answers when it stops).
//! Durable with the zones: each registration, renewal and removal is a journal record, and a
//! compaction writes the whole registry to `zones/.registrations`, which start-up reads before
//! replaying the journal.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::zone::spec::Registered;

/// The registry's file in the zones folder (hidden: the zone loader skips it).
pub const FILE: &str = ".registrations";

/// One registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The zone's origin (lower case, absolute).
    pub zone: String,
    #[serde(flatten)]
    pub endpoint: Registered,
    /// It leaves the answers this long after its last renewal.
    pub ttl_ms: u64,
    /// Its last registration or renewal, in ms since the Unix epoch.
    pub renewed_ms: u64,
}

impl Registration {
    pub fn key(&self) -> Key {
        Key::new(&self.zone, &self.endpoint.pool, self.endpoint.address)
    }

    /// When it expires, in ms since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.renewed_ms.saturating_add(self.ttl_ms)
    }
}

/// Which registration: (zone, pool, address), names in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub zone: String,
    pub pool: String,
    pub address: IpAddr,
}

impl Key {
    pub fn new(zone: &str, pool: &str, address: IpAddr) -> Self {
        Self {
            zone: zone.to_ascii_lowercase(),
            pool: pool.to_ascii_lowercase(),
            address,
        }
    }
}

/// A change to the registry, as the journal records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    /// Registered or renewed.
    Put(Registration),
    Remove(Key),
}

/// Every registration.
#[derive(Debug, Clone, Default)]
pub struct Registry(BTreeMap<Key, Registration>);

impl Registry {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Put(r) => {
                self.0.insert(r.key(), r);
            }
            Change::Remove(key) => {
                self.0.remove(&key);
            }
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Registration> {
        self.0.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Registration> {
        self.0.values()
    }

    /// The registry saved in `dir` (empty if there is none). A file that does not parse is an
    /// error: registrations are not dropped silently.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(dir.join(FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let all: Vec<Registration> = serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(FILE).display()),
            )
        })?;
        Ok(Self(all.into_iter().map(|r| (r.key(), r)).collect()))
    }

    /// Saves it in `dir`, atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let all: Vec<&Registration> = self.0.values().collect();
        let text = serde_json::to_string_pretty(&all).map_err(std::io::Error::other)?;
        crate::sys::write_atomic(&dir.join(FILE), text.as_bytes())
    }
}
