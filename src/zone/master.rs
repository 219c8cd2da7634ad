//! Zone records from presentation text, through the one reader in `presentation`: whole master
//! files (`<origin>.zone`, so an existing BIND, NSD or Knot zone is served unchanged) and the
//! `data` strings of TOML records.

use std::path::Path;

use hickory_proto::rr::{Name, Record, RecordType};

use crate::presentation::{self, master};

pub use master::MasterError;

/// Parses a whole master file for `origin`; `$INCLUDE` may name files in its folder and below.
pub fn parse_file(text: &str, path: &Path, origin: &Name) -> Result<Vec<Record>, MasterError> {
    let root = path.parent().unwrap_or(Path::new("."));
    let parsed = master::parse(text, path, origin, root)?;
    parsed
        .into_iter()
        .map(|r| {
            presentation::record(r.owner, r.ttl, r.rtype, r.rdata).map_err(|message| MasterError {
                file: r.file,
                line: Some(r.line),
                message,
            })
        })
        .collect()
}

/// Parses one record written as RDATA text for `owner` (relative to `origin`).
pub fn parse_record(
    origin: &Name,
    owner: &str,
    ttl: u32,
    rtype: RecordType,
    data: &str,
) -> Result<Record, String> {
    let owner = parse_owner(origin, owner)?;
    let wire = presentation::parse_data(u16::from(rtype), data, origin)?;
    presentation::record(owner, ttl, u16::from(rtype), wire)
}

/// An owner name as the zone model writes it: relative to `origin`, `@`, or absolute.
pub fn parse_owner(origin: &Name, owner: &str) -> Result<Name, String> {
    let entries = presentation::entries(owner).map_err(|e| e.message)?;
    match entries.as_slice() {
        [entry] if entry.tokens.len() == 1 && !entry.blank_owner => {
            presentation::parse_name_token(&entry.tokens[0], origin)
        }
        _ => Err(format!("{owner:?} is not one name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn relative_names_take_the_origin() {
        let rec = parse_record(&origin(), "@", 60, RecordType::MX, "10 mail").unwrap();
        assert_eq!(presentation::record_text(&rec), "10 mail.example.test.");
        assert_eq!(rec.name, origin());
    }

    #[test]
    fn bad_data_is_refused() {
        assert!(parse_record(&origin(), "x", 60, RecordType::A, "not-an-ip").is_err());
        let two_lines = "1.2.3.4\nx 1 IN A 1.2.3.5";
        assert!(parse_record(&origin(), "x", 60, RecordType::A, two_lines).is_err());
        assert!(parse_owner(&origin(), "a b").is_err());
    }

    #[test]
    fn failing_line_is_found() {
        let text = "$TTL 300\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\nbad IN A 999.1.1.1\nok IN A 192.0.2.2\n";
        let err = parse_file(text, Path::new("x.zone"), &origin()).unwrap_err();
        assert_eq!(err.line, Some(5), "{}", err.message);
    }
}
