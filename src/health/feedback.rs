//! Feedback: what is measured of the endpoints of adaptive sets — probe response times, loads
//! they report, when they came (back) into service — turned into the [`Feedback`] the policies
//! read from a snapshot's health view. The writer path recomputes it on every publish and on a
//! one-second tick (`control`); the query path only reads the result.
//!
//! - **Latency weights**: an endpoint's share is the fastest response time of its group over
//!   its own (smoothed by an EWMA in the probe records), at least `min_share`. A share moves
//!   only when the new value is more than [`HYSTERESIS`] away from the published one, so that
//!   jitter does not flap the answers.
//! - **Slow start**: an endpoint added to a served zone, or probed back up, ramps its share
//!   linearly from [`RAMP_FLOOR`] to 1 over `slow_start`. Endpoints served at start-up do not.
//! - **Loads**: the last load an address reported, while younger than `load_ttl`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Feedback, Status};

/// A share moves only by more than this fraction of the published one.
pub const HYSTERESIS: f32 = 0.25;

/// The share a slow-starting endpoint begins at (not 0: rendezvous and weighted draws need a
/// weight).
pub const RAMP_FLOOR: f32 = 0.01;

/// How one group of endpoints adapts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Adapt {
    /// Latency weights, with the least share a slow endpoint keeps.
    pub min_share: Option<f32>,
    pub slow_start: Option<Duration>,
    /// Loads are read (least_load), each for this long.
    pub load_ttl: Option<Duration>,
}

impl Adapt {
    pub fn any(&self) -> bool {
        self.min_share.is_some() || self.slow_start.is_some() || self.load_ttl.is_some()
    }
}

/// One endpoint of an adaptive group.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub address: IpAddr,
    /// Its probe's health slot, where it is probed.
    pub probe: Option<u32>,
}

/// Endpoints that adapt together (a flat pool's set, or one datacenter of a geo pool): the
/// fastest of them sets the others' latency shares. Their feedback slots are consecutive.
#[derive(Debug, Clone)]
pub struct Group {
    /// `zone/pool/family[/datacenter]`: keeps the hysteresis across reloads.
    pub id: String,
    /// The feedback slot of the first endpoint.
    pub first: u32,
    pub endpoints: Vec<Tracked>,
    pub adapt: Adapt,
}

/// What a publish reads of one zone's probes: by the zone's probe slot.
#[derive(Clone, Copy)]
pub struct Measured<'a> {
    pub status: &'a [Status],
    /// Smoothed response times, in seconds.
    pub rtt: &'a [Option<f64>],
}

/// One zone's part of a computation: its adaptive groups, its number of feedback slots, and
/// what its probes measured.
pub struct ZoneInput<'a> {
    pub groups: &'a [Group],
    pub slots: usize,
    pub measured: Measured<'a>,
}

/// What is known between snapshots.
#[derive(Debug, Default)]
pub struct FeedbackState(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    loads: HashMap<IpAddr, (f32, Instant)>,
    /// Where an address's slow start began; `None`: in service since before it mattered.
    ramp_from: HashMap<IpAddr, Option<Instant>>,
    /// The published latency share by (group id, address).
    shares: HashMap<(String, IpAddr), f32>,
    /// Whether endpoints seen from now on are new (not the start-up load).
    started: bool,
}

impl FeedbackState {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a load `address` reported.
    pub fn report_load(&self, address: IpAddr, load: f32, now: Instant) {
        self.lock().loads.insert(address, (load, now));
    }

    /// A probe saw `address` come back up: its slow start begins.
    pub fn recovered(&self, address: IpAddr, now: Instant) {
        self.lock().ramp_from.insert(address, Some(now));
    }

    /// The feedback of every slot of every zone at `now`, by zone. Addresses served for the
    /// first time since start-up begin their slow start; those no longer served are forgotten.
    pub fn compute(&self, zones: &[ZoneInput<'_>], now: Instant) -> Vec<Vec<Feedback>> {
        let mut state = self.lock();
        let state = &mut *state;
        let started = std::mem::replace(&mut state.started, true);
        let groups = || zones.iter().flat_map(|z| z.groups);
        let mut served: HashMap<IpAddr, Option<Instant>> = HashMap::new();
        for t in groups().flat_map(|g| &g.endpoints) {
            let from = state
                .ramp_from
                .get(&t.address)
                .copied()
                .unwrap_or(started.then_some(now));
            served.insert(t.address, from);
        }
        state.ramp_from = served;
        state
            .shares
            .retain(|(id, _), _| groups().any(|g| &g.id == id));
        let out = zones
            .iter()
            .map(|zone| {
                let mut out = vec![Feedback::default(); zone.slots];
                for group in zone.groups {
                    state.fill(group, &zone.measured, now, &mut out);
                }
                out
            })
            .collect();
        let oldest = groups()
            .filter_map(|g| g.adapt.load_ttl)
            .max()
            .unwrap_or_default();
        state
            .loads
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= oldest);
        out
    }
}

impl State {
    /// The feedback slots of `group` in `out`.
    fn fill(&mut self, group: &Group, measured: &Measured<'_>, now: Instant, out: &mut [Feedback]) {
        let latency = group
            .adapt
            .min_share
            .map(|min| latency_shares(group, min, measured, &mut self.shares));
        for (i, t) in group.endpoints.iter().enumerate() {
            let slot = &mut out[group.first as usize + i];
            if let Some(window) = group.adapt.slow_start
                && let Some(Some(from)) = self.ramp_from.get(&t.address)
            {
                slot.ramp = ramp(now.saturating_duration_since(*from), window);
            }
            slot.share = latency.as_ref().map_or(1.0, |l| l[i]) * slot.ramp;
            slot.load = group.adapt.load_ttl.and_then(|ttl| {
                let &(load, at) = self.loads.get(&t.address)?;
                (now.saturating_duration_since(at) <= ttl).then_some(load)
            });
        }
    }
}

/// How far into its slow start an endpoint `elapsed` into it is: a share in
/// [`RAMP_FLOOR`, 1].
pub fn ramp(elapsed: Duration, window: Duration) -> f32 {
    if window.is_zero() {
        return 1.0;
    }
    (elapsed.as_secs_f32() / window.as_secs_f32()).clamp(RAMP_FLOOR, 1.0)
}

/// Each endpoint's latency share in `group`, with the hysteresis against the published ones.
fn latency_shares(
    group: &Group,
    min: f32,
    measured: &Measured<'_>,
    published: &mut HashMap<(String, IpAddr), f32>,
) -> Vec<f32> {
    let rtt = |t: &Tracked| {
        let slot = t.probe? as usize;
        let up = measured.status.get(slot).copied() != Some(Status::Down);
        measured.rtt.get(slot).copied().flatten().filter(|_| up)
    };
    let fastest = group
        .endpoints
        .iter()
        .filter_map(rtt)
        .fold(f64::INFINITY, f64::min);
    group
        .endpoints
        .iter()
        .map(|t| {
            let raw = match rtt(t) {
                Some(own) if own > 0.0 && fastest.is_finite() => {
                    ((fastest / own) as f32).clamp(min, 1.0)
                }
                _ => 1.0,
            };
            let key = (group.id.clone(), t.address);
            let share = match published.get(&key) {
                Some(&old) if (raw - old).abs() <= HYSTERESIS * old => old,
                _ => raw,
            };
            published.insert(key, share);
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(adapt: Adapt) -> Group {
        Group {
            id: "t./p/A".into(),
            first: 0,
            endpoints: (0..2)
                .map(|i| Tracked {
                    address: IpAddr::from([192, 0, 2, i + 1]),
                    probe: Some(u32::from(i)),
                })
                .collect(),
            adapt,
        }
    }

    /// One zone of one group of two endpoints.
    fn compute(
        state: &FeedbackState,
        g: &Group,
        measured: Measured<'_>,
        now: Instant,
    ) -> Vec<Feedback> {
        let zone = ZoneInput {
            groups: std::slice::from_ref(g),
            slots: 2,
            measured,
        };
        state.compute(&[zone], now).remove(0)
    }

    fn shares(state: &FeedbackState, g: &Group, rtt: [f64; 2], now: Instant) -> Vec<f32> {
        let measured = Measured {
            status: &[Status::Up, Status::Up],
            rtt: &[Some(rtt[0]), Some(rtt[1])],
        };
        compute(state, g, measured, now)
            .iter()
            .map(|f| f.share)
            .collect()
    }

    #[test]
    fn latency_shares_follow_the_fastest_and_hold_through_jitter() {
        let g = group(Adapt {
            min_share: Some(0.05),
            ..Adapt::default()
        });
        let state = FeedbackState::default();
        let now = Instant::now();
        let first = shares(&state, &g, [0.005, 0.050], now);
        assert_eq!(first, [1.0, 0.1]);
        // Probes that jitter ±20 %, smoothed as the probe records smooth them.
        let mut rng = fastrand::Rng::with_seed(9);
        let mut smoothed = [0.005, 0.050];
        for _ in 0..300 {
            for (s, base) in smoothed.iter_mut().zip([0.005, 0.050]) {
                *s = super::super::records::smooth(Some(*s), base * (0.8 + 0.4 * rng.f64()));
            }
            assert_eq!(shares(&state, &g, smoothed, now), first, "{smoothed:?}");
        }
        // A real change moves it.
        assert_eq!(shares(&state, &g, [0.005, 0.010], now), [1.0, 0.5]);
        // The floor holds.
        assert_eq!(shares(&state, &g, [0.001, 0.5], now), [1.0, 0.05]);
    }

    #[test]
    fn slow_start_ramps_new_endpoints_not_the_start_up_ones() {
        let mut g = group(Adapt {
            slow_start: Some(Duration::from_secs(60)),
            ..Adapt::default()
        });
        let state = FeedbackState::default();
        let t0 = Instant::now();
        assert_eq!(shares(&state, &g, [0.01, 0.01], t0), [1.0, 1.0]);
        // An endpoint added later ramps from the floor to 1 over the window.
        g.endpoints[1].address = IpAddr::from([192, 0, 2, 9]);
        let at = |s: u64| shares(&state, &g, [0.01, 0.01], t0 + Duration::from_secs(s))[1];
        let seen: Vec<f32> = [0, 15, 30, 45, 60, 90].iter().map(|&s| at(s)).collect();
        assert_eq!(seen[0], RAMP_FLOOR);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert!((seen[2] - 0.5).abs() < 0.01, "{seen:?}");
        assert_eq!(seen[4], 1.0);
        assert_eq!(seen[5], 1.0);
        // One probed back up starts over.
        state.recovered(g.endpoints[0].address, t0 + Duration::from_secs(100));
        assert!((at(130) - 1.0).abs() < 1e-6);
        let s = shares(&state, &g, [0.01, 0.01], t0 + Duration::from_secs(130));
        assert!((s[0] - 0.5).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn loads_expire_after_their_ttl() {
        let g = group(Adapt {
            load_ttl: Some(Duration::from_secs(30)),
            ..Adapt::default()
        });
        let state = FeedbackState::default();
        let t0 = Instant::now();
        state.report_load(g.endpoints[0].address, 17.0, t0);
        let measured = Measured {
            status: &[],
            rtt: &[],
        };
        let loads = |s: u64| -> Vec<Option<f32>> {
            let now = t0 + Duration::from_secs(s);
            compute(&state, &g, measured, now)
                .iter()
                .map(|f| f.load)
                .collect()
        };
        assert_eq!(loads(10), [Some(17.0), None]);
        assert_eq!(loads(31), [None, None]);
    }
}
