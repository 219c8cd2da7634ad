//! Domain names in presentation form (RFC 1035 §5.1): labels split at unescaped dots, `\.` and
//! `\DDD` as bytes of a label, `@` for the origin, relative names completed by it; and back,
//! with every byte that is not a plain printable character escaped.

use hickory_proto::rr::Name;

use super::lexer::{Token, unescape};

/// The most octets a name has on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;

/// Reads the name `token` stands for, relative names completed by `origin`.
pub fn parse(token: &Token, origin: &Name) -> Result<Name, String> {
    if token.text == b"@" && !token.quoted {
        return Ok(origin.clone());
    }
    if token.text.is_empty() {
        return Err("an empty name".into());
    }
    if token.text == b"." {
        return Ok(Name::root());
    }
    let mut labels = Vec::new();
    let mut label = Vec::new();
    let mut at = 0;
    let text = &token.text;
    let mut absolute = false;
    while at < text.len() {
        match text[at] {
            b'.' => {
                if label.is_empty() {
                    return Err(format!("{}: an empty label", token.shown()));
                }
                labels.push(unescape(&label)?);
                label.clear();
                at += 1;
                absolute = at == text.len();
            }
            b'\\' => {
                let len = if text.get(at + 1).is_some_and(u8::is_ascii_digit) {
                    4
                } else {
                    2
                };
                let end = (at + len).min(text.len());
                label.extend_from_slice(&text[at..end]);
                at = end;
            }
            b => {
                label.push(b);
                at += 1;
            }
        }
    }
    if !label.is_empty() {
        labels.push(unescape(&label)?);
    }
    from_labels(labels, (!absolute).then_some(origin))
        .map_err(|e| format!("{}: {e}", token.shown()))
}

/// A name of `labels`, then `origin`'s if it is relative; every length checked.
pub fn from_labels(labels: Vec<Vec<u8>>, origin: Option<&Name>) -> Result<Name, String> {
    if let Some(label) = labels.iter().find(|l| l.len() > 63) {
        return Err(format!("a label of {} octets (at most 63)", label.len()));
    }
    let own: usize = labels.iter().map(|l| l.len() + 1).sum();
    let octets = own + origin.map_or(1, wire_len);
    if octets > MAX_NAME {
        return Err(format!("a name of {octets} octets (at most {MAX_NAME})"));
    }
    let name = Name::from_labels(labels).map_err(|e| e.to_string())?;
    match origin {
        Some(origin) => name.append_domain(origin).map_err(|e| e.to_string()),
        None => Ok(name),
    }
}

/// The octets `name` takes on the wire, uncompressed.
pub fn wire_len(name: &Name) -> usize {
    name.iter().map(|l| l.len() + 1).sum::<usize>() + 1
}

/// `name` in presentation form: absolute (a final dot), special and unprintable bytes escaped.
pub fn write(out: &mut String, name: &Name) {
    if name.is_root() {
        out.push('.');
        return;
    }
    for label in name.iter() {
        write_label(out, label);
        out.push('.');
    }
}

/// One label: `.`, `\`, `"`, `;`, `(`, `)`, `@` and `$` as `\X`, other bytes outside the
/// printable ASCII range as `\DDD` (as Knot and BIND write them).
pub fn write_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'@' | b'$' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
}

/// `name` in presentation form.
pub fn to_text(name: &Name) -> String {
    let mut out = String::new();
    write(&mut out, name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token {
            text: text.as_bytes().to_vec(),
            quoted: false,
            line: 1,
        }
    }

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn escaped_dots_and_spaces_stay_in_their_label() {
        let name = parse(&token("a\\.b\\032c.d"), &origin()).unwrap();
        let labels: Vec<&[u8]> = name.iter().collect();
        assert_eq!(labels[0], b"a.b c");
        assert_eq!(labels.len(), 4);
        assert_eq!(to_text(&name), "a\\.b\\032c.d.example.test.");
    }

    #[test]
    fn relative_absolute_and_the_origin() {
        assert_eq!(
            to_text(&parse(&token("@"), &origin()).unwrap()),
            "example.test."
        );
        assert_eq!(
            to_text(&parse(&token("www"), &origin()).unwrap()),
            "www.example.test."
        );
        assert_eq!(to_text(&parse(&token("a.b."), &origin()).unwrap()), "a.b.");
        assert_eq!(to_text(&parse(&token("."), &origin()).unwrap()), ".");
    }

    #[test]
    fn lengths_are_checked() {
        let long = "a".repeat(64);
        assert!(parse(&token(&long), &origin()).is_err());
        let label = "a".repeat(63);
        let name = [label.as_str(); 4].join(".") + ".";
        assert!(parse(&token(&name), &origin()).is_err(), "256 octets");
        let name = [
            label.as_str(),
            label.as_str(),
            label.as_str(),
            &"a".repeat(61),
        ]
        .join(".")
            + ".";
        assert_eq!(wire_len(&parse(&token(&name), &origin()).unwrap()), 255);
        assert!(parse(&token("a..b"), &origin()).is_err());
    }
}
