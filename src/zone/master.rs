//! RFC 1035 master-file text through hickory-proto's parser: whole files (`<origin>.zone`, so an
//! existing BIND, NSD or Knot zone is served unchanged) and the `data` strings of TOML records.

use std::path::Path;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

/// A master-file parse failure, with the 1-based line where it could be placed.
#[derive(Debug)]
pub struct MasterError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parses a whole master file for `origin`. `path` lets `$INCLUDE` resolve relative names.
pub fn parse_file(text: &str, path: &Path, origin: &Name) -> Result<Vec<Record>, MasterError> {
    parse(text, Some(path), origin).map_err(|message| MasterError {
        line: failing_line(text, path, origin),
        message,
    })
}

/// Parses one record set written as master-file RDATA strings.
pub fn parse_rrset(
    origin: &Name,
    owner: &str,
    ttl: u32,
    rtype: RecordType,
    data: &str,
) -> Result<Vec<Record>, String> {
    if data.contains('\n') || data.contains(';') {
        return Err("record data must be one line without comments".into());
    }
    let line = format!("{owner} {ttl} IN {rtype} {data}\n");
    let records = parse(&line, None, origin)?;
    match records.iter().all(|r| r.record_type() == rtype) {
        true => Ok(records),
        false => Err(format!("not valid {rtype} data")),
    }
}

fn parse(text: &str, path: Option<&Path>, origin: &Name) -> Result<Vec<Record>, String> {
    let parser = Parser::new(text, path.map(Path::to_owned), Some(origin.clone()));
    let (_, sets) = parser.parse().map_err(|e| e.to_string())?;
    Ok(sets
        .into_values()
        .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .collect())
}

/// The parser does not say where it failed, so find the shortest prefix of whole lines that
/// fails (binary search; a prefix cut inside parentheses is not counted as failing).
fn failing_line(text: &str, path: &Path, origin: &Name) -> Option<usize> {
    let ends: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(text.len()))
        .collect();
    let fails = |lines: usize| {
        let prefix = &text[..ends[lines - 1]];
        match parse(prefix, Some(path), origin) {
            Ok(_) => false,
            Err(e) => !(e.contains("unclosed") || e.contains("end of input")),
        }
    };
    let (mut lo, mut hi) = (1, ends.len());
    if !fails(hi) {
        return None;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(mid) { hi = mid } else { lo = mid + 1 }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn relative_names_take_the_origin() {
        let recs = parse_rrset(&origin(), "@", 60, RecordType::MX, "10 mail").unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].data.to_string(), "10 mail.example.test.");
        assert_eq!(recs[0].name, origin());
    }

    #[test]
    fn bad_data_is_refused() {
        assert!(parse_rrset(&origin(), "x", 60, RecordType::A, "not-an-ip").is_err());
        assert!(
            parse_rrset(
                &origin(),
                "x",
                60,
                RecordType::A,
                "1.2.3.4\nx 1 IN A 1.2.3.5"
            )
            .is_err()
        );
    }

    #[test]
    fn failing_line_is_found() {
        let text = "$TTL 300\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\nbad IN A 999.1.1.1\nok IN A 192.0.2.2\n";
        let err = parse_file(text, Path::new("x.zone"), &origin()).unwrap_err();
        assert_eq!(err.line, Some(5), "{}", err.message);
    }
}
