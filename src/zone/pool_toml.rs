//! The pools of a large zone file read without the toml crate's document tree: in a file of a
//! million endpoints the tree's small allocations were two thirds of the load. The pieces after
//! the first of a split file (see `parse`) hold only `[pools.<name>]` tables, written in a
//! plain subset of TOML — basic strings without escapes, decimal integers, booleans, arrays,
//! one-line inline tables, comments —; this reads that subset into values borrowed from the
//! text and gives them to serde as the toml crate gives its own. Anything outside the subset (a
//! float, an escape, a dotted key, a subtable, a duplicate key) is `None`: the piece then goes
//! to the toml crate, whose result or error stands.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};

use super::spec::PoolSpec;

/// A value of the subset, its strings borrowed from the text.
#[derive(Debug)]
enum Value<'t> {
    Str(&'t str),
    Int(i64),
    Bool(bool),
    Array(Vec<Value<'t>>),
    Table(Table<'t>),
}

/// A table's entries in the order written (a pool's have a few dozen keys at most).
type Table<'t> = Vec<(&'t str, Value<'t>)>;

/// The pools `text` defines, where it is nothing but `[pools.<name>]` tables in the subset.
pub(super) fn pools(text: &str) -> Option<BTreeMap<String, PoolSpec>> {
    let mut reader = Reader { text, at: 0 };
    let mut pools = BTreeMap::new();
    let mut open: Option<(&str, Table<'_>)> = None;
    loop {
        reader.skip_blank()?;
        match reader.peek() {
            None => break,
            Some(b'[') => {
                if let Some((name, table)) = open.take() {
                    insert(&mut pools, name, table)?;
                }
                open = Some((reader.header()?, Vec::new()));
            }
            Some(_) => {
                let (key, value) = reader.key_value()?;
                add(&mut open.as_mut()?.1, key, value)?;
            }
        }
        reader.end_of_line()?;
    }
    // No pool at all: not a piece of pools (the toml crate says what is missing).
    let (name, table) = open?;
    insert(&mut pools, name, table)?;
    Some(pools)
}

/// Pool `name` made from `table`; `None` where it does not deserialize or is defined twice.
fn insert(pools: &mut BTreeMap<String, PoolSpec>, name: &str, table: Table<'_>) -> Option<()> {
    let spec = PoolSpec::deserialize(Value::Table(table)).ok()?;
    pools.insert(name.to_owned(), spec).is_none().then_some(())
}

/// `key = value` into `table`, unless the key is there already (an error in TOML).
fn add<'t>(table: &mut Table<'t>, key: &'t str, value: Value<'t>) -> Option<()> {
    if table.iter().any(|(k, _)| *k == key) {
        return None;
    }
    table.push((key, value));
    Some(())
}

struct Reader<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Reader<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// A comment, up to its newline; `None` for a control character in it (TOML forbids them).
    fn skip_comment(&mut self) -> Option<()> {
        if self.peek() != Some(b'#') {
            return Some(());
        }
        while let Some(byte) = self.peek() {
            match byte {
                b'\n' => break,
                b'\t' => {}
                0..=0x1f | 0x7f => return None,
                _ => {}
            }
            self.at += 1;
        }
        Some(())
    }

    /// A newline (LF or CRLF) or the end of the text.
    fn newline(&mut self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some(b'\n') => self.expect(b'\n'),
            Some(b'\r') => {
                self.at += 1;
                self.expect(b'\n')
            }
            Some(_) => None,
        }
    }

    /// Spaces, comments and newlines: between lines, and between an array's values.
    fn skip_blank(&mut self) -> Option<()> {
        loop {
            self.skip_spaces();
            self.skip_comment()?;
            match self.peek() {
                Some(b'\n' | b'\r') => self.newline()?,
                _ => return Some(()),
            }
        }
    }

    /// What may follow a header or a key's value on its line.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_spaces();
        self.skip_comment()?;
        self.newline()
    }

    /// `[pools.<name>]`: the name.
    fn header(&mut self) -> Option<&'t str> {
        self.expect(b'[')?;
        self.skip_spaces();
        (self.key()? == "pools").then_some(())?;
        self.skip_spaces();
        self.expect(b'.')?;
        self.skip_spaces();
        let name = self.key()?;
        self.skip_spaces();
        self.expect(b']')?;
        Some(name)
    }

    /// A bare key or one quoted as a basic string (dotted keys are outside the subset).
    fn key(&mut self) -> Option<&'t str> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.text[start..self.at])
    }

    fn key_value(&mut self) -> Option<(&'t str, Value<'t>)> {
        let key = self.key()?;
        self.skip_spaces();
        self.expect(b'=')?;
        self.skip_spaces();
        Some((key, self.value()?))
    }

    fn value(&mut self) -> Option<Value<'t>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'[' => self.array(),
            b'{' => self.inline_table(),
            b't' => self.word("true").map(|()| Value::Bool(true)),
            b'f' => self.word("false").map(|()| Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    /// A basic string on one line without escapes (nor tabs, which TOML allows: the toml crate
    /// reads those).
    fn string(&mut self) -> Option<&'t str> {
        self.expect(b'"')?;
        if self.text[self.at..].starts_with("\"\"") {
            return None; // a multi-line string
        }
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f | 0x7f => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        Some(&self.text[start..self.at - 1])
    }

    /// `word`, ended as a value must be.
    fn word(&mut self, word: &str) -> Option<()> {
        self.text[self.at..].starts_with(word).then_some(())?;
        self.at += word.len();
        self.ended()
    }

    /// Whether a scalar ends here: at spaces, a newline, a comment, a separator or the end.
    fn ended(&self) -> Option<()> {
        let next = self.peek();
        let ends = matches!(
            next,
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b'#' | b',' | b']' | b'}')
        );
        ends.then_some(())
    }

    /// A decimal integer: no sign but `-`, no leading zero, no `_` (nor floats, dates, bases).
    fn integer(&mut self) -> Option<Value<'t>> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let count = self.at - digits;
        if count == 0 || (count > 1 && self.text.as_bytes()[digits] == b'0') {
            return None;
        }
        self.ended()?;
        self.text[start..self.at].parse().ok().map(Value::Int)
    }

    /// An array, over lines if need be, with comments and a trailing comma as TOML allows.
    fn array(&mut self) -> Option<Value<'t>> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            if self.expect(b']').is_some() {
                return Some(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_blank()?;
            if self.closed_after_item(b']')? {
                return Some(Value::Array(items));
            }
        }
    }

    /// `{ key = value, … }` on one line, without a trailing comma.
    fn inline_table(&mut self) -> Option<Value<'t>> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        self.skip_spaces();
        if self.expect(b'}').is_some() {
            return Some(Value::Table(entries));
        }
        loop {
            self.skip_spaces();
            let (key, value) = self.key_value()?;
            add(&mut entries, key, value)?;
            self.skip_spaces();
            if self.closed_after_item(b'}')? {
                return Some(Value::Table(entries));
            }
        }
    }

    /// After an array's or inline table's item: `,` (false: another may follow) or `close`
    /// (true); `None` for anything else.
    fn closed_after_item(&mut self, close: u8) -> Option<bool> {
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Value<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// As the toml crate's deserializer visits its values: integers as `i64`, `Option`s as
/// `Some`, enums from their variant's name (an enum written as a table is not in the subset).
impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Int(n) => visitor.visit_i64(n),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Table(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Value::Str(s) => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(s)),
            _ => Err(de::Error::custom("an enum written as a table")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pools {
        pools: BTreeMap<String, PoolSpec>,
    }

    /// Whether the subset reader read `text`; where it did, the toml crate reads the same.
    fn read_alike(text: &str) -> bool {
        let Some(fast) = pools(text) else {
            return false;
        };
        let toml = toml::from_str::<Pools>(text).map(|p| format!("{:?}", p.pools));
        assert_eq!(
            Ok(format!("{fast:?}")),
            toml.map_err(|e| e.to_string()),
            "{text}"
        );
        true
    }

    fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
        from[rng.usize(..from.len())]
    }

    /// One endpoint in one of the forms pools are written in.
    fn endpoint(rng: &mut fastrand::Rng, n: usize) -> String {
        let address = match rng.bool() {
            true => format!("\"10.0.{}.{}\"", n / 250, n % 250),
            false => format!("\"2001:db8::{n:x}\""),
        };
        let extra = [
            "",
            ", weight = 3",
            ", drain = true",
            ", tier = 1",
            ", force = \"down\"",
            ", check = false",
            ",weight=0",
        ];
        match rng.u8(0..3) {
            0 => address,
            _ => format!("{{ address = {address}{} }}", pick(rng, &extra)),
        }
    }

    /// A piece of pools: mostly the subset, now and then something outside it.
    fn piece(rng: &mut fastrand::Rng) -> String {
        let mut text = String::new();
        for p in 0..rng.usize(1..5) {
            let name = pick(rng, &["p", "\"www.example-", "x_-", "\"\u{e9}"]);
            let close = if name.starts_with('"') { "\"" } else { "" };
            let space = pick(rng, &["", " "]);
            let note = pick(rng, &["", "  # pool\t note", " "]);
            text += &format!("[{space}pools.{name}{p}{close}{space}]{note}\n");
            let settings = [
                "policy = \"round_robin\"",
                "policy = \"weighted\"",
                "ttl = 30",
                "ttl = 0",
                "max_answers = 4",
                "all_down = \"servfail\"",
                "fallback = \"p0\"",
                "slow_start = \"30s\"",
                "default = [\"a\", \"b\",]",
                "preempt = false",
                "\tmin_ttl = 2 # indented",
                "# a comment line",
                "",
            ];
            let outside = [
                "min_share = 0.5",
                "ttl = 1_0",
                "ttl = +5",
                "ttl = 07",
                "fallback = 'p0'",
                "fallback = \"p\\u0030\"",
                "nets.\"10.0.0.0/8\" = [\"a\"]",
            ];
            for _ in 0..rng.usize(0..4) {
                text += match rng.u8(0..16) {
                    0 => pick(rng, &outside),
                    _ => pick(rng, &settings),
                };
                text += pick(rng, &["\n", "\r\n"]);
            }
            let endpoints: Vec<String> = (0..rng.usize(1..6)).map(|n| endpoint(rng, n)).collect();
            let gap = pick(rng, &[", ", ",\n  ", " , # note\n", ",\r\n"]);
            let tail = pick(rng, &["", ",", ",\n", "\n"]);
            text += &format!("endpoints = [{}{tail}]\n", endpoints.join(gap));
            if rng.u8(0..20) == 0 {
                text += pick(rng, &["[pools.p0.nets]\n", "[[pools.y]]\n", "\n[pools]\n"]);
            }
        }
        text
    }

    /// `text` with a few characters deleted or put in at random places.
    fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..bytes.len());
            match rng.bool() {
                true => drop(bytes.remove(at)),
                false => {
                    let chars = b"\"[]{},=.#\n\r\t 0-a'\x01";
                    bytes.insert(at, chars[rng.usize(..chars.len())]);
                }
            }
        }
        String::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn the_subset_reads_as_the_toml_crate_reads_it() {
        let mut rng = fastrand::Rng::with_seed(20);
        let (mut read, mut pieces) = (0, 0);
        for _ in 0..5000 {
            let text = piece(&mut rng);
            pieces += 1;
            read += usize::from(read_alike(&text));
            for _ in 0..3 {
                read_alike(&mutate(&mut rng, &text));
            }
        }
        // Most pieces are in the subset (the rest go to the toml crate).
        assert!((pieces / 4..pieces).contains(&read), "{read} of {pieces}");
    }

    #[test]
    fn large_zone_pools_are_in_the_subset_and_the_rest_is_not() {
        let tables = "[pools.p1]\npolicy = \"round_robin\"\nttl = 30\nmax_answers = 4\n\
                      endpoints = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\" }]\n";
        let addresses = "[pools.p2]\nendpoints = [\"10.0.0.1\", \"2001:db8::1\"]\n";
        assert!(read_alike(&format!("{tables}{addresses}")));
        let p1 = &pools(tables).unwrap()["p1"];
        assert_eq!(
            (p1.ttl, p1.max_answers, p1.endpoints.len()),
            (30, Some(4), 2)
        );
        for outside in [
            "[pools.p1]\nmin_share = 0.5\n",
            "[pools.p1]\nfallback = \"\\u0070\"\n",
            "[pools.p1]\nnets.x = [\"a\"]\n",
            "[pools.p1]\n[pools.p1.nets]\nx = [\"a\"]\n",
            "[pools.p1]\n[pools.p1]\n",
            "[pools.p1]\nttl = 1\nttl = 2\n",
            "ttl = 1\n[pools.p1]\n",
            "[records]\n",
            "[pools.p1]\nendpoints = [{ address = \"10.0.0.1\", }]\n",
            "[pools.p1]\nfallback = \"\"\"p\"\"\"\n",
        ] {
            assert!(pools(outside).is_none(), "{outside}");
        }
    }
}
