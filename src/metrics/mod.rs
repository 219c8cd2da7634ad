//! Prometheus metrics. The query path only bumps relaxed atomics it reaches through the
//! snapshot (a zone's and a pool's counter handles) or through [`global`]: no lock, no map, no
//! allocation. Handles come from one process-wide registry keyed by their labels, so a zone or
//! pool rebuilt by a reload or an API change keeps counting where it was. Everything else
//! (probes, reloads, API requests) is rare and goes through a mutex. Rendering walks the
//! registry and the current health into the text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

mod labels;
mod render;
mod slab;

pub use labels::{Limited, PolicyLabel, Rcode, Transport};
pub use render::{Gauges, render};

/// Query types counted by name; the rest are `other`.
const QTYPES: [RecordType; 15] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::PTR,
    RecordType::ANY,
    RecordType::DS,
    RecordType::DNSKEY,
    RecordType::HTTPS,
    RecordType::SVCB,
];
const QUERY_SLOTS: usize =
    (QTYPES.len() + 1) * Rcode::COUNT * Transport::COUNT * PolicyLabel::COUNT;

/// Upper bounds of the query-duration histogram, in seconds: a query takes microseconds.
const DURATION_BOUNDS: [f64; 12] = [
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2,
];
/// The same bounds in nanoseconds: the query path compares integers.
const DURATION_BOUNDS_NANOS: [u64; DURATION_BOUNDS.len()] = {
    let mut nanos = [0; DURATION_BOUNDS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (DURATION_BOUNDS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// One zone's query counters, by (qtype, rcode, protocol, policy).
#[derive(Debug)]
pub struct ZoneCounters {
    queries: Box<[AtomicU64]>,
}

impl ZoneCounters {
    fn new() -> Self {
        Self {
            queries: (0..QUERY_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A pool's answer counters: one per datacenter in configured order (one, unnamed, for pools
/// without datacenters). The first is held apart: most pools have one, and reaching it through
/// a vector's buffer was one more cache miss a query in a zone of many pools.
#[derive(Debug)]
pub struct PoolCounters {
    first: &'static AtomicU64,
    rest: Box<[&'static AtomicU64]>,
}

/// What a pool asked for with no datacenter name counts on (callers pass `[""]` instead).
static UNCOUNTED: AtomicU64 = AtomicU64::new(0);

impl PoolCounters {
    /// The counter of the pool's `datacenter`-th datacenter.
    pub fn get(&self, datacenter: usize) -> Option<&AtomicU64> {
        match datacenter.checked_sub(1) {
            None => Some(self.first),
            Some(i) => self.rest.get(i).copied(),
        }
    }
}

#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; DURATION_BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// `count` observations of `elapsed` each.
    fn observe(&self, elapsed: Duration, count: u64) {
        let nanos = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = DURATION_BOUNDS_NANOS.iter().position(|&b| nanos <= b) {
            self.buckets[i].fetch_add(count, Relaxed);
        }
        self.count.fetch_add(count, Relaxed);
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(count), Relaxed);
    }
}

/// The pools' answer counters by key, and where new ones come from.
#[derive(Debug, Default)]
struct Answers {
    by_key: rustc_hash::FxHashMap<String, &'static AtomicU64>,
    slab: slab::Slab,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Registry {
    zones: Mutex<BTreeMap<String, Arc<ZoneCounters>>>,
    /// Queries that no zone of ours holds (REFUSED) or that never got that far (FORMERR).
    no_zone: Arc<ZoneCounters>,
    /// By `zone \0 pool \0 datacenter`: one string key, looked up without allocating.
    answers: Mutex<Answers>,
    /// By transport.
    durations: [Histogram; Transport::COUNT],
    reloads: [AtomicU64; 2],
    probe_failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    api_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    query_log: [AtomicU64; 2],
    /// Replies over the rate limit, by what was done with them.
    rate_limited: [AtomicU64; Limited::COUNT],
    /// TCP and TLS connections not kept: refused (their network held its share), or closed
    /// for a newcomer (the idlest, every place taken).
    tcp_closed: [AtomicU64; 2],
    /// The shared store of a nameserver set (etcd), if this instance is in one.
    store: StoreGauges,
    /// Datagrams received, by listen address and worker socket.
    udp_sockets: Mutex<BTreeMap<(String, usize), Arc<AtomicU64>>>,
}

/// The etcd store's state, shown once an instance is in a set.
#[derive(Debug, Default)]
struct StoreGauges {
    in_set: std::sync::atomic::AtomicBool,
    connected: std::sync::atomic::AtomicBool,
    revision: std::sync::atomic::AtomicI64,
    /// From a change's arrival on the watch to its being served, of the last batch.
    apply_lag_us: AtomicU64,
    writes_refused: AtomicU64,
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry.
pub fn global() -> &'static Registry {
    &GLOBAL
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the query path knows of one query once it is answered.
#[derive(Debug, Clone, Copy)]
pub struct QueryLabels<'a> {
    pub zone: Option<&'a ZoneCounters>,
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
    /// The policy of the pool that answered; `None` for answers no pool decided.
    pub policy: Option<PolicyLabel>,
    /// The answer counter of the pool (and datacenter) that answered, if one did.
    pub answered_by: Option<&'a AtomicU64>,
}

impl Registry {
    fn new() -> Self {
        Self {
            zones: Mutex::default(),
            no_zone: Arc::new(ZoneCounters::new()),
            answers: Mutex::default(),
            durations: std::array::from_fn(|_| Histogram::new()),
            reloads: Default::default(),
            probe_failures: Mutex::default(),
            api_requests: Mutex::default(),
            query_log: Default::default(),
            rate_limited: Default::default(),
            tcp_closed: Default::default(),
            store: StoreGauges::default(),
            udp_sockets: Mutex::default(),
        }
    }

    pub fn set_store_connected(&self, connected: bool) {
        self.store.in_set.store(true, Relaxed);
        self.store.connected.store(connected, Relaxed);
    }

    pub fn set_store_revision(&self, revision: i64) {
        self.store.revision.store(revision, Relaxed);
    }

    pub fn record_store_apply(&self, lag: Duration) {
        self.store
            .apply_lag_us
            .store(lag.as_micros() as u64, Relaxed);
    }

    pub fn record_store_write_refused(&self) {
        self.store.writes_refused.fetch_add(1, Relaxed);
    }

    /// The counters of zone `origin` (created on first use, kept for the process's life).
    pub fn zone(&self, origin: &str) -> Arc<ZoneCounters> {
        lock(&self.zones)
            .entry(origin.to_owned())
            .or_insert_with(|| Arc::new(ZoneCounters::new()))
            .clone()
    }

    /// The answer counters of a pool, one per datacenter name (`[""]` without datacenters).
    pub fn pool(&self, zone: &str, pool: &str, datacenters: &[&str]) -> PoolCounters {
        let mut answers = lock(&self.answers);
        let mut key = String::with_capacity(zone.len() + pool.len() + 16);
        let mut counters = datacenters.iter().map(|dc| {
            key.clear();
            key.extend([zone, "\0", pool, "\0", dc]);
            match answers.by_key.get(key.as_str()) {
                Some(counter) => *counter,
                None => {
                    let counter = answers.slab.counter();
                    answers.by_key.insert(key.clone(), counter);
                    counter
                }
            }
        });
        PoolCounters {
            first: counters.next().unwrap_or(&UNCOUNTED),
            rest: counters.collect(),
        }
    }

    /// Counts one answered query (the UDP and TCP loops call it for every reply); its time is
    /// recorded by [`Registry::record_latency`].
    pub fn record_query(&self, q: &QueryLabels<'_>, transport: Transport) {
        let qtype = q
            .qtype
            .and_then(|t| QTYPES.iter().position(|&k| k == t))
            .unwrap_or(QTYPES.len());
        let rcode = Rcode::of(q.rcode);
        let policy = q.policy.unwrap_or(PolicyLabel::Static);
        let slot = QuerySlot {
            qtype,
            rcode,
            transport,
            policy,
        }
        .index();
        let zone = q.zone.unwrap_or(&self.no_zone);
        zone.queries[slot].fetch_add(1, Relaxed);
        if let Some(counter) = q.answered_by {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// The datagram counter of UDP worker socket `index` on `listen`.
    pub fn udp_socket(&self, listen: &str, index: usize) -> Arc<AtomicU64> {
        let mut sockets = lock(&self.udp_sockets);
        sockets
            .entry((listen.to_owned(), index))
            .or_default()
            .clone()
    }

    /// `count` queries that each spent `elapsed` in the server (a UDP batch's replies all
    /// leave in one send, so they share the batch's time).
    pub fn record_latency(&self, transport: Transport, elapsed: Duration, count: u64) {
        self.durations[transport.index()].observe(elapsed, count);
    }

    pub fn record_reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    pub fn record_probe_failure(&self, probe: &str, reason: &'static str) {
        *lock(&self.probe_failures)
            .entry((probe.to_owned(), reason))
            .or_default() += 1;
    }

    pub fn record_api_request(&self, route: &str, method: &str, status: u16) {
        *lock(&self.api_requests)
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
    }

    /// One reply over the rate limit.
    pub fn record_rate_limited(&self, what: Limited) {
        self.rate_limited[what.index()].fetch_add(1, Relaxed);
    }

    /// A TCP or TLS connection not kept: closed for a newcomer (`evicted`) or refused.
    pub fn record_tcp_closed(&self, evicted: bool) {
        self.tcp_closed[usize::from(evicted)].fetch_add(1, Relaxed);
    }

    /// Query-log lines written and dropped (by sampling's rate limit or a full queue).
    pub fn record_query_log(&self, written: bool) {
        self.query_log[usize::from(!written)].fetch_add(1, Relaxed);
    }

    /// Answers so far by (zone, pool, datacenter), in that order.
    pub fn answer_counts(&self) -> Vec<((String, String, String), u64)> {
        let mut counts: Vec<_> = lock(&self.answers)
            .by_key
            .iter()
            .map(|(key, v)| {
                let mut parts = key.splitn(3, '\0').map(str::to_owned);
                let mut next = || parts.next().unwrap_or_default();
                ((next(), next(), next()), v.load(Relaxed))
            })
            .collect();
        counts.sort();
        counts
    }
}

/// The mnemonic of a response code as dig prints it (`NOERROR`, `NXDOMAIN`…), else its number.
pub fn rcode_name(rcode: ResponseCode) -> String {
    match Rcode::of(rcode) {
        Rcode::Other => u16::from(rcode).to_string(),
        named => named.name().to_owned(),
    }
}

/// The labels of one query counter, and its place in a zone's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QuerySlot {
    /// Index in `QTYPES`; `QTYPES.len()` for `other`.
    qtype: usize,
    rcode: Rcode,
    transport: Transport,
    policy: PolicyLabel,
}

impl QuerySlot {
    fn index(self) -> usize {
        ((self.qtype * Rcode::COUNT + self.rcode.index()) * Transport::COUNT
            + self.transport.index())
            * PolicyLabel::COUNT
            + self.policy.index()
    }

    fn of(index: usize) -> Self {
        let policy = PolicyLabel::ALL[index % PolicyLabel::COUNT];
        let rest = index / PolicyLabel::COUNT;
        let transport = Transport::ALL[rest % Transport::COUNT];
        let rest = rest / Transport::COUNT;
        Self {
            qtype: rest / Rcode::COUNT,
            rcode: Rcode::ALL[rest % Rcode::COUNT],
            transport,
            policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_slots_round_trip() {
        for index in 0..QUERY_SLOTS {
            assert_eq!(QuerySlot::of(index).index(), index);
        }
    }

    #[test]
    fn queries_are_counted_under_their_labels() {
        let registry = Registry::new();
        let zone = registry.zone("example.test.");
        let pool = registry.pool("example.test.", "www", &["us", "eu"]);
        let labels = QueryLabels {
            zone: Some(&zone),
            qtype: Some(RecordType::AAAA),
            rcode: ResponseCode::NoError,
            policy: None,
            answered_by: pool.get(1),
        };
        for _ in 0..3 {
            registry.record_query(&labels, Transport::Tcp);
        }
        registry.record_latency(Transport::Tcp, Duration::from_micros(7), 3);
        let refused = QueryLabels {
            zone: None,
            qtype: Some(RecordType::Unknown(65000)),
            rcode: ResponseCode::Refused,
            policy: None,
            answered_by: None,
        };
        registry.record_query(&refused, Transport::Udp);
        registry.record_latency(Transport::Udp, Duration::from_millis(1), 1);
        registry.record_reload(false);
        let text = render(&registry, &Gauges::default());
        assert!(text.contains(
            "meridian_dns_queries_total{zone=\"example.test.\",qtype=\"AAAA\",rcode=\"NOERROR\",protocol=\"tcp\",policy=\"static\"} 3"
        ), "{text}");
        assert!(text.contains(
            "meridian_dns_queries_total{zone=\"\",qtype=\"other\",rcode=\"REFUSED\",protocol=\"udp\",policy=\"static\"} 1"
        ));
        assert!(text.contains(
            "meridian_pool_answers_total{zone=\"example.test.\",pool=\"www\",datacenter=\"eu\"} 3"
        ));
        assert!(text.contains(
            "meridian_pool_answers_total{zone=\"example.test.\",pool=\"www\",datacenter=\"us\"} 0"
        ));
        assert!(text.contains(
            "meridian_dns_query_duration_seconds_bucket{protocol=\"tcp\",le=\"0.00001\"} 3"
        ));
        assert!(text.contains("meridian_dns_query_duration_seconds_count{protocol=\"udp\"} 1"));
        assert!(
            text.contains("meridian_dns_query_duration_seconds_sum{protocol=\"tcp\"} 0.000021"),
            "{text}"
        );
        assert!(text.contains("meridian_reloads_total{result=\"failed\"} 1"));
        // The same labels give the same handle: counts survive a rebuild.
        assert!(Arc::ptr_eq(&zone, &registry.zone("example.test.")));
    }
}
