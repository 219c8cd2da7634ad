//! What the journal holds of one changed zone: a whole text and the edits made since, and the
//! zone's entity tag. Its text is worked out from them only when it is read whole (an API
//! read, a compaction), never on the path of a change.

use super::change::ZoneEdit;
use super::edit::EditError;
use super::record::{Changes, Kept};
use crate::zone::Name;

/// A digest of a text, to tell whether it changed.
pub fn digest(text: &str) -> [u8; 32] {
    crate::digest::sha256(&[text.as_bytes()])
}

/// A zone's journaled changes.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its text as of its last whole-text change, or as its file was when the first edit since
    /// the last compaction came (`None`: its TOML document removed).
    pub text: Option<String>,
    /// The edits since that text, in order.
    pub edits: Vec<ZoneEdit>,
    /// A digest of its file as it was when the journal took its first change since the last
    /// compaction (`None`: no file): a file that differs now was edited by hand meanwhile.
    pub base: Option<[u8; 32]>,
    /// Its entity tag: the digest of `text` for a whole text, chained with each later edit's
    /// record checksum, so that a change costs no digest of the whole zone.
    pub tag: [u8; 32],
}

impl Entry {
    /// The entry replayed `changes` leave, over the zone's file text `file`; `kept`: the tag
    /// the zone kept when it was last compacted (see `compaction`), if any.
    pub fn replayed(changes: Changes, file: Option<String>, kept: Option<Kept>) -> Self {
        let base = file.as_deref().map(digest);
        let (text, tag) = match changes.text {
            Some(text) => {
                let tag = digest(text.as_deref().unwrap_or_default());
                (text, tag)
            }
            None => {
                let tag = match kept {
                    Some((written, tag)) if Some(written) == base => tag,
                    _ => base.unwrap_or_default(),
                };
                (file, tag)
            }
        };
        let tag = changes.sums.iter().fold(tag, |tag, sum| chain(&tag, sum));
        Self {
            text,
            edits: changes.edits,
            base,
            tag,
        }
    }

    /// Its latest text: the edits applied to the text (each was checked when it was made).
    pub fn latest(&self, origin: &Name) -> std::io::Result<Option<String>> {
        if self.edits.is_empty() {
            return Ok(self.text.clone());
        }
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let text = self
            .text
            .as_deref()
            .ok_or_else(|| invalid(format!("{origin}: an edit of a removed zone")))?;
        let doc = super::edit::parse(text).map_err(|e| invalid(e.to_string()))?;
        let mut doc = super::document::EditedDocument::new(doc, origin);
        for edit in &self.edits {
            match doc.apply(edit) {
                // Replayed onto a file a compaction wrote just before a crash, an edit may find
                // its work done (a pool already removed): that is the same zone.
                Ok(()) | Err(EditError::NotFound(_)) => {}
                Err(e) => return Err(invalid(format!("{origin}: replaying an edit: {e}"))),
            }
        }
        Ok(Some(doc.finish().to_string()))
    }
}

/// A tag chained with a record's checksum.
pub fn chain(tag: &[u8; 32], sum: &[u8; 8]) -> [u8; 32] {
    crate::digest::sha256(&[tag, sum])
}
