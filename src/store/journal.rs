//! The write-ahead journal of zone changes: `zones/.journal`. Each acknowledged change is one
//! record appended to it and made durable before the acknowledgement, and changes that arrive
//! together share one `fdatasync` (group commit). The zone files lag behind it until a
//! compaction writes every changed zone's text to its file (atomically, as before) and empties
//! the journal. At start-up the journal is replayed over the zone files.
//!
//! Records (see `record`) are zones' new texts, edits of zones (see `change`) and changes to
//! the registry of endpoints registered through the API. A tail that is short or fails its
//! checksum (a crash in the middle of an append) is ignored with a warning and cut off: it was
//! never acknowledged. Damage with sound records after it (a bad disk, a stray write) costs
//! only the damaged bytes: the file as it was is copied aside, every sound record before and
//! after is applied, and the log names what was skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::change::ZoneEdit;
pub use super::entry::{Entry, digest};
use super::record::{self, Changes, Kept, Record};
use super::registry::{self, Registration, Registry};
use crate::zone::Name;

/// The journal's file name in the zones folder (hidden: the zone loader skips it).
pub const FILE: &str = ".journal";

/// Compact once the journal holds this many bytes.
const COMPACT_BYTES: u64 = 16 << 20;

/// A place in the journal: the end of an appended record, in the journal as it was between
/// two compactions (its epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
    end: u64,
    /// The recoveries from failed syncs before it: a ticket from before one was lost.
    recoveries: u64,
}

#[derive(Debug)]
pub struct Journal {
    /// The zones folder (the registry's file is there too).
    dir: PathBuf,
    path: PathBuf,
    state: Mutex<State>,
    /// Signalled when a sync ends.
    synced: Condvar,
    /// The same, for async waiters (see `syncer`).
    sync_ended: tokio::sync::watch::Sender<u64>,
    /// Signalled when an async waiter wants a sync.
    kick: Condvar,
    /// Held through a compaction: one at a time.
    compacting: Mutex<()>,
    /// The changes the journal misses (sequence numbers), lost to damage: found at start-up
    /// and kept until the journal is repaired (`meridian journal repair`).
    lost: Vec<std::ops::RangeInclusive<u64>>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Bytes appended so far; a ticket is an offset.
    appended: u64,
    /// Bytes known durable.
    durable: u64,
    /// A sync is running (its caller syncs for every record appended before it started).
    syncing: bool,
    /// A sync failed: the records after `durable` are lost, and every waiter for them fails.
    failed: bool,
    /// Compactions so far: a ticket of an earlier epoch is in the zone files.
    epoch: u64,
    /// Recoveries from failed syncs so far.
    recoveries: u64,
    /// The changes of each zone changed since the last compaction.
    latest: HashMap<Name, Entry>,
    /// The tags of compacted zones, with the digest of the text written: a zone's tag does not
    /// change when its changes move into its file (kept in the journal's first records).
    compacted: HashMap<Name, Kept>,
    /// Every registration: the registry file with the journal's changes applied.
    registry: Registry,
    /// The registry changed since the last compaction.
    registry_changed: bool,
    /// The sequence number of the next change appended.
    next_seq: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and replays it: the changes of each zone it
    /// holds, in the order written; `file` gives each one's file text now (the files have not
    /// been compacted into since). A torn tail is cut off.
    pub fn open(dir: &Path, file_text: impl Fn(&Name) -> Option<String>) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            // A new journal says where numbering starts: a lost first change is a gap too.
            bytes = record::encode(&Record::Next(1), None);
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        let replayed = record::replay(&bytes, Registry::load(dir)?);
        let mut good = replayed.good;
        if !replayed.skipped.is_empty() {
            good = keep_intact(&path, &mut file, &bytes, &replayed)?;
            bytes.truncate(0);
        }
        if replayed.skipped.is_empty() && !replayed.lost.is_empty() {
            tracing::error!(
                "journal {}: {}, to damage found earlier; run `meridian journal check`",
                path.display(),
                describe_lost(&replayed.lost)
            );
        }
        let latest = with_files(replayed.zones, &file_text, &replayed.kept);
        if good < bytes.len() {
            tracing::warn!(
                "journal {}: ignoring {} bytes of a torn or corrupt last record (never acknowledged)",
                path.display(),
                bytes.len() - good
            );
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            path,
            state: Mutex::new(State {
                file,
                appended: good as u64,
                durable: good as u64,
                syncing: false,
                failed: false,
                epoch: 0,
                recoveries: 0,
                latest,
                compacted: replayed.kept,
                registry_changed: replayed.registry_changed,
                registry: replayed.registry,
                next_seq: replayed.last_seq.map_or(1, |s| s + 1),
            }),
            synced: Condvar::new(),
            sync_ended: tokio::sync::watch::Sender::new(0),
            kick: Condvar::new(),
            compacting: Mutex::new(()),
            lost: replayed.lost,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes lost to damage (sequence numbers), if any: an edit after them that does not
    /// apply may have depended on one of them.
    pub fn lost(&self) -> &[std::ops::RangeInclusive<u64>] {
        &self.lost
    }

    /// The latest change of `origin`, if the journal has one.
    pub fn latest(&self, origin: &Name) -> Option<Entry> {
        self.lock().latest.get(origin).cloned()
    }

    /// Whether `origin`'s latest change left it a TOML document (`None`: no change journaled).
    pub fn has_text(&self, origin: &Name) -> Option<bool> {
        self.lock().latest.get(origin).map(|e| e.text.is_some())
    }

    /// Every zone the journal holds a change for, with its latest change.
    pub fn pending(&self) -> Vec<(Name, Entry)> {
        let state = self.lock();
        state
            .latest
            .iter()
            .map(|(o, e)| (o.clone(), e.clone()))
            .collect()
    }

    /// Drops `origin`'s changes (its file was edited by hand since; the file wins). Its records
    /// stay in the file until the next compaction, which must follow before a restart.
    pub fn forget(&self, origin: &Name) {
        self.lock().latest.remove(origin);
    }

    /// Appends a zone's new text (not yet durable: see [`Journal::sync`]); `file` is the zone
    /// file's text now, asked for the first change since a compaction. An error (a full disk)
    /// leaves the journal as it was.
    pub fn append(
        &self,
        origin: &Name,
        text: Option<&str>,
        file: impl FnOnce() -> Option<String>,
    ) -> std::io::Result<Ticket> {
        let mut state = self.lock();
        let record = Record::Zone(origin.clone(), text.map(str::to_owned));
        let (ticket, _) = self.write(&mut state, &record)?;
        let base = match state.latest.get(origin) {
            Some(entry) => entry.base,
            None => file().as_deref().map(digest),
        };
        let entry = Entry {
            text: text.map(str::to_owned),
            edits: Vec::new(),
            base,
            tag: digest(text.unwrap_or_default()),
        };
        state.latest.insert(origin.clone(), entry);
        Ok(ticket)
    }

    /// Appends an edit of a zone, like [`Journal::append`]: a record the size of the edit.
    pub fn append_edit(
        &self,
        origin: &Name,
        edit: &ZoneEdit,
        file: impl FnOnce() -> Option<String>,
    ) -> std::io::Result<Ticket> {
        let mut state = self.lock();
        let (ticket, sum) = self.write(
            &mut state,
            &Record::Edit(origin.clone(), Box::new(edit.clone())),
        )?;
        let kept = state.compacted.get(origin).copied();
        let entry = state
            .latest
            .entry(origin.clone())
            .or_insert_with(|| Entry::replayed(Changes::default(), file(), kept));
        entry.edits.push(edit.clone());
        entry.tag = super::entry::chain(&entry.tag, &sum);
        Ok(ticket)
    }

    /// Zone `origin`'s tag: its entry's, or else `file`'s digest (`None`: no TOML document)
    /// unless that is the text a compaction wrote, whose tag it keeps.
    pub fn tag(&self, origin: &Name, file: impl FnOnce() -> Option<String>) -> Option<[u8; 32]> {
        if let Some(entry) = self.lock().latest.get(origin) {
            return entry.text.as_ref().map(|_| entry.tag);
        }
        let now = digest(&file()?);
        match self.lock().compacted.get(origin) {
            Some((written, tag)) if *written == now => Some(*tag),
            _ => Some(now),
        }
    }

    /// Records that `origin`'s text with its first `applied` edits is `text` (worked out for a
    /// read), so that the next read starts from there.
    pub fn settle(&self, origin: &Name, text: Option<String>, applied: usize) {
        let mut state = self.lock();
        if let Some(entry) = state.latest.get_mut(origin)
            && entry.edits.len() >= applied
        {
            entry.edits.drain(..applied);
            entry.text = text;
        }
    }

    /// Appends a change to the registry (not yet durable: see [`Journal::sync`]).
    pub fn append_registry(&self, change: registry::Change) -> std::io::Result<Ticket> {
        let mut state = self.lock();
        let (ticket, _) = self.write(&mut state, &Record::Registry(change.clone()))?;
        state.registry.apply(change);
        state.registry_changed = true;
        Ok(ticket)
    }

    /// Every registration.
    pub fn registrations(&self) -> Vec<Registration> {
        self.lock().registry.all().cloned().collect()
    }

    /// The registration of `key`, if there is one.
    pub fn registration(&self, key: &registry::Key) -> Option<Registration> {
        self.lock().registry.get(key).cloned()
    }

    /// Writes one record at the end; an error (a full disk) leaves the file as it was.
    fn write(&self, state: &mut State, record: &Record) -> std::io::Result<(Ticket, [u8; 8])> {
        if state.failed {
            return Err(std::io::Error::other(
                "the journal failed to sync; waiting to be rebuilt",
            ));
        }
        let bytes = record::encode(record, Some(state.next_seq));
        if let Err(e) = state.file.write_all(&bytes) {
            // A partial write would be a torn record: cut it off again.
            let appended = state.appended;
            let _ = state.file.set_len(appended);
            return Err(e);
        }
        state.appended += bytes.len() as u64;
        state.next_seq += 1;
        let ticket = Ticket {
            epoch: state.epoch,
            end: state.appended,
            recoveries: state.recoveries,
        };
        Ok((ticket, record::sum(&bytes)))
    }

    /// Waits until the record ending at `ticket` is durable. One caller syncs for every
    /// record appended before it started; the others wait for it (group commit).
    pub fn sync(&self, ticket: Ticket) -> std::io::Result<()> {
        let mut state = self.lock();
        loop {
            if let Some(done) = settled(&state, ticket) {
                return done;
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.syncing = true;
            let (epoch, target) = (state.epoch, state.appended);
            let file = state.file.try_clone();
            drop(state);
            let result = file.and_then(|f| f.sync_data());
            state = self.lock();
            state.syncing = false;
            match &result {
                // A compaction meanwhile made everything durable in the zone files.
                Ok(()) if epoch == state.epoch => state.durable = state.durable.max(target),
                Ok(()) => {}
                Err(_) => state.failed = true,
            }
            self.announce();
            result?;
        }
    }

    /// Whether the journal has grown enough to be compacted.
    pub fn large(&self) -> bool {
        self.lock().appended >= COMPACT_BYTES
    }

    /// Whether it holds any change the zone files do not.
    pub fn is_empty(&self) -> bool {
        let state = self.lock();
        state.latest.is_empty() && !state.registry_changed
    }

    /// After a failed sync: the records that were not made durable are dropped from the file
    /// and from `latest` (re-read from what is durable), and the journal takes appends again.
    pub fn recover(&self, file: impl Fn(&Name) -> Option<String>) -> std::io::Result<()> {
        let mut state = self.lock();
        let durable = state.durable;
        state.file.set_len(durable)?;
        state.file.sync_all()?;
        let mut bytes = Vec::new();
        File::open(&self.path)?.read_to_end(&mut bytes)?;
        let replayed = record::replay(&bytes, Registry::load(&self.dir)?);
        let good = replayed.good;
        state.latest = with_files(replayed.zones, &file, &replayed.kept);
        state.compacted = replayed.kept;
        state.registry = replayed.registry;
        state.appended = good as u64;
        state.durable = good as u64;
        state.failed = false;
        state.recoveries += 1;
        self.announce();
        Ok(())
    }
}

/// The record ending at `ticket`: durable (`Some(Ok)`), lost to a failed sync (`Some(Err)`),
/// or not yet durable (`None`).
/// A journal damaged in the middle: the file as it was copied aside first, then rewritten with
/// its sound records only (every one of them was applied), and the log says what was skipped.
/// Returns the new length.
fn keep_intact(
    path: &Path,
    file: &mut std::fs::File,
    bytes: &[u8],
    replayed: &record::Replayed,
) -> std::io::Result<usize> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("damaged-{stamp}"));
    std::fs::write(&aside, bytes)?;
    let mut kept = Vec::with_capacity(bytes.len());
    let mut from = 0;
    for range in &replayed.skipped {
        kept.extend_from_slice(&bytes[from..range.start]);
        from = range.end;
    }
    kept.extend_from_slice(&bytes[from..replayed.good]);
    let ranges: Vec<String> = replayed
        .skipped
        .iter()
        .map(|r| format!("{} bytes at {}", r.len(), r.start))
        .collect();
    tracing::error!(
        "journal {}: damaged, {} skipped ({}); the {} sound records before and after were \
         applied. The journal as it was is kept at {}",
        path.display(),
        ranges.join(", "),
        describe_lost(&replayed.lost),
        replayed.records,
        aside.display()
    );
    file.set_len(0)?;
    file.write_all(&kept)?;
    file.sync_all()?;
    Ok(kept.len())
}

/// What the log says of changes lost to damage.
pub fn describe_lost(lost: &[std::ops::RangeInclusive<u64>]) -> String {
    if lost.is_empty() {
        return "no change lost".to_owned();
    }
    let count: u64 = lost.iter().map(|r| r.end() - r.start() + 1).sum();
    let numbers: Vec<String> = lost
        .iter()
        .map(|r| match r.start() == r.end() {
            true => format!("#{}", r.start()),
            false => format!("#{}-#{}", r.start(), r.end()),
        })
        .collect();
    format!("{count} change(s) lost: {}", numbers.join(", "))
}

fn settled(state: &State, ticket: Ticket) -> Option<std::io::Result<()>> {
    let lost = || {
        Some(Err(std::io::Error::other(
            "the journal could not be made durable",
        )))
    };
    if ticket.recoveries < state.recoveries {
        return lost();
    }
    if ticket.epoch < state.epoch || state.durable >= ticket.end {
        return Some(Ok(()));
    }
    if state.failed {
        return lost();
    }
    None
}

/// Replayed changes over their files' texts, with the tags compacted zones kept.
fn with_files(
    zones: HashMap<Name, Changes>,
    file: &dyn Fn(&Name) -> Option<String>,
    kept: &HashMap<Name, Kept>,
) -> HashMap<Name, Entry> {
    zones
        .into_iter()
        .map(|(origin, changes)| {
            let file = file(&origin);
            let kept = kept.get(&origin).copied();
            (origin, Entry::replayed(changes, file, kept))
        })
        .collect()
}

#[path = "compaction.rs"]
mod compaction;
#[path = "syncer.rs"]
pub mod syncer;
#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
