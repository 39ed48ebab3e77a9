//! `DATADIR/interlock.fence`: the record a holder of the fence across hosts
//! (`interlock run --etcd`, `interlock_fence::Fence`) leaves in the data
//! directory, so that tools and people can tell which holder came last
//! without etcd. One `name value` line each:
//!
//! ```text
//! token 42
//! key /interlock/7301234567890123456/srv/pg
//! host db1
//! boot_id 0b3c…
//! pid 1234
//! since 2026-11-29T21:07:34Z
//! ```
//!
//! `token` is the key's create revision in etcd, which grows with every
//! acquisition: the fencing token. The writer is
//! `interlock_fence::key::fence_file_content`, through [`FenceFile::render`].
//!
//! The reader is strict, because the file sits in a directory its owner
//! controls and the tooling reads it as root: each known name exactly once,
//! in any order; `token` a positive decimal `i64` and `pid` a positive
//! decimal `u32` or `?` (the holder did not know it), both as `%d` writes
//! them; no control characters in any value (a file cannot send terminal
//! escapes through a report); UTF-8; every line ended by a newline (a
//! missing last newline is a torn or hand-made file: the writer renames a
//! complete file into place); at most [`MAX_FENCE_FILE_SIZE`] bytes.
//! A line whose name is not known but is shaped like the writer's names
//! (lowercase ASCII letters, digits and `_`, starting with a letter) is
//! ignored, so that a later version may add a field without a mixed fleet
//! (a rolling upgrade over shared storage) calling the file corrupt;
//! anything else is rejected.

use crate::error::ParseError;
use crate::num::canonical_u64;

/// The most bytes a fence file may have. A real one is about 200 bytes
/// (the key holds a path: `PATH_MAX` is 4096 on Linux, but a data directory
/// deeper than a few hundred bytes is not one anybody fences); anything
/// larger is refused unread.
pub const MAX_FENCE_FILE_SIZE: usize = 4096;

/// The record in `interlock.fence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceFile {
    /// The fencing token: the key's create revision, positive.
    pub token: i64,
    /// The fence's key, `/interlock/SYSID/NAME`.
    pub key: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The holder's PID, when it knew it (`?` in the file otherwise).
    pub pid: Option<u32>,
    /// When it took the fence (RFC 3339, UTC, as the writer makes it; not
    /// checked beyond the rules for every value).
    pub since: String,
}

/// The names, in the order the writer writes them.
const NAMES: [&str; 6] = ["token", "key", "host", "boot_id", "pid", "since"];

fn field_name(i: usize) -> &'static str {
    match i {
        0 => "fencing token",
        1 => "key",
        2 => "host",
        3 => "boot id",
        4 => "PID",
        _ => "since",
    }
}

/// Whether `name` is shaped like the writer's names (and so may be a later
/// version's field).
fn is_name(name: &[u8]) -> bool {
    matches!(name.first(), Some(b'a'..=b'z'))
        && name
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl FenceFile {
    /// Parse a fence file's bytes (the rules are in the module doc).
    ///
    /// # Errors
    /// A [`ParseError`] naming the line and the field: too large, not
    /// UTF-8, a line without a newline or without a name, an unknown line
    /// that is not name-shaped, a name twice, a name missing, a bad token or
    /// PID, a control character in a value.
    pub fn parse(bytes: &[u8]) -> Result<FenceFile, ParseError> {
        if bytes.len() > MAX_FENCE_FILE_SIZE {
            return Err(ParseError::new(
                None,
                "fence file",
                format!("at most {MAX_FENCE_FILE_SIZE} bytes"),
                format!("{} bytes", bytes.len()),
            ));
        }
        if bytes.is_empty() {
            return Err(ParseError::new(
                None,
                "fence file",
                "the lines token, key, host, boot_id, pid and since",
                "an empty file",
            ));
        }
        if bytes.last() != Some(&b'\n') {
            let start = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let line = bytes[..start].iter().filter(|b| **b == b'\n').count() + 1;
            return Err(ParseError::quoting(
                Some(line),
                "fence file",
                "a line ending in a newline (the file is written whole and renamed into place)",
                &bytes[start..],
            ));
        }
        let mut values: [Option<&str>; 6] = [None; 6];
        for (i, raw) in bytes[..bytes.len() - 1].split(|b| *b == b'\n').enumerate() {
            let n = i + 1;
            let (name, value) = match raw.iter().position(|b| *b == b' ') {
                Some(sp) => (&raw[..sp], &raw[sp + 1..]),
                None => (raw, &raw[raw.len()..]),
            };
            let known = NAMES.iter().position(|k| k.as_bytes() == name);
            let Some(k) = known else {
                if is_name(name) && raw.len() > name.len() {
                    // A later version's field: skipped, but still a line
                    // of this format (a name, a space, a value).
                    continue;
                }
                return Err(ParseError::quoting(
                    Some(n),
                    "fence file",
                    "a line `NAME VALUE`, NAME one of token, key, host, boot_id, pid, since",
                    raw,
                ));
            };
            if raw.len() == name.len() {
                return Err(ParseError::quoting(
                    Some(n),
                    field_name(k),
                    format!("`{} VALUE`", NAMES[k]),
                    raw,
                ));
            }
            if values[k].is_some() {
                return Err(ParseError::quoting(
                    Some(n),
                    field_name(k),
                    format!("one `{}` line", NAMES[k]),
                    raw,
                ));
            }
            let text = std::str::from_utf8(value)
                .map_err(|_| ParseError::quoting(Some(n), field_name(k), "UTF-8 text", value))?;
            if text.chars().any(char::is_control) {
                return Err(ParseError::quoting(
                    Some(n),
                    field_name(k),
                    "a value without control characters",
                    value,
                ));
            }
            values[k] = Some(text);
        }
        let mut take = |k: usize| {
            values[k].take().ok_or_else(|| {
                ParseError::new(
                    None,
                    field_name(k),
                    format!("a `{}` line", NAMES[k]),
                    "none",
                )
            })
        };
        let [token, key, host, boot_id, pid, since] = [0, 1, 2, 3, 4, 5].map(&mut take);
        let token = token?;
        let token = canonical_u64(token.as_bytes())
            .and_then(|t| i64::try_from(t).ok())
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                ParseError::quoting(
                    None,
                    "fencing token",
                    "a positive decimal number (etcd's create revision)",
                    token.as_bytes(),
                )
            })?;
        let pid = match pid? {
            "?" => None,
            p => Some(
                canonical_u64(p.as_bytes())
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        ParseError::quoting(
                            None,
                            "PID",
                            "a positive decimal number, or `?`",
                            p.as_bytes(),
                        )
                    })?,
            ),
        };
        Ok(FenceFile {
            token,
            key: key?.to_string(),
            host: host?.to_string(),
            boot_id: boot_id?.to_string(),
            pid,
            since: since?.to_string(),
        })
    }

    /// The file's content, as the holders write it: what
    /// `interlock_fence::key::fence_file_content` writes. [`FenceFile::parse`]
    /// reads it back unchanged when the record keeps the parser's rules
    /// (a positive token and PID; no control character in a value).
    pub fn render(&self) -> String {
        format!(
            "token {}\nkey {}\nhost {}\nboot_id {}\npid {}\nsince {}\n",
            self.token,
            self.key,
            self.host,
            self.boot_id,
            self.pid.map_or("?".into(), |p| p.to_string()),
            self.since
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "token 42\nkey /interlock/7/srv/my pg\nhost db1\nboot_id 0b3c\npid 1234\nsince 2026-11-29T21:07:34Z\n";

    fn good() -> FenceFile {
        FenceFile {
            token: 42,
            key: "/interlock/7/srv/my pg".into(),
            host: "db1".into(),
            boot_id: "0b3c".into(),
            pid: Some(1234),
            since: "2026-11-29T21:07:34Z".into(),
        }
    }

    fn err(text: &str) -> String {
        FenceFile::parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn reads_what_is_written() {
        assert_eq!(FenceFile::parse(GOOD.as_bytes()), Ok(good()));
        assert_eq!(good().render(), GOOD);
        let unknown_pid = GOOD.replace("pid 1234", "pid ?");
        let f = FenceFile::parse(unknown_pid.as_bytes()).unwrap();
        assert_eq!(f.pid, None);
        assert_eq!(f.render(), unknown_pid);
    }

    #[test]
    fn any_order_and_later_fields() {
        let shuffled = "since s\npid 1\nboot_id b\nhost h\nkey k\ntoken 9\nlease_ttl 15\n";
        let f = FenceFile::parse(shuffled.as_bytes()).unwrap();
        assert_eq!((f.token, f.pid, f.since.as_str()), (9, Some(1), "s"));
        // Empty values are the writer's too (an empty host name).
        let f = FenceFile::parse(GOOD.replace("host db1", "host ").as_bytes()).unwrap();
        assert_eq!(f.host, "");
    }

    #[test]
    fn refuses_what_the_writer_never_writes() {
        assert!(err("").contains("an empty file"));
        assert!(err(&GOOD[..GOOD.len() - 1]).starts_with("line 6 (fence file)"));
        assert!(err(&GOOD.replace("token 42", "token 0")).contains("positive"));
        assert!(err(&GOOD.replace("token 42", "token -4")).contains("fencing token"));
        assert!(err(&GOOD.replace("token 42", "token 042")).contains("fencing token"));
        assert!(err(&GOOD.replace("token 42", "token +42")).contains("fencing token"));
        assert!(
            err(&GOOD.replace("token 42", "token 9223372036854775808")).contains("fencing token")
        );
        assert!(err(&GOOD.replace("pid 1234", "pid 0")).contains("PID"));
        assert!(err(&GOOD.replace("pid 1234", "pid 4294967296")).contains("PID"));
        assert!(err(&GOOD.replace("host db1\n", "")).contains("host: expected a `host` line"));
        assert!(err(&format!("{GOOD}host db2\n")).starts_with("line 7 (host): expected one"));
        assert!(err(&GOOD.replace("host db1", "host")).starts_with("line 3 (host)"));
        assert!(err(&GOOD.replace("host db1", "Host db1")).starts_with("line 3 (fence file)"));
        assert!(err(&format!("{GOOD}\n")).starts_with("line 7 (fence file)"));
        assert!(err(&format!("{GOOD}future\n")).starts_with("line 7 (fence file)"));
        assert!(err(&GOOD.replace("db1", "db1\x1b[2J")).contains("control characters"));
        assert!(err(&GOOD.replace("db1", "db1\r")).contains("\\r"));
        let e = FenceFile::parse(&[GOOD.as_bytes(), b"host \xff\n"].concat()).unwrap_err();
        assert!(e.to_string().contains("\\xff"), "{e}");
    }

    #[test]
    fn is_bounded() {
        let big = format!("{GOOD}{}\n", "x".repeat(MAX_FENCE_FILE_SIZE));
        assert_eq!(
            err(&big),
            format!(
                "fence file: expected at most 4096 bytes, found {} bytes",
                big.len()
            )
        );
        let e = err(&format!("key {}\n", "k".repeat(200)));
        assert!(!e.contains('\n') && e.chars().count() < 300, "{e}");
    }
}
