//! The writer path's feedback and timers: load reports, the adaptive sets' feedback
//! recomputed every second, and the journal compacted once changes pause.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Control;
use crate::health::feedback::{Measured, ZoneInput};
use crate::health::{self, Status};
use crate::zone::ZoneSet;

impl Control {
    /// Records the load an endpoint reported (through the API) and serves it at once.
    pub fn report_load(&self, address: std::net::IpAddr, load: f32) {
        let writer = self.writer();
        self.feedback
            .report_load(address, load, std::time::Instant::now());
        self.republish(&writer);
    }

    /// Recomputes the adaptive sets' feedback (slow starts ramp, loads expire, response times
    /// move) and publishes a new snapshot if it changed. Called every second.
    pub fn refresh_feedback(&self) {
        let writer = self.writer();
        let snapshot = self.current.load();
        if snapshot
            .zones
            .iter()
            .all(|z| z.slots.feedback_groups.is_empty())
        {
            return;
        }
        let statuses: Vec<&[Status]> = (0..snapshot.zones.len())
            .map(|i| snapshot.health.zone(i).status.as_slice())
            .collect();
        let feedback = self.feedback_for(&snapshot.zones, &statuses);
        let changed = feedback
            .iter()
            .enumerate()
            .any(|(i, f)| *f != snapshot.health.zone(i).feedback);
        if changed {
            drop(snapshot);
            self.republish(&writer);
        }
    }

    /// The feedback of every zone's adaptive sets now, with its probe statuses `status`.
    pub(super) fn feedback_for(
        &self,
        zones: &ZoneSet,
        status: &[&[Status]],
    ) -> Vec<Vec<health::Feedback>> {
        let rtts: Vec<Vec<Option<f64>>> = zones
            .iter()
            .map(|z| match z.slots.feedback_groups.is_empty() {
                true => Vec::new(),
                false => self.probes.rtts(&z.slots.probes),
            })
            .collect();
        let inputs: Vec<ZoneInput<'_>> = zones
            .iter()
            .zip(status)
            .zip(&rtts)
            .map(|((zone, status), rtt)| ZoneInput {
                groups: &zone.slots.feedback_groups,
                slots: zone.slots.feedback_slots,
                measured: Measured { status, rtt },
            })
            .collect();
        self.feedback.compute(&inputs, std::time::Instant::now())
    }
}

/// The writer path's once-a-second work until `shutdown`: the adaptive sets' feedback is
/// refreshed (slow starts ramp, loads expire, response-time shares move between the events
/// that publish anyway), and once changes pause for a second the journal is compacted into
/// the zone files. At shutdown the journal is compacted.
pub async fn run_ticks(control: Arc<Control>, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = control.changes.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let changes = control.changes.load(Ordering::Relaxed);
                let idle = std::mem::replace(&mut seen, changes) == changes;
                let control = control.clone();
                // The writer lock may be held by a long reload: not on a runtime thread.
                let _ = tokio::task::spawn_blocking(move || {
                    control.refresh_feedback();
                    control.expire_registrations();
                    control.compact(idle);
                })
                .await;
            }
            _ = shutdown.cancelled() => break,
        }
    }
    let _ = tokio::task::spawn_blocking(move || control.compact(true)).await;
}
