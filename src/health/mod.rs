//! Endpoint health: what the prober found ([`Status`], [`ProbeRecords`] with the state file and
//! readiness), the hysteresis that turns probe results into states ([`Hysteresis`]), failover
//! tiers, and the frozen [`HealthView`] the query path reads. `reqwest`
//! is named only in this module (`check.rs`).

mod check;
pub mod feedback;
mod prober;
pub mod quorum;
mod records;
pub mod spec;
mod statefile;
mod tiers;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use check::failure_reason;
pub use prober::{ProbeSink, run_prober};
pub use records::{ProbeRecords, ProbeReport};
pub use spec::CheckSpec;
pub use tiers::{active_tier, active_tiers};

/// An operator's override of an endpoint's probed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Force {
    Up,
    Down,
}

/// One probe: an address and how it is checked. Pools sharing both share the probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub addr: IpAddr,
    pub check: Arc<CheckSpec>,
}

impl std::fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.check;
        let addr = match self.addr {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        match c.kind {
            spec::CheckKind::Tcp => write!(f, "tcp://{addr}:{}", c.port().unwrap_or(0)),
            spec::CheckKind::Http => {
                write!(f, "http://{addr}:{}{}", c.port().unwrap_or(80), c.path)
            }
            spec::CheckKind::Https => {
                write!(f, "https://{addr}:{}{}", c.port().unwrap_or(443), c.path)
            }
        }
    }
}

/// What is known of one probe, for the state file, logs and (later) the API.
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    pub status: Status,
    /// When `status` last changed.
    pub since: std::time::SystemTime,
    /// The last probe's outcome ("status 200", "connection refused"…), if any yet.
    pub last_result: Option<Result<String, String>>,
    pub last_latency: Option<std::time::Duration>,
    /// When the last probe finished.
    pub last_checked: Option<std::time::SystemTime>,
    /// Smoothed response time of the successful probes, in seconds.
    pub rtt: Option<f64>,
}

impl Default for ProbeRecord {
    fn default() -> Self {
        Self {
            status: Status::Unknown,
            since: std::time::SystemTime::now(),
            last_result: None,
            last_latency: None,
            last_checked: None,
            rtt: None,
        }
    }
}

/// An endpoint's probed state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Never probed yet: served (fail open) until the first round decides.
    #[default]
    Unknown,
    Up,
    Down,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        })
    }
}

/// Rise/fall hysteresis: `fall` failures in a row mark an endpoint down, `rise` successes in a
/// row mark it up, so a flapping backend does not flap the answers. The first result decides
/// an `unknown` endpoint at once, so the first round settles every state.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    pub status: Status,
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
}

impl Hysteresis {
    pub fn new(status: Status, rise: u32, fall: u32) -> Self {
        Self {
            status,
            rise,
            fall,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one probe result; returns the new status if it changed.
    pub fn observe(&mut self, ok: bool) -> Option<Status> {
        let next = if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            match self.status {
                Status::Unknown => Status::Up,
                Status::Down if self.successes >= self.rise => Status::Up,
                s => s,
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            match self.status {
                Status::Unknown => Status::Down,
                Status::Up if self.failures >= self.fall => Status::Down,
                s => s,
            }
        };
        (next != self.status).then(|| {
            self.status = next;
            next
        })
    }
}

/// What the query path needs to know about one endpoint, fixed when the zone is built.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub probe: Option<ProbeKey>,
    /// Index of `probe` in the [`HealthView`]; assigned across all zones.
    pub slot: Option<u32>,
    pub force: Option<Force>,
    pub drain: bool,
}

impl EndpointHealth {
    /// An endpoint with no check, not forced, not drained: always live.
    pub const PLAIN: Self = Self {
        probe: None,
        slot: None,
        force: None,
        drain: false,
    };

    /// Whether it is [`EndpointHealth::PLAIN`].
    pub fn is_plain(&self) -> bool {
        self.probe.is_none() && self.force.is_none() && !self.drain
    }

    /// The probed status, `unknown` when the endpoint has no check.
    pub fn status(&self, view: &HealthView) -> Status {
        self.slot
            .and_then(|s| view.status.get(s as usize).copied())
            .unwrap_or_default()
    }

    /// Whether the endpoint may be handed out: not drained, not forced down, and not probed
    /// down unless forced up.
    pub fn live(&self, view: &HealthView) -> bool {
        !self.drain
            && match self.force {
                Some(Force::Up) => true,
                Some(Force::Down) => false,
                None => self.status(view) != Status::Down,
            }
    }

    /// Whether a probe says it is down (for the degraded TTL).
    pub fn probed_down(&self, view: &HealthView) -> bool {
        self.force.is_none() && self.status(view) == Status::Down
    }
}

/// The health of every zone of a snapshot, in the zone set's order: each zone's view is
/// indexed by that zone's own slots (`zone::Slots`).
#[derive(Debug, Default)]
pub struct Health {
    pub zones: Vec<Arc<HealthView>>,
}

impl Health {
    /// Zone `i`'s view; an empty one (every endpoint unknown, tier 0) if it has none.
    pub fn zone(&self, i: usize) -> &HealthView {
        static EMPTY: HealthView = HealthView {
            status: Vec::new(),
            active_tier: Vec::new(),
            feedback: Vec::new(),
            version: 0,
        };
        self.zones.get(i).map_or(&EMPTY, |v| v)
    }
}

/// The frozen health of one zone that the query path reads, by the zone's slots.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    pub status: Vec<Status>,
    /// The tier each failover set answers from, by failover slot.
    pub active_tier: Vec<u16>,
    /// What is measured of the endpoints of adaptive sets (latency weights, slow start, least
    /// load), by feedback slot.
    pub feedback: Vec<Feedback>,
    /// Unique to this view's content (see [`HealthView::stamped`]): the memo keeps a zone's
    /// answers while its zone and view are the same.
    pub version: u64,
}

impl HealthView {
    /// The view with a version of its own.
    pub fn stamped(mut self) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.version = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Whether it says the same as `other`.
    pub fn same_as(&self, other: &HealthView) -> bool {
        self.status == other.status
            && self.active_tier == other.active_tier
            && self.feedback == other.feedback
    }
}

/// What the policies of an adaptive set read of one endpoint, besides whether it is live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    /// The share of its configured weight it has now, in (0, 1]: its response time against
    /// the fastest's (`weights = "latency"`) times its slow-start ramp.
    pub share: f32,
    /// Its last reported load (lower is better), unless older than the pool's `load_ttl`.
    pub load: Option<f32>,
    /// How far through its slow start it is, in (0, 1] (a factor of `share`; for `explain`).
    pub ramp: f32,
}

impl Default for Feedback {
    fn default() -> Self {
        Self {
            share: 1.0,
            load: None,
            ramp: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_thresholds() {
        let mut h = Hysteresis::new(Status::Up, 2, 3);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(Status::Down));
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(Status::Up));
    }

    #[test]
    fn flapping_faster_than_the_thresholds_changes_nothing() {
        let mut h = Hysteresis::new(Status::Up, 2, 3);
        for i in 0..50 {
            assert_eq!(h.observe(i % 3 != 0), None, "step {i}");
        }
        let mut h = Hysteresis::new(Status::Down, 2, 3);
        for i in 0..50 {
            assert_eq!(h.observe(i % 2 == 0), None, "step {i}");
        }
    }

    #[test]
    fn the_first_result_settles_unknown() {
        assert_eq!(
            Hysteresis::new(Status::Unknown, 2, 3).observe(false),
            Some(Status::Down)
        );
        assert_eq!(
            Hysteresis::new(Status::Unknown, 2, 3).observe(true),
            Some(Status::Up)
        );
    }
}
