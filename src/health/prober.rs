//! The prober: one task per distinct (address, check), following the zone set as it is
//! reloaded, at most `max_concurrent` probes in flight, and restarted if a task dies. Results go
//! into the shared state, which publishes a new snapshot when a status changes; probes never
//! touch the query path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, Id, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{Hysteresis, ProbeKey, check};
use crate::state::State;

/// Runs every probe the current zones need until `shutdown`.
pub async fn run_prober(state: Arc<State>, max_concurrent: usize, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let mut zones = state.subscribe_zones();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<ProbeKey, AbortHandle> = HashMap::new();
    let mut by_id: HashMap<Id, ProbeKey> = HashMap::new();
    loop {
        // Follow the configuration: stop probes no zone needs any more, start new ones.
        let wanted: Vec<ProbeKey> = zones.borrow_and_update().probes.clone();
        running.retain(|key, handle| {
            let keep = wanted.contains(key);
            if !keep {
                handle.abort();
                tracing::info!("health: stopped probing {key} (no longer configured)");
            }
            keep
        });
        for key in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(key) {
                let key = slot.key().clone();
                let handle = tasks.spawn(probe(key.clone(), state.clone(), permits.clone()));
                by_id.insert(handle.id(), key);
                slot.insert(handle);
            }
        }
        tokio::select! {
            changed = zones.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(done) = tasks.join_next_with_id() => {
                let (id, outcome) = match done {
                    Ok((id, ())) => (id, "ended".to_owned()),
                    Err(e) if e.is_cancelled() => {
                        by_id.remove(&e.id());
                        continue;
                    }
                    Err(e) => (e.id(), format!("panicked: {e}")),
                };
                // Never silently lost: log and let the loop above start it again.
                if let Some(key) = by_id.remove(&id) {
                    tracing::error!("health: probe task for {key} {outcome}; restarting it");
                    running.remove(&key);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    tasks.shutdown().await;
}

/// Probes one (address, check) forever: first at once (with a little jitter so that a start
/// does not fire every probe in the same instant), then every interval ± 10 %.
async fn probe(key: ProbeKey, state: Arc<State>, permits: Arc<Semaphore>) {
    let check = key.check.clone();
    let interval = check.interval();
    let client = match check.kind {
        super::spec::CheckKind::Tcp => None,
        _ => match check::client(&key) {
            Ok(c) => Some(c),
            Err(error) => {
                tracing::error!("health: {key}: {error}");
                None
            }
        },
    };
    let mut rng = fastrand::Rng::new();
    let mut machine = Hysteresis::new(state.probe_status(&key), check.rise, check.fall);
    let first = interval
        .min(Duration::from_secs(1))
        .mul_f64(rng.f64() * 0.1);
    tokio::time::sleep(first).await;
    loop {
        let started = Instant::now();
        let result = {
            let _permit = permits.acquire().await.expect("semaphore never closed");
            check::run(&key, client.as_ref()).await
        };
        let latency = started.elapsed();
        let old = machine.status;
        let changed = machine.observe(result.is_ok());
        state.record_probe(&key, changed, old, result, latency);
        let jitter = interval.mul_f64(0.9 + rng.f64() * 0.2);
        tokio::time::sleep(jitter).await;
    }
}
