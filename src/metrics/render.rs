//! The text exposition format (version 0.0.4) of every metric: the registry's counters and
//! the gauges of the fleet right now.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::{DURATION_BOUNDS, Limited, QTYPES, QuerySlot, Registry, Transport, ZoneCounters, lock};

/// What [`render`] needs besides the registry: the state of the fleet right now.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (probe, check kind, up: Some(true|false) or None while unknown, last latency).
    pub probes: Vec<(String, String, Option<bool>, Option<Duration>)>,
    pub geoip_build_epoch: Option<u64>,
    pub zones: Vec<(String, u32)>,
    /// Signed zones' signatures: (zone, made, reused from the cache).
    pub signatures: Vec<(String, u64, u64)>,
    pub ready: bool,
}

/// Writes the text exposition format: families and their samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                let _ = write!(self.0, "{comma}{key}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// One sample per fixed outcome (`label` = each of `names`) of a counter pair.
    fn by_outcome(&mut self, name: &str, label: &str, names: [&str; 2], counts: &[AtomicU64; 2]) {
        for (value, count) in names.iter().zip(counts) {
            self.sample(name, &[(label, value)], count.load(Relaxed));
        }
    }
}

/// The text exposition of every metric.
pub fn render(registry: &Registry, gauges: &Gauges) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    queries(&mut out, registry);
    durations(&mut out, registry);
    udp_sockets(&mut out, registry);
    probes(&mut out, registry, gauges);
    control_plane(&mut out, registry);
    fleet(&mut out, gauges);
    out.0
}

/// Queries by zone and labels, and pool answers by datacenter.
fn queries(out: &mut Exposition, registry: &Registry) {
    out.family(
        "meridian_dns_queries_total",
        "counter",
        "DNS queries answered, by zone, query type, response code, protocol and policy.",
    );
    let zones: Vec<(String, Arc<ZoneCounters>)> = lock(&registry.zones)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([(String::new(), registry.no_zone.clone())])
        .collect();
    for (zone, counters) in &zones {
        for (slot, count) in counters.queries.iter().enumerate() {
            let count = count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let labels = QuerySlot::of(slot);
            let qtype = QTYPES
                .get(labels.qtype)
                .map_or_else(|| "other".to_owned(), |t| t.to_string());
            out.sample(
                "meridian_dns_queries_total",
                &[
                    ("zone", zone),
                    ("qtype", &qtype),
                    ("rcode", labels.rcode.name()),
                    ("protocol", labels.transport.name()),
                    ("policy", labels.policy.name()),
                ],
                count,
            );
        }
    }

    out.family(
        "meridian_pool_answers_total",
        "counter",
        "Pool answers, by zone, pool and the datacenter that answered (empty outside geo pools).",
    );
    for ((zone, pool, dc), count) in registry.answer_counts() {
        let labels = [("zone", &*zone), ("pool", &pool), ("datacenter", &dc)];
        out.sample("meridian_pool_answers_total", &labels, count);
    }
}

/// The query-duration histogram, by transport.
fn durations(out: &mut Exposition, registry: &Registry) {
    out.family(
        "meridian_dns_query_duration_seconds",
        "histogram",
        "Time from a query's arrival to its reply, by protocol.",
    );
    for (transport, h) in Transport::ALL.iter().zip(&registry.durations) {
        let protocol = transport.name();
        let mut cumulative = 0;
        for (bound, bucket) in DURATION_BOUNDS.iter().zip(&h.buckets) {
            cumulative += bucket.load(Relaxed);
            let le = bound.to_string();
            let labels = [("protocol", protocol), ("le", &le)];
            out.sample(
                "meridian_dns_query_duration_seconds_bucket",
                &labels,
                cumulative,
            );
        }
        let count = h.count.load(Relaxed);
        let labels = [("protocol", protocol), ("le", "+Inf")];
        out.sample("meridian_dns_query_duration_seconds_bucket", &labels, count);
        let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
        let labels = [("protocol", protocol)];
        out.sample("meridian_dns_query_duration_seconds_sum", &labels, sum);
        out.sample("meridian_dns_query_duration_seconds_count", &labels, count);
    }
}

/// Endpoint states, probe times and failures.
fn probes(out: &mut Exposition, registry: &Registry, gauges: &Gauges) {
    out.family(
        "meridian_endpoint_up",
        "gauge",
        "Probed endpoint state: 1 up, 0 down (absent while unknown).",
    );
    for (probe, kind, up, _) in &gauges.probes {
        if let Some(up) = up {
            let labels = [("probe", &**probe), ("check", kind)];
            out.sample("meridian_endpoint_up", &labels, u8::from(*up));
        }
    }
    out.family(
        "meridian_endpoint_probe_duration_seconds",
        "gauge",
        "How long the last probe of an endpoint took.",
    );
    for (probe, kind, _, latency) in &gauges.probes {
        if let Some(latency) = latency {
            let labels = [("probe", &**probe), ("check", kind)];
            let seconds = latency.as_secs_f64();
            out.sample("meridian_endpoint_probe_duration_seconds", &labels, seconds);
        }
    }
    out.family(
        "meridian_endpoint_probe_failures_total",
        "counter",
        "Failed probes, by endpoint and reason.",
    );
    for ((probe, reason), count) in lock(&registry.probe_failures).iter() {
        let labels = [("probe", &**probe), ("reason", reason)];
        out.sample("meridian_endpoint_probe_failures_total", &labels, count);
    }
}

/// The shared store of a nameserver set, if this instance is in one.
fn store(out: &mut Exposition, registry: &Registry) {
    let store = &registry.store;
    if !store.in_set.load(Relaxed) {
        return;
    }
    let gauges: [(&str, &str, &str, String); 4] = [
        (
            "meridian_store_connected",
            "gauge",
            "Whether the etcd store is reachable (changes are taken): 1 or 0.",
            u8::from(store.connected.load(Relaxed)).to_string(),
        ),
        (
            "meridian_store_revision_applied",
            "gauge",
            "The etcd revision this instance serves.",
            store.revision.load(Relaxed).to_string(),
        ),
        (
            "meridian_store_apply_lag_seconds",
            "gauge",
            "From a change's arrival on the etcd watch to its being served, last batch.",
            format!("{:.6}", store.apply_lag_us.load(Relaxed) as f64 / 1e6),
        ),
        (
            "meridian_store_writes_refused_total",
            "counter",
            "API changes refused because the etcd store could not take them.",
            store.writes_refused.load(Relaxed).to_string(),
        ),
    ];
    for (name, kind, help, value) in gauges {
        out.family(name, kind, help);
        out.sample(name, &[], value);
    }
}

/// Reloads, API requests, the query log and rate limiting.
fn control_plane(out: &mut Exposition, registry: &Registry) {
    store(out, registry);
    out.family(
        "meridian_rate_limited_total",
        "counter",
        "UDP replies over the response rate limit, by what was done: slipped (sent truncated), dropped, or sent anyway (log_only).",
    );
    for (what, count) in Limited::ALL.iter().zip(&registry.rate_limited) {
        let labels = [("action", what.name())];
        out.sample("meridian_rate_limited_total", &labels, count.load(Relaxed));
    }
    out.family(
        "meridian_tcp_connections_closed_total",
        "counter",
        "TCP and TLS connections not kept: refused because their network held its share, or the idlest closed for a newcomer when every place was taken.",
    );
    for (reason, count) in ["network_full", "idle_evicted"]
        .iter()
        .zip(&registry.tcp_closed)
    {
        let labels = [("reason", *reason)];
        out.sample(
            "meridian_tcp_connections_closed_total",
            &labels,
            count.load(Relaxed),
        );
    }
    out.family(
        "meridian_reloads_total",
        "counter",
        "Zone reloads (SIGHUP or the API), by result.",
    );
    out.by_outcome(
        "meridian_reloads_total",
        "result",
        ["ok", "failed"],
        &registry.reloads,
    );

    out.family(
        "meridian_api_requests_total",
        "counter",
        "HTTP API requests, by route, method and status.",
    );
    for ((route, method, status), count) in lock(&registry.api_requests).iter() {
        let status = status.to_string();
        let labels = [("route", &**route), ("method", method), ("status", &status)];
        out.sample("meridian_api_requests_total", &labels, count);
    }

    out.family(
        "meridian_query_log_lines_total",
        "counter",
        "Sampled queries for the query log, by outcome (dropped: over the rate limit or queue full).",
    );
    let outcomes = ["written", "dropped"];
    out.by_outcome(
        "meridian_query_log_lines_total",
        "outcome",
        outcomes,
        &registry.query_log,
    );
}

/// Datagrams by UDP worker socket: how evenly the kernel spreads them.
fn udp_sockets(out: &mut Exposition, registry: &Registry) {
    out.family(
        "meridian_udp_socket_datagrams_total",
        "counter",
        "Datagrams received, by listen address and UDP worker socket.",
    );
    for ((listen, index), count) in lock(&registry.udp_sockets).iter() {
        let index = index.to_string();
        let labels = [("listen", listen.as_str()), ("socket", index.as_str())];
        out.sample(
            "meridian_udp_socket_datagrams_total",
            &labels,
            count.load(Relaxed),
        );
    }
}

/// The database, the zones' serials, readiness and the version.
fn fleet(out: &mut Exposition, gauges: &Gauges) {
    out.family(
        "meridian_geoip_build_timestamp_seconds",
        "gauge",
        "Build time of the GeoIP database in use (Unix seconds).",
    );
    if let Some(epoch) = gauges.geoip_build_epoch {
        out.sample("meridian_geoip_build_timestamp_seconds", &[], epoch);
    }
    out.family(
        "meridian_zone_serial",
        "gauge",
        "SOA serial of each zone served.",
    );
    for (zone, serial) in &gauges.zones {
        out.sample("meridian_zone_serial", &[("zone", zone)], serial);
    }
    out.family(
        "meridian_dnssec_signatures_total",
        "counter",
        "RRSIGs a signed zone's answers needed: made, or reused from the signature cache \
         (since the zone's keys were loaded).",
    );
    for (zone, made, reused) in &gauges.signatures {
        out.sample(
            "meridian_dnssec_signatures_total",
            &[("zone", zone), ("result", "made")],
            made,
        );
        let reused_labels = [("zone", zone.as_str()), ("result", "reused")];
        out.sample("meridian_dnssec_signatures_total", &reused_labels, reused);
    }
    out.family(
        "meridian_ready",
        "gauge",
        "1 once zones are loaded and every endpoint has been probed once.",
    );
    out.sample("meridian_ready", &[], u8::from(gauges.ready));
    out.family("meridian_build_info", "gauge", "The running version.");
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    out.sample("meridian_build_info", &version, 1);
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
