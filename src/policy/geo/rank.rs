//! Ranking datacenters for a located client (`map` entries, then great-circle distance less
//! bias), and the full account of a decision that `meridian explain` shows.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Geo, MAX_DATACENTERS};
use crate::geo::{Code, GeoDb, Located, Location, chord_km, unit_vector};

/// What decided the order, for `explain` and the logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Net(IpNet),
    Map(Code),
    MapDefault,
    Distance,
    Unlocated,
}

/// A geo decision explained: the datacenter order (best first, all of them), the ECS scope,
/// why, and each datacenter's distance. The query path ranks with it too, where no steering
/// table or cached ranking answers.
#[derive(Debug, Clone)]
pub struct Ranking {
    pub(super) order: [u16; MAX_DATACENTERS],
    pub(super) len: usize,
    /// Effective distance (km, bias applied) per datacenter; NaN where not located.
    pub(super) distances: [f64; MAX_DATACENTERS],
    pub scope: u8,
    pub reason: Reason,
    pub located: Option<Located>,
}

impl Ranking {
    pub(super) fn new(reason: Reason) -> Self {
        Self {
            order: [0; MAX_DATACENTERS],
            len: 0,
            distances: [f64::NAN; MAX_DATACENTERS],
            scope: 0,
            reason,
            located: None,
        }
    }

    /// The datacenters, best first.
    pub fn order(&self) -> &[u16] {
        &self.order[..self.len]
    }

    /// Datacenter `i`'s effective distance, where the client was located.
    pub fn distance(&self, i: usize) -> Option<f64> {
        self.distances.get(i).copied().filter(|d| !d.is_nan())
    }

    /// `list`, then every other of the `n` datacenters in configured order.
    pub(super) fn fill(&mut self, list: &[u16], n: usize) {
        for &i in list {
            self.push(i);
        }
        for i in (0..n as u16).filter(|i| !list.contains(i)) {
            self.push(i);
        }
    }

    fn push(&mut self, i: u16) {
        self.order[self.len] = i;
        self.len += 1;
    }
}

impl Geo {
    /// Ranks the datacenters for `client`, with the reason and the distances: what `explain`
    /// shows. Its order and scope are [`Geo::decide`]'s (tested).
    pub fn explain(&self, client: IpAddr, db: Option<&GeoDb>) -> Ranking {
        let n = self.datacenters.len();
        if let Some((net, list)) = self.nets.iter().find(|(net, _)| net.contains(&client)) {
            let mut d = Ranking::new(Reason::Net(*net));
            d.fill(list, n);
            d.scope = self.scope(client, net.prefix_len());
            return d;
        }
        let located = db.map(|db| db.locate(client));
        // The scope: the steering table's run where it has one, else the database network.
        let mut scratch = [0u16; MAX_DATACENTERS];
        let base_prefix = match db.and_then(|db| self.steered(client, db, &mut scratch)) {
            Some((_, prefix)) => prefix,
            None => located.as_ref().map_or(0, |l| l.prefix),
        };
        let mut d = match located.as_ref().and_then(|l| l.location.as_ref()) {
            Some(location) => self.rank(location),
            None => {
                let mut d = Ranking::new(Reason::Unlocated);
                d.fill(&self.default, n);
                d
            }
        };
        d.scope = self.scope(client, base_prefix);
        d.located = located;
        d
    }

    /// Orders the datacenters for a located client: map entries (most specific first), else
    /// distance less bias. Listed datacenters come first; the rest follow by distance.
    pub fn rank(&self, location: &Location) -> Ranking {
        let n = self.datacenters.len();
        let here = unit_vector(location.latitude, location.longitude);
        let mapped = [
            (&location.subdivision, &self.map.subdivision),
            (&location.country, &self.map.country),
            (&location.continent, &self.map.continent),
        ]
        .into_iter()
        .find_map(|(code, map)| {
            let code = (*code)?;
            Some((code, map.get(code.as_str())?))
        });
        let (reason, listed): (Reason, &[u16]) = match (mapped, &self.map.default) {
            (Some((code, list)), _) => (Reason::Map(code), list),
            (None, Some(list)) => (Reason::MapDefault, list),
            (None, None) => (Reason::Distance, &[]),
        };
        let mut d = Ranking::new(reason);
        for (i, dc) in self.datacenters.iter().enumerate() {
            d.distances[i] = chord_km(&here, &dc.position) - dc.bias_km;
        }
        d.fill(listed, n);
        let first_rest = listed.len();
        let distances = d.distances;
        d.order[first_rest..d.len].sort_by(|&a, &b| {
            distances[a as usize]
                .partial_cmp(&distances[b as usize])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        d
    }
}
