//! Where a field stands in a TOML file: turns byte offsets and field paths into line numbers so
//! that every zone error names the file, the line and the field.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::build::{FieldPath, Seg};

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The innermost field whose value contains `offset` (for serde errors, which give a span).
pub fn path_at(text: &str, offset: usize) -> FieldPath {
    let mut path = FieldPath::default();
    if let Ok(table) = DeTable::parse(text) {
        walk_table(table.get_ref(), offset, &mut path);
    }
    path
}

/// Header tables (`[pools.www]`) have spans that do not cover their contents, so every branch
/// is searched rather than only the ones whose span contains the offset.
fn walk_table(table: &DeTable<'_>, offset: usize, path: &mut FieldPath) -> bool {
    for (key, value) in table.iter() {
        path.0.push(Seg::Key(key.get_ref().to_string()));
        if key.span().contains(&offset) || walk_value(value, offset, path) {
            return true;
        }
        path.0.pop();
    }
    false
}

fn walk_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut FieldPath) -> bool {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, offset, path) || value.span().contains(&offset),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.0.push(Seg::Index(i));
                if walk_value(item, offset, path) {
                    return true;
                }
                path.0.pop();
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// The line of the deepest part of `path` present in the file (for validation errors).
pub fn line_of_path(text: &str, path: &FieldPath) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table_ref: Option<&DeTable<'_>> = Some(table.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in &path.0 {
        let next = match (seg, table_ref, value) {
            (Seg::Key(k), Some(t), _) => {
                t.iter()
                    .find(|(key, _)| key.get_ref() == k)
                    .map(|(key, v)| {
                        span = Some(key.span().start);
                        v
                    })
            }
            (Seg::Index(i), _, Some(v)) => match v.get_ref() {
                DeValue::Array(items) => items.get(*i).inspect(|item| {
                    span = Some(item.span().start);
                }),
                _ => None,
            },
            _ => None,
        };
        let Some(next) = next else { break };
        value = Some(next);
        table_ref = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span.map(|offset| line_of(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::build::Seg::{Index, Key};

    const TEXT: &str = "ttl = 60\n\n[[records]]\nname = \"a\"\ntype = \"A\"\ndata = [\"192.0.2.1\"]\n\n[[records]]\nname = \"b\"\ntype = \"A\"\ndata = [\"x\", \"y\"]\n\n[pools.www]\nendpoints = [\n  { address = \"192.0.2.1\" },\n  { address = \"192.0.2.2\", weight = 0 },\n]\n";

    #[test]
    fn paths_map_to_lines() {
        let path = FieldPath(vec![
            Key("records".into()),
            Index(1),
            Key("data".into()),
            Index(1),
        ]);
        assert_eq!(line_of_path(TEXT, &path), Some(11));
        let path = FieldPath(vec![
            Key("pools".into()),
            Key("www".into()),
            Key("endpoints".into()),
            Index(1),
            Key("weight".into()),
        ]);
        assert_eq!(line_of_path(TEXT, &path), Some(16));
    }

    #[test]
    fn offsets_map_to_paths() {
        let offset = TEXT.find("weight").unwrap();
        assert_eq!(
            path_at(TEXT, offset).to_string(),
            "pools.www.endpoints[1].weight"
        );
    }
}
