//! Compaction of the journal into the zone files, in the background: the changed zones' texts
//! are worked out and written without holding the journal, so that changes go on meanwhile;
//! then, for a moment, the journal is replaced by the records appended during the compaction
//! (written to a new file, synced, renamed over the old one). Every record of the old file is
//! then durable, in a zone file or in the new journal, and every zone keeps its entity tag.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use super::{Journal, digest, with_files};
use crate::store::record::{self, Record};
use crate::zone::Name;

impl Journal {
    /// Writes each changed zone's latest text to its file with `write` (durably), and the
    /// registry's file, then empties the journal of what they hold; `file_text` reads a zone's
    /// file (for a zone first changed during the compaction).
    pub fn compact(
        &self,
        write: impl Fn(&Name, Option<&str>) -> std::io::Result<()>,
        file_text: impl Fn(&Name) -> Option<String>,
    ) -> std::io::Result<()> {
        let _one = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let (entries, registry, (end, next_seq), epoch) = {
            let state = self.lock();
            if state.failed {
                return Err(std::io::Error::other("the journal failed to sync"));
            }
            let entries: Vec<_> = state
                .latest
                .iter()
                .map(|(o, e)| (o.clone(), e.clone()))
                .collect();
            let registry = state.registry_changed.then(|| state.registry.clone());
            (
                entries,
                registry,
                (state.appended, state.next_seq),
                (state.epoch, state.recoveries),
            )
        };
        // The slow part, with changes going on: the texts worked out and written.
        let mut written: HashMap<Name, Option<String>> = HashMap::new();
        for (origin, entry) in &entries {
            let text = entry.latest(origin)?;
            write(origin, text.as_deref())?;
            written.insert(origin.clone(), text);
        }
        if let Some(registry) = registry {
            registry.save(&self.dir)?;
        }
        let mut state = self.lock();
        if state.failed || (state.epoch, state.recoveries) != epoch {
            return Err(std::io::Error::other(
                "the journal changed under a compaction",
            ));
        }
        // The tags compacted zones keep, from their texts as written.
        let state = &mut *state;
        for (origin, entry) in &entries {
            if let Some(Some(text)) = written.get(origin) {
                state
                    .compacted
                    .insert(origin.clone(), (digest(text), entry.tag));
            }
        }
        // The new journal: the records appended meanwhile, after what compaction keeps.
        let mut tail = Vec::with_capacity((state.appended - end) as usize);
        let mut old = std::fs::File::open(&self.path)?;
        old.seek(SeekFrom::Start(end))?;
        old.take(state.appended - end).read_to_end(&mut tail)?;
        // The sequence number the tail starts at (or the next change takes), then those tags,
        // then the tail.
        let mut fresh_bytes = record::encode(&Record::Next(next_seq), None);
        for (origin, kept) in &state.compacted {
            fresh_bytes.extend(record::encode(&Record::Tag(origin.clone(), *kept), None));
        }
        fresh_bytes.extend_from_slice(&tail);
        let fresh_path = self.path.with_extension("compacting");
        let mut fresh = std::fs::File::create(&fresh_path)?;
        fresh.write_all(&fresh_bytes)?;
        fresh.sync_all()?;
        drop(fresh);
        std::fs::rename(&fresh_path, &self.path)?;
        crate::sys::sync_dir(&self.dir)?;
        state.file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        let replayed = record::replay(&tail, state.registry.clone());
        let file = |origin: &Name| match written.get(origin) {
            Some(text) => text.clone(),
            None => file_text(origin),
        };
        state.latest = with_files(replayed.zones, &file, &state.compacted);
        state.appended = fresh_bytes.len() as u64;
        state.durable = fresh_bytes.len() as u64;
        state.epoch += 1;
        state.registry_changed = replayed.registry_changed;
        // Waiters on tickets of the old file: their records are durable now, in the zone
        // files or in the new journal.
        self.announce();
        Ok(())
    }
}
