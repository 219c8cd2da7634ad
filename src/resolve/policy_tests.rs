//! The sticky policy through the whole answer path: client networks keep their endpoint, a
//! removed endpoint moves only its own networks, weights split networks, the ECS scope is the
//! hashing prefix.

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, RecordType};

use super::resolve;
use crate::snapshot::Snapshot;

fn snapshot(endpoints: &str) -> Snapshot {
    let zone = format!(
        "{}[pools.p]\npolicy = \"sticky\"\nmax_answers = 1\nendpoints = [{endpoints}]\n",
        crate::fixture::ZONE_HEAD
    );
    crate::fixture::snapshot(&[("example.test.", &zone)], crate::fixture::Geo::None)
}

/// The first address answered to `client`, and the answer's ECS scope.
fn first(snapshot: &Snapshot, client: IpAddr) -> (IpAddr, u8) {
    let name = Name::from_ascii("p.example.test.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let answer = resolve(snapshot, &name, RecordType::A, client, &mut rng);
    match &answer.answer_record(0).data {
        RData::A(a) => (a.0.into(), answer.ecs_scope),
        other => panic!("{other:?}"),
    }
}

/// 10,000 client addresses in distinct random /24 networks.
fn clients() -> Vec<IpAddr> {
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < 10_000 {
        let addr = rng.u32(..);
        if seen.insert(addr >> 8) {
            out.push(IpAddr::from(addr.to_be_bytes()));
        }
    }
    out
}

const FIVE: &str = r#""192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5""#;

#[test]
fn networks_keep_their_endpoint_with_the_prefix_as_scope() {
    let s = snapshot(FIVE);
    for client in clients() {
        let (leader, scope) = first(&s, client);
        assert_eq!(scope, 24);
        assert_eq!(first(&s, client).0, leader);
        // Another host of the same /24 gets the same endpoint.
        let IpAddr::V4(v4) = client else {
            unreachable!()
        };
        let neighbour = IpAddr::from((u32::from(v4) ^ 0x7f).to_be_bytes());
        assert_eq!(first(&s, neighbour).0, leader);
    }
}

#[test]
fn removing_one_of_five_moves_a_fifth_and_only_its_own() {
    let (five, four) = (snapshot(FIVE), snapshot(&FIVE[..FIVE.rfind(',').unwrap()]));
    let gone: IpAddr = "192.0.2.5".parse().unwrap();
    let clients = clients();
    let mut moved = 0;
    for &client in &clients {
        let (before, after) = (first(&five, client).0, first(&four, client).0);
        if before != after {
            assert_eq!(before, gone, "{client} moved off an endpoint that stayed");
            moved += 1;
        }
    }
    let share = f64::from(moved) / clients.len() as f64;
    assert!((share - 0.2).abs() <= 0.02, "{share}");
}

#[test]
fn weights_three_to_one_split_networks_75_25() {
    let s = snapshot(r#"{ address = "192.0.2.1", weight = 3 }, "192.0.2.2""#);
    let clients = clients();
    let heavy: IpAddr = "192.0.2.1".parse().unwrap();
    let led = clients.iter().filter(|&&c| first(&s, c).0 == heavy).count();
    let share = led as f64 / clients.len() as f64;
    assert!((share - 0.75).abs() <= 0.02, "{share}");
}
