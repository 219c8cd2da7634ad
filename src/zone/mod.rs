//! Zones as the query path reads them: a tree of nodes keyed by owner name, each with static
//! record sets and at most one pool. Built by `load` (start-up, reload, API changes) and never
//! changed afterwards, with one exception: a geo pool's steering table, a swappable cell that
//! the writer path fills for the snapshot's GeoIP database (`Geo::prepare_all`).

mod adaptive;
mod build;
mod geo;
mod incremental;
mod key;
mod keys;
mod load;
mod master;
mod nodes;
mod parse;
mod pool;
mod pool_toml;
mod set;
mod slots;
mod source;
pub mod spec;

pub use hickory_proto::rr::Name;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::health::feedback::Adapt;
use crate::health::{EndpointHealth, Feedback, HealthView};
use crate::policy::Policy;
use spec::AllDown;

pub use build::{BuildError, FieldPath, build_zone};
pub use key::NameKey;
pub use load::{
    Journaled, ZoneError, load_dir, load_dir_with, load_one, load_pool, load_spec, zone_files,
};
pub use master::parse_owner;
pub use parse::zone_spec;
pub use set::ZoneSet;
pub use slots::Slots;

/// What the health publisher needs to pick a failover set's active tier.
#[derive(Debug, Clone)]
pub struct FailoverSet {
    /// `zone/pool/family`: keeps the active tier across reloads.
    pub id: String,
    pub preempt: bool,
    pub tiers: Vec<Vec<EndpointHealth>>,
}

impl FailoverSet {
    /// Which tiers have an endpoint that may be handed out.
    pub fn live_tiers(&self, view: &HealthView) -> Vec<bool> {
        self.tiers
            .iter()
            .map(|t| t.iter().any(|e| e.live(view)))
            .collect()
    }
}

/// One zone, ready to answer from.
#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    /// The origin's key and label count, to match names against it.
    origin_key: Box<[u8]>,
    origin_labels: usize,
    /// The SOA as served for an SOA query.
    pub soa: Record,
    /// The SOA as put in the authority section of negative answers: its TTL is
    /// min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    pub negative_soa: Record,
    /// By the key of the owner name.
    nodes: nodes::NodeMap,
    /// Its query counters (kept across rebuilds by the metrics registry).
    pub counters: std::sync::Arc<crate::metrics::ZoneCounters>,
    /// Whether any node below the apex is a delegation, so most lookups skip the cut walk.
    has_cuts: bool,
    /// Whether any node has a DNAME, so most lookups skip the walk that looks for one above.
    has_dnames: bool,
    /// Whether any owner name is a wildcard (`*.…`), so most NXDOMAINs skip the search for a
    /// source of synthesis.
    has_wildcards: bool,
    /// Its probes, failover sets and adaptive groups: what its health view is indexed by.
    pub slots: std::sync::Arc<Slots>,
    /// The master file it serves, if any.
    pub master_file: Option<std::path::PathBuf>,
    /// Unique to this build of the zone (a change makes another): the memo keeps a zone's
    /// answers while its version and health view are the same.
    pub version: u64,
    /// The files it was read from and their stamps then, so that a reload keeps it while they
    /// are unchanged (`None`: built from a change, or text not on disk).
    pub read_from: Option<std::sync::Arc<[(std::path::PathBuf, Stamp)]>>,
    /// What a zone transfer sends for the pools that do not say.
    pub pool_transfer: spec::PoolTransfer,
    /// Its DNSSEC keys, if it is signed: answers with DO get signatures.
    pub signer: Option<std::sync::Arc<crate::dnssec::ZoneSigner>>,
    /// When what it serves last changed: its files' newest modification time when it was read
    /// from files, else when the change that made this build was made.
    pub changed: std::time::SystemTime,
}

/// A version no zone built before has.
pub fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A digest of a file's content (`None`: not there).
pub type Stamp = Option<[u8; 32]>;

/// Everything at one owner name. Laid out (as are `Pool` and `EndpointSet`) with what a pool's
/// answer reads first and together, the names last, and aligned to a cache line: an A answer
/// reads the node's first two lines and no other (in a zone of many pools each line a query
/// touches is a cache miss).
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Node {
    pub rrsets: Vec<RrSet>,
    /// NS records below the apex: a zone cut, answered with a referral.
    pub is_cut: bool,
    pub pool: Option<Pool>,
    /// The owner name (lower case).
    pub name: Name,
    /// Where the node has a DNAME: the CNAME it synthesizes for names below it (RFC 6672
    /// §3.1), owned by this node, with the DNAME's TTL and its target as data; the answer
    /// renames its owner and retargets it for the name asked.
    pub dname: Option<Box<Record>>,
}

impl Node {
    pub fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }

    /// An empty non-terminal: a name that exists only because names below it do.
    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.pool.is_none()
    }
}

/// One static record set.
#[derive(Debug, Clone)]
pub struct RrSet {
    pub rtype: RecordType,
    pub records: Vec<Record>,
}

/// A pool's answer data, one endpoint set per address family.
#[derive(Debug)]
#[repr(C)]
pub struct Pool {
    pub ttl: u32,
    /// The shortened TTL used while some endpoint is down.
    pub degraded_ttl: u32,
    /// At most this many addresses an answer (a `u32`, so that what an answer reads of the
    /// node stays within two cache lines).
    pub max_answers: u32,
    pub all_down: AllDown,
    /// What a zone transfer sends for it, if it says (else the zone's `transfer`).
    pub transfer: Option<spec::PoolTransfer>,
    /// Its answer counters, per datacenter (see [`EndpointSet::datacenter_of`]).
    pub answers: crate::metrics::PoolCounters,
    pub v4: EndpointSet,
    pub v6: EndpointSet,
    /// Another pool of the zone to answer from when none of this one's endpoints is up.
    pub fallback: Option<Name>,
}

impl Pool {
    /// The endpoints that answer `rtype` (A or AAAA), if any.
    pub fn endpoints(&self, rtype: RecordType) -> Option<&EndpointSet> {
        match rtype {
            RecordType::A => Some(&self.v4),
            RecordType::AAAA => Some(&self.v6),
            _ => None,
        }
    }
}

/// The endpoints of one family: their addresses, their health, and the policy that orders
/// them. No record is kept per endpoint (a hickory `Record` is 272 bytes, most of a zone of a
/// million endpoints): the encoder writes from `rdata`, and the rare reader that wants records
/// (zone transfers, signing, `explain`) builds them with [`EndpointSet::record`].
#[derive(Debug)]
#[repr(C)]
pub struct EndpointSet {
    /// The endpoints' addresses in wire form, 4 or 16 bytes each: what the encoder writes, from
    /// one small array (a zone of a million endpoints would miss the cache on anything larger).
    pub rdata: Box<[u8]>,
    /// How many endpoints.
    count: u32,
    /// No endpoint is probed, drained or forced down: every one is always live, and the query
    /// path skips their health.
    pub always_live: bool,
    /// How its replies may be reused ([`Policy::reuse`]), asked once: a geo pool asks each
    /// datacenter's policy, and the memo asks on every query.
    pub reuse: crate::policy::Reuse,
    /// The feedback slot of endpoint 0, for adaptive sets (numbered across all zones).
    pub feedback: Option<u32>,
    pub policy: Policy,
    /// One per endpoint, in `rdata` order; empty where every one is
    /// [plain](EndpointHealth::PLAIN), as most are (48 bytes an endpoint saved).
    health: Box<[EndpointHealth]>,
    /// The groups of endpoints whose weights or loads follow what is measured, and how; empty
    /// for most sets.
    pub adaptive: Vec<(std::ops::Range<u32>, Adapt)>,
}

impl EndpointSet {
    /// A set of the `count` endpoints `rdata` holds; `health` is theirs, or empty where every
    /// one is plain.
    fn new(
        (count, rdata): (usize, Box<[u8]>),
        health: Box<[EndpointHealth]>,
        always_live: bool,
        policy: Policy,
        adaptive: Vec<(std::ops::Range<u32>, Adapt)>,
    ) -> Self {
        debug_assert!(health.is_empty() || health.len() == count);
        Self {
            rdata,
            count: count as u32,
            health,
            always_live,
            reuse: policy.reuse(),
            policy,
            adaptive,
            feedback: None,
        }
    }

    /// How many endpoints it has.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether it has none (a pool of one family only).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Endpoint `i`'s health settings.
    pub fn health(&self, i: u32) -> &EndpointHealth {
        self.health
            .get(i as usize)
            .unwrap_or(&EndpointHealth::PLAIN)
    }

    /// Every endpoint's health settings, in order.
    pub fn healths(&self) -> impl Iterator<Item = &EndpointHealth> {
        (0..self.count).map(|i| self.health(i))
    }

    /// Endpoint `i`'s address in wire form.
    pub fn rdata(&self, i: u32) -> &[u8] {
        let width = self.rdata.len() / self.len().max(1);
        let at = i as usize * width;
        &self.rdata[at..at + width]
    }

    /// Endpoint `i`'s address.
    pub fn address(&self, i: u32) -> std::net::IpAddr {
        match self.rdata(i) {
            &[a, b, c, d] => std::net::Ipv4Addr::new(a, b, c, d).into(),
            bytes => {
                let octets: [u8; 16] = bytes.try_into().expect("endpoints are 4 or 16 bytes");
                std::net::Ipv6Addr::from(octets).into()
            }
        }
    }

    /// Every endpoint's address, in order.
    pub fn addresses(&self) -> impl Iterator<Item = std::net::IpAddr> + '_ {
        (0..self.len() as u32).map(|i| self.address(i))
    }

    /// Endpoint `i` as a record owned by `owner` with `ttl`.
    pub fn record(&self, i: u32, owner: &Name, ttl: u32) -> Record {
        let data = match self.address(i) {
            std::net::IpAddr::V4(a) => RData::A(hickory_proto::rr::rdata::A(a)),
            std::net::IpAddr::V6(a) => RData::AAAA(hickory_proto::rr::rdata::AAAA(a)),
        };
        Record::from_rdata(owner.clone(), ttl, data)
    }

    /// Every endpoint as a record, in order (see [`EndpointSet::record`]).
    pub fn records<'a>(&'a self, owner: &'a Name, ttl: u32) -> impl Iterator<Item = Record> + 'a {
        (0..self.len() as u32).map(move |i| self.record(i, owner, ttl))
    }

    /// Whether endpoint `i` may be handed out now.
    pub fn live(&self, i: u32, view: &HealthView) -> bool {
        self.always_live || self.health(i).live(view)
    }

    /// The datacenter (index in the pool's configured order) that endpoint `i` belongs to; 0
    /// for pools without datacenters.
    pub fn datacenter_of(&self, i: u32) -> usize {
        match &self.policy {
            Policy::Geo(geo) => geo
                .datacenters
                .iter()
                .position(|dc| dc.endpoints.contains(&i))
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Datacenter `i`'s name, for logs (`None` for pools without datacenters).
    pub fn datacenter_name(&self, i: usize) -> Option<&str> {
        match &self.policy {
            Policy::Geo(geo) => geo.datacenters.get(i).map(|dc| dc.name.as_str()),
            _ => None,
        }
    }

    /// What is measured of this set's endpoints, by endpoint (empty unless it is adaptive).
    pub fn feedback<'v>(&self, view: &'v HealthView) -> &'v [Feedback] {
        self.feedback
            .and_then(|first| {
                let first = first as usize;
                view.feedback.get(first..first + self.len())
            })
            .unwrap_or_default()
    }

    /// Whether a probe has some endpoint of this set down.
    pub fn degraded(&self, view: &HealthView) -> bool {
        !self.always_live && self.health.iter().any(|h| h.probed_down(view))
    }
}

/// Where a name lands in a zone.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'z> {
    /// The name or one of its ancestors is delegated away; the node holds the NS set.
    Delegation(&'z Node),
    /// The name is below a DNAME (this node): answered by the CNAME it synthesizes.
    Dname(&'z Node),
    /// The name exists (possibly as an empty non-terminal).
    Node(&'z Node),
    /// The name does not exist, and the wildcard `*.<closest encloser>` (this node) stands for
    /// it (RFC 4592 §3.3.1): its records are answered with the asked name as owner.
    Wildcard(&'z Node),
    NxDomain,
}

impl Zone {
    /// Finds `name` (which must be at or below the origin). `ds_at_cut` answers DS queries at a
    /// cut from this side, where DS records live (RFC 4035 §3.1.4.1).
    pub fn lookup(&self, name: &Name, ds_at_cut: bool) -> Lookup<'_> {
        self.lookup_key(&NameKey::new(name), ds_at_cut)
    }

    /// [`Zone::lookup`] by key.
    pub fn lookup_key(&self, key: &NameKey, ds_at_cut: bool) -> Lookup<'_> {
        if self.has_cuts || self.has_dnames {
            // From the top: the highest cut or DNAME above the name decides (a DNAME at the
            // apex too, and only strictly above the name: at its own name it is data).
            let labels = key.num_labels();
            for n in self.origin_labels..=labels {
                let Some(node) = self.nodes.get(key.suffix(n)) else {
                    continue;
                };
                if node.is_cut && n > self.origin_labels && !(ds_at_cut && n == labels) {
                    return Lookup::Delegation(node);
                }
                if node.dname.is_some() && n < labels {
                    return Lookup::Dname(node);
                }
            }
        }
        match self.nodes.get(key.as_bytes()) {
            Some(node) => Lookup::Node(node),
            None if self.has_wildcards => match self.source_of_synthesis(key) {
                Some(node) => Lookup::Wildcard(node),
                None => Lookup::NxDomain,
            },
            None => Lookup::NxDomain,
        }
    }

    /// For a name that does not exist: the wildcard at its closest encloser, the longest
    /// ancestor that exists (empty non-terminals included, which is why every ancestor of a
    /// name is a node), if there is one (RFC 4592 §3.3.1). A wildcard further up never
    /// applies: the closest encloser blocks it.
    fn source_of_synthesis(&self, key: &NameKey) -> Option<&Node> {
        let labels = key.num_labels();
        let encloser = (self.origin_labels..labels)
            .rev()
            .map(|n| key.suffix(n))
            .find(|suffix| self.nodes.contains_key(suffix))?;
        let mut wildcard = [0u8; 257];
        wildcard[..2].copy_from_slice(b"\x01*");
        let end = 2 + encloser.len();
        wildcard.get_mut(2..end)?.copy_from_slice(encloser);
        self.nodes.get(&wildcard[..end])
    }

    /// The node at exactly `name`, ignoring cuts (used for glue).
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(NameKey::new(name).as_bytes())
    }

    /// How many labels the origin has.
    pub fn origin_labels(&self) -> usize {
        self.origin_labels
    }

    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    /// Every name of the zone, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Every pool of the zone with its owner name.
    pub fn pools(&self) -> impl Iterator<Item = (&Name, &Pool)> {
        self.nodes
            .values()
            .filter_map(|node| node.pool.as_ref().map(|p| (&node.name, p)))
    }

    /// How many names (nodes) it has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no name at all (never: a zone has its apex).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Counts for `meridian check`: (names, static records, pools).
    pub fn stats(&self) -> (usize, usize, usize) {
        let records = self
            .nodes
            .values()
            .flat_map(|n| &n.rrsets)
            .map(|s| s.records.len())
            .sum();
        let pools = self.nodes.values().filter(|n| n.pool.is_some()).count();
        (self.nodes.len(), records, pools)
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// Where `field` lies in `node`, in bytes from the node's start.
    fn span<T>(node: &Node, field: &T) -> std::ops::Range<usize> {
        let at = field as *const T as usize - node as *const Node as usize;
        at..at + std::mem::size_of::<T>()
    }

    #[test]
    fn an_a_answer_reads_the_first_two_lines_of_its_node() {
        let text = format!(
            "{}[pools.www]\nendpoints = [\"192.0.2.10\", \"192.0.2.11\"]\n",
            crate::fixture::ZONE_HEAD
        );
        let zone = crate::fixture::zone("example.test.", &text);
        let node = zone
            .node(&Name::from_ascii("www.example.test.").unwrap())
            .unwrap();
        assert_eq!(node as *const Node as usize % 64, 0, "a node starts a line");
        let pool = node.pool.as_ref().unwrap();
        let crate::policy::Policy::RoundRobin(rotation) = &pool.v4.policy else {
            panic!("a round-robin pool: {:?}", pool.v4.policy)
        };
        // What the answer reads: the node's records (none), the pool's TTLs, cap and counter,
        // the all-down rule, the addresses' array and count, and the rotation.
        let read = [
            span(node, &node.rrsets),
            span(node, &pool.ttl),
            span(node, &pool.max_answers),
            span(node, &pool.answers),
            span(node, &pool.all_down),
            span(node, &pool.v4.rdata),
            span(node, &pool.v4.count),
            span(node, &pool.v4.always_live),
            span(node, &pool.v4.feedback),
            span(node, rotation),
        ];
        for field in read {
            assert!(field.end <= 128, "{field:?} beyond the second line");
        }
    }
}
