//! Shell quoting for the commands the tools print for a person to paste, and
//! control-character escaping for paths shown in prose.
//!
//! A remedy such as `rm DIR/postmaster.pid` is only safe to paste if `DIR`
//! comes back as exactly one word with exactly its bytes: a directory named
//! `/srv/x /srv/other/data` must not turn into two arguments, and one whose
//! name holds a newline must not end the printed line (nor the command) early.
//!
//! [`quote_bytes`] (and [`quote`], [`quote_os`]) renders one word for bash
//! (and for POSIX `sh`, except the `$'…'` form, which POSIX added only in
//! 2024; dash lacks it):
//!
//! * a non-empty word made only of `A-Z a-z 0-9 _ @ % + = : , . / -` is left
//!   bare;
//! * a word that is valid UTF-8 without control characters is put in single
//!   quotes, each `'` written as `'\''` (bash(1), QUOTING: nothing is special
//!   inside single quotes);
//! * anything else (a control character: bytes below 0x20, 0x7f, the C1
//!   controls U+0080–U+009F; or bytes that are not UTF-8) uses bash's ANSI-C
//!   quoting `$'…'` (bash(1), QUOTING), with `\n`, `\t`, `\r`, `\\`, `\'` and
//!   `\xHH` for every other such byte, so the rendering is one printable line
//!   that bash turns back into exactly the original bytes.
//!
//! A NUL byte cannot be part of an argument (execve(2) takes C strings); it is
//! rendered as `\x00`, which bash would truncate at.
//!
//! [`unquote`] parses back exactly the forms these functions produce (it is
//! not a shell parser); the tests and the fuzz target check the round trip.
//!
//! [`display`] is for prose, not commands: it leaves the text as it is but
//! writes control characters and invalid UTF-8 as `\n`, `\t`, `\r`, `\xHH`,
//! so a path with a newline in it cannot break a line of a report.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Bytes that are never special to the shell in an argument (not the first
/// word, where `=` would make an assignment).
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b)
}

/// One word for bash, from UTF-8 text. See the [module docs](self).
pub fn quote(s: &str) -> Cow<'_, str> {
    quote_bytes(s.as_bytes())
}

/// One word for bash, from an OS string (a path may be any bytes but NUL).
pub fn quote_os(s: &OsStr) -> Cow<'_, str> {
    quote_bytes(s.as_bytes())
}

/// One word for bash, from any bytes. See the [module docs](self).
pub fn quote_bytes(b: &[u8]) -> Cow<'_, str> {
    if !b.is_empty() && b.iter().all(|&c| is_safe(c)) {
        // All ASCII, hence valid UTF-8.
        return Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default());
    }
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            out.push_str(&s.replace('\'', r"'\''"));
            out.push('\'');
            Cow::Owned(out)
        }
        _ => Cow::Owned(ansi_c(b)),
    }
}

/// `$'…'`: printable UTF-8 characters as they are, everything else escaped.
fn ansi_c(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 3);
    out.push_str("$'");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str(r"\n"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        hex(&mut out, byte);
                    }
                }
                c => out.push(c),
            }
        }
        for &byte in chunk.invalid() {
            hex(&mut out, byte);
        }
    }
    out.push('\'');
    out
}

/// `\xHH`, always two digits: bash reads at most two, so a hex digit that
/// follows is not taken into the escape.
fn hex(out: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push_str(r"\x");
    out.push(char::from(DIGITS[usize::from(byte >> 4)]));
    out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
}

/// A command line from its words, each quoted with [`quote_os`], separated by
/// single spaces. The first word (the command) is quoted like the others.
pub fn words<S: AsRef<OsStr>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote_os(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bytes of one word that [`quote_bytes`] rendered, or `None` if `word`
/// is not in one of the forms it produces (bare safe characters, and
/// `'…'`, `\'`, `$'…'` pieces run together). Not a shell parser: it exists
/// to check the quoting round trip.
pub fn unquote(word: &str) -> Option<Vec<u8>> {
    let b = word.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let end = i + 1 + b[i + 1..].iter().position(|&c| c == b'\'')?;
                out.extend_from_slice(&b[i + 1..end]);
                i = end + 1;
            }
            b'\\' => {
                // Only `\'` occurs outside quotes.
                if b.get(i + 1) != Some(&b'\'') {
                    return None;
                }
                out.push(b'\'');
                i += 2;
            }
            b'$' if b.get(i + 1) == Some(&b'\'') => {
                i += 2;
                loop {
                    match *b.get(i)? {
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let (byte, len) = match *b.get(i + 1)? {
                                b'n' => (b'\n', 2),
                                b't' => (b'\t', 2),
                                b'r' => (b'\r', 2),
                                b'\\' => (b'\\', 2),
                                b'\'' => (b'\'', 2),
                                b'x' => {
                                    let h = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                                    if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                                        return None;
                                    }
                                    (u8::from_str_radix(h, 16).ok()?, 4)
                                }
                                _ => return None,
                            };
                            out.push(byte);
                            i += len;
                        }
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
            }
            c if is_safe(c) => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Text for prose (not a command): as it is, except that control characters
/// and bytes that are not UTF-8 are written `\n`, `\t`, `\r` or `\xHH`, so
/// the result is one line without terminal escapes. Backslashes are left as
/// they are: this is for reading, not for parsing back.
pub fn display(s: &str) -> Cow<'_, str> {
    display_bytes(s.as_bytes())
}

/// [`display`] of an OS string, such as a path.
pub fn display_os(s: &OsStr) -> Cow<'_, str> {
    display_bytes(s.as_bytes())
}

/// [`display`] of any bytes.
pub fn display_bytes(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        if !s.chars().any(char::is_control) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str(r"\n"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        hex(&mut out, byte);
                    }
                }
                c => out.push(c),
            }
        }
        for &byte in chunk.invalid() {
            hex(&mut out, byte);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(quote("/srv/pg/15/main"), "/srv/pg/15/main");
        assert_eq!(quote("key=a,b:c@d%e+f_g-h.i"), "key=a,b:c@d%e+f_g-h.i");
        assert!(matches!(quote("/srv/data"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_issue_example_is_one_word() {
        assert_eq!(
            quote("/srv/x /srv/other/data/postmaster.pid"),
            "'/srv/x /srv/other/data/postmaster.pid'"
        );
    }

    #[test]
    fn quotes_and_specials() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("x y'z"), r"'x y'\''z'");
        assert_eq!(quote("'"), r"''\'''");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("données"), "'données'");
    }

    #[test]
    fn control_characters_use_ansi_c_quoting() {
        assert_eq!(quote("a\nb"), r"$'a\nb'");
        assert_eq!(quote("tab\there"), r"$'tab\there'");
        assert_eq!(quote("\x1b[31m"), r"$'\x1b[31m'");
        assert_eq!(quote("it's\n"), r"$'it\'s\n'");
        assert_eq!(quote("back\\slash\x7f"), r"$'back\\slash\x7f'");
        assert_eq!(quote("\u{9b}"), r"$'\xc2\x9b'");
        assert_eq!(quote_bytes(b"\xff\xfeab"), r"$'\xff\xfeab'");
        assert_eq!(quote_bytes(b"\xffab"), r"$'\xffab'");
    }

    #[test]
    fn words_join_quoted() {
        assert_eq!(
            words(&["rm", "/tmp/x y/postmaster.pid"]),
            "rm '/tmp/x y/postmaster.pid'"
        );
        assert_eq!(
            words(&[
                OsStr::from_bytes(b"pg_ctl"),
                OsStr::from_bytes(b"-D"),
                OsStr::from_bytes(b"/a\nb")
            ]),
            r"pg_ctl -D $'/a\nb'"
        );
    }

    #[test]
    fn unquote_inverts_quote() {
        for w in [
            &b"/srv/data"[..],
            b"",
            b"x y'z",
            b"'",
            b"a\nb",
            b"\xff\x00\x7f'\\",
            "données\u{9b}".as_bytes(),
        ] {
            assert_eq!(unquote(&quote_bytes(w)).as_deref(), Some(w), "{w:?}");
        }
        assert_eq!(unquote("a b"), None);
        assert_eq!(unquote("'open"), None);
        assert_eq!(unquote(r"$'\q'"), None);
    }

    #[test]
    fn display_escapes_only_controls() {
        assert_eq!(display("/srv/x y'z"), "/srv/x y'z");
        assert_eq!(display("/a\nb\t\x1b"), r"/a\nb\t\x1b");
        assert_eq!(display_bytes(b"/a\xffb"), r"/a\xffb");
        assert_eq!(display_os(OsStr::new("plain")), "plain");
    }
}
