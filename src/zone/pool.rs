//! Builds a pool's answer data: endpoints checked and split by family, their health settings
//! (checks inherited pool → datacenter → endpoint, force, drain), their addresses in wire
//! form, and the policy. Flat and failover pools here; geo pools in `geo.rs`.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::build::{BuildError, FieldPath, err};
use super::spec::{EndpointCheck, EndpointSpec, PoolSpec};
use super::{EndpointSet, Pool, adaptive, geo};
use crate::health::feedback::Adapt;
use crate::health::{CheckSpec, EndpointHealth, ProbeKey};
use crate::policy::{Failover, MAX_WEIGHT, Members, Policy, PolicyKind};

/// One endpoint, built.
pub(super) struct Built {
    pub address: IpAddr,
    pub weight: u32,
    pub tier: u32,
    pub health: EndpointHealth,
}

pub(super) type Family = Vec<Built>;

pub(super) fn build_pool(
    origin: &Name,
    owner: &Name,
    spec: &PoolSpec,
    at: &FieldPath,
) -> Result<Pool, BuildError> {
    if spec.max_answers == Some(0) {
        return Err(err(at.clone().key("max_answers"), "must be at least 1"));
    }
    let fallback = spec
        .fallback
        .as_deref()
        .map(|f| {
            Name::parse(f, Some(origin))
                .map(|n| n.to_lowercase())
                .map_err(|e| err(at.clone().key("fallback"), e.to_string()))
        })
        .transpose()?;
    if fallback.as_ref() == Some(owner) {
        return Err(err(
            at.clone().key("fallback"),
            "a pool cannot fall back to itself",
        ));
    }
    if let Some(check) = &spec.check {
        validate_check(check, at.clone().key("check"))?;
    }
    let (v4, v6) = match spec.policy {
        PolicyKind::Geo => geo::build_geo_sets(spec, at)?,
        kind => flat_sets(spec, kind, at)?,
    };
    let datacenters: Vec<&str> = match spec.policy {
        PolicyKind::Geo => spec.datacenters.iter().map(|d| d.name.as_str()).collect(),
        _ => vec![""],
    };
    let answers =
        crate::metrics::global().pool(&origin.to_ascii(), &relative(owner, origin), &datacenters);
    Ok(Pool {
        answers,
        ttl: spec.ttl,
        degraded_ttl: degraded_ttl(spec),
        max_answers: spec
            .max_answers
            .map_or(u32::MAX, |m| m.try_into().unwrap_or(u32::MAX)),
        all_down: spec.all_down,
        fallback,
        v4,
        v6,
        transfer: spec.transfer,
    })
}

/// Both families' endpoint sets of a pool without datacenters (every policy but `geo`).
fn flat_sets(
    spec: &PoolSpec,
    kind: PolicyKind,
    at: &FieldPath,
) -> Result<(EndpointSet, EndpointSet), BuildError> {
    let geo_only = [
        ("datacenters", !spec.datacenters.is_empty()),
        ("max_datacenters", spec.max_datacenters.is_some()),
        ("default", spec.default.is_some()),
        ("map", spec.map.is_some()),
        ("nets", !spec.nets.is_empty()),
    ];
    if let Some((name, _)) = geo_only.iter().find(|(_, set)| *set) {
        return Err(err(
            at.clone().key(name),
            format!("only geo pools have {name} (this pool's policy is not geo)"),
        ));
    }
    if kind != PolicyKind::Failover {
        if spec.preempt.is_some() {
            return Err(err(
                at.clone().key("preempt"),
                "only failover pools have preempt",
            ));
        }
        if let Some(i) = spec.endpoints.iter().position(|e| e.tier.is_some()) {
            let field = at.clone().key("endpoints").index(i).key("tier");
            return Err(err(field, "only failover pools have tiers"));
        }
    }
    if spec.endpoints.is_empty() {
        return Err(err(
            at.clone().key("endpoints"),
            "a pool needs at least one endpoint",
        ));
    }
    let sticky = adaptive::check_pool_settings(spec, &[kind], at)?;
    let mut seen = FxHashSet::default();
    let (v4, v6) = split_endpoints(spec.check.as_ref(), &spec.endpoints, at, &mut seen)?;
    let set = |family: Family| -> Result<EndpointSet, BuildError> {
        let adapt = adaptive::adapt(spec, kind, spec.weights, &family, at, false)?;
        let policy = match kind {
            PolicyKind::Failover => Policy::Failover(failover(spec, &family)),
            flat => {
                let weights: Vec<u32> = family.iter().map(|b| b.weight).collect();
                let addresses = adaptive::addresses(&family);
                let members = Members {
                    addresses: &addresses,
                    weights: &weights,
                    sticky,
                };
                Policy::new(flat, members)
            }
        };
        let groups = vec![(0..family.len() as u32, adapt)];
        Ok(endpoint_set(policy, family, groups))
    };
    Ok((set(v4)?, set(v6)?))
}

/// `owner` as written in the zone file: relative to the origin, `@` for the apex.
fn relative(owner: &Name, origin: &Name) -> String {
    let keep = owner.num_labels().saturating_sub(origin.num_labels());
    match keep {
        0 => "@".to_owned(),
        n => owner
            .iter()
            .take(usize::from(n))
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// Half the TTL while degraded, but not under `min_ttl` (nor above the TTL itself).
fn degraded_ttl(spec: &PoolSpec) -> u32 {
    (spec.ttl / 2).max(spec.min_ttl).min(spec.ttl)
}

fn failover(spec: &PoolSpec, family: &Family) -> Failover {
    let mut tiers: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, b) in family.iter().enumerate() {
        tiers.entry(b.tier).or_default().push(i as u32);
    }
    Failover {
        slot: None,
        preempt: spec.preempt.unwrap_or(true),
        tiers: tiers.into_values().collect(),
    }
}

/// An endpoint set of `family` ordered by `policy`; `adaptive` says how each group of its
/// endpoints adapts (groups that do not are dropped).
pub(super) fn endpoint_set(
    policy: Policy,
    family: Family,
    mut adaptive: Vec<(std::ops::Range<u32>, Adapt)>,
) -> EndpointSet {
    adaptive.retain(|(range, adapt)| adapt.any() && !range.is_empty());
    // Most sets adapt to nothing: no allocation kept for them.
    adaptive.shrink_to_fit();
    let always_live = family.iter().all(|b| {
        let h = &b.health;
        h.probe.is_none() && !h.drain && h.force != Some(crate::health::Force::Down)
    });
    let mut rdata = Vec::with_capacity(family.len() * 4);
    for b in &family {
        match b.address {
            IpAddr::V4(a) => rdata.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => rdata.extend_from_slice(&a.octets()),
        }
    }
    let count = family.len();
    let health = match family.iter().all(|b| b.health.is_plain()) {
        true => Box::default(),
        false => family.into_iter().map(|b| b.health).collect(),
    };
    let endpoints = (count, rdata.into_boxed_slice());
    EndpointSet::new(endpoints, health, always_live, policy, adaptive)
}

fn validate_check(check: &CheckSpec, at: FieldPath) -> Result<(), BuildError> {
    check
        .validate()
        .map_err(|(field, message)| err(at.key(field), message))
}

/// Checks endpoints and splits them by family; `seen` catches an address listed twice
/// anywhere in the pool. `inherited` is the check of the datacenter or pool.
pub(super) fn split_endpoints(
    inherited: Option<&CheckSpec>,
    endpoints: &[EndpointSpec],
    at: &FieldPath,
    seen: &mut FxHashSet<IpAddr>,
) -> Result<(Family, Family), BuildError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    seen.reserve(endpoints.len());
    for (i, ep) in endpoints.iter().enumerate() {
        // The field path is only built for an error: a million endpoints load faster.
        let here = || at.clone().key("endpoints").index(i);
        if !(1..=MAX_WEIGHT).contains(&ep.weight) {
            return Err(err(
                here().key("weight"),
                format!("must be between 1 and {MAX_WEIGHT}"),
            ));
        }
        if !seen.insert(ep.address) {
            return Err(err(
                here().key("address"),
                format!("{} is listed twice", ep.address),
            ));
        }
        let check = match &ep.check {
            None => inherited,
            Some(EndpointCheck::Off(false)) => None,
            Some(EndpointCheck::Off(true)) => {
                return Err(err(
                    here().key("check"),
                    "give a check table, or false for no check",
                ));
            }
            Some(EndpointCheck::Check(check)) => {
                validate_check(check, here().key("check"))?;
                Some(check.as_ref())
            }
        };
        let built = Built {
            address: ep.address,
            weight: ep.weight,
            tier: ep.tier.unwrap_or(0),
            health: EndpointHealth {
                probe: check.map(|check| ProbeKey {
                    addr: ep.address,
                    check: Arc::new(check.clone()),
                }),
                slot: None,
                force: ep.force,
                drain: ep.drain,
            },
        };
        match ep.address {
            IpAddr::V4(_) => v4.push(built),
            IpAddr::V6(_) => v6.push(built),
        }
    }
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use crate::health::EndpointHealth;
    use hickory_proto::rr::{Name, RData};

    /// Endpoints keep their addresses in `rdata` alone, and health settings only where some
    /// endpoint of the set has one; records are made from them on demand.
    #[test]
    fn endpoints_are_stored_compactly_and_made_records_on_demand() {
        let pools = r#"
            [pools.plain]
            ttl = 30
            endpoints = ["192.0.2.1", "2001:db8::1", "192.0.2.2"]
            [pools.drained]
            endpoints = ["192.0.2.3", { address = "192.0.2.4", drain = true }]
            "#;
        let zone = crate::fixture::zone("t.", &format!("{}{pools}", crate::fixture::ZONE_HEAD));
        let pool = |name: &str| {
            let name = Name::from_ascii(name).unwrap();
            let node = zone.node(&name).unwrap();
            (node.name.clone(), node.pool.as_ref().unwrap())
        };
        let (owner, plain) = pool("plain.t.");
        assert_eq!((plain.v4.len(), plain.v6.len()), (2, 1));
        let addresses: Vec<String> = plain.v4.addresses().map(|a| a.to_string()).collect();
        assert_eq!(addresses, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(plain.v6.address(0).to_string(), "2001:db8::1");
        assert!(
            plain.v4.health.is_empty(),
            "no health kept for plain endpoints"
        );
        assert!(plain.v4.healths().all(EndpointHealth::is_plain));
        let record = plain.v6.record(0, &owner, plain.ttl);
        assert_eq!(
            (record.name.to_string(), record.ttl),
            ("plain.t.".into(), 30)
        );
        assert!(matches!(record.data, RData::AAAA(a) if a.0.to_string() == "2001:db8::1"));

        let (_, drained) = pool("drained.t.");
        let drains: Vec<bool> = drained.v4.healths().map(|h| h.drain).collect();
        assert_eq!(drains, [false, true]);
        assert_eq!(drained.v4.health.len(), 2);
        assert!(drained.v6.is_empty());
    }
}
