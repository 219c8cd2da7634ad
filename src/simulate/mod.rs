//! `meridian simulate` (and the API's `/simulate`): what a change would do to the clients
//! before it is made — for the whole address space, where Route 53's TestDNSAnswer answers one
//! query. Given the served snapshot and one built from a changed zone, pool or GeoIP database,
//! for each pool:
//!
//! - a geo pool: the share of the IPv4 address space, and of the database's networks per
//!   country, whose first datacenter changes, from which to which. Every address range on
//!   which both sides are constant (database networks of both databases, cut by both sides'
//!   `nets`) is decided once on each side, as the query path decides it;
//! - every pool: each endpoint's expected share of first answers before and after, over a
//!   fixed sample of client addresses, and the share of those clients whose first endpoint
//!   changes (what matters for sticky and geo pools).
//!
//! Configurations are compared, not measurements: every endpoint counts as live and weights
//! as configured (no loads, latency shares or slow starts), on both sides alike.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::geo::GeoDb;
use crate::health::HealthView;
use crate::policy::geo::Geo;
use crate::policy::{Asking, Context, Order, Policy};
use crate::snapshot::Snapshot;
use crate::zone::{EndpointSet, Pool};

mod report;

/// Client addresses sampled for the endpoint shares.
const SAMPLE: usize = 20_000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub pools: Vec<PoolReport>,
}

/// One pool's family, before and after.
#[derive(Debug, Serialize)]
pub struct PoolReport {
    pub zone: String,
    pub pool: String,
    /// `A` or `AAAA`.
    pub family: &'static str,
    /// The policy before (`None`: the pool is new).
    pub before: Option<&'static str>,
    /// The policy after (`None`: the pool is removed).
    pub after: Option<&'static str>,
    /// Geo pools on both sides: how the address space moves between datacenters.
    pub geo: Option<GeoMoves>,
    pub endpoints: EndpointMoves,
}

#[derive(Debug, Default, Serialize)]
pub struct GeoMoves {
    /// Addresses of the IPv4 space whose first datacenter changes, and their share of 2^32.
    pub moved_addresses: u64,
    pub moved_share: f64,
    /// Database networks (cut by `nets`), and how many of them move.
    pub networks: u64,
    pub moved_networks: u64,
    /// From → to, most addresses first.
    pub moves: Vec<Move>,
    /// The countries with networks that move, most moved first.
    pub countries: Vec<CountryMoves>,
}

#[derive(Debug, Serialize)]
pub struct Move {
    pub from: String,
    pub to: String,
    pub addresses: u64,
    pub share: f64,
}

#[derive(Debug, Serialize)]
pub struct CountryMoves {
    pub country: String,
    pub networks: u64,
    pub moved: u64,
    pub share: f64,
    /// `from -> to` with its number of networks, most first.
    pub moves: Vec<(String, u64)>,
}

#[derive(Debug, Default, Serialize)]
pub struct EndpointMoves {
    /// Each endpoint's share of first answers, before and after.
    pub shares: Vec<EndpointShare>,
    /// The share of sampled clients whose first endpoint changes, where both sides give each
    /// client one order (not for rotating or random policies, whose clients change endpoint
    /// from one answer to the next anyway).
    pub clients_moved: Option<f64>,
    /// The least share of answers that changes endpoint: half the sum of the share changes.
    pub traffic_moved: f64,
}

#[derive(Debug, Serialize)]
pub struct EndpointShare {
    pub address: IpAddr,
    pub before: f64,
    pub after: f64,
}

/// Compares every pool of `before` with the same pool of `after`.
pub fn simulate<'a>(before: &'a Snapshot, after: &'a Snapshot) -> Report {
    let sample = sample_clients();
    let mut pools = Vec::new();
    for (zone, name, old, new) in pairs(before, after) {
        // The address space moves once per pool: with its first family that is geo on both
        // sides.
        let mut geo_done = false;
        for (family, rtype) in [("A", 4), ("AAAA", 6)] {
            let set = |pool: Option<&'a Pool>| -> Option<&'a EndpointSet> {
                pool.map(|p| if rtype == 4 { &p.v4 } else { &p.v6 })
                    .filter(|s| !s.is_empty())
            };
            let (old_set, new_set) = (set(old), set(new));
            if old_set.is_none() && new_set.is_none() {
                continue;
            }
            let geo = match (old_set.map(|s| &s.policy), new_set.map(|s| &s.policy)) {
                (Some(Policy::Geo(a)), Some(Policy::Geo(b))) if !geo_done => {
                    geo_done = true;
                    let (old_db, new_db) = (before.geo.as_deref(), after.geo.as_deref());
                    Some(geo_moves((a, old_db), (b, new_db)))
                }
                _ => None,
            };
            let sides = [(old_set, before), (new_set, after)];
            pools.push(PoolReport {
                zone: zone.clone(),
                pool: name.clone(),
                family,
                before: old_set.map(|s| s.policy.name()),
                after: new_set.map(|s| s.policy.name()),
                geo,
                endpoints: endpoint_moves(sides, &sample),
            });
        }
    }
    Report { pools }
}

/// A pool as (zone, owner) with its version on each side.
type Paired<'a> = (String, String, Option<&'a Pool>, Option<&'a Pool>);

/// Every pool of either side, with its version on each side.
fn pairs<'a>(before: &'a Snapshot, after: &'a Snapshot) -> Vec<Paired<'a>> {
    let mut all: BTreeMap<(String, String), [Option<&Pool>; 2]> = BTreeMap::new();
    for (side, snapshot) in [before, after].into_iter().enumerate() {
        for zone in snapshot.zones.iter() {
            for (name, pool) in zone.pools() {
                let key = (zone.origin.to_string(), name.to_string());
                all.entry(key).or_default()[side] = Some(pool);
            }
        }
    }
    all.into_iter()
        .map(|((z, n), [a, b])| (z, n, a, b))
        .collect()
}

/// A fixed sample of global unicast IPv4 client addresses, the same on both sides.
fn sample_clients() -> Vec<IpAddr> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut out = Vec::with_capacity(SAMPLE);
    while out.len() < SAMPLE {
        let addr = IpAddr::from(rng.u32(..).to_be_bytes());
        if crate::geo::is_global_unicast(addr) {
            out.push(addr);
        }
    }
    out
}

/// The first endpoint each sampled client gets from each side, as shares per address.
fn endpoint_moves(
    sides: [(Option<&EndpointSet>, &Snapshot); 2],
    sample: &[IpAddr],
) -> EndpointMoves {
    let view = HealthView::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let firsts: Vec<Vec<Option<IpAddr>>> = sides
        .iter()
        .map(|&(set, snapshot)| {
            sample
                .iter()
                .map(|&client| {
                    set.and_then(|s| first(s, snapshot.geo.as_deref(), &view, client, &mut rng))
                })
                .collect()
        })
        .collect();
    let mut shares: BTreeMap<IpAddr, (f64, f64)> = BTreeMap::new();
    let unit = 1.0 / sample.len() as f64;
    for (side, picks) in firsts.iter().enumerate() {
        for pick in picks.iter().flatten() {
            let entry = shares.entry(*pick).or_default();
            match side {
                0 => entry.0 += unit,
                _ => entry.1 += unit,
            }
        }
    }
    let moved = firsts[0]
        .iter()
        .zip(&firsts[1])
        .filter(|(a, b)| a != b)
        .count();
    let per_client = sides
        .iter()
        .all(|(set, _)| set.is_none_or(|s| s.policy.per_client()));
    EndpointMoves {
        traffic_moved: shares.values().map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0,
        shares: shares
            .into_iter()
            .map(|(address, (before, after))| EndpointShare {
                address,
                before,
                after,
            })
            .collect(),
        clients_moved: per_client.then_some(moved as f64 * unit),
    }
}

/// The first endpoint `set` hands `client`, every endpoint live.
fn first(
    set: &EndpointSet,
    geo: Option<&GeoDb>,
    view: &HealthView,
    client: IpAddr,
    rng: &mut fastrand::Rng,
) -> Option<IpAddr> {
    let cx = Context {
        addr: client,
        geo,
        health: view,
    };
    let decision = set.policy.decide(&cx);
    let mut asking = Asking {
        decision: &decision,
        cx: Some(&cx),
        live: &|_| true,
        rng,
        feedback: &[],
    };
    let mut order = Order::new();
    set.policy.order_for(&mut asking, 1, &mut order);
    Some(set.address(*order.first()?))
}

/// How the IPv4 space moves between the datacenters of two versions of a geo pool.
fn geo_moves(before: (&Geo, Option<&GeoDb>), after: (&Geo, Option<&GeoDb>)) -> GeoMoves {
    let walk = |db: Option<&GeoDb>| db.and_then(GeoDb::ipv4_networks).unwrap_or_default();
    let old_networks = walk(before.1);
    let same_db = before.1.map(GeoDb::generation) == after.1.map(GeoDb::generation);
    let new_networks = match same_db {
        true => Vec::new(),
        false => walk(after.1),
    };
    let countries = match same_db {
        true => &old_networks,
        false => &new_networks,
    };
    // Every address where either side may change its answer.
    let mut cuts: BTreeSet<u64> = BTreeSet::from([0, 1 << 32]);
    for &(start, prefix, _) in old_networks.iter().chain(&new_networks) {
        cuts.insert(u64::from(start));
        cuts.insert(u64::from(start) + (1u64 << (32 - u32::from(prefix))));
    }
    for (net, _) in before.0.nets.iter().chain(&after.0.nets) {
        if let ipnet::IpNet::V4(v4) = net {
            cuts.insert(u64::from(u32::from(v4.network())));
            cuts.insert(u64::from(u32::from(v4.broadcast())) + 1);
        }
    }
    let first = |(geo, db): (&Geo, Option<&GeoDb>), addr: u32| -> usize {
        let decision = geo.decide(IpAddr::from(addr.to_be_bytes()), db);
        decision.order().first().map_or(0, |&d| usize::from(d))
    };
    let mut tally = report::Tally::default();
    let cuts: Vec<u64> = cuts.into_iter().collect();
    for pair in cuts.windows(2) {
        let (start, end) = (pair[0] as u32, pair[1]);
        let from = &before.0.datacenters[first(before, start)].name;
        let to = &after.0.datacenters[first(after, start)].name;
        // The country of the database network holding the range, if any.
        let at = countries.partition_point(|n| n.0 <= start);
        let country = at
            .checked_sub(1)
            .map(|i| countries[i])
            .filter(|&(s, p, _)| u64::from(s) + (1u64 << (32 - u32::from(p))) > u64::from(start))
            .map(|(_, _, country)| country.map_or_else(|| "--".to_owned(), |c| c.to_string()));
        tally.add(end - u64::from(start), country, from, to);
    }
    tally.finish()
}
