//! Reads a zone file's TOML into a [`ZoneSpec`]. A large file (a zone of many pools) is parsed
//! in two halves at once, split at a `[pools.…]` header near its middle, when the halves stand
//! on their own: the head parses as a zone, the tail holds nothing but pools, and no pool is in
//! both. Then the result is the whole file's (a head that parses is closed — no string, array
//! or table open across the split — and a pool defined in both halves would be a duplicate).
//! Anything else, errors included, is parsed whole, so messages and line numbers are the
//! whole file's.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::spec::{PoolSpec, ZoneSpec};

/// Files smaller than this are parsed whole: a second thread is not worth it.
const SPLIT_ABOVE: usize = 4 << 20;

/// The tail of a split file: pools only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pools {
    pools: BTreeMap<String, PoolSpec>,
}

pub fn zone_spec(text: &str) -> Result<ZoneSpec, toml::de::Error> {
    if text.len() >= SPLIT_ABOVE
        && let Some(spec) = in_halves(text)
    {
        return Ok(spec);
    }
    toml::from_str(text)
}

fn in_halves(text: &str) -> Option<ZoneSpec> {
    let (head, tail) = text.split_at(split_point(text)?);
    let (head, tail) = std::thread::scope(|s| {
        let tail = s.spawn(|| toml::from_str::<Pools>(tail));
        (toml::from_str::<ZoneSpec>(head), tail.join())
    });
    let mut spec = head.ok()?;
    for (name, pool) in tail.ok()?.ok()?.pools {
        if spec.pools.insert(name, pool).is_some() {
            return None;
        }
    }
    Some(spec)
}

/// The start of the first `[pools.…]` header line in the second half of `text`.
fn split_point(text: &str) -> Option<usize> {
    let middle = text.len() / 2;
    let from = text.ceil_char_boundary(middle);
    text[from..].find("\n[pools.").map(|at| from + at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of parsing, on a text forced to split.
    fn both(text: &str) -> (Option<String>, Result<String, String>) {
        let split = in_halves(text).map(|s| format!("{s:?}"));
        let whole = toml::from_str::<ZoneSpec>(text)
            .map(|s| format!("{s:?}"))
            .map_err(|e| e.to_string());
        (split, whole)
    }

    /// A text that does not split cleanly: parsed whole, which `valid` says it is.
    fn whole_only(text: &str, valid: bool) {
        let (split, whole) = both(text);
        assert_eq!(split, None);
        assert_eq!(whole.is_ok(), valid, "{whole:?}");
    }

    const HEAD: &str = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n";

    fn pools(from: usize, to: usize) -> String {
        (from..to)
            .map(|i| format!("[pools.p{i}]\nendpoints = [\"10.0.0.{}\"]\n", i % 250))
            .collect()
    }

    #[test]
    fn halves_give_the_whole_files_spec_or_none() {
        let clean = format!("{HEAD}{}", pools(0, 40));
        let (split, whole) = both(&clean);
        assert_eq!(split, Some(whole.unwrap()));

        // A records table after the pools: the tail is not pools only.
        let records = format!(
            "{HEAD}{}[[records]]\nname = \"x\"\ntype = \"A\"\ndata = [\"192.0.2.1\"]\n",
            pools(0, 40)
        );
        whole_only(&records, true);

        // The same pool in both halves: a duplicate either way.
        let twice = format!("{HEAD}{}{}", pools(0, 40), pools(0, 1));
        whole_only(&twice, false);
        let twice = format!("{HEAD}[pools.p39]\nttl = 5\n{}", pools(0, 40));
        whole_only(&twice, false);

        // A multi-line string that holds a pools header at the split: the head does not parse.
        let lines: String = (0..400).map(|i| format!("\n[pools.q{i}]")).collect();
        let quoted = format!(
            "{HEAD}[[records]]\nname = \"t\"\ntype = \"TXT\"\ndata = [\"\"\"{lines}\n\"\"\"]\n{}",
            pools(0, 2)
        );
        whole_only(&quoted, true);

        // A subtable of a head pool in the tail: that pool again, so parsed whole.
        let sub = format!(
            "{HEAD}{}[pools.p1.nets]\n\"10.0.0.0/8\" = [\"a\"]\n",
            pools(0, 40)
        );
        whole_only(&sub, true);
    }

    #[test]
    fn the_split_is_at_a_header_line_past_the_middle() {
        let text = format!("{HEAD}{}", pools(0, 10));
        let at = split_point(&text).unwrap();
        assert!(at >= text.len() / 2);
        assert!(text[at..].starts_with("[pools.p"));
        assert!(split_point("[pools.a]\nx = 1\n").is_none());
    }
}
