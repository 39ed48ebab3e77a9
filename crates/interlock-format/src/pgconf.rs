//! `postgresql.conf` lines, as PostgreSQL's configuration lexer
//! (`guc-file.l`) reads them.
//!
//! One setting per line: `name = value` or `name value`; `#` starts a
//! comment outside quotes; a value is a single-quoted string (with `''` or
//! `\'` for a quote) or a bare token. `include`, `include_if_exists` and
//! `include_dir` are returned as entries like any other; following them is
//! I/O and belongs to the caller. Names are case-insensitive and returned in
//! lower case.

use crate::ParseError;

/// One `name = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfEntry {
    /// The parameter name, lower-cased.
    pub name: String,
    /// The value, unquoted.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.' || c == '-' || !c.is_ascii()
}

/// Parse a whole configuration file. A malformed line is an error naming
/// the line, as the server's "syntax error in file … line N" is.
pub fn parse_conf(text: &str) -> Result<Vec<ConfEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some(entry) = parse_conf_line(raw, line)? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Parse one line; `Ok(None)` for blank and comment-only lines.
pub fn parse_conf_line(raw: &str, line: usize) -> Result<Option<ConfEntry>, ParseError> {
    let err = |expected: &str, found: &str| ParseError {
        line: Some(line),
        field: "setting",
        expected: expected.to_string(),
        found: found.to_string(),
    };
    let s = raw.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let mut chars = s.char_indices().peekable();
    let name_end = match chars.peek() {
        Some(&(_, c)) if is_name_start(c) => {
            let mut end = s.len();
            for (i, c) in s.char_indices() {
                if !is_name_char(c) {
                    end = i;
                    break;
                }
            }
            end
        }
        _ => return Err(err("a parameter name", raw)),
    };
    let name = s[..name_end].to_ascii_lowercase();
    let mut rest = s[name_end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let value;
    if let Some(body) = rest.strip_prefix('\'') {
        let mut v = String::new();
        let mut it = body.chars();
        let mut closed = false;
        let mut consumed = 0usize;
        while let Some(c) = it.next() {
            consumed += c.len_utf8();
            match c {
                '\\' => {
                    if let Some(n) = it.next() {
                        consumed += n.len_utf8();
                        v.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            other => other,
                        });
                    }
                }
                '\'' => {
                    if body[consumed..].starts_with('\'') {
                        it.next();
                        consumed += 1;
                        v.push('\'');
                    } else {
                        closed = true;
                        break;
                    }
                }
                other => v.push(other),
            }
        }
        if !closed {
            return Err(err("a closing quote", raw));
        }
        value = v;
        rest = body[consumed..].trim_start();
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(err("a value after the parameter name", raw));
        }
        value = rest[..end].to_string();
        rest = rest[end..].trim_start();
    }
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(err("end of line or a comment after the value", raw));
    }
    Ok(Some(ConfEntry { name, value, line }))
}

/// The settings a server command line gives, as `postmaster.opts` records
/// the last start's: `"-p" "5433"`, `"-k" "/run/pg"`, `"-h" "127.0.0.1"`,
/// `"-i"` (`listen_addresses='*'`), `"-c" "name=value"`,
/// `"--name=value"`. The file holds the program, then each argument as
/// ` "ARG"` (written without escaping). Returns `(name, value)` pairs,
/// names lower-cased with `-` as `_`, in order (later ones win).
pub fn postmaster_opts_settings(text: &str) -> Vec<(String, String)> {
    let line = text.lines().next().unwrap_or("");
    let args: Vec<&str> = match line.find(" \"") {
        Some(i) => line[i + 2..]
            .strip_suffix('"')
            .unwrap_or(&line[i + 2..])
            .split("\" \"")
            .collect(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        let flag = |name: &str, v: Option<&&str>| v.map(|v| (name.to_string(), v.to_string()));
        let pair = match a {
            "-p" => flag("port", it.next()),
            "-k" => flag("unix_socket_directories", it.next()),
            "-h" => flag("listen_addresses", it.next()),
            "-i" => Some(("listen_addresses".to_string(), "*".to_string())),
            "-D" => flag("data_directory", it.next()),
            "-c" => it.next().and_then(|kv| split_setting(kv)),
            _ => a.strip_prefix("--").and_then(split_setting),
        };
        out.extend(pair);
    }
    out
}

fn split_setting(kv: &str) -> Option<(String, String)> {
    let (k, v) = kv.split_once('=')?;
    Some((
        k.trim().to_ascii_lowercase().replace('-', "_"),
        v.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (String, String) {
        let e = parse_conf_line(s, 1).unwrap().unwrap();
        (e.name, e.value)
    }

    #[test]
    fn settings_in_every_spelling() {
        assert_eq!(one("port = 5433"), ("port".into(), "5433".into()));
        assert_eq!(one("Port=5433 # comment"), ("port".into(), "5433".into()));
        assert_eq!(
            one("  shared_buffers 128MB"),
            ("shared_buffers".into(), "128MB".into())
        );
        assert_eq!(
            one("log_line_prefix = '%m [%p] '"),
            ("log_line_prefix".into(), "%m [%p] ".into())
        );
        assert_eq!(one("x = 'it''s'"), ("x".into(), "it's".into()));
        assert_eq!(one(r"x = 'it\'s'"), ("x".into(), "it's".into()));
        assert_eq!(
            one("include 'other.conf'"),
            ("include".into(), "other.conf".into())
        );
        assert_eq!(
            one("auto_explain.log_min_duration = 0"),
            ("auto_explain.log_min_duration".into(), "0".into())
        );
    }

    #[test]
    fn comments_and_blanks_are_skipped() {
        let all = parse_conf("# c\n\n   \nport = 1 # x\n#port = 2\n").unwrap();
        assert_eq!(
            all,
            vec![ConfEntry {
                name: "port".into(),
                value: "1".into(),
                line: 4
            }]
        );
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_conf("port = 1\nport = 'x\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(parse_conf_line("= 3", 1).is_err());
        assert!(parse_conf_line("port =", 1).is_err());
        assert!(parse_conf_line("port = 1 2", 1).is_err());
    }

    #[test]
    fn postmaster_opts_give_the_last_starts_settings() {
        let text = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/tmp/x/data\" \"-p\" \"5998\" \"-c\" \"listen_addresses=\" \"-k\" \"/tmp/x/data\" \"--shared-buffers=1GB\"\n";
        assert_eq!(
            postmaster_opts_settings(text),
            [
                ("data_directory", "/tmp/x/data"),
                ("port", "5998"),
                ("listen_addresses", ""),
                ("unix_socket_directories", "/tmp/x/data"),
                ("shared_buffers", "1GB"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(postmaster_opts_settings("/usr/bin/postgres\n").is_empty());
        assert!(postmaster_opts_settings("").is_empty());
        // A flag at the end without its value is ignored.
        assert!(postmaster_opts_settings("postgres \"-p\"").is_empty());
    }
}
