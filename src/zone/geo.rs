//! Builds a `geo` pool from its datacenters, `nets`, `map` and `default` (see `policy::geo`).

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use super::EndpointSet;
use super::adaptive;
use super::build::{BuildError, FieldPath, err};
use super::pool::{Family, endpoint_set, split_endpoints};
use super::spec::{DatacenterSpec, GeoMapSpec, PoolSpec};
use crate::health::feedback::Adapt;
use crate::policy::geo::{Datacenter, Geo, GeoMap, MAX_DATACENTERS};
use crate::policy::{Members, Policy, PolicyKind};

/// Datacenter names to indices (see [`dc_list`]).
type DcList<'a> = dyn Fn(&[String], FieldPath) -> Result<Vec<u16>, BuildError> + 'a;

/// One datacenter's endpoints of one family: their pool-level indices, addresses and
/// weights, and how they adapt.
#[derive(Default)]
struct DcEndpoints {
    indices: Vec<u32>,
    addresses: Vec<std::net::IpAddr>,
    weights: Vec<u32>,
    adapt: Adapt,
}

const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Builds both families' endpoint sets of a geo pool.
pub(super) fn build_geo_sets(
    spec: &PoolSpec,
    at: &FieldPath,
) -> Result<(EndpointSet, EndpointSet), BuildError> {
    let max_datacenters = check_pool(spec, at)?;
    let kinds: Vec<PolicyKind> = spec.datacenters.iter().map(|dc| dc.policy).collect();
    let sticky = adaptive::check_pool_settings(spec, &kinds, at)?;
    let mut index: HashMap<&str, u16> = HashMap::new();
    let mut seen = rustc_hash::FxHashSet::default();
    // Per family: the pool's endpoints, and per datacenter its indices and weights.
    let mut families: [(Family, Vec<DcEndpoints>); 2] = Default::default();
    for (i, dc) in spec.datacenters.iter().enumerate() {
        let here = at.clone().key("datacenters").index(i);
        if index.insert(dc.name.as_str(), i as u16).is_some() {
            return Err(err(
                here.key("name"),
                format!("{} is listed twice", dc.name),
            ));
        }
        check_datacenter(dc, &here)?;
        let inherited = dc.check.as_ref().or(spec.check.as_ref());
        // An answer from one datacenter never repeats an address, so a backend may serve in
        // several (an octoDNS pool and its fallback alike); across datacenters answered
        // together it may not.
        if max_datacenters == 1 {
            seen.clear();
        }
        let (v4, v6) = split_endpoints(inherited, &dc.endpoints, &here, &mut seen)?;
        let weights = dc.weights.unwrap_or(spec.weights);
        for ((all, dcs), eps) in families.iter_mut().zip([v4, v6]) {
            let first = all.len() as u32;
            let inherited = dc.weights.is_none();
            dcs.push(DcEndpoints {
                indices: (first..first + eps.len() as u32).collect(),
                addresses: adaptive::addresses(&eps),
                weights: eps.iter().map(|b| b.weight).collect(),
                adapt: adaptive::adapt(spec, dc.policy, weights, &eps, &here, inherited)?,
            });
            all.extend(eps);
        }
    }
    let list = |names: &[String], field: FieldPath| dc_list(&index, names, field);
    let default = match &spec.default {
        Some(names) => list(names, at.clone().key("default"))?,
        None => (0..spec.datacenters.len() as u16).collect(),
    };

    let mut nets = Vec::new();
    for (cidr, names) in &spec.nets {
        let here = at.clone().key("nets").key(cidr);
        let net: IpNet = cidr
            .parse()
            .map_err(|_| err(here.clone(), format!("{cidr} is not a CIDR network")))?;
        let net = net.trunc();
        if nets.iter().any(|(n, _)| *n == net) {
            return Err(err(here, format!("{net} is listed twice")));
        }
        nets.push((net, list(names, here)?));
    }
    nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));

    let map = match &spec.map {
        Some(m) => geo_map(m, at.clone().key("map"), &list)?,
        None => GeoMap::default(),
    };
    let [(v4, v4_dcs), (v6, v6_dcs)] = families;
    let shared = Shared {
        nets,
        map,
        default,
        max_datacenters,
        sticky: kinds.contains(&PolicyKind::Sticky).then_some(sticky),
    };
    let sets = (
        geo_set(spec, &shared, v4, v4_dcs),
        geo_set(spec, &shared, v6, v6_dcs),
    );
    Ok(sets)
}

/// What the two families' geo policies of a pool share.
struct Shared {
    nets: Vec<(IpNet, Vec<u16>)>,
    map: GeoMap,
    default: Vec<u16>,
    max_datacenters: usize,
    sticky: Option<crate::policy::sticky::Prefixes>,
}

/// One family's endpoint set of a geo pool: its datacenters, each with its inner policy.
fn geo_set(spec: &PoolSpec, shared: &Shared, family: Family, dcs: Vec<DcEndpoints>) -> EndpointSet {
    let adaptive = dcs
        .iter()
        .map(|d| {
            let first = d.indices.first().copied().unwrap_or(0);
            (first..first + d.indices.len() as u32, d.adapt)
        })
        .collect();
    let datacenters = spec
        .datacenters
        .iter()
        .zip(dcs)
        .map(|(dc, d)| {
            let members = Members {
                addresses: &d.addresses,
                weights: &d.weights,
                sticky: shared.sticky.unwrap_or_default(),
            };
            Datacenter {
                name: dc.name.clone(),
                latitude: dc.latitude,
                longitude: dc.longitude,
                position: crate::geo::unit_vector(dc.latitude, dc.longitude),
                bias_km: dc.bias,
                inner: Policy::new(dc.policy, members),
                endpoints: d.indices,
            }
        })
        .collect();
    let geo = Policy::Geo(Box::new(Geo {
        id: Geo::next_id(),
        datacenters,
        nets: shared.nets.clone(),
        map: shared.map.clone(),
        default: shared.default.clone(),
        max_datacenters: shared.max_datacenters,
        sticky: shared.sticky,
        steering: Default::default(),
    }));
    endpoint_set(geo, family, adaptive)
}

/// The pool-level fields of a geo pool; returns its `max_datacenters`.
fn check_pool(spec: &PoolSpec, at: &FieldPath) -> Result<usize, BuildError> {
    if !spec.endpoints.is_empty() {
        return Err(err(
            at.clone().key("endpoints"),
            "a geo pool lists its endpoints under its datacenters",
        ));
    }
    if spec.preempt.is_some() {
        return Err(err(
            at.clone().key("preempt"),
            "only failover pools have preempt",
        ));
    }
    if spec.datacenters.is_empty() {
        return Err(err(
            at.clone().key("datacenters"),
            "a geo pool needs at least one datacenter",
        ));
    }
    if spec.datacenters.len() > MAX_DATACENTERS {
        return Err(err(
            at.clone().key("datacenters"),
            format!("at most {MAX_DATACENTERS} datacenters in one pool"),
        ));
    }

    let max_datacenters = spec.max_datacenters.unwrap_or(1);
    if max_datacenters == 0 {
        return Err(err(at.clone().key("max_datacenters"), "must be at least 1"));
    }
    Ok(max_datacenters)
}

/// One datacenter's own fields.
fn check_datacenter(dc: &DatacenterSpec, here: &FieldPath) -> Result<(), BuildError> {
    let here = here.clone();
    if !(-90.0..=90.0).contains(&dc.latitude) {
        return Err(err(here.key("latitude"), "must be between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&dc.longitude) {
        return Err(err(here.key("longitude"), "must be between -180 and 180"));
    }
    if !dc.bias.is_finite() {
        return Err(err(here.key("bias"), "must be a number of km"));
    }
    if matches!(dc.policy, PolicyKind::Geo | PolicyKind::Failover) {
        return Err(err(
            here.key("policy"),
            "a datacenter orders its endpoints with round_robin, weighted, weighted_random, all, sticky or least_load",
        ));
    }
    if dc.endpoints.is_empty() {
        return Err(err(
            here.key("endpoints"),
            "a datacenter needs at least one endpoint",
        ));
    }
    if let Some(check) = &dc.check
        && let Err((field, message)) = check.validate()
    {
        return Err(err(here.key("check").key(field), message));
    }
    if let Some(j) = dc.endpoints.iter().position(|e| e.tier.is_some()) {
        let field = here.key("endpoints").index(j).key("tier");
        return Err(err(field, "only failover pools have tiers"));
    }
    Ok(())
}

/// Datacenter names as indices: each known, none twice, at least one.
fn dc_list(
    index: &HashMap<&str, u16>,
    names: &[String],
    field: FieldPath,
) -> Result<Vec<u16>, BuildError> {
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(&dc) = index.get(name.as_str()) else {
            return Err(err(field.index(i), format!("no datacenter named {name}")));
        };
        if out.contains(&dc) {
            return Err(err(field.index(i), format!("{name} is listed twice")));
        }
        out.push(dc);
    }
    if out.is_empty() {
        return Err(err(field, "list at least one datacenter"));
    }
    Ok(out)
}

/// The `map` of a geo pool: continent, country and subdivision codes to datacenter lists.
fn geo_map(m: &GeoMapSpec, here: FieldPath, list: &DcList<'_>) -> Result<GeoMap, BuildError> {
    let mut map = GeoMap::default();
    let codes = |table: &BTreeMap<String, Vec<String>>,
                 kind: &str,
                 valid: &dyn Fn(&str) -> bool|
     -> Result<HashMap<String, Vec<u16>>, BuildError> {
        let mut out = HashMap::new();
        for (code, names) in table {
            let field = here.clone().key(kind).key(code);
            if !valid(code) {
                return Err(err(field, format!("{code} is not a {kind} code")));
            }
            out.insert(code.clone(), list(names, field)?);
        }
        Ok(out)
    };
    let upper = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    map.continent = codes(&m.continent, "continent", &|c| CONTINENTS.contains(&c))?;
    map.country = codes(&m.country, "country", &|c| c.len() == 2 && upper(c))?;
    map.subdivision = codes(
        &m.subdivision,
        "subdivision",
        &|c| matches!(c.split_once('-'), Some((cc, sub)) if cc.len() == 2 && upper(cc) && (1..=3).contains(&sub.len()) && upper(sub)),
    )?;
    map.default = m
        .default
        .as_ref()
        .map(|names| list(names, here.clone().key("default")))
        .transpose()?;
    Ok(map)
}
