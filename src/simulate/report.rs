//! Tallies the address ranges of a geo simulation into its report, and prints a report.

use std::collections::BTreeMap;
use std::fmt;

use super::{CountryMoves, GeoMoves, Move, Report};

/// The IPv4 address space.
const SPACE: f64 = (1u64 << 32) as f64;

/// (from, to) datacenter → a count.
type Pairs = BTreeMap<(String, String), u64>;

/// Ranges seen so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    networks: u64,
    moved_networks: u64,
    moved_addresses: u64,
    /// (from, to) → addresses.
    moves: Pairs,
    /// country → (networks, moved, (from, to) → networks).
    countries: BTreeMap<String, (u64, u64, Pairs)>,
}

impl Tally {
    /// One range of `addresses` (in the database network of `country`, if any) whose first
    /// datacenter goes `from` → `to`.
    pub fn add(&mut self, addresses: u64, country: Option<String>, from: &str, to: &str) {
        let moved = from != to;
        let key = || (from.to_owned(), to.to_owned());
        if moved {
            self.moved_addresses += addresses;
            *self.moves.entry(key()).or_default() += addresses;
        }
        let Some(country) = country else { return };
        self.networks += 1;
        let entry = self.countries.entry(country).or_default();
        entry.0 += 1;
        if moved {
            self.moved_networks += 1;
            entry.1 += 1;
            *entry.2.entry(key()).or_default() += 1;
        }
    }

    pub fn finish(self) -> GeoMoves {
        let mut moves: Vec<Move> = self
            .moves
            .into_iter()
            .map(|((from, to), addresses)| Move {
                from,
                to,
                addresses,
                share: addresses as f64 / SPACE,
            })
            .collect();
        moves.sort_by_key(|m| std::cmp::Reverse(m.addresses));
        let mut countries: Vec<CountryMoves> = self
            .countries
            .into_iter()
            .filter(|(_, (_, moved, _))| *moved > 0)
            .map(|(country, (networks, moved, pairs))| {
                let mut moves: Vec<(String, u64)> = pairs
                    .into_iter()
                    .map(|((from, to), n)| (format!("{from} -> {to}"), n))
                    .collect();
                moves.sort_by_key(|m| std::cmp::Reverse(m.1));
                CountryMoves {
                    country,
                    networks,
                    moved,
                    share: moved as f64 / networks as f64,
                    moves,
                }
            })
            .collect();
        countries.sort_by(|a, b| b.moved.cmp(&a.moved).then(a.country.cmp(&b.country)));
        GeoMoves {
            moved_addresses: self.moved_addresses,
            moved_share: self.moved_addresses as f64 / SPACE,
            networks: self.networks,
            moved_networks: self.moved_networks,
            moves,
            countries,
        }
    }
}

fn percent(share: f64) -> String {
    format!("{:.2} %", share * 100.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pools {
            let policy = |p: Option<&'static str>| p.unwrap_or("none");
            writeln!(
                f,
                "{} {} ({} -> {})",
                p.pool,
                p.family,
                policy(p.before),
                policy(p.after)
            )?;
            let e = &p.endpoints;
            let geo_moves = p.geo.as_ref().is_some_and(|g| g.moved_addresses > 0);
            if !geo_moves && e.clients_moved.unwrap_or(0.0) == 0.0 && e.traffic_moved < 0.005 {
                writeln!(f, "  nothing moves")?;
                continue;
            }
            if let Some(g) = &p.geo {
                writeln!(
                    f,
                    "  IPv4 space moving: {} ({} addresses); networks: {} of {}",
                    percent(g.moved_share),
                    g.moved_addresses,
                    g.moved_networks,
                    g.networks
                )?;
                for m in &g.moves {
                    writeln!(f, "    {} -> {}: {}", m.from, m.to, percent(m.share))?;
                }
                for c in &g.countries {
                    let moves: Vec<String> =
                        c.moves.iter().map(|(m, n)| format!("{m} ({n})")).collect();
                    writeln!(
                        f,
                        "    {}: {} of {} networks ({}): {}",
                        c.country,
                        c.moved,
                        c.networks,
                        percent(c.share),
                        moves.join(", ")
                    )?;
                }
            }
            if let Some(moved) = e.clients_moved {
                writeln!(
                    f,
                    "  clients whose first endpoint changes: {}",
                    percent(moved)
                )?;
            }
            writeln!(
                f,
                "  answers that change endpoint: {} (first answers by endpoint, before -> after:)",
                percent(e.traffic_moved)
            )?;
            for s in &e.shares {
                writeln!(
                    f,
                    "    {:<40} {:>8} -> {:>8}",
                    s.address,
                    percent(s.before),
                    percent(s.after)
                )?;
            }
        }
        Ok(())
    }
}
