//! Meridian: an authoritative GeoDNS load-balancing server.
//!
//! # Layout
//! - [`config`]: `meridian.toml` → one validated [`config::Config`].
//! - [`zone`]: the zone model (`zones/<origin>.toml`, RFC 1035 master files; `zone::parse`
//!   reads a large file in two halves at once), its one `build`
//!   used by start-up and reload, and the immutable zone tree the query path reads.
//! - [`geo`]: where a client is (GeoIP databases via maxminddb), great-circle distance, and
//!   `geo::table`: every database network given a value (a pool's datacenter order), merged
//!   into runs, built with a snapshot so the query path makes two loads instead of a tree walk.
//! - [`policy`]: how a pool orders its endpoints, one policy per file behind one enum
//!   (`geo` ranks datacenters by `nets`, `map` and distance; `failover` picks a tier).
//! - [`health`]: checks (TCP, HTTP, HTTPS), rise/fall hysteresis, the prober, the state file.
//! - [`state`]: the shared [`state::Snapshot`] (zones, GeoIP, health) behind `ArcSwap`;
//!   reloads and probe results build a new one (with the geo pools' steering tables) and swap
//!   it in.
//! - [`resolve`]: pure `(snapshot, question) → Answer`; no I/O, no wire format.
//! - [`dns`]: sockets (UDP and TCP), header, EDNS and Client Subnet checks, reply encoding and
//!   truncation; `dns::memo`, a UDP worker's replies already encoded for fixed answers.
//! - [`explain`]: why a client gets the answer it gets (`meridian explain`).
//! - [`api`]: the HTTP control plane (axum): zones, records, pools, endpoints, health; and,
//!   without a token, the status page, `/metrics`, `/healthz` and `/readyz` (`api::ops`).
//! - [`metrics`]: Prometheus counters (atomics the query path reaches through the snapshot)
//!   and their text rendering; [`querylog`]: sampled, rate-limited JSON lines of queries.
//! - [`civil`]: UTC dates for logs and the GeoIP build date; [`sys`]: the C library's
//!   calls (heap trim after loads, dropping the GeoIP map's pages, `recvmmsg`/`sendmmsg`).
//! - [`store`]: the zone files, written atomically; `store::edit` changes them keeping layout.
//! - `main.rs`: the CLI, logging, signals → one shutdown token; the only user of `anyhow`.
//!
//! # One query
//! 1. `dns::udp` receives a batch of datagrams (`dns::batch`: recvmmsg) and loads one
//!    snapshot for it (one atomic load); `dns::tcp` one message at a time.
//! 2. `dns::handler` reads header, question and OPT (the usual shapes directly, anything else
//!    through hickory-proto's decoder), rejects wrong opcode, class, EDNS version or a
//!    malformed ECS option, picks the client (the ECS address if usable, else the source), and
//!    makes the question's zone key (`zone::NameKey`, lower-cased wire form) from its bytes.
//! 3. Where the answer is fixed for this snapshot (static records, or a pool whose order depends
//!    only on the client's geo decision: `resolve::fixed`, `Policy::decision`), a UDP worker
//!    that encoded it before copies its memoized reply (`dns::memo`) and patches ID, RD, CD, the
//!    question as sent and the OPT with the ECS scope; steps 4 and 5 are skipped.
//! 4. `resolve` finds the zone (REFUSED if none), follows cuts and CNAMEs, and takes static
//!    records or asks the pool's policy for an order (a geo pool looks the client up in its
//!    steering table, or locates it in the database), drops
//!    endpoints that are down or drained (or applies the all-down rule), caps at
//!    `max_answers`, and notes the ECS scope the order depended on.
//! 5. `dns::wire` encodes the reply (the question copied as sent, owners as pointers into it,
//!    pool addresses from the set's compact array): AA, the negative SOA, OPT with ECS and its
//!    scope, the degraded TTL; `dns::handler` sets TC when UDP cannot carry it. hickory's own
//!    encoder stays as the reference it is tested against.
//! 6. After sending (`sendmmsg`, one call a batch), the listener counts the query (`metrics`: zone, type, rcode, protocol,
//!    policy, the pool's datacenter, latency) and offers it to the query log, if on.

pub mod api;
pub mod cell;
pub mod civil;
pub mod config;
pub mod control;
pub mod dns;
pub mod explain;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod resolve;
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
    let listeners = Listeners::bind(&config.listen).await?;
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
    if let Some(api) = config.api.clone() {
        let (control, shutdown) = (control.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(error) = api::serve(api, control, shutdown.clone()).await {
                tracing::error!(%error, "the API stopped");
                shutdown.cancel();
            }
        });
    }
    tasks.spawn(health::run_prober(
        control.clone(),
        config.max_concurrent_probes,
        shutdown.clone(),
    ));
    listeners
        .serve(control.current().clone(), &config, query_log, shutdown)
        .await;
    while tasks.join_next().await.is_some() {}
    control.save_health_now();
    tracing::info!("stopped");
    Ok(())
}
