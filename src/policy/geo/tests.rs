//! The geo policy: decisions, rankings, steering tables against the database walk.

use std::net::IpAddr;

use super::*;
use crate::geo::{Code, Location};
use crate::policy::{All, RoundRobin};

/// The query path's decision as (order, length, scope).
fn decide_order(
    g: &Geo,
    client: IpAddr,
    db: Option<&GeoDb>,
) -> ([u16; MAX_DATACENTERS], usize, u8) {
    let d = g.decide(client, db);
    let mut order = [0; MAX_DATACENTERS];
    for (to, &from) in order.iter_mut().zip(d.order()) {
        *to = u16::from(from);
    }
    (order, d.order().len(), d.scope)
}

/// The query path's endpoints for `client`: decide, then order.
fn order_for(
    g: &Geo,
    client: IpAddr,
    live: &dyn Fn(u32) -> bool,
    rng: &mut fastrand::Rng,
    limit: usize,
    out: &mut Order,
) {
    let d = g.decide(client, None);
    let mut asking = Asking {
        decision: &d,
        cx: None,
        live,
        rng,
        feedback: &[],
    };
    g.order(&mut asking, limit, out);
}

fn dc(name: &str, lat: f64, lon: f64, bias_km: f64, first: u32) -> Datacenter {
    Datacenter {
        name: name.into(),
        latitude: lat,
        longitude: lon,
        position: crate::geo::unit_vector(lat, lon),
        bias_km,
        endpoints: vec![first, first + 1],
        inner: Policy::All(All::new(2)),
    }
}

fn pool() -> Geo {
    Geo {
        id: Geo::next_id(),
        datacenters: vec![
            dc("us-east", 39.04, -77.49, 0.0, 0),
            dc("eu-central", 50.11, 8.68, 0.0, 2),
            dc("ap-southeast", 1.35, 103.82, 0.0, 4),
        ],
        nets: vec![
            ("10.1.2.0/24".parse().unwrap(), vec![2]),
            ("10.0.0.0/8".parse().unwrap(), vec![1]),
        ],
        map: GeoMap::default(),
        default: vec![0],
        max_datacenters: 1,
        sticky: None,
        steering: Default::default(),
    }
}

#[test]
fn nets_win_longest_prefix_first() {
    let g = pool();
    let d = g.explain("10.1.2.3".parse().unwrap(), None);
    assert_eq!(d.order(), [2, 0, 1]);
    assert_eq!(d.scope, 24);
    let d = g.explain("10.9.9.9".parse().unwrap(), None);
    assert_eq!(d.order()[0], 1);
    assert_eq!(d.reason, Reason::Net("10.0.0.0/8".parse().unwrap()));
    // 10.9.9.9/8 would include 10.1.2.0/24: the scope narrows to leave it out.
    assert_eq!(d.scope, 13);
}

#[test]
fn unlocated_clients_get_the_default_order() {
    let g = pool();
    let d = g.explain("192.0.2.1".parse().unwrap(), None);
    assert_eq!(d.order(), [0, 1, 2]);
    assert_eq!(d.reason, Reason::Unlocated);
    // 192.0.0.0/1 would include 10.0.0.0/8, which answers differently: scope /1.
    assert_eq!(d.scope, 1);
}

#[test]
fn max_datacenters_spans_the_nearest() {
    let mut g = pool();
    g.max_datacenters = 2;
    let mut out = Order::new();
    let mut rng = fastrand::Rng::with_seed(1);
    order_for(
        &g,
        "10.1.2.3".parse().unwrap(),
        &|_| true,
        &mut rng,
        usize::MAX,
        &mut out,
    );
    assert_eq!(out[..], [4, 5, 0, 1]);
    out.clear();
    order_for(
        &g,
        "10.1.2.3".parse().unwrap(),
        &|_| true,
        &mut rng,
        3,
        &mut out,
    );
    assert_eq!(out[..], [4, 5, 0]);
}

#[test]
fn empty_datacenters_pass_traffic_on() {
    let mut g = pool();
    g.datacenters[2].endpoints.clear();
    g.datacenters[2].inner = Policy::RoundRobin(RoundRobin::new(0));
    let mut out = Order::new();
    let mut rng = fastrand::Rng::with_seed(1);
    order_for(
        &g,
        "10.1.2.3".parse().unwrap(),
        &|_| true,
        &mut rng,
        usize::MAX,
        &mut out,
    );
    assert_eq!(out[..], [0, 1]);
}

fn at(lat: f64, lon: f64, continent: &str, country: &str, sub: Option<&str>) -> Location {
    Location {
        latitude: lat,
        longitude: lon,
        continent: Some(continent.into()),
        country: Some(country.into()),
        subdivision: sub.map(Into::into),
        centroid: false,
    }
}

#[test]
fn distance_ranking() {
    let g = pool();
    // (client, expected order) — one line a case.
    let cases = [
        (at(40.7, -74.0, "NA", "US", None), [0, 1, 2]), // New York
        (at(51.5, -0.1, "EU", "GB", None), [1, 0, 2]),  // London
        (at(35.7, 139.8, "AS", "JP", None), [2, 1, 0]), // Tokyo
        (at(-33.9, 151.2, "OC", "AU", None), [2, 0, 1]), // Sydney
        (at(-23.5, -46.6, "SA", "BR", None), [0, 1, 2]), // São Paulo
    ];
    for (client, want) in cases {
        let d = g.rank(&client);
        assert_eq!(d.order(), want, "{client:?} {d:?}");
        assert_eq!(d.reason, Reason::Distance);
    }
}

#[test]
fn bias_moves_the_boundary() {
    let mut g = pool();
    // Reykjavik is nearer Frankfurt (2,400 km) than Ashburn (4,600 km)...
    let reykjavik = at(64.1, -21.9, "EU", "IS", None);
    assert_eq!(g.rank(&reykjavik).order()[0], 1);
    // ...until us-east draws clients from 2,500 km farther.
    g.datacenters[0].bias_km = 2500.0;
    assert_eq!(g.rank(&reykjavik).order()[0], 0);
    // A negative bias pushes clients away.
    g.datacenters[0].bias_km = -9000.0;
    assert_eq!(g.rank(&at(40.7, -74.0, "NA", "US", None)).order()[0], 1);
}

#[test]
fn map_precedence_subdivision_country_continent() {
    let mut g = pool();
    g.map.continent.insert("NA".into(), vec![2]);
    g.map.country.insert("US".into(), vec![1]);
    g.map.subdivision.insert("US-CA".into(), vec![0, 2]);
    let d = g.rank(&at(37.4, -122.1, "NA", "US", Some("US-CA")));
    assert_eq!(d.order(), [0, 2, 1]);
    assert_eq!(d.reason, Reason::Map(Code::from("US-CA")));
    let d = g.rank(&at(40.7, -74.0, "NA", "US", Some("US-NY")));
    assert_eq!((d.order()[0], d.reason), (1, Reason::Map(Code::from("US"))));
    let d = g.rank(&at(45.5, -73.6, "NA", "CA", None));
    assert_eq!((d.order()[0], d.reason), (2, Reason::Map(Code::from("NA"))));
    // No key matches: distance, unless the map has a default.
    let london = at(51.5, -0.1, "EU", "GB", None);
    assert_eq!(g.rank(&london).reason, Reason::Distance);
    g.map.default = Some(vec![2]);
    assert_eq!(g.rank(&london).order(), [2, 1, 0]);
}

#[test]
fn dead_datacenters_pass_traffic_to_the_next_nearest() {
    let g = pool();
    let mut out = Order::new();
    let mut rng = fastrand::Rng::with_seed(1);
    // ap-southeast (endpoints 4, 5) is all down: the next in order answers.
    order_for(
        &g,
        "10.1.2.3".parse().unwrap(),
        &|e| e < 4,
        &mut rng,
        usize::MAX,
        &mut out,
    );
    assert_eq!(out[..], [0, 1]);
}

#[test]
fn cached_rankings_are_the_decisions() {
    let db = GeoDb::open(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/geoip/meridian-test.mmdb"
    )))
    .unwrap();
    let mut geo = pool();
    geo.nets.clear();
    geo.datacenters[1].bias_km = 3000.0;
    let networks = include_str!("../../../geoip/networks.csv");
    let mut clients: Vec<IpAddr> = networks
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['/', ',']).next()?.parse().ok())
        .collect();
    clients.extend(
        ["192.0.2.1", "2001:db8::1", "::ffff:8.8.8.8"].map(|a| a.parse::<IpAddr>().unwrap()),
    );
    // Twice: the second round answers from the cache.
    for _ in 0..2 {
        for &client in &clients {
            let d = geo.explain(client, Some(&db));
            let (order, len, scope) = decide_order(&geo, client, Some(&db));
            assert_eq!(&order[..len], d.order(), "{client}");
            assert_eq!(scope, d.scope, "{client}");
        }
    }
}

/// The real database when `.ci/run` has fetched it, else the bundled test database.
fn largest_database() -> GeoDb {
    let real = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/geoip/real/dbip-city-lite.mmdb"
    );
    let test = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/meridian-test.mmdb");
    let path = [real, test]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    GeoDb::open(std::path::Path::new(path)).unwrap()
}

#[test]
fn steering_tables_answer_as_the_database_walk_does() {
    let db = largest_database();
    // Two rankings (the second draws Europe's clients farther), built in one walk; a
    // third pool ranking like the first shares its table.
    let biased = || {
        let mut g = pool();
        g.datacenters[1].bias_km = 2000.0;
        g.map.country.insert("JP".into(), vec![0]);
        g
    };
    let tables = [pool(), biased(), pool()];
    Geo::prepare_all(tables.iter(), &db);
    let loaded = tables.each_ref().map(|t| t.steering.get().unwrap());
    assert!(std::sync::Arc::ptr_eq(&loaded[0], &loaded[2]));
    assert!(!std::sync::Arc::ptr_eq(&loaded[0], &loaded[1]));
    for (walk, table) in [(pool(), &tables[0]), (biased(), &tables[1])] {
        agrees_with_walk(&db, &walk, table);
    }
}

fn agrees_with_walk(db: &GeoDb, walk: &Geo, table: &Geo) {
    let mut rng = fastrand::Rng::with_seed(7);
    let random_client = |rng: &mut fastrand::Rng| -> IpAddr {
        match rng.u8(..7) {
            0 => IpAddr::V6(rng.u128(..).into()),
            // IPv4-compatible ::/96, which the tables leave to the tree.
            6 => IpAddr::V6(rng.u128(..1 << 32).into()),
            1 => IpAddr::V6(((0x2000u128 << 112) | rng.u128(..1 << 125)).into()),
            // 6to4 and Teredo, which databases alias to the IPv4 addresses inside.
            2 => IpAddr::V6(((0x2002u128 << 112) | rng.u128(..1 << 112)).into()),
            3 => IpAddr::V6(((0x2001_0000u128 << 96) | rng.u128(..1 << 96)).into()),
            _ => IpAddr::V4(rng.u32(..).into()),
        }
    };
    let mut covered = 0;
    for _ in 0..20_000 {
        let client = random_client(&mut rng);
        let (want, want_len, _) = decide_order(walk, client, Some(db));
        let (got, len, scope) = decide_order(table, client, Some(db));
        assert_eq!(&got[..len], &want[..want_len], "{client}");
        // The scope promises the same order to every client in it: try a few.
        let mut probe = [0u16; MAX_DATACENTERS];
        if table.steered(client, db, &mut probe).is_none() {
            continue;
        }
        covered += 1;
        let block = IpNet::new(client, scope).unwrap().trunc();
        for _ in 0..4 {
            let inside = match (block.network(), block.hostmask()) {
                (IpAddr::V4(n), IpAddr::V4(m)) => {
                    IpAddr::V4((u32::from(n) | (rng.u32(..) & u32::from(m))).into())
                }
                (IpAddr::V6(n), IpAddr::V6(m)) => {
                    IpAddr::V6((u128::from(n) | (rng.u128(..) & u128::from(m))).into())
                }
                _ => unreachable!(),
            };
            let (other, other_len, _) = decide_order(walk, inside, Some(db));
            assert_eq!(
                &other[..other_len],
                &want[..want_len],
                "{inside} in {block}"
            );
        }
    }
    assert!(covered > 10_000, "{covered}");
    if db.path().to_string_lossy().contains("dbip") {
        // DB-IP aliases 6to4 and Teredo: the table answers them through its IPv4 runs.
        for aliased in ["2002:808:808::1", "2001:0:808:808::1"] {
            let mut order = [0u16; MAX_DATACENTERS];
            let found = table.steered(aliased.parse().unwrap(), db, &mut order);
            assert!(found.is_some_and(|(_, p)| p > 16), "{aliased}: {found:?}");
        }
    }
}

#[test]
fn common_prefixes() {
    let a = "10.1.2.3".parse().unwrap();
    assert_eq!(common_prefix(a, "10.1.2.3".parse().unwrap()), Some(32));
    assert_eq!(common_prefix(a, "10.129.0.0".parse().unwrap()), Some(8));
    assert_eq!(common_prefix(a, "::1".parse().unwrap()), None);
}
