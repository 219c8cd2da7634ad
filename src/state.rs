//! The shared state the query path reads: an immutable [`Snapshot`] behind `ArcSwap`. Readers do
//! one atomic load per query; writers (reload, later the prober and the API) build a whole new
//! snapshot and swap it in, one writer at a time.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::zone::{self, ZoneError, ZoneSet};

/// Everything one answer needs, frozen.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub zones: ZoneSet,
}

/// The current snapshot and how to rebuild it.
#[derive(Debug)]
pub struct State {
    current: ArcSwap<Snapshot>,
    zones_dir: PathBuf,
    /// Serializes writers so that two reloads cannot interleave their swaps.
    writer: std::sync::Mutex<()>,
}

impl State {
    /// Loads the zones folder; fails if any zone is invalid.
    pub fn load(zones_dir: PathBuf) -> Result<Self, ZoneError> {
        let zones = zone::load_dir(&zones_dir)?;
        Ok(Self {
            current: ArcSwap::from_pointee(Snapshot { zones }),
            zones_dir,
            writer: std::sync::Mutex::new(()),
        })
    }

    /// A state over an already built snapshot (tests, tools).
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            zones_dir: PathBuf::new(),
            writer: std::sync::Mutex::new(()),
        }
    }

    /// The snapshot to answer one query from. Never hold it across an `.await`.
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Re-reads the zones folder. All or nothing: on any error the old zones keep serving.
    pub fn reload(&self) -> Result<usize, ZoneError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let zones = zone::load_dir(&self.zones_dir)?;
        let count = zones.len();
        self.current.store(Arc::new(Snapshot { zones }));
        Ok(count)
    }
}
