//! The shared state the query path reads: an immutable [`Snapshot`] behind `ArcSwap`. Readers do
//! one atomic load per query; writers (reload, later the prober and the API) build a whole new
//! snapshot and swap it in, one writer at a time.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::geo::{GeoDb, GeoError};
use crate::zone::{self, ZoneError, ZoneSet};

/// Everything one answer needs, frozen.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub zones: Arc<ZoneSet>,
    /// The GeoIP database, where one is configured.
    pub geo: Option<Arc<GeoDb>>,
}

/// Why a load or reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("GeoIP database {0}")]
    Geo(#[from] GeoError),
}

/// The current snapshot and how to rebuild it.
#[derive(Debug)]
pub struct State {
    current: ArcSwap<Snapshot>,
    zones_dir: PathBuf,
    geoip: Option<PathBuf>,
    /// Serializes writers so that two reloads cannot interleave their swaps.
    writer: std::sync::Mutex<()>,
}

impl State {
    /// Loads the zones folder and the GeoIP database; fails if any zone or the database is
    /// invalid.
    pub fn load(zones_dir: PathBuf, geoip: Option<PathBuf>) -> Result<Self, LoadError> {
        let zones = Arc::new(zone::load_dir(&zones_dir)?);
        let geo = geoip.as_deref().map(GeoDb::open).transpose()?.map(Arc::new);
        Ok(Self {
            current: ArcSwap::from_pointee(Snapshot { zones, geo }),
            zones_dir,
            geoip,
            writer: std::sync::Mutex::new(()),
        })
    }

    /// A state over an already built snapshot (tests, tools).
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            zones_dir: PathBuf::new(),
            geoip: None,
            writer: std::sync::Mutex::new(()),
        }
    }

    /// The snapshot to answer one query from. Never hold it across an `.await`.
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Re-reads the zones folder and the GeoIP database (SIGHUP). All or nothing: on any
    /// error the old zones and database keep serving.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let zones = zone::load_dir(&self.zones_dir)?;
        let geo = self
            .geoip
            .as_deref()
            .map(GeoDb::open)
            .transpose()?
            .map(Arc::new);
        let count = zones.len();
        self.current.store(Arc::new(Snapshot {
            zones: Arc::new(zones),
            geo,
        }));
        Ok(count)
    }

    /// Re-reads only the GeoIP database (it changed on disk); the zones stay as they are. A
    /// file that cannot be opened is refused and the old database keeps serving.
    pub fn reload_geo(&self) -> Result<Option<String>, GeoError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.geoip else {
            return Ok(None);
        };
        let geo = GeoDb::open(path)?;
        let description = geo.describe();
        let zones = self.current.load().zones.clone();
        self.current.store(Arc::new(Snapshot {
            zones,
            geo: Some(Arc::new(geo)),
        }));
        Ok(Some(description))
    }

    /// The configured database path, if any.
    pub fn geoip_path(&self) -> Option<&std::path::Path> {
        self.geoip.as_deref()
    }
}

/// Re-reads the GeoIP database whenever its file changes (size or modification time), until
/// `shutdown`. Replace the file atomically (write a temp file, then rename) so that a
/// half-written file is never read; a bad file is refused and logged anyway.
pub async fn watch_geoip(
    state: Arc<State>,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(path) = state.geoip_path().map(ToOwned::to_owned) else {
        return;
    };
    let stamp = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = stamp(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        let state = state.clone();
        match tokio::task::spawn_blocking(move || state.reload_geo()).await {
            Ok(Ok(Some(db))) => tracing::info!("reloaded GeoIP database: {db}"),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::error!("GeoIP reload refused, the old database keeps serving: {error}")
            }
            Err(error) => tracing::error!(%error, "GeoIP reload failed"),
        }
    }
}
