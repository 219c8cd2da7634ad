//! The immutable [`Snapshot`] every answer is computed from, and [`Current`], the one cell
//! that holds the snapshot being served. Readers do one atomic load per query (or UDP batch);
//! the writer path (`control`) builds a whole new snapshot and publishes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cell::{Cell, Loaded};
use crate::geo::GeoDb;
use crate::health::Health;
use crate::zone::ZoneSet;

/// Everything one answer needs, frozen.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Unique for the process's life (0 only for snapshots built by hand in tests). (A
    /// worker's reply memo, `dns::memo`, is valid per zone and health view, not per
    /// snapshot: a change to one zone keeps the others' answers.)
    pub generation: u64,
    pub zones: Arc<ZoneSet>,
    /// The GeoIP database, where one is configured.
    pub geo: Option<Arc<GeoDb>>,
    /// Endpoint states, each zone's by its own slots, in the order of `zones`.
    pub health: Arc<Health>,
}

/// The snapshot being served.
#[derive(Debug)]
pub struct Current(Cell<Snapshot>);

impl Default for Current {
    fn default() -> Self {
        Self(Cell::new(Snapshot::default()))
    }
}

impl Current {
    /// The snapshot to answer from. Never hold it across an `.await`.
    pub fn load(&self) -> Loaded<Snapshot> {
        self.0.load()
    }

    /// The snapshot to answer from, held, with the count of snapshots published before it: a
    /// UDP worker keeps it while [`Current::published`] says the same (one atomic load a
    /// batch instead of arc-swap's load).
    pub fn hold(&self) -> (u64, Arc<Snapshot>) {
        (self.0.version(), self.0.get())
    }

    /// How many snapshots have been published.
    pub fn published(&self) -> u64 {
        self.0.version()
    }

    /// Serves `zones`, `geo` and `health` from now on, as a snapshot of a new generation;
    /// returns that generation. Callers serialize their writes (see `control`).
    pub fn publish(
        &self,
        zones: Arc<ZoneSet>,
        geo: Option<Arc<GeoDb>>,
        health: Arc<Health>,
    ) -> u64 {
        static GENERATIONS: AtomicU64 = AtomicU64::new(1);
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        self.0.replace(Arc::new(Snapshot {
            generation,
            zones,
            geo,
            health,
        }));
        generation
    }
}
