//! The zone model as operators write it: `zones/<origin>.toml`, one serde type per table.
//! The same types serve every source of zones (files now, the HTTP API later), so that there is
//! one model and one validation path.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use crate::health::Force;
use crate::health::spec::{CheckSpec, Millis};
use crate::policy::PolicyKind;

/// One zone file. Unknown fields are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// TTL of static records that do not set their own.
    #[serde(default = "default_zone_ttl")]
    pub ttl: u32,
    /// An RFC 1035 master file (relative to the zones folder) whose records this zone serves too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_file: Option<String>,
    /// Start of authority; may instead come from the master file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soa: Option<SoaSpec>,
    /// Name servers of the zone (NS records at the apex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ns: Vec<String>,
    /// Static record sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordSpec>,
    /// Owner names whose A/AAAA answers are decided per query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolSpec>,
    /// What a zone transfer sends for the pools that do not say (default `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PoolTransfer>,
    /// DNSSEC: the zone's signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<DnssecSpec>,
}

/// `[dnssec]` of a zone file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecSpec {
    /// Combined signing keys (`meridian keygen` files, relative to the zones folder): each
    /// signs everything and is the secure entry point (its DS goes to the parent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Key-signing keys: sign the DNSKEY set only; their DS goes to the parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ksk: Vec<String>,
    /// Zone-signing keys: sign everything but the DNSKEY set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zsk: Vec<String>,
    /// Keys published in the DNSKEY set without signing (a rollover's next key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// The DS records the parent serves (`tag algorithm 2 digest`), to be warned at start and
    /// by `check` when none matches a key (a rollover step missed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_ds: Vec<String>,
    /// How long a signature is valid after it is made (seconds; 7 days by default). Signatures
    /// are remade hourly, so a resolver never holds one older than an hour plus its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_secs: Option<u32>,
    /// How far back a signature's inception is set (seconds; an hour by default): validators
    /// whose clocks run behind ours still accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inception_back_secs: Option<u32>,
}

pub fn default_zone_ttl() -> u32 {
    3600
}

/// The SOA record's fields (RFC 1035 §3.3.13). Names may be relative to the origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaSpec {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    #[serde(default = "default_refresh")]
    pub refresh: i32,
    #[serde(default = "default_retry")]
    pub retry: i32,
    #[serde(default = "default_expire")]
    pub expire: i32,
    /// Negative-caching TTL (RFC 2308 §4).
    #[serde(default = "default_minimum")]
    pub minimum: u32,
    /// TTL of the SOA record itself; the zone's `ttl` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

fn default_refresh() -> i32 {
    3600
}
fn default_retry() -> i32 {
    600
}
fn default_expire() -> i32 {
    1_209_600
}
fn default_minimum() -> u32 {
    300
}

/// One static record set: every string in `data` is one record's RDATA in master-file syntax.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Owner: `@` for the apex, a name relative to the origin, or an absolute name ending in `.`.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    pub data: Vec<String>,
}

/// A pool: an owner name answered from endpoints chosen at query time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    #[serde(default)]
    pub policy: PolicyKind,
    /// Short by default so that changes reach clients fast.
    #[serde(default = "default_pool_ttl")]
    pub ttl: u32,
    /// At most this many addresses per answer; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_answers: Option<usize>,
    /// The addresses of a flat pool (every policy but `geo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointSpec>,
    /// `geo` only: the datacenters, each with its own endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<DatacenterSpec>,
    /// `geo` only: how many of the nearest datacenters one answer spans (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_datacenters: Option<usize>,
    /// `geo` only: datacenter order for clients that cannot be located (default: as listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Vec<String>>,
    /// `geo` only: continent / country / subdivision code → datacenter order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<GeoMapSpec>,
    /// `geo` only: CIDR → datacenter order; wins over GeoIP, longest prefix first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nets: BTreeMap<String, Vec<String>>,
    /// `failover` only: go back to a higher tier as soon as it recovers (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    /// The health check every endpoint inherits, unless its datacenter or itself sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    /// What to answer when no endpoint is up.
    #[serde(default)]
    pub all_down: AllDown,
    /// What a zone transfer (AXFR/IXFR) sends for this pool: its whole endpoint set as plain
    /// A/AAAA records (`all`, the default), or nothing (`omit`). Secondaries cannot steer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PoolTransfer>,
    /// When no endpoint is up, answer from this pool (same zone) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// While some endpoint is down the TTL is halved, but not below this.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: u32,
    /// `latency`: effective weights follow the probes' response times (weighted policies).
    #[serde(default, skip_serializing_if = "WeightsFrom::is_static")]
    pub weights: WeightsFrom,
    /// With latency weights: the least share of its weight a slow endpoint keeps (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_share: Option<f64>,
    /// An endpoint that comes back up or is added ramps its weight up over this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<Millis>,
    /// `least_load`: a load older than this is ignored (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ttl: Option<Millis>,
    /// `sticky`: how much of an IPv4 client address picks its endpoints (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_prefix_v4: Option<u8>,
    /// `sticky`: how much of an IPv6 client address picks its endpoints (default 56).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_prefix_v6: Option<u8>,
}

/// Where effective weights come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFrom {
    /// The configured weights.
    #[default]
    Static,
    /// The configured weights scaled by response time against the fastest endpoint's.
    Latency,
}

impl WeightsFrom {
    fn is_static(&self) -> bool {
        *self == Self::Static
    }
}

pub fn default_min_ttl() -> u32 {
    5
}

/// One datacenter of a geo pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatacenterSpec {
    pub name: String,
    /// Degrees, -90 to 90.
    pub latitude: f64,
    /// Degrees, -180 to 180.
    pub longitude: f64,
    /// Km taken off this datacenter's distance to every client: positive draws traffic from
    /// farther away, negative pushes it off (like Route 53 geoproximity bias).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bias: f64,
    /// How the datacenter orders its own endpoints (not `geo`).
    #[serde(default)]
    pub policy: PolicyKind,
    /// Where its effective weights come from; the pool's `weights` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsFrom>,
    /// The check this datacenter's endpoints inherit (over the pool's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    pub endpoints: Vec<EndpointSpec>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Explicit steering by place. The most specific match wins: subdivision, country, continent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoMapSpec {
    /// ISO 3166-2 codes such as `US-CA`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subdivision: BTreeMap<String, Vec<String>>,
    /// ISO 3166-1 alpha-2 codes such as `DE`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub country: BTreeMap<String, Vec<String>>,
    /// AF AN AS EU NA OC SA.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub continent: BTreeMap<String, Vec<String>>,
    /// For located clients that match no key; nearest by distance when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Vec<String>>,
}

pub fn default_pool_ttl() -> u32 {
    30
}

/// One address of a pool. IPv4 endpoints answer A queries, IPv6 endpoints AAAA. Written as a
/// table (`{ address = "192.0.2.1", weight = 2 }`) or, with every setting at its default, as
/// the address alone (`"192.0.2.1"`): the short form is also the cheap one to parse in pools of
/// thousands of endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct EndpointSpec {
    pub address: IpAddr,
    #[serde(default = "default_weight", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// `failover` only: the tier, 0 (primary) first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<u32>,
    /// Admin override of the probed state: `up` or `down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<Force>,
    /// Not handed out, still probed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// Replaces the check inherited from the datacenter or pool; `false` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<EndpointCheck>,
}

impl<'de> Deserialize<'de> for EndpointSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = EndpointSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an IP address or an endpoint table")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EndpointSpec, E> {
                let address = text
                    .parse()
                    .map_err(|_| E::custom(format!("{text:?} is not an IP address")))?;
                Ok(EndpointSpec::at(address))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointSpec, A::Error> {
                EndpointSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl Serialize for EndpointSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EndpointSpec::serialize(self, serializer)
    }
}

impl EndpointSpec {
    /// An endpoint with every setting at its default.
    pub fn at(address: IpAddr) -> Self {
        Self {
            address,
            weight: default_weight(),
            tier: None,
            force: None,
            drain: false,
            check: None,
        }
    }
}

/// An endpoint registered through the API rather than written in the zone file (it renews
/// itself with heartbeats): added to its pool, or to its pool's datacenter, when the zone is
/// built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// The pool's name as the zone file writes it (relative to the origin).
    pub pool: String,
    /// Geo pools: the datacenter it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    pub address: IpAddr,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// An endpoint's own check, or `false` for none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EndpointCheck {
    Off(bool),
    Check(Box<CheckSpec>),
}

fn is_one(w: &u32) -> bool {
    *w == 1
}

/// What a zone transfer sends for a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolTransfer {
    /// Every endpoint, as plain A/AAAA records at the pool's name.
    #[default]
    All,
    /// Nothing: the name is not in the transferred zone.
    Omit,
}

/// What a pool answers when none of its endpoints (of the asked family) is up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllDown {
    /// Hand out every endpoint anyway (fail open).
    #[default]
    ServeAll,
    /// SERVFAIL, so resolvers try again later.
    Servfail,
    /// An empty answer (NODATA).
    Nodata,
}

pub fn default_weight() -> u32 {
    1
}
