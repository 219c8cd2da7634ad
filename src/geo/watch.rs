//! Follows the GeoIP database file: when its size or modification time changes, the writer
//! path is asked to reload it. Replace the file atomically (write a temp file, then rename) so
//! that a half-written file is never read; a bad file is refused by the reload anyway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Calls `reload` (on a blocking thread: it builds steering tables) whenever `path` changes,
/// looking every `interval`, until `shutdown`.
pub async fn watch(
    path: PathBuf,
    interval: Duration,
    reload: Arc<dyn Fn() + Send + Sync>,
    shutdown: CancellationToken,
) {
    let stamp = |p: &Path| {
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
        let reload = reload.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || reload()).await {
            tracing::error!(%error, "GeoIP reload failed");
        }
    }
}
