//! Where zones live durably: one file per zone in the zones folder. Every write goes through
//! here, atomically (temp file, fsync, rename, fsync of the folder), so that a crash at any
//! moment leaves either the old file or the new one, never half of one.

pub mod edit;

use std::io::Write;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use sha2::{Digest, Sha256};

/// The zones folder.
#[derive(Debug, Clone)]
pub struct ZoneStore {
    dir: PathBuf,
}

impl ZoneStore {
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
            Some(text) => write_atomic(&path, text.as_bytes()),
            None => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                sync_dir(&self.dir)
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

/// Writes `bytes` to `path` so that readers and crashes see the old file or the new one:
/// a temp file in the same folder, fsync, rename over, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Hidden, so that a leftover temp file is never loaded as a zone.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
