//! PostgreSQL server log output (`log_destination = stderr`, as written to
//! the terminal, to `pg_ctl -l FILE`, or by the logging collector into
//! `log/*.log`), read with any `log_line_prefix`, and the startup and IPC
//! failures in it recognised.
//!
//! A report is written as `PREFIX` + `LEVEL:  ` + message, then a line per
//! `DETAIL:  `, `HINT:  `, `CONTEXT:  ` with the prefix again; a message of
//! several lines continues on lines that start with a tab (`elog.c`,
//! `send_message_to_server_log`). The prefix is whatever
//! `log_line_prefix` made of it, so the level is found as the first known
//! level word followed by a colon and two spaces. Lines of `pg_ctl`'s own
//! (`pg_ctl: …`, `waiting for server to start....` in front of a server
//! line) are read too. Messages are matched in English (`lc_messages = C`
//! or `en_*`), by the format strings of PostgreSQL 10–18.
//!
//! Binary data (NUL bytes, invalid UTF-8, control characters) makes a line
//! unreadable; such lines are counted and skipped, never guessed at.

/// A report's level, as the server prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `DEBUG1` … `DEBUG5`.
    Debug,
    /// `INFO`.
    Info,
    /// `NOTICE`.
    Notice,
    /// `WARNING`.
    Warning,
    /// `ERROR`.
    Error,
    /// `LOG`.
    Log,
    /// `FATAL`.
    Fatal,
    /// `PANIC`.
    Panic,
    /// A program's own line, written without a level: `pg_ctl: could not
    /// start server`, `postgres: could not access the server configuration
    /// file …`, `"root" execution of the PostgreSQL server is not
    /// permitted.` (the program, if named, is in `prefix`).
    Program,
}

impl Level {
    /// The word as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Notice => "NOTICE",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Log => "LOG",
            Level::Fatal => "FATAL",
            Level::Panic => "PANIC",
            Level::Program => "program",
        }
    }
}

/// The parts of a report that follow the primary message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Primary(Level),
    Detail,
    Hint,
    Context,
    /// `STATEMENT`, `QUERY`, `LOCATION`: kept out of the record.
    Other,
}

const WORDS: &[(&str, Part)] = &[
    ("DEBUG1", Part::Primary(Level::Debug)),
    ("DEBUG2", Part::Primary(Level::Debug)),
    ("DEBUG3", Part::Primary(Level::Debug)),
    ("DEBUG4", Part::Primary(Level::Debug)),
    ("DEBUG5", Part::Primary(Level::Debug)),
    ("DEBUG", Part::Primary(Level::Debug)),
    ("INFO", Part::Primary(Level::Info)),
    ("NOTICE", Part::Primary(Level::Notice)),
    ("WARNING", Part::Primary(Level::Warning)),
    ("ERROR", Part::Primary(Level::Error)),
    ("LOG", Part::Primary(Level::Log)),
    ("FATAL", Part::Primary(Level::Fatal)),
    ("PANIC", Part::Primary(Level::Panic)),
    ("DETAIL", Part::Detail),
    ("HINT", Part::Hint),
    ("CONTEXT", Part::Context),
    ("STATEMENT", Part::Other),
    ("QUERY", Part::Other),
    ("LOCATION", Part::Other),
];

/// One report: the primary message and what belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the primary message.
    pub line: usize,
    /// Its level.
    pub level: Level,
    /// What `log_line_prefix` printed before the level (empty for `pg_ctl`).
    pub prefix: String,
    /// The primary message; continuation lines joined with `\n`.
    pub message: String,
    /// `DETAIL`.
    pub detail: Option<String>,
    /// `HINT`.
    pub hint: Option<String>,
    /// `CONTEXT`.
    pub context: Option<String>,
}

impl Record {
    /// The record as the server printed it, prefix left out.
    pub fn text(&self) -> String {
        let mut s = if self.level == Level::Program {
            format!("{}{}", self.prefix, self.message)
        } else {
            format!("{}:  {}", self.level.as_str(), self.message)
        };
        for (word, part) in [("DETAIL", &self.detail), ("HINT", &self.hint)] {
            if let Some(p) = part {
                s += &format!("\n{word}:  {p}");
            }
        }
        s
    }
}

/// A log, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLog {
    /// The reports, in order.
    pub records: Vec<Record>,
    /// How many lines were read.
    pub lines: usize,
    /// Lines that are not text (NUL bytes, invalid UTF-8, control
    /// characters), 1-based; skipped.
    pub binary_lines: Vec<usize>,
    /// Lines that look like another log format (`csvlog`, `jsonlog`).
    pub other_format: Option<(&'static str, usize)>,
}

/// Whether a line is text a server could have written.
fn is_text(line: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(line).ok()?;
    if s.chars()
        .any(|c| c.is_control() && c != '\t' && c != '\r' && c != '\u{1b}')
    {
        return None;
    }
    Some(s)
}

/// Where the level word is: `(start of word, start of message, part)`.
fn find_level(line: &str) -> Option<(usize, usize, Part)> {
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(off) = line[from..].find(":  ") {
        let colon = from + off;
        let head = &line[..colon];
        // The level word is ASCII: it starts after the last byte that is
        // not an ASCII letter or digit (a UTF-8 sequence is all bytes
        // ≥ 0x80, so this is always a character boundary).
        let word_start = head
            .bytes()
            .rposition(|b| !b.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let word = &head[word_start..];
        if let Some(&(_, part)) = WORDS.iter().find(|(w, _)| *w == word) {
            // The word must start the line or follow a non-word byte.
            if word_start == 0 || !bytes[word_start - 1].is_ascii_alphanumeric() {
                return Some((word_start, colon + 3, part));
            }
        }
        from = colon + 1;
    }
    None
}

/// Read a log.
pub fn parse_log(input: &[u8]) -> ServerLog {
    let mut log = ServerLog::default();
    // Which field the next tab-continued line extends.
    let mut open: Option<Part> = None;
    let input = input.strip_suffix(b"\n").unwrap_or(input);
    if input.is_empty() {
        return log;
    }
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        log.lines = n;
        let Some(line) = is_text(raw) else {
            log.binary_lines.push(n);
            open = None;
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(cont) = line.strip_prefix('\t') {
            if let (Some(part), Some(rec)) = (open, log.records.last_mut()) {
                let field = match part {
                    Part::Primary(_) => Some(&mut rec.message),
                    Part::Detail => rec.detail.as_mut(),
                    Part::Hint => rec.hint.as_mut(),
                    Part::Context => rec.context.as_mut(),
                    Part::Other => None,
                };
                if let Some(f) = field {
                    f.push('\n');
                    f.push_str(cont);
                }
            }
            continue;
        }
        let program = ["pg_ctl: ", "postgres: ", "postmaster: "]
            .iter()
            .find(|p| line.starts_with(*p))
            .map(|p| p.len())
            .or_else(|| PLAIN.contains(&line).then_some(0));
        if let Some(at) = program {
            log.records.push(Record {
                line: n,
                level: Level::Program,
                prefix: line[..at].to_string(),
                message: line[at..].to_string(),
                detail: None,
                hint: None,
                context: None,
            });
            open = None;
            continue;
        }
        match find_level(line) {
            Some((at, msg, part)) => {
                let text = line[msg..].to_string();
                match part {
                    Part::Primary(level) => log.records.push(Record {
                        line: n,
                        level,
                        prefix: line[..at].to_string(),
                        message: text,
                        detail: None,
                        hint: None,
                        context: None,
                    }),
                    Part::Detail | Part::Hint | Part::Context => {
                        if let Some(rec) = log.records.last_mut() {
                            let slot = match part {
                                Part::Detail => &mut rec.detail,
                                Part::Hint => &mut rec.hint,
                                _ => &mut rec.context,
                            };
                            *slot = Some(text);
                        }
                    }
                    Part::Other => {}
                }
                open = Some(part);
            }
            None => {
                open = None;
                if log.other_format.is_none() {
                    if line.starts_with('{') && line.contains("\"error_severity\"") {
                        log.other_format = Some(("jsonlog", n));
                    } else if looks_like_csvlog(line) {
                        log.other_format = Some(("csvlog", n));
                    }
                }
            }
        }
    }
    log
}

/// Messages the postmaster writes to stderr without a level.
const PLAIN: &[&str] = &["\"root\" execution of the PostgreSQL server is not permitted."];

fn looks_like_csvlog(line: &str) -> bool {
    // log_time, user, database, pid, connection, session id, line number,
    // command tag, session start, vxid, xid, severity, …
    let fields: Vec<&str> = line.splitn(14, ',').collect();
    fields.len() >= 13
        && fields[0].len() >= 19
        && fields[0].as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && WORDS
            .iter()
            .any(|(w, p)| matches!(p, Part::Primary(_)) && fields[11] == *w)
}

/// Stable codes for the failures `explain` recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureCode {
    /// "pre-existing shared memory block (key K, ID I) is still in use".
    SegmentInUse,
    /// `lock file "…" already exists` (postmaster.pid or a socket's).
    LockFileExists,
    /// `lock file "…" is empty`.
    LockFileEmpty,
    /// `could not create lock file "…": …`.
    LockFileCreateFailed,
    /// The server shut itself down because postmaster.pid was removed or
    /// rewritten under it.
    LockFileRemoved,
    /// `could not create shared memory segment: …` (shmget).
    ShmgetFailed,
    /// `could not map anonymous shared memory: …`.
    AnonymousMmapFailed,
    /// Huge pages asked for and not to be had.
    HugePagesUnavailable,
    /// `could not create semaphores: …` (semget).
    SemaphoresExhausted,
    /// A `/dev/shm/PostgreSQL.N` segment vanished under the server
    /// (systemd's RemoveIPC, or someone cleaning /dev/shm).
    DsmSegmentMissing,
    /// `could not resize shared memory segment "…" to N bytes: …`: /dev/shm
    /// is full or too small.
    DevShmFull,
    /// The data directory fails the server's checks (missing, wrong owner,
    /// wrong permissions, not a data directory).
    DataDirUnusable,
    /// `database files are incompatible with server`.
    IncompatibleVersion,
    /// `global/pg_control` unreadable or corrupt.
    ControlFileInvalid,
    /// `could not bind … address "…": Address already in use`.
    PortInUse,
    /// `could not bind …` for another reason.
    ListenFailed,
    /// `"root" execution of the PostgreSQL server is not permitted.`
    RunAsRoot,
    /// `… (PID N) was terminated by signal S: …`.
    ProcessKilled,
}

impl FailureCode {
    /// The JSON code.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::SegmentInUse => "segment_in_use",
            FailureCode::LockFileExists => "lock_file_exists",
            FailureCode::LockFileEmpty => "lock_file_empty",
            FailureCode::LockFileCreateFailed => "lock_file_create_failed",
            FailureCode::LockFileRemoved => "lock_file_removed",
            FailureCode::ShmgetFailed => "shmget_failed",
            FailureCode::AnonymousMmapFailed => "anonymous_mmap_failed",
            FailureCode::HugePagesUnavailable => "huge_pages_unavailable",
            FailureCode::SemaphoresExhausted => "semaphores_exhausted",
            FailureCode::DsmSegmentMissing => "dsm_segment_missing",
            FailureCode::DevShmFull => "dev_shm_full",
            FailureCode::DataDirUnusable => "data_dir_unusable",
            FailureCode::IncompatibleVersion => "incompatible_version",
            FailureCode::ControlFileInvalid => "control_file_invalid",
            FailureCode::PortInUse => "port_in_use",
            FailureCode::ListenFailed => "listen_failed",
            FailureCode::RunAsRoot => "run_as_root",
            FailureCode::ProcessKilled => "process_killed",
        }
    }

    /// Every code, in documentation order.
    pub const ALL: &'static [FailureCode] = &[
        FailureCode::SegmentInUse,
        FailureCode::LockFileExists,
        FailureCode::LockFileEmpty,
        FailureCode::LockFileCreateFailed,
        FailureCode::LockFileRemoved,
        FailureCode::ShmgetFailed,
        FailureCode::AnonymousMmapFailed,
        FailureCode::HugePagesUnavailable,
        FailureCode::SemaphoresExhausted,
        FailureCode::DsmSegmentMissing,
        FailureCode::DevShmFull,
        FailureCode::DataDirUnusable,
        FailureCode::IncompatibleVersion,
        FailureCode::ControlFileInvalid,
        FailureCode::PortInUse,
        FailureCode::ListenFailed,
        FailureCode::RunAsRoot,
        FailureCode::ProcessKilled,
    ];
}

/// A recognised failure: its code and the values the messages carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recognized {
    /// The code (`None` only in `Default`).
    pub code: Option<FailureCode>,
    /// The errno's name (`ENOMEM`…), from the `%m` text.
    pub errno: Option<&'static str>,
    /// The `%m` text as printed.
    pub error_text: Option<String>,
    /// A SysV key as printed (`%lu`).
    pub key: Option<u64>,
    /// A SysV shmid.
    pub shmid: Option<u64>,
    /// A PID the message names.
    pub pid: Option<i64>,
    /// A size in bytes.
    pub size: Option<u64>,
    /// A file the message names (lock file, DSM segment name, directory).
    pub path: Option<String>,
    /// The data directory the message names.
    pub data_dir: Option<String>,
    /// A port.
    pub port: Option<u16>,
    /// A signal number.
    pub signal: Option<i32>,
    /// A version pair (data directory's, server's).
    pub versions: Option<(String, String)>,
    /// The message is informational: the server went on (e.g. huge pages
    /// fell back to normal pages under `huge_pages = try`).
    pub informational: bool,
}

/// Match `text` against `template`, where each `{}` stands for any text;
/// returns the pieces in order.
fn fill<'t>(template: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let mut parts = template.split("{}");
    let first = parts.next()?;
    let mut rest = text.strip_prefix(first)?;
    let mut out = Vec::new();
    let lits: Vec<&str> = parts.collect();
    for (i, lit) in lits.iter().enumerate() {
        let last = i + 1 == lits.len();
        if last {
            let value = rest.strip_suffix(lit)?;
            out.push(value);
            rest = "";
        } else if lit.is_empty() {
            return None;
        } else {
            let at = rest.find(lit)?;
            out.push(&rest[..at]);
            rest = &rest[at + lit.len()..];
        }
    }
    rest.is_empty().then_some(out)
}

/// glibc's `strerror` texts of the errnos these messages carry.
const ERRNOS: &[(&str, &str)] = &[
    ("Cannot allocate memory", "ENOMEM"),
    ("Invalid argument", "EINVAL"),
    ("No space left on device", "ENOSPC"),
    ("Permission denied", "EACCES"),
    ("No such file or directory", "ENOENT"),
    ("File exists", "EEXIST"),
    ("Operation not permitted", "EPERM"),
    ("File too large", "EFBIG"),
    ("Identifier removed", "EIDRM"),
    ("Address already in use", "EADDRINUSE"),
    ("Cannot assign requested address", "EADDRNOTAVAIL"),
    ("Function not implemented", "ENOSYS"),
    ("Too many open files", "EMFILE"),
    ("Read-only file system", "EROFS"),
    ("Device or resource busy", "EBUSY"),
];

/// The errno name of a `%m` text.
pub fn errno_name(text: &str) -> Option<&'static str> {
    ERRNOS.iter().find(|(t, _)| *t == text).map(|(_, n)| *n)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

/// Recognise a record. `None`: not a startup or IPC failure this module
/// knows.
pub fn recognize(r: &Record) -> Option<Recognized> {
    let m = r.message.as_str();
    let mut out = Recognized::default();
    let set_errno = |out: &mut Recognized, text: &str| {
        out.errno = errno_name(text);
        out.error_text = Some(text.to_string());
    };
    let code = if r.level == Level::Program {
        if let Some(v) = fill("directory \"{}\" does not exist", m)
            .or_else(|| fill("directory \"{}\" is not a database cluster directory", m))
        {
            out.path = Some(v[0].to_string());
            out.data_dir = Some(v[0].to_string());
            FailureCode::DataDirUnusable
        } else if let Some(v) = fill(
            "could not access the server configuration file \"{}\": {}",
            m,
        ) {
            out.path = Some(v[0].to_string());
            out.data_dir = v[0].strip_suffix("/postgresql.conf").map(str::to_string);
            set_errno(&mut out, v[1]);
            FailureCode::DataDirUnusable
        } else if m == PLAIN[0] || m == "cannot be run as root" {
            FailureCode::RunAsRoot
        } else {
            return None;
        }
    } else if let Some(v) = fill(
        "pre-existing shared memory block (key {}, ID {}) is still in use",
        m,
    ) {
        out.key = num(v[0]);
        out.shmid = num(v[1]);
        if let Some(h) = r.hint.as_deref().and_then(|h| {
            fill(
                "Terminate any old server processes associated with data directory \"{}\".",
                h,
            )
        }) {
            out.data_dir = Some(h[0].to_string());
        }
        FailureCode::SegmentInUse
    } else if let Some(v) = fill("lock file \"{}\" already exists", m) {
        out.path = Some(v[0].to_string());
        if let Some(h) = r.hint.as_deref() {
            for t in [
                "Is another postmaster (PID {}) running in data directory \"{}\"?",
                "Is another postgres (PID {}) running in data directory \"{}\"?",
            ] {
                if let Some(h) = fill(t, h) {
                    out.pid = num(h[0]);
                    out.data_dir = Some(h[1].to_string());
                }
            }
            for t in [
                "Is another postmaster (PID {}) using socket file \"{}\"?",
                "Is another postgres (PID {}) using socket file \"{}\"?",
            ] {
                if let Some(h) = fill(t, h) {
                    out.pid = num(h[0]);
                }
            }
        }
        FailureCode::LockFileExists
    } else if let Some(v) = fill("lock file \"{}\" is empty", m) {
        out.path = Some(v[0].to_string());
        FailureCode::LockFileEmpty
    } else if let Some(v) = fill("could not create lock file \"{}\": {}", m) {
        out.path = Some(v[0].to_string());
        set_errno(&mut out, v[1]);
        FailureCode::LockFileCreateFailed
    } else if m == "performing immediate shutdown because data directory lock file is invalid" {
        FailureCode::LockFileRemoved
    } else if let Some(v) = fill("could not create shared memory segment: {}", m) {
        set_errno(&mut out, v[0]);
        if let Some(d) = r
            .detail
            .as_deref()
            .and_then(|d| fill("Failed system call was shmget(key={}, size={}, {}).", d))
        {
            out.key = num(d[0]);
            out.size = num(d[1]);
        }
        FailureCode::ShmgetFailed
    } else if let Some(v) = fill("could not map anonymous shared memory: {}", m) {
        set_errno(&mut out, v[0]);
        out.size = r.hint.as_deref().and_then(|h| {
            let at = h.find("(currently ")? + "(currently ".len();
            let digits: String = h[at..].chars().take_while(char::is_ascii_digit).collect();
            num(&digits)
        });
        FailureCode::AnonymousMmapFailed
    } else if m == "huge pages not supported on this platform"
        || m == "huge pages not supported with the current shared_memory_type setting"
        || m == "huge pages not supported with the current \"shared_memory_type\" setting"
    {
        FailureCode::HugePagesUnavailable
    } else if let Some(v) = fill(
        "mmap({}) with MAP_HUGETLB failed, huge pages disabled: {}",
        m,
    ) {
        out.size = num(v[0]);
        set_errno(&mut out, v[1]);
        out.informational = true;
        FailureCode::HugePagesUnavailable
    } else if let Some(v) = fill("could not create semaphores: {}", m) {
        set_errno(&mut out, v[0]);
        if let Some(d) = r
            .detail
            .as_deref()
            .and_then(|d| fill("Failed system call was semget({}, {}, {}).", d))
        {
            out.key = num(d[0]);
            out.size = num(d[1]);
        }
        FailureCode::SemaphoresExhausted
    } else if let Some(v) = fill(
        "could not resize shared memory segment \"{}\" to {} bytes: {}",
        m,
    ) {
        out.path = Some(v[0].to_string());
        out.size = num(v[1]);
        set_errno(&mut out, v[2]);
        FailureCode::DevShmFull
    } else if let Some(v) = [
        "could not open shared memory segment \"{}\": {}",
        "could not remove shared memory segment \"{}\": {}",
        "could not stat shared memory segment \"{}\": {}",
        "could not map shared memory segment \"{}\": {}",
    ]
    .iter()
    .find_map(|t| fill(t, m))
    .filter(|v| v[1] == "No such file or directory")
    {
        out.path = Some(v[0].to_string());
        set_errno(&mut out, v[1]);
        FailureCode::DsmSegmentMissing
    } else if let Some(v) = [
        "data directory \"{}\" does not exist",
        "specified data directory \"{}\" is not a directory",
        "data directory \"{}\" has wrong ownership",
        "data directory \"{}\" has group or world access",
        "data directory \"{}\" has invalid permissions",
        "\"{}\" is not a valid data directory",
    ]
    .iter()
    .find_map(|t| fill(t, m))
    {
        out.data_dir = Some(v[0].to_string());
        FailureCode::DataDirUnusable
    } else if let Some(v) = fill("could not stat data directory \"{}\": {}", m) {
        out.data_dir = Some(v[0].to_string());
        set_errno(&mut out, v[1]);
        FailureCode::DataDirUnusable
    } else if m == "database files are incompatible with server" {
        out.versions = r.detail.as_deref().and_then(|d| {
            let v = fill(
                "The data directory was initialized by PostgreSQL version {}, which is not compatible with this version {}.",
                d,
            )?;
            Some((v[0].to_string(), v[1].to_string()))
        });
        FailureCode::IncompatibleVersion
    } else if m == "incorrect checksum in control file"
        || m.starts_with("control file contains invalid")
        || m.starts_with("invalid primary checkpoint link in control file")
        || m.starts_with("could not read from control file")
        || m.starts_with("could not open control file")
        || fill("could not open file \"{}\": {}", m).is_some_and(|v| v[0].ends_with("pg_control"))
    {
        FailureCode::ControlFileInvalid
    } else if let Some(v) = fill("could not bind {} address \"{}\": {}", m) {
        set_errno(&mut out, v[2]);
        out.path = Some(v[1].to_string());
        out.port = r.hint.as_deref().and_then(|h| {
            let v = fill("Is another postmaster already running on port {}? {}", h)?;
            num(v[0])
        });
        if v[2] == "Address already in use" {
            FailureCode::PortInUse
        } else {
            FailureCode::ListenFailed
        }
    } else if let Some(v) = fill("{} (PID {}) was terminated by signal {}: {}", m) {
        out.path = Some(v[0].to_string());
        out.pid = num(v[1]);
        out.signal = num(v[2]);
        out.error_text = Some(v[3].to_string());
        FailureCode::ProcessKilled
    } else {
        return None;
    };
    out.code = Some(code);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case study's log (000_2c92e32b102abf06.txt, lines 19–30),
    /// `log_line_prefix = '%t:%r:%u@%d:[%p]: '`.
    const CASE_STUDY: &str = "\
2026-02-12 09:15:21 CST::@:[578272]: FATAL:  pre-existing shared memory block (key 2048, ID 1328250881) is still in use
2026-02-12 09:15:21 CST::@:[578272]: HINT:  Terminate any old server processes associated with data directory \"/data\".
2026-02-12 09:15:21 CST::@:[578272]: LOG:  database system is shut down
2026-02-12 09:31:37 CST::@:[801049]: FATAL:  lock file \"postmaster.pid\" already exists
2026-02-12 09:31:37 CST::@:[801049]: HINT:  Is another postmaster (PID 794791) running in data directory \"/data\"?
";

    #[test]
    fn case_study_prefix() {
        let log = parse_log(CASE_STUDY.as_bytes());
        assert_eq!(log.records.len(), 3);
        let r = &log.records[0];
        assert_eq!(r.level, Level::Fatal);
        assert_eq!(r.prefix, "2026-02-12 09:15:21 CST::@:[578272]: ");
        let rec = recognize(r).unwrap();
        assert_eq!(rec.code, Some(FailureCode::SegmentInUse));
        assert_eq!(rec.key, Some(2048));
        assert_eq!(rec.shmid, Some(1_328_250_881));
        assert_eq!(rec.data_dir.as_deref(), Some("/data"));
        let rec = recognize(&log.records[2]).unwrap();
        assert_eq!(rec.code, Some(FailureCode::LockFileExists));
        assert_eq!(rec.pid, Some(794_791));
        assert_eq!(rec.path.as_deref(), Some("postmaster.pid"));
        assert!(recognize(&log.records[1]).is_none());
    }

    #[test]
    fn pg_ctl_output_and_continuations() {
        let text = "waiting for server to start....2026-03-05 16:02:19 CST::@:[262388]: FATAL:  could not create shared memory segment: Invalid argument\n\
            2026-03-05 16:02:19 CST::@:[262388]: DETAIL:  Failed system call was shmget(key=5432001, size=56, 03600).\n\
            2026-03-05 16:02:19 CST::@:[262388]: HINT:  This error usually means that PostgreSQL's request for a shared memory segment exceeded your kernel's SHMMAX parameter, or possibly that it is less than your kernel's SHMMIN parameter.\n\
            \tThe PostgreSQL documentation contains more information about shared memory configuration.\n\
             stopped waiting\n\
            pg_ctl: could not start server\n";
        let log = parse_log(text.as_bytes());
        assert_eq!(log.records.len(), 2);
        let r = &log.records[0];
        assert!(r.hint.as_deref().unwrap().ends_with("\nThe PostgreSQL documentation contains more information about shared memory configuration."));
        let rec = recognize(r).unwrap();
        assert_eq!(rec.code, Some(FailureCode::ShmgetFailed));
        assert_eq!(rec.errno, Some("EINVAL"));
        assert_eq!(rec.key, Some(5_432_001));
        assert_eq!(rec.size, Some(56));
        assert_eq!(log.records[1].level, Level::Program);
        assert_eq!(log.records[1].text(), "pg_ctl: could not start server");
    }

    #[test]
    fn level_word_must_stand_alone() {
        // "CATALOG:  " is not LOG; a prefix may hold anything.
        let log = parse_log(b"x CATALOG:  y\n[LOG:  x] LOG:  real\n");
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.records[0].message, "x] LOG:  real");
        assert_eq!(log.records[0].prefix, "[");
    }

    #[test]
    fn multibyte_text_before_a_level_word() {
        // Found by the fuzzer: a two-byte character right before the word.
        let log = parse_log(
            "Nov 20 05:01:12postgres[70/]: [1-1]\u{779}ATAL:  x\n[1-1]éFATAL:  y\n".as_bytes(),
        );
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.records[0].message, "y");
    }

    #[test]
    fn binary_lines_are_skipped_and_counted() {
        let mut bytes = b"LOG:  ok\n".to_vec();
        bytes.extend_from_slice(&[0, 1, 2, 0xff, 0xfe, b'\n']);
        bytes.extend_from_slice(b"FATAL:  lock file \"postmaster.pid\" is empty\n");
        let log = parse_log(&bytes);
        assert_eq!(log.binary_lines, vec![2]);
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.lines, 3);
        assert_eq!(
            recognize(&log.records[1]).unwrap().code,
            Some(FailureCode::LockFileEmpty)
        );
    }

    #[test]
    fn other_formats_are_noticed() {
        let csv = "2026-02-12 09:15:21.123 CST,,,578272,,65c9,1,,2026-02-12 09:15:21 CST,,0,FATAL,55000,\"pre-existing shared memory block (key 2048, ID 1) is still in use\",,,,,,,,,\"\",\"postmaster\",,0\n";
        assert_eq!(parse_log(csv.as_bytes()).other_format, Some(("csvlog", 1)));
        let json = "{\"timestamp\":\"2026-02-12\",\"pid\":1,\"error_severity\":\"FATAL\",\"message\":\"x\"}\n";
        assert_eq!(
            parse_log(json.as_bytes()).other_format,
            Some(("jsonlog", 1))
        );
    }

    #[test]
    fn fill_matches_templates() {
        assert_eq!(fill("a {} b {}", "a x b y z"), Some(vec!["x", "y z"]));
        assert_eq!(fill("a {} b", "a x c"), None);
        assert_eq!(fill("exact", "exact"), Some(vec![]));
        assert_eq!(fill("exact", "exactly"), None);
    }

    #[test]
    fn every_code_has_a_distinct_name() {
        let mut names: Vec<&str> = FailureCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailureCode::ALL.len());
    }
}
