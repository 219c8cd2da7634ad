//! Meridian: an authoritative GeoDNS load-balancing server.
//!
//! # Layout
//! Top-level modules, each using only those listed after it (no cycle:
//! `python3 ../shared/tools/layers.py src` checks it):
//! - `main.rs`: the CLI, logging, signals → one shutdown token; the only user of `anyhow`.
//!   [`run`] below wires the listeners, the API, the prober and the GeoIP watcher.
//! - [`api`]: the HTTP control plane (axum): zones, records, pools, endpoints, health; and,
//!   without a token, the status page, `/metrics`, `/healthz` and `/readyz` (`api::ops`).
//! - [`dns`]: the sockets (`listen` binds them, a socket a worker; `udp` with `batch`, `tcp`),
//!   `request` (header, question, OPT and its `options` — ECS, NSID, COOKIE — and the checks),
//!   `respond` (the stages of one answer, a page), `reply` (what every reply shares: size limit,
//!   OPT), `wire` (the fast reply encoder), `reference` (hickory's encoder: error replies, and the
//!   reference the fast one is tested against), `memo` (a UDP worker's encoded replies), and one
//!   file a feature that acts on every query: `cookies` (RFC 7873/9018), `ratelimit` (response rate
//!   limiting), `querylog`. Beside the query path: `tls` (DNS over TLS around the TCP loop),
//!   `manage` (UPDATE, NOTIFY in, AXFR/IXFR and queries signed with TSIG, each checked by
//!   `tsig`), `update`, `transfer` and its `history`, `notify` (NOTIFY out), `connections`
//!   (who holds the TCP and TLS connections: a share per network, the idlest closed for a
//!   newcomer).
//! - [`explain`]: why a client gets the answer it gets (`meridian explain`), through the same
//!   `resolve::find` and policy decision as a query.
//! - [`simulate`]: what a changed zone, pool or GeoIP database would do to the clients
//!   (`meridian simulate`): the address space between datacenters, answers between endpoints.
//! - [`control`]: the one writer path. Reload, API edits, registrations, probe results and
//!   GeoIP reloads build a new snapshot (a changed zone rebuilt alone, the others shared) and
//!   publish it, one writer at a time, reading and writing zones through [`store::Store`];
//!   changes are synced outside the writer lock (group commit). `control::edits`: an API edit
//!   applied to the zone's kept model and only the changed pool or name rebuilt
//!   (`zone::incremental`). `control::ticks`: feedback, registration expiry and journal
//!   compaction once a second. In a nameserver set (`[store] backend = "etcd"`):
//!   `control::cluster` (this instance's view of the set: revisions, leases, write markers,
//!   history compaction, the other instances' health opinions and their quorum decision),
//!   `control::set_writes` (a zone change worked out on the served model and written to etcd as
//!   the pieces it changes, conditionally and exactly once), `control::shared` (registrations),
//!   `control::replica` (the connection to etcd: catch-up, the watch, this instance's opinions
//!   published) and `control::apply` (what etcd committed applied through the writer path into
//!   the local copy: a piece's change as the same edit the API makes, a new generation read
//!   whole).
//! - [`store`]: where zones live durably, behind the `Store` interface (`FileStore`: the zones
//!   folder with its write-ahead `journal` of `record`s — whole zone texts, `change` edits,
//!   registry changes — compacted into the zone files in the background (`compaction`), synced
//!   for async waiters by its `syncer` thread; the `registry` of endpoints registered through
//!   the API); `store::edit` changes a zone's TOML keeping its layout, `store::change` is one
//!   edit as the API makes it; `store::etcd` is the etcd client (its JSON gateway, over
//!   reqwest; `store::etcd::txn` its conditional transactions, `store::etcd::watch` its watch
//!   stream), `store::shared` the key space of a nameserver set in it and `store::pieces` a
//!   zone cut into the keys of its metadata, record sets and pools.
//! - [`resolve`]: pure `(snapshot, question) → Answer` in two stages, `find` (zone, node, the
//!   policy's decision and ECS scope, once) and `answer` (order, health, all-down,
//!   `max_answers`); no I/O, no wire format.
//! - [`snapshot`]: the immutable [`snapshot::Snapshot`] (zones, GeoIP, health view) and
//!   [`snapshot::Current`], the cell the query path loads it from.
//! - [`zone`]: the zone model (`zones/<origin>.toml`, RFC 1035 master files; `zone::parse`
//!   reads a large file in 1 MiB pieces on every core, its pools by `zone::pool_toml` where they
//!   are in a plain TOML subset; an endpoint is its address in wire form,
//!   records made on demand), its one `build` (numbering the zone's own
//!   health slots, `zone::slots`), the `ZoneSet` of shared zones, and the zone tree (its nodes
//!   in shards shared between snapshots, `zone::nodes`): immutable
//!   once built, but for each geo pool's steering table, a [`cell::Swappable`] that `control`
//!   fills for the snapshot's GeoIP database when it publishes (each query thread keeps a copy,
//!   checked by the cell's version: `policy::geo::steer`).
//! - [`policy`]: how a pool orders its endpoints, one policy per file implementing
//!   `policy::Strategy`, behind the `Policy` enum (`geo`: `decide` ranks datacenters by `nets`,
//!   `map` and distance, `rank` explains it, `steer` builds steering tables; `failover` reads
//!   the active tier; `sticky` hashes the client's network). Weighted policies scale weights
//!   by the endpoints' `health::Feedback` where their set is adaptive.
//! - [`geo`]: where a client is (maxminddb named only here), great-circle distance,
//!   `geo::table` (every database network given a value, merged into runs), the file watcher.
//! - [`health`]: checks (TCP, HTTP, HTTPS; reqwest named only here), rise/fall hysteresis, the
//!   prober (reporting through `health::ProbeSink`), probe records with readiness and the state
//!   file, failover tiers, `feedback` (latency shares, slow-start ramps, reported loads,
//!   recomputed by `control` on every publish and each second), `quorum` (a set's decision
//!   from its instances' opinions, rendezvous choice of the probing instances), and the
//!   [`health::HealthView`] the query path reads.
//! - [`metrics`]: counters the query path bumps as relaxed atomics (pools' answer counters
//!   packed in `metrics::slab`), label sets declared once (`metrics::Transport`,
//!   `metrics::PolicyLabel`), and the text exposition; a leaf.
//! - [`fixture`]: zones and snapshots from TOML text for tests and benchmarks (not the server).
//! - [`presentation`]: the presentation format of DNS data (RFC 1035 §5.1, RFC 3597), the one
//!   reader and writer for every way records come in and go out as text: master files
//!   (`presentation::master`), TOML `data` strings, the API, UPDATE; every RR type Knot loads,
//!   each a list of fields (`types`, `rdata`, `scalars`, `special`, `svcb`); record data kept
//!   as its wire bytes.
//! - Leaves: [`config`] (`meridian.toml` → one validated [`config::Config`]), [`cell`] (a
//!   lock-free swappable value), [`civil`] (UTC dates), [`digest`] (SHA-256, sha2 named only
//!   there), [`dnssec`] (DNSSEC signing keys: PKCS#8 files, DNSKEY, key tag, DS; its
//!   `signer`: RRSIGs refreshed hourly per RRset, the signature cache, compact denial's NSEC;
//!   TSIG's HMAC keys; ring named only there), [`sys`] (the C library: heap trim, page
//!   dropping, durable file writes, `recvmmsg`/`sendmmsg`, `steer`: a BPF program giving
//!   datagrams to the worker of their CPU, workers kept on their CPUs).
//!
//! # One UDP query, top to bottom (six files)
//! 1. `dns/udp.rs`: a worker receives a batch (`recvmmsg`) on its own socket (`dns/listen.rs`:
//!    SO_REUSEPORT, one a worker) and answers it from one snapshot, held from batch to batch
//!    while `Current::published` says no other has been published.
//! 2. `dns/respond.rs`: `respond_into` runs the stages in order; each is a call down:
//! 3. `dns/request.rs`: header, question, OPT and its options read (the usual shape directly,
//!    anything else through hickory's decoder) and checked; FORMERR, NOTIMP, BADVERS and
//!    REFUSED here. The client is the usable ECS address, else the source. (`respond` then
//!    judges a COOKIE: BADCOOKIE for a server cookie we did not make, over UDP.)
//! 4. `resolve/find.rs`: the zone (none: REFUSED), the node, and for a pool its policy's
//!    decision and ECS scope (`Policy::decide`; a geo pool reads its steering table). A reply
//!    memoized for this node, type and decision (`dns/memo.rs`) is copied and patched — a
//!    rotating pool's with its records rotated by the pool's counter (`Policy::rotation`).
//! 5. `resolve/answer.rs`: CNAMEs, static records, or the endpoints in the decided order
//!    (`Policy::order_for`), the dead dropped, the all-down rule, `max_answers`, NODATA,
//!    NXDOMAIN, referrals.
//! 6. `dns/wire.rs`: the reply encoded (question copied as sent, owners as pointers into it, AA,
//!    the negative SOA, OPT with DO, the ECS scope, NSID and cookies, degraded TTL); with DO, a
//!    signed zone's answer goes to `dns/sign.rs` instead (RRSIGs, compact denial); `respond` sets
//!    TC when UDP cannot carry it, memoizes fixed and rotating answers, and last asks
//!    `dns/ratelimit.rs` whether a UDP reply is over the rate (sent, slipped or dropped). The
//!    worker sends the batch (`sendmmsg`), counts each reply (`metrics`) and offers it to the query
//!    log.
//!
//! # Adding a policy
//! One file under `src/policy/` with its struct and its `Strategy` impl (`name`, `label`,
//! `fixed`, `order_for`, and `decide` if the order depends on the client); a variant in
//! `PolicyKind` (the zone-file name) and in `Policy` with its arm in `Policy::strategy` (the one
//! dispatch) and in `Policy::new` (construction from `policy::Members`); its label in
//! `metrics::PolicyLabel`, which `label` must name. Nothing in `resolve` or `dns` changes: the
//! decision `find` makes and the memo key follow from `decide` and `fixed`.
//!
//! # Adding a transport
//! Its listener file under `src/dns/` (it reads messages, loads the snapshot, calls
//! `respond::respond_into` with an `Incoming` and a `Responder`, and counts with
//! `metrics::global().record_query`), a variant in `metrics::Transport` (its label and size
//! limit: `respond` matches on it), and one registration in `dns::Listeners`.

pub mod api;
pub mod cell;
pub mod civil;
pub mod config;
pub mod control;
pub mod digest;
pub mod dns;
pub mod dnssec;
pub mod explain;
pub mod fixture;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod presentation;
pub mod resolve;
pub mod simulate;
pub mod snapshot;
pub mod store;
pub mod sys;
pub mod zone;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::Control;
use crate::dns::Listeners;

/// Binds every listener, then serves until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    control: Arc<Control>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut listeners = Listeners::bind(&config.listen, config.udp_workers, config.udp_steering)?;
    if let Some(tls) = &config.tls {
        listeners.bind_tls(tls).await?;
    }
    let query_log = match config.query_log.enabled {
        true => Some(Arc::new(dns::querylog::QueryLog::start(&config.query_log)?)),
        false => None,
    };
    for addr in listeners.local_addrs() {
        tracing::info!("listening on {addr} (udp, tcp)");
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(path) = control
        .geoip_path()
        .filter(|_| !config.geoip_watch.is_zero())
    {
        let reloader = control.clone();
        let reload = Arc::new(move || match reloader.reload_geo() {
            Ok(Some(db)) => tracing::info!("reloaded GeoIP database: {db}"),
            Ok(None) => {}
            Err(error) => {
                tracing::error!("GeoIP reload refused, the old database keeps serving: {error}")
            }
        });
        tasks.spawn(geo::watch(
            path.to_owned(),
            config.geoip_watch,
            reload,
            shutdown.clone(),
        ));
    }
    // A task that stops with an error stops the server, which then exits with it.
    let failure: Arc<std::sync::Mutex<Option<std::io::Error>>> = Arc::default();
    if let Some(api) = &config.api {
        let bound = api::bind(api).await?;
        let (control, shutdown, failure) = (control.clone(), shutdown.clone(), failure.clone());
        tasks.spawn(async move {
            if let Err(error) = api::serve_bound(bound, control, shutdown.clone()).await {
                tracing::error!(%error, "the API stopped");
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                shutdown.cancel();
            }
        });
    }
    tasks.spawn(control::run_ticks(control.clone(), shutdown.clone()));
    let manager = Arc::new(dns::manage::Manager::new(
        control.clone(),
        &config.tsig,
        config.transfer.clone(),
        config.udp_payload,
    ));
    tasks.spawn(dns::notify::run_watch(
        control.current().clone(),
        manager.history.clone(),
        config.transfer.clone(),
        config.tsig.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(control::run_replica(control.clone(), shutdown.clone()));
    tasks.spawn(health::run_prober(
        control.clone(),
        config.max_concurrent_probes,
        config.probe_source,
        shutdown.clone(),
    ));
    let serving = listeners.serve(
        control.current().clone(),
        &config,
        query_log,
        Some(manager),
        shutdown.clone(),
    );
    // The other tasks run until shutdown: one that fails (a panic) stops the server too.
    let watching = async {
        while let Some(done) = tasks.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "a task failed; stopping");
                let error = std::io::Error::other(format!("a task failed: {error}"));
                failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(error);
                shutdown.cancel();
            }
        }
    };
    let (served, ()) = tokio::join!(serving, watching);
    control.save_health_now();
    tracing::info!("stopped");
    served?;
    match failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
