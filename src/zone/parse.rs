//! Reads a zone file's TOML into a [`ZoneSpec`]. A large file (a zone of many pools) is parsed
//! in pieces of about [`PIECE`] bytes, split at `[pools.…]` header lines, on as many threads as
//! there are cores, when the pieces stand on their own: the first parses as a zone, the others
//! hold nothing but pools, and no pool is in two. Then the result is the whole file's (a piece
//! that parses is closed — no string, array or table open across a split — and a pool defined
//! in two pieces would be a duplicate). Small pieces also keep the parser's document tree
//! small: a piece's is freed before the next is read, whereas the tree of a whole file of a
//! million endpoints is larger than the zone it describes many times over. The pieces of pools
//! are read by `pool_toml` where they are written in its subset of TOML (as a generated zone's
//! are), by the toml crate where not. Anything else, errors included, is parsed whole, so messages and line
//! numbers are the whole file's.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::spec::{PoolSpec, ZoneSpec};

/// Files smaller than this are parsed whole: a second thread is not worth it.
const SPLIT_ABOVE: usize = 4 << 20;

/// The size of the pieces a larger file is parsed in.
const PIECE: usize = 1 << 20;

/// The tail of a split file: pools only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pools {
    pools: BTreeMap<String, PoolSpec>,
}

pub fn zone_spec(text: &str) -> Result<ZoneSpec, toml::de::Error> {
    if text.len() >= SPLIT_ABOVE
        && let Some(spec) = in_pieces(text, PIECE)
    {
        return Ok(spec);
    }
    toml::from_str(text)
}

/// What one piece parsed to: the zone (the first piece) or pools (the others); `None` if it
/// did not parse.
enum Parsed {
    Zone(Box<ZoneSpec>),
    Pools(BTreeMap<String, PoolSpec>),
}

fn in_pieces(text: &str, size: usize) -> Option<ZoneSpec> {
    let pieces = split(text, size);
    if pieces.len() < 2 {
        return None;
    }
    let parse = |i: usize| -> Option<Parsed> {
        match i {
            0 => toml::from_str(pieces[0])
                .ok()
                .map(|z| Parsed::Zone(Box::new(z))),
            i => super::pool_toml::pools(pieces[i])
                .or_else(|| toml::from_str::<Pools>(pieces[i]).ok().map(|p| p.pools))
                .map(Parsed::Pools),
        }
    };
    // Each thread takes the next piece not yet taken.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= pieces.len() {
                return done;
            }
            done.push((i, parse(i)));
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let mut parsed: Vec<(usize, Option<Parsed>)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().expect("parsing does not panic"));
        }
        all
    });
    parsed.sort_unstable_by_key(|(i, _)| *i);
    let mut parsed = parsed.into_iter().map(|(_, p)| p);
    let Some(Parsed::Zone(spec)) = parsed.next()? else {
        return None;
    };
    let mut spec = *spec;
    for piece in parsed {
        let Parsed::Pools(pools) = piece? else {
            return None;
        };
        for (name, pool) in pools {
            if spec.pools.insert(name, pool).is_some() {
                return None;
            }
        }
    }
    Some(spec)
}

/// `text` cut into pieces of about `size` bytes, each after the first starting at a
/// `[pools.…]` header line.
fn split(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while let Some(at) = split_point(text, start + size) {
        pieces.push(&text[start..at]);
        start = at;
    }
    pieces.push(&text[start..]);
    pieces
}

/// The start of the first `[pools.…]` header line at or after `from`.
fn split_point(text: &str, from: usize) -> Option<usize> {
    let from = text.ceil_char_boundary(from.min(text.len()));
    text[from..].find("\n[pools.").map(|at| from + at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of parsing, on a text forced to split in two halves, and in pieces of a
    /// few pools and of one (which give the same, or the test fails).
    fn both(text: &str) -> (Option<String>, Result<String, String>) {
        let by_size: Vec<Option<String>> = [text.len() / 2, 200, 1]
            .into_iter()
            .map(|size| in_pieces(text, size).map(|s| format!("{s:?}")))
            .collect();
        assert!(by_size.iter().all(|s| *s == by_size[0]), "{by_size:?}");
        let whole = toml::from_str::<ZoneSpec>(text)
            .map(|s| format!("{s:?}"))
            .map_err(|e| e.to_string());
        (by_size[0].clone(), whole)
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
    fn pieces_give_the_whole_files_spec_or_none() {
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
    fn pieces_start_at_header_lines_and_make_the_whole() {
        let text = format!("{HEAD}{}", pools(0, 10));
        let at = split_point(&text, text.len() / 2).unwrap();
        assert!(at >= text.len() / 2);
        assert!(text[at..].starts_with("[pools.p"));
        assert!(split_point("[pools.a]\nx = 1\n", 0).is_none());
        let pieces = split(&text, 100);
        assert!(pieces.len() > 2, "{pieces:?}");
        assert!(pieces[1..].iter().all(|p| p.starts_with("[pools.p")));
        let last = pieces.len() - 1;
        assert!(pieces[..last].iter().all(|p| p.len() >= 100));
        assert_eq!(pieces.concat(), text);
    }
}
