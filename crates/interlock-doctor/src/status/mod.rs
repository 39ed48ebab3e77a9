//! `status`: one data directory, replayed through the server's startup
//! checks (see the module doc of [`super`]), one module per stage, in the
//! server's order (`PostmasterMain`, src/backend/postmaster/postmaster.c):
//!
//! - [`datadir`]: `checkDataDir` (exists, is a directory, owner, mode),
//!   `PG_VERSION`, and `global/pg_control` as `ReadControlFile` reads it;
//! - [`lockfile`]: `postmaster.pid` (`CreateLockFile`), and who its PID is;
//! - [`sockets`]: the start's settings (port and where it came from, listen
//!   addresses, socket directories), the TCP port, the socket lock files;
//! - [`probe`](mod@probe): the first key and the key probe (`PGSharedMemoryCreate`);
//! - [`segments`]: whose each segment is, line 7's segment, and the
//!   segments the probe never reaches;
//! - [`fencefile`]: `interlock.fence`, the last fence holder's record
//!   (informational; etcd's key decides, `crate::fence`);
//! - [`storage`]: whether the directory is on a network or cluster file
//!   system, where another host's server is invisible here;
//! - [`verdict`]: the first of those steps that stops the server, with its
//!   FATAL message and [`Stage`];
//! - [`holders`]: the processes attached to this directory's segments and
//!   what they are, and the DSM files they map;
//! - [`remedy`](mod@remedy): the prose, what to do, worded from the finished report.
//!
//! The rules themselves (keys, probe steps, line 7, the directory's mode
//! per version, who a lock file's PID is) are `interlock::pg`'s and
//! `interlock::process`'s, shared with `DataDirLock::acquire`; these
//! modules gather what the host shows and apply them. [`status_once`] runs
//! the stages in order.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use interlock_format::pgconf::postmaster_opts_settings;
use interlock_format::pgcontrol::{startup_refusal, ControlRefusal};
use interlock_format::pgproc::is_postgres_executable;
use interlock_format::pidfile::{PidFile, ServerReading, MAX_PIDFILE_SIZE};
use interlock_format::shell;
use interlock_format::shmem_header::{ShmemHeader, HEADER_SIZE};
use interlock_format::sysvipc::ShmEntry;

use super::host::{now_epoch, Attached, DsmState, Host};
use super::version::{self, Algorithm, KeySeed};
use super::*;
use crate::Error;
use interlock::pg;
use interlock::process::{printable, OwnerVerdict};
use interlock::segment::{self, SegmentState};
use interlock::sys::proc::KEEPER_NAME;
use interlock::sys::shm::{ShmId, ShmKey};

mod datadir;
mod fencefile;
mod holders;
mod lockfile;
mod probe;
mod remedy;
mod segments;
mod sockets;
mod storage;
#[cfg(test)]
mod tests;
mod verdict;

use datadir::*;
use fencefile::*;
use holders::*;
use lockfile::*;
use probe::*;
use remedy::*;
use segments::*;
use sockets::*;
use storage::*;
use verdict::*;

/// Whose a segment is.
#[derive(Debug, Clone)]
enum Belongs {
    This(String),
    Foreign(String),
    Unknown(String),
}

impl Belongs {
    fn whose(&self) -> Whose {
        match self {
            Belongs::This(_) => Whose::ThisDirectory,
            Belongs::Foreign(_) => Whose::Foreign,
            Belongs::Unknown(_) => Whose::Unknown,
        }
    }
    fn evidence(&self) -> &str {
        match self {
            Belongs::This(e) | Belongs::Foreign(e) | Belongs::Unknown(e) => e,
        }
    }
    fn is_this(&self) -> bool {
        matches!(self, Belongs::This(_))
    }
}

/// What the lock file stage decides.
#[derive(Debug)]
enum LockStage {
    Absent,
    Unreadable(String),
    Unusable(String),
    Empty,
    Bogus(String),
    /// The PID exists and the server's `kill(pid, 0)` would succeed.
    Live(Identity),
    /// The server would take the PID for dead.
    Dead,
}

/// How the key probe ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProbeEnd {
    /// The server creates its segment at `key`, after removing `recycles`;
    /// `unsure`: a segment at `key` whose header cannot be read here (the
    /// server removes it if the header makes it a dead server's, else
    /// moves past it: `pg::ProbeStep::RecycleOrNextKey`).
    Creates {
        key: i32,
        recycles: Option<i32>,
        unsure: Option<i32>,
    },
    /// FATAL on an attached segment of this directory.
    Blocked { key: i32, shmid: i32 },
    /// Cannot be told.
    Unknown(String),
}

struct Ctx<'a> {
    opts: &'a StatusOptions,
    shown: PathBuf,
    real: PathBuf,
    dir_id: (u64, u64),
    /// The server's user and group: the directory's owner, or, when the
    /// directory itself was chowned, the owner of what initdb made inside
    /// ([`server_user`]).
    owner: (u32, u32),
    /// The directory's own owner, which `checkDataDir` compares with the
    /// server's user.
    dir_owner: u32,
    /// The host as read so far: shared by the diagnoses of one `scan`.
    host: &'a mut Host,
    findings: Vec<Finding>,
    belongs: BTreeMap<i32, Belongs>,
    /// The DSM control handle in the header of each segment of this
    /// directory whose header was read.
    dsm_control: BTreeMap<i32, u32>,
    /// The header of each segment whose header was read (through a
    /// holder's memory, or by attaching with `--attach`), whoever's it is:
    /// the old probe loop asks its magic and `creatorPID`
    /// (`interlock::pg::HeaderSeen`).
    headers: BTreeMap<i32, ShmemHeader>,
    attached: Vec<Attached>,
    /// Processes working in the directory (looked for only when the lock
    /// file is empty or bogus, to tell a starting server from a crash).
    workers: Vec<ProcessSummary>,
}

impl Ctx<'_> {
    fn find(&mut self, code: Code, severity: Severity, message: String) {
        self.findings.push(Finding {
            code,
            severity,
            message,
        });
    }

    /// What a server running as the directory's owner may do with the
    /// segment (`pg::ShmAccess`, the kernel's `ipcperms`): the one rule
    /// for reading it (`IPC_STAT`) and attaching it (`shmat` without
    /// `SHM_RDONLY`, read and write).
    fn server_access(&self, e: &ShmEntry) -> pg::ShmAccess {
        pg::ShmAccess::granted(
            e.permissions(),
            (e.uid, e.gid),
            (e.cuid, e.cgid),
            self.owner,
        )
    }

    /// Whether a server running as the directory's owner may attach the
    /// segment, as `shmat(shmid, NULL, 0)` does: read and write access.
    /// Its `PGSharedMemoryAttach` (10.8+/11.3+/12+) takes a segment it may
    /// not attach for another's (`EACCES` → `SHMSTATE_FOREIGN`); the old
    /// probe loop cannot read its header.
    fn server_can_attach(&self, e: &ShmEntry) -> bool {
        self.server_access(e).can_attach()
    }

    fn holders_of(&self, shmid: i32) -> Vec<Attached> {
        self.attached
            .iter()
            .filter(|a| a.shmid == shmid)
            .cloned()
            .collect()
    }

    /// Whose a segment is, from its header as read through `pid`'s memory.
    fn by_header(&mut self, hdr: &ShmemHeader, shmid: i32, pid: i32) -> Belongs {
        self.headers.insert(shmid, *hdr);
        if hdr.matches(self.dir_id.0, self.dir_id.1) {
            self.dsm_control.insert(shmid, hdr.dsm_control);
            Belongs::This(format!(
                "its header names this directory (read through PID {pid}'s memory)"
            ))
        } else if !hdr.has_magic() {
            Belongs::Foreign("it is not a PostgreSQL segment (no magic number)".into())
        } else {
            Belongs::Foreign(format!(
                "its header names another directory (device {}, inode {})",
                hdr.device, hdr.inode
            ))
        }
    }

    /// Decide whose segment `e` is (module doc: header through a holder's
    /// memory, `--attach`, then circumstantial evidence).
    fn decide(&mut self, e: &ShmEntry, lock: Option<&PidFileParts>) -> Belongs {
        match self.server_access(e) {
            pg::ShmAccess::ReadWrite => {}
            pg::ShmAccess::None => {
                return Belongs::Foreign(format!(
                    "owned by {} with mode {:03o}: a server running as {} cannot read it",
                    self.host.user_name(e.uid),
                    e.permissions(),
                    self.host.user_name(self.owner.0)
                ))
            }
            pg::ShmAccess::ReadOnly => {
                return Belongs::Foreign(format!(
                    "owned by {} with mode {:03o}: a server running as {} can read it but not attach it (shmat asks for read and write)",
                    self.host.user_name(e.uid),
                    e.permissions(),
                    self.host.user_name(self.owner.0)
                ))
            }
        }
        if e.size < HEADER_SIZE as u64 {
            return Belongs::Foreign(format!(
                "{} bytes, smaller than a PostgreSQL segment header",
                e.size
            ));
        }
        for h in self.holders_of(e.shmid) {
            if let Some(hdr) = self.host.header_via(&h) {
                return self.by_header(&hdr, e.shmid, h.pid);
            }
        }
        if self.opts.attach && e.nattch > 0 {
            match segment::analyze(ShmId(e.shmid), &self.real) {
                SegmentState::Attached { header, .. } | SegmentState::Unattached { header } => {
                    self.headers.insert(e.shmid, header);
                    return Belongs::This(
                        "its header names this directory (read by attaching, --attach)".into(),
                    );
                }
                SegmentState::Foreign => {
                    // Whether it is PostgreSQL's at all, and its creator,
                    // matter to the old probe loop: read the header again
                    // (the segment has holders, so attaching changes
                    // nothing a starting server concludes).
                    let header = interlock::sys::shm::attach(ShmId(e.shmid))
                        .ok()
                        .and_then(|a| ShmemHeader::parse(&a.read(HEADER_SIZE)).ok());
                    return match header {
                        Some(h) if !h.has_magic() => {
                            self.headers.insert(e.shmid, h);
                            Belongs::Foreign(
                                "it is not a PostgreSQL segment (no magic number; read by attaching, --attach)"
                                    .into(),
                            )
                        }
                        Some(h) => {
                            self.headers.insert(e.shmid, h);
                            Belongs::Foreign(format!(
                                "its header names another directory (device {}, inode {}; read by attaching, --attach)",
                                h.device, h.inode
                            ))
                        }
                        None => Belongs::Foreign(
                            "its header names another directory (read by attaching, --attach)"
                                .into(),
                        ),
                    };
                }
                SegmentState::Enoent => {
                    return Belongs::Unknown("it vanished while being read".into())
                }
                SegmentState::AnalysisFailure { op, error } => {
                    return Belongs::Unknown(format!("{op} failed: {error}"))
                }
            }
        }
        if let Some(lock) = lock {
            if e.cpid == lock.pid
                && lock
                    .start_time
                    .is_none_or(|t| e.ctime >= t - interlock::process::START_TIME_TOLERANCE_SECS)
            {
                return Belongs::This(format!(
                    "it was created by PID {}, the lock file's owner, after that process started",
                    e.cpid
                ));
            }
        }
        let holders = self.holders_of(e.shmid);
        let mut elsewhere_postgres = !holders.is_empty();
        for h in &holders {
            if self.host.cwd_id(h.pid) == Some(self.dir_id) {
                return Belongs::This(format!("its holder PID {} works in this directory", h.pid));
            }
            let is_pg = self
                .host
                .procfs
                .exe(h.pid)
                .ok()
                .is_some_and(is_postgres_executable);
            elsewhere_postgres &= is_pg;
        }
        if elsewhere_postgres {
            return Belongs::Foreign(
                "its holders are PostgreSQL processes working in another directory".into(),
            );
        }
        if e.nattch == 0 {
            Belongs::Unknown(
                "nobody is attached, and its header can only be read by attaching, which could make a starting server fail"
                    .into(),
            )
        } else if holders.is_empty() {
            Belongs::Unknown(format!(
                "none of its {} holders is visible here (another PID namespace, or /proc is restricted)",
                e.nattch
            ))
        } else {
            Belongs::Unknown(
                "its header could not be read through a holder's memory (run as root, or use --attach)"
                    .into(),
            )
        }
    }
}

fn summary(host: &Host, pid: i32) -> Option<ProcessSummary> {
    let info = host.info(pid)?;
    let cmdline = if info.cmdline.is_empty() {
        format!("[{}]", info.name)
    } else {
        info.cmdline
    };
    Some(ProcessSummary {
        pid,
        ppid: info.ppid,
        state: info.state,
        cmdline,
        start_time: info.start_time,
        role: info.role,
        uid: info.uid,
        nspid: info.nspid,
    })
}

/// Diagnose the data directory `data_dir`.
///
/// Errors only when there is nothing to diagnose (no such directory, not a
/// directory); everything else, unreadable parts included, is in the report.
pub fn status(data_dir: &Path, opts: &StatusOptions) -> Result<StatusReport, Error> {
    status_from(data_dir, opts, None)
}

/// As [`status()`], reading the host from `host`, a snapshot shared with the
/// diagnoses of other directories (`scan`). Only the first look uses it:
/// when a segment cannot be attributed, the looks again read the host
/// afresh, as [`status()`] does.
pub(crate) fn status_with_host(
    data_dir: &Path,
    opts: &StatusOptions,
    host: &mut Host,
) -> Result<StatusReport, Error> {
    status_from(data_dir, opts, Some(host))
}

fn status_from(
    data_dir: &Path,
    opts: &StatusOptions,
    mut shared: Option<&mut Host>,
) -> Result<StatusReport, Error> {
    // A segment that cannot be attributed makes the answer unknown; on a
    // busy host that is often a moment's state (a holder exiting or being
    // forked while its maps or memory are read), so look again twice
    // before saying so.
    let mut attempt = 0;
    loop {
        let (report, undecided) = match shared.take() {
            Some(host) => status_once(data_dir, opts, host)?,
            None => status_once(data_dir, opts, &mut Host::read(&opts.root))?,
        };
        attempt += 1;
        if !undecided || attempt == 3 {
            return Ok(report);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// One diagnosis, and whether a segment with holders could not be
/// attributed.
fn status_once(
    data_dir: &Path,
    opts: &StatusOptions,
    host: &mut Host,
) -> Result<(StatusReport, bool), Error> {
    let (mut cx, meta) = open(data_dir, opts, host)?;
    if let Some(err) = cx.host.shm_error.clone() {
        cx.find(
            Code::PermissionDenied,
            Severity::Problem,
            format!("the segment table could not be read ({err})"),
        );
    }

    // --- postmaster.pid, read as the server reads it --------------------
    let LockRead {
        stage,
        info: lock_info,
        reading,
        parts,
    } = read_lock(&mut cx);

    // --- interlock.fence: the last fence holder's record -------------------
    let fence_file = read_fence_file(&mut cx);

    // --- the file system: shared with other hosts? -----------------------
    let other_host_unknown = storage_check(&mut cx, &stage, &lock_info, fence_file.as_ref());

    // --- holders: who is attached to which segment ----------------------
    let line7_shmid = reading
        .as_ref()
        .and_then(|r| r.shmem)
        .map(|(_, id)| id as i32);
    attribute_segments(&mut cx, line7_shmid, parts);

    // --- version ----------------------------------------------------------
    let running_exe = running_exe(&cx, &lock_info);
    let version = version::detect(&cx.real, opts.postgres.as_deref(), running_exe, cx.owner);

    // --- the server's data directory checks (checkDataDir) ---------------
    let datadir_fatal = data_dir_checks(&mut cx, &version, &meta);

    // --- line 7: PGSharedMemoryIsInUse -----------------------------------
    let (line7_blocks, line7_unknown) = line7_check(&mut cx, &stage, reading.as_ref(), &version);

    // --- the port, listen addresses and socket directories of the start -
    let start = start_settings(&mut cx, &version, &lock_info);

    // --- creating postmaster.pid (CreateLockFile) --------------------------
    let user = startup::ServerUser::of(cx.owner.0, cx.owner.1, &cx.opts.root);
    let lock_create = match stage {
        LockStage::Absent => startup::data_dir_lock_file(&cx.shown, &user, false),
        LockStage::Dead => startup::data_dir_lock_file(&cx.shown, &user, true),
        _ => startup::Step::Fine,
    };

    // --- the key probe ----------------------------------------------------
    let ProbeStage {
        seed_key,
        seed_from,
        end: probe_end,
    } = probe_outcome(&mut cx, &version, &start, parts);

    // --- segments of this directory the server will not see --------------
    let play = in_play(&cx, line7_shmid, &probe_end);

    // --- Unix-socket lock files (before the segment in 10–12, after in 13+)
    // TCP first (StreamServerPort for each listen address), then each Unix
    // socket directory in order.
    let tcp_block = match cx.host.tcp(&start.listen, start.port) {
        startup::Step::Fine => None,
        startup::Step::Fails(msg, why) => {
            cx.find(
                Code::PortInUse,
                Severity::Problem,
                format!("{why}; the server would stop there when it opens its sockets"),
            );
            Some((Stage::Port, msg))
        }
        startup::Step::Unknown(why) => {
            cx.find(
                Code::PortInUse,
                Severity::Info,
                format!("whether the TCP port is free cannot be told: {why}"),
            );
            None
        }
    };
    let (socket_locks, unix_block) =
        socket_locks(&mut cx, &lock_info, reading.as_ref(), &start, &user);
    let socket_block = tcp_block.or(unix_block.map(|m| (Stage::SocketLockFile, m)));

    // --- verdict ------------------------------------------------------------
    let owner_alive = matches!(stage, LockStage::Live(Identity::Owner));
    // --- pg_control, as ReadControlFile reads it ---------------------------
    let control_stage = control_stage(&cx, &version);

    let line7_undecided = line7_unknown.is_some();
    let (verdict, stop) = decide_verdict(
        &mut cx,
        datadir_fatal,
        &stage,
        line7_blocks,
        line7_unknown,
        lock_create,
        (socket_block, version.major().is_some_and(|m| m <= 12)),
        &control_stage,
        &probe_end,
    );
    // On shared storage, a lock file whose PID does not run here may be
    // another host's live server's: the server here would remove it and
    // start, which is safe only if none runs there (`storage`).
    let (verdict, stop) = if other_host_unknown && verdict == Verdict::WillStart {
        (Verdict::Unknown, None)
    } else {
        (verdict, stop)
    };
    let (stops_at, would_say) = stop.unzip();
    let (verdict, undecided) =
        unattributed_segments(&mut cx, verdict, line7_shmid.filter(|_| line7_undecided));

    // --- holders, and what they mean ---------------------------------------
    let holders = collect_holders(&mut cx, &play.ours_attached, &lock_info);
    // A creator still attached to its own segment is alive: it holds the
    // directory, with or without a lock file (a segment's attachments are
    // inherited by fork only, so a later process at a reused PID cannot be
    // attached to the segment of the creator it replaced).
    let creator = holders.iter().find(|h| {
        play.ours_attached
            .iter()
            .any(|e| e.shmid == h.shmid && e.cpid == h.process.pid)
    });
    let maintenance = if owner_alive || creator.is_some() {
        false
    } else {
        maintenance_hold(&mut cx, &holders)
    };
    let held = owner_alive || creator.is_some() || maintenance;
    owner_or_orphans(
        &mut cx,
        &holders,
        &lock_info,
        (owner_alive, creator, maintenance),
        verdict,
    );
    unseen_segments(&mut cx, &play, held, verdict, stops_at, seed_key);
    let safe_to_start = verdict == Verdict::WillStart && play.ours_attached.is_empty();

    // --- leaked segments ----------------------------------------------------
    let recycled = match &probe_end {
        ProbeEnd::Creates { recycles, .. } => *recycles,
        _ => None,
    };
    leaked_segments(&mut cx, line7_shmid, held, recycled, parts);

    // --- DSM ------------------------------------------------------------------
    let dsm = dsm_report(&mut cx, &holders, recycled.is_some());

    // --- segments to show -------------------------------------------------------
    let segments = segments_to_show(&mut cx, &play, seed_key, &probe_end, recycled, parts);
    let probe_info = describe_probe(
        version.keys,
        version.algorithm,
        seed_from,
        seed_key,
        &probe_end,
    );

    let running_pid = owner_alive.then_some(lock_info.pid).flatten().map(i32::abs);
    // --- who manages it -------------------------------------------------------
    let live_holder = |h: &&Holder| !h.process.state.is_gone();
    let leftovers: Vec<i32> = holders
        .iter()
        .filter(live_holder)
        .map(|h| h.process.pid)
        .collect();
    let live = running_pid.or_else(|| creator.map(|h| h.process.pid));
    let managed_by = crate::supervisor::managed_by(
        cx.host,
        live,
        &leftovers,
        &[cx.shown.as_path(), cx.real.as_path()],
    );
    let mut report = StatusReport {
        data_dir: cx.shown.display().to_string(),
        verdict,
        postgres_would_say: would_say,
        stops_at,
        safe_to_start,
        version,
        lock_file: lock_info,
        socket_locks,
        segments,
        probe: probe_info,
        holders,
        dsm,
        control: control_line(&cx.shown, running_pid),
        managed_by,
        findings: Vec::new(),
        remedy: Vec::new(),
        fence_file,
        fence: None,
    };
    report.remedy = remedy(&report, &cx, &stage, recycled.is_some());
    report.findings = std::mem::take(&mut cx.findings);
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok((report, undecided))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
