//! Facts about processes, read from `/proc`, and the identity test for the
//! PID in a lock file.
//!
//! PostgreSQL decides whether the lock file's owner lives with
//! `kill(pid, 0)` alone (`CreateLockFile` in
//! `src/backend/utils/init/miscinit.c`), so a PID reused by any process of
//! the same user blocks startup, a zombie counts as alive, and so does the
//! postmaster of another directory when this one is a copy (`cp -a`) of a
//! running cluster. We judge identity instead, by one rule: a live process
//! is this directory's owner only with evidence that ties it to THIS
//! directory (device and inode):
//!
//! * its working directory is the data directory (a postmaster or
//!   standalone backend changes into it, `ChangeToDataDir`, before it
//!   writes the lock file; Patroni's test);
//! * it is attached to a System V segment whose header names the data
//!   directory (a server once its segment exists, `interlock hold`);
//! * its command line's `-D` names the data directory.
//!
//! Start time (line 3) is never enough: any process of the user started
//! within a second or two of it would pass. A process that fails all three
//! is "elsewhere" when there is positive evidence it is another directory's
//! (its working directory holds a `postmaster.pid` naming it, or it is
//! attached to a segment whose header names another directory), "reused"
//! when everything could be read and nothing ties it to a data directory,
//! and "unknown" when something could not be read: then the caller stays
//! conservative. A zombie, a vanished PID, or another user's process is not
//! the owner. The segment check that follows is the backstop: a misjudged
//! owner still holds its segment, and an attached segment refuses the
//! directory whatever the lock file says.
//!
//! Every reader takes a [`ProcFs`](crate::process::ProcFs) so that tests can point it at a fixture
//! tree. A process that vanishes between two reads is an expected race and
//! reads as gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use interlock_format::maps::{maps_mentions_shmid, shared_mappings, SharedMappings};
use interlock_format::pgproc::{pg_role, PgRole};
use interlock_format::pidfile::PidFile;
use interlock_format::procstat::{
    parse_boot_time, parse_proc_stat, parse_proc_status, ProcStat, ProcState,
};
use interlock_format::shmem_header::{ShmemHeader, HEADER_SIZE};

use crate::sys::shm::ShmId;

/// Seconds by which a process's start time (boot time + start ticks) may
/// differ from line 3 and still be taken for the same process, in reports.
/// It is never evidence of identity on its own (see the module doc).
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
    /// Its command line, arguments separated by spaces, sanitised for
    /// printing; empty if it could not be read (a kernel thread, a zombie).
    pub cmdline: String,
}

/// Facts about one process, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its PID (in our PID namespace).
    pub pid: i32,
    /// Its parent.
    pub ppid: i32,
    /// Its state (`/proc/PID/stat` field 3).
    pub state: ProcState,
    /// Its name (`comm`), printable.
    pub name: String,
    /// Its command line, NULs as spaces, printable; empty for kernel
    /// threads and zombies.
    pub cmdline: String,
    /// Start time, epoch seconds.
    pub start_time: i64,
    /// Real uid.
    pub uid: u32,
    /// Saved set-user-ID: with the real uid, what `kill(2)` compares with
    /// the sender's uid.
    pub suid: u32,
    /// Its PID in each nested PID namespace, ours first (`NSpid`); more
    /// than one entry means it lives in a child namespace.
    pub nspid: Vec<i32>,
    /// Its PostgreSQL role (a postmaster, `checkpointer`, a client backend…).
    pub role: Option<PgRole>,
}

/// Why we believe the process named in a lock file is its owner: each ties
/// it to this data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerEvidence {
    /// Its working directory is the data directory (device and inode).
    WorksInDataDir,
    /// It is attached to a segment whose header names the data directory.
    MapsSegment,
    /// Its command line's `-D` names the data directory.
    CommandLine,
    /// It created line 7's segment, whose header names the data directory
    /// and which still has holders (its maps cannot be read).
    CreatedSegment,
    /// It is this very process, which holds the directory already.
    ThisProcess,
}

impl std::fmt::Display for OwnerEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OwnerEvidence::WorksInDataDir => "its working directory is this data directory",
            OwnerEvidence::MapsSegment => {
                "it is attached to a shared memory segment whose header names this directory"
            }
            OwnerEvidence::CommandLine => "its command line's -D names this directory",
            OwnerEvidence::CreatedSegment => {
                "it created the segment named on line 7, whose header names this directory and which is still attached"
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
    /// A live process of the server's user has the PID, and nothing ties it
    /// to a data directory (its working directory, segments and command
    /// line were all read): the PID was reused.
    Reused {
        /// Its PID.
        pid: i32,
        /// Its name.
        name: String,
        /// Its start time, epoch seconds.
        started: i64,
    },
    /// A live process of the server's user, proven to be another data
    /// directory's: its working directory holds a `postmaster.pid` naming
    /// it, or it is attached to a segment whose header names another
    /// directory. What a copy (`cp -a`) of a running cluster's directory
    /// names.
    Elsewhere {
        /// Its PID.
        pid: i32,
        /// Its name.
        name: String,
        /// Its start time, epoch seconds.
        started: i64,
        /// The evidence, naming the other directory.
        because: String,
    },
    /// A live process of the server's user whose ties to a data directory
    /// could not be read (its working directory or maps): it may be the
    /// owner.
    Unknown {
        /// Its PID.
        pid: i32,
        /// Its name.
        name: String,
        /// What could not be read.
        why: String,
    },
    /// The PID exists but belongs to another user than the server's, or is
    /// invisible to us (`hidepid`): PostgreSQL's `kill(pid, 0)` fails with
    /// EPERM, read as "not a competing postmaster".
    OtherUser,
}

impl OwnerVerdict {
    /// Whether the lock file's owner still runs.
    pub fn is_alive(&self) -> bool {
        matches!(self, OwnerVerdict::Alive { .. })
    }
}

/// One line of `/etc/passwd` (`name:password:uid:gid:…`, `passwd(5)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// The user name.
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid, if the line has a valid one.
    pub gid: Option<u32>,
}

/// The first entry of `ROOT/etc/passwd` that `wanted` accepts, as
/// `getpwuid`/`getpwnam` take the first match; `root` is `/` but for
/// fixture trees. Lines without a valid uid are skipped; an unreadable
/// file has no entries. The one reader of the password file.
pub fn passwd_entry_at(root: &Path, wanted: impl Fn(&PasswdEntry) -> bool) -> Option<PasswdEntry> {
    let text = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd_entry_in(&text, wanted)
}

/// [`passwd_entry_at`] on the text of a password file already read.
pub fn passwd_entry_in(text: &str, wanted: impl Fn(&PasswdEntry) -> bool) -> Option<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_string();
            let uid = f.nth(1)?.parse().ok()?;
            let gid = f.next().and_then(|g| g.parse().ok());
            Some(PasswdEntry { name, uid, gid })
        })
        .find(|e| wanted(e))
}

/// The user name of `uid` from `/etc/passwd`, or "uid N".
pub fn user_name(uid: u32) -> String {
    passwd_entry_at(Path::new("/"), |e| e.uid == uid)
        .map_or_else(|| format!("uid {uid}"), |e| e.name)
}

fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
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
        Ok(self.boot_time()? + (stat.start_time_ticks / ticks_per_second()) as i64)
    }

    /// The processes `pid` holds pidfds on (`/proc/PID/fd/*` links named
    /// `anon_inode:[pidfd]`, or `pidfd:[…]` on kernels with pidfs, and the
    /// `Pid:` line of their fdinfo); -1 for one that has exited. Needs the
    /// right to read `pid`'s descriptors (root, or its owner).
    pub fn pidfd_targets(&self, pid: i32) -> io::Result<Vec<i32>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.pid_path(pid, "fd"))? {
            let entry = entry?;
            let Ok(link) = fs::read_link(entry.path()) else {
                continue; // closed meanwhile
            };
            let link = link.as_os_str().as_encoded_bytes();
            if !(link == b"anon_inode:[pidfd]" || link.starts_with(b"pidfd:")) {
                continue;
            }
            let info = self.pid_path(pid, "fdinfo").join(entry.file_name());
            let Ok(bytes) = fs::read(info) else {
                continue;
            };
            if let Some(target) = interlock_format::procstat::parse_pidfd_fdinfo(&bytes) {
                out.push(target);
            }
        }
        Ok(out)
    }

    /// Everything [`ProcessInfo`] holds. A process that vanishes while it
    /// is read yields `ErrorKind::NotFound` (an expected race).
    pub fn info(&self, pid: i32) -> io::Result<ProcessInfo> {
        self.info_with_boot_time(pid, || self.boot_time())
    }

    /// [`ProcFs::info`], with the boot time (`/proc/stat`'s `btime`) from
    /// `boot_time`, asked only once the process's own files are read: a
    /// caller reading many processes reads `/proc/stat` once.
    pub fn info_with_boot_time(
        &self,
        pid: i32,
        boot_time: impl FnOnce() -> io::Result<i64>,
    ) -> io::Result<ProcessInfo> {
        let stat = self.stat(pid)?;
        let status_bytes = fs::read(self.pid_path(pid, "status"))?;
        let status = parse_proc_status(&status_bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let cmdline_bytes = fs::read(self.pid_path(pid, "cmdline"))?;
        let mut cmdline = printable(
            &cmdline_bytes
                .iter()
                .map(|&b| if b == 0 { b' ' } else { b })
                .collect::<Vec<u8>>(),
        );
        cmdline.truncate(cmdline.trim_end().len());
        Ok(ProcessInfo {
            pid,
            ppid: stat.ppid,
            state: stat.proc_state(),
            name: printable(&stat.comm),
            start_time: boot_time()? + (stat.start_time_ticks / ticks_per_second()) as i64,
            uid: status.uid[0],
            suid: status.uid[2],
            nspid: status.nspid,
            role: pg_role(&cmdline_bytes),
            cmdline,
        })
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

    /// The `/proc` this reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the running kernel's `/proc` (not a fixture tree):
    /// only then may a PID missing here be asked about with `kill(pid, 0)`,
    /// or a segment it names be looked up or attached.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/proc")
    }

    /// The children of every thread of `pid` (`/proc/PID/task/*/children`,
    /// which needs `CONFIG_PROC_CHILDREN`; empty when it is missing).
    pub fn children(&self, pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        let Ok(tasks) = fs::read_dir(self.pid_path(pid, "task")) else {
            return out;
        };
        for task in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|w| w.parse::<i32>().ok()),
                );
            }
        }
        out
    }

    /// The effective uid of a process, as the owner of its `/proc/PID`
    /// directory (root for processes that are not dumpable).
    pub fn owner_uid(&self, pid: i32) -> io::Result<u32> {
        use std::os::unix::fs::MetadataExt;
        Ok(fs::metadata(self.root.join(pid.to_string()))?.uid())
    }

    /// Device and inode of a process's working directory.
    pub fn cwd_id(&self, pid: i32) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(self.pid_path(pid, "cwd"))?;
        Ok((m.dev(), m.ino()))
    }

    /// The inode of a process's namespace `kind` (`ipc`, `pid`, `mnt`):
    /// two processes share the namespace if the inodes are equal.
    pub fn namespace(&self, pid: i32, kind: &str) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(fs::metadata(self.root.join(pid.to_string()).join("ns").join(kind))?.ino())
    }

    /// The System V attachments and DSM mappings of a process.
    pub fn shared_mappings(&self, pid: i32) -> io::Result<SharedMappings> {
        use std::io::Read;
        // /proc files report size 0, so `fs::read` would start with tiny
        // reads; one large buffer reads most maps files in one call.
        let mut maps = Vec::with_capacity(64 << 10);
        fs::File::open(self.pid_path(pid, "maps"))?.read_to_end(&mut maps)?;
        Ok(shared_mappings(&maps))
    }

    /// Read `len` bytes of a process's memory at `addr` through
    /// `/proc/PID/mem`. This needs ptrace-read access (root, or the same
    /// user where Yama allows it) and neither stops nor attaches to the
    /// process: reading a shared segment this way does not change its
    /// attach count.
    pub fn read_memory(&self, pid: i32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let f = fs::File::open(self.pid_path(pid, "mem"))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, addr)?;
        Ok(buf)
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
                found.push(self.holder(pid));
            }
        }
        found.sort_by_key(|h| h.pid);
        found
    }

    fn holder(&self, pid: i32) -> Holder {
        let name = self
            .stat(pid)
            .map(|s| printable(&s.comm))
            .unwrap_or_else(|_| "?".into());
        let cmdline = fs::read(self.pid_path(pid, "cmdline"))
            .map(|b| {
                let b: Vec<u8> = b.iter().map(|&c| if c == 0 { b' ' } else { c }).collect();
                printable(&b).trim_end().to_string()
            })
            .unwrap_or_default();
        Holder { pid, name, cmdline }
    }

    /// [`ProcFs::holders_of`], completed with the segment's creator
    /// (`IPC_STAT`'s `shm_cpid`) when fewer holders were seen than `nattch`
    /// counts and the creator still runs, having started no later than the
    /// segment was made (so not a reused PID). A process that changed its
    /// user, as `interlock hold` run as root does, is not dumpable, and
    /// proc(5) lets only root read its `maps`; its `stat` and `cmdline`
    /// stay readable. Such a creator is the one that holds the directory
    /// (`interlock hold --no-lock-file`, a server whose lock file was
    /// removed).
    pub fn holders_or_creator(&self, shmid: ShmId, nattch: u64) -> Vec<Holder> {
        let mut found = self.holders_of(shmid, nattch);
        if found.len() as u64 >= nattch {
            return found;
        }
        let Ok(st) = crate::sys::shm::stat(shmid) else {
            return found;
        };
        if st.cpid <= 0 || found.iter().any(|h| h.pid == st.cpid) {
            return found;
        }
        let started = self
            .stat(st.cpid)
            .and_then(|s| Ok((s.state, self.start_time(&s)?)));
        if let Ok((state, started)) = started {
            if state != b'Z' && started <= st.ctime {
                found.push(self.holder(st.cpid));
                found.sort_by_key(|h| h.pid);
            }
        }
        found
    }

    /// Judge the PID on line 1 of `pidfile` (see the module doc).
    ///
    /// `data_dir` is the data directory; `server_uid` the user its server
    /// runs as; `my_pid` is this process, which is never its own competitor
    /// unless it holds the directory already (the caller checks that
    /// separately).
    pub fn judge_owner(
        &self,
        pidfile: &PidFile,
        data_dir: &Path,
        server_uid: u32,
        my_pid: i32,
    ) -> OwnerVerdict {
        self.judge_pid(
            pidfile.owner_pid(),
            pidfile.shmem.map(|s| ShmId(s.shmid)),
            data_dir,
            server_uid,
            my_pid,
        )
    }

    /// [`ProcFs::judge_owner`] for a PID (sign removed) and line 7's shmid:
    /// the one identity rule of the module doc, used by the lock's acquire
    /// and by the operator tooling alike.
    pub fn judge_pid(
        &self,
        pid: i32,
        line7: Option<ShmId>,
        data_dir: &Path,
        server_uid: u32,
        my_pid: i32,
    ) -> OwnerVerdict {
        use std::os::unix::fs::MetadataExt;
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
                // user's process. Under a fixture tree, its /proc alone says.
                if !self.is_host() {
                    return OwnerVerdict::Gone;
                }
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
        // kill(2) from the server succeeds when its uid is the target's
        // real or saved uid (kernel/signal.c, kill_ok_by_cred).
        if let Ok(st) = fs::read(self.pid_path(pid, "status"))
            .map_err(|_| ())
            .and_then(|b| parse_proc_status(&b).map_err(|_| ()))
        {
            if st.uid[0] != server_uid && st.uid[2] != server_uid {
                return OwnerVerdict::OtherUser;
            }
        }
        let name = printable(&stat.comm);
        let started = self.start_time(&stat).unwrap_or(0);
        let here = match fs::metadata(data_dir) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) => {
                return OwnerVerdict::Unknown {
                    pid,
                    name,
                    why: format!("stat(\"{}\"): {e}", data_dir.display()),
                }
            }
        };
        let mut unread: Vec<String> = Vec::new();
        let mut elsewhere: Option<String> = None;
        // 1. Its working directory.
        match self.cwd_id(pid) {
            Ok(id) if id == here => {
                return OwnerVerdict::Alive {
                    pid,
                    evidence: OwnerEvidence::WorksInDataDir,
                }
            }
            Ok(_) => {
                if let Ok(cwd) = self.cwd(pid) {
                    if lock_file_names(&cwd, pid) {
                        elsewhere = Some(format!(
                            "it works in {}, whose postmaster.pid names it",
                            cwd.display()
                        ));
                    }
                }
            }
            Err(e) => unread.push(format!("its working directory ({e})")),
        }
        // 2. Its System V attachments, by the header of each.
        match self.shared_mappings(pid) {
            Ok(m) => {
                for seg in &m.sysv {
                    match self.segment_header(pid, seg.shmid, seg.start) {
                        Some(h) if h.matches(here.0, here.1) => {
                            return OwnerVerdict::Alive {
                                pid,
                                evidence: OwnerEvidence::MapsSegment,
                            }
                        }
                        Some(h) if h.has_magic() => {
                            elsewhere.get_or_insert_with(|| {
                                format!(
                                    "it is attached to segment ID {} of another data directory (device {}, inode {})",
                                    seg.shmid, h.device, h.inode
                                )
                            });
                        }
                        Some(_) => {}
                        None => unread.push(format!("the header of segment ID {}", seg.shmid)),
                    }
                }
            }
            Err(e) => unread.push(format!("its memory maps ({e})")),
        }
        // 3. Its command line's -D, when absolute (a relative one is
        // relative to a directory it has since left).
        if let Ok(bytes) = fs::read(self.pid_path(pid, "cmdline")) {
            if let Some(d) = dash_d(&bytes) {
                if fs::metadata(&d).is_ok_and(|m| (m.dev(), m.ino()) == here) {
                    return OwnerVerdict::Alive {
                        pid,
                        evidence: OwnerEvidence::CommandLine,
                    };
                }
            }
        }
        // 4. Its maps unreadable (a process that changed its user, as
        // `interlock hold` run as root does, is not dumpable): it created
        // line 7's segment (IPC_STAT's shm_cpid, having started no later
        // than the segment), which still has holders and whose header names
        // this directory.
        if let (false, Some(shmid), true) = (unread.is_empty(), line7, self.is_host()) {
            if let Ok(st) = crate::sys::shm::stat(shmid) {
                if st.cpid == pid && st.nattch > 0 && started <= st.ctime {
                    if let crate::segment::SegmentState::Attached { .. } =
                        crate::segment::analyze(shmid, data_dir)
                    {
                        return OwnerVerdict::Alive {
                            pid,
                            evidence: OwnerEvidence::CreatedSegment,
                        };
                    }
                }
            }
        }
        if let Some(because) = elsewhere {
            return OwnerVerdict::Elsewhere {
                pid,
                name,
                started,
                because,
            };
        }
        if !unread.is_empty() {
            return OwnerVerdict::Unknown {
                pid,
                name,
                why: format!("could not read {}", unread.join(", ")),
            };
        }
        OwnerVerdict::Reused { pid, name, started }
    }

    /// The header of the segment `shmid` mapped at `start` in `pid`: read
    /// through `/proc/PID/mem` (no attach, so no change to the attach
    /// count), else by attaching as PostgreSQL's `PGSharedMemoryIsInUse`
    /// does. `None` if neither works.
    fn segment_header(&self, pid: i32, shmid: i32, start: u64) -> Option<ShmemHeader> {
        let bytes = match self.read_memory(pid, start, HEADER_SIZE) {
            Ok(b) => b,
            Err(_) if !self.is_host() => return None,
            Err(_) => {
                let att = crate::sys::shm::attach(ShmId(shmid)).ok()?;
                if att.len() < HEADER_SIZE {
                    return None;
                }
                att.read(HEADER_SIZE)
            }
        };
        ShmemHeader::parse(&bytes).ok()
    }
}

/// Whether `dir/postmaster.pid` exists and its line 1 names `pid` (sign
/// removed). Read bounded and without following links, as any lock file.
fn lock_file_names(dir: &Path, pid: i32) -> bool {
    let Ok(p) = crate::safe_fs::read_prefix(
        None,
        &dir.join(crate::LOCK_FILE_NAME),
        interlock_format::pidfile::MAX_PIDFILE_SIZE as u64,
    ) else {
        return false;
    };
    String::from_utf8_lossy(&p.bytes)
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .is_some_and(|n| n.unsigned_abs() == pid as u64)
}

/// The absolute directory a `postgres`/`pg_ctl` command line names with
/// `-D DIR`, `-DDIR` or `--pgdata=DIR` (arguments NUL-separated).
fn dash_d(cmdline: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let mut found = None;
    for (i, a) in args.iter().enumerate() {
        let d: Option<&[u8]> = if *a == b"-D" || *a == b"--pgdata" {
            args.get(i + 1).copied()
        } else if let Some(rest) = a.strip_prefix(b"--pgdata=") {
            Some(rest)
        } else {
            a.strip_prefix(b"-D").filter(|r| !r.is_empty())
        };
        if let Some(d) = d.filter(|d| d.starts_with(b"/")) {
            found = Some(PathBuf::from(std::ffi::OsStr::from_bytes(d)));
        }
    }
    found
}

/// Whether the process a pidfd refers to has exited (the pidfd polls
/// readable from then on, zombie or reaped). Never blocks.
pub fn pidfd_exited(pidfd: impl std::os::fd::AsFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use interlock_format::pidfile::ShmemLine;

    const BTIME: i64 = 1_700_000_000;

    /// A /proc tree with one PostgreSQL checkpointer: a name with spaces and
    /// parentheses, a uid above 65535 (a user-namespaced container seen from
    /// the host), a nested PID namespace, stopped, attached to shmid 65538.
    fn fixture(state: char) -> (tempfile::TempDir, ProcFs, i64) {
        let root = tempfile::tempdir().unwrap();
        let hz = rustix::param::clock_ticks_per_second() as i64;
        std::fs::write(
            root.path().join("stat"),
            format!("cpu  1 2 3 4\nbtime {BTIME}\nprocesses 9\n"),
        )
        .unwrap();
        let p = root.path().join("4242");
        std::fs::create_dir(&p).unwrap();
        let start_ticks = 500 * hz;
        std::fs::write(
            p.join("stat"),
            format!(
                "4242 (postgres: bob (x) ) {state} 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start_ticks} \
                 228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("status"),
            format!(
                "Name:\tpostgres: bob (x) \nState:\t{state} (stopped)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\n\
                 Uid:\t100000\t100000\t100000\t100000\nGid:\t100000\t100000\t100000\t100000\nNSpid:\t4242\t7\n"
            ),
        )
        .unwrap();
        std::fs::write(p.join("cmdline"), b"postgres: checkpointer \0").unwrap();
        std::fs::write(
            p.join("maps"),
            "7f2b61b05000-7f2b61b06000 rw-s 00000000 00:01 65538                      /SYSV0000a000 (deleted)\n\
             7f2b61b06000-7f2b61b07000 r--p 00000000 08:01 1234                       /usr/lib/libc.so.6\n",
        )
        .unwrap();
        // A process that vanished between readdir and read: only a directory.
        std::fs::create_dir(root.path().join("4243")).unwrap();
        let procfs = ProcFs::new(root.path());
        (root, procfs, BTIME + 500)
    }

    #[test]
    fn process_info_from_a_fixture_tree() {
        let (_root, procfs, started) = fixture('T');
        let info = procfs.info(4242).unwrap();
        assert_eq!(info.name, "postgres: bob (x) ");
        assert_eq!(info.state, ProcState::Stopped);
        assert_eq!(info.ppid, 1);
        assert_eq!(info.uid, 100_000);
        assert_eq!(info.nspid, vec![4242, 7]);
        assert_eq!(info.cmdline, "postgres: checkpointer");
        assert_eq!(info.role.map(PgRole::name), Some("checkpointer"));
        assert_eq!(info.start_time, started);
    }

    #[test]
    fn vanished_processes_read_as_not_found_and_are_skipped() {
        let (_root, procfs, _) = fixture('S');
        assert_eq!(
            procfs.info(4243).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(procfs.info(99).unwrap_err().kind(), io::ErrorKind::NotFound);
        let holders = procfs.holders_of(ShmId(65538), 5);
        assert_eq!(
            holders,
            vec![Holder {
                pid: 4242,
                name: "postgres: bob (x) ".into(),
                cmdline: procfs.holder(4242).cmdline,
            }]
        );
        assert!(procfs.holders_of(ShmId(65539), 5).is_empty());
    }

    fn pidfile(start_time: i64, shmid: i32) -> PidFile {
        let mut pf = PidFile::new_server(4242, "/data", start_time, 5432);
        pf.shmem = Some(ShmemLine { key: 40960, shmid });
        pf.line_count = 7;
        pf
    }

    /// The fixture's process 4242 made a process of uid 100000 working in
    /// `cwd` (none: unreadable), mapping nothing, with `cmdline`.
    fn place(procfs: &ProcFs, cwd: Option<&Path>, maps: &str, cmdline: &[u8]) {
        let p = procfs.root().join("4242");
        let _ = std::fs::remove_file(p.join("cwd"));
        if let Some(cwd) = cwd {
            std::os::unix::fs::symlink(cwd, p.join("cwd")).unwrap();
        }
        std::fs::write(p.join("maps"), maps).unwrap();
        std::fs::write(p.join("cmdline"), cmdline).unwrap();
    }

    const UID: u32 = 100_000;

    #[test]
    fn only_evidence_tied_to_this_directory_makes_the_owner() {
        let (_root, procfs, started) = fixture('S');
        let data = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let pf = pidfile(started, i32::MAX);
        // Working in the data directory.
        place(&procfs, Some(data.path()), "", b"postgres\0");
        assert_eq!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Alive {
                pid: 4242,
                evidence: OwnerEvidence::WorksInDataDir
            }
        );
        // Its start time matches line 3, but nothing ties it to a data
        // directory: a reused PID, not the owner.
        place(&procfs, Some(other.path()), "", b"sleep\x00600\0");
        assert!(matches!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Reused { pid: 4242, .. }
        ));
        // Its -D names the data directory.
        let d = format!("postgres\0-D\0{}\0", data.path().display());
        place(&procfs, Some(other.path()), "", d.as_bytes());
        assert_eq!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Alive {
                pid: 4242,
                evidence: OwnerEvidence::CommandLine
            }
        );
        // Working in another directory whose postmaster.pid names it: a
        // copy's lock file names the original's server.
        std::fs::write(other.path().join("postmaster.pid"), "4242\n/x\n").unwrap();
        place(&procfs, Some(other.path()), "", b"postgres\0");
        assert!(matches!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Elsewhere { pid: 4242, because, .. } if because.contains("whose postmaster.pid names it")
        ));
        // Its working directory cannot be read: it may be the owner.
        place(&procfs, None, "", b"postgres\0");
        assert!(matches!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Unknown { pid: 4242, .. }
        ));
        // Another user's process: the server's kill(pid, 0) gets EPERM.
        assert_eq!(
            procfs.judge_owner(&pf, data.path(), 70, 1),
            OwnerVerdict::OtherUser
        );
        // The lock file names this very process: a stale file from before a reboot.
        assert_eq!(
            procfs.judge_owner(&pf, data.path(), UID, 4242),
            OwnerVerdict::Gone
        );
    }

    #[test]
    fn a_segment_header_names_the_directory_or_another() {
        use std::os::unix::fs::MetadataExt;
        let (_root, procfs, started) = fixture('S');
        let data = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let maps = "00001000-00002000 rw-s 00000000 00:01 2147483647                 /SYSV0000a000 (deleted)\n";
        let mem = procfs.root().join("4242/mem");
        let header = |dir: &Path| {
            let m = std::fs::metadata(dir).unwrap();
            let mut bytes = vec![0u8; 4096];
            bytes.extend(ShmemHeader::new_interlock(4242, m.dev(), m.ino()).render());
            std::fs::write(&mem, bytes).unwrap();
        };
        let pf = pidfile(started, i32::MAX);
        header(data.path());
        place(&procfs, Some(other.path()), maps, b"holder\0");
        assert_eq!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Alive {
                pid: 4242,
                evidence: OwnerEvidence::MapsSegment
            }
        );
        header(other.path());
        assert!(matches!(
            procfs.judge_owner(&pf, data.path(), UID, 1),
            OwnerVerdict::Elsewhere { because, .. } if because.contains("another data directory")
        ));
    }

    #[test]
    fn a_zombie_owner_is_not_alive() {
        let (_root, procfs, started) = fixture('Z');
        assert_eq!(
            procfs.judge_owner(&pidfile(started, 65538), Path::new("/data"), UID, 1),
            OwnerVerdict::Zombie
        );
    }
}
