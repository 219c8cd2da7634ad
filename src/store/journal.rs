//! The write-ahead journal of zone changes: `zones/.journal`. Each acknowledged change is one
//! record appended to it and made durable before the acknowledgement, and changes that arrive
//! together share one `fdatasync` (group commit). The zone files lag behind it until a
//! compaction writes every changed zone's text to its file (atomically, as before) and empties
//! the journal. At start-up the journal is replayed over the zone files.
//!
//! Records (see `record`) are zones' new texts and changes to the registry of endpoints
//! registered through the API. A tail that is short or fails its checksum (a crash in the
//! middle of an append) is ignored with a warning and cut off: it was never acknowledged.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::record::{self, Record};
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
    /// The latest text of each zone changed since the last compaction.
    latest: HashMap<Name, Entry>,
    /// Every registration: the registry file with the journal's changes applied.
    registry: Registry,
    /// The registry changed since the last compaction.
    registry_changed: bool,
}

/// A zone's journaled change.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its latest text (`None`: its TOML document removed).
    pub text: Option<String>,
    /// A digest of its file as it was when the journal took its first change since the last
    /// compaction (`None`: no file): a file that differs now was edited by hand meanwhile.
    pub base: Option<[u8; 32]>,
}

/// A digest of a file's text, to tell whether it changed.
pub fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and replays it: the latest text of each zone it
    /// holds, in the order written; `base` gives each one's file digest now (the files have not
    /// been compacted into since). A torn tail is cut off.
    pub fn open(dir: &Path, base: impl Fn(&Name) -> Option<[u8; 32]>) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let replayed = record::replay(&bytes, Registry::load(dir)?);
        let good = replayed.good;
        let latest = with_bases(replayed.texts, &base);
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
                registry_changed: replayed.good > 0,
                registry: replayed.registry,
            }),
            synced: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest change of `origin`, if the journal has one.
    pub fn latest(&self, origin: &Name) -> Option<Entry> {
        self.lock().latest.get(origin).cloned()
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

    /// Appends a change (not yet durable: see [`Journal::sync`]); `base` is the zone file's
    /// digest now, asked for the first change since a compaction. An error (a full disk)
    /// leaves the journal as it was.
    pub fn append(
        &self,
        origin: &Name,
        text: Option<&str>,
        base: impl FnOnce() -> Option<[u8; 32]>,
    ) -> std::io::Result<Ticket> {
        let mut state = self.lock();
        let ticket = self.write(
            &mut state,
            &Record::Zone(origin.clone(), text.map(str::to_owned)),
        )?;
        let text = text.map(str::to_owned);
        match state.latest.get_mut(origin) {
            Some(entry) => entry.text = text,
            None => {
                let base = base();
                state.latest.insert(origin.clone(), Entry { text, base });
            }
        }
        Ok(ticket)
    }

    /// Appends a change to the registry (not yet durable: see [`Journal::sync`]).
    pub fn append_registry(&self, change: registry::Change) -> std::io::Result<Ticket> {
        let mut state = self.lock();
        let ticket = self.write(&mut state, &Record::Registry(change.clone()))?;
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
    fn write(&self, state: &mut State, record: &Record) -> std::io::Result<Ticket> {
        if state.failed {
            return Err(std::io::Error::other(
                "the journal failed to sync; waiting to be rebuilt",
            ));
        }
        let bytes = record::encode(record);
        if let Err(e) = state.file.write_all(&bytes) {
            // A partial write would be a torn record: cut it off again.
            let appended = state.appended;
            let _ = state.file.set_len(appended);
            return Err(e);
        }
        state.appended += bytes.len() as u64;
        Ok(Ticket {
            epoch: state.epoch,
            end: state.appended,
            recoveries: state.recoveries,
        })
    }

    /// Waits until the record ending at `ticket` is durable. One caller syncs for every
    /// record appended before it started; the others wait for it (group commit).
    pub fn sync(&self, ticket: Ticket) -> std::io::Result<()> {
        let mut state = self.lock();
        loop {
            if ticket.recoveries < state.recoveries {
                return Err(std::io::Error::other(
                    "the journal could not be made durable",
                ));
            }
            if ticket.epoch < state.epoch || state.durable >= ticket.end {
                return Ok(());
            }
            if state.failed {
                return Err(std::io::Error::other(
                    "the journal could not be made durable",
                ));
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
            self.synced.notify_all();
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

    /// Compaction: `write` puts each changed zone's latest text in its file (durably); then
    /// the journal is emptied. Appends wait meanwhile; a change appended but not yet synced
    /// is durable in its file afterwards.
    pub fn compact(
        &self,
        write: impl Fn(&Name, Option<&str>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut state = self.lock();
        if state.failed {
            return Err(std::io::Error::other("the journal failed to sync"));
        }
        for (origin, entry) in &state.latest {
            write(origin, entry.text.as_deref())?;
        }
        if state.registry_changed {
            state.registry.save(&self.dir)?;
        }
        state.file.set_len(0)?;
        state.file.sync_all()?;
        state.appended = 0;
        state.durable = 0;
        state.epoch += 1;
        state.latest.clear();
        state.registry_changed = false;
        // Waiters on tickets of the old file: their records are in the zone files now.
        self.synced.notify_all();
        Ok(())
    }

    /// After a failed sync: the records that were not made durable are dropped from the file
    /// and from `latest` (re-read from what is durable), and the journal takes appends again.
    pub fn recover(&self, base: impl Fn(&Name) -> Option<[u8; 32]>) -> std::io::Result<()> {
        let mut state = self.lock();
        let durable = state.durable;
        state.file.set_len(durable)?;
        state.file.sync_all()?;
        let mut bytes = Vec::new();
        File::open(&self.path)?.read_to_end(&mut bytes)?;
        let replayed = record::replay(&bytes, Registry::load(&self.dir)?);
        let good = replayed.good;
        state.latest = with_bases(replayed.texts, &base);
        state.registry = replayed.registry;
        state.appended = good as u64;
        state.durable = good as u64;
        state.failed = false;
        state.recoveries += 1;
        self.synced.notify_all();
        Ok(())
    }
}

/// Replayed texts with their files' digests.
fn with_bases(
    texts: HashMap<Name, Option<String>>,
    base: &dyn Fn(&Name) -> Option<[u8; 32]>,
) -> HashMap<Name, Entry> {
    texts
        .into_iter()
        .map(|(origin, text)| {
            let base = base(&origin);
            (origin, Entry { text, base })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("meridian-journal-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn replay_keeps_the_latest_text_of_each_zone() {
        let dir = dir();
        let j = Journal::open(&dir, |_| None).unwrap();
        let t = j.append(&name("a.test."), Some("one"), || None).unwrap();
        j.append(&name("b.test."), Some("b"), || None).unwrap();
        let t2 = j.append(&name("a.test."), Some("two"), || None).unwrap();
        let t3 = j.append(&name("b.test."), None, || None).unwrap();
        assert!(t2.end > t.end);
        j.sync(t3).unwrap();
        drop(j);
        let j = Journal::open(&dir, |_| None).unwrap();
        let text = |origin: &str| j.latest(&name(origin)).map(|e| e.text);
        assert_eq!(text("a.test."), Some(Some("two".into())));
        assert_eq!(text("b.test."), Some(None));
        assert_eq!(text("c.test."), None);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_off() {
        let dir = dir();
        let j = Journal::open(&dir, |_| None).unwrap();
        let t = j.append(&name("a.test."), Some("kept"), || None).unwrap();
        j.sync(t).unwrap();
        drop(j);
        let good = std::fs::metadata(dir.join(FILE)).unwrap().len();
        let torn = record::encode(&Record::Zone(name("a.test."), Some("lost".into())));
        for tail in [&torn[..torn.len() - 3], &[0xff; 5][..]] {
            let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
            bytes.truncate(good as usize);
            bytes.extend_from_slice(tail);
            std::fs::write(dir.join(FILE), &bytes).unwrap();
            let j = Journal::open(&dir, |_| None).unwrap();
            assert_eq!(
                j.latest(&name("a.test.")).unwrap().text,
                Some("kept".into())
            );
            assert_eq!(std::fs::metadata(dir.join(FILE)).unwrap().len(), good);
        }
        // A flipped bit in the last record: that record is dropped, the earlier ones kept.
        let j = Journal::open(&dir, |_| None).unwrap();
        j.sync(j.append(&name("a.test."), Some("newer"), || None).unwrap())
            .unwrap();
        drop(j);
        let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(dir.join(FILE), &bytes).unwrap();
        let j = Journal::open(&dir, |_| None).unwrap();
        assert_eq!(
            j.latest(&name("a.test.")).unwrap().text,
            Some("kept".into())
        );
    }

    #[test]
    fn concurrent_changes_share_syncs_and_all_become_durable() {
        let dir = dir();
        let j = std::sync::Arc::new(Journal::open(&dir, |_| None).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let j = j.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let origin = name(&format!("z{n}.test."));
                        let t = j.append(&origin, Some(&format!("{i}")), || None).unwrap();
                        j.sync(t).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(j);
        let j = Journal::open(&dir, |_| None).unwrap();
        for n in 0..8 {
            let origin = name(&format!("z{n}.test."));
            assert_eq!(j.latest(&origin).unwrap().text, Some("49".into()));
        }
    }

    #[test]
    fn compaction_writes_the_files_and_empties_the_journal() {
        let dir = dir();
        let j = Journal::open(&dir, |_| None).unwrap();
        j.append(&name("a.test."), Some("text"), || None).unwrap();
        let written = Mutex::new(Vec::new());
        j.compact(|origin, text| {
            written
                .lock()
                .unwrap()
                .push((origin.to_ascii(), text.map(str::to_owned)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            *written.lock().unwrap(),
            [("a.test.".to_owned(), Some("text".to_owned()))]
        );
        assert!(j.is_empty());
        assert_eq!(std::fs::metadata(dir.join(FILE)).unwrap().len(), 0);
    }
}
