//! The library's error type.
//!
//! Each variant names the object (file, key, shmid, PID) and, through
//! [`Error::hint`], the next step, the way PostgreSQL splits a report into
//! message, detail and hint. Expected outcomes of a contested data
//! directory (`LockFileHeld`, `SegmentInUse`) are variants of their own so
//! that callers can match on them; they are not bugs.

use std::io;
use std::path::PathBuf;

use interlock_format::ParseError;

use crate::process::Holder;
use crate::sys::shm::{ShmId, ShmKey};

/// Everything that can go wrong while acquiring, holding or releasing a data
/// directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory does not exist.
    #[error("data directory \"{}\" does not exist", path.display())]
    DataDirMissing {
        /// The path as given.
        path: PathBuf,
    },

    /// The data directory exists but cannot be used (not a directory,
    /// unreadable, or owned by another user).
    #[error("data directory \"{}\" {reason}", path.display())]
    DataDirUnusable {
        /// The path as given.
        path: PathBuf,
        /// What is wrong, e.g. "is owned by uid 101, not by uid 0".
        reason: String,
        /// What to do about it.
        hint: String,
    },

    /// A live process that wrote the lock file still runs.
    #[error(
        "lock file \"{}\" already exists: {} (PID {pid}) is running in data directory \"{}\" ({evidence})",
        path.display(),
        if *standalone { "another postgres" } else { "another postmaster" },
        data_dir.display()
    )]
    LockFileHeld {
        /// The lock file.
        path: PathBuf,
        /// The data directory.
        data_dir: PathBuf,
        /// The owner's PID (line 1, sign removed).
        pid: i32,
        /// Whether line 1 was negative (a standalone backend, or `interlock hold`).
        standalone: bool,
        /// Why we believe it is the owner, e.g. "its start time matches line 3".
        evidence: String,
    },

    /// A live process of the directory's owner has the lock file's PID, and
    /// whether it is this directory's server cannot be told: its working
    /// directory or memory maps could not be read.
    #[error(
        "lock file \"{}\" names PID {pid}, a live process whose data directory cannot be told ({why})",
        path.display()
    )]
    LockFileOwnerUnknown {
        /// The lock file.
        path: PathBuf,
        /// The PID (line 1, sign removed).
        pid: i32,
        /// What could not be read.
        why: String,
    },

    /// The interlock segment of this data directory still has processes
    /// attached: an old server's processes (or an old holder's children)
    /// are alive.
    #[error(
        "pre-existing shared memory block (key {key}, ID {shmid}) is still in use{}",
        describe_holders(*nattch, holders)
    )]
    SegmentInUse {
        /// The data directory.
        data_dir: PathBuf,
        /// The segment's key.
        key: ShmKey,
        /// The segment's id.
        shmid: ShmId,
        /// `shm_nattch` before we looked.
        nattch: u64,
        /// The attached processes we could find in `/proc`.
        holders: Vec<Holder>,
    },

    /// PostgreSQL's `SHMSTATE_ANALYSIS_FAILURE`: a segment on our path could
    /// not be classified, so it must be assumed in use.
    #[error("cannot tell whether shared memory block (key {key}, ID {shmid}) is in use: {op} failed: {source}")]
    SegmentAnalysisFailed {
        /// The segment's key.
        key: ShmKey,
        /// The segment's id.
        shmid: ShmId,
        /// The failing call.
        op: String,
        /// The error.
        source: io::Error,
    },

    /// The lock file exists but is empty: another server is starting, or a
    /// startup crashed right after creating it.
    #[error("lock file \"{}\" is empty", path.display())]
    LockFileEmpty {
        /// The lock file.
        path: PathBuf,
    },

    /// The lock file does not hold what PostgreSQL writes.
    #[error("lock file \"{}\" is corrupt: {source}", path.display())]
    LockFileCorrupt {
        /// The lock file.
        path: PathBuf,
        /// Which line and what was expected.
        source: ParseError,
    },

    /// The lock file is something we refuse to read or replace: a symbolic
    /// link, not a regular file, or larger than any PostgreSQL writes.
    #[error("lock file \"{}\" {reason}", path.display())]
    LockFileUnsafe {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Another process of this library is acquiring the same data directory
    /// and did not finish within the wait.
    #[error("another process has been acquiring data directory \"{}\" for longer than {waited_ms} ms", path.display())]
    Busy {
        /// The data directory.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u128,
    },

    /// This process already holds the data directory.
    #[error("this process already holds data directory \"{}\"", path.display())]
    AlreadyHeld {
        /// The data directory.
        path: PathBuf,
    },

    /// The recheck found that the lock file is gone or names another PID.
    #[error("lock file \"{}\" is no longer ours: {found}", path.display())]
    LockLost {
        /// The lock file.
        path: PathBuf,
        /// What is there now.
        found: String,
    },

    /// The recheck found that our segment was removed (e.g. by `ipcrm` or
    /// systemd's `RemoveIPC`).
    #[error("our shared memory block (ID {shmid}) was removed by someone else")]
    SegmentRemoved {
        /// Our segment's id.
        shmid: ShmId,
    },

    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The call with its arguments, as PostgreSQL's errdetail gives it.
        op: String,
        /// The error.
        source: io::Error,
    },
}

fn describe_holders(nattch: u64, holders: &[Holder]) -> String {
    if holders.is_empty() {
        return format!(" by {nattch} attached process(es) not visible here");
    }
    let mut s = format!(": attached by {}", describe_holders_named(holders));
    if (holders.len() as u64) < nattch {
        s += &format!(
            " and {} process(es) not visible here",
            nattch - holders.len() as u64
        );
    }
    s
}

/// "PID 12 (postgres: /usr/lib/postgresql/15/bin/postgres -D …), PID 13
/// (interlock-keep)": each holder with its name (`comm`) and command line
/// (left out when empty), on one line: control characters escaped.
fn describe_holders_named(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| {
            let cmdline = interlock_format::shell::display(&h.cmdline);
            if cmdline.is_empty() || cmdline == h.name {
                format!("PID {} ({})", h.pid, h.name)
            } else {
                format!("PID {} ({}: {cmdline})", h.pid, h.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub(crate) fn sys(op: impl Into<String>, source: io::Error) -> Self {
        Error::Sys {
            op: op.into(),
            source,
        }
    }

    /// What to do next, in one or two sentences.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::DataDirMissing { .. } => {
                "check the path; create the directory with initdb or mkdir -m 700".into()
            }
            Error::DataDirUnusable { hint, .. } => hint.clone(),
            Error::LockFileOwnerUnknown { pid, .. } => format!(
                "run this as root or as the directory's owner, so that PID {pid}'s working directory and maps can be read; or wait for PID {pid} to finish"
            ),
            Error::LockFileHeld { pid, data_dir, .. } => format!(
                "stop the server first ({}), or wait for PID {pid} to finish",
                interlock_format::shell::words(&[
                    "pg_ctl".as_ref(),
                    "stop".as_ref(),
                    "-D".as_ref(),
                    data_dir.as_os_str()
                ])
            ),
            Error::SegmentInUse {
                data_dir, holders, ..
            } if !holders.is_empty() => format!(
                "if {} holds data directory \"{}\" on purpose (a server, an `interlock hold`), \
                 wait for it or stop it the way it was started; if they are an old server's \
                 leftover processes, terminate them (kill -TERM {}); do not remove the segment \
                 with ipcrm",
                describe_holders_named(holders),
                data_dir.display(),
                holders
                    .iter()
                    .map(|h| h.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Error::SegmentInUse { data_dir, .. } => format!(
                "terminate the old server processes associated with data directory \"{}\" \
                 (they could not be seen here: run as root to list them); do not remove the \
                 segment with ipcrm",
                data_dir.display()
            ),
            Error::SegmentAnalysisFailed { .. } => {
                "run as the data directory's owner; PostgreSQL would refuse to start here too"
                    .into()
            }
            Error::LockFileEmpty { .. } => {
                "either another server is starting, or the lock file is the remnant \
                 of a startup crash; if no process uses the directory, remove the file"
                    .into()
            }
            Error::LockFileCorrupt { .. } | Error::LockFileUnsafe { .. } => {
                "inspect the file; if no process uses the data directory, remove it by hand".into()
            }
            Error::Busy { .. } => {
                "retry; if it persists, look for a stopped (SIGSTOP) process".into()
            }
            Error::AlreadyHeld { .. } => "use the guard you already have".into(),
            Error::LockLost { .. } | Error::SegmentRemoved { .. } => {
                "shut down now: another server may start on this data directory".into()
            }
            Error::Sys { source, .. } => return errno_hint(source),
        })
    }
}

/// PostgreSQL's per-errno hints for `shmget`, in our words.
fn errno_hint(err: &io::Error) -> Option<String> {
    match err.raw_os_error()? {
        libc::EINVAL => {
            Some("the request is outside the kernel's SHMMIN..SHMMAX (kernel.shmmax)".into())
        }
        libc::ENOMEM => Some("the kernel's SHMALL (kernel.shmall) is reached".into()),
        libc::ENOSPC => Some(
            "this is not disk space: all shared memory ids are taken (raise kernel.shmmni) \
             or the system-wide limit is reached"
                .into(),
        ),
        libc::EACCES | libc::EPERM => Some("run as the data directory's owner".into()),
        _ => None,
    }
}
