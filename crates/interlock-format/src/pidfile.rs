//! `postmaster.pid`, exactly as PostgreSQL 10–18 write it.
//!
//! The layout comes from `src/include/utils/pidfile.h` (constants unchanged from 10 through
//! 19) and from `CreateLockFile` / `AddToDataDirLockFile` in `src/backend/utils/init/miscinit.c`:
//!
//! | line | content | written by |
//! |---|---|---|
//! | 1 | PID, negative for a standalone or bootstrap backend (`"%d"`) | creation |
//! | 2 | data directory, absolute (`"%s"`) | creation |
//! | 3 | start time, seconds since the epoch (`"%ld"`; `INT64_FORMAT` in 14+, same text) | creation |
//! | 4 | port (`"%d"`) | creation |
//! | 5 | first Unix-socket directory; empty at creation | creation, rewritten later |
//! | 6 | first `listen_addresses` entry that bound (`*`, a host name or an IP), empty if none | sockets; standalone: empty at creation |
//! | 7 | shared memory key and ID (`"%9lu %9lu"`) | shared memory creation |
//! | 8 | status, padded to 8 characters | postmaster only |
//!
//! Approach: the parser is deliberately strict. It accepts every state of the file that
//! PostgreSQL can leave behind (lines 1–5 are written by one `write()`; later lines are added
//! one at a time by `AddToDataDirLockFile`, which pads missing lines with empty ones), and
//! rejects everything else with an error naming the line. Being strict matters because the
//! caller decides whether a data directory is in use from this file; a lenient parser would
//! silently turn a corrupt file into a wrong answer. Because every accepted file records how
//! many lines it had ([`PidFile::line_count`]), [`PidFile::render`] can reproduce it
//! byte for byte, which is what lets a re-implementation of the interlock write files that
//! PostgreSQL, `pg_ctl` and other tools read back unchanged.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ParseError;
use crate::num;

/// The largest `postmaster.pid` accepted. PostgreSQL builds the file in a `BLCKSZ` (8192)
/// buffer and `AddToDataDirLockFile` reads at most `BLCKSZ - 1` bytes of it, so a larger file
/// was not written by PostgreSQL; it is rejected as oversized.
pub const MAX_PIDFILE_SIZE: usize = 8192;

/// Names of lines 1–8, used in error messages.
const LINE_NAMES: [&str; 8] = [
    "postmaster PID",
    "data directory",
    "start time",
    "port",
    "socket directory",
    "listen address",
    "shared memory key and ID",
    "postmaster status",
];

/// Field name used for errors that concern the file as a whole.
const WHOLE_FILE: &str = "lock file";

/// The name of 1-based `line`, or `"lock file"` for lines beyond 8.
fn line_name(line: usize) -> &'static str {
    line.checked_sub(1)
        .and_then(|i| LINE_NAMES.get(i))
        .copied()
        .unwrap_or(WHOLE_FILE)
}

/// The postmaster status written to line 8 (`PM_STATUS_*` in `pidfile.h`).
///
/// PostgreSQL pads every status to 8 characters so that `AddToDataDirLockFile`, which
/// rewrites the file without truncating it, never leaves stale bytes behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PmStatus {
    /// `"starting"`: still starting up (also during recovery with `hot_standby=on` until
    /// consistency is reached).
    Starting,
    /// `"stopping"`: a smart, fast or immediate shutdown was requested.
    Stopping,
    /// `"ready   "`: ready for connections (crash restarts do not change it).
    Ready,
    /// `"standby "`: in recovery with `hot_standby=off`; up, but not accepting connections.
    Standby,
}

impl PmStatus {
    /// All statuses, in the order `pidfile.h` defines them.
    pub const ALL: [PmStatus; 4] = [
        PmStatus::Starting,
        PmStatus::Stopping,
        PmStatus::Ready,
        PmStatus::Standby,
    ];

    /// The status exactly as PostgreSQL writes it, padded to 8 characters.
    pub fn padded(self) -> &'static str {
        match self {
            PmStatus::Starting => "starting",
            PmStatus::Stopping => "stopping",
            PmStatus::Ready => "ready   ",
            PmStatus::Standby => "standby ",
        }
    }

    /// The status word without padding.
    pub fn name(self) -> &'static str {
        match self {
            PmStatus::Starting => "starting",
            PmStatus::Stopping => "stopping",
            PmStatus::Ready => "ready",
            PmStatus::Standby => "standby",
        }
    }

    /// Parses line 8: the padded form, or the same word with fewer or no trailing spaces.
    fn from_line(line: &[u8]) -> Option<PmStatus> {
        if line.len() > 8 {
            return None;
        }
        let end = line
            .iter()
            .rposition(|b| *b != b' ')
            .map_or(0, |i| i.saturating_add(1));
        let word = line.get(..end)?;
        PmStatus::ALL
            .into_iter()
            .find(|s| s.name().as_bytes() == word)
    }
}

impl fmt::Display for PmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Line 7 of `postmaster.pid`: the System V key and ID of the interlock segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShmemLine {
    /// The `key_t` (a 32-bit `int` on Linux). PostgreSQL 13+ derives it from the data
    /// directory's inode, so it can be negative.
    pub key: i32,
    /// The shared memory ID returned by `shmget`.
    pub shmid: i32,
}

impl ShmemLine {
    /// What a valid line 7 looks like, for error messages.
    const EXPECTED: &'static str = "two unsigned numbers as PostgreSQL writes them (\"%9lu %9lu\")";

    /// Renders the line as PostgreSQL does: `"%9lu %9lu"` with both values cast to a 64-bit
    /// `unsigned long`. A negative key is therefore sign-extended: key −2147483647 prints as
    /// `18446744071562067969` (facts sheet 1.3, 1.11).
    pub fn render(&self) -> String {
        // `i32 as u64` sign-extends, exactly like C's `(unsigned long) key`.
        format!("{:9} {:9}", self.key as u64, self.shmid as u64)
    }

    /// Parses the text of line 7 (without its newline) like the server's
    /// `sscanf("%lu %lu")`, but strictly: optional leading spaces, a run of digits, one or more
    /// spaces, a run of digits, optional trailing spaces, nothing else.
    ///
    /// The key must fit `key_t`: either at most `u32::MAX` (taken as the low 32 bits,
    /// reinterpreted as signed) or a sign-extended negative value of at least
    /// `0xFFFF_FFFF_8000_0000`. The ID must be at most `i32::MAX` (IDs are non-negative ints).
    /// Errors are reported against line 7.
    pub fn parse(line: &[u8]) -> Result<ShmemLine, ParseError> {
        let field = line_name(7);
        let bad = || ParseError::quoting(Some(7), field, Self::EXPECTED, line);
        let trimmed_start = line.iter().position(|b| *b != b' ').unwrap_or(line.len());
        let rest = line.get(trimmed_start..).ok_or_else(bad)?;
        let key_len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let (key_digits, rest) = rest.split_at_checked(key_len).ok_or_else(bad)?;
        let gap = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
        if gap == 0 {
            return Err(bad());
        }
        let rest = rest.get(gap..).ok_or_else(bad)?;
        let id_len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let (id_digits, tail) = rest.split_at_checked(id_len).ok_or_else(bad)?;
        if key_digits.is_empty() || id_digits.is_empty() || tail.iter().any(|b| *b != b' ') {
            return Err(bad());
        }
        let key = num::dec_u64(key_digits).ok_or_else(bad)?;
        let shmid = num::dec_u64(id_digits).ok_or_else(bad)?;
        let key = if let Ok(k) = u32::try_from(key) {
            // A 32-bit key printed without sign extension (never on LP64, but harmless).
            k as i32
        } else if key >= 0xFFFF_FFFF_8000_0000 {
            // A negative key_t sign-extended to 64 bits by the `(unsigned long)` cast.
            key as i64 as i32
        } else {
            return Err(ParseError::quoting(
                Some(7),
                field,
                "a key that fits key_t: at most 4294967295, or a negative key sign-extended \
                 to 64 bits (at least 18446744071562067968)",
                line,
            ));
        };
        let shmid = i32::try_from(shmid).map_err(|_| {
            ParseError::quoting(
                Some(7),
                field,
                "a shared memory ID of at most 2147483647",
                line,
            )
        })?;
        Ok(ShmemLine { key, shmid })
    }
}

/// A parsed `postmaster.pid`.
///
/// Values produced by [`PidFile::parse`] always satisfy: `pid` is neither 0 nor `i32::MIN`,
/// `data_dir` is non-empty, `line_count` is 5..=8, `listen_addr` is `None` when
/// `line_count < 6`, `shmem` is `None` when `line_count < 7`, and `status` is `Some`
/// exactly when `line_count == 8`. No path or string contains a newline or NUL byte.
/// [`PidFile::render`] reproduces such a value byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    /// Line 1 as written: the owner's PID, negative for a standalone backend
    /// (`postgres --single`) or bootstrap (`--boot`, initdb); never 0.
    pub pid: i32,
    /// Line 2: the data directory (raw bytes; non-UTF-8 is allowed). Never empty.
    pub data_dir: PathBuf,
    /// Line 3: the owner's start time in seconds since the epoch.
    pub start_time: i64,
    /// Line 4: the port. 0 is accepted: this library writes it when the owner serves no port.
    pub port: u16,
    /// Line 5: the first Unix-socket directory; `None` while the line is empty. Since
    /// PostgreSQL 14 it can also be an abstract-namespace name starting with `@`.
    pub socket_dir: Option<PathBuf>,
    /// Line 6: the first `listen_addresses` entry that bound, as configured (`*`, a host
    /// name such as `localhost`, or an IP address); `None` when absent or empty.
    pub listen_addr: Option<String>,
    /// Line 7: the shared memory key and ID; `None` when absent or empty.
    pub shmem: Option<ShmemLine>,
    /// Line 8: the postmaster status; `None` when absent (always absent for a standalone
    /// backend, which never writes line 8).
    pub status: Option<PmStatus>,
    /// How many lines the file has, 5..=8. Needed to render byte-exactly: a standalone
    /// backend writes an explicitly empty line 6 and no line 8, and PostgreSQL 13+ may write
    /// line 7 while lines 5 and 6 are still empty.
    pub line_count: u8,
}

impl PidFile {
    /// The file a postmaster writes at creation: lines 1–5, line 5 empty
    /// (`CreateLockFile(..., amPostmaster = true, socketDir = "", ...)`).
    pub fn new_server(pid: i32, data_dir: impl Into<PathBuf>, start_time: i64, port: u16) -> Self {
        PidFile {
            pid,
            data_dir: data_dir.into(),
            start_time,
            port,
            socket_dir: None,
            listen_addr: None,
            shmem: None,
            status: None,
            line_count: 5,
        }
    }

    /// The file a standalone backend (`postgres --single`, bootstrap) writes at creation:
    /// the negated PID and lines 1–5 plus an explicitly empty line 6, because that line
    /// "will never receive data" (`CreateLockFile`, `isDDLock && !amPostmaster`).
    ///
    /// `pid` is the process's (positive) PID; it is stored negated. A negative argument is
    /// kept negative (and `i32::MIN` becomes `-i32::MAX`); 0 stays 0, which
    /// [`PidFile::parse`] would reject, so callers must pass a real PID.
    pub fn new_standalone(
        pid: i32,
        data_dir: impl Into<PathBuf>,
        start_time: i64,
        port: u16,
    ) -> Self {
        PidFile {
            pid: pid.saturating_abs().saturating_neg(),
            line_count: 6,
            ..PidFile::new_server(pid, data_dir, start_time, port)
        }
    }

    /// Sets line 5, as the postmaster does when it creates its first Unix socket.
    #[must_use]
    pub fn with_socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.socket_dir = if dir.as_os_str().is_empty() {
            None
        } else {
            Some(dir)
        };
        self
    }

    /// Sets line 6 (padding nothing: lines 1–5 always exist).
    #[must_use]
    pub fn with_listen_addr(mut self, addr: impl Into<String>) -> Self {
        let addr = addr.into();
        self.listen_addr = if addr.is_empty() { None } else { Some(addr) };
        self.line_count = self.line_count.max(6);
        self
    }

    /// Sets line 7, padding a missing line 6 with an empty one like `AddToDataDirLockFile`.
    #[must_use]
    pub fn with_shmem(mut self, shmem: ShmemLine) -> Self {
        self.shmem = Some(shmem);
        self.line_count = self.line_count.max(7);
        self
    }

    /// Sets line 8, padding missing lines 6 and 7 with empty ones like `AddToDataDirLockFile`.
    #[must_use]
    pub fn with_status(mut self, status: PmStatus) -> Self {
        self.status = Some(status);
        self.line_count = 8;
        self
    }

    /// True for a standalone or bootstrap backend, which writes its PID negated.
    pub fn is_standalone(&self) -> bool {
        self.pid < 0
    }

    /// The PID of the owning process (line 1 without its sign). Cannot overflow:
    /// `i32::MIN` is rejected by [`PidFile::parse`] and saturates to `i32::MAX` otherwise.
    pub fn owner_pid(&self) -> i32 {
        self.pid.saturating_abs()
    }

    /// Parses `postmaster.pid`.
    ///
    /// Rules, each with the PostgreSQL fact it comes from (facts sheet 3.1–3.3, 1.3, 1.11):
    /// * empty input is an error. PostgreSQL reports "lock file is empty" (the file was
    ///   created but lines 1–5 were not yet written, or the write was lost in a crash); callers
    ///   that want that message check `bytes.is_empty()` first;
    /// * more than [`MAX_PIDFILE_SIZE`] bytes is an error: PostgreSQL builds the file in a
    ///   `BLCKSZ` buffer;
    /// * every line, including the last, must end in `\n`: every write appends one, so a
    ///   missing final newline means a torn or truncated write;
    /// * at least 5 lines: lines 1–5 are written by a single `write()` at creation;
    /// * at most 8 lines: line 8 (status) is the last line `pidfile.h` defines;
    /// * line 1: `"%d"` of the PID, negated for a standalone backend; 0 (and `i32::MIN`,
    ///   whose negation is not a PID) is rejected, as PostgreSQL rejects a PID `<= 0`
    ///   after removing the sign ("bogus data in lock file");
    /// * line 2: the data directory, made absolute; never empty;
    /// * line 3: `"%ld"` of the start time (`INT64_FORMAT` in 14+);
    /// * line 4: `"%d"` of the port, 0..=65535;
    /// * line 5: any bytes (a path); empty until the first Unix socket exists;
    /// * line 6: a `listen_addresses` entry (`*`, a host name or an IP), must be UTF-8; empty when there is no TCP
    ///   socket, or explicitly empty in a standalone backend's file;
    /// * line 7: see [`ShmemLine::parse`]; empty when `AddToDataDirLockFile` padded it;
    /// * line 8: one of the four padded statuses; the unpadded word (or a shorter padding) is
    ///   also accepted.
    ///
    /// Numbers on lines 1, 3 and 4 must look exactly as `printf` writes them (no sign other
    /// than `-`, no leading zeros, no spaces), and no line may contain a NUL byte, since
    /// PostgreSQL writes C strings.
    pub fn parse(bytes: &[u8]) -> Result<PidFile, ParseError> {
        if bytes.is_empty() {
            return Err(ParseError::new(
                None,
                WHOLE_FILE,
                "at least the five lines PostgreSQL writes at creation",
                "an empty file",
            ));
        }
        if bytes.len() > MAX_PIDFILE_SIZE {
            return Err(ParseError::new(
                None,
                WHOLE_FILE,
                format!("at most {MAX_PIDFILE_SIZE} bytes"),
                format!("an oversized file of {} bytes", bytes.len()),
            ));
        }

        let lines = split_lines(bytes)?;
        for (i, line) in lines.iter().enumerate() {
            if line.contains(&0) {
                let n = i.saturating_add(1);
                return Err(ParseError::quoting(
                    Some(n),
                    line_name(n),
                    "text without NUL bytes, since PostgreSQL writes C strings",
                    line,
                ));
            }
        }
        let line = |n: usize| lines.get(n.wrapping_sub(1)).copied();
        let required = |n: usize| {
            line(n).ok_or_else(|| {
                ParseError::new(
                    Some(n),
                    line_name(n),
                    format!("line {n} ({})", line_name(n)),
                    "end of file",
                )
            })
        };

        // Line 1: PID.
        let l1 = required(1)?;
        let pid = num::canonical_i32(l1)
            .filter(|p| *p != 0 && *p != i32::MIN)
            .ok_or_else(|| {
                ParseError::quoting(
                    Some(1),
                    line_name(1),
                    "a nonzero process ID as PostgreSQL writes it (\"%d\", negative for a \
                     standalone backend)",
                    l1,
                )
            })?;

        // Line 2: data directory.
        let l2 = required(2)?;
        if l2.is_empty() {
            return Err(ParseError::new(
                Some(2),
                line_name(2),
                "the data directory's path",
                "an empty line",
            ));
        }
        let data_dir = bytes_to_path(l2)
            .ok_or_else(|| ParseError::quoting(Some(2), line_name(2), "a path in UTF-8", l2))?;

        // Line 3: start time.
        let l3 = required(3)?;
        let start_time = num::canonical_i64(l3).ok_or_else(|| {
            ParseError::quoting(
                Some(3),
                line_name(3),
                "the start time in seconds since the epoch as PostgreSQL writes it (\"%ld\")",
                l3,
            )
        })?;

        // Line 4: port.
        let l4 = required(4)?;
        let port = num::canonical_u64(l4)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                ParseError::quoting(
                    Some(4),
                    line_name(4),
                    "a port number from 0 to 65535 as PostgreSQL writes it (\"%d\")",
                    l4,
                )
            })?;

        // Line 5: socket directory.
        let l5 = required(5)?;
        let socket_dir =
            if l5.is_empty() {
                None
            } else {
                Some(bytes_to_path(l5).ok_or_else(|| {
                    ParseError::quoting(Some(5), line_name(5), "a path in UTF-8", l5)
                })?)
            };

        // Line 6: listen address.
        let listen_addr = match line(6) {
            None | Some(b"") => None,
            Some(l6) => Some(
                std::str::from_utf8(l6)
                    .map_err(|_| {
                        ParseError::quoting(
                            Some(6),
                            line_name(6),
                            "a listen address in UTF-8 (\"*\", a host name or an IP address)",
                            l6,
                        )
                    })?
                    .to_owned(),
            ),
        };

        // Line 7: shared memory key and ID.
        let shmem = match line(7) {
            None | Some(b"") => None,
            Some(l7) => Some(ShmemLine::parse(l7)?),
        };

        // Line 8: status.
        let status = match line(8) {
            None => None,
            Some(l8) => Some(PmStatus::from_line(l8).ok_or_else(|| {
                ParseError::quoting(
                    Some(8),
                    line_name(8),
                    "one of \"starting\", \"stopping\", \"ready   \" or \"standby \"",
                    l8,
                )
            })?),
        };

        Ok(PidFile {
            pid,
            data_dir,
            start_time,
            port,
            socket_dir,
            listen_addr,
            shmem,
            status,
            // split_lines guarantees 5..=8 lines.
            line_count: u8::try_from(lines.len()).unwrap_or(8),
        })
    }

    /// The number of lines [`PidFile::render`] writes: `line_count` clamped to 5..=8, raised
    /// if needed so that no field that is set is dropped (a set `listen_addr` needs 6 lines,
    /// `shmem` 7, `status` 8). For values from [`PidFile::parse`] it is `line_count`.
    pub fn rendered_line_count(&self) -> u8 {
        let mut n = self.line_count.clamp(5, 8);
        if self.listen_addr.is_some() {
            n = n.max(6);
        }
        if self.shmem.is_some() {
            n = n.max(7);
        }
        if self.status.is_some() {
            n = 8;
        }
        n
    }

    /// Renders the file exactly as PostgreSQL writes it: every line `\n`-terminated,
    /// [`PidFile::rendered_line_count`] lines, absent optional values as empty lines.
    ///
    /// `render(parse(x)) == x` for everything PostgreSQL writes (an unpadded status or extra
    /// spaces on line 7 are normalised). `parse(render(p)) == p` for every `p` that satisfies
    /// the invariants listed on [`PidFile`]. A value with `line_count == 8` but no status
    /// (which neither [`PidFile::parse`] nor the constructors produce) renders an empty
    /// line 8, which `parse` rejects. Paths or strings containing a newline would produce a
    /// corrupt file, just as they would in PostgreSQL.
    pub fn render(&self) -> Vec<u8> {
        let count = self.rendered_line_count();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(self.pid.to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&path_to_bytes(&self.data_dir));
        out.push(b'\n');
        out.extend_from_slice(self.start_time.to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.port.to_string().as_bytes());
        out.push(b'\n');
        if let Some(dir) = &self.socket_dir {
            out.extend_from_slice(&path_to_bytes(dir));
        }
        out.push(b'\n');
        if count >= 6 {
            if let Some(addr) = &self.listen_addr {
                out.extend_from_slice(addr.as_bytes());
            }
            out.push(b'\n');
        }
        if count >= 7 {
            if let Some(shmem) = &self.shmem {
                out.extend_from_slice(shmem.render().as_bytes());
            }
            out.push(b'\n');
        }
        if count >= 8 {
            if let Some(status) = self.status {
                out.extend_from_slice(status.padded().as_bytes());
            }
            out.push(b'\n');
        }
        out
    }
}

/// Whether `tail`, found after line 8, is what a non-truncating rewrite
/// leaves of an older, longer file: the last bytes of a padded status line
/// and its newline (a shmid can only lose one digit, "%9lu" pads the rest).
fn is_stale_status_tail(tail: &[u8]) -> bool {
    tail.len() <= 9
        && PmStatus::ALL.iter().any(|st| {
            let line = [st.padded().as_bytes(), b"\n"].concat();
            line.ends_with(tail)
        })
}

/// Splits the file into 5..=8 newline-terminated lines (without their newlines).
fn split_lines(bytes: &[u8]) -> Result<Vec<&[u8]>, ParseError> {
    let mut lines: Vec<&[u8]> = Vec::with_capacity(8);
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = lines.len().saturating_add(1);
        if n > LINE_NAMES.len() && is_stale_status_tail(rest) {
            // AddToDataDirLockFile rewrites the file from offset 0 without
            // truncating it. When a crash-restart writes a line 7 that is
            // shorter than before (a 10-digit shmid followed by a 9-digit
            // one), the old file's last bytes — the end of line 8 — stay
            // behind it. PostgreSQL ignores them; so do we.
            break;
        }
        if n > LINE_NAMES.len() {
            let line9 = rest.split(|b| *b == b'\n').next().unwrap_or(rest);
            return Err(ParseError::quoting(
                Some(n),
                WHOLE_FILE,
                "end of file after line 8 (postmaster status), the last line PostgreSQL writes",
                line9,
            ));
        }
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let (line, tail) = rest.split_at_checked(i).unwrap_or((rest, &[]));
                lines.push(line);
                rest = tail.get(1..).unwrap_or(&[]);
            }
            None => {
                return Err(ParseError::quoting(
                    Some(n),
                    line_name(n),
                    "a line ending in a newline (a missing newline means a truncated write)",
                    rest,
                ));
            }
        }
    }
    if lines.len() < 5 {
        let n = lines.len().saturating_add(1);
        return Err(ParseError::new(
            Some(n),
            line_name(n),
            format!("line {n} ({})", line_name(n)),
            "end of file",
        ));
    }
    Ok(lines)
}

/// Converts raw line bytes to a path. On Unix every byte string is a path; elsewhere the
/// bytes must be UTF-8.
#[cfg(unix)]
fn bytes_to_path(bytes: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// Converts raw line bytes to a path. On Unix every byte string is a path; elsewhere the
/// bytes must be UTF-8.
#[cfg(not(unix))]
fn bytes_to_path(bytes: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(bytes).ok().map(PathBuf::from)
}

/// The raw bytes of a path (lossy outside Unix).
#[cfg(unix)]
fn path_to_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// The raw bytes of a path (lossy outside Unix).
#[cfg(not(unix))]
fn path_to_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

/// How many bytes of an existing lock file `CreateLockFile` reads: its buffer is
/// `MAXPGPATH * 2 + 256` bytes and one is kept for the terminating NUL.
pub const SERVER_READ_LIMIT: usize = 1024 * 2 + 256 - 1;

/// What PostgreSQL's `CreateLockFile` (10–18) takes from an existing lock file, read the
/// server's lenient way rather than by [`PidFile::parse`]'s strict rules. A diagnosis must
/// predict what the server does, and the server reads far less than it writes:
/// * it reads at most [`SERVER_READ_LIMIT`] bytes, as a C string (a NUL ends it);
/// * the PID is `atoi` of the whole buffer: leading white space, an optional sign, digits,
///   anything after ignored, and 0 when no digit follows ("bogus data" when the result,
///   sign removed, is not positive);
/// * the segment is `sscanf(line 7, "%lu %lu")`: both numbers may be preceded by any white
///   space (newlines included), and a missing or unreadable line 7 silently skips the
///   shared-memory check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReading {
    /// `atoi` of the buffer: negative for a standalone backend.
    pub pid: i32,
    /// Line 7's two numbers (key, shmid) as `unsigned long`, if `sscanf` finds both.
    pub shmem: Option<(u64, u64)>,
    /// The buffer as the server holds it (up to the limit or the first NUL), for the
    /// `bogus data in lock file "…": "…"` message.
    pub buffer: Vec<u8>,
}

impl ServerReading {
    /// Reads `bytes` as the server would.
    pub fn of(bytes: &[u8]) -> ServerReading {
        let limited = &bytes[..bytes.len().min(SERVER_READ_LIMIT)];
        let buffer = match limited.iter().position(|&b| b == 0) {
            Some(nul) => &limited[..nul],
            None => limited,
        };
        let mut line7 = Some(buffer);
        for _ in 1..7 {
            line7 = line7.and_then(|rest| {
                let nl = rest.iter().position(|&b| b == b'\n')?;
                rest.get(nl + 1..)
            });
        }
        let shmem = line7.and_then(|rest| {
            let (id1, rest) = c_strtoul(rest)?;
            let (id2, _) = c_strtoul(rest)?;
            Some((id1, id2))
        });
        ServerReading {
            pid: c_atoi(buffer),
            shmem,
            buffer: buffer.to_vec(),
        }
    }

    /// The PID with the standalone sign removed, as the server compares it.
    pub fn other_pid(&self) -> i32 {
        self.pid.wrapping_abs()
    }

    /// Whether the server stops with "bogus data in lock file" (PID not positive).
    pub fn is_bogus(&self) -> bool {
        self.other_pid() <= 0
    }
}

/// C's `isspace` in the "C" locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// An optional sign, as `strtol` takes it: (negative, the rest).
fn c_sign(s: &[u8]) -> (bool, &[u8]) {
    match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    }
}

/// glibc's `atoi`: `(int) strtol(s, NULL, 10)`, where `strtol` saturates at the `long`
/// bounds and the cast keeps the low 32 bits.
fn c_atoi(s: &[u8]) -> i32 {
    let start = s.iter().position(|&b| !c_isspace(b)).unwrap_or(s.len());
    let (negative, rest) = c_sign(&s[start..]);
    let mut value: i128 = 0;
    for &b in rest.iter().take_while(|b| b.is_ascii_digit()) {
        value = (value * 10 + i128::from(b - b'0')).min(i128::from(i64::MAX) + 1);
    }
    let value = if negative { -value } else { value };
    let long = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    long as i32
}

/// One `%lu` conversion of `sscanf`: skips white space, takes an optional sign and at least
/// one digit; saturates at `ULONG_MAX`; a minus sign negates in unsigned arithmetic.
/// Returns the value and the rest.
fn c_strtoul(s: &[u8]) -> Option<(u64, &[u8])> {
    let start = s.iter().position(|&b| !c_isspace(b))?;
    let (negative, rest) = c_sign(&s[start..]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in &rest[..digits] {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    let value = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some((value, &rest[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL 10–12 postmaster, fully started.
    const PG12_FULL: &[u8] =
        b"242712\n/data\n1772698474\n8531\n/tmp\n0.0.0.0\n     4096 143917078\nready   \n";

    fn ok(bytes: &[u8]) -> PidFile {
        match PidFile::parse(bytes) {
            Ok(p) => p,
            Err(e) => panic!(
                "{:?} should parse, got: {e}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    fn err(bytes: &[u8]) -> ParseError {
        match PidFile::parse(bytes) {
            Ok(p) => panic!(
                "{:?} should be rejected, got {p:?}",
                String::from_utf8_lossy(bytes)
            ),
            Err(e) => e,
        }
    }

    /// Asserts the error is on `line` and that `Display` says so.
    fn err_on(bytes: &[u8], line: usize) -> ParseError {
        let e = err(bytes);
        assert_eq!(e.line, Some(line), "wrong line for {e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("line {line} (")), "{shown}");
        e
    }

    fn round_trip(bytes: &[u8]) -> PidFile {
        let p = ok(bytes);
        assert_eq!(p.render(), bytes, "render(parse(x)) != x for {p:?}");
        assert_eq!(PidFile::parse(&p.render()).as_ref(), Ok(&p));
        p
    }

    #[test]
    fn postmaster_10_to_12_full() {
        let p = round_trip(PG12_FULL);
        assert_eq!(p.pid, 242712);
        assert!(!p.is_standalone());
        assert_eq!(p.owner_pid(), 242712);
        assert_eq!(p.data_dir, Path::new("/data"));
        assert_eq!(p.start_time, 1772698474);
        assert_eq!(p.port, 8531);
        assert_eq!(p.socket_dir.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(p.listen_addr.as_deref(), Some("0.0.0.0"));
        assert_eq!(
            p.shmem,
            Some(ShmemLine {
                key: 4096,
                shmid: 143917078
            })
        );
        assert_eq!(p.status, Some(PmStatus::Ready));
        assert_eq!(p.line_count, 8);
    }

    #[test]
    fn pg13_mid_startup_five_lines() {
        let p = round_trip(b"242712\n/data\n1772698474\n8531\n\n");
        assert_eq!(p.socket_dir, None);
        assert_eq!(p.listen_addr, None);
        assert_eq!(p.shmem, None);
        assert_eq!(p.status, None);
        assert_eq!(p.line_count, 5);
        assert_eq!(p, PidFile::new_server(242712, "/data", 1772698474, 8531));
    }

    #[test]
    fn pg13_shmem_before_sockets() {
        let bytes = b"242712\n/data\n1772698474\n8531\n\n\n  8531001     65538\n";
        let p = round_trip(bytes);
        assert_eq!(p.socket_dir, None);
        assert_eq!(p.listen_addr, None);
        assert_eq!(
            p.shmem,
            Some(ShmemLine {
                key: 8531001,
                shmid: 65538
            })
        );
        assert_eq!(p.line_count, 7);
        let built = PidFile::new_server(242712, "/data", 1772698474, 8531).with_shmem(ShmemLine {
            key: 8531001,
            shmid: 65538,
        });
        assert_eq!(built.render(), bytes);
    }

    #[test]
    fn standalone_six_lines() {
        let bytes = b"-242712\n/data\n1772698474\n5432\n\n\n";
        let p = round_trip(bytes);
        assert!(p.is_standalone());
        assert_eq!(p.owner_pid(), 242712);
        assert_eq!(p.line_count, 6);
        assert_eq!(p.listen_addr, None);
        assert_eq!(
            p,
            PidFile::new_standalone(242712, "/data", 1772698474, 5432)
        );
        assert_eq!(
            PidFile::new_standalone(242712, "/data", 1772698474, 5432).render(),
            bytes
        );
    }

    #[test]
    fn standalone_with_shmem() {
        let bytes = b"-242712\n/data\n1772698474\n5432\n\n\n  5432001     65538\n";
        let p = round_trip(bytes);
        assert!(p.is_standalone());
        assert_eq!(
            p.shmem,
            Some(ShmemLine {
                key: 5432001,
                shmid: 65538
            })
        );
        assert_eq!(p.status, None);
        let built =
            PidFile::new_standalone(242712, "/data", 1772698474, 5432).with_shmem(ShmemLine {
                key: 5432001,
                shmid: 65538,
            });
        assert_eq!(built.render(), bytes);
    }

    #[test]
    fn negative_key_twenty_digits() {
        let bytes =
            b"242712\n/data\n1772698474\n5432\n/tmp\n*\n18446744071562067969     32769\nready   \n";
        let p = round_trip(bytes);
        assert_eq!(
            p.shmem,
            Some(ShmemLine {
                key: -2147483647,
                shmid: 32769
            })
        );
        assert_eq!(p.listen_addr.as_deref(), Some("*"));
        assert_eq!(
            ShmemLine {
                key: -2147483647,
                shmid: 32769
            }
            .render(),
            "18446744071562067969     32769"
        );
        assert_eq!(
            ShmemLine { key: -1, shmid: 0 }.render(),
            "18446744073709551615         0"
        );
    }

    #[test]
    fn key_in_upper_u32_range_accepted() {
        let line = ShmemLine::parse(b"2147483649 7").unwrap();
        assert_eq!(line.key, -2147483647);
        assert_eq!(ShmemLine::parse(b"4294967295 7").unwrap().key, -1);
        assert_eq!(
            ShmemLine::parse(b"18446744071562067968 7").unwrap().key,
            i32::MIN
        );
        assert_eq!(
            ShmemLine::parse(b"  1   2  ").unwrap(),
            ShmemLine { key: 1, shmid: 2 }
        );
        assert_eq!(ShmemLine::parse(b"0 2147483647").unwrap().shmid, i32::MAX);
    }

    #[test]
    fn every_status_padded_and_unpadded() {
        let base = "242712\n/data\n1772698474\n8531\n/tmp\n\n     4096 143917078\n";
        for status in PmStatus::ALL {
            let padded = format!("{base}{}\n", status.padded());
            assert_eq!(round_trip(padded.as_bytes()).status, Some(status));
            let bare = format!("{base}{}\n", status.name());
            let p = ok(bare.as_bytes());
            assert_eq!(p.status, Some(status));
            assert_eq!(p.render(), padded.as_bytes());
            let one = format!("{base}{} \n", status.name());
            if status.name().len() < 8 {
                assert_eq!(ok(one.as_bytes()).status, Some(status));
            }
        }
        assert_eq!(PmStatus::Ready.padded().len(), 8);
        assert_eq!(PmStatus::Standby.to_string(), "standby");
    }

    #[test]
    fn windows_style_empty_line_7() {
        let p = round_trip(b"242712\n/data\n1772698474\n8531\n/tmp\n*\n\nready   \n");
        assert_eq!(p.shmem, None);
        assert_eq!(p.status, Some(PmStatus::Ready));
    }

    #[test]
    fn non_utf8_data_dir() {
        let bytes = b"242712\n/d\xffta\n1772698474\n8531\n/t\xfemp\n";
        let p = round_trip(bytes);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(p.data_dir.as_os_str().as_bytes(), b"/d\xffta");
        }
        let _ = p;
    }

    #[test]
    fn builders() {
        let p = PidFile::new_server(10, "/d", 0, 0)
            .with_socket_dir("/run/postgresql")
            .with_listen_addr("127.0.0.1")
            .with_shmem(ShmemLine { key: 1, shmid: 2 })
            .with_status(PmStatus::Starting);
        assert_eq!(
            p.render(),
            b"10\n/d\n0\n0\n/run/postgresql\n127.0.0.1\n        1         2\nstarting\n"
        );
        assert_eq!(PidFile::parse(&p.render()), Ok(p));
        let only_status = PidFile::new_server(10, "/d", 0, 0).with_status(PmStatus::Stopping);
        assert_eq!(only_status.render(), b"10\n/d\n0\n0\n\n\n\nstopping\n");
        assert_eq!(PidFile::new_standalone(-5, "/d", 0, 0).pid, -5);
        assert_eq!(PidFile::new_standalone(i32::MIN, "/d", 0, 0).pid, -i32::MAX);
    }

    #[test]
    fn render_never_drops_set_fields() {
        let mut p = PidFile::new_server(1, "/d", 0, 0);
        p.status = Some(PmStatus::Ready);
        assert_eq!(p.rendered_line_count(), 8);
        assert_eq!(
            PidFile::parse(&p.render()).unwrap().status,
            Some(PmStatus::Ready)
        );
        p.line_count = 200;
        assert_eq!(p.rendered_line_count(), 8);
        let mut q = PidFile::new_server(1, "/d", 0, 0);
        q.line_count = 8;
        assert_eq!(q.render(), b"1\n/d\n0\n0\n\n\n\n\n");
        assert_eq!(err(&q.render()).line, Some(8));
    }

    #[test]
    fn owner_pid_never_overflows() {
        let mut p = PidFile::new_server(1, "/d", 0, 0);
        p.pid = i32::MIN;
        assert_eq!(p.owner_pid(), i32::MAX);
    }

    #[test]
    fn rejects_empty() {
        let e = err(b"");
        assert_eq!(e.line, None);
        assert_eq!(e.field, "lock file");
        assert_eq!(
            e.expected,
            "at least the five lines PostgreSQL writes at creation"
        );
        assert_eq!(e.found, "an empty file");
    }

    #[test]
    fn rejects_oversized() {
        let mut big = PG12_FULL.to_vec();
        big.resize(MAX_PIDFILE_SIZE + 1, b'x');
        let e = err(&big);
        assert_eq!(e.line, None);
        assert_eq!(e.field, "lock file");
        assert_eq!(e.expected, "at most 8192 bytes");
        assert!(e.found.contains("oversized"), "{e}");
    }

    #[test]
    fn rejects_truncated() {
        let e = err_on(
            b"242712\n/data\n1772698474\n8531\n/tmp\n0.0.0.0\n     4096 1439",
            7,
        );
        assert!(e.expected.contains("newline"), "{e}");
        let e = err_on(b"242712\n/data\n17726", 3);
        assert!(e.expected.contains("newline"), "{e}");
    }

    #[test]
    fn rejects_three_lines() {
        let e = err_on(b"242712\n/data\n1772698474\n", 4);
        assert_eq!(e.found, "end of file");
        assert_eq!(
            e.to_string(),
            "line 4 (port): expected line 4 (port), found end of file"
        );
    }

    #[test]
    fn rejects_nine_lines() {
        let mut nine = PG12_FULL.to_vec();
        nine.extend_from_slice(b"extra\n");
        let e = err_on(&nine, 9);
        assert!(e.found.contains("extra"), "{e}");
        // A lone extra newline is what a non-truncating rewrite leaves
        // (see rewrite_tests); two are not.
        let mut blank_ninth = PG12_FULL.to_vec();
        blank_ninth.extend_from_slice(b"\n\n");
        err_on(&blank_ninth, 9);
    }

    #[test]
    fn rejects_bad_pids() {
        for pid in [
            "0",
            "abc",
            " 12",
            "12 ",
            "12x",
            "-0",
            "+12",
            "012",
            "-2147483648",
            "2147483648",
            "",
        ] {
            let bytes = format!("{pid}\n/data\n1772698474\n8531\n\n");
            let e = err_on(bytes.as_bytes(), 1);
            assert!(e.to_string().contains("postmaster PID"), "{e}");
        }
        assert_eq!(ok(b"-2147483647\n/d\n0\n0\n\n").owner_pid(), i32::MAX);
    }

    #[test]
    fn rejects_bad_line_2_to_4() {
        err_on(b"1\n\n0\n0\n\n", 2);
        err_on(b"1\n/d\nnow\n0\n\n", 3);
        err_on(b"1\n/d\n01\n0\n\n", 3);
        err_on(b"1\n/d\n0\n65536\n\n", 4);
        err_on(b"1\n/d\n0\n-1\n\n", 4);
        err_on(b"1\n/d\n0\n 5432\n\n", 4);
        assert_eq!(ok(b"1\n/d\n-5\n65535\n\n").port, 65535);
    }

    #[test]
    fn rejects_nul_and_non_utf8_listen_addr() {
        err_on(b"1\n/d\0x\n0\n0\n\n", 2);
        err_on(b"1\n/d\n0\n0\n\n\xff\n", 6);
    }

    #[test]
    fn rejects_bad_line_7() {
        let base = "242712\n/data\n1772698474\n8531\n/tmp\n*\n";
        for bad in [
            "1 2 3",
            "-1 5",
            "5000000000 5",
            "1 2147483648",
            "abc",
            "12",
            " 1\t2",
            "1 2x",
            "1  -2",
        ] {
            let bytes = format!("{base}{bad}\nready   \n");
            let e = err_on(bytes.as_bytes(), 7);
            assert!(e.to_string().contains("shared memory key and ID"), "{e}");
        }
        let e = err(format!("{base}5000000000 5\n").as_bytes());
        assert!(e.expected.contains("key_t"), "{e}");
        let e = err(format!("{base}1 2147483648\n").as_bytes());
        assert!(e.expected.contains("2147483647"), "{e}");
        let e = err(format!("{base}abc\n").as_bytes());
        assert_eq!(
            e.to_string(),
            "line 7 (shared memory key and ID): expected two unsigned numbers as PostgreSQL writes them (\"%9lu %9lu\"), found \"abc\""
        );
    }

    #[test]
    fn rejects_bad_status() {
        let base = "242712\n/data\n1772698474\n8531\n/tmp\n*\n     4096 143917078\n";
        for bad in ["running", "", "ready    ", " ready", "READY", "rea"] {
            let e = err_on(format!("{base}{bad}\n").as_bytes(), 8);
            assert!(e.expected.contains("\"standby \""), "{e}");
        }
    }
}

#[cfg(test)]
mod rewrite_tests {
    use super::*;

    /// A crash-restart moves line 7 from a 10-digit to a 9-digit shmid;
    /// PostgreSQL rewrites in place without truncating, so one byte of the
    /// old file (its final newline) stays behind.
    #[test]
    fn stale_tail_of_a_non_truncating_rewrite_is_accepted() {
        let old = b"242712\n/data\n1772698474\n8531\n/tmp\n*\n     4096 1328250881\nready   \n";
        let new = b"242712\n/data\n1772698474\n8531\n/tmp\n*\n     4096 328250882\nready   \n";
        let mut on_disk = new.to_vec();
        on_disk.extend_from_slice(&old[new.len()..]);
        assert_eq!(&on_disk[new.len()..], b"\n");
        let pf = PidFile::parse(&on_disk).unwrap();
        assert_eq!(pf.shmem.unwrap().shmid, 328250882);
        assert_eq!(pf.status, Some(PmStatus::Ready));
        assert_eq!(pf.render(), new.to_vec());
    }

    #[test]
    fn other_tails_after_line_8_are_still_rejected() {
        let base = b"1\n/d\n1\n5432\n\n\n        1         2\nready   \n".to_vec();
        for tail in [&b"x\n"[..], b"ready\n\n", b"9\n", b"\n\n"] {
            let mut f = base.clone();
            f.extend_from_slice(tail);
            let e = PidFile::parse(&f).unwrap_err();
            assert_eq!(e.line, Some(9), "{tail:?}");
        }
    }
}

#[cfg(test)]
mod server_reading_tests {
    use super::*;

    #[test]
    fn a_normal_file_reads_pid_and_segment() {
        let r = ServerReading::of(
            b"4242\n/data\n1700000000\n5432\n/tmp\n*\n  5432001     65538\nready   \n",
        );
        assert_eq!(r.pid, 4242);
        assert_eq!(r.shmem, Some((5432001, 65538)));
        assert!(!r.is_bogus());
    }

    #[test]
    fn atoi_semantics() {
        assert_eq!(ServerReading::of(b"  -77junk").pid, -77);
        assert_eq!(ServerReading::of(b"garbage\n").pid, 0);
        assert!(ServerReading::of(b"garbage\n").is_bogus());
        assert!(ServerReading::of(b"0\n").is_bogus());
        assert!(ServerReading::of(b"\n\n").is_bogus());
        // strtol saturates at LONG_MAX, then the int cast keeps the low 32 bits (-1).
        assert_eq!(ServerReading::of(b"99999999999999999999999").pid, -1);
        // 2^32 + 5 keeps 5.
        assert_eq!(ServerReading::of(b"4294967301\n").pid, 5);
    }

    #[test]
    fn a_short_file_has_no_segment_check() {
        let r = ServerReading::of(b"4242\n");
        assert_eq!(r.pid, 4242);
        assert_eq!(r.shmem, None);
        // Line 7 empty, line 8 a status: sscanf fails on "starting".
        let r = ServerReading::of(b"1\n/d\n1\n5432\n\n\n\nstarting\n");
        assert_eq!(r.shmem, None);
    }

    #[test]
    fn sscanf_skips_newlines_and_accepts_twenty_digit_keys() {
        let r = ServerReading::of(b"1\n/d\n1\n5432\n\n\n18446744071562067969\n32769\n");
        assert_eq!(r.shmem, Some((18446744071562067969, 32769)));
    }

    #[test]
    fn the_buffer_stops_at_nul_and_at_the_read_limit() {
        let r = ServerReading::of(b"12\0\n/d\n");
        assert_eq!(r.buffer, b"12");
        let big = vec![b'7'; 5000];
        assert_eq!(ServerReading::of(&big).buffer.len(), SERVER_READ_LIMIT);
    }
}
