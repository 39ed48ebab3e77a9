//! The one error type of this crate: [`ParseError`].
//!
//! Every parser here reports failures the same way, as "where, which field, what was expected,
//! what was found", because the main consumer is a diagnostic tool whose job is to tell a
//! human precisely what is wrong with a file on disk. The offending input is quoted, with
//! control characters escaped and the text cut at 80 characters, so that a corrupt or hostile
//! file can neither flood nor garble a terminal.

use std::fmt;

/// The longest excerpt of input, in characters after escaping, that an error quotes.
const MAX_FOUND_CHARS: usize = 80;

/// A parse failure: which line (1-based, `None` if it concerns the whole input), which field,
/// what was expected, what was found.
///
/// `Display` renders it as
/// `line 7 (shared memory key and ID): expected two unsigned numbers as PostgreSQL writes them ("%9lu %9lu"), found "abc"`
/// or, without a line, as `<field>: expected ..., found ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number, or `None` when the error concerns the input as a whole.
    pub line: Option<usize>,
    /// Human-readable name of the field (for example `"postmaster PID"`).
    pub field: &'static str,
    /// What the parser expected, phrased to follow the word "expected".
    pub expected: String,
    /// What the parser found, already sanitised: either a description such as
    /// `end of file`, or a quoted, escaped and possibly truncated excerpt of the input.
    pub found: String,
}

impl ParseError {
    /// Builds an error whose `found` is a description (for example `"end of file"`).
    ///
    /// The description is sanitised like input would be (control characters escaped,
    /// truncated to 80 characters), so this constructor is safe to call with any text.
    pub fn new(
        line: Option<usize>,
        field: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        ParseError {
            line,
            field,
            expected: expected.into(),
            found: sanitize(&found.into(), false),
        }
    }

    /// Builds an error whose `found` quotes a piece of the input.
    ///
    /// Bytes that are not UTF-8 are shown as `\xNN`, control characters, quotes and
    /// backslashes are escaped, and the excerpt is cut after 80 characters with `…`.
    pub fn quoting(
        line: Option<usize>,
        field: &'static str,
        expected: impl Into<String>,
        input: &[u8],
    ) -> Self {
        ParseError {
            line,
            field,
            expected: expected.into(),
            found: quote(input),
        }
    }

    /// Returns the same error attributed to `line` (used when a single-line parser is
    /// driven by a multi-line one).
    #[must_use]
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line} ({})", self.field)?,
            None => f.write_str(self.field)?,
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for ParseError {}

/// Quotes `input` for an error message: `"` + escaped, truncated text + `"`.
///
/// Bytes that are not UTF-8 are shown as `\xNN`.
pub(crate) fn quote(input: &[u8]) -> String {
    let mut out = Excerpt::default();
    'outer: for chunk in input.utf8_chunks() {
        for c in chunk.valid().chars() {
            if !out.push(&escape_char(c, true)) {
                break 'outer;
            }
        }
        for b in chunk.invalid() {
            if !out.push(&format!("\\x{b:02x}")) {
                break 'outer;
            }
        }
    }
    format!("\"{}\"", out.text)
}

/// Escapes and truncates a piece of text; `quotes` also escapes `"` and `\`.
fn sanitize(text: &str, quotes: bool) -> String {
    let mut out = Excerpt::default();
    for c in text.chars() {
        if !out.push(&escape_char(c, quotes)) {
            break;
        }
    }
    out.text
}

/// Accumulates escaped pieces up to [`MAX_FOUND_CHARS`] characters, then adds `…`.
#[derive(Default)]
struct Excerpt {
    text: String,
    chars: usize,
}

impl Excerpt {
    /// Appends `piece` whole, or appends `…` and returns false if it does not fit.
    fn push(&mut self, piece: &str) -> bool {
        let n = piece.chars().count();
        let total = self.chars.saturating_add(n);
        if total > MAX_FOUND_CHARS {
            self.text.push('…');
            return false;
        }
        self.chars = total;
        self.text.push_str(piece);
        true
    }
}

/// Escapes one character the way `str::escape_debug` does for control characters.
fn escape_char(c: char, quotes: bool) -> String {
    match c {
        '"' | '\\' if quotes => c.escape_default().collect(),
        c if c.is_control() => c.escape_debug().collect(),
        // Unicode format characters (bidi overrides, zero-width joiners) can garble a
        // terminal just like control characters.
        '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}' => c.escape_unicode().collect(),
        c => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_line() {
        let e = ParseError::quoting(
            Some(7),
            "shared memory key and ID",
            "two unsigned numbers as PostgreSQL writes them (\"%9lu %9lu\")",
            b"abc",
        );
        assert_eq!(
            e.to_string(),
            "line 7 (shared memory key and ID): expected two unsigned numbers as PostgreSQL writes them (\"%9lu %9lu\"), found \"abc\""
        );
    }

    #[test]
    fn display_without_line() {
        let e = ParseError::new(None, "lock file", "at most 8192 bytes", "9000 bytes");
        assert_eq!(
            e.to_string(),
            "lock file: expected at most 8192 bytes, found 9000 bytes"
        );
    }

    #[test]
    fn quote_escapes_controls_and_invalid_utf8() {
        assert_eq!(quote(b"a\tb\n\x1b[31m"), "\"a\\tb\\n\\u{1b}[31m\"");
        assert_eq!(quote(b"x\xffy"), "\"x\\xffy\"");
        assert_eq!(quote(b"say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
        assert_eq!(quote(b"\0"), "\"\\0\"");
        assert_eq!(quote("\u{202e}evil".as_bytes()), "\"\\u{202e}evil\"");
    }

    #[test]
    fn quote_truncates() {
        let long = vec![b'a'; 200];
        let q = quote(&long);
        assert_eq!(q, format!("\"{}…\"", "a".repeat(80)));
        let exact = vec![b'b'; 80];
        assert_eq!(quote(&exact), format!("\"{}\"", "b".repeat(80)));
    }

    #[test]
    fn new_sanitises_description() {
        let e = ParseError::new(None, "f", "x", "a\nb");
        assert_eq!(e.found, "a\\nb");
    }
}
