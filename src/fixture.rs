//! Test fixtures: zones and snapshots built from TOML text exactly as the server builds them,
//! for the unit tests, the criterion benchmark and the integration tests. The server itself
//! never uses this module.

use std::path::PathBuf;
use std::sync::Arc;

use crate::geo::GeoDb;
use crate::snapshot::Snapshot;
use crate::zone::spec::ZoneSpec;
use crate::zone::{Name, ZoneSet, build_zone};

/// The SOA, NS and glue every small test zone starts with.
pub const ZONE_HEAD: &str = r#"
ns = ["ns1"]
[soa]
mname = "ns1"
rname = "hostmaster"
serial = 1
[[records]]
name = "ns1"
type = "A"
data = ["192.0.2.1"]
"#;

/// The small GeoIP database committed for tests (see `geoip/README.md`).
pub fn test_geoip_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/geoip/meridian-test.mmdb"
    ))
}

/// The zone `origin` of TOML `text`, built; panics on a zone that does not build.
pub fn zone(origin: &str, text: &str) -> crate::zone::Zone {
    let spec: ZoneSpec = toml::from_str(text).expect("test zone parses");
    let origin = Name::from_ascii(origin).expect("test origin");
    build_zone(&origin, &spec, None).expect("test zone builds")
}

/// The zones given as (origin, TOML text), built; panics on a zone that does not build.
pub fn zone_set(zones: &[(&str, &str)]) -> ZoneSet {
    ZoneSet::new(zones.iter().map(|(origin, text)| zone(origin, text)))
}

/// Which GeoIP database a fixture snapshot has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geo {
    None,
    /// The test database; geo pools locate each client in it.
    Database,
    /// The test database with the geo pools' steering tables built, as a served snapshot has.
    Steered,
}

/// A snapshot of `zones` (see [`zone_set`]) with every endpoint's health unknown.
pub fn snapshot(zones: &[(&str, &str)], geo: Geo) -> Snapshot {
    let zones = zone_set(zones);
    let db = match geo {
        Geo::None => None,
        Geo::Database | Geo::Steered => {
            Some(GeoDb::open(&test_geoip_path()).expect("test GeoIP database"))
        }
    };
    if let (Geo::Steered, Some(db)) = (geo, &db) {
        crate::policy::geo::Geo::prepare_all(zones.geo_pools(), db);
    }
    Snapshot {
        generation: 1,
        zones: Arc::new(zones),
        geo: db.map(Arc::new),
        health: Default::default(),
    }
}
