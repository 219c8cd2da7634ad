//! The etcd key space of a nameserver set, under its prefix:
//! - `zones/<origin>`: a zone's TOML document;
//! - `registrations/<zone>/<pool>/<address>`: a registered endpoint (JSON), under a lease of
//!   its TTL, so that an expiry deletes it everywhere at once;
//! - `instances/<name>`: a live instance, under that instance's lease;
//! - `health/<instance>/<probe>`: the instance's opinion of one probe (`up`/`down`), under the
//!   same lease, so that the opinions of an instance that dies leave with it;
//! - `writes/<id>`: the marker of a committed change (empty), put in the change's transaction
//!   under an hour-long lease, so that a change whose answer was lost is known to be in or not.

use std::net::IpAddr;

use crate::store::registry;
use crate::zone::Name;

/// What a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Zone(Name),
    Registration(registry::Key),
    Instance(String),
    Opinion { instance: String, probe: String },
}

/// The key space under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` without its trailing slash (`/meridian`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Every key of the set.
    pub fn all(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// Every opinion of every instance.
    pub fn health(&self) -> String {
        format!("{}/health/", self.prefix)
    }

    pub fn zone(&self, origin: &Name) -> String {
        format!("{}/zones/{}", self.prefix, origin.to_lowercase().to_ascii())
    }

    pub fn registration(&self, key: &registry::Key) -> String {
        format!(
            "{}/registrations/{}/{}/{}",
            self.prefix, key.zone, key.pool, key.address
        )
    }

    pub fn instance(&self, name: &str) -> String {
        format!("{}/instances/{name}", self.prefix)
    }

    /// The marker of write `id`.
    pub fn write(&self, id: &str) -> String {
        format!("{}/writes/{id}", self.prefix)
    }

    pub fn opinion(&self, instance: &str, probe: &str) -> String {
        format!("{}/health/{instance}/{probe}", self.prefix)
    }

    /// What `key` is, if it is one of ours.
    pub fn parse(&self, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (kind, rest) = rest.split_once('/')?;
        match kind {
            "zones" => Name::from_ascii(rest)
                .ok()
                .map(|n| Key::Zone(n.to_lowercase())),
            "registrations" => {
                let mut parts = rest.splitn(3, '/');
                let (zone, pool) = (parts.next()?, parts.next()?);
                let address: IpAddr = parts.next()?.parse().ok()?;
                Some(Key::Registration(registry::Key::new(zone, pool, address)))
            }
            "instances" => Some(Key::Instance(rest.to_owned())),
            "health" => {
                let (instance, probe) = rest.split_once('/')?;
                Some(Key::Opinion {
                    instance: instance.to_owned(),
                    probe: probe.to_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_what_they_name() {
        let keys = Keys::new("/m/");
        let origin = Name::from_ascii("Example.COM.").unwrap();
        assert_eq!(keys.zone(&origin), "/m/zones/example.com.");
        assert_eq!(
            keys.parse("/m/zones/example.com."),
            Some(Key::Zone(origin.to_lowercase()))
        );
        let r = registry::Key::new(
            "example.com.",
            "www.example.com.",
            "2001:db8::1".parse().unwrap(),
        );
        assert_eq!(
            keys.parse(&keys.registration(&r)),
            Some(Key::Registration(r))
        );
        let opinion = keys.opinion("a", "http://192.0.2.1:80/health");
        assert_eq!(
            keys.parse(&opinion),
            Some(Key::Opinion {
                instance: "a".into(),
                probe: "http://192.0.2.1:80/health".into()
            })
        );
        assert_eq!(
            keys.parse(&keys.instance("b")),
            Some(Key::Instance("b".into()))
        );
        assert_eq!(keys.parse("/other/zones/x."), None);
        assert_eq!(keys.parse("/mx/zones/x."), None);
    }
}
