//! `meridian journal check` and `meridian journal repair`: what a journal holds (damaged
//! bytes, changes lost to damage, edits that no longer apply to the zone they change), and a
//! journal rewritten without what cannot be applied. An edit made after a change that damage
//! lost may have depended on it (a pool created, then patched): serving such a journal would
//! be a guess, so `serve` refuses it and the operator decides with these two commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::journal::{self, FILE};
use super::model::ZoneModel;
use super::record::{self, Record, Scanned};

/// What a journal holds.
#[derive(Debug, Default)]
pub struct JournalReport {
    /// Its sound records.
    pub records: usize,
    /// Damaged byte ranges with sound records after them.
    pub damaged: Vec<std::ops::Range<usize>>,
    /// Changes lost to damage (sequence numbers).
    pub lost: Vec<std::ops::RangeInclusive<u64>>,
    /// Bytes of a torn or corrupt tail.
    pub torn: usize,
    /// The edits that do not apply to their zone as the records before them leave it: their
    /// sequence number (if they have one), zone and why.
    pub not_applying: Vec<(Option<u64>, Name, String)>,
    /// Where `repair` copied the journal before rewriting it.
    pub kept_at: Option<PathBuf>,
}

impl JournalReport {
    /// Whether the journal can be served as it is.
    pub fn is_sound(&self) -> bool {
        self.damaged.is_empty() && self.lost.is_empty() && self.not_applying.is_empty()
    }
}

impl std::fmt::Display for JournalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} sound record(s)", self.records)?;
        for range in &self.damaged {
            writeln!(f, "damaged: {} bytes at {}", range.len(), range.start)?;
        }
        if !self.lost.is_empty() {
            writeln!(f, "{}", journal::describe_lost(&self.lost))?;
        }
        if self.torn > 0 {
            writeln!(
                f,
                "a torn last record: {} bytes (never acknowledged)",
                self.torn
            )?;
        }
        for (seq, origin, why) in &self.not_applying {
            let seq = seq.map_or_else(|| "an edit".to_owned(), |s| format!("edit #{s}"));
            writeln!(f, "{seq} of {origin} does not apply: {why}")?;
        }
        if let Some(kept) = &self.kept_at {
            writeln!(f, "the journal as it was is kept at {}", kept.display())?;
        }
        Ok(())
    }
}

/// Reads the journal of the zones folder `dir` without changing anything.
pub fn check(dir: &Path) -> std::io::Result<JournalReport> {
    Ok(examine(dir)?.0)
}

/// Rewrites the journal of `dir` with its sound records less the edits that do not apply,
/// numbered again without gaps, after copying it aside; a sound journal is left as it is.
pub fn repair(dir: &Path) -> std::io::Result<JournalReport> {
    let (mut report, kept, bytes) = examine(dir)?;
    if report.is_sound() && report.torn == 0 {
        return Ok(report);
    }
    let path = dir.join(FILE);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("damaged-{stamp}"));
    std::fs::write(&aside, &bytes)?;
    crate::sys::write_atomic(&path, &kept)?;
    report.kept_at = Some(aside);
    Ok(report)
}

/// The report on `dir`'s journal, the journal `repair` would write, and the journal's bytes.
fn examine(dir: &Path) -> std::io::Result<(JournalReport, Vec<u8>, Vec<u8>)> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let scan = record::scan(&bytes);
    let mut report = JournalReport {
        records: scan.records.len(),
        torn: bytes.len() - scan.good,
        damaged: scan.skipped,
        lost: scan.lost,
        ..JournalReport::default()
    };
    // Each zone's model as the records so far leave it (`None`: no TOML document).
    let mut models: HashMap<Name, Option<ZoneModel>> = HashMap::new();
    let mut kept = record::encode(&Record::Next(1), None);
    let mut seq = 0;
    for Scanned {
        record, seq: was, ..
    } in scan.records
    {
        if let Record::Edit(origin, edit) = &record {
            let model = models
                .entry(origin.clone())
                .or_insert_with(|| model_of(dir, origin, None));
            let applied = match model {
                Some(model) => model.apply(&edit.edit).map(drop).map_err(|e| e.to_string()),
                None => Err("the zone has no TOML document".to_owned()),
            };
            if let Err(why) = applied {
                report.not_applying.push((was, origin.clone(), why));
                continue;
            }
            if let Some(model) = model {
                model.set_serial(edit.serial);
            }
        }
        if let Record::Zone(origin, text) = &record {
            let model = text.as_deref().and_then(|t| model_of(dir, origin, Some(t)));
            models.insert(origin.clone(), model);
        }
        if matches!(record, Record::Next(_)) {
            continue;
        }
        let numbered = !matches!(record, Record::Tag(..));
        seq += u64::from(numbered);
        kept.extend(record::encode(&record, numbered.then_some(seq)));
    }
    Ok((report, kept, bytes))
}

/// Zone `origin`'s model from `text`, or from its file in `dir` (`None`: none, or it does not
/// parse).
fn model_of(dir: &Path, origin: &Name, text: Option<&str>) -> Option<ZoneModel> {
    let from_file;
    let text = match text {
        Some(text) => text,
        None => {
            let file = super::FileStore::new(dir.to_owned()).toml_path(origin);
            from_file = std::fs::read_to_string(file).ok()?;
            &from_file
        }
    };
    let spec = crate::zone::zone_spec(text).ok()?;
    Some(ZoneModel::new(origin, spec))
}
