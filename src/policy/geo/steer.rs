//! Steering tables: every database network given a geo pool's datacenter order for the
//! clients there, built when a snapshot is built (one walk of the database for all pools that
//! rank differently), so that the query path makes two loads instead of a tree walk.

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
/// rebuilt for a zone change reuses them. Building one walks the whole database (about a
/// second for DB-IP City Lite), so only `MAX_TABLES` distinct settings get one; other pools
/// look each client up in the database.
const MAX_TABLES: usize = 16;
static TABLES: std::sync::Mutex<Vec<(u64, String, std::sync::Arc<Steering>)>> =
    std::sync::Mutex::new(Vec::new());

/// How many pools' tables a query thread keeps (by pool id, direct-mapped).
const LOADED_TABLES: usize = 16;

thread_local! {
    /// This thread's copies of the geo pools' steering tables, with the version of the pool's
    /// cell each was taken at: a query checks the version (one atomic load) instead of loading
    /// the cell (arc-swap's load took about 140 instructions a query). A replaced table is let
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

impl Geo {
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
