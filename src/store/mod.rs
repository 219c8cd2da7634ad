//! Where zones live durably, behind one interface ([`Store`]) that the writer path (`control`)
//! reads and writes through. Files are the backend today ([`FileStore`]: one file per zone in
//! the zones folder, every write atomic — temp file, fsync, rename, fsync of the folder — so
//! that a crash at any moment leaves either the old file or the new one); a journal and an
//! etcd backend implement the same interface. `store::edit` changes a zone's TOML keeping its
//! comments and layout.

pub mod edit;

use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use sha2::{Digest, Sha256};

use crate::zone::{self, Zone, ZoneError, ZoneSet};

/// Where the zones come from and where changes to them are made durable. A zone is changed as
/// its whole TOML document: read it, compute the new text, build the zone with it (which
/// validates it), then write it; only a written change is served.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every zone, built (start-up and reload). All or nothing.
    fn load(&self) -> Result<ZoneSet, ZoneError>;
    /// Zone `origin`'s TOML document, if it has one.
    fn read(&self, origin: &Name) -> std::io::Result<Option<String>>;
    /// Zone `origin` as it would be with its document replaced by `text` (`None`: no document;
    /// `Ok(None)`: no zone left), built alone: the validation of a change, before it is
    /// written.
    fn load_one(&self, origin: &Name, text: Option<&str>) -> Result<Option<Zone>, ZoneError>;
    /// Makes the change durable; once this returns, it survives a crash.
    fn write(&self, origin: &Name, text: Option<&str>) -> std::io::Result<()>;
    /// Whether `origin` is served from a form the API does not edit (an RFC 1035 master file).
    fn read_only(&self, origin: &Name) -> bool;
}

/// The zones folder.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl Store for FileStore {
    fn load(&self) -> Result<ZoneSet, ZoneError> {
        zone::load_dir(&self.dir)
    }

    fn read(&self, origin: &Name) -> std::io::Result<Option<String>> {
        FileStore::read(self, origin)
    }

    fn load_one(&self, origin: &Name, text: Option<&str>) -> Result<Option<Zone>, ZoneError> {
        zone::load_one(&self.dir, origin, text)
    }

    fn write(&self, origin: &Name, text: Option<&str>) -> std::io::Result<()> {
        FileStore::write(self, origin, text)
    }

    fn read_only(&self, origin: &Name) -> bool {
        !self.toml_path(origin).exists() && self.master_path(origin).exists()
    }
}

impl FileStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
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

    /// The zone's TOML text, if it has a TOML file.
    pub fn read(&self, origin: &Name) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.toml_path(origin)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces (or with `None`, removes) the zone's TOML file, durably.
    pub fn write(&self, origin: &Name, text: Option<&str>) -> std::io::Result<()> {
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
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
