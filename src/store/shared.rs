//! The etcd key space of a nameserver set, under its prefix:
//! - `zone-meta/<origin>`: a zone's metadata and the generation of its pieces (see
//!   [`pieces`](super::pieces)); every change to the zone writes it, so that its revision is
//!   the zone's version;
//! - `zone-data/<origin>/<generation>/records/<owner>/<TYPE>` and
//!   `zone-data/<origin>/<generation>/pools/<owner>`: each record set and pool (JSON);
//! - `zones/<origin>`: a zone's whole TOML document, as sets kept it before the pieces (read
//!   once, at the first start, and moved into pieces);
//! - `registrations/<zone>/<pool>/<address>`: a registered endpoint (JSON), under a lease of
//!   its TTL, so that an expiry deletes it everywhere at once;
//! - `instances/<name>`: a live instance, under that instance's lease;
//! - `health/<instance>/<probe>`: the instance's opinion of one probe (`up`/`down`), under the
//!   same lease, so that the opinions of an instance that dies leave with it;
//! - `writes/<id>`: the marker of a committed change (empty), put in the change's transaction
//!   under an hour-long lease, so that a change whose answer was lost is known to be in or not.

use std::net::IpAddr;

use crate::store::pieces::Piece;
use crate::store::registry;
use crate::zone::Name;

/// What a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Meta(Name),
    Piece {
        origin: Name,
        generation: String,
        piece: Piece,
    },
    /// A whole zone as the set kept it before the pieces.
    Legacy(Name),
    Registration(registry::Key),
    Instance(String),
    Opinion {
        instance: String,
        probe: String,
    },
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

    /// Every zone's metadata.
    pub fn metas(&self) -> String {
        format!("{}/zone-meta/", self.prefix)
    }

    pub fn meta(&self, origin: &Name) -> String {
        format!("{}{}", self.metas(), origin.to_lowercase().to_ascii())
    }

    /// Every piece of generation `generation` of zone `origin`.
    pub fn generation(&self, origin: &Name, generation: &str) -> String {
        let origin = origin.to_lowercase().to_ascii();
        format!("{}/zone-data/{origin}/{generation}/", self.prefix)
    }

    pub fn piece(&self, origin: &Name, generation: &str, piece: &Piece) -> String {
        let under = self.generation(origin, generation);
        match piece {
            Piece::Records { owner, rtype } => format!("{under}records/{owner}/{rtype}"),
            Piece::Pool { owner } => format!("{under}pools/{owner}"),
        }
    }

    /// Every whole zone of the layout before the pieces.
    pub fn legacy_zones(&self) -> String {
        format!("{}/zones/", self.prefix)
    }

    pub fn registrations(&self) -> String {
        format!("{}/registrations/", self.prefix)
    }

    pub fn instances(&self) -> String {
        format!("{}/instances/", self.prefix)
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
            "zones" => Some(Key::Legacy(zone_name(rest)?)),
            "zone-meta" => Some(Key::Meta(zone_name(rest)?)),
            "zone-data" => {
                let mut parts = rest.splitn(4, '/');
                let origin = zone_name(parts.next()?)?;
                let generation = parts.next()?.to_owned();
                let (kind, rest) = (parts.next()?, parts.next()?);
                let piece = match kind {
                    "records" => {
                        let (owner, rtype) = rest.rsplit_once('/')?;
                        Piece::Records {
                            owner: owner.to_owned(),
                            rtype: rtype.to_owned(),
                        }
                    }
                    "pools" => Piece::Pool {
                        owner: rest.to_owned(),
                    },
                    _ => return None,
                };
                Some(Key::Piece {
                    origin,
                    generation,
                    piece,
                })
            }
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

fn zone_name(text: &str) -> Option<Name> {
    Name::from_ascii(text).ok().map(|n| n.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_what_they_name() {
        let keys = Keys::new("/m/");
        let origin = Name::from_ascii("Example.COM.").unwrap();
        let lower = origin.to_lowercase();
        assert_eq!(keys.meta(&origin), "/m/zone-meta/example.com.");
        assert_eq!(
            keys.parse(&keys.meta(&origin)),
            Some(Key::Meta(lower.clone()))
        );
        assert_eq!(
            keys.parse("/m/zones/example.com."),
            Some(Key::Legacy(lower.clone()))
        );
        for piece in [
            Piece::Records {
                owner: "*.a/b.example.com.".into(),
                rtype: "TXT".into(),
            },
            Piece::Pool {
                owner: "www.example.com.".into(),
            },
        ] {
            let key = keys.piece(&origin, "g1", &piece);
            assert!(key.starts_with(&keys.generation(&origin, "g1")));
            let parsed = keys.parse(&key);
            assert_eq!(
                parsed,
                Some(Key::Piece {
                    origin: lower.clone(),
                    generation: "g1".into(),
                    piece
                })
            );
        }
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
