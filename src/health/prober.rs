//! The prober: one task per distinct (address, check), following the probes the served zones
//! need, at most `max_concurrent` probes in flight, and restarted if a task dies. Results go to
//! a [`ProbeSink`] (the writer path, which publishes a new snapshot when a status changes);
//! probes never touch the query path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, Id, JoinSet};
use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use super::check::{self, Passed};
use super::{Hysteresis, ProbeKey, ProbeReport, Status};

/// Where the prober learns what to probe and reports what it found.
pub trait ProbeSink: Send + Sync + 'static {
    /// The probes the served zones need, as they change.
    fn targets(&self) -> watch::Receiver<Arc<[ProbeKey]>>;
    /// The last-known status of a probe (from an earlier run, too).
    fn last_status(&self, key: &ProbeKey) -> Status;
    /// One probe's result.
    fn report(&self, key: &ProbeKey, report: ProbeReport);
}

/// Runs every probe `sink` asks for until `shutdown`.
pub async fn run_prober(
    sink: Arc<dyn ProbeSink>,
    max_concurrent: usize,
    source: Option<std::net::IpAddr>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let mut targets = sink.targets();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<ProbeKey, AbortHandle> = HashMap::new();
    let mut by_id: HashMap<Id, ProbeKey> = HashMap::new();
    loop {
        // Follow the configuration: stop probes no zone needs any more, start new ones.
        let wanted: Arc<[ProbeKey]> = targets.borrow_and_update().clone();
        running.retain(|key, handle| {
            let keep = wanted.contains(key);
            if !keep {
                handle.abort();
                tracing::info!("health: stopped probing {key} (no longer configured)");
            }
            keep
        });
        for key in wanted.iter() {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(key.clone()) {
                let key = slot.key().clone();
                let handle = tasks.spawn(probe(key.clone(), source, sink.clone(), permits.clone()));
                by_id.insert(handle.id(), key);
                slot.insert(handle);
            }
        }
        tokio::select! {
            changed = targets.changed() => {
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

/// Probes one (address, check) forever with the real check.
async fn probe(
    key: ProbeKey,
    source: Option<std::net::IpAddr>,
    sink: Arc<dyn ProbeSink>,
    permits: Arc<Semaphore>,
) {
    let client = match key.check.kind {
        super::spec::CheckKind::Tcp => None,
        _ => match check::client(&key, source) {
            Ok(c) => Some(c),
            Err(error) => {
                tracing::error!("health: {key}: {error}");
                None
            }
        },
    };
    let run = || check::run(&key, client.as_ref(), source);
    probe_loop(&key, &*sink, &permits, run).await;
}

/// The probe schedule: first at once (with a little jitter so that a start does not fire every
/// probe in the same instant), then every interval ± 10 %; each result goes through the
/// rise/fall hysteresis to `sink`.
async fn probe_loop<F, Fut>(key: &ProbeKey, sink: &dyn ProbeSink, permits: &Semaphore, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Passed, String>>,
{
    let check = &key.check;
    let interval = check.interval();
    let mut rng = fastrand::Rng::new();
    let mut machine = Hysteresis::new(sink.last_status(key), check.rise, check.fall);
    let first = interval
        .min(Duration::from_secs(1))
        .mul_f64(rng.f64() * 0.1);
    tokio::time::sleep(first).await;
    loop {
        let started = Instant::now();
        let result = {
            let _permit = permits.acquire().await.expect("semaphore never closed");
            run().await
        };
        let latency = started.elapsed();
        let old = machine.status;
        let changed = machine.observe(result.is_ok());
        if let Err(failure) = &result {
            crate::metrics::global()
                .record_probe_failure(&key.to_string(), super::failure_reason(failure));
        }
        let (result, load) = match result {
            Ok(passed) => (Ok(passed.seen), passed.load),
            Err(failure) => (Err(failure), None),
        };
        let report = ProbeReport {
            old,
            changed,
            result,
            latency,
            load,
        };
        sink.report(key, report);
        tokio::time::sleep(interval.mul_f64(0.9 + rng.f64() * 0.2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Control;

    /// A state whose one pool has one endpoint checked every 10 s, fall 3, rise 2.
    fn state() -> (Arc<Control>, ProbeKey) {
        let zone = r#"
            ns = ["ns1"]
            [soa]
            mname = "ns1"
            rname = "hm"
            serial = 1
            [pools.p]
            check = { type = "tcp", port = 9, interval = "10s", fall = 3, rise = 2 }
            endpoints = [{ address = "192.0.2.1" }]
            "#;
        let zones = crate::fixture::zone_set(&[("t.", zone)]);
        let key = zones.probes[0].clone();
        (Arc::new(Control::from_zones(zones)), key)
    }

    /// Runs the loop with a fake check that fails during [fail_from, fail_until) seconds.
    async fn status_at(times: &[u64], fail_from: u64, fail_until: u64) -> Vec<Status> {
        let (state, key) = state();
        let start = tokio::time::Instant::now();
        let permits = Semaphore::new(1);
        let run = || {
            let t = start.elapsed().as_secs();
            async move {
                match (fail_from..fail_until).contains(&t) {
                    true => Err("refused".to_owned()),
                    false => Ok(Passed::seen("connected")),
                }
            }
        };
        let mut seen = Vec::new();
        let probing = probe_loop(&key, &*state, &permits, run);
        tokio::pin!(probing);
        for &t in times {
            let until = start + Duration::from_secs(t);
            tokio::select! {
                _ = &mut probing => unreachable!(),
                _ = tokio::time::sleep_until(until) => {}
            }
            let snapshot = state.current().load();
            seen.push(snapshot.health.zone(0).status[0]);
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn down_after_fall_intervals_up_after_rise() {
        // Failing from 100 s to 160 s, probes every 9–11 s (jitter): the third failure comes
        // after 118 s at the earliest and by 144 s at the latest; the second success after
        // 160 s comes after 169 s at the earliest and by 193 s at the latest.
        let seen = status_at(&[1, 99, 117, 145, 168, 195], 100, 160).await;
        use Status::*;
        assert_eq!(seen, [Up, Up, Up, Down, Down, Up]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_blip_shorter_than_fall_changes_nothing() {
        let seen = status_at(&[1, 50, 100, 150], 40, 55).await;
        assert!(seen.iter().all(|&s| s == Status::Up), "{seen:?}");
    }
}
