//! Adaptive endpoint sets: the pool settings whose weights or loads follow what is measured
//! (`weights = "latency"`, `min_share`, `slow_start`, `load_ttl`) and the sticky prefixes,
//! checked; and the adaptive groups of a set, for the writer path to compute feedback for.

use std::ops::Range;

use super::EndpointSet;
use super::build::{BuildError, FieldPath, err};
use super::pool::Family;
use super::spec::{PoolSpec, WeightsFrom};
use crate::health::feedback::{Adapt, Group, Tracked};
use crate::policy::PolicyKind;
use crate::policy::sticky::Prefixes;

/// The least share a slow endpoint keeps, unless the pool says otherwise.
const DEFAULT_MIN_SHARE: f64 = 0.1;
/// How long a reported load counts, unless the pool says otherwise.
const DEFAULT_LOAD_TTL_MS: u64 = 30_000;

/// How one group of a pool's endpoints (all of a flat pool's, or a datacenter's) ordered by
/// `kind` adapts, with `weights` from the pool or the datacenter. `at` is where they were
/// set; `pool_level` says whether a setting that does not apply to `kind` is merely inherited
/// (ignored) rather than written for it (an error).
pub(super) fn adapt(
    spec: &PoolSpec,
    kind: PolicyKind,
    weights: WeightsFrom,
    family: &[super::pool::Built],
    at: &FieldPath,
    pool_level: bool,
) -> Result<Adapt, BuildError> {
    let weighs = kind.weighs();
    let refuse = |field: &str, why: &str| Err(err(at.clone().key(field), why.to_owned()));
    let latency = weights == WeightsFrom::Latency && (weighs || !pool_level);
    if latency && !weighs {
        return refuse(
            "weights",
            "latency weights need a weighted policy (weighted, weighted_random, sticky or least_load)",
        );
    }
    if latency && !family.is_empty() && family.iter().all(|b| b.health.probe.is_none()) {
        return refuse(
            "weights",
            "latency weights need a health check: the probes measure the response times",
        );
    }
    let slow_start = spec
        .slow_start
        .filter(|_| weighs)
        .map(|s| s.duration())
        .filter(|s| !s.is_zero());
    let load_ttl = (kind == PolicyKind::LeastLoad).then(|| {
        spec.load_ttl
            .map_or(std::time::Duration::from_millis(DEFAULT_LOAD_TTL_MS), |t| {
                t.duration()
            })
    });
    Ok(Adapt {
        min_share: latency.then(|| spec.min_share.unwrap_or(DEFAULT_MIN_SHARE) as f32),
        slow_start,
        load_ttl,
    })
}

/// The pool-level settings that must apply to some group of the pool: `kinds` are the
/// policies of its groups (one for a flat pool, a datacenter's each for a geo pool).
pub(super) fn check_pool_settings(
    spec: &PoolSpec,
    kinds: &[PolicyKind],
    at: &FieldPath,
) -> Result<Prefixes, BuildError> {
    let refuse = |field: &str, why: String| Err(err(at.clone().key(field), why));
    let weighs = kinds.iter().any(|k| k.weighs());
    let weighted = "a weighted policy (weighted, weighted_random, sticky or least_load)";
    if spec.weights == WeightsFrom::Latency && !weighs {
        return refuse("weights", format!("latency weights need {weighted}"));
    }
    if let Some(min) = spec.min_share {
        if spec.weights != WeightsFrom::Latency {
            return refuse("min_share", "only with weights = \"latency\"".into());
        }
        if !(min > 0.0 && min <= 1.0) {
            return refuse("min_share", "must be above 0 and at most 1".into());
        }
    }
    if spec.slow_start.is_some() && !weighs {
        return refuse("slow_start", format!("slow start needs {weighted}"));
    }
    let least_load = kinds.contains(&PolicyKind::LeastLoad);
    match spec.load_ttl {
        Some(_) if !least_load => {
            return refuse("load_ttl", "only least_load pools read loads".into());
        }
        Some(t) if t.0 == 0 => return refuse("load_ttl", "must be above 0".into()),
        _ => {}
    }
    let sticky = kinds.contains(&PolicyKind::Sticky);
    let mut prefixes = Prefixes::default();
    for (field, value, max, slot) in [
        (
            "sticky_prefix_v4",
            spec.sticky_prefix_v4,
            32,
            &mut prefixes.v4,
        ),
        (
            "sticky_prefix_v6",
            spec.sticky_prefix_v6,
            128,
            &mut prefixes.v6,
        ),
    ] {
        let Some(value) = value else { continue };
        if !sticky {
            return refuse(field, "only sticky pools hash the client's network".into());
        }
        if value > max {
            return refuse(field, format!("must be at most {max}"));
        }
        *slot = value;
    }
    Ok(prefixes)
}

/// Appends the adaptive groups of `set` (the `family` set of pool `name`, whose feedback slots
/// start at `set.feedback`) to `groups`.
pub(super) fn groups(
    name: &hickory_proto::rr::Name,
    family: &str,
    set: &EndpointSet,
    groups: &mut Vec<Group>,
) {
    let first = set.feedback.unwrap_or(0) as usize;
    for (range, adapt) in &set.adaptive {
        let label = set.datacenter_name(set.datacenter_of(range.start));
        groups.push(Group {
            id: match label {
                Some(dc) => format!("{name}/{family}/{dc}"),
                None => format!("{name}/{family}"),
            },
            first: (first + range.start as usize) as u32,
            endpoints: tracked(set, range.clone()),
            adapt: *adapt,
        });
    }
}

fn tracked(set: &EndpointSet, range: Range<u32>) -> Vec<Tracked> {
    range
        .map(|i| Tracked {
            address: set.address(i),
            probe: set.health(i).slot,
        })
        .collect()
}

/// The addresses of `family`, for policies that hash them.
pub(super) fn addresses(family: &Family) -> Vec<std::net::IpAddr> {
    family.iter().map(|b| b.address).collect()
}
