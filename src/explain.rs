//! `meridian explain` (and `GET /api/v1/explain`): why a client gets the answer it gets —
//! where the database puts it, the health of every endpoint considered, which `nets` or `map`
//! entry or distance ranking applied, the datacenter order with distances, the answer and the
//! ECS scope.

use std::fmt;
use std::net::IpAddr;

use hickory_proto::rr::{Name, RecordType};
use serde::Serialize;

use crate::health::{Feedback, HealthView};
use crate::policy::geo::Reason;
use crate::policy::{Order, Policy, Sticky};
use crate::resolve::{Answer, PoolDecision, answer, find};
use crate::snapshot::Snapshot;
use crate::zone::{Lookup, NameKey};

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub client: IpAddr,
    /// The database's description, if one is configured.
    pub geoip: Option<String>,
    pub location: Option<LocationView>,
    /// The wildcard that stands for the name (RFC 4592), where one does.
    pub wildcard: Option<String>,
    pub pool: Option<PoolView>,
    pub rcode: String,
    pub answer: Vec<String>,
    pub ecs_scope: u8,
}

#[derive(Debug, Serialize)]
pub struct LocationView {
    pub found: bool,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub centroid: bool,
    pub continent: Option<String>,
    pub country: Option<String>,
    pub subdivision: Option<String>,
    /// Prefix length of the database network holding the client.
    pub network_prefix: u8,
}

#[derive(Debug, Serialize)]
pub struct PoolView {
    pub name: String,
    pub policy: &'static str,
    pub ttl: u32,
    pub degraded_ttl: u32,
    pub endpoints: Vec<EndpointView>,
    pub decision: String,
    pub datacenters: Vec<DatacenterView>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub address: String,
    pub state: String,
    pub live: bool,
    pub force: Option<String>,
    pub drain: bool,
    pub check: Option<String>,
    /// Adaptive sets: the share of its configured weight it has now (latency × slow start).
    pub weight_share: Option<f32>,
    /// Adaptive sets: how far through its slow start it is, while it is in one.
    pub slow_start: Option<f32>,
    /// `least_load`: its current load, if it reported one.
    pub load: Option<f32>,
    /// `sticky`: its rank for the client's network (1 leads while live), within its
    /// datacenter for a geo pool.
    pub sticky_rank: Option<usize>,
    /// Registered through the API: the time its registration has left, in ms.
    pub registered_expires_in_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct DatacenterView {
    pub name: String,
    pub distance_km: Option<f64>,
    pub bias_km: f64,
    pub endpoints: usize,
    pub serving: bool,
}

/// Explains answering `qtype` at `name` for `client`.
pub fn explain(snapshot: &Snapshot, name: &Name, qtype: RecordType, client: IpAddr) -> Explanation {
    let client = crate::geo::canonical(client);
    let location = snapshot.geo.as_ref().map(|db| {
        let located = db.locate(client);
        let l = located.location.as_ref();
        LocationView {
            found: l.is_some(),
            latitude: l.map(|l| l.latitude),
            longitude: l.map(|l| l.longitude),
            centroid: l.is_some_and(|l| l.centroid),
            continent: l.and_then(|l| l.continent.map(|c| c.to_string())),
            country: l.and_then(|l| l.country.map(|c| c.to_string())),
            subdivision: l.and_then(|l| l.subdivision.map(|c| c.to_string())),
            network_prefix: located.prefix,
        }
    });
    // The same two stages as a query: what `find` decides is what is explained.
    let key = NameKey::new(name);
    let found = find(snapshot, &key, qtype, client);
    let pool = found.and_then(|f| Some(pool_view(snapshot, f.health, name, f.pool?, client)));
    let mut rng = fastrand::Rng::new();
    let answer = match found {
        Some(found) => answer(snapshot, &found, &|| name.clone(), qtype, client, &mut rng),
        None => Answer::default(),
    };
    let rcode = match found {
        Some(_) => answer.rcode,
        None => hickory_proto::op::ResponseCode::Refused,
    };
    Explanation {
        name: name.to_string(),
        rtype: qtype.to_string(),
        client,
        geoip: snapshot
            .geo
            .as_ref()
            .map(|db| format!("{} ({})", db.describe(), db.path().display())),
        location,
        wildcard: found.and_then(|f| match f.lookup {
            Lookup::Wildcard(node) => Some(node.name.to_string()),
            _ => None,
        }),
        pool,
        rcode: rcode.to_string(),
        answer: answer
            .answer_records()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.name,
                    r.ttl,
                    crate::presentation::record_type_text(r.record_type()),
                    crate::presentation::record_text(&r)
                )
            })
            .collect(),
        ecs_scope: answer.ecs_scope,
    }
}

/// The pool `find` chose, its endpoints' states and, for a geo pool, why its datacenters are
/// in the decided order and which of them serve.
fn pool_view(
    snapshot: &Snapshot,
    view: &HealthView,
    name: &Name,
    found: PoolDecision<'_>,
    client: IpAddr,
) -> PoolView {
    let PoolDecision {
        pool,
        set,
        decision,
        ..
    } = found;
    let live = |i: u32| set.live(i, view);
    let feedback = set.feedback(view);
    let ranks = sticky_ranks(&set.policy, client, feedback);
    let endpoints = set
        .addresses()
        .zip(set.healths())
        .enumerate()
        .map(|(i, (address, h))| {
            let measured = feedback.get(i);
            EndpointView {
                address: address.to_string(),
                state: h.status(view).to_string(),
                live: h.live(view),
                force: h.force.map(|f| format!("{f:?}").to_lowercase()),
                drain: h.drain,
                check: h.probe.as_ref().map(ToString::to_string),
                weight_share: measured.map(|f| f.share),
                slow_start: measured.map(|f| f.ramp).filter(|&r| r < 1.0),
                load: measured.and_then(|f| f.load),
                sticky_rank: ranks.get(i).copied().flatten(),
                registered_expires_in_ms: None,
            }
        })
        .collect();
    let (why, datacenters) = match &set.policy {
        Policy::Geo(geo) => {
            let ranking = geo.explain(client, snapshot.geo.as_deref());
            let why = match &ranking.reason {
                Reason::Net(net) => format!("nets entry {net}"),
                Reason::Map(code) => format!("map entry {code}"),
                Reason::MapDefault => "map default (no map entry matched)".into(),
                Reason::Distance => "nearest by great-circle distance (bias applied)".into(),
                Reason::Unlocated => "client not located: the pool's default order".into(),
            };
            let serving: Vec<u16> = geo.serving(decision.order(), &live).collect();
            let dcs = decision
                .order()
                .iter()
                .map(|&i| u16::from(i))
                .map(|i| {
                    let dc = &geo.datacenters[usize::from(i)];
                    DatacenterView {
                        name: dc.name.clone(),
                        distance_km: ranking.distance(usize::from(i)),
                        bias_km: dc.bias_km,
                        endpoints: dc.endpoints.len(),
                        serving: serving.contains(&i),
                    }
                })
                .collect();
            (why, dcs)
        }
        Policy::Sticky(sticky) => {
            let prefix = sticky.prefixes.of(client);
            let network = ipnet::IpNet::new(client, prefix).map(|n| n.trunc());
            let network = network.map_or_else(|_| client.to_string(), |n| n.to_string());
            let why = format!(
                "sticky: the client's network {network} ranks the endpoints by rendezvous hash; \
                 the best-ranked live one leads"
            );
            (why, Vec::new())
        }
        Policy::LeastLoad(_) => (
            "least_load: the better (weight x share / (1 + load)) of two endpoints drawn by \
             weight leads; the rest follow by that score"
                .to_owned(),
            Vec::new(),
        ),
        other => (
            format!("{} policy (does not depend on the client)", other.name()),
            Vec::new(),
        ),
    };
    PoolView {
        name: name.to_lowercase().to_string(),
        policy: set.policy.name(),
        ttl: pool.ttl,
        degraded_ttl: pool.degraded_ttl,
        endpoints,
        decision: why,
        datacenters,
    }
}

impl Explanation {
    /// Marks the pool's endpoints that are registered through the API, with the time left.
    pub fn mark_registered(&mut self, registrations: &[crate::store::registry::Registration]) {
        let Some(pool) = &mut self.pool else { return };
        let now = crate::control::unix_ms();
        for e in &mut pool.endpoints {
            let found = registrations.iter().find(|r| {
                r.endpoint.pool == pool.name && r.endpoint.address.to_string() == e.address
            });
            e.registered_expires_in_ms = found.map(|r| r.expires_ms().saturating_sub(now));
        }
    }
}

/// Each endpoint's rank (1 first) for `client`'s network, where a sticky policy orders it:
/// the pool's own, or its datacenter's in a geo pool.
fn sticky_ranks(policy: &Policy, client: IpAddr, feedback: &[Feedback]) -> Vec<Option<usize>> {
    let share =
        |feedback: &[Feedback], i: usize| feedback.get(i).map_or(1.0, |f| f64::from(f.share));
    let ranked =
        |sticky: &Sticky, feedback: &[Feedback], first: usize, out: &mut Vec<Option<usize>>| {
            let mut order = Order::new();
            let key = sticky.prefixes.network_key(client);
            sticky.order(key, &|i| share(feedback, i), usize::MAX, &mut order);
            for (rank, &i) in order.iter().enumerate() {
                let at = first + i as usize;
                if out.len() <= at {
                    out.resize(at + 1, None);
                }
                out[at] = Some(rank + 1);
            }
        };
    let mut out = Vec::new();
    match policy {
        Policy::Sticky(sticky) => ranked(sticky, feedback, 0, &mut out),
        Policy::Geo(geo) => {
            for dc in &geo.datacenters {
                if let Policy::Sticky(sticky) = &dc.inner {
                    let first = dc.endpoints.first().map_or(0, |&e| e as usize);
                    let own = feedback.get(first..first + dc.endpoints.len());
                    ranked(sticky, own.unwrap_or_default(), first, &mut out);
                }
            }
        }
        _ => {}
    }
    out
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "question:  {} {}", self.name, self.rtype)?;
        writeln!(f, "client:    {}", self.client)?;
        if let Some(wildcard) = &self.wildcard {
            writeln!(f, "wildcard:  {wildcard} stands for the name (RFC 4592)")?;
        }
        match &self.geoip {
            Some(db) => writeln!(f, "geoip:     {db}")?,
            None => writeln!(f, "geoip:     no database configured")?,
        }
        if let Some(l) = &self.location {
            match (l.latitude, l.longitude) {
                (Some(lat), Some(lon)) => writeln!(
                    f,
                    "location:  {lat:.2}, {lon:.2}{} continent {} country {} subdivision {} (network /{})",
                    if l.centroid {
                        " (country centroid)"
                    } else {
                        ""
                    },
                    l.continent.as_deref().unwrap_or("-"),
                    l.country.as_deref().unwrap_or("-"),
                    l.subdivision.as_deref().unwrap_or("-"),
                    l.network_prefix
                )?,
                _ => writeln!(
                    f,
                    "location:  not in the database (network /{})",
                    l.network_prefix
                )?,
            }
        }
        if let Some(p) = &self.pool {
            writeln!(
                f,
                "pool:      {} ({}, ttl {}, {} while degraded)",
                p.name, p.policy, p.ttl, p.degraded_ttl
            )?;
            writeln!(f, "endpoints:")?;
            for e in &p.endpoints {
                let notes = notes(e);
                let live = if e.live { "live" } else { "not handed out" };
                writeln!(
                    f,
                    "  {:<24} {:<8} {live:<15} {}",
                    e.address,
                    e.state,
                    notes.join(", ")
                )?;
            }
            writeln!(f, "decision:  {}", p.decision)?;
            if !p.datacenters.is_empty() {
                writeln!(f, "datacenters:")?;
                for (rank, dc) in p.datacenters.iter().enumerate() {
                    let distance = dc
                        .distance_km
                        .map(|km| format!("{km:>8.0} km"))
                        .unwrap_or_else(|| "       - km".into());
                    let mark = if dc.serving { "<- serving" } else { "" };
                    writeln!(
                        f,
                        "  {}. {:<16} {distance}  bias {:>6.0} km  endpoints {}  {mark}",
                        rank + 1,
                        dc.name,
                        dc.bias_km,
                        dc.endpoints
                    )?;
                }
            }
        }
        writeln!(f, "rcode:     {}", self.rcode)?;
        writeln!(f, "answer:")?;
        for a in &self.answer {
            writeln!(f, "  {a}")?;
        }
        writeln!(f, "ecs scope: /{}", self.ecs_scope)
    }
}

/// What `explain` says of an endpoint besides its state.
fn notes(e: &EndpointView) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(force) = &e.force {
        notes.push(format!("forced {force}"));
    }
    if e.drain {
        notes.push("drained".into());
    }
    notes.push(match &e.check {
        Some(c) => format!("checked by {c}"),
        None => "no check".into(),
    });
    if let Some(rank) = e.sticky_rank {
        notes.push(format!("sticky rank {rank}"));
    }
    if let Some(share) = e.weight_share {
        notes.push(format!("weight share {share:.2}"));
    }
    if let Some(ramp) = e.slow_start {
        notes.push(format!("slow start {:.0} %", ramp * 100.0));
    }
    if let Some(load) = e.load {
        notes.push(format!("load {load}"));
    }
    if let Some(left) = e.registered_expires_in_ms {
        notes.push(format!("registered, {:.0} s left", left as f64 / 1000.0));
    }
    notes
}
