//! `geo`: send each client to the nearest datacenter. The client's network is matched against
//! `nets` first (longest prefix), then located with the GeoIP database and matched against the
//! `map` (subdivision, then country, then continent), and otherwise the datacenters are ranked
//! by great-circle distance less their `bias`. Clients that cannot be located get the `default`
//! order. Each datacenter orders its own endpoints with its inner policy.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Order;
use super::Policy;
use crate::geo::table::{UNCOVERED, ValueOf};
use crate::geo::{Code, GeoDb, Located, Location, NetworkTable, chord_km, unit_vector};

/// One datacenter of a geo pool, for one address family.
#[derive(Debug)]
pub struct Datacenter {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Where it is on the unit sphere (from latitude and longitude), for ranking.
    pub position: [f64; 3],
    /// Km subtracted from the distance: a positive bias draws clients from farther away.
    pub bias_km: f64,
    /// The pool-level indices of this datacenter's endpoints (of this family).
    pub endpoints: Vec<u32>,
    /// Orders `endpoints` (indices into that list).
    pub inner: Policy,
}

/// Explicit code → datacenter order maps, most specific first.
#[derive(Debug, Clone, Default)]
pub struct GeoMap {
    pub subdivision: HashMap<String, Vec<u16>>,
    pub country: HashMap<String, Vec<u16>>,
    pub continent: HashMap<String, Vec<u16>>,
    /// For located clients that match no key; distance ranking when absent.
    pub default: Option<Vec<u16>>,
}

#[derive(Debug)]
pub struct Geo {
    /// Unique for the process's life (see [`Geo::next_id`]): keys this pool's cached rankings.
    pub id: u64,
    pub datacenters: Vec<Datacenter>,
    /// Longest prefix first.
    pub nets: Vec<(IpNet, Vec<u16>)>,
    pub map: GeoMap,
    /// For clients that cannot be located.
    pub default: Vec<u16>,
    pub max_datacenters: usize,
    /// The datacenter order of every database network, once [`Geo::prepare`] has built it for
    /// the snapshot's database. Swapped, not locked: the query path only loads it.
    pub steering: crate::state::Swappable<Steering>,
}

/// A geo pool's datacenter orders by network (see [`crate::geo::table`]).
#[derive(Debug)]
pub struct Steering {
    table: NetworkTable,
    /// The orders, by table value.
    orders: Vec<Box<[u16]>>,
}

/// Steering tables built so far, by (database generation, ranking settings): pools that rank
/// alike (both families of one pool, pools sharing datacenters) share one, and a snapshot
/// rebuilt for a zone change reuses them. Building one walks the whole database (about a
/// second for DB-IP City Lite), so only `MAX_TABLES` distinct settings get one; other pools
/// look each client up in the database.
const MAX_TABLES: usize = 16;
static TABLES: std::sync::Mutex<Vec<(u64, String, std::sync::Arc<Steering>)>> =
    std::sync::Mutex::new(Vec::new());

/// What decided the order, for `explain` and the logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Net(IpNet),
    Map(Code),
    MapDefault,
    Distance,
    Unlocated,
}

/// Most datacenters one geo pool may have, so that a decision fits on the stack.
pub const MAX_DATACENTERS: usize = 64;

/// Rankings of located clients, per query thread, by (pool id, GeoIP record): ranking costs a
/// great-circle distance per datacenter, and the clients of one record always rank alike.
/// Pools of at most `CACHED_DATACENTERS` datacenters are cached; the map is cleared when full.
const CACHED_DATACENTERS: usize = 16;
const RANKINGS: usize = 1 << 16;
type RankKey = (u64, (u64, usize));
thread_local! {
    static RANKED: std::cell::RefCell<rustc_hash::FxHashMap<RankKey, ([u16; CACHED_DATACENTERS], u8)>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A geo decision: the datacenter order (best first, all of them), the ECS scope, and why.
/// Kept on the stack: the query path makes one per geo answer.
#[derive(Debug, Clone)]
pub struct Decision {
    order: [u16; MAX_DATACENTERS],
    len: usize,
    /// Effective distance (km, bias applied) per datacenter; NaN where not located.
    distances: [f64; MAX_DATACENTERS],
    pub scope: u8,
    pub reason: Reason,
    pub located: Option<Located>,
}

impl Decision {
    fn new(reason: Reason) -> Self {
        Self {
            order: [0; MAX_DATACENTERS],
            len: 0,
            distances: [f64::NAN; MAX_DATACENTERS],
            scope: 0,
            reason,
            located: None,
        }
    }

    /// The datacenters, best first.
    pub fn order(&self) -> &[u16] {
        &self.order[..self.len]
    }

    /// Datacenter `i`'s effective distance, where the client was located.
    pub fn distance(&self, i: usize) -> Option<f64> {
        self.distances.get(i).copied().filter(|d| !d.is_nan())
    }

    /// `list`, then every other of the `n` datacenters in configured order.
    fn fill(&mut self, list: &[u16], n: usize) {
        for &i in list {
            self.push(i);
        }
        for i in (0..n as u16).filter(|i| !list.contains(i)) {
            self.push(i);
        }
    }

    fn push(&mut self, i: u16) {
        self.order[self.len] = i;
        self.len += 1;
    }
}

impl Geo {
    /// A fresh pool id.
    pub fn next_id() -> u64 {
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives every one of `pools` its steering table for `db`: shared with the pools that
    /// rank alike, reused from an earlier snapshot where one was built for the same database,
    /// and the missing ones built together in one walk of the database. Forgets the tables no
    /// pool uses any more. Called when a snapshot is built, never on the query path.
    pub fn prepare_all<'a>(pools: impl Iterator<Item = &'a Geo>, db: &GeoDb) {
        let pools: Vec<(&Geo, String)> = pools.map(|g| (g, g.ranking_settings())).collect();
        let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
        tables.retain(|(generation, key, _)| {
            *generation == db.generation() && pools.iter().any(|(_, k)| k == key)
        });
        let mut missing: Vec<(&Geo, &String)> = Vec::new();
        for (pool, key) in &pools {
            let known =
                tables.iter().any(|(_, k, _)| k == key) || missing.iter().any(|(_, k)| *k == key);
            if !known && tables.len() + missing.len() < MAX_TABLES {
                missing.push((pool, key));
            }
        }
        if !missing.is_empty() {
            let started = std::time::Instant::now();
            let mut orders: Vec<Vec<Box<[u16]>>> = vec![Vec::new(); missing.len()];
            let mut rankers: Vec<_> = missing
                .iter()
                .zip(orders.iter_mut())
                .map(|((pool, _), orders)| {
                    move |location: Option<&Location>| pool.order_value(location, orders)
                })
                .collect();
            let mut value_of: Vec<ValueOf<'_>> =
                rankers.iter_mut().map(|f| f as ValueOf<'_>).collect();
            let built = NetworkTable::build_many(db, &mut value_of);
            drop(value_of);
            drop(rankers);
            match built {
                Some(built) => {
                    tracing::info!(
                        tables = built.len(),
                        runs = built.iter().map(NetworkTable::runs).sum::<usize>(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "geo steering tables built"
                    );
                    for (((_, key), table), orders) in missing.iter().zip(built).zip(orders) {
                        let steering = std::sync::Arc::new(Steering { table, orders });
                        tables.push((db.generation(), (*key).clone(), steering));
                    }
                }
                None => tracing::warn!(
                    "cannot walk {}: geo pools look clients up one by one",
                    db.path().display()
                ),
            }
        }
        for (pool, key) in &pools {
            let found = tables.iter().find(|(_, k, _)| k == key);
            pool.steering.replace(found.map(|(_, _, s)| s.clone()));
        }
    }

    /// The table value for a client at `location` (`None`: not located): the index of its
    /// datacenter order in `orders`, added there if new.
    fn order_value(&self, location: Option<&Location>, orders: &mut Vec<Box<[u16]>>) -> u16 {
        let order: Box<[u16]> = match location {
            Some(location) => self.rank(location).order().into(),
            None => {
                let mut d = Decision::new(Reason::Unlocated);
                d.fill(&self.default, self.datacenters.len());
                d.order().into()
            }
        };
        match orders.iter().position(|o| *o == order) {
            Some(i) => i as u16,
            None => {
                orders.push(order);
                (orders.len() - 1) as u16
            }
        }
    }

    /// Everything that ranks datacenters for a located or unlocated client (not `nets`, which
    /// the query path checks first), as a comparable key.
    fn ranking_settings(&self) -> String {
        let sorted = |m: &HashMap<String, Vec<u16>>| {
            let mut v: Vec<_> = m.iter().collect();
            v.sort();
            format!("{v:?}")
        };
        let dcs: Vec<_> = self
            .datacenters
            .iter()
            .map(|d| {
                (
                    d.latitude.to_bits(),
                    d.longitude.to_bits(),
                    d.bias_km.to_bits(),
                )
            })
            .collect();
        format!(
            "{dcs:?}|{}|{}|{}|{:?}|{:?}",
            sorted(&self.map.subdivision),
            sorted(&self.map.country),
            sorted(&self.map.continent),
            self.map.default,
            self.default
        )
    }

    /// The order and network prefix the steering table has for `client`, if it has one for
    /// `db`.
    fn steered(&self, client: IpAddr, db: &GeoDb, order: &mut [u16]) -> Option<(usize, u8)> {
        self.steering.read(|steering| {
            let steering = steering.filter(|s| s.table.generation == db.generation())?;
            let (value, prefix) = steering.table.lookup(client);
            if value == UNCOVERED {
                return None;
            }
            let found = &steering.orders[usize::from(value)];
            order[..found.len()].copy_from_slice(found);
            Some((found.len(), prefix))
        })
    }

    /// The datacenter order and ECS scope for `client`, as [`Geo::decide`] gives them, from
    /// the steering table, or with the ranking of located clients cached per GeoIP record
    /// (the query path).
    pub(super) fn decide_order(
        &self,
        client: IpAddr,
        db: Option<&GeoDb>,
    ) -> ([u16; MAX_DATACENTERS], usize, u8) {
        let n = self.datacenters.len();
        let nets = self.nets.iter().any(|(net, _)| net.contains(&client));
        if !nets && let Some(db) = db {
            let mut order = [0u16; MAX_DATACENTERS];
            if let Some((len, prefix)) = self.steered(client, db, &mut order) {
                return (order, len, self.scope(client, prefix));
            }
        }
        let located = match db {
            Some(db) if !nets && n <= CACHED_DATACENTERS => db.locate(client),
            _ => {
                let d = self.decide(client, db);
                return (d.order, d.len, d.scope);
            }
        };
        let mut order = [0u16; MAX_DATACENTERS];
        let scope = self.scope(client, located.prefix);
        let (Some(location), Some(record)) = (located.location, located.record) else {
            let mut d = Decision::new(Reason::Unlocated);
            d.fill(&self.default, n);
            return (d.order, d.len, scope);
        };
        let key = (self.id, record);
        let cached = RANKED.with(|cache| cache.borrow().get(&key).copied());
        let (ranked, len) = cached.unwrap_or_else(|| {
            let d = self.rank(&location);
            let mut ranked = [0u16; CACHED_DATACENTERS];
            ranked[..d.len].copy_from_slice(d.order());
            RANKED.with(|cache| {
                let mut cache = cache.borrow_mut();
                if cache.len() >= RANKINGS {
                    cache.clear();
                }
                cache.insert(key, (ranked, d.len as u8));
            });
            (ranked, d.len as u8)
        });
        let len = usize::from(len);
        order[..len].copy_from_slice(&ranked[..len]);
        (order, len, scope)
    }

    /// Ranks the datacenters for `client`.
    pub fn decide(&self, client: IpAddr, db: Option<&GeoDb>) -> Decision {
        let n = self.datacenters.len();
        if let Some((net, list)) = self.nets.iter().find(|(net, _)| net.contains(&client)) {
            let mut d = Decision::new(Reason::Net(*net));
            d.fill(list, n);
            d.scope = self.scope(client, net.prefix_len());
            return d;
        }
        let located = db.map(|db| db.locate(client));
        // The scope: the steering table's run where it has one, else the database network.
        let mut scratch = [0u16; MAX_DATACENTERS];
        let base_prefix = match db.and_then(|db| self.steered(client, db, &mut scratch)) {
            Some((_, prefix)) => prefix,
            None => located.as_ref().map_or(0, |l| l.prefix),
        };
        let mut d = match located.as_ref().and_then(|l| l.location.as_ref()) {
            Some(location) => self.rank(location),
            None => {
                let mut d = Decision::new(Reason::Unlocated);
                d.fill(&self.default, n);
                d
            }
        };
        d.scope = self.scope(client, base_prefix);
        d.located = located;
        d
    }

    /// Orders the datacenters for a located client: map entries (most specific first), else
    /// distance less bias. Listed datacenters come first; the rest follow by distance.
    pub fn rank(&self, location: &Location) -> Decision {
        let n = self.datacenters.len();
        let here = unit_vector(location.latitude, location.longitude);
        let mapped = [
            (&location.subdivision, &self.map.subdivision),
            (&location.country, &self.map.country),
            (&location.continent, &self.map.continent),
        ]
        .into_iter()
        .find_map(|(code, map)| {
            let code = (*code)?;
            Some((code, map.get(code.as_str())?))
        });
        let (reason, listed): (Reason, &[u16]) = match (mapped, &self.map.default) {
            (Some((code, list)), _) => (Reason::Map(code), list),
            (None, Some(list)) => (Reason::MapDefault, list),
            (None, None) => (Reason::Distance, &[]),
        };
        let mut d = Decision::new(reason);
        for (i, dc) in self.datacenters.iter().enumerate() {
            d.distances[i] = chord_km(&here, &dc.position) - dc.bias_km;
        }
        d.fill(listed, n);
        let first_rest = listed.len();
        let distances = d.distances;
        d.order[first_rest..d.len].sort_by(|&a, &b| {
            distances[a as usize]
                .partial_cmp(&distances[b as usize])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        d
    }

    /// The ECS scope of an answer decided by a network of length `prefix` around `client`: at
    /// least that, and long enough to leave out every more specific `nets` entry nearby, which
    /// would answer differently (RFC 7871 §7.2.1: never wider than correct).
    fn scope(&self, client: IpAddr, prefix: u8) -> u8 {
        let mut scope = prefix;
        for (net, _) in &self.nets {
            if net.prefix_len() <= prefix || net.contains(&client) {
                continue;
            }
            let common = common_prefix(client, net.network());
            if let Some(common) = common
                && common >= prefix
            {
                scope = scope.max((common + 1).min(net.prefix_len()));
            }
        }
        scope
    }

    /// Appends up to `limit` pool endpoint indices: from the first `max_datacenters` datacenters
    /// in the decided order that have a live endpoint. Returns the ECS scope.
    pub fn order(
        &self,
        client: IpAddr,
        db: Option<&GeoDb>,
        live: &dyn Fn(u32) -> bool,
        rng: &mut fastrand::Rng,
        limit: usize,
        out: &mut Order,
    ) -> u8 {
        let (order, len, scope) = self.decide_order(client, db);
        let serving = order[..len]
            .iter()
            .map(|&i| &self.datacenters[i as usize])
            .filter(|dc| dc.endpoints.iter().any(|&e| live(e)))
            .take(self.max_datacenters);
        for dc in serving {
            let room = limit.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            // The inner policy writes this datacenter's own indices; map them to the pool's.
            let start = out.len();
            dc.inner.order(rng, room, out);
            for i in &mut out[start..] {
                *i = dc.endpoints[*i as usize];
            }
        }
        scope
    }
}

/// Leading bits two addresses of the same family share.
fn common_prefix(a: IpAddr, b: IpAddr) -> Option<u8> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            Some((u32::from(a) ^ u32::from(b)).leading_zeros().min(32) as u8)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            Some((u128::from(a) ^ u128::from(b)).leading_zeros().min(128) as u8)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{All, RoundRobin};

    fn dc(name: &str, lat: f64, lon: f64, bias_km: f64, first: u32) -> Datacenter {
        Datacenter {
            name: name.into(),
            latitude: lat,
            longitude: lon,
            position: crate::geo::unit_vector(lat, lon),
            bias_km,
            endpoints: vec![first, first + 1],
            inner: Policy::All(All::new(2)),
        }
    }

    fn pool() -> Geo {
        Geo {
            id: Geo::next_id(),
            datacenters: vec![
                dc("us-east", 39.04, -77.49, 0.0, 0),
                dc("eu-central", 50.11, 8.68, 0.0, 2),
                dc("ap-southeast", 1.35, 103.82, 0.0, 4),
            ],
            nets: vec![
                ("10.1.2.0/24".parse().unwrap(), vec![2]),
                ("10.0.0.0/8".parse().unwrap(), vec![1]),
            ],
            map: GeoMap::default(),
            default: vec![0],
            max_datacenters: 1,
            steering: Default::default(),
        }
    }

    #[test]
    fn nets_win_longest_prefix_first() {
        let g = pool();
        let d = g.decide("10.1.2.3".parse().unwrap(), None);
        assert_eq!(d.order(), [2, 0, 1]);
        assert_eq!(d.scope, 24);
        let d = g.decide("10.9.9.9".parse().unwrap(), None);
        assert_eq!(d.order()[0], 1);
        assert_eq!(d.reason, Reason::Net("10.0.0.0/8".parse().unwrap()));
        // 10.9.9.9/8 would include 10.1.2.0/24: the scope narrows to leave it out.
        assert_eq!(d.scope, 13);
    }

    #[test]
    fn unlocated_clients_get_the_default_order() {
        let g = pool();
        let d = g.decide("192.0.2.1".parse().unwrap(), None);
        assert_eq!(d.order(), [0, 1, 2]);
        assert_eq!(d.reason, Reason::Unlocated);
        // 192.0.0.0/1 would include 10.0.0.0/8, which answers differently: scope /1.
        assert_eq!(d.scope, 1);
    }

    #[test]
    fn max_datacenters_spans_the_nearest() {
        let mut g = pool();
        g.max_datacenters = 2;
        let mut out = Order::new();
        let mut rng = fastrand::Rng::with_seed(1);
        g.order(
            "10.1.2.3".parse().unwrap(),
            None,
            &|_| true,
            &mut rng,
            usize::MAX,
            &mut out,
        );
        assert_eq!(out[..], [4, 5, 0, 1]);
        out.clear();
        g.order(
            "10.1.2.3".parse().unwrap(),
            None,
            &|_| true,
            &mut rng,
            3,
            &mut out,
        );
        assert_eq!(out[..], [4, 5, 0]);
    }

    #[test]
    fn empty_datacenters_pass_traffic_on() {
        let mut g = pool();
        g.datacenters[2].endpoints.clear();
        g.datacenters[2].inner = Policy::RoundRobin(RoundRobin::new(0));
        let mut out = Order::new();
        let mut rng = fastrand::Rng::with_seed(1);
        g.order(
            "10.1.2.3".parse().unwrap(),
            None,
            &|_| true,
            &mut rng,
            usize::MAX,
            &mut out,
        );
        assert_eq!(out[..], [0, 1]);
    }

    fn at(lat: f64, lon: f64, continent: &str, country: &str, sub: Option<&str>) -> Location {
        Location {
            latitude: lat,
            longitude: lon,
            continent: Some(continent.into()),
            country: Some(country.into()),
            subdivision: sub.map(Into::into),
            centroid: false,
        }
    }

    #[test]
    fn distance_ranking() {
        let g = pool();
        // (client, expected order) — one line a case.
        let cases = [
            (at(40.7, -74.0, "NA", "US", None), [0, 1, 2]), // New York
            (at(51.5, -0.1, "EU", "GB", None), [1, 0, 2]),  // London
            (at(35.7, 139.8, "AS", "JP", None), [2, 1, 0]), // Tokyo
            (at(-33.9, 151.2, "OC", "AU", None), [2, 0, 1]), // Sydney
            (at(-23.5, -46.6, "SA", "BR", None), [0, 1, 2]), // São Paulo
        ];
        for (client, want) in cases {
            let d = g.rank(&client);
            assert_eq!(d.order(), want, "{client:?} {d:?}");
            assert_eq!(d.reason, Reason::Distance);
        }
    }

    #[test]
    fn bias_moves_the_boundary() {
        let mut g = pool();
        // Reykjavik is nearer Frankfurt (2,400 km) than Ashburn (4,600 km)...
        let reykjavik = at(64.1, -21.9, "EU", "IS", None);
        assert_eq!(g.rank(&reykjavik).order()[0], 1);
        // ...until us-east draws clients from 2,500 km farther.
        g.datacenters[0].bias_km = 2500.0;
        assert_eq!(g.rank(&reykjavik).order()[0], 0);
        // A negative bias pushes clients away.
        g.datacenters[0].bias_km = -9000.0;
        assert_eq!(g.rank(&at(40.7, -74.0, "NA", "US", None)).order()[0], 1);
    }

    #[test]
    fn map_precedence_subdivision_country_continent() {
        let mut g = pool();
        g.map.continent.insert("NA".into(), vec![2]);
        g.map.country.insert("US".into(), vec![1]);
        g.map.subdivision.insert("US-CA".into(), vec![0, 2]);
        let d = g.rank(&at(37.4, -122.1, "NA", "US", Some("US-CA")));
        assert_eq!(d.order(), [0, 2, 1]);
        assert_eq!(d.reason, Reason::Map(Code::from("US-CA")));
        let d = g.rank(&at(40.7, -74.0, "NA", "US", Some("US-NY")));
        assert_eq!((d.order()[0], d.reason), (1, Reason::Map(Code::from("US"))));
        let d = g.rank(&at(45.5, -73.6, "NA", "CA", None));
        assert_eq!((d.order()[0], d.reason), (2, Reason::Map(Code::from("NA"))));
        // No key matches: distance, unless the map has a default.
        let london = at(51.5, -0.1, "EU", "GB", None);
        assert_eq!(g.rank(&london).reason, Reason::Distance);
        g.map.default = Some(vec![2]);
        assert_eq!(g.rank(&london).order(), [2, 1, 0]);
    }

    #[test]
    fn dead_datacenters_pass_traffic_to_the_next_nearest() {
        let g = pool();
        let mut out = Order::new();
        let mut rng = fastrand::Rng::with_seed(1);
        // ap-southeast (endpoints 4, 5) is all down: the next in order answers.
        g.order(
            "10.1.2.3".parse().unwrap(),
            None,
            &|e| e < 4,
            &mut rng,
            usize::MAX,
            &mut out,
        );
        assert_eq!(out[..], [0, 1]);
    }

    #[test]
    fn cached_rankings_are_the_decisions() {
        let db = GeoDb::open(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/geoip/meridian-test.mmdb"
        )))
        .unwrap();
        let mut geo = pool();
        geo.nets.clear();
        geo.datacenters[1].bias_km = 3000.0;
        let networks = include_str!("../../geoip/networks.csv");
        let mut clients: Vec<IpAddr> = networks
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['/', ',']).next()?.parse().ok())
            .collect();
        clients.extend(
            ["192.0.2.1", "2001:db8::1", "::ffff:8.8.8.8"].map(|a| a.parse::<IpAddr>().unwrap()),
        );
        // Twice: the second round answers from the cache.
        for _ in 0..2 {
            for &client in &clients {
                let d = geo.decide(client, Some(&db));
                let (order, len, scope) = geo.decide_order(client, Some(&db));
                assert_eq!(&order[..len], d.order(), "{client}");
                assert_eq!(scope, d.scope, "{client}");
            }
        }
    }

    /// The real database when `.ci/run` has fetched it, else the bundled test database.
    fn largest_database() -> GeoDb {
        let real = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/geoip/real/dbip-city-lite.mmdb"
        );
        let test = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/meridian-test.mmdb");
        let path = [real, test]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap();
        GeoDb::open(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn steering_tables_answer_as_the_database_walk_does() {
        let db = largest_database();
        // Two rankings (the second draws Europe's clients farther), built in one walk; a
        // third pool ranking like the first shares its table.
        let biased = || {
            let mut g = pool();
            g.datacenters[1].bias_km = 2000.0;
            g.map.country.insert("JP".into(), vec![0]);
            g
        };
        let tables = [pool(), biased(), pool()];
        Geo::prepare_all(tables.iter(), &db);
        let loaded = tables.each_ref().map(|t| t.steering.get().unwrap());
        assert!(std::sync::Arc::ptr_eq(&loaded[0], &loaded[2]));
        assert!(!std::sync::Arc::ptr_eq(&loaded[0], &loaded[1]));
        for (walk, table) in [(pool(), &tables[0]), (biased(), &tables[1])] {
            agrees_with_walk(&db, &walk, table);
        }
    }

    fn agrees_with_walk(db: &GeoDb, walk: &Geo, table: &Geo) {
        let mut rng = fastrand::Rng::with_seed(7);
        let random_client = |rng: &mut fastrand::Rng| -> IpAddr {
            match rng.u8(..7) {
                0 => IpAddr::V6(rng.u128(..).into()),
                // IPv4-compatible ::/96, which the tables leave to the tree.
                6 => IpAddr::V6(rng.u128(..1 << 32).into()),
                1 => IpAddr::V6(((0x2000u128 << 112) | rng.u128(..1 << 125)).into()),
                // 6to4 and Teredo, which databases alias to the IPv4 addresses inside.
                2 => IpAddr::V6(((0x2002u128 << 112) | rng.u128(..1 << 112)).into()),
                3 => IpAddr::V6(((0x2001_0000u128 << 96) | rng.u128(..1 << 96)).into()),
                _ => IpAddr::V4(rng.u32(..).into()),
            }
        };
        let mut covered = 0;
        for _ in 0..20_000 {
            let client = random_client(&mut rng);
            let (want, want_len, _) = walk.decide_order(client, Some(db));
            let (got, len, scope) = table.decide_order(client, Some(db));
            assert_eq!(&got[..len], &want[..want_len], "{client}");
            // The scope promises the same order to every client in it: try a few.
            let mut probe = [0u16; MAX_DATACENTERS];
            if table.steered(client, db, &mut probe).is_none() {
                continue;
            }
            covered += 1;
            let block = IpNet::new(client, scope).unwrap().trunc();
            for _ in 0..4 {
                let inside = match (block.network(), block.hostmask()) {
                    (IpAddr::V4(n), IpAddr::V4(m)) => {
                        IpAddr::V4((u32::from(n) | (rng.u32(..) & u32::from(m))).into())
                    }
                    (IpAddr::V6(n), IpAddr::V6(m)) => {
                        IpAddr::V6((u128::from(n) | (rng.u128(..) & u128::from(m))).into())
                    }
                    _ => unreachable!(),
                };
                let (other, other_len, _) = walk.decide_order(inside, Some(db));
                assert_eq!(
                    &other[..other_len],
                    &want[..want_len],
                    "{inside} in {block}"
                );
            }
        }
        assert!(covered > 10_000, "{covered}");
        if db.path().to_string_lossy().contains("dbip") {
            // DB-IP aliases 6to4 and Teredo: the table answers them through its IPv4 runs.
            for aliased in ["2002:808:808::1", "2001:0:808:808::1"] {
                let mut order = [0u16; MAX_DATACENTERS];
                let found = table.steered(aliased.parse().unwrap(), db, &mut order);
                assert!(found.is_some_and(|(_, p)| p > 16), "{aliased}: {found:?}");
            }
        }
    }

    #[test]
    fn common_prefixes() {
        let a = "10.1.2.3".parse().unwrap();
        assert_eq!(common_prefix(a, "10.1.2.3".parse().unwrap()), Some(32));
        assert_eq!(common_prefix(a, "10.129.0.0".parse().unwrap()), Some(8));
        assert_eq!(common_prefix(a, "::1".parse().unwrap()), None);
    }
}
