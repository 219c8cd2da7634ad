//! What operators and their tools read, with no token: Prometheus metrics, liveness and
//! readiness, and the status page with its JSON. Read-only; bind the API listener to a
//! management address.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use serde_json::{Value, json};

use super::Api;
use crate::health::Status;
use crate::metrics;
use crate::policy::Policy;

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(AxumState(api): AxumState<Api>) -> impl IntoResponse {
    let snapshot = api.control.snapshot();
    let records = api.control.probe_records();
    let probes = snapshot
        .zones
        .probes
        .iter()
        .map(|key| {
            let record = records.get(key);
            let up = match record.map(|r| r.status) {
                Some(Status::Up) => Some(true),
                Some(Status::Down) => Some(false),
                _ => None,
            };
            let kind = format!("{:?}", key.check.kind).to_ascii_lowercase();
            (
                key.to_string(),
                kind,
                up,
                record.and_then(|r| r.last_latency),
            )
        })
        .collect();
    let mut zones: Vec<(String, u32)> = snapshot
        .zones
        .iter()
        .map(|z| (z.origin.to_ascii(), z.serial()))
        .collect();
    zones.sort();
    let mut signatures: Vec<(String, u64, u64)> = snapshot
        .zones
        .iter()
        .filter_map(|z| {
            let signer = z.signer.as_deref()?;
            let count =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            Some((
                z.origin.to_ascii(),
                count(&signer.made),
                count(&signer.reused),
            ))
        })
        .collect();
    signatures.sort();
    let gauges = metrics::Gauges {
        probes,
        geoip_build_epoch: snapshot.geo.as_ref().map(|db| db.build_epoch()),
        zones,
        signatures,
        ready: api.control.ready(),
    };
    drop(snapshot);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(metrics::global(), &gauges),
    )
}

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// `GET /readyz`: 200 once zones are loaded and the first probe round is done, 503 before.
/// The body also says whether geo steering tables are still being built (answers are the
/// same meanwhile, looked up in the GeoIP database directly).
pub async fn readyz(AxumState(api): AxumState<Api>) -> impl IntoResponse {
    let in_set = api.control.cluster().map(|c| c.connected());
    let ready = match (api.control.ready(), in_set) {
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first probe round is not done",
        ),
        // DNS answers go on from the local copy; the API refuses changes.
        (true, Some(false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "serving from the local copy: the nameserver set is not reachable, changes are refused",
        ),
        (true, _) => (StatusCode::OK, "ready"),
    };
    let geo = match (
        api.control.snapshot().geo.is_some(),
        api.control.steering_pending(),
    ) {
        (false, _) => "",
        (true, true) => {
            "geo: steering tables being built, answering from the GeoIP database directly\n"
        }
        (true, false) => "geo: steering tables built\n",
    };
    (ready.0, format!("{}\n{geo}", ready.1))
}

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/status.js");
const STYLE: &str = include_str!("page/status.css");
const WORLD: &str = include_str!("page/world.svg.path");

/// `GET /`: the status page (files embedded in the binary, nothing from elsewhere).
pub async fn page() -> impl IntoResponse {
    static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("{{WORLD}}", WORLD));
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE.as_str()))
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// Samples of the answer counters, so the page can show each datacenter's share of *recent*
/// answers: the last minute, or since start when the server is younger.
const WINDOW: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
type Counts = HashMap<(String, String, String), u64>;
static SAMPLES: LazyLock<Mutex<VecDeque<(Instant, Counts)>>> = LazyLock::new(Mutex::default);

/// Answers since about a minute ago, by (zone, pool, datacenter).
fn recent_answers() -> Counts {
    let now: Counts = metrics::global().answer_counts().into_iter().collect();
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    if samples
        .back()
        .is_none_or(|(at, _)| t.duration_since(*at) >= SAMPLE_EVERY)
    {
        samples.push_back((t, now.clone()));
    }
    // Keep the newest sample that is at least WINDOW old as the baseline.
    while samples.len() > 1 && t.duration_since(samples[1].0) >= WINDOW {
        samples.pop_front();
    }
    let baseline = samples
        .front()
        .filter(|(at, _)| t.duration_since(*at) >= WINDOW)
        .map(|(_, c)| c);
    now.into_iter()
        .map(|(k, v)| {
            let before = baseline.and_then(|b| b.get(&k)).copied().unwrap_or(0);
            (k, v.saturating_sub(before))
        })
        .collect()
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /status.json`: what the status page shows.
pub async fn status(AxumState(api): AxumState<Api>) -> Json<Value> {
    let recent = recent_answers();
    let records = api.control.probe_records();
    let snapshot = api.control.snapshot();
    let mut pools = Vec::new();
    // In origin order, each with its own health.
    for (i, zone) in snapshot.zones.iter().enumerate() {
        let view = snapshot.health.zone(i);
        let origin = zone.origin.to_ascii();
        let mut named: Vec<_> = zone.pools().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        for (owner, pool) in named {
            let name = owner.to_ascii();
            let label = metrics_pool_label(&name, &origin);
            let sets = [&pool.v4, &pool.v6];
            let mut datacenters = Vec::new();
            let geo: Vec<_> = sets
                .iter()
                .filter_map(|s| match &s.policy {
                    Policy::Geo(g) => Some((*s, g)),
                    _ => None,
                })
                .collect();
            let Some((_, first)) = geo.first() else {
                continue;
            };
            let total: u64 = first
                .datacenters
                .iter()
                .map(|dc| {
                    let key = (origin.clone(), label.clone(), dc.name.clone());
                    recent.get(&key).copied().unwrap_or(0)
                })
                .sum();
            for (i, dc) in first.datacenters.iter().enumerate() {
                let each = geo.iter().flat_map(|(set, g)| {
                    g.datacenters[i]
                        .endpoints
                        .iter()
                        .map(move |&e| set.health(e))
                });
                let (endpoints, live, down, state) = tally(each, view);
                let key = (origin.clone(), label.clone(), dc.name.clone());
                let answers = recent.get(&key).copied().unwrap_or(0);
                datacenters.push(json!({
                    "name": dc.name,
                    "latitude": dc.latitude,
                    "longitude": dc.longitude,
                    "endpoints": endpoints,
                    "live": live,
                    "down": down,
                    "state": state,
                    "recent_answers": answers,
                    "share": if total > 0 { answers as f64 / total as f64 } else { 0.0 },
                }));
            }
            pools.push(json!({
                "zone": origin,
                "pool": label,
                "name": name,
                "datacenters": datacenters,
            }));
        }
    }
    let endpoints = endpoints(&api, &snapshot.zones, &records);
    let (zones, all_pools) = zones_and_pools(&snapshot);
    Json(json!({
        "set": set(&api),
        "zones": zones,
        "all_pools": all_pools,
        "now": epoch(SystemTime::now()),
        "ready": api.control.ready(),
        "window_seconds": WINDOW.as_secs(),
        "pools": pools,
        "endpoints": endpoints,
        "registrations": registrations(&api),
    }))
}

/// Endpoints, how many are live, how many probed down, and the state that makes: up, degraded
/// (some down), down, or unknown (none probed).
fn tally<'a>(
    each: impl Iterator<Item = &'a crate::health::EndpointHealth>,
    view: &crate::health::HealthView,
) -> (usize, usize, usize, &'static str) {
    let (mut endpoints, mut live, mut down) = (0, 0, 0);
    for health in each {
        endpoints += 1;
        live += usize::from(health.live(view));
        down += usize::from(health.probed_down(view));
    }
    let state = match (live, down) {
        (0, 0) => "unknown",
        (0, _) => "down",
        (_, 0) => "up",
        _ => "degraded",
    };
    (endpoints, live, down, state)
}

/// Every zone (origin, serial, pools) and every pool of every zone, whatever its policy: its
/// policy, endpoints, how many are live and down, and a state as the datacenters' read.
fn zones_and_pools(snapshot: &crate::snapshot::Snapshot) -> (Vec<Value>, Vec<Value>) {
    let (mut zones, mut pools) = (Vec::new(), Vec::new());
    for (i, zone) in snapshot.zones.iter().enumerate() {
        let view = snapshot.health.zone(i);
        let origin = zone.origin.to_ascii();
        let mut named: Vec<_> = zone.pools().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        zones.push(json!({
            "zone": origin,
            "serial": zone.serial(),
            "changed": crate::civil::rfc3339(zone.changed),
            "pools": named.len(),
        }));
        for (owner, pool) in named {
            let each = [&pool.v4, &pool.v6]
                .into_iter()
                .flat_map(|set| (0..set.len() as u32).map(move |e| set.health(e)));
            let (endpoints, live, down, state) = tally(each, view);
            let policy = if pool.v4.is_empty() {
                &pool.v6
            } else {
                &pool.v4
            };
            pools.push(json!({
                "zone": origin,
                "name": owner.to_ascii(),
                "policy": policy.policy.name(),
                "endpoints": endpoints,
                "live": live,
                "down": down,
                "state": state,
            }));
        }
    }
    (zones, pools)
}

/// Every endpoint registered through the API, with the time its registration has left.
pub(super) fn registrations(api: &Api) -> Vec<Value> {
    let now = crate::control::unix_ms();
    let mut all = api.control.registrations();
    all.sort_by_key(|r| r.key());
    all.into_iter()
        .map(|r| {
            json!({
                "zone": r.zone,
                "pool": r.endpoint.pool,
                "address": r.endpoint.address,
                "datacenter": r.endpoint.datacenter,
                "weight": r.endpoint.weight,
                "expires_in_ms": r.expires_ms().saturating_sub(now),
            })
        })
        .collect()
}

/// The nameserver set this instance is in (`null` alone): its name, whether etcd is
/// reachable, the revision served, the live instances.
pub(super) fn set(api: &Api) -> Value {
    let Some(cluster) = api.control.cluster() else {
        return Value::Null;
    };
    json!({
        "instance": cluster.instance(),
        "connected": cluster.connected(),
        "revision": cluster.applied(),
        "instances": cluster.instances(),
    })
}

/// An endpoint's decided state and, in a set, each instance's opinion of it.
pub(super) fn decision(
    api: &Api,
    key: &crate::health::ProbeKey,
    own: crate::health::Status,
) -> (Value, Value) {
    let decided = api.control.decided(key);
    let opinions = match api.control.cluster() {
        Some(cluster) => {
            let all = cluster.opinions_of(&key.to_string(), own);
            let all: serde_json::Map<String, Value> =
                all.into_iter().map(|(i, s)| (i, json!(s))).collect();
            Value::Object(all)
        }
        None => Value::Null,
    };
    (json!(decided), opinions)
}

/// Every probed endpoint with its record, for the status page.
fn endpoints(
    api: &Api,
    zones: &crate::zone::ZoneSet,
    records: &std::collections::HashMap<crate::health::ProbeKey, crate::health::ProbeRecord>,
) -> Vec<Value> {
    zones
        .probes
        .iter()
        .enumerate()
        .map(|(slot, key)| {
            let record = records.get(key).cloned().unwrap_or_default();
            let (decided, opinions) = decision(api, key, record.status);
            json!({
                "address": key.addr,
                "check": key.to_string(),
                "state": decided,
                "own": record.status,
                "opinions": opinions,
                "since": epoch(record.since),
                "last_checked": record.last_checked.map(epoch),
                "last_result": record.last_result.as_ref().map(|r| match r {
                    Ok(s) | Err(s) => s.clone(),
                }),
                "last_ok": record.last_result.as_ref().map(Result::is_ok),
                "latency_ms": record.last_latency.map(|l| l.as_secs_f64() * 1000.0),
                "pools": zones.probe_users[slot],
            })
        })
        .collect()
}

/// The pool's label in the metrics: its name relative to the zone (`@` at the apex).
fn metrics_pool_label(name: &str, origin: &str) -> String {
    match name.strip_suffix(origin) {
        Some("") => "@".to_owned(),
        Some(rest) => rest.trim_end_matches('.').to_owned(),
        None => name.to_owned(),
    }
}
