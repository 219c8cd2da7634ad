//! Where zones live durably, behind one interface ([`Store`]) that the writer path (`control`)
//! reads and writes through. Files are the backend today ([`FileStore`]: one file per zone in
//! the zones folder), with a write-ahead [`journal`]: a change is one record appended to
//! `zones/.journal` and synced (changes arriving together share the sync), and compactions
//! write the changed zones' files — each atomically: temp file, fsync, rename, fsync of the
//! folder — and empty the journal. A crash at any moment loses no acknowledged change and
//! leaves no half-written file. In a nameserver set (`[store] backend = "etcd"`) etcd is the
//! authority and this store is the instance's local copy: `control` writes changes to etcd
//! through [`etcd`] (keys laid out by [`shared`]) and applies what etcd commits here, through
//! the same interface as a local change. `store::edit` changes a zone's TOML keeping its
//! comments and layout.

pub mod change;
mod document;
pub mod edit;
mod entry;
pub mod etcd;
pub mod journal;
pub mod model;
pub mod pieces;
mod record;
pub mod registry;
pub mod repair;
mod restyle;
pub mod shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use crate::zone::spec::{Registered, ZoneSpec};
use crate::zone::{self, Zone, ZoneError, ZoneSet};
use change::ZoneEdit;
use model::ZoneModel;
use registry::Registration;

/// A change appended but perhaps not yet durable: what [`Store::sync`] waits for.
pub type Ticket = Option<journal::Ticket>;

/// A wait for durability (see [`Store::wait`]).
pub type Waiting = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// A zone's TOML document as read whole, with its entity tag.
#[derive(Debug, Clone)]
pub struct Doc {
    pub text: String,
    pub etag: String,
}

/// Where the zones come from and where changes to them are made durable. A zone is changed as
/// its whole TOML document: read it, compute the new text, build the zone with it (which
/// validates it), append it, serve it, sync it; only a synced change is acknowledged.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every zone, built (start-up and reload), with every change appended so far, except
    /// where a zone's file was edited by hand since its last change: the file wins. All or
    /// nothing. The zones of `served` whose files have not changed since they were read are
    /// kept as they are (a reload rebuilds only what changed on disk).
    fn load(&self, served: Option<&ZoneSet>) -> Result<ZoneSet, ZoneError>;
    /// Zone `origin`'s TOML document, if it has one, with every change appended so far.
    fn read(&self, origin: &Name) -> std::io::Result<Option<Doc>>;
    /// The entity tag of zone `origin`'s TOML document, if it has one: cheap after a change.
    fn tag(&self, origin: &Name) -> std::io::Result<Option<String>>;
    /// Zone `origin` as it would be with its document replaced by `text` (`None`: no document;
    /// `Ok(None)`: no zone left), built alone: the validation of a change, before it is
    /// appended.
    fn load_one(
        &self,
        origin: &Name,
        text: Option<&str>,
        registered: &[Registered],
    ) -> Result<Option<Zone>, ZoneError>;
    /// Zone `origin` built from the model `spec` of its TOML document (with its master file,
    /// if it names one): the validation of an edit.
    fn build(
        &self,
        origin: &Name,
        spec: &ZoneSpec,
        registered: &[Registered],
    ) -> Result<Zone, ZoneError>;
    /// The endpoints registered through the API in zone `origin` (see [`registry`]).
    fn registered(&self, origin: &Name) -> Vec<Registered> {
        let zone = origin.to_lowercase().to_ascii();
        let all = self.registrations().into_iter();
        all.filter(|r| r.zone == zone).map(|r| r.endpoint).collect()
    }
    /// Every registration.
    fn registrations(&self) -> Vec<Registration>;
    /// The registration of `key`, if there is one.
    fn registration(&self, key: &registry::Key) -> Option<Registration> {
        self.registrations().into_iter().find(|r| r.key() == *key)
    }
    /// Appends a registration, renewal or removal, like a zone change.
    fn append_registry(&self, change: registry::Change) -> std::io::Result<Ticket>;
    /// Appends a change; an error (a full disk) leaves the store as it was.
    fn append(&self, origin: &Name, text: Option<&str>) -> std::io::Result<Ticket>;
    /// Appends an edit of an existing zone's document, like [`Store::append`].
    fn append_edit(&self, origin: &Name, edit: &ZoneEdit) -> std::io::Result<Ticket>;
    /// Waits until the change of `ticket` survives a crash (changes waiting together share one
    /// sync). An error: it and every change appended after it may be lost; see
    /// [`Store::recover`].
    fn sync(&self, ticket: Ticket) -> std::io::Result<()>;
    /// After a failed sync: forgets what was not made durable, so that [`Store::load`] gives
    /// what a restart would.
    fn recover(&self) -> std::io::Result<()>;
    /// Writes the appended changes into their zone files and empties the journal, if there is
    /// anything to write and `force` or the journal is large.
    fn compact(&self, force: bool) -> std::io::Result<()>;
    /// Waits until the change of `ticket` is durable, like [`Store::sync`], without blocking a
    /// thread where the store can (the journal's syncer syncs it).
    fn wait(&self, ticket: Ticket) -> Waiting {
        let result = self.sync(ticket);
        Box::pin(std::future::ready(result))
    }
    /// Appends and syncs a change.
    fn write(&self, origin: &Name, text: Option<&str>) -> std::io::Result<()> {
        let ticket = self.append(origin, text)?;
        self.sync(ticket)
    }
    /// Whether `origin` is served from a form the API does not edit (an RFC 1035 master file).
    fn read_only(&self, origin: &Name) -> bool;
    /// The models of the zones the last [`Store::load`] built from journaled edits (taken:
    /// asked for once), so that the writer path need not work them out again.
    fn take_models(&self) -> HashMap<Name, ZoneModel> {
        HashMap::new()
    }
}

/// The zones folder, with its journal.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// `None`: every change is written to its file at once (tools and tests without a folder).
    journal: Option<std::sync::Arc<journal::Journal>>,
    /// See [`Store::take_models`].
    models: std::sync::Mutex<HashMap<Name, ZoneModel>>,
}

impl Store for FileStore {
    fn load(&self, served: Option<&ZoneSet>) -> Result<ZoneSet, ZoneError> {
        let Some(journal) = &self.journal else {
            return zone::load_dir(&self.dir);
        };
        // A file that changed since the journal took its zone's first change was edited by
        // hand after it: the newer edit, the file's, wins.
        let mut forgot = false;
        for (origin, entry) in journal.pending() {
            if self.file_text(&origin).as_deref().map(journal::digest) != entry.base {
                tracing::warn!(
                    "{} was edited on disk after changes through the API that were not yet \
                     written to it: the file wins over them",
                    self.toml_path(&origin).display()
                );
                journal.forget(&origin);
                forgot = true;
            }
        }
        // The forgotten changes must leave the journal before a restart replays them.
        if forgot && let Err(error) = self.compact(true) {
            tracing::error!(%error, "cannot compact the journal into the zone files");
        }
        // The journaled zones: their latest whole text, then their edits since, applied to the
        // model as it is read (a compaction writes their files later, in the background).
        let pending: HashMap<Name, journal::Entry> = journal.pending().into_iter().collect();
        let texts = pending
            .iter()
            .map(|(origin, entry)| (origin.clone(), entry.text.clone()))
            .collect();
        // Each journaled zone's model, with its edits applied, is kept for the writer path's
        // first change or read (see `Store::take_models`).
        let models = std::sync::Mutex::new(HashMap::new());
        let lost = journal.lost();
        let edit = |origin: &Name, spec: &mut ZoneSpec| -> Result<(), String> {
            let Some(edits) = pending
                .get(origin)
                .map(|e| &e.edits)
                .filter(|e| !e.is_empty())
            else {
                return Ok(());
            };
            let mut model = ZoneModel::new(origin, std::mem::take(spec));
            for change in edits {
                match model.apply(&change.edit) {
                    Ok(_) => {}
                    // As in `Entry::latest`: an edit whose work a compaction already did,
                    // unless changes were lost before it, on which it may have depended.
                    Err(edit::EditError::NotFound(what)) if !lost.is_empty() => {
                        return Err(format!(
                            "an edit in the journal finds no {what}: the journal misses changes \
                             lost to damage ({}), on which it may depend. Nothing is served from \
                             a guess: `meridian journal check` lists the edits that do not \
                             apply, `meridian journal repair` drops them",
                            journal::describe_lost(lost)
                        ));
                    }
                    Err(edit::EditError::NotFound(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
                model.set_serial(change.serial);
            }
            *spec = model.spec().clone();
            let mut models = models.lock().unwrap_or_else(|e| e.into_inner());
            models.insert(origin.to_lowercase(), model);
            Ok(())
        };
        let mut registered: HashMap<Name, Vec<Registered>> = HashMap::new();
        for r in journal.registrations() {
            if let Ok(zone) = Name::from_ascii(&r.zone) {
                registered.entry(zone).or_default().push(r.endpoint);
            }
        }
        let journaled = zone::Journaled {
            texts,
            registered,
            edit: Some(&edit),
        };
        let zones = zone::load_dir_with(&self.dir, &journaled, served)?;
        *self.models.lock().unwrap_or_else(|e| e.into_inner()) =
            models.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(zones)
    }

    fn take_models(&self) -> HashMap<Name, ZoneModel> {
        std::mem::take(&mut *self.models.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn read(&self, origin: &Name) -> std::io::Result<Option<Doc>> {
        let Some(entry) = self.journal.as_ref().and_then(|j| j.latest(origin)) else {
            let Some(text) = self.read_file(origin)? else {
                return Ok(None);
            };
            let tag = match &self.journal {
                Some(journal) => journal.tag(&origin.to_lowercase(), || Some(text.clone())),
                None => Some(journal::digest(&text)),
            };
            let etag = etag_of(&tag.unwrap_or_default());
            return Ok(Some(Doc { text, etag }));
        };
        let text = entry.latest(origin)?;
        if let Some(journal) = &self.journal {
            journal.settle(origin, text.clone(), entry.edits.len());
        }
        let etag = etag_of(&entry.tag);
        Ok(text.map(|text| Doc { text, etag }))
    }

    fn tag(&self, origin: &Name) -> std::io::Result<Option<String>> {
        let origin = origin.to_lowercase();
        let tag = match &self.journal {
            Some(journal) => journal.tag(&origin, || self.file_text(&origin)),
            None => self.read_file(&origin)?.as_deref().map(journal::digest),
        };
        Ok(tag.as_ref().map(etag_of))
    }

    fn build(
        &self,
        origin: &Name,
        spec: &ZoneSpec,
        registered: &[Registered],
    ) -> Result<Zone, ZoneError> {
        zone::load_spec(&self.dir, origin, spec, registered)
    }

    fn load_one(
        &self,
        origin: &Name,
        text: Option<&str>,
        registered: &[Registered],
    ) -> Result<Option<Zone>, ZoneError> {
        zone::load_one(&self.dir, origin, text, registered)
    }

    fn registrations(&self) -> Vec<Registration> {
        self.journal
            .as_ref()
            .map(|j| j.registrations())
            .unwrap_or_default()
    }

    fn registration(&self, key: &registry::Key) -> Option<Registration> {
        self.journal.as_ref()?.registration(key)
    }

    fn append_registry(&self, change: registry::Change) -> std::io::Result<Ticket> {
        match &self.journal {
            Some(journal) => journal.append_registry(change).map(Some),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "registrations need the journal",
            )),
        }
    }

    fn append(&self, origin: &Name, text: Option<&str>) -> std::io::Result<Ticket> {
        match &self.journal {
            Some(journal) => {
                let origin = origin.to_lowercase();
                let file = || self.file_text(&origin);
                journal.append(&origin, text, file).map(Some)
            }
            None => self.write_file(origin, text).map(|()| None),
        }
    }

    fn append_edit(&self, origin: &Name, edit: &ZoneEdit) -> std::io::Result<Ticket> {
        let origin = origin.to_lowercase();
        match &self.journal {
            Some(journal) => {
                let file = || self.file_text(&origin);
                journal.append_edit(&origin, edit, file).map(Some)
            }
            None => {
                let entry = journal::Entry {
                    text: self.read_file(&origin)?,
                    edits: vec![edit.clone()],
                    base: None,
                    tag: [0; 32],
                };
                let text = entry.latest(&origin)?;
                self.write_file(&origin, text.as_deref()).map(|()| None)
            }
        }
    }

    fn sync(&self, ticket: Ticket) -> std::io::Result<()> {
        match (&self.journal, ticket) {
            (Some(journal), Some(ticket)) => journal.sync(ticket),
            _ => Ok(()),
        }
    }

    fn wait(&self, ticket: Ticket) -> Waiting {
        match (&self.journal, ticket) {
            (Some(journal), Some(ticket)) => Box::pin(journal.clone().wait(ticket)),
            _ => Box::pin(std::future::ready(Ok(()))),
        }
    }

    fn recover(&self) -> std::io::Result<()> {
        match &self.journal {
            Some(journal) => journal.recover(|origin| self.file_text(origin)),
            None => Ok(()),
        }
    }

    fn compact(&self, force: bool) -> std::io::Result<()> {
        match &self.journal {
            Some(j) if !j.is_empty() && (force || j.large()) => {
                let write = |origin: &Name, text: Option<&str>| self.write_file(origin, text);
                j.compact(write, |origin| self.file_text(origin))
            }
            _ => Ok(()),
        }
    }

    fn read_only(&self, origin: &Name) -> bool {
        let journaled = self.journal.as_ref().and_then(|j| j.has_text(origin));
        let has_toml = journaled.unwrap_or_else(|| self.toml_path(origin).exists());
        !has_toml && self.master_path(origin).exists()
    }
}

impl FileStore {
    /// The zones in `dir`, without a journal: every change written to its file at once.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            journal: None,
            models: Default::default(),
        }
    }

    /// The zones in `dir` with the journal `dir/.journal`, replayed.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        let mut store = Self::new(dir);
        let journal = journal::Journal::open(&store.dir, |origin| store.file_text(origin))?;
        let journal = std::sync::Arc::new(journal);
        journal::syncer::spawn(&journal)?;
        store.journal = Some(journal);
        Ok(store)
    }

    /// The zone's TOML file's text now (`None`: none, or unreadable).
    fn file_text(&self, origin: &Name) -> Option<String> {
        self.read_file(origin).ok()?
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `zones/<origin>.toml`.
    pub fn toml_path(&self, origin: &Name) -> PathBuf {
        let name = origin.to_lowercase().to_ascii();
        self.dir
            .join(format!("{}.toml", name.trim_end_matches('.')))
    }

    /// `zones/<origin>.zone`, the master file a zone may be served from alone.
    pub fn master_path(&self, origin: &Name) -> PathBuf {
        self.toml_path(origin).with_extension("zone")
    }

    /// The zone's TOML file's text, if it has one (without journaled changes).
    fn read_file(&self, origin: &Name) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.toml_path(origin)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces (or with `None`, removes) the zone's TOML file, durably.
    fn write_file(&self, origin: &Name, text: Option<&str>) -> std::io::Result<()> {
        let path = self.toml_path(origin);
        match text {
            Some(text) => crate::sys::write_atomic(&path, text.as_bytes()),
            None => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                crate::sys::sync_dir(&self.dir)
            }
        }
    }
}

/// The entity tag of a zone file's text (RFC 9110 §8.8.3), quoted.
pub fn etag(text: &str) -> String {
    etag_of(&crate::digest::sha256(&[text.as_bytes()]))
}

/// The entity tag of a zone's tag (see `journal::Entry::tag`): for a whole text, its digest.
fn etag_of(tag: &[u8; 32]) -> String {
    let hex: String = tag[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
