//! RFC 1035 master files: `$ORIGIN`, `$TTL`, `$INCLUDE` (inside the zones folder only), owners
//! carried over from the line before, TTL and class in either order, and each record's data
//! through the one RDATA reader. A record without a TTL takes `$TTL`, or 3600 before any (as
//! Knot does).

use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::lexer::{self, Entry, Token};
use super::{name, parse_rdata, types};

/// The TTL of a record when neither it nor a `$TTL` gives one.
const DEFAULT_TTL: u32 = 3600;
/// How deep `$INCLUDE`s may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

/// One record as read: owner, TTL, type, data in wire form, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRecord {
    pub owner: Name,
    pub ttl: u32,
    pub rtype: u16,
    pub rdata: Vec<u8>,
    pub file: PathBuf,
    pub line: usize,
}

/// A master file refused: the file and line where, and why.
#[derive(Debug, Clone)]
pub struct MasterError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// Reads the master file `text` (at `path`) for `origin`. `$INCLUDE` may name files under
/// `root` only.
pub fn parse(
    text: &str,
    path: &Path,
    origin: &Name,
    root: &Path,
) -> Result<Vec<ParsedRecord>, MasterError> {
    let mut reader = Reader {
        root: root.to_owned(),
        out: Vec::new(),
        default_ttl: DEFAULT_TTL,
    };
    reader.file(text, path, origin.clone(), 0)?;
    Ok(reader.out)
}

struct Reader {
    root: PathBuf,
    out: Vec<ParsedRecord>,
    default_ttl: u32,
}

impl Reader {
    fn file(
        &mut self,
        text: &str,
        path: &Path,
        mut origin: Name,
        depth: usize,
    ) -> Result<(), MasterError> {
        let fail = |line: usize, message: String| MasterError {
            file: path.to_owned(),
            line: Some(line),
            message,
        };
        let entries = lexer::entries(text).map_err(|e| fail(e.line, e.message))?;
        let mut owner: Option<Name> = None;
        for entry in entries {
            let first = &entry.tokens[0];
            if !entry.blank_owner && !first.quoted && first.text.starts_with(b"$") {
                self.directive(&entry, path, &mut origin, depth)?;
                continue;
            }
            let record = self
                .record(&entry, &origin, &mut owner)
                .map_err(|message| fail(entry.line, message))?;
            self.out.push(ParsedRecord {
                file: path.to_owned(),
                line: entry.line,
                ..record
            });
        }
        Ok(())
    }

    fn directive(
        &mut self,
        entry: &Entry,
        path: &Path,
        origin: &mut Name,
        depth: usize,
    ) -> Result<(), MasterError> {
        let fail = |message: String| MasterError {
            file: path.to_owned(),
            line: Some(entry.line),
            message,
        };
        let args = &entry.tokens[1..];
        let word = entry.tokens[0].shown().to_ascii_uppercase();
        match (word.as_str(), args) {
            ("$ORIGIN", [name]) => {
                *origin = name::parse(name, origin).map_err(fail)?;
            }
            ("$TTL", [ttl]) => {
                self.default_ttl = super::period(&ttl.shown()).map_err(fail)?;
            }
            ("$INCLUDE", [file] | [file, _]) => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(fail("$INCLUDE nested too deep".into()));
                }
                let target = self.include_path(path, file).map_err(fail)?;
                let text = std::fs::read_to_string(&target)
                    .map_err(|e| fail(format!("$INCLUDE {}: {e}", target.display())))?;
                let include_origin = match args.get(1) {
                    Some(o) => name::parse(o, origin).map_err(fail)?,
                    None => origin.clone(),
                };
                // The including file's origin and owner go on unchanged after it (RFC 1035 §5.1).
                self.file(&text, &target, include_origin, depth + 1)?;
            }
            ("$ORIGIN" | "$TTL" | "$INCLUDE", _) => {
                return Err(fail(format!("{word}: wrong number of arguments")));
            }
            _ => return Err(fail(format!("unknown directive {word}"))),
        }
        Ok(())
    }

    /// `$INCLUDE`'s file, relative to the including file's folder, inside the zones folder.
    fn include_path(&self, path: &Path, file: &Token) -> Result<PathBuf, String> {
        let named = PathBuf::from(file.shown());
        let joined = match named.is_absolute() {
            true => named,
            false => path.parent().unwrap_or(Path::new(".")).join(named),
        };
        let real = joined
            .canonicalize()
            .map_err(|e| format!("$INCLUDE {}: {e}", joined.display()))?;
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        match real.starts_with(&root) {
            true => Ok(real),
            false => Err(format!(
                "$INCLUDE {}: outside the zones folder {}",
                joined.display(),
                root.display()
            )),
        }
    }

    /// `[owner] [ttl] [class] type data` or `[owner] [class] [ttl] type data`.
    fn record(
        &self,
        entry: &Entry,
        origin: &Name,
        owner: &mut Option<Name>,
    ) -> Result<ParsedRecord, String> {
        let tokens = &entry.tokens;
        let mut at = 0;
        if !entry.blank_owner {
            *owner = Some(name::parse(&tokens[0], origin)?);
            at = 1;
        }
        let owner = owner
            .clone()
            .ok_or("no owner name, and no record before to take it from")?;
        let mut ttl = None;
        let mut class_seen = false;
        let rtype = loop {
            let token = tokens.get(at).ok_or("the record type is missing")?;
            at += 1;
            if token.quoted {
                return Err(format!("\"{}\" is not a record type", token.shown()));
            }
            let text = token.shown();
            if ttl.is_none() && text.as_bytes()[0].is_ascii_digit() {
                ttl = Some(super::period(&text)?);
            } else if !class_seen && (token.is("IN") || token.is("CLASS1")) {
                class_seen = true;
            } else if !class_seen && ["CH", "HS", "NONE", "ANY"].iter().any(|c| token.is(c)) {
                return Err(format!("class {text}: only IN is served"));
            } else {
                break types::code(&text).ok_or_else(|| format!("unknown record type {text}"))?;
            }
        };
        let rdata = parse_rdata(rtype, &tokens[at..], origin)?;
        Ok(ParsedRecord {
            owner,
            ttl: ttl.unwrap_or(self.default_ttl),
            rtype,
            rdata,
            file: PathBuf::new(),
            line: entry.line,
        })
    }
}
