//! Waiting for durability without a thread: an async caller (a heartbeat) appends its record
//! on its own task and awaits the journal's syncer thread, which syncs whatever is waiting
//! (group commit again) and announces each sync's end. A renewal then costs two thread
//! switches, not the handful a blocking task and its own sync took.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Journal, Ticket};

/// How long the syncer lets records gather before it syncs them: heartbeats arriving a
/// thousand a second then share syncs, for a millisecond more on each one's wait.
const GATHER: Duration = Duration::from_millis(1);

impl Journal {
    /// Waits until the record ending at `ticket` is durable, like [`Journal::sync`], without
    /// blocking a thread: the syncer thread syncs it.
    pub async fn wait(self: Arc<Self>, ticket: Ticket) -> std::io::Result<()> {
        loop {
            let mut ended = self.sync_ended.subscribe();
            if let Some(done) = super::settled(&self.lock(), ticket) {
                return done;
            }
            self.kick.notify_one();
            if ended.changed().await.is_err() {
                return Err(std::io::Error::other("the journal is closed"));
            }
        }
    }

    /// Wakes everyone waiting for a sync, blocked or async.
    pub(super) fn announce(&self) {
        self.synced.notify_all();
        self.sync_ended.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Starts the syncer thread of `journal`: it syncs when an async waiter asks (or records wait
/// longer than a moment), and ends soon after the journal is dropped.
pub fn spawn(journal: &Arc<Journal>) -> std::io::Result<()> {
    let journal: Weak<Journal> = Arc::downgrade(journal);
    let run = move || {
        while let Some(journal) = journal.upgrade() {
            let waiting = {
                let state = journal.lock();
                let (state, _) = journal
                    .kick
                    .wait_timeout_while(state, Duration::from_millis(200), |s| {
                        s.durable >= s.appended || s.failed
                    })
                    .unwrap_or_else(|e| e.into_inner());
                state.durable < state.appended && !state.failed
            };
            if !waiting {
                continue;
            }
            std::thread::sleep(GATHER);
            let ticket = {
                let state = journal.lock();
                Ticket {
                    epoch: state.epoch,
                    end: state.appended,
                    recoveries: state.recoveries,
                }
            };
            // A failure is the waiters' to report.
            let _ = journal.sync(ticket);
        }
    };
    std::thread::Builder::new()
        .name("journal-sync".into())
        .spawn(run)
        .map(drop)
}
