//! Steering tables: every database network given a geo pool's datacenter order for the
//! clients there, built in the background after a snapshot with new geo pools or a new
//! database is published (one walk of the database for all pools that rank differently), so
//! that the query path makes two loads instead of a tree walk. Until a pool's table is built
//! it answers from the database directly, with the same decisions.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Geo;
use super::rank::{Ranking, Reason};
use crate::geo::table::{UNCOVERED, ValueOf};
use crate::geo::{GeoDb, Location, NetworkTable};

/// A geo pool's datacenter orders by network (see [`crate::geo::table`]).
#[derive(Debug)]
pub struct Steering {
    table: NetworkTable,
    /// The orders, by table value.
    orders: Vec<Box<[u16]>>,
}

/// Steering tables built so far, by (database generation, ranking settings): pools that rank
/// alike (both families of one pool, pools sharing datacenters) share one, and a snapshot
/// rebuilt for a zone change reuses them. Building one walks the whole database (seconds for
/// DB-IP City Lite), so only `MAX_TABLES` distinct settings get one; other pools look each
/// client up in the database.
const MAX_TABLES: usize = 16;
static TABLES: std::sync::Mutex<Tables> = std::sync::Mutex::new(Vec::new());

/// How many pools' tables a query thread keeps (by pool id, direct-mapped).
const LOADED_TABLES: usize = 16;

thread_local! {
    /// This thread's copies of the geo pools' steering tables, with the version of the pool's
    /// cell each was taken at: a query checks the version (one atomic load) instead of loading
    /// the cell (an arc-swap load costs far more on the query path). A replaced table is let
    /// go the next time its slot is used.
    static LOADED: std::cell::RefCell<Loaded> = std::cell::RefCell::new(Loaded::default());
}

/// See [`LOADED`]: by pool id modulo `LOADED_TABLES`.
#[derive(Default)]
struct Loaded([Option<Held>; LOADED_TABLES]);

/// (pool id, the version of its cell, the table it held then).
type Held = (u64, u64, Option<std::sync::Arc<Steering>>);

impl Loaded {
    /// The current steering table of `pool`, if it has one.
    fn get(&mut self, pool: &Geo) -> Option<&Steering> {
        let version = pool.steering.version();
        let slot = &mut self.0[pool.id as usize % LOADED_TABLES];
        match slot {
            Some((id, v, _)) if *id == pool.id && *v == version => {}
            _ => *slot = Some((pool.id, version, pool.steering.get())),
        }
        slot.as_ref()?.2.as_deref()
    }
}

/// Steering tables built for `db`'s generation.
type Tables = Vec<(u64, String, std::sync::Arc<Steering>)>;

/// Forgets the tables of other databases and of settings no pool of `pools` has; returns the
/// pools whose settings have no table and are not in `being_built`, one a setting, as many as
/// `MAX_TABLES` leaves room for.
fn missing<'a, 'p>(
    tables: &mut Tables,
    pools: &'p [(&'a Geo, String)],
    generation: u64,
    being_built: &[&String],
) -> Vec<(&'a Geo, &'p String)> {
    tables.retain(|(g, key, _)| *g == generation && pools.iter().any(|(_, k)| k == key));
    let mut missing: Vec<(&Geo, &String)> = Vec::new();
    for (pool, key) in pools {
        let known = tables.iter().any(|(_, k, _)| k == key)
            || being_built.contains(&key)
            || missing.iter().any(|(_, k)| *k == key);
        if !known && tables.len() + being_built.len() + missing.len() < MAX_TABLES {
            missing.push((pool, key));
        }
    }
    missing
}

/// Gives each of `pools` the table of its settings, or none.
fn assign(tables: &Tables, pools: &[(&Geo, String)]) {
    for (pool, key) in pools {
        let found = tables.iter().find(|(_, k, _)| k == key);
        pool.steering.replace(found.map(|(_, _, s)| s.clone()));
    }
}

/// The ranking settings whose steering tables are being built, with their database
/// generation: the geo pools that have them answer from the database meanwhile.
static BUILDING: std::sync::Mutex<Vec<(u64, String)>> = std::sync::Mutex::new(Vec::new());

/// The generation of the database the last [`Geo::steer_all`] steered for (the served one).
static STEERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether steering tables are being built (see [`Geo::steer_all`]).
pub fn steering_pending() -> bool {
    !BUILDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
}

impl Geo {
    /// Gives every one of `pools` its steering table for `db`, shared with the pools that
    /// rank alike and reused from an earlier snapshot where one was built for the same
    /// database, and forgets the tables no pool uses any more. Returns the ranking settings
    /// that have no table yet and are not being built, now marked as being built: the
    /// caller builds them with [`Geo::build_tables`] (a walk of the whole database, seconds
    /// for DB-IP City), in the background, while those pools look clients up in the
    /// database. Never called on the query path.
    pub fn steer_all<'a>(pools: impl Iterator<Item = &'a Geo>, db: &GeoDb) -> Vec<String> {
        let pools: Vec<(&Geo, String)> = pools.map(|g| (g, g.ranking_settings())).collect();
        let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let mut building = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        let generation = db.generation();
        STEERED.store(generation, std::sync::atomic::Ordering::Relaxed);
        building.retain(|(g, _)| *g == generation);
        let being_built: Vec<&String> = building.iter().map(|(_, k)| k).collect();
        let missing = missing(&mut tables, &pools, generation, &being_built);
        building.extend(missing.iter().map(|(_, k)| (generation, (*k).clone())));
        assign(&tables, &pools);
        missing.into_iter().map(|(_, k)| k.clone()).collect()
    }

    /// Builds the steering tables of the ranking settings `keys` (from [`Geo::steer_all`])
    /// for `db`, in one walk of the database, ranking as the first of `pools` with each does;
    /// [`Geo::steer_all`] then hands them to the pools.
    pub fn build_tables<'a>(pools: impl Iterator<Item = &'a Geo>, db: &GeoDb, keys: &[String]) {
        let mut missing: Vec<(&Geo, &String)> = Vec::new();
        for pool in pools {
            let key = pool.ranking_settings();
            if let Some(key) = keys.iter().find(|k| **k == key)
                && !missing.iter().any(|(_, k)| *k == key)
            {
                missing.push((pool, key));
            }
        }
        let built = Self::walk(&missing, db);
        let generation = db.generation();
        let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let mut building = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        building.retain(|(g, k)| !(*g == generation && keys.contains(k)));
        // A database replaced meanwhile: its tables would never be used.
        if STEERED.load(std::sync::atomic::Ordering::Relaxed) == generation {
            for (key, steering) in built {
                tables.push((generation, key.clone(), std::sync::Arc::new(steering)));
            }
        }
    }

    /// [`Geo::steer_all`] with the missing tables built at once, in one step that no other
    /// caller interleaves with (tools and tests).
    pub fn prepare_all<'a>(pools: impl Iterator<Item = &'a Geo>, db: &GeoDb) {
        let pools: Vec<(&Geo, String)> = pools.map(|g| (g, g.ranking_settings())).collect();
        let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let generation = db.generation();
        let missing = missing(&mut tables, &pools, generation, &[]);
        for (key, steering) in Self::walk(&missing, db) {
            tables.push((generation, key.clone(), std::sync::Arc::new(steering)));
        }
        assign(&tables, &pools);
    }

    /// One walk of `db` that gives each of `pools` its table.
    fn walk<'k>(pools: &[(&Geo, &'k String)], db: &GeoDb) -> Vec<(&'k String, Steering)> {
        if pools.is_empty() {
            return Vec::new();
        }
        let started = std::time::Instant::now();
        let mut orders: Vec<Vec<Box<[u16]>>> = vec![Vec::new(); pools.len()];
        let mut rankers: Vec<_> = pools
            .iter()
            .zip(orders.iter_mut())
            .map(|((pool, _), orders)| {
                move |location: Option<&Location>| pool.order_value(location, orders)
            })
            .collect();
        let mut value_of: Vec<ValueOf<'_>> = rankers.iter_mut().map(|f| f as ValueOf<'_>).collect();
        let built = NetworkTable::build_many(db, &mut value_of);
        drop(value_of);
        drop(rankers);
        let Some(built) = built else {
            tracing::warn!(
                "cannot walk {}: geo pools look clients up one by one",
                db.path().display()
            );
            return Vec::new();
        };
        tracing::info!(
            tables = built.len(),
            runs = built.iter().map(NetworkTable::runs).sum::<usize>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "geo steering tables built"
        );
        let keys = pools.iter().map(|(_, key)| *key);
        let steering = built.into_iter().zip(orders);
        keys.zip(steering.map(|(table, orders)| Steering { table, orders }))
            .collect()
    }

    /// The table value for a client at `location` (`None`: not located): the index of its
    /// datacenter order in `orders`, added there if new.
    fn order_value(&self, location: Option<&Location>, orders: &mut Vec<Box<[u16]>>) -> u16 {
        let order: Box<[u16]> = match location {
            Some(location) => self.rank(location).order().into(),
            None => {
                let mut d = Ranking::new(Reason::Unlocated);
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
    pub(super) fn steered(
        &self,
        client: IpAddr,
        db: &GeoDb,
        order: &mut [u16],
    ) -> Option<(usize, u8)> {
        LOADED.with_borrow_mut(|loaded| {
            let steering = loaded
                .get(self)
                .filter(|s| s.table.generation == db.generation())?;
            let (value, prefix) = steering.table.lookup(client);
            if value == UNCOVERED {
                return None;
            }
            let found = &steering.orders[usize::from(value)];
            order[..found.len()].copy_from_slice(found);
            Some((found.len(), prefix))
        })
    }
}
