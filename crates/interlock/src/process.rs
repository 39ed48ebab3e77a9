//! Facts about processes, read from `/proc`, and the identity test for the
//! PID in a lock file.
//!
//! PostgreSQL decides whether the lock file's owner lives with
//! `kill(pid, 0)` alone, so a PID reused by any process of the same user
//! blocks startup, and a zombie counts as alive. We judge identity instead:
//! a process is the owner if its start time matches line 3 (which both
//! PostgreSQL and this library write as the owner's start time), if it maps
//! the segment named on line 7, or if it is a `postgres` executable whose
//! working directory is the data directory (Patroni's test). A zombie, a
//! vanished PID, or a process that fails all three is not the owner. The
//! segment check that follows is the backstop: a misjudged owner still holds
//! its segment, and an attached segment refuses the directory whatever the
//! lock file says.
//!
//! Every reader takes a [`ProcFs`] so that tests can point it at a fixture
//! tree. A process that vanishes between two reads is an expected race and
//! reads as gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use interlock_format::maps::maps_mentions_shmid;
use interlock_format::pidfile::PidFile;
use interlock_format::procstat::{parse_boot_time, parse_proc_stat, ProcStat};

use crate::sys::shm::ShmId;

/// Seconds by which a process's start time (boot time + start ticks) may
/// differ from line 3 and still be taken for the same process. Line 3 is set
/// a moment after the fork that created the PID, and `btime` moves when the
/// wall clock is stepped; Patroni's 3 s window proved too tight on its own
/// (patroni #2792), which is why a mismatch is never the only evidence used.
pub const START_TIME_TOLERANCE_SECS: i64 = 2;

/// Where `/proc` is.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

/// A process attached to a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its PID.
    pub pid: i32,
    /// Its name (`comm`), sanitised for printing.
    pub name: String,
}

/// Why we believe the process named in a lock file is its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerEvidence {
    /// Its start time matches line 3 of the lock file.
    StartTime,
    /// It maps the segment named on line 7.
    MapsSegment,
    /// It is a `postgres`/`postmaster` executable whose cwd is the data directory.
    PostgresInDataDir,
    /// It is this very process, which holds the directory already.
    ThisProcess,
}

impl std::fmt::Display for OwnerEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OwnerEvidence::StartTime => "its start time matches line 3 of the lock file",
            OwnerEvidence::MapsSegment => "it is attached to the segment named on line 7",
            OwnerEvidence::PostgresInDataDir => {
                "it is a postgres process working in this directory"
            }
            OwnerEvidence::ThisProcess => "it is this process",
        })
    }
}

/// The identity of the PID on line 1 of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerVerdict {
    /// The owner is alive.
    Alive {
        /// Its PID.
        pid: i32,
        /// Why we think so.
        evidence: OwnerEvidence,
    },
    /// No such process.
    Gone,
    /// The owner has exited and waits to be reaped: it holds nothing.
    Zombie,
    /// A live process has the PID but is not the owner (PID reused).
    Reused {
        /// Its PID.
        pid: i32,
        /// Its name.
        name: String,
        /// Its start time, epoch seconds.
        started: i64,
    },
    /// The PID exists but is invisible to us (another user under
    /// `hidepid`): PostgreSQL reads EPERM as "not a competing postmaster",
    /// since another user cannot own this directory.
    OtherUser,
}

impl OwnerVerdict {
    /// Whether the lock file's owner still runs.
    pub fn is_alive(&self) -> bool {
        matches!(self, OwnerVerdict::Alive { .. })
    }
}

impl ProcFs {
    /// A `/proc` at another root (fixture trees in tests).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    fn pid_path(&self, pid: i32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    /// `/proc/PID/stat`, parsed.
    pub fn stat(&self, pid: i32) -> io::Result<ProcStat> {
        let bytes = fs::read(self.pid_path(pid, "stat"))?;
        parse_proc_stat(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Boot time (`btime` in `/proc/stat`), epoch seconds.
    pub fn boot_time(&self) -> io::Result<i64> {
        let bytes = fs::read(self.root.join("stat"))?;
        parse_boot_time(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// A process's start time in epoch seconds, from its start ticks and
    /// the boot time.
    pub fn start_time(&self, stat: &ProcStat) -> io::Result<i64> {
        let ticks = rustix::param::clock_ticks_per_second().max(1);
        Ok(self.boot_time()? + (stat.start_time_ticks / ticks) as i64)
    }

    /// `/proc/PID/cwd`.
    pub fn cwd(&self, pid: i32) -> io::Result<PathBuf> {
        fs::read_link(self.pid_path(pid, "cwd"))
    }

    /// `/proc/PID/exe`.
    pub fn exe(&self, pid: i32) -> io::Result<PathBuf> {
        fs::read_link(self.pid_path(pid, "exe"))
    }

    /// Whether the process maps the SysV segment `shmid` (its `/SYSV`
    /// mapping's inode is the shmid).
    pub fn maps_segment(&self, pid: i32, shmid: ShmId) -> io::Result<bool> {
        let maps = fs::read(self.pid_path(pid, "maps"))?;
        Ok(maps_mentions_shmid(&maps, shmid.0))
    }

    /// PIDs of all processes, in no particular order.
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let mut pids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let Ok(entry) = entry else { continue };
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Processes that map segment `shmid`, scanning `/proc/*/maps` and
    /// stopping once `expected` are found. Processes whose maps we may not
    /// read are skipped; the caller compares the count with `shm_nattch`.
    pub fn holders_of(&self, shmid: ShmId, expected: u64) -> Vec<Holder> {
        let mut found = Vec::new();
        let Ok(pids) = self.pids() else { return found };
        for pid in pids {
            if found.len() as u64 >= expected {
                break;
            }
            if let Ok(true) = self.maps_segment(pid, shmid) {
                let name = self
                    .stat(pid)
                    .map(|s| printable(&s.comm))
                    .unwrap_or_else(|_| "?".into());
                found.push(Holder { pid, name });
            }
        }
        found.sort_by_key(|h| h.pid);
        found
    }

    /// Judge the PID on line 1 of `pidfile` (see the module doc).
    ///
    /// `data_dir` is the canonical data directory; `my_pid` is this
    /// process, which is never its own competitor unless it holds the
    /// directory already (the caller checks that separately).
    pub fn judge_owner(&self, pidfile: &PidFile, data_dir: &Path, my_pid: i32) -> OwnerVerdict {
        let pid = pidfile.owner_pid();
        if pid == my_pid {
            // After a reboot the PID in a stale file is often our own
            // (PostgreSQL's reason for the self/parent/grandparent rule).
            return OwnerVerdict::Gone;
        }
        let stat = match self.stat(pid) {
            Ok(stat) => stat,
            Err(_) => {
                // Gone, or hidden from us (hidepid): tell them apart with
                // kill(pid, 0) as PostgreSQL does, reading EPERM as another
                // user's process.
                return match rustix::process::Pid::from_raw(pid)
                    .map(rustix::process::test_kill_process)
                {
                    Some(Err(rustix::io::Errno::PERM)) => OwnerVerdict::OtherUser,
                    Some(Ok(())) => OwnerVerdict::OtherUser,
                    _ => OwnerVerdict::Gone,
                };
            }
        };
        if stat.is_zombie() {
            return OwnerVerdict::Zombie;
        }
        let started = self.start_time(&stat).ok();
        if let Some(started) = started {
            if (started - pidfile.start_time).abs() <= START_TIME_TOLERANCE_SECS {
                return OwnerVerdict::Alive {
                    pid,
                    evidence: OwnerEvidence::StartTime,
                };
            }
        }
        if let Some(shm) = pidfile.shmem {
            if let Ok(true) = self.maps_segment(pid, ShmId(shm.shmid)) {
                return OwnerVerdict::Alive {
                    pid,
                    evidence: OwnerEvidence::MapsSegment,
                };
            }
        }
        let is_postgres = self
            .exe(pid)
            .ok()
            .and_then(|exe| {
                exe.file_name()
                    .map(|n| n == "postgres" || n == "postmaster")
            })
            .unwrap_or(false);
        if is_postgres && self.cwd(pid).map(|cwd| cwd == data_dir).unwrap_or(false) {
            return OwnerVerdict::Alive {
                pid,
                evidence: OwnerEvidence::PostgresInDataDir,
            };
        }
        OwnerVerdict::Reused {
            pid,
            name: printable(&stat.comm),
            started: started.unwrap_or(0),
        }
    }
}

/// Bytes from `/proc` made safe to print: invalid UTF-8 replaced, control
/// characters escaped.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
