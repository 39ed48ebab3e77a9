//! `/proc/PID/stat`, `/proc/PID/status`, and the `btime` line of `/proc/stat`.
//!
//! The interlock needs a few facts about the process named in `postmaster.pid`: whether it
//! exists and is not a zombie, who its parent is, which user it runs as, when it started
//! (to tell a recycled PID from the original owner: start time in clock ticks since boot,
//! plus the boot time, gives wall-clock seconds comparable with line 3 of the PID file), and
//! its PID in nested namespaces.
//!
//! Approach:
//! * `stat` is one line, `"%d (%s) %c %d %d %d %d ..."` (`fs/proc/array.c`, `do_task_stat`).
//!   The command name is printed unescaped, so it may contain spaces, parentheses and even
//!   newlines; it is therefore taken as everything between the *first* `(` and the *last*
//!   `)`, and the numeric fields after it are split on spaces. Field numbers follow `proc(5)`.
//! * `status` is `Key:\tvalue` lines; only the keys needed are read, unknown ones ignored.
//! * Both are parsed from bytes, since names need not be UTF-8.

use crate::error::ParseError;
use crate::num;

/// The fields of `/proc/PID/stat` the interlock uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcStat {
    /// Field 1: the PID (in the reader's PID namespace).
    pub pid: i32,
    /// Field 2: the command name (`comm`), without the parentheses.
    pub comm: Vec<u8>,
    /// Field 3: the state letter: `R` running, `S` sleeping, `D` disk sleep, `Z` zombie,
    /// `T` stopped, `t` tracing stop, `X` dead, `I` idle, `P` parked, …
    pub state: u8,
    /// Field 4: the parent PID.
    pub ppid: i32,
    /// Field 5: the process group ID.
    pub pgrp: i32,
    /// Field 6: the session ID.
    pub session: i32,
    /// Field 7: the controlling terminal.
    pub tty_nr: i32,
    /// Field 22: the start time in clock ticks after boot.
    pub start_time_ticks: u64,
    /// Field 20: the number of threads.
    pub num_threads: i64,
}

/// What a process is doing: the state letter of `/proc/PID/stat` field 3
/// (`task_state_array` in the kernel's `fs/proc/array.c`), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcState {
    /// `R`.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible sleep; no signal takes effect until it leaves it.
    DiskSleep,
    /// `Z`: exited, not yet reaped; holds nothing.
    Zombie,
    /// `T`: stopped by a signal (SIGSTOP, SIGTSTP).
    Stopped,
    /// `t`: stopped by a tracer.
    TracingStop,
    /// `X` (or `x`): dead.
    Dead,
    /// `I`: an idle kernel thread.
    Idle,
    /// `W`: paging (kernels before 2.6) or waking.
    Paging,
    /// `P`: parked.
    Parked,
    /// Any other letter.
    Unknown,
}

impl ProcState {
    /// The state of letter `letter`.
    pub fn from_letter(letter: u8) -> ProcState {
        match letter {
            b'R' => ProcState::Running,
            b'S' => ProcState::Sleeping,
            b'D' => ProcState::DiskSleep,
            b'Z' => ProcState::Zombie,
            b'T' => ProcState::Stopped,
            b't' => ProcState::TracingStop,
            b'X' | b'x' => ProcState::Dead,
            b'I' => ProcState::Idle,
            b'W' => ProcState::Paging,
            b'P' => ProcState::Parked,
            _ => ProcState::Unknown,
        }
    }

    /// Its name, as `ps` writes it in words.
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Sleeping => "sleeping",
            ProcState::DiskSleep => "disk sleep",
            ProcState::Zombie => "zombie",
            ProcState::Stopped => "stopped",
            ProcState::TracingStop => "tracing stop",
            ProcState::Dead => "dead",
            ProcState::Idle => "idle",
            ProcState::Paging => "paging",
            ProcState::Parked => "parked",
            ProcState::Unknown => "unknown",
        }
    }

    /// Stopped, by a signal or a tracer: it acts on no signal but SIGKILL
    /// until continued.
    pub fn is_stopped(self) -> bool {
        matches!(self, ProcState::Stopped | ProcState::TracingStop)
    }

    /// A zombie or dead: it holds nothing and never runs again.
    pub fn is_gone(self) -> bool {
        matches!(self, ProcState::Zombie | ProcState::Dead)
    }
}

impl std::fmt::Display for ProcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ProcStat {
    /// True for a zombie (`Z`) or dead (`X`) process: it holds no resources and will never run
    /// again, whatever `kill(pid, 0)` says.
    pub fn is_zombie(&self) -> bool {
        self.proc_state().is_gone()
    }

    /// Field 3 by name.
    pub fn proc_state(&self) -> ProcState {
        ProcState::from_letter(self.state)
    }
}

/// Parses `/proc/PID/stat`. Errors have no line number (the file is one line).
pub fn parse_proc_stat(bytes: &[u8]) -> Result<ProcStat, ParseError> {
    const WHOLE: &str = "process stat";
    let shape = || {
        ParseError::quoting(
            None,
            WHOLE,
            "\"<pid> (<comm>) <state> ...\" as the kernel writes /proc/PID/stat",
            bytes,
        )
    };
    let open = bytes.iter().position(|b| *b == b'(').ok_or_else(shape)?;
    let close = bytes.iter().rposition(|b| *b == b')').ok_or_else(shape)?;
    if close < open {
        return Err(shape());
    }
    let pid_part = bytes.get(..open).ok_or_else(shape)?;
    let comm = bytes.get(open.saturating_add(1)..close).ok_or_else(shape)?;
    let after = bytes.get(close.saturating_add(1)..).ok_or_else(shape)?;

    let pid_digits = pid_part.strip_suffix(b" ").ok_or_else(shape)?;
    let pid = num::dec_i32(pid_digits).ok_or_else(|| {
        ParseError::quoting(None, "pid", "a decimal process ID (field 1)", pid_digits)
    })?;

    let after = after.strip_suffix(b"\n").unwrap_or(after);
    if !after.starts_with(b" ") {
        return Err(shape());
    }
    // Fields 3.. (index 0 here is field 3).
    let fields: Vec<&[u8]> = num::fields(after).collect();
    const FIELD_NAMES: [&str; 20] = [
        "state",
        "ppid",
        "pgrp",
        "session",
        "tty_nr",
        "tpgid",
        "flags",
        "minflt",
        "cminflt",
        "majflt",
        "cmajflt",
        "utime",
        "stime",
        "cutime",
        "cstime",
        "priority",
        "nice",
        "num_threads",
        "itrealvalue",
        "starttime",
    ];
    let field = |number: usize| -> Result<&[u8], ParseError> {
        let name = FIELD_NAMES
            .get(number.wrapping_sub(3))
            .copied()
            .unwrap_or("field");
        fields.get(number.wrapping_sub(3)).copied().ok_or_else(|| {
            ParseError::new(
                None,
                name,
                format!("field {number} ({name}) of /proc/PID/stat"),
                "end of line",
            )
        })
    };
    let bad = |number: usize, expected: &str, found: &[u8]| {
        let name = FIELD_NAMES
            .get(number.wrapping_sub(3))
            .copied()
            .unwrap_or("field");
        ParseError::quoting(None, name, format!("{expected} (field {number})"), found)
    };
    let int = |number: usize| -> Result<i32, ParseError> {
        let f = field(number)?;
        num::dec_i32(f).ok_or_else(|| bad(number, "a decimal number", f))
    };

    // Report the first missing field, whichever of the needed ones it is.
    if fields.len() < FIELD_NAMES.len() {
        field(fields.len().saturating_add(3))?;
    }
    let state_field = field(3)?;
    let state = match state_field {
        [c] if c.is_ascii_alphabetic() => *c,
        other => return Err(bad(3, "a single state letter such as R, S, D or Z", other)),
    };
    let ppid = int(4)?;
    let pgrp = int(5)?;
    let session = int(6)?;
    let tty_nr = int(7)?;
    let threads_field = field(20)?;
    let num_threads =
        num::dec_i64(threads_field).ok_or_else(|| bad(20, "a decimal number", threads_field))?;
    let start_field = field(22)?;
    let start_time_ticks = num::dec_u64(start_field)
        .ok_or_else(|| bad(22, "an unsigned decimal number of clock ticks", start_field))?;

    Ok(ProcStat {
        pid,
        comm: comm.to_vec(),
        state,
        ppid,
        pgrp,
        session,
        tty_nr,
        start_time_ticks,
        num_threads,
    })
}

/// The fields of `/proc/PID/status` the interlock uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcStatus {
    /// `Name:` as printed (the kernel escapes `\n` and `\` in it as `\n` and `\\`).
    pub name: Vec<u8>,
    /// The state letter from `State:` (e.g. `S` from `S (sleeping)`).
    pub state: u8,
    /// `PPid:`.
    pub ppid: i32,
    /// `Uid:` real, effective, saved, filesystem.
    pub uid: [u32; 4],
    /// `Gid:` real, effective, saved, filesystem.
    pub gid: [u32; 4],
    /// `NSpid:` the PID in each nested PID namespace, outermost (the reader's) first; empty
    /// when the line is absent (kernels before 4.1).
    pub nspid: Vec<i32>,
}

/// Parses `/proc/PID/status`. `Name`, `State`, `PPid`, `Uid` and `Gid` are required; `NSpid`
/// is optional. The first occurrence of a key counts. Malformed values are reported with
/// their line number; missing keys without one.
pub fn parse_proc_status(bytes: &[u8]) -> Result<ProcStatus, ParseError> {
    let mut name = None;
    let mut state = None;
    let mut ppid = None;
    let mut uid = None;
    let mut gid = None;
    let mut nspid = None;

    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let n = i.saturating_add(1);
        let Some((key, value)) = line
            .iter()
            .position(|b| *b == b':')
            .and_then(|c| Some((line.get(..c)?, line.get(c.saturating_add(1)..)?)))
        else {
            continue;
        };
        // Values are separated from the key by a tab (Name keeps any inner spaces).
        let value = value.strip_prefix(b"\t").unwrap_or(value);
        let bad = |field: &'static str, expected: &str| {
            ParseError::quoting(Some(n), field, expected, value)
        };
        match key {
            b"Name" if name.is_none() => name = Some(value.to_vec()),
            b"State" if state.is_none() => {
                let letter = num::fields(value)
                    .next()
                    .and_then(|w| match w {
                        [c, ..] if c.is_ascii_alphabetic() => Some(*c),
                        _ => None,
                    })
                    .ok_or_else(|| bad("State", "a state letter such as \"S (sleeping)\""))?;
                state = Some(letter);
            }
            b"PPid" if ppid.is_none() => {
                let v = single(value)
                    .and_then(num::dec_i32)
                    .ok_or_else(|| bad("PPid", "a decimal process ID"))?;
                ppid = Some(v);
            }
            b"Uid" if uid.is_none() => {
                uid = Some(four_ids(value).ok_or_else(|| {
                    bad(
                        "Uid",
                        "four decimal user IDs (real, effective, saved, filesystem)",
                    )
                })?);
            }
            b"Gid" if gid.is_none() => {
                gid = Some(four_ids(value).ok_or_else(|| {
                    bad(
                        "Gid",
                        "four decimal group IDs (real, effective, saved, filesystem)",
                    )
                })?);
            }
            b"NSpid" if nspid.is_none() => {
                let ids: Option<Vec<i32>> = num::fields(value).map(num::dec_i32).collect();
                let ids = ids
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad("NSpid", "one or more decimal process IDs"))?;
                nspid = Some(ids);
            }
            _ => {}
        }
    }

    let missing = |field: &'static str| {
        ParseError::new(
            None,
            field,
            format!("a \"{field}:\" line in /proc/PID/status"),
            "no such line",
        )
    };
    Ok(ProcStatus {
        name: name.ok_or_else(|| missing("Name"))?,
        state: state.ok_or_else(|| missing("State"))?,
        ppid: ppid.ok_or_else(|| missing("PPid"))?,
        uid: uid.ok_or_else(|| missing("Uid"))?,
        gid: gid.ok_or_else(|| missing("Gid"))?,
        nspid: nspid.unwrap_or_default(),
    })
}

/// The only whitespace-separated word of `value`, if there is exactly one.
fn single(value: &[u8]) -> Option<&[u8]> {
    let mut words = num::fields(value);
    let word = words.next()?;
    words.next().is_none().then_some(word)
}

/// Exactly four whitespace-separated `u32`s.
fn four_ids(value: &[u8]) -> Option<[u32; 4]> {
    let mut words = num::fields(value);
    let mut out = [0u32; 4];
    for slot in &mut out {
        *slot = num::dec_u32(words.next()?)?;
    }
    words.next().is_none().then_some(out)
}

/// The boot time from `/proc/stat`: the `btime N` line, in seconds since the epoch.
pub fn parse_boot_time(proc_stat_text: &[u8]) -> Result<i64, ParseError> {
    for (i, line) in proc_stat_text.split(|b| *b == b'\n').enumerate() {
        let Some(value) = line.strip_prefix(b"btime ") else {
            continue;
        };
        return single(value).and_then(num::dec_i64).ok_or_else(|| {
            ParseError::quoting(
                Some(i.saturating_add(1)),
                "btime",
                "the boot time in seconds since the epoch",
                value,
            )
        });
    }
    Err(ParseError::new(
        None,
        "btime",
        "a \"btime <seconds since the epoch>\" line in /proc/stat",
        "no such line",
    ))
}

/// The PID a pidfd refers to, from its `/proc/PID/fdinfo/FD`: the `Pid:`
/// line the kernel prints for pidfds only (`pidfd_show_fdinfo` in
/// kernel/pid.c, fs/pidfs.c since 6.9). `Some(-1)` for a process that has
/// exited and been reaped; `None` when the file is not a pidfd's.
pub fn parse_pidfd_fdinfo(bytes: &[u8]) -> Option<i32> {
    bytes.split(|b| *b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(b"Pid:")?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfd_fdinfo_names_its_process() {
        let live =
            b"pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t3377\nPid:\t4242\nNSpid:\t4242\n";
        assert_eq!(parse_pidfd_fdinfo(live), Some(4242));
        assert_eq!(
            parse_pidfd_fdinfo(b"pos:\t0\nflags:\t02000002\nPid:\t-1\nNSpid:\t-1\n"),
            Some(-1)
        );
        assert_eq!(
            parse_pidfd_fdinfo(b"pos:\t0\nflags:\t0100000\nmnt_id:\t29\nino:\t12\n"),
            None
        );
        assert_eq!(parse_pidfd_fdinfo(b"Pid:\tjunk\n"), None);
    }

    #[test]
    fn stat_real() {
        let text = b"4084 (cat) R 4078 4078 2388 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 27060 3133440 375 18446744073709551615 94475226660864 94475226680745 140730254582624 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94475226696752 94475226698368 94475712958464 140730254588641 140730254588661 140730254588661 140730254589931 0\n";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.pid, 4084);
        assert_eq!(s.comm, b"cat");
        assert_eq!(s.state, b'R');
        assert_eq!(s.ppid, 4078);
        assert_eq!(s.pgrp, 4078);
        assert_eq!(s.session, 2388);
        assert_eq!(s.tty_nr, 0);
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.start_time_ticks, 27060);
        assert!(!s.is_zombie());
    }

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let text = b"1234 (postgres: bob (x) ) S 1 1234 1234 34816 -1 4194560 1 2 3 4 5 6 7 8 20 0 3 0 99887766 0 0\n";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, b"postgres: bob (x) ");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.tty_nr, 34816);
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.start_time_ticks, 99887766);
    }

    #[test]
    fn stat_comm_with_newline_and_zombie() {
        let text = b"77 (a)\nb) Z 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.comm, b"a)\nb");
        assert!(s.is_zombie());
        let x = parse_proc_stat(b"77 () X 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5").unwrap();
        assert_eq!(x.comm, b"");
        assert!(x.is_zombie());
    }

    #[test]
    fn stat_rejects_malformed() {
        assert!(parse_proc_stat(b"").is_err());
        assert!(parse_proc_stat(b"12 cat R 1").is_err());
        assert!(parse_proc_stat(b"12 )cat( R 1").is_err());
        assert_eq!(parse_proc_stat(b"x (cat) R 1").unwrap_err().field, "pid");
        let short = parse_proc_stat(b"12 (cat) R 1 2 3 4").unwrap_err();
        assert_eq!(short.field, "tpgid");
        let short = parse_proc_stat(b"12 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18")
            .unwrap_err();
        assert_eq!(short.field, "starttime");
        assert_eq!(
            short.to_string(),
            "starttime: expected field 22 (starttime) of /proc/PID/stat, found end of line"
        );
        assert_eq!(
            parse_proc_stat(b"12 (cat) RR 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20")
                .unwrap_err()
                .field,
            "state"
        );
        assert_eq!(
            parse_proc_stat(b"12 (cat) R x 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20")
                .unwrap_err()
                .field,
            "ppid"
        );
        assert_eq!(
            parse_proc_stat(b"12 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -19")
                .unwrap_err()
                .field,
            "starttime"
        );
    }

    #[test]
    fn status_with_nspid() {
        let text = b"Name:\tpostgres\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t999\t1000\t1001\t1002\nGid:\t100000\t100001\t100002\t100003\nFDSize:\t64\nGroups:\t999 \nNStgid:\t4242\t17\nNSpid:\t4242\t17\nNSpgid:\t4242\t17\nNSsid:\t4242\t17\nThreads:\t1\n";
        let s = parse_proc_status(text).unwrap();
        assert_eq!(s.name, b"postgres");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.uid, [999, 1000, 1001, 1002]);
        assert_eq!(s.gid, [100000, 100001, 100002, 100003]);
        assert_eq!(s.nspid, vec![4242, 17]);
    }

    #[test]
    fn status_without_nspid_and_name_with_spaces() {
        let text = b"Name:\tmy proc: x\nState:\tZ (zombie)\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        let s = parse_proc_status(text).unwrap();
        assert_eq!(s.name, b"my proc: x");
        assert_eq!(s.state, b'Z');
        assert!(s.nspid.is_empty());
    }

    #[test]
    fn status_errors() {
        let e = parse_proc_status(
            b"Name:\tx\nState:\tS (sleeping)\nPPid:\t1\nUid:\t1\t2\t3\nGid:\t0\t0\t0\t0\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.field, "Uid");
        assert!(
            e.to_string()
                .starts_with("line 4 (Uid): expected four decimal user IDs"),
            "{e}"
        );
        let e = parse_proc_status(
            b"Name:\tx\nState:\tS (sleeping)\nUid:\t1\t2\t3\t4\nGid:\t0\t0\t0\t0\n",
        )
        .unwrap_err();
        assert_eq!(e.line, None);
        assert_eq!(e.field, "PPid");
        let e = parse_proc_status(b"Name:\tx\nState:\t\nPPid:\t1\n").unwrap_err();
        assert_eq!((e.line, e.field), (Some(2), "State"));
        let e = parse_proc_status(b"Name:\tx\nState:\tR\nPPid:\t1 2\n").unwrap_err();
        assert_eq!((e.line, e.field), (Some(3), "PPid"));
        assert!(parse_proc_status(b"").is_err());
    }

    #[test]
    fn boot_time() {
        let text = b"cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr 123 0 0\nctxt 456\nbtime 1795239957\nprocesses 4100\nprocs_running 1\n";
        assert_eq!(parse_boot_time(text), Ok(1795239957));
        let e = parse_boot_time(b"cpu 1\nbtime soon\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.to_string(),
            "line 2 (btime): expected the boot time in seconds since the epoch, found \"soon\""
        );
        let e = parse_boot_time(b"cpu 1\n").unwrap_err();
        assert_eq!(e.line, None);
        assert!(parse_boot_time(b"").is_err());
    }

    #[test]
    fn state_letters_by_name() {
        use super::ProcState;
        for (letter, name) in [
            (b'R', "running"),
            (b'S', "sleeping"),
            (b'D', "disk sleep"),
            (b'Z', "zombie"),
            (b'T', "stopped"),
            (b't', "tracing stop"),
            (b'X', "dead"),
            (b'x', "dead"),
            (b'I', "idle"),
            (b'?', "unknown"),
        ] {
            assert_eq!(ProcState::from_letter(letter).name(), name);
        }
        assert!(ProcState::from_letter(b't').is_stopped());
        assert!(!ProcState::from_letter(b'S').is_stopped());
        assert!(ProcState::from_letter(b'X').is_gone());
        assert!(!ProcState::from_letter(b'D').is_gone());
    }
}
