//! `meridian explain`: why a client gets the answer it gets — where the database puts it, which
//! `nets` or `map` entry or distance ranking applied, the datacenter order with distances, the
//! chosen endpoints and the ECS scope.

use std::fmt::Write;
use std::net::IpAddr;

use hickory_proto::rr::{Name, RecordType};

use crate::policy::Policy;
use crate::policy::geo::Reason;
use crate::resolve::resolve;
use crate::state::Snapshot;
use crate::zone::Lookup;

/// A human-readable account of answering `qtype` at `name` for `client`.
pub fn explain(snapshot: &Snapshot, name: &Name, qtype: RecordType, client: IpAddr) -> String {
    let mut out = String::new();
    let client = crate::geo::canonical(client);
    let _ = writeln!(out, "question:  {name} {qtype}");
    let _ = writeln!(out, "client:    {client}");
    match &snapshot.geo {
        Some(db) => {
            let _ = writeln!(
                out,
                "geoip:     {} ({})",
                db.describe(),
                db.path().display()
            );
            let located = db.locate(client);
            match &located.location {
                Some(l) => {
                    let _ = writeln!(
                        out,
                        "location:  {:.2}, {:.2}{} continent {} country {} subdivision {} (network /{})",
                        l.latitude,
                        l.longitude,
                        if l.centroid {
                            " (country centroid)"
                        } else {
                            ""
                        },
                        l.continent.as_deref().unwrap_or("-"),
                        l.country.as_deref().unwrap_or("-"),
                        l.subdivision.as_deref().unwrap_or("-"),
                        located.prefix
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "location:  not in the database (network /{})",
                        located.prefix
                    );
                }
            }
        }
        None => {
            let _ = writeln!(out, "geoip:     no database configured");
        }
    }

    if let Some(zone) = snapshot.zones.find(name)
        && let Lookup::Node(node) = zone.lookup(name, false)
        && let Some(pool) = &node.pool
        && let Some(set) = pool.endpoints(qtype)
    {
        let _ = writeln!(
            out,
            "pool:      {} ({}, ttl {}, {} while degraded)",
            name.to_lowercase(),
            set.policy.name(),
            pool.ttl,
            pool.degraded_ttl
        );
        let _ = writeln!(out, "endpoints:");
        for (record, health) in set.records.iter().zip(&set.health) {
            let status = health.status(&snapshot.health);
            let mut notes = Vec::new();
            if let Some(force) = health.force {
                notes.push(format!("forced {force:?}").to_lowercase());
            }
            if health.drain {
                notes.push("drained".into());
            }
            match &health.probe {
                Some(key) => notes.push(format!("checked by {key}")),
                None => notes.push("no check".into()),
            }
            let live = match health.live(&snapshot.health) {
                true => "live",
                false => "not handed out",
            };
            let _ = writeln!(
                out,
                "  {:<24} {status:<8} {live:<15} {}",
                record.data.to_string(),
                notes.join(", ")
            );
        }
        if let Policy::Geo(geo) = &set.policy {
            let d = geo.decide(client, snapshot.geo.as_deref());
            let why = match &d.reason {
                Reason::Net(net) => format!("nets entry {net}"),
                Reason::Map(code) => format!("map entry {code}"),
                Reason::MapDefault => "map default (no map entry matched)".into(),
                Reason::Distance => "nearest by great-circle distance (bias applied)".into(),
                Reason::Unlocated => "client not located: the pool's default order".into(),
            };
            let _ = writeln!(out, "decision:  {why}");
            let _ = writeln!(
                out,
                "datacenters (max_datacenters {}):",
                geo.max_datacenters
            );
            let mut serving = 0;
            for (rank, &i) in d.order.iter().enumerate() {
                let dc = &geo.datacenters[i as usize];
                let distance = d.distances[i as usize]
                    .map(|km| format!("{km:>8.0} km"))
                    .unwrap_or_else(|| "       - km".into());
                let mark = if dc.endpoints.is_empty() {
                    "no endpoints of this family"
                } else if serving < geo.max_datacenters {
                    serving += 1;
                    "<- serving"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {}. {:<16} {distance}  bias {:>6.0} km  endpoints {}  {mark}",
                    rank + 1,
                    dc.name,
                    dc.bias_km,
                    dc.endpoints.len()
                );
            }
        } else {
            let _ = writeln!(
                out,
                "decision:  {} policy (does not depend on the client)",
                set.policy.name()
            );
        }
    }

    let mut rng = fastrand::Rng::new();
    let answer = resolve(snapshot, name, qtype, client, &mut rng);
    let _ = writeln!(out, "rcode:     {}", answer.rcode);
    let _ = writeln!(out, "answer:");
    for r in &answer.answers {
        let _ = writeln!(out, "  {} {} {} {}", r.name, r.ttl, r.record_type(), r.data);
    }
    let _ = writeln!(out, "ecs scope: /{}", answer.ecs_scope);
    out
}
