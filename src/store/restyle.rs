//! An edited table written back into a zone document where it was and in the form it had: keys
//! whose value did not change keep their text (comments, layout, inline or not), changed ones
//! take the old form (an inline array stays inline, its unchanged items as they were), new keys
//! that hold a default are not written, and the table keeps its place in the file.

use toml_edit::{Array, Item, Table, Value};

/// Makes `old` hold what `new` holds, keeping `old`'s text wherever the value is the same.
/// `defaults`: values a key absent from `old` need not be written with.
pub fn merge(old: &mut Table, new: Table, defaults: &Table) {
    let keep: Vec<String> = new.iter().map(|(k, _)| k.to_owned()).collect();
    let gone: Vec<String> = old
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !keep.contains(k))
        .collect();
    for key in gone {
        old.remove(&key);
    }
    for (key, item) in new {
        match old.get_mut(&key) {
            Some(existing) if same(existing, &item) => {}
            Some(existing) => *existing = restyled(existing, item),
            None if defaults.get(&key).is_some_and(|d| same(d, &item)) => {}
            None => {
                old.insert(&key, item);
            }
        }
    }
}

/// `new` without the keys whose value is the default: how a table written afresh looks.
pub fn without_defaults(mut new: Table, defaults: &Table) -> Table {
    let default_keys: Vec<String> = new
        .iter()
        .filter(|(k, item)| defaults.get(k).is_some_and(|d| same(d, item)))
        .map(|(k, _)| k.to_owned())
        .collect();
    for key in default_keys {
        new.remove(&key);
    }
    new
}

/// Whether two items hold the same value, however they are written.
fn same(a: &Item, b: &Item) -> bool {
    let (a, b) = (normalized(a), normalized(b));
    a.is_some() && a == b
}

/// The value an item holds, free of its formatting.
fn normalized(item: &Item) -> Option<toml::Value> {
    let value = item.clone().into_value().ok()?;
    let mut table: toml::Table = format!("v = {value}").parse().ok()?;
    table.remove("v")
}

/// `new` in `old`'s form: a table merged into the old table (its place and comments kept), an
/// array of tables element by element, an inline value kept inline.
fn restyled(old: &mut Item, new: Item) -> Item {
    match (old, new) {
        (Item::Table(old_table), Item::Table(new_table)) => {
            merge(old_table, new_table, &Table::new());
            Item::Table(old_table.clone())
        }
        (Item::ArrayOfTables(old_array), Item::ArrayOfTables(new_array))
            if old_array.len() == new_array.len() =>
        {
            for (old_table, new_table) in old_array.iter_mut().zip(new_array) {
                merge(old_table, new_table, &Table::new());
            }
            Item::ArrayOfTables(old_array.clone())
        }
        (Item::Value(old_value), new) => match new.into_value() {
            Ok(mut value) => {
                if let (Value::Array(old_array), Value::Array(new_array)) =
                    (&*old_value, &mut value)
                {
                    restyle_array(old_array, new_array);
                }
                *value.decor_mut() = old_value.decor().clone();
                Item::Value(value)
            }
            Err(item) => item,
        },
        (_, new) => new,
    }
}

/// `new`'s items as `old` wrote them where they are unchanged; a new one written as the last
/// one was laid out, and a table of an address alone as the address (an endpoint's short form).
fn restyle_array(old: &Array, new: &mut Array) {
    let last_decor = old.iter().last().map(|v| v.decor().clone());
    for value in new.iter_mut() {
        if let Value::InlineTable(t) = value
            && t.len() == 1
            && let Some(address) = t.get("address").cloned()
        {
            *value = address;
        }
        let item = Item::Value(value.clone());
        if let Some(kept) = old.iter().find(|o| same(&Item::Value((*o).clone()), &item)) {
            *value = kept.clone();
        } else if let Some(decor) = &last_decor {
            *value.decor_mut() = decor.clone();
        }
    }
    new.set_trailing(old.trailing().clone());
    new.set_trailing_comma(old.trailing_comma());
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::DocumentMut;

    #[test]
    fn unchanged_keys_keep_their_text_and_new_endpoints_follow_the_layout() {
        let text = "# the web pool\n[pools.www] # keep me\npolicy = \"weighted\"   # aligned\n\
                    endpoints = [\n  \"192.0.2.1\",\n  { address = \"192.0.2.2\", weight = 3 },\n]\n\n\
                    [pools.api]\nendpoints = [\"192.0.2.9\"]\n";
        let mut doc: DocumentMut = text.parse().unwrap();
        let new: DocumentMut = "policy = \"weighted\"\nttl = 30\nall_down = \"serve_all\"\n\
            [[endpoints]]\naddress = \"192.0.2.1\"\n[[endpoints]]\naddress = \"192.0.2.2\"\nweight = 3\n\
            [[endpoints]]\naddress = \"192.0.2.3\"\n"
            .parse()
            .unwrap();
        let defaults: DocumentMut =
            "policy = \"round_robin\"\nttl = 30\nall_down = \"serve_all\"\n"
                .parse()
                .unwrap();
        let pools = doc["pools"].as_table_mut().unwrap();
        let www = pools.get_mut("www").unwrap().as_table_mut().unwrap();
        merge(www, new.as_table().clone(), defaults.as_table());
        assert_eq!(
            doc.to_string(),
            "# the web pool\n[pools.www] # keep me\npolicy = \"weighted\"   # aligned\n\
             endpoints = [\n  \"192.0.2.1\",\n  { address = \"192.0.2.2\", weight = 3 },\n  \"192.0.2.3\",\n]\n\n\
             [pools.api]\nendpoints = [\"192.0.2.9\"]\n"
        );
    }
}
