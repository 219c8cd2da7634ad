//! Failover sets: which tier answers, given which tiers have a live endpoint, carried from one
//! snapshot to the next.

use std::collections::HashMap;

/// The tier a failover set answers from, given which tiers have a live endpoint.
/// Preemptive: the first live tier. Non-preemptive: the tier that took over keeps serving
/// while it has a live endpoint, so a recovered primary does not cause a second switch-over.
pub fn active_tier(previous: Option<u16>, preempt: bool, live: &[bool]) -> u16 {
    let first = live.iter().position(|&l| l).unwrap_or(0) as u16;
    match previous {
        Some(p) if !preempt && live.get(p as usize) == Some(&true) => p,
        _ => first,
    }
}

/// The active tier of every failover set of a new snapshot: `sets` gives each set's id, whether
/// it preempts and which of its tiers are live; `previous` the (id, tier) of the snapshot
/// being replaced. A switch-over is logged.
pub fn active_tiers<'a>(
    previous: impl Iterator<Item = (&'a str, u16)>,
    sets: impl Iterator<Item = (&'a str, bool, Vec<bool>)>,
) -> Vec<u16> {
    let previous: HashMap<&str, u16> = previous.collect();
    sets.map(|(id, preempt, live)| {
        let before = previous.get(id).copied();
        let now = active_tier(before, preempt, &live);
        if before.is_some_and(|b| b != now) {
            tracing::warn!("health: failover {id} now answers from tier {now}");
        }
        now
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_tiers() {
        // Preemptive: back to the primary as soon as it is live.
        assert_eq!(active_tier(Some(1), true, &[true, true]), 0);
        // Non-preemptive: the secondary keeps serving while it lives...
        assert_eq!(active_tier(Some(1), false, &[true, true]), 1);
        // ...and hands back only when it fails.
        assert_eq!(active_tier(Some(1), false, &[true, false]), 0);
        assert_eq!(active_tier(None, false, &[false, true]), 1);
        assert_eq!(active_tier(Some(0), false, &[false, false]), 0);
    }
}
