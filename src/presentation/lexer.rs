//! RFC 1035 §5.1 tokens: a text cut into entries (one record or directive each), an entry into
//! tokens. Quotes, `\` escapes, `;` comments and parentheses that carry an entry over several
//! lines are handled here; what a token means is the reader's business, so a token keeps its
//! escapes as written.

/// One word of an entry, with its escapes as written and its quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: Vec<u8>,
    /// It was written in double quotes (so `@`, `\#` and `(` are not special in it).
    pub quoted: bool,
    /// The 1-based line it is on.
    pub line: usize,
}

impl Token {
    /// Whether it is the unquoted word `word` (ASCII case-insensitive).
    pub fn is(&self, word: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(word.as_bytes())
    }

    /// The token as written, for error messages.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// One record or directive: its tokens, and whether its first line began with a blank (the
/// owner is then the previous entry's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub blank_owner: bool,
    pub tokens: Vec<Token>,
}

/// A text that cannot be cut into tokens, and the line where that shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub message: String,
}

/// Cuts `text` into entries. Blank and comment-only lines make none.
pub fn entries(text: &str) -> Result<Vec<Entry>, LexError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut at = 0;
    let mut depth = 0usize;
    let mut open_line = 0;
    let mut current: Option<Entry> = None;
    let fail = |line, message: &str| LexError {
        line,
        message: message.to_owned(),
    };
    while at < bytes.len() {
        let b = bytes[at];
        match b {
            b'\n' => {
                line += 1;
                at += 1;
                if depth == 0 {
                    out.extend(current.take().filter(|e| !e.tokens.is_empty()));
                }
            }
            b' ' | b'\t' | b'\r' => at += 1,
            b';' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'(' => {
                depth += 1;
                open_line = line;
                at += 1;
                start(&mut current, bytes, at - 1, line);
            }
            b')' => {
                if depth == 0 {
                    return Err(fail(line, "')' without '('"));
                }
                depth -= 1;
                at += 1;
            }
            b'"' => {
                let token_line = line;
                let (text, next) = quoted(bytes, at + 1)
                    .ok_or_else(|| fail(token_line, "a quoted string is not closed on its line"))?;
                at = next;
                start(&mut current, bytes, at, token_line);
                push(&mut current, text, true, token_line);
            }
            _ => {
                let begin = at;
                while at < bytes.len() {
                    match bytes[at] {
                        b'\\' => match bytes.get(at + 1) {
                            None | Some(b'\n' | b'\r') => {
                                return Err(fail(line, "a '\\' ends the line"));
                            }
                            Some(_) => at += 2,
                        },
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                        _ => at += 1,
                    }
                }
                start(&mut current, bytes, begin, line);
                push(&mut current, bytes[begin..at].to_vec(), false, line);
            }
        }
    }
    if depth > 0 {
        return Err(fail(open_line, "'(' is never closed"));
    }
    out.extend(current.take().filter(|e| !e.tokens.is_empty()));
    Ok(out)
}

/// Opens the entry that a token at `at` begins, if none is open; a line that starts with a
/// blank leaves its owner to the entry before.
fn start(current: &mut Option<Entry>, bytes: &[u8], at: usize, line: usize) {
    if current.is_none() {
        let line_start = bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        *current = Some(Entry {
            line,
            blank_owner: matches!(bytes.get(line_start), Some(b' ' | b'\t')),
            tokens: Vec::new(),
        });
    }
}

fn push(current: &mut Option<Entry>, text: Vec<u8>, quoted: bool, line: usize) {
    if let Some(entry) = current {
        entry.tokens.push(Token { text, quoted, line });
    }
}

/// The inside of a quoted string that starts at `at` (after the `"`), escapes kept, and where
/// the text goes on after the closing quote. `None`: not closed on its line.
fn quoted(bytes: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let begin = at;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if at + 1 < bytes.len() => at += 2,
            b'"' => return Some((bytes[begin..at].to_vec(), at + 1)),
            b'\n' => return None,
            _ => at += 1,
        }
    }
    None
}

/// The bytes a token stands for: `\DDD` is the byte DDD (0–255), `\X` is X (RFC 1035 §5.1).
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at] != b'\\' {
            out.push(text[at]);
            at += 1;
            continue;
        }
        let rest = &text[at + 1..];
        match rest {
            [] => return Err("a '\\' escapes nothing".into()),
            [a, b, c, ..] if a.is_ascii_digit() => {
                if !(b.is_ascii_digit() && c.is_ascii_digit()) {
                    return Err("a \\DDD escape needs three digits".into());
                }
                let value =
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                let byte = u8::try_from(value).map_err(|_| format!("\\{value} is not a byte"))?;
                out.push(byte);
                at += 4;
            }
            [d, ..] if d.is_ascii_digit() => return Err("a \\DDD escape needs three digits".into()),
            [x, ..] => {
                out.push(*x);
                at += 2;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        entries(text)
            .unwrap()
            .into_iter()
            .map(|e| e.tokens.iter().map(Token::shown).collect())
            .collect()
    }

    #[test]
    fn quotes_keep_spaces_and_semicolons() {
        let got = words("@ TXT \"v=DMARC1; p=reject\" ; a comment\n");
        assert_eq!(got, vec![vec!["@", "TXT", "v=DMARC1; p=reject"]]);
    }

    #[test]
    fn parentheses_carry_an_entry_over_lines_with_comments_inside() {
        let text = "k IN TXT ( \"a\" ; first\n  \"b\" ; second\n )\nnext A 192.0.2.1\n";
        let got = entries(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].tokens.len(), 5);
        assert_eq!(got[0].tokens[4].line, 2);
        assert_eq!(got[1].line, 4);
    }

    #[test]
    fn a_blank_start_leaves_the_owner_to_the_entry_before() {
        let got = entries("a A 192.0.2.1\n\tA 192.0.2.2\n").unwrap();
        assert!(!got[0].blank_owner);
        assert!(got[1].blank_owner);
    }

    #[test]
    fn escapes_are_bytes() {
        assert_eq!(unescape(b"caf\\195\\169").unwrap(), "café".as_bytes());
        assert_eq!(unescape(b"\\059\\\"").unwrap(), b";\"");
        assert!(unescape(b"\\256").is_err());
        assert!(unescape(b"\\12").is_err());
        let got = words("a\\ b\\;c TXT x\n");
        assert_eq!(got[0][0], "a\\ b\\;c");
    }

    #[test]
    fn unbalanced_input_names_its_line() {
        assert_eq!(entries("a TXT (\n\"x\"\n").unwrap_err().line, 1);
        assert_eq!(entries("a A 1\nb TXT \"open\n").unwrap_err().line, 2);
        assert_eq!(entries("a )\n").unwrap_err().line, 1);
    }
}
