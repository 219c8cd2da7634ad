//! One zone's changes through one instance of a set, committed to etcd together (group
//! commit): each change is worked out by its own caller, in turn, on the text the changes
//! before it left (taken, in flight or committed, served or not yet), and joins the open batch;
//! whoever finds no batch in flight writes the open one in one conditional transaction, and
//! every change in it is acknowledged by that commit. A batch that loses a race with another
//! instance fails its changes and the batch built on it; they catch up and are worked out
//! again on the new state (where `If-Match` then refuses them, they are refused).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cluster::{Cluster, unavailable};
use super::{Control, UpdateError};
use crate::store::Doc;
use crate::store::etcd::Written;
use crate::zone::Name;

/// A change that keeps losing races is given up after this long.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Outcomes kept for callers still to read theirs.
const OUTCOMES: usize = 64;

/// One zone's writes on this instance.
#[derive(Debug, Default)]
pub struct ZoneWrites {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The text this instance last committed and the revision etcd gave it, until served.
    committed: Option<(Option<String>, i64)>,
    /// The batch being written: its text.
    in_flight: Option<Option<String>>,
    /// The changes taken and not yet written.
    open: Option<Open>,
    /// The id the next batch gets.
    next: u64,
    /// What became of the last batches.
    outcomes: VecDeque<(u64, Outcome)>,
}

#[derive(Debug)]
struct Open {
    id: u64,
    /// The text after its changes.
    text: Option<String>,
    /// The revision it was worked out on (`None`: the batch in flight's, once committed).
    base: Option<i64>,
}

#[derive(Debug, Clone)]
enum Outcome {
    At(i64),
    /// Lost to another instance's write; etcd is at this revision.
    Conflict(i64),
    Failed(String),
    /// Sent, and no answer came back: write `0` may have committed.
    Unknown(String),
}

impl State {
    fn outcome(&self, id: u64) -> Option<Outcome> {
        let found = self.outcomes.iter().find(|(i, _)| *i == id);
        found.map(|(_, o)| o.clone())
    }

    fn record(&mut self, id: u64, outcome: Outcome) {
        if self.outcomes.len() == OUTCOMES {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((id, outcome));
    }
}

impl Control {
    /// [`Control::update_zone`] in a set.
    pub(super) fn update_shared<E: From<UpdateError>>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        change: &mut dyn FnMut(Option<Doc>) -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        cluster.ensure_connected()?;
        let origin = origin.to_lowercase();
        let writes = cluster.writes(&origin);
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let mut state = lock(&writes.state);
            let (current, base) = self.latest(cluster, &origin, &mut state)?;
            let before = current.as_ref().map(|d| d.text.clone());
            let next = match change(current) {
                Ok(next) => next,
                // A refusal (404, 412, 422) is decided on etcd's latest state, not on a copy
                // that has yet to apply a change committed through another instance.
                Err(refused) => {
                    let idle = state.open.is_none() && state.in_flight.is_none();
                    let key = cluster.keys.zone(&origin);
                    let newer = match (idle, base) {
                        (true, Some(base)) => cluster
                            .block_on(cluster.etcd.revision_of(&key))?
                            .filter(|&at| at > base),
                        _ => None,
                    };
                    let Some(newer) = newer.filter(|_| Instant::now() < deadline) else {
                        return Err(refused);
                    };
                    drop(state);
                    cluster.wait_applied(newer);
                    continue;
                }
            };
            if next == before && state.open.is_none() && state.in_flight.is_none() {
                return Ok(next);
            }
            let registered = self.store.registered(&origin);
            self.store
                .load_one(&origin, next.as_deref(), &registered)
                .map_err(UpdateError::from)?;
            let id = match &mut state.open {
                Some(open) => {
                    open.text = next.clone();
                    open.id
                }
                None => {
                    let id = state.next;
                    state.next += 1;
                    let text = next.clone();
                    state.open = Some(Open { id, text, base });
                    id
                }
            };
            let (state, outcome) = self.await_batch(cluster, &origin, &writes, state, id);
            drop(state);
            match outcome {
                Outcome::At(revision) => {
                    if !cluster.wait_applied(revision) {
                        tracing::warn!(
                            "{origin}: committed at revision {revision}, not yet served here"
                        );
                    }
                    return Ok(next);
                }
                Outcome::Conflict(now) => {
                    if Instant::now() > deadline {
                        let message =
                            format!("{origin} kept changing under this change; try again");
                        return Err(unavailable(message).into());
                    }
                    // Another instance changed the zone first: serve what it did, try again.
                    cluster.wait_applied(now);
                    std::thread::sleep(Duration::from_micros(fastrand::u64(0..1000)));
                }
                Outcome::Failed(message) => return Err(unavailable(message).into()),
                Outcome::Unknown(id) => return Err(UpdateError::OutcomeUnknown(id).into()),
            }
        }
    }

    /// Waits for batch `id`'s outcome, writing it when no batch is in flight.
    fn await_batch<'a>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        writes: &'a ZoneWrites,
        mut state: MutexGuard<'a, State>,
        id: u64,
    ) -> (MutexGuard<'a, State>, Outcome) {
        loop {
            if let Some(outcome) = state.outcome(id) {
                return (state, outcome);
            }
            let mine = state.open.as_ref().is_some_and(|o| o.id == id);
            if !mine || state.in_flight.is_some() {
                state = writes.done.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let open = state.open.take().expect("mine");
            let base = match open.base {
                Some(base) => base,
                None => state.committed.as_ref().map_or(0, |(_, r)| *r),
            };
            state.in_flight = Some(open.text.clone());
            drop(state);
            let key = cluster.keys.zone(origin);
            let value = open.text.as_deref().map(str::as_bytes);
            let (_, marker) = cluster.new_write();
            let marker = Some(cluster.marker(&marker));
            let written = cluster.block_on(cluster.etcd.write_if(&key, value, base, 0, marker));
            state = lock(&writes.state);
            state.in_flight = None;
            let outcome = match written {
                Ok(Written::At(revision)) => {
                    state.committed = Some((open.text, revision));
                    Outcome::At(revision)
                }
                Ok(Written::Conflict(now)) => Outcome::Conflict(now),
                Err(UpdateError::OutcomeUnknown(id)) => Outcome::Unknown(id),
                Err(error) => Outcome::Failed(error.to_string()),
            };
            if !matches!(outcome, Outcome::At(_)) {
                // The batch taken meanwhile was worked out on this one's text, and not sent.
                state.committed = None;
                if let Some(next) = state.open.take() {
                    let theirs = match &outcome {
                        Outcome::Unknown(id) => Outcome::Failed(format!(
                            "not sent: it followed write {id}, whose outcome is unknown"
                        )),
                        other => other.clone(),
                    };
                    state.record(next.id, theirs);
                }
            }
            state.record(id, outcome);
            writes.done.notify_all();
        }
    }

    /// Zone `origin`'s latest document as this instance knows it — after the changes taken or
    /// in flight, or its last commit if the watch has not served it yet, else what it serves —
    /// and the revision it builds on (`None`: the batch in flight's).
    fn latest(
        &self,
        cluster: &Cluster,
        origin: &Name,
        state: &mut State,
    ) -> Result<(Option<Doc>, Option<i64>), UpdateError> {
        let doc = |text: &Option<String>| {
            text.as_ref().map(|text| Doc {
                etag: crate::store::etag(text),
                text: text.clone(),
            })
        };
        if let Some(open) = &state.open {
            return Ok((doc(&open.text), open.base));
        }
        if let Some(text) = &state.in_flight {
            return Ok((doc(text), None));
        }
        let _writer = self.writer();
        let served = cluster.zone_revision(origin);
        if let Some((text, revision)) = state.committed.as_ref().filter(|(_, r)| *r > served) {
            return Ok((doc(text), Some(*revision)));
        }
        state.committed = None;
        Ok((self.store.read(origin)?, Some(served)))
    }
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
