//! `status`: one data directory, replayed through the server's startup
//! checks (see the module doc of [`super`]).

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

/// `global/pg_control` in one line; `running`: the live owner's PID.
fn control_line(data_dir: &Path, running: Option<i32>) -> ControlLine {
    match super::control::control(data_dir) {
        Ok(c) => ControlLine {
            line: c.one_line(running),
            state: Some(c.state),
            crc_ok: Some(c.crc_ok),
            crash_recovery_on_start: if running.is_some() {
                None
            } else {
                c.crash_recovery_on_start
            },
        },
        Err(e) => ControlLine {
            line: e.to_string(),
            state: None,
            crc_ok: None,
            crash_recovery_on_start: None,
        },
    }
}

/// How far the probe is followed; PostgreSQL has no bound, but a host with
/// a thousand foreign segments in a row is broken.
const MAX_PROBE: usize = 1000;

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
    /// `unsure`: an unattached segment at `key` whose owner is unknown (the
    /// server removes it if it is this directory's, else moves past it).
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

    /// Whether a server running as the directory's owner may `IPC_STAT`
    /// the segment (`ipcperms` with read access).
    fn server_can_read(&self, e: &ShmEntry) -> bool {
        let (uid, gid) = self.owner;
        let mode = e.permissions();
        let granted = if e.uid == uid || e.cuid == uid {
            mode >> 6
        } else if e.gid == gid || e.cgid == gid {
            mode >> 3
        } else {
            mode
        };
        granted & 0o4 != 0
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
        if !self.server_can_read(e) {
            return Belongs::Foreign(format!(
                "owned by {} with mode {:03o}: a server running as {} cannot read it",
                self.host.user_name(e.uid),
                e.permissions(),
                self.host.user_name(self.owner.0)
            ));
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
                SegmentState::Attached { .. } | SegmentState::Unattached { .. } => {
                    return Belongs::This(
                        "its header names this directory (read by attaching, --attach)".into(),
                    )
                }
                SegmentState::Foreign => {
                    return Belongs::Foreign(
                        "its header names another directory (read by attaching, --attach)".into(),
                    )
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
            if self.host.procfs.cwd_id(h.pid).ok() == Some(self.dir_id) {
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

/// The parts of a lock file identity checks use.
#[derive(Debug, Clone, Copy)]
struct PidFileParts {
    pid: i32,
    start_time: Option<i64>,
}

/// Why a lock file was not read: (unreadable rather than unusable, why).
type LockReadError = (bool, String);

/// A lock file's first bytes (as much as PostgreSQL reads) and its real
/// size, read by `pg::read_lock_file` as the lock reads them.
/// `Err((true, _))`: unreadable; `Err((false, _))`: not what PostgreSQL
/// writes (a FIFO, a link, a device), refused without blocking.
fn read_lock_file(path: &Path) -> Result<Option<(Vec<u8>, u64)>, LockReadError> {
    use interlock::safe_fs::ReadError;
    match pg::read_lock_file(path) {
        Ok(r) => Ok(r.map(|r| (r.bytes, r.size))),
        // Links are refused whoever owns the directory: PostgreSQL writes a
        // regular file there.
        Err(ReadError::NotRegular {
            kind: "a symbolic link",
            ..
        }) => Err((
            false,
            "is a symbolic link; PostgreSQL writes a regular file there".into(),
        )),
        Err(ReadError::NotRegular { kind, .. }) => {
            Err((false, format!("is not a regular file: it is {kind}")))
        }
        Err(e @ ReadError::PermissionDenied { .. }) => Err((true, format!("cannot open it: {e}"))),
        Err(e) => Err((true, format!("cannot read it: {e}"))),
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

/// As [`status`], reading the host from `host`, a snapshot shared with the
/// diagnoses of other directories (`scan`). Only the first look uses it:
/// when a segment cannot be attributed, the looks again read the host
/// afresh, as [`status`] does.
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
    let (line7_blocks, line7_unknown) = line7_check(&mut cx, &stage, reading.as_ref());

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
    let probe_info = describe_probe(version.keys, seed_from, seed_key, &probe_end);

    let running_pid = owner_alive.then_some(lock_info.pid).flatten().map(i32::abs);
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
        findings: Vec::new(),
        remedy: Vec::new(),
    };
    report.remedy = remedy(&report, &cx, &stage, recycled.is_some());
    report.findings = std::mem::take(&mut cx.findings);
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok((report, undecided))
}

/// The directory to diagnose, and its metadata; errors as [`status`] does.
fn open<'a>(
    data_dir: &Path,
    opts: &'a StatusOptions,
    host: &'a mut Host,
) -> Result<(Ctx<'a>, fs::Metadata), Error> {
    let shown = std::path::absolute(data_dir)
        .map_err(|e| Error::sys(format!("absolute(\"{}\")", data_dir.display()), e))?;
    let meta = match fs::metadata(&shown) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::DataDirMissing { path: shown })
        }
        Err(e) => return Err(Error::sys(format!("stat(\"{}\")", shown.display()), e)),
    };
    if !meta.is_dir() {
        return Err(Error::DataDirUnusable {
            path: shown,
            reason: "is not a directory".into(),
            hint: "give the data directory, the one that holds PG_VERSION".into(),
        });
    }
    let real = fs::canonicalize(&shown).unwrap_or_else(|_| shown.clone());
    let cx = Ctx {
        opts,
        dir_id: (meta.dev(), meta.ino()),
        owner: server_user(&shown, &meta),
        dir_owner: meta.uid(),
        shown,
        real,
        host,
        findings: Vec::new(),
        belongs: BTreeMap::new(),
        dsm_control: BTreeMap::new(),
        attached: Vec::new(),
        workers: Vec::new(),
    };
    Ok((cx, meta))
}

/// The user (and group) the directory's server runs as. initdb creates
/// `global/pg_control` and `PG_VERSION` as the server's user, and nothing but
/// a `chown` changes that; so when the directory itself is owned by someone
/// else (a `chown root` of the top directory, a copy made by another user)
/// their owner, not the directory's, is the server's user, and the directory
/// has the wrong ownership (`checkDataDir` in
/// `src/backend/utils/init/miscinit.c`, `src/backend/postmaster/postmaster.c`
/// in 10). Read without following links; the directory's owner when neither
/// can be read.
fn server_user(dir: &Path, meta: &fs::Metadata) -> (u32, u32) {
    for inside in ["global/pg_control", "PG_VERSION"] {
        if let Ok(m) = fs::symlink_metadata(dir.join(inside)) {
            if m.is_file() {
                return (m.uid(), m.gid());
            }
        }
    }
    (meta.uid(), meta.gid())
}

/// What the lock file stage reads and decides.
struct LockRead {
    stage: LockStage,
    info: LockFileInfo,
    reading: Option<ServerReading>,
    parts: Option<PidFileParts>,
}

/// Read `postmaster.pid` as the server does, and judge the PID it names.
fn read_lock(cx: &mut Ctx<'_>) -> LockRead {
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    let mut lock_info = LockFileInfo {
        path: lock_path.display().to_string(),
        state: LockState::Absent,
        pid: None,
        data_dir: None,
        start_time: None,
        port: None,
        status: None,
        shmem_key: None,
        shmem_id: None,
        identity: None,
        evidence: None,
        serves_elsewhere: false,
        process: None,
        problem: None,
    };
    let mut reading: Option<ServerReading> = None;
    let mut parts: Option<PidFileParts> = None;
    let stage = match read_lock_file(&lock_path) {
        Ok(None) => LockStage::Absent,
        Err((true, why)) => {
            lock_info.state = LockState::Unreadable;
            lock_info.problem = Some(why.clone());
            LockStage::Unreadable(why)
        }
        Err((false, why)) => {
            lock_info.state = LockState::Unusable;
            lock_info.problem = Some(why.clone());
            LockStage::Unusable(why)
        }
        Ok(Some((bytes, _))) if bytes.is_empty() => {
            lock_info.state = LockState::Empty;
            LockStage::Empty
        }
        Ok(Some((bytes, size))) => {
            // The server reads only the start (ServerReading); the strict
            // parse refuses more than MAX_PIDFILE_SIZE bytes, and the size
            // said is the file's own (fstat), not the bytes read.
            let r = ServerReading::of(&bytes);
            let strict = PidFile::parse(&bytes);
            if size > MAX_PIDFILE_SIZE as u64 {
                let why = format!(
                    "is {size} bytes ({}), larger than the {MAX_PIDFILE_SIZE} bytes any PostgreSQL writes; only its start was read, as the server reads it",
                    human_bytes(size)
                );
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Warning,
                    format!("{} {why}", lock_path.display()),
                );
                lock_info.problem = Some(format!("the file {why}"));
            } else if let Err(e) = &strict {
                lock_info.problem = Some(e.to_string());
            }
            let strict = strict.ok();
            lock_info.pid = Some(r.pid);
            lock_info.start_time = strict.as_ref().map(|p| p.start_time);
            lock_info.data_dir = strict
                .as_ref()
                .map(|p| p.data_dir.to_string_lossy().into_owned());
            lock_info.port = strict.as_ref().map(|p| p.port);
            lock_info.status = strict
                .as_ref()
                .and_then(|p| p.status)
                .map(|s| s.name().to_string());
            lock_info.shmem_key = r.shmem.map(|s| s.0);
            lock_info.shmem_id = r.shmem.map(|s| s.1);
            let stage = if r.is_bogus() {
                lock_info.state = LockState::Bogus;
                LockStage::Bogus(String::from_utf8_lossy(&r.buffer).into_owned())
            } else {
                lock_info.state = LockState::Present;
                let pid = r.other_pid();
                parts = Some(PidFileParts {
                    pid,
                    start_time: strict.as_ref().map(|p| p.start_time),
                });
                judge_lock_owner(cx, &mut lock_info, pid, &r, parts)
            };
            reading = Some(r);
            stage
        }
    };

    if matches!(stage, LockStage::Empty | LockStage::Bogus(_)) {
        let pids = cx.host.working_in(cx.dir_id);
        cx.workers = pids
            .into_iter()
            .filter_map(|p| summary(cx.host, p))
            .collect();
        if !cx.workers.is_empty() {
            let list = cx
                .workers
                .iter()
                .map(|w| format!("{} ({})", w.pid, w.cmdline))
                .collect::<Vec<_>>()
                .join(", ");
            cx.find(
                Code::PostmasterRunning,
                Severity::Warning,
                format!("processes work in this directory, so a server may be starting: {list}"),
            );
        }
    }
    LockRead {
        stage,
        info: lock_info,
        reading,
        parts,
    }
}

/// What the next start uses: the port, the listen addresses and the
/// socket directories, from the command line the start repeats.
struct StartSettings {
    /// One port for the keys (10–12), the TCP sockets and the socket lock files.
    port: u16,
    /// Which source decided it.
    port_from: String,
    /// `listen_addresses` (default `localhost`).
    listen: String,
    /// `unix_socket_directories`, when the last start or the
    /// configuration sets it (else the build's default, unknown here).
    socket_dirs: Option<String>,
}

/// The settings of the next start. The port, in order: `--port`; the last
/// start's command line (`postmaster.opts`, which `pg_ctl restart`
/// repeats) or line 4 of `postmaster.pid`; the configuration; for 10–12
/// the key of a segment of this directory (`port * 1000 + n`, see
/// `PGSharedMemoryCreate` in src/backend/port/sysv_shmem.c); else 5432.
fn start_settings(
    cx: &mut Ctx<'_>,
    version: &VersionInfo,
    lock_info: &LockFileInfo,
) -> StartSettings {
    let settings = crate::config::read_settings(&cx.real);
    for r in &settings.refused {
        cx.find(
            Code::UnsafeFile,
            Severity::Warning,
            format!("{r}; its settings are not known"),
        );
    }
    // The last start's command line (`pg_ctl restart` repeats it).
    let last = match interlock::safe_fs::read_to_string(
        Some(&cx.real),
        Path::new("postmaster.opts"),
        interlock::safe_fs::OPTS_MAX,
    ) {
        Ok(t) => postmaster_opts_settings(&t),
        Err(e) => {
            if !e.is_not_found() {
                cx.find(
                    if e.is_hostile() {
                        Code::UnsafeFile
                    } else {
                        Code::PermissionDenied
                    },
                    Severity::Warning,
                    format!("{e}; the last start's options are not known"),
                );
            }
            Vec::new()
        }
    };
    let last_get = |name: &str| {
        last.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let segment_port = || {
        if version.keys != Some(KeySeed::Port) {
            return None;
        }
        let mut ours: Vec<&ShmEntry> = cx
            .host
            .shm
            .iter()
            .filter(|e| cx.belongs.get(&e.shmid).is_some_and(Belongs::is_this))
            .filter(|e| e.key > 1000 && e.key % 1000 != 0)
            .collect();
        ours.sort_by_key(|e| std::cmp::Reverse(e.nattch));
        ours.first().and_then(|e| {
            let port = u16::try_from(e.key / 1000).ok()?;
            Some((
                port,
                format!(
                    "the key {} of segment ID {} of this directory",
                    e.key, e.shmid
                ),
            ))
        })
    };
    // A copied directory carries another directory's last start: its
    // postmaster.opts (-D) and lock file (line 2) name that directory, and
    // its port is not this one's.
    let dir_id = cx.dir_id;
    let names_this_dir = |d: &str| {
        let p = Path::new(d);
        !p.is_absolute() || fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == dir_id)
    };
    let last_is_ours = last_get("data_directory").is_none_or(|d| names_this_dir(&d));
    let lock_is_ours = lock_info.data_dir.as_deref().is_none_or(names_this_dir);
    let (port, port_from) = if let Some(p) = cx.opts.port {
        (p, "--port".to_string())
    } else if let Some(p) = last_get("port")
        .filter(|_| last_is_ours)
        .and_then(|p| p.trim().parse().ok())
    {
        (
            p,
            "the last start's command line, postmaster.opts".to_string(),
        )
    } else if let Some(p) = lock_info.port.filter(|_| lock_is_ours) {
        (p, "line 4 of postmaster.pid (the last start)".to_string())
    } else if let Some(p) = settings.port() {
        // The configuration (the `port` setting, `PostPortNumber` in
        // src/backend/postmaster/postmaster.c), when the last start's
        // command line and lock file do not say, or are another
        // directory's (a copied cluster's).
        let file = settings
            .values
            .get("port")
            .map(|s| s.file.display().to_string())
            .unwrap_or_default();
        (p, file)
    } else if let Some(found) = segment_port() {
        found
    } else {
        (5432, "the default".to_string())
    };
    let last_get = |name: &str| last_get(name).filter(|_| last_is_ours);
    let listen = last_get("listen_addresses")
        .or_else(|| settings.get("listen_addresses").map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    let socket_dirs = last_get("unix_socket_directories")
        .or_else(|| settings.get("unix_socket_directories").map(str::to_string));
    StartSettings {
        port,
        port_from,
        listen,
        socket_dirs,
    }
}

/// The Unix-socket lock files the server will meet, in the
/// `unix_socket_directories` of the next start (see [`start_settings`]),
/// else in the directory line 5 of `postmaster.pid` names and, in the
/// usual default directories, only files whose line 2 names this data
/// directory; with the first socket stage FATAL, in the server's order.
fn socket_locks(
    cx: &mut Ctx<'_>,
    lock_info: &LockFileInfo,
    reading: Option<&ServerReading>,
    start: &StartSettings,
    user: &startup::ServerUser,
) -> (Vec<SocketLockInfo>, Option<String>) {
    let port = start.port;
    let mut first_fail: Option<String> = None;
    // (directory, whether the server surely uses it)
    let mut dirs: Vec<(String, bool)> = Vec::new();
    if let Some(v) = start.socket_dirs.clone() {
        for d in v.split(',') {
            let d = d.trim().trim_matches('"').trim();
            if !d.is_empty() && !d.starts_with('@') {
                dirs.push((d.to_string(), true));
            }
        }
    } else {
        let line5 = reading
            .and_then(|r| PidFile::parse(&r.buffer).ok())
            .and_then(|p| p.socket_dir)
            .map(|d| d.display().to_string())
            .filter(|d| !d.starts_with('@'));
        if let Some(d) = line5 {
            dirs.push((d, true));
        }
        for d in ["/var/run/postgresql", "/run/postgresql", "/tmp"] {
            dirs.push((d.to_string(), false));
        }
    }
    let mut out: Vec<SocketLockInfo> = Vec::new();
    for (dir, sure) in dirs {
        let path = pg::socket_lock_file(&dir, port);
        if out.iter().any(|s| s.path == path) {
            continue;
        }
        let bytes = match read_lock_file(Path::new(&path)) {
            Ok(Some((bytes, _))) => bytes,
            Ok(None) if sure => {
                match startup::socket_dir(&dir, port, user) {
                    startup::Step::Fine => {}
                    startup::Step::Fails(msg, why) => {
                        cx.find(
                            Code::SocketDirectoryUnusable,
                            Severity::Problem,
                            format!("{why}; the server would stop there when it creates its socket lock file {path}"),
                        );
                        first_fail.get_or_insert(msg);
                    }
                    startup::Step::Unknown(why) => cx.find(
                        Code::SocketDirectoryUnusable,
                        Severity::Warning,
                        format!("whether the server can create {path} cannot be told: {why}"),
                    ),
                }
                continue;
            }
            _ => continue,
        };
        let mut info = SocketLockInfo {
            path: path.clone(),
            state: LockState::Present,
            pid: None,
            data_dir: None,
            this_directory: false,
            identity: None,
            process: None,
            blocks: false,
            would_say: None,
        };
        if bytes.is_empty() {
            info.state = LockState::Empty;
            info.blocks = sure;
            info.would_say = Some(format!("lock file \"{path}\" is empty"));
        } else {
            let r = ServerReading::of(&bytes);
            if r.is_bogus() {
                info.state = LockState::Bogus;
                info.blocks = sure;
                info.would_say = Some(format!(
                    "bogus data in lock file \"{path}\": \"{}\"",
                    String::from_utf8_lossy(&r.buffer)
                ));
            } else {
                let dd = r.buffer.split(|&b| b == b'\n').nth(1).unwrap_or(&[]);
                let dd = Path::new(std::ffi::OsStr::from_bytes(dd));
                info.data_dir = Some(dd.display().to_string());
                info.this_directory = dd == cx.real || dd == cx.shown;
                let pid = r.other_pid();
                info.pid = Some(pid);
                info.process = summary(cx.host, pid);
                let identity = socket_lock_identity(cx, pid, &info, &r);
                info.identity = Some(identity);
                info.blocks = matches!(
                    identity,
                    Identity::Owner | Identity::Zombie | Identity::Reused
                );
                if info.blocks {
                    info.would_say = Some(format!("lock file \"{path}\" already exists"));
                }
            }
        }
        if !sure && !info.this_directory {
            continue;
        }
        // The running server's own file: the lock file stage stops a
        // second start first, so it is shown as the server's, not a danger.
        let own = info.identity == Some(Identity::Owner)
            && lock_info.identity == Some(Identity::Owner)
            && info.pid.is_some()
            && info.pid.map(i32::abs) == lock_info.pid.map(i32::abs);
        if own {
            info.blocks = false;
            info.would_say = None;
            cx.find(
                Code::SocketLockFile,
                Severity::Info,
                format!(
                    "the socket lock file {path} is the running server's own (PID {})",
                    info.pid.unwrap_or(0)
                ),
            );
        } else if info.blocks {
            let what = match (info.state, info.identity) {
                (LockState::Empty, _) => "is empty".to_string(),
                (LockState::Bogus, _) => "does not start with a PID".to_string(),
                (_, Some(Identity::Zombie)) => format!(
                    "names PID {}, a zombie that PostgreSQL's kill(pid, 0) still finds",
                    info.pid.unwrap_or(0)
                ),
                (_, Some(Identity::Owner)) => format!(
                    "names PID {}, this directory's live server",
                    info.pid.unwrap_or(0)
                ),
                _ => format!(
                    "names PID {}, which is now {}",
                    info.pid.unwrap_or(0),
                    info.process
                        .as_ref()
                        .map(|p| p.cmdline.clone())
                        .unwrap_or_default()
                ),
            };
            cx.find(
                Code::SocketLockFile,
                Severity::Problem,
                format!(
                    "the socket lock file {path} {what}; the server would stop there when it creates its socket"
                ),
            );
            if let Some(m) = &info.would_say {
                first_fail.get_or_insert(m.clone());
            }
        }
        out.push(info);
    }
    (out, first_fail)
}

/// The PID of a socket lock file, judged as the server's `kill(pid, 0)`
/// would (as the directory's owner) and against this directory.
fn socket_lock_identity(
    cx: &Ctx<'_>,
    pid: i32,
    info: &SocketLockInfo,
    r: &ServerReading,
) -> Identity {
    let owner_uid = cx.owner.0;
    let Some(f) = cx.host.info(pid) else {
        if !cx.host.procfs.is_host() {
            // A fixture tree: its /proc alone says whether the PID runs.
            return Identity::Gone;
        }
        return match rustix::process::Pid::from_raw(pid).map(rustix::process::test_kill_process) {
            Some(Ok(())) | Some(Err(rustix::io::Errno::PERM)) => Identity::OtherUser,
            _ => Identity::Gone,
        };
    };
    if f.uid != owner_uid && f.suid != owner_uid {
        return Identity::OtherUser;
    }
    if f.state == ProcState::Zombie {
        return Identity::Zombie;
    }
    let _ = r;
    if info.this_directory
        && cx
            .host
            .procfs
            .judge_pid(pid, None, &cx.real, owner_uid, std::process::id() as i32)
            .is_alive()
    {
        Identity::Owner
    } else {
        Identity::Reused
    }
}

/// Decide whose each segment that matters is (pass A through the likely
/// holders, pass B through all of them).
fn attribute_segments(cx: &mut Ctx<'_>, line7_shmid: Option<i32>, parts: Option<PidFileParts>) {
    // Segments whose owner matters: every one with holders that a server
    // running as the directory's owner could read, plus line 7's.
    let mut targets: Vec<ShmEntry> = cx
        .host
        .shm
        .iter()
        .filter(|e| {
            (e.nattch > 0 && e.size >= HEADER_SIZE as u64 && {
                let (uid, _) = cx.owner;
                e.uid == uid || e.cuid == uid || cx.server_can_read(e)
            }) || Some(e.shmid) == line7_shmid
        })
        .cloned()
        .collect();
    targets.sort_by_key(|e| e.shmid);
    // Pass A: the likely holders only (creator, last attacher, the lock
    // file's PID) decide most segments through their header.
    let mut undecided: Vec<ShmEntry> = Vec::new();
    for e in &targets {
        if !cx.server_can_read(e) || e.size < HEADER_SIZE as u64 {
            let b = cx.decide(e, parts.as_ref());
            cx.belongs.insert(e.shmid, b);
            continue;
        }
        let mut decided = None;
        for pid in [e.cpid, e.lpid, parts.map(|p| p.pid).unwrap_or(0)] {
            if pid <= 0 {
                continue;
            }
            if let Some(a) = attachment(cx.host, pid, e.shmid) {
                if let Some(hdr) = cx.host.header_via(&a) {
                    decided = Some(cx.by_header(&hdr, e.shmid, pid));
                    break;
                }
            }
        }
        match decided {
            Some(foreign @ Belongs::Foreign(_)) => {
                cx.belongs.insert(e.shmid, foreign);
            }
            _ => undecided.push(e.clone()),
        }
    }
    // Pass B: every holder of the segments that are (or may be) ours.
    let hints: Vec<i32> = parts
        .map(|p| p.pid)
        .into_iter()
        .chain(undecided.iter().flat_map(|e| [e.cpid, e.lpid]))
        .collect();
    let mut uids = vec![cx.owner.0];
    for e in &undecided {
        for u in [e.uid, e.cuid] {
            if !uids.contains(&u) {
                uids.push(u);
            }
        }
    }
    let wanted: Vec<(i32, u64)> = undecided
        .iter()
        .filter(|e| e.nattch > 0)
        .map(|e| (e.shmid, e.nattch))
        .collect();
    let search = cx.host.find_holders(&wanted, &hints, cx.dir_id, &uids);
    cx.attached = search.found.clone();
    for e in &undecided {
        let b = cx.decide(e, parts.as_ref());
        cx.belongs.insert(e.shmid, b);
    }
    for pid in &search.other_namespace {
        cx.find(
            Code::OtherNamespace,
            Severity::Info,
            format!(
                "PID {pid} maps a System V segment with one of these IDs, but in another IPC namespace (a container): that is a different segment, and it is not counted"
            ),
        );
    }
}

/// The server's data directory checks (`checkDataDir`): its FATAL, if any.
fn data_dir_checks(cx: &mut Ctx<'_>, version: &VersionInfo, meta: &fs::Metadata) -> Option<String> {
    let major = version.major();
    let mut datadir_fatal: Option<String> = None;
    let shown_s = cx.shown.display().to_string();
    let mode = meta.mode() & 0o7777;
    let (server_uid, server_gid) = cx.owner;
    if let Err(problem) = pg::check_data_dir_owner(meta.uid(), server_uid) {
        // PostmasterMain reads the configuration (SelectConfigFiles in
        // src/backend/utils/misc/guc.c) before checkDataDir: a server that
        // may not search the directory stops there, on a line of its own.
        let search = if meta.gid() == server_gid {
            0o010
        } else {
            0o001
        };
        let conf = cx.shown.join("postgresql.conf");
        datadir_fatal = Some(if mode & search == 0 && conf.exists() {
            format!(
                "could not access the server configuration file \"{}\": Permission denied",
                conf.display()
            )
        } else {
            problem.fatal(&cx.shown)
        });
        cx.find(
            Code::DataDirInvalid,
            Severity::Problem,
            format!(
                "the directory is owned by {}, but its server runs as {} (the owner of global/pg_control, which initdb created): PostgreSQL stops unless the server's user owns the directory",
                cx.host.user_name(meta.uid()),
                cx.host.user_name(server_uid)
            ),
        );
    }
    // checkDataDir: 0700 only in 10, 0700 or 0750 from 11 on (group access).
    match pg::check_data_dir_mode(major, mode) {
        Err(problem) if datadir_fatal.is_none() => {
            datadir_fatal = Some(problem.fatal(&cx.shown));
            cx.find(
                Code::DataDirInvalid,
                Severity::Problem,
                format!(
                    "the directory's mode is {mode:04o}; PostgreSQL {} requires {}",
                    major.map(|m| m.to_string()).unwrap_or_default(),
                    problem.accepted_modes().unwrap_or_default()
                ),
            );
        }
        _ => {}
    }
    if datadir_fatal.is_none() && version.data_dir_major.is_none() {
        let pgv = cx.shown.join("PG_VERSION");
        match fs::metadata(&pgv) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                datadir_fatal = Some(format!("\"{shown_s}\" is not a valid data directory"));
                cx.find(
                    Code::DataDirInvalid,
                    Severity::Problem,
                    format!(
                        "{} is missing: this is not a PostgreSQL data directory",
                        pgv.display()
                    ),
                );
            }
            _ => match interlock::safe_fs::pg_version(&cx.shown) {
                Err(e) if e.is_hostile() => cx.find(
                    Code::UnsafeFile,
                    Severity::Problem,
                    format!("{e}: the server's version is not known"),
                ),
                _ => cx.find(
                    Code::PermissionDenied,
                    Severity::Problem,
                    format!("{} could not be read", pgv.display()),
                ),
            },
        }
    }
    if let (Some(m), Some(server)) = (major, version.server.as_deref()) {
        let server_major = pg::major_of(server);
        if datadir_fatal.is_none() && server_major.is_some_and(|s| s != m) {
            datadir_fatal = Some("database files are incompatible with server".into());
            cx.find(
                Code::DataDirInvalid,
                Severity::Problem,
                format!(
                    "the directory was initialised by PostgreSQL {m}, and the server binary {} is {server}",
                    version.server_binary.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    if datadir_fatal.is_none()
        && major.is_some_and(|m| m >= 11)
        && !cx.shown.join("global/pg_control").exists()
    {
        datadir_fatal = Some("could not find the database system".into());
        cx.find(
            Code::DataDirInvalid,
            Severity::Problem,
            format!(
                "{} is missing",
                cx.shown.join("global/pg_control").display()
            ),
        );
    }
    datadir_fatal
}

/// Line 7 as `PGSharedMemoryIsInUse` sees it: (what blocks, what cannot be told).
fn line7_check(
    cx: &mut Ctx<'_>,
    stage: &LockStage,
    reading: Option<&ServerReading>,
) -> (Option<String>, Option<String>) {
    let mut line7_blocks: Option<String> = None;
    let mut line7_unknown: Option<String> = None;
    if let (LockStage::Dead, Some((id1, id2))) = (stage, reading.and_then(|r| r.shmem)) {
        let shmid = id2 as i32;
        let (whose, nattch, belongs) = match cx.host.by_shmid(shmid).cloned() {
            None => (pg::Whose::Vanished, 0, None),
            Some(e) => match cx.belongs.get(&shmid).cloned() {
                Some(b) => (whose(&b), e.nattch, Some(b)),
                None => return (None, None),
            },
        };
        match (pg::line7_verdict(whose, nattch), belongs) {
            (pg::Line7Verdict::InUse, _) => {
                line7_blocks = Some(format!(
                    "pre-existing shared memory block (key {id1}, ID {id2}) is still in use"
                ));
            }
            (pg::Line7Verdict::Ignored, Some(Belongs::Foreign(why))) => cx.find(
                Code::SegmentForeign,
                Severity::Info,
                format!(
                    "line 7 names segment ID {shmid}, which now belongs to something else ({why}); PostgreSQL ignores it"
                ),
            ),
            (pg::Line7Verdict::Unknown, b) => {
                let why = b.as_ref().map(Belongs::evidence).unwrap_or_default();
                line7_unknown = Some(format!(
                    "segment ID {shmid} (line 7) has {nattch} attached, and whose it is cannot be told: {why}"
                ));
            }
            _ => {}
        }
    }
    (line7_blocks, line7_unknown)
}

/// Where the key probe starts, from what, and how it ends.
struct ProbeStage {
    seed_key: Option<ShmKey>,
    seed_from: String,
    end: ProbeEnd,
}

/// Follow the key probe from the first key, for each algorithm that may apply.
fn probe_outcome(
    cx: &mut Ctx<'_>,
    version: &VersionInfo,
    start: &StartSettings,
    parts: Option<PidFileParts>,
) -> ProbeStage {
    let major = version.major();
    let (seed_key, seed_from) = first_key(cx, version, start);
    let ends: Vec<(Algorithm, ProbeEnd)> = match (seed_key, version.algorithm) {
        (None, _) => Vec::new(),
        (Some(k), Some(a)) => vec![(a, probe(cx, k, a.into(), parts.as_ref()))],
        (Some(k), None) => vec![
            (
                Algorithm::New,
                probe(cx, k, pg::Algorithm::New, parts.as_ref()),
            ),
            (
                Algorithm::Old,
                probe(cx, k, pg::Algorithm::Old, parts.as_ref()),
            ),
        ],
    };
    let probe_end: ProbeEnd = match ends.as_slice() {
        [] => ProbeEnd::Unknown(
            "the major version is unknown, so the first key is too (PG_VERSION unreadable or before 10)".into(),
        ),
        [(_, one)] => one.clone(),
        [(_, a), (_, b)] if std::mem::discriminant(a) == std::mem::discriminant(b) => a.clone(),
        _ => {
            cx.find(
                Code::VersionUnknown,
                Severity::Problem,
                format!(
                    "PostgreSQL {} before {} would start here and later minors would refuse; give the server binary with --postgres",
                    major.unwrap_or(0),
                    if major == Some(10) { "10.8" } else { "11.3" }
                ),
            );
            ProbeEnd::Unknown("the minor version decides, and it is unknown".into())
        }
    };
    if let Some(k) = seed_key {
        if let Some(e) = cx.host.by_key(k.0).cloned() {
            if let Some(Belongs::Foreign(why)) = cx.belongs.get(&e.shmid).cloned().or_else(|| {
                (!cx.server_can_read(&e) || e.size < HEADER_SIZE as u64)
                    .then(|| cx.decide(&e, parts.as_ref()))
            }) {
                cx.find(
                    Code::KeyCollision,
                    Severity::Info,
                    format!(
                        "the first key PostgreSQL probes, {} ({}), is taken by segment ID {} ({why}); it moves on to the next free key",
                        k, key_hex(k.0), e.shmid
                    ),
                );
            }
        }
    }
    ProbeStage {
        seed_key,
        seed_from,
        end: probe_end,
    }
}

/// The segments the later stages turn on, by ID.
struct InPlay {
    line7_shmid: Option<i32>,
    blocked_shmid: Option<i32>,
    ours_attached: Vec<ShmEntry>,
}

/// The segments of this directory the server will not see, and those it stops at.
fn in_play(cx: &Ctx<'_>, line7_shmid: Option<i32>, probe_end: &ProbeEnd) -> InPlay {
    let blocked_shmid = match &probe_end {
        ProbeEnd::Blocked { shmid, .. } => Some(*shmid),
        _ => None,
    };
    let ours_attached: Vec<ShmEntry> = cx
        .host
        .shm
        .iter()
        .filter(|e| e.nattch > 0 && cx.belongs.get(&e.shmid).is_some_and(Belongs::is_this))
        .cloned()
        .collect();
    InPlay {
        line7_shmid,
        blocked_shmid,
        ours_attached,
    }
}

/// What the server makes of `global/pg_control` when it reads it
/// (`ReadControlFile`: in 11+ by the postmaster right after the lock file,
/// `LocalProcessControlFile`; in 10 while creating shared memory,
/// `XLOGShmemInit`, so after the key probe).
#[derive(Debug)]
enum ControlStage {
    /// Accepted, or missing (`checkDataDir`'s stage reports that), or a
    /// version this model does not know.
    Accepted,
    Refused {
        refusal: ControlRefusal,
        first: bool,
    },
    Unreadable {
        why: String,
        first: bool,
    },
}

fn control_stage(cx: &Ctx<'_>, version: &VersionInfo) -> ControlStage {
    let Some(major) = version.major() else {
        return ControlStage::Accepted;
    };
    let first = major >= 11;
    match super::control::read_control_file(&cx.real) {
        Err(e) if e.is_not_found() => ControlStage::Accepted,
        Err(e) => ControlStage::Unreadable {
            why: e.to_string(),
            first,
        },
        Ok(bytes) => match startup_refusal(&bytes, major) {
            None => ControlStage::Accepted,
            Some(refusal) => ControlStage::Refused { refusal, first },
        },
    }
}

/// What the server would do, and the message it would stop with.
#[allow(clippy::too_many_arguments)]
fn decide_verdict(
    cx: &mut Ctx<'_>,
    datadir_fatal: Option<String>,
    stage: &LockStage,
    line7_blocks: Option<String>,
    line7_unknown: Option<String>,
    lock_create: startup::Step,
    (socket_block, sockets_first): (Option<(Stage, String)>, bool),
    control: &ControlStage,
    probe_end: &ProbeEnd,
) -> (Verdict, Option<(Stage, String)>) {
    let control_path = cx.shown.join("global/pg_control");
    let control_refuses = |cx: &mut Ctx<'_>, r: &ControlRefusal| {
        cx.find(
            Code::ControlFileInvalid,
            Severity::Problem,
            format!(
                "{}: {}; PostgreSQL reads it at startup and stops",
                control_path.display(),
                r.why
            ),
        );
        (
            Verdict::Blocked,
            r.message.clone().map(|m| (Stage::ControlFile, m)),
        )
    };
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    if let Some(msg) = datadir_fatal {
        (Verdict::Blocked, Some((Stage::DataDirectory, msg)))
    } else {
        match stage {
            LockStage::Unreadable(why) => {
                cx.find(
                    Code::PermissionDenied,
                    Severity::Problem,
                    format!("{} could not be read: {why}", lock_path.display()),
                );
                (Verdict::Unknown, None)
            }
            LockStage::Unusable(why) => {
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Problem,
                    format!("{} {why}", lock_path.display()),
                );
                (Verdict::Unknown, None)
            }
            LockStage::Empty => {
                cx.find(
                    Code::LockFileEmpty,
                    Severity::Problem,
                    format!(
                        "{} is empty: a server was starting, or crashed between creating the file and writing it; PostgreSQL never removes it by itself",
                        lock_path.display()
                    ),
                );
                (
                    Verdict::Blocked,
                    Some((
                        Stage::LockFile,
                        "lock file \"postmaster.pid\" is empty".into(),
                    )),
                )
            }
            LockStage::Bogus(buffer) => {
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Problem,
                    format!(
                        "{} does not start with a PID; PostgreSQL stops and never removes it by itself",
                        lock_path.display()
                    ),
                );
                (
                    Verdict::Blocked,
                    Some((
                        Stage::LockFile,
                        format!("bogus data in lock file \"postmaster.pid\": \"{buffer}\""),
                    )),
                )
            }
            LockStage::Live(Identity::Owner) => (
                Verdict::Running,
                Some((
                    Stage::LockFile,
                    "lock file \"postmaster.pid\" already exists".into(),
                )),
            ),
            // Running, or blocked by another process: cannot be told.
            LockStage::Live(Identity::Unknown) => (Verdict::Unknown, None),
            LockStage::Live(_) => (
                Verdict::Blocked,
                Some((
                    Stage::LockFile,
                    "lock file \"postmaster.pid\" already exists".into(),
                )),
            ),
            LockStage::Absent | LockStage::Dead => {
                if let Some(msg) = line7_blocks {
                    (Verdict::Blocked, Some((Stage::SharedMemory, msg)))
                } else if let Some(why) = line7_unknown {
                    cx.find(Code::PermissionDenied, Severity::Problem, why);
                    (Verdict::Unknown, None)
                } else if let startup::Step::Fails(msg, why) = lock_create {
                    cx.find(
                        Code::LockFileNotCreatable,
                        Severity::Problem,
                        format!("{why}; the server would stop there"),
                    );
                    (Verdict::Blocked, Some((Stage::LockFileCreate, msg)))
                } else if let startup::Step::Unknown(why) = lock_create {
                    cx.find(Code::LockFileNotCreatable, Severity::Problem, why);
                    (Verdict::Unknown, None)
                } else if let ControlStage::Refused {
                    refusal,
                    first: true,
                } = control
                {
                    control_refuses(cx, refusal)
                } else if let ControlStage::Unreadable { why, first: true } = control {
                    cx.find(
                        Code::PermissionDenied,
                        Severity::Problem,
                        format!("{why}: the server reads it at startup, and whether it accepts it cannot be told"),
                    );
                    (Verdict::Unknown, None)
                } else if let Some(block) = socket_block
                    .filter(|_| sockets_first || matches!(probe_end, ProbeEnd::Creates { .. }))
                {
                    (Verdict::Blocked, Some(block))
                } else {
                    match probe_end {
                        ProbeEnd::Creates { .. } => match control {
                            // 10: read once the segment is created.
                            ControlStage::Refused { refusal, .. } => control_refuses(cx, refusal),
                            ControlStage::Unreadable { why, .. } => {
                                cx.find(
                                    Code::PermissionDenied,
                                    Severity::Problem,
                                    format!("{why}: the server reads it at startup, and whether it accepts it cannot be told"),
                                );
                                (Verdict::Unknown, None)
                            }
                            ControlStage::Accepted => (Verdict::WillStart, None),
                        },
                        ProbeEnd::Blocked { key, shmid } => (
                            Verdict::Blocked,
                            Some((
                                Stage::SharedMemory,
                                format!(
                                    "pre-existing shared memory block (key {}, ID {shmid}) is still in use",
                                    key_u64(*key)
                                ),
                            )),
                        ),
                        ProbeEnd::Unknown(why) => {
                            if !cx.findings.iter().any(|f| f.code == Code::VersionUnknown) {
                                cx.find(
                                    Code::PermissionDenied,
                                    Severity::Problem,
                                    format!("the key probe cannot be predicted: {why}"),
                                );
                            }
                            (Verdict::Unknown, None)
                        }
                    }
                }
            }
        }
    }
}

/// Segments with holders that may be this directory's and whose owner
/// could not be told (holders whose maps or memory cannot be read, or that
/// are not visible at all). Such a segment may be this directory's, removed
/// with `ipcrm` or on a shifted key, with an old server's processes still
/// attached: a start would then run alongside them. So it makes a
/// `will_start` unknown; `skip`: a segment already reported (line 7's).
fn unattributed_segments(cx: &mut Ctx<'_>, verdict: Verdict, skip: Option<i32>) -> (Verdict, bool) {
    let root = rustix::process::geteuid().is_root();
    let undecided: Vec<(ShmEntry, String)> = cx
        .host
        .shm
        .iter()
        .filter(|e| e.nattch > 0 && Some(e.shmid) != skip)
        .filter_map(|e| match cx.belongs.get(&e.shmid) {
            Some(Belongs::Unknown(why)) => Some((e.clone(), why.clone())),
            _ => None,
        })
        .collect();
    for (e, why) in &undecided {
        cx.find(
            Code::PermissionDenied,
            Severity::Problem,
            format!(
                "segment ID {} ({}, {} bytes, owner {}, {} attached) may be this directory's, and whose it is cannot be told: {why}{}",
                e.shmid,
                if e.is_marked_for_removal() || e.key == 0 {
                    "removed with ipcrm".to_string()
                } else {
                    format!("key {}", key_hex(e.key))
                },
                e.size,
                cx.host.user_name(e.uid),
                e.nattch,
                if root { "" } else { "; run this as root to tell" }
            ),
        );
    }
    let verdict = if verdict == Verdict::WillStart && !undecided.is_empty() {
        Verdict::Unknown
    } else {
        verdict
    };
    (verdict, !undecided.is_empty())
}

/// The processes attached to this directory's segments, and what hides them.
fn collect_holders(
    cx: &mut Ctx<'_>,
    ours_attached: &[ShmEntry],
    lock_info: &LockFileInfo,
) -> Vec<Holder> {
    let my_uid = rustix::process::geteuid().as_raw();
    let mut holders: Vec<Holder> = Vec::new();
    for e in ours_attached {
        let mut found = 0u64;
        for a in cx.holders_of(e.shmid) {
            found += a.attaches;
            if let Some(process) = summary(cx.host, a.pid) {
                holders.push(Holder {
                    process,
                    shmid: a.shmid,
                    attaches: a.attaches,
                });
            }
        }
        if found < e.nattch {
            cx.find(
                Code::HoldersHidden,
                Severity::Warning,
                format!(
                    "segment ID {} has {} attachments but only {found} are visible here: the others are in another PID namespace, or their /proc/PID/maps cannot be read{}",
                    e.shmid,
                    e.nattch,
                    if my_uid == 0 { "" } else { " (run as root)" }
                ),
            );
        }
    }
    holders.sort_by_key(|h| (h.shmid, h.process.pid));
    // Written in another PID namespace? A holder whose innermost PID is the
    // one on line 1 (a container's postmaster is often PID 1 there).
    if matches!(
        lock_info.identity,
        Some(Identity::Gone | Identity::Reused | Identity::OtherUser)
    ) {
        let pid = lock_info.pid.unwrap_or(0).abs();
        if let Some(h) = holders
            .iter()
            .find(|h| h.process.nspid.len() > 1 && h.process.nspid.last() == Some(&pid))
        {
            cx.find(
                Code::OtherNamespace,
                Severity::Problem,
                format!(
                    "{} was written in another PID namespace: PID {pid} there is PID {} here ({}), attached to this directory's segment",
                    lock_info.path, h.process.pid, h.process.cmdline
                ),
            );
        }
    }
    holders
}

/// Whether the holders are the keeper of an `interlock hold` whose own
/// process is gone (SIGKILLed) while its command still runs: the keeper
/// (named [`KEEPER_NAME`], a fork of `interlock`, attached) holds a pidfd on
/// that command and lives exactly as long as it. Such a directory is held
/// for maintenance (`pg_upgrade`, `pg_resetwal`, a file-level backup), and
/// nothing of it is a leftover. A keeper whose descriptors cannot be read
/// counts as holding: what it keeps cannot be proven gone.
fn maintenance_hold(cx: &mut Ctx<'_>, holders: &[Holder]) -> bool {
    let keeper_name = KEEPER_NAME.to_bytes();
    let mut found = Vec::new();
    for h in holders {
        let pid = h.process.pid;
        let Ok(stat) = cx.host.procfs.stat(pid) else {
            continue;
        };
        if stat.comm != keeper_name || stat.is_zombie() {
            continue;
        }
        match cx.host.procfs.pidfd_targets(pid) {
            Ok(targets) => {
                for t in targets.into_iter().filter(|t| *t > 0) {
                    if let Some(cmd) = summary(cx.host, t).filter(|c| c.state != ProcState::Zombie)
                    {
                        found.push(format!(
                            "keeper PID {pid} keeps PID {t} ({}, {}, started {}), which still runs",
                            cmd.cmdline,
                            cx.host.user_name(cmd.uid),
                            format_utc(cmd.start_time)
                        ));
                    }
                }
            }
            Err(e) => found.push(format!(
                "keeper PID {pid} ({}): what command it keeps cannot be read ({e}){}",
                cx.host.user_name(h.process.uid),
                if rustix::process::geteuid().is_root() {
                    ""
                } else {
                    "; run as root"
                }
            )),
        }
    }
    if found.is_empty() {
        return false;
    }
    cx.find(
        Code::MaintenanceHold,
        Severity::Problem,
        format!(
            "an `interlock hold` holds this directory for a command that is still running, though its own process is gone: {}; PostgreSQL refuses to start until that command exits, as it should",
            found.join("; ")
        ),
    );
    true
}

/// The holders as the running server's, or as orphans of one that is gone;
/// `held`: whether the lock file's owner is alive, the creator of the
/// segment that still holds it, and whether a maintenance hold holds it.
fn owner_or_orphans(
    cx: &mut Ctx<'_>,
    holders: &[Holder],
    lock_info: &LockFileInfo,
    (owner_alive, creator, maintenance): (bool, Option<&Holder>, bool),
    verdict: Verdict,
) {
    // No server of this directory runs as another user (the server checks
    // that it owns the directory: checkDataDir in
    // src/backend/utils/init/miscinit.c), so such a holder is not one of
    // its leftovers, whatever the segment's header says.
    let owner_uid = cx.owner.0;
    let foreign: Vec<&Holder> = holders
        .iter()
        .filter(|h| h.process.uid != owner_uid)
        .collect();
    if !foreign.is_empty() {
        let segs: Vec<String> = foreign
            .iter()
            .map(|h| h.shmid)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|id| {
                let e = cx.host.by_shmid(id);
                let ev = cx
                    .belongs
                    .get(&id)
                    .map(|b| b.evidence().to_string())
                    .unwrap_or_default();
                match e {
                    Some(e) => format!(
                        "segment ID {id} (owner {}, created by {}, mode {:03o}, created by PID {}; {ev})",
                        cx.host.user_name(e.uid),
                        cx.host.user_name(e.cuid),
                        e.permissions(),
                        e.cpid
                    ),
                    None => format!("segment ID {id} ({ev})"),
                }
            })
            .collect();
        cx.find(
            Code::ForeignHolders,
            Severity::Problem,
            format!(
                "{} of another user than {}, the directory's owner, {} attached to a segment that claims this directory: {}; {}. No server of this directory runs as another user: find out what {} before stopping anything",
                plural(foreign.len(), "process", "processes"),
                cx.host.user_name(owner_uid),
                if foreign.len() == 1 { "is" } else { "are" },
                foreign
                    .iter()
                    .map(|h| format!(
                        "PID {} (user {}, {})",
                        h.process.pid,
                        cx.host.user_name(h.process.uid),
                        h.process.cmdline
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                segs.join("; "),
                if foreign.len() == 1 { "it is" } else { "they are" }
            ),
        );
    }
    let orphans: Vec<&Holder> = if owner_alive || creator.is_some() || maintenance {
        Vec::new()
    } else {
        holders
            .iter()
            .filter(|h| h.process.uid == owner_uid)
            .collect()
    };
    if let (false, Some(c)) = (owner_alive, creator) {
        cx.find(
            Code::HeldByCreator,
            Severity::Problem,
            format!(
                "PID {} ({}) created this directory's segment ID {} and is still attached: it holds the directory ({}); {} attached, none of them a leftover",
                c.process.pid,
                c.process.cmdline,
                c.shmid,
                if lock_info.state == LockState::Absent {
                    "an `interlock hold --no-lock-file`, or a server whose postmaster.pid was removed"
                } else {
                    "the lock file names another process"
                },
                plural(holders.len(), "process", "processes")
            ),
        );
    }
    if owner_alive {
        let pid = lock_info.pid.unwrap_or(0);
        let what = lock_info
            .process
            .as_ref()
            .map(|p| p.cmdline.clone())
            .unwrap_or_default();
        cx.find(
            Code::PostmasterRunning,
            Severity::Info,
            format!(
                "PID {} ({what}) owns this directory{}; {} attached",
                pid.abs(),
                lock_info
                    .status
                    .as_deref()
                    .map(|s| format!(", status \"{s}\""))
                    .unwrap_or_default(),
                plural(holders.len(), "process", "processes")
            ),
        );
    } else if !orphans.is_empty() {
        let stopped = orphans
            .iter()
            .filter(|h| h.process.state == ProcState::Stopped)
            .count();
        cx.find(
            Code::OrphanedHolders,
            if verdict == Verdict::WillStart {
                Severity::Danger
            } else {
                Severity::Problem
            },
            format!(
                "{} of a server that is gone {} still attached to this directory's segment: {}{}",
                plural(orphans.len(), "process", "processes"),
                if orphans.len() == 1 { "is" } else { "are" },
                orphans
                    .iter()
                    .map(|h| format!(
                        "{} ({})",
                        h.process.pid,
                        h.process
                            .role
                            .map_or(h.process.cmdline.as_str(), |r| r.name())
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                if stopped > 0 {
                    format!("; {stopped} stopped (SIGSTOP)")
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// This directory's attached segments the probe does not stop at.
fn unseen_segments(
    cx: &mut Ctx<'_>,
    play: &InPlay,
    owner_alive: bool,
    verdict: Verdict,
    stops_at: Option<Stage>,
    seed_key: Option<ShmKey>,
) {
    let InPlay {
        line7_shmid,
        blocked_shmid,
        ref ours_attached,
    } = *play;
    for e in ours_attached {
        if owner_alive {
            continue;
        }
        let removed = e.is_marked_for_removal() || e.key == 0;
        let what_blocks = Some(e.shmid) == blocked_shmid
            || Some(e.shmid) == line7_shmid
                && verdict == Verdict::Blocked
                && stops_at == Some(Stage::SharedMemory);
        if what_blocks && !removed {
            continue;
        }
        if removed {
            cx.find(
                Code::SegmentRemoved,
                if verdict == Verdict::WillStart { Severity::Danger } else { Severity::Warning },
                format!(
                    "segment ID {} of this directory was removed (ipcrm) while {} still attached: PostgreSQL can no longer see them{}",
                    e.shmid,
                    plural(e.nattch as usize, "process was", "processes were"),
                    if verdict == Verdict::WillStart { ", and would start alongside them" } else { "" }
                ),
            );
        } else {
            cx.find(
                Code::UnprobedSegment,
                if verdict == Verdict::WillStart { Severity::Danger } else { Severity::Warning },
                format!(
                    "segment ID {} (key {}) of this directory has {} attached, on a key PostgreSQL does not reach from {}{}",
                    e.shmid,
                    key_hex(e.key),
                    e.nattch,
                    seed_key.map(|k| key_hex(k.0)).unwrap_or_else(|| "its first key".into()),
                    if verdict == Verdict::WillStart { ": it would start alongside them" } else { "" }
                ),
            );
        }
    }
}

/// Line 7's segment, if nobody is attached and the server will not remove it.
fn leaked_segments(
    cx: &mut Ctx<'_>,
    line7_shmid: Option<i32>,
    owner_alive: bool,
    recycled: Option<i32>,
    parts: Option<PidFileParts>,
) {
    if let Some(shmid) = line7_shmid {
        if let Some(e) = cx.host.by_shmid(shmid).cloned() {
            if e.nattch == 0 && !owner_alive && Some(shmid) != recycled {
                let b = cx.decide(&e, parts.as_ref());
                cx.belongs.insert(shmid, b.clone());
                if b.is_this() {
                    cx.find(
                        Code::LeakedSegment,
                        Severity::Warning,
                        format!(
                            "segment ID {shmid} (key {}) of this directory has nobody attached, and PostgreSQL will not remove it ({}): it stays until removed or the host reboots",
                            key_hex(e.key),
                            b.evidence()
                        ),
                    );
                }
            }
        }
    }
}

/// The segments the report shows, each with why and whose it is.
fn segments_to_show(
    cx: &mut Ctx<'_>,
    play: &InPlay,
    seed_key: Option<ShmKey>,
    probe_end: &ProbeEnd,
    recycled: Option<i32>,
    parts: Option<PidFileParts>,
) -> Vec<SegmentInfo> {
    let InPlay {
        line7_shmid,
        blocked_shmid,
        ref ours_attached,
    } = *play;
    let mut segments: Vec<SegmentInfo> = Vec::new();
    let mut shown_ids: Vec<i32> = Vec::new();
    if let Some(id) = line7_shmid {
        shown_ids.push(id);
    }
    shown_ids.extend(ours_attached.iter().map(|e| e.shmid));
    if let Some(k) = seed_key {
        if let Some(e) = cx.host.by_key(k.0) {
            shown_ids.push(e.shmid);
        }
    }
    if let ProbeEnd::Blocked { shmid, .. } = *probe_end {
        shown_ids.push(shmid);
    }
    if let Some(r) = recycled {
        shown_ids.push(r);
    }
    shown_ids.dedup();
    let mut seen = Vec::new();
    for id in shown_ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let Some(e) = cx.host.by_shmid(id).cloned() else {
            continue;
        };
        let b = match cx.belongs.get(&id) {
            Some(b) => b.clone(),
            None => cx.decide(&e, parts.as_ref()),
        };
        let mut why = Vec::new();
        if Some(id) == line7_shmid {
            why.push(Listed::LineSeven);
        }
        if seed_key.is_some_and(|k| cx.host.by_key(k.0).map(|x| x.shmid) == Some(id))
            || blocked_shmid == Some(id)
            || recycled == Some(id)
        {
            why.push(Listed::Probe);
        }
        if e.nattch > 0 && b.is_this() {
            why.push(Listed::Attached);
        }
        segments.push(SegmentInfo {
            key: key_u64(e.key),
            key_hex: key_hex(e.key),
            shmid: e.shmid,
            size: e.size,
            nattch: e.nattch,
            uid: e.uid,
            cpid: e.cpid,
            lpid: e.lpid,
            removed: e.is_marked_for_removal(),
            why,
            belongs: b.whose(),
            state: match (&b, e.nattch) {
                (Belongs::This(_), 0) => MemoryState::Unattached,
                (Belongs::This(_), _) => MemoryState::Attached,
                (Belongs::Foreign(_), _) => MemoryState::Foreign,
                (Belongs::Unknown(_), _) => MemoryState::Unknown,
            },
            evidence: b.evidence().to_string(),
            dsm_control: cx.dsm_control.get(&id).copied().filter(|&h| h != 0),
        });
    }
    segments
}

/// The probe as the report tells it.
fn describe_probe(
    seed: Option<KeySeed>,
    seed_from: String,
    seed_key: Option<ShmKey>,
    probe_end: &ProbeEnd,
) -> ProbeInfo {
    ProbeInfo {
        seed,
        seed_from,
        first_key: seed_key.map(|k| key_u64(k.0)),
        outcome: match probe_end {
            ProbeEnd::Creates { key, recycles: None, unsure: None } => {
                format!("creates its segment at key {}", key_hex(*key))
            }
            ProbeEnd::Creates { key, recycles: None, unsure: Some(id) } => format!(
                "finds segment ID {id} at key {} with nobody attached: removes it and creates its own there if it is this directory's, else moves on to the next free key",
                key_hex(*key)
            ),
            ProbeEnd::Creates { key, recycles: Some(id), .. } => format!(
                "removes the old segment ID {id} (nobody attached) and creates its own at key {}",
                key_hex(*key)
            ),
            ProbeEnd::Blocked { key, shmid } => format!(
                "stops at key {}: segment ID {shmid} of this directory is still attached",
                key_hex(*key)
            ),
            ProbeEnd::Unknown(why) => format!("unknown: {why}"),
        },
        creates_at: match probe_end {
            ProbeEnd::Creates {
                key, unsure: None, ..
            } => Some(key_u64(*key)),
            _ => None,
        },
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The attachment of `shmid` in `pid`, if it maps it (same IPC namespace
/// assumed; the caller only uses it to read a header, which names a
/// directory whatever the namespace).
fn attachment(host: &mut Host, pid: i32, shmid: i32) -> Option<Attached> {
    let m = host.mappings(pid)?;
    let first = m.sysv.iter().find(|s| s.shmid == shmid)?;
    Some(Attached {
        pid,
        shmid,
        attaches: m.sysv.iter().filter(|s| s.shmid == shmid).count() as u64,
        start: first.start,
    })
}

/// Judge the lock file's PID as the server would (`kill(pid, 0)` as the
/// directory's owner) and as we do (identity), filling `info`.
fn judge_lock_owner(
    cx: &mut Ctx<'_>,
    info: &mut LockFileInfo,
    pid: i32,
    r: &ServerReading,
    parts: Option<PidFileParts>,
) -> LockStage {
    let _ = parts;
    let my_pid = std::process::id() as i32;
    // The one identity rule (interlock::process): only evidence that ties
    // the process to this directory makes it the owner, never start time.
    let verdict = cx.host.procfs.judge_pid(
        pid,
        r.shmem.map(|(_, id)| ShmId(id as i32)),
        &cx.real,
        cx.owner.0,
        my_pid,
    );
    let facts = cx.host.info(pid);
    info.process = summary(cx.host, pid);
    let lock_path = info.path.clone();
    let owner_uid = cx.owner.0;
    let same_user = facts
        .as_ref()
        .is_some_and(|f| f.uid == owner_uid || f.suid == owner_uid);
    let Some(f) = facts else {
        let identity = if verdict == OwnerVerdict::OtherUser {
            cx.find(
                Code::PidOtherUser,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which exists but cannot be read here (another user's, under hidepid); PostgreSQL treats it as gone"
                ),
            );
            Identity::OtherUser
        } else {
            cx.find(
                Code::StaleLockFile,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which no longer exists; PostgreSQL removes the file itself"
                ),
            );
            Identity::Gone
        };
        info.identity = Some(identity);
        return LockStage::Dead;
    };
    let facts = Some(f);
    let (identity, stage) = match (&verdict, &facts) {
        (OwnerVerdict::Zombie, Some(f)) => {
            let parent = summary(cx.host, f.ppid)
                .map(|p| format!("PID {} ({})", p.pid, p.cmdline))
                .unwrap_or_else(|| format!("PID {}", f.ppid));
            if same_user {
                cx.find(
                    Code::ZombiePostmaster,
                    Severity::Problem,
                    format!(
                        "PID {pid} named in {lock_path} has exited but is a zombie, never collected by its parent {parent}; PostgreSQL's kill(pid, 0) still succeeds on it"
                    ),
                );
                (Identity::Zombie, LockStage::Live(Identity::Zombie))
            } else {
                cx.find(
                    Code::PidOtherUser,
                    Severity::Info,
                    format!(
                        "PID {pid} is a zombie of {}; PostgreSQL treats it as gone",
                        cx.host.user_name(f.uid)
                    ),
                );
                (Identity::Zombie, LockStage::Dead)
            }
        }
        (OwnerVerdict::Alive { evidence, .. }, Some(_)) if same_user => {
            info.evidence = Some(evidence.to_string());
            (Identity::Owner, LockStage::Live(Identity::Owner))
        }
        (OwnerVerdict::Elsewhere { because, .. }, Some(f)) if same_user => {
            // Identity `reused`: the PID is not this directory's server,
            // and fix removes such a lock file without signalling anyone.
            info.evidence = Some(format!("another data directory's: {because}"));
            info.serves_elsewhere = true;
            cx.find(
                Code::PidReused,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, which is another data directory's server, not this one's ({because}; started {}): this directory is likely a copy of a running cluster's; PostgreSQL only checks that the PID is alive",
                    format_utc(f.start_time)
                ),
            );
            (Identity::Reused, LockStage::Live(Identity::Reused))
        }
        (OwnerVerdict::Unknown { why, .. }, Some(_)) if same_user => {
            info.evidence = Some(why.clone());
            cx.find(
                Code::PermissionDenied,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, a live process of {}, and whether it is this directory's server cannot be told: {why}",
                    cx.host.user_name(owner_uid)
                ),
            );
            (Identity::Unknown, LockStage::Live(Identity::Unknown))
        }
        (_, Some(f)) if same_user => {
            cx.find(
                Code::PidReused,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, which is now {} (started {}), not a server of this directory; PostgreSQL only checks that the PID is alive",
                    info.process.as_ref().map(|p| p.cmdline.clone()).unwrap_or_else(|| printable(b"?")),
                    format_utc(f.start_time)
                ),
            );
            (Identity::Reused, LockStage::Live(Identity::Reused))
        }
        (_, Some(f)) => {
            cx.find(
                Code::PidOtherUser,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which now belongs to {} ({}); PostgreSQL treats it as gone (kill returns EPERM) and removes the file",
                    cx.host.user_name(f.uid),
                    info.process.as_ref().map(|p| p.cmdline.clone()).unwrap_or_default()
                ),
            );
            (Identity::OtherUser, LockStage::Dead)
        }
        (_, None) => (Identity::Gone, LockStage::Dead),
    };
    info.identity = Some(identity);
    stage
}

fn running_exe(cx: &Ctx<'_>, lock: &LockFileInfo) -> Option<PathBuf> {
    let mut pids: Vec<i32> = Vec::new();
    if lock.identity == Some(Identity::Owner) {
        pids.extend(lock.pid.map(i32::abs));
    }
    pids.extend(cx.attached.iter().map(|a| a.pid));
    for pid in pids {
        if let Ok(exe) = cx.host.procfs.exe(pid) {
            if is_postgres_executable(&exe) && exe.is_file() {
                return Some(exe);
            }
        }
    }
    None
}

fn first_key(cx: &Ctx<'_>, v: &VersionInfo, start: &StartSettings) -> (Option<ShmKey>, String) {
    let Some(major) = v.major() else {
        return (None, "unknown".into());
    };
    let key = pg::first_key(major, start.port, cx.dir_id.1);
    let from = match pg::key_seed(major) {
        Some(pg::KeySeed::Inode) => format!("the directory's inode {}", cx.dir_id.1),
        Some(pg::KeySeed::Port) => format!("port {} ({})", start.port, start.port_from),
        None => "unknown".into(),
    };
    (key, from)
}

/// Whose a segment is, in the terms of `pg`'s rules.
fn whose(b: &Belongs) -> pg::Whose {
    match b {
        Belongs::This(_) => pg::Whose::ThisDirectory,
        Belongs::Foreign(_) => pg::Whose::Foreign,
        Belongs::Unknown(_) => pg::Whose::Unknown,
    }
}

/// Follow the server's probe loop from `start` over the host's segments,
/// each step as `pg::probe_step` rules.
fn probe(
    cx: &mut Ctx<'_>,
    start: ShmKey,
    algo: pg::Algorithm,
    lock: Option<&PidFileParts>,
) -> ProbeEnd {
    let mut key = start.0;
    for _ in 0..MAX_PROBE {
        let found = match cx.host.by_key(key).cloned() {
            None => None,
            Some(e) => {
                let b = match cx.belongs.get(&e.shmid) {
                    Some(b) => b.clone(),
                    None => {
                        let b = cx.decide(&e, lock);
                        cx.belongs.insert(e.shmid, b.clone());
                        b
                    }
                };
                Some((e, b))
            }
        };
        let at = match &found {
            None => pg::SegmentAtKey::Free,
            Some((e, b)) => pg::SegmentAtKey::Taken {
                whose: whose(b),
                nattch: e.nattch,
                removable: e.uid == cx.owner.0 || e.cuid == cx.owner.0,
                readable: cx.server_can_read(e) && e.size >= HEADER_SIZE as u64,
                // Only the old loop asks (kill(creatorPID, 0)).
                creator_alive: algo == pg::Algorithm::Old && cx.host.procfs.stat(e.cpid).is_ok(),
            },
        };
        let (shmid, nattch, why) = found
            .as_ref()
            .map_or((0, 0, ""), |(e, b)| (e.shmid, e.nattch, b.evidence()));
        match pg::probe_step(algo, &at) {
            pg::ProbeStep::Create => {
                return ProbeEnd::Creates {
                    key,
                    recycles: None,
                    unsure: None,
                }
            }
            pg::ProbeStep::Recycle => {
                return ProbeEnd::Creates {
                    key,
                    recycles: Some(shmid),
                    unsure: None,
                }
            }
            // Unattached and ours (recycled here) or foreign (skipped):
            // either way the server starts, at this key or a later one.
            pg::ProbeStep::RecycleOrNextKey => {
                return ProbeEnd::Creates {
                    key,
                    recycles: None,
                    unsure: Some(shmid),
                }
            }
            pg::ProbeStep::Blocked => {
                return ProbeEnd::Blocked { key, shmid }
            }
            pg::ProbeStep::Unknown => {
                return ProbeEnd::Unknown(format!(
                    "segment ID {shmid} at key {} has {nattch} attached, and whose it is cannot be told: {why}",
                    key_hex(key),
                ))
            }
            pg::ProbeStep::NextKey => key = key.wrapping_add(1),
            // A segment that vanished is looked at again (not seen here:
            // the host's table is read once).
            pg::ProbeStep::Retry => {}
        }
    }
    ProbeEnd::Unknown(format!(
        "no free key within {MAX_PROBE} keys of {}",
        key_hex(start.0)
    ))
}

/// The DSM files of this directory, and those leaked by a server of its
/// owner.
fn dsm_report(cx: &mut Ctx<'_>, holders: &[Holder], recycling: bool) -> Vec<DsmInfo> {
    let files = cx.host.dsm_files(&cx.opts.root.dev_shm());
    if files.is_empty() {
        return Vec::new();
    }
    let holder_pids: Vec<i32> = holders.iter().map(|h| h.process.pid).collect();
    let owner = cx.owner.0;
    let now = now_epoch();
    // Files of the owner that no process read so far maps: before calling
    // them leaked, read every map that could map them.
    let mut usage = cx.host.dsm_use(&files);
    if files
        .iter()
        .any(|f| f.uid == owner && !usage.is_mapped(f.handle))
    {
        cx.host.read_all_mappings(&[owner]);
        usage = cx.host.dsm_use(&files);
    }
    let mut out = Vec::new();
    let mut leaked = Vec::new();
    let mut unknown = 0usize;
    for f in files {
        let by = usage.mapped_by(f.handle);
        let status = if by.iter().any(|p| holder_pids.contains(p)) {
            DsmStatus::InUse
        } else if f.uid != owner {
            continue;
        } else {
            match usage.state(&f, now) {
                DsmState::Unused => {
                    leaked.push((f.path.display().to_string(), f.size));
                    DsmStatus::Leaked
                }
                DsmState::Unknown => {
                    unknown += 1;
                    DsmStatus::Unknown
                }
                DsmState::InUse => continue,
            }
        };
        out.push(f.info(by, status));
    }
    if unknown > 0 {
        cx.find(
            Code::PermissionDenied,
            Severity::Warning,
            format!(
                "{} of {} that no process read here maps: the maps of some of {}'s processes could not be read, so whether they are leaked cannot be told (run as root)",
                plural(unknown, "/dev/shm file", "/dev/shm files"),
                cx.host.user_name(owner),
                cx.host.user_name(owner)
            ),
        );
    }
    if !leaked.is_empty() {
        let total: u64 = leaked.iter().map(|l| l.1).sum();
        cx.find(
            Code::LeakedDsm,
            Severity::Warning,
            format!(
                "{} of {} ({}) that no process maps, left by a server that was killed{}",
                plural(leaked.len(), "/dev/shm file", "/dev/shm files"),
                cx.host.user_name(owner),
                human_bytes(total),
                if recycling {
                    "; if they were this directory's, PostgreSQL removes them when it starts, through the old segment it recycles"
                } else {
                    "; nothing removes them before a reboot (PostgreSQL finds old ones only through an old segment of its own)"
                }
            ),
        );
    }
    out
}

/// What to do, safest first.
fn remedy(r: &StatusReport, cx: &Ctx<'_>, stage: &LockStage, recycling: bool) -> Vec<String> {
    let mut steps = Vec::new();
    // Every path goes into a command or sentence shell-quoted: one word
    // that pastes back to its exact bytes, on one line.
    let dir = shell::quote_os(cx.shown.as_os_str());
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    let lock = shell::quote_os(lock_path.as_os_str());
    let has = |c: Code| cx.findings.iter().any(|f| f.code == c);
    let nobody_attached = r.holders.is_empty();

    if has(Code::PermissionDenied) && rustix::process::geteuid().as_raw() != 0 {
        steps.push(format!(
            "Run this again as root (or as {}, the directory's owner): some of what decides the answer could not be read.",
            cx.host.user_name(cx.owner.0)
        ));
    }
    if cx.dir_owner != cx.owner.0 {
        steps.push(format!(
            "Give the directory back to the server's user: chown -R {}: {dir}",
            shell::quote(&cx.host.user_name(cx.owner.0))
        ));
    } else if has(Code::DataDirInvalid) {
        if let Some(f) = cx.findings.iter().find(|f| f.code == Code::DataDirInvalid) {
            steps.push(format!("Fix the data directory first: {}.", f.message));
        }
    }
    match r.verdict {
        Verdict::Running => {
            let pid = r.lock_file.pid.unwrap_or(0);
            if pid < 0 {
                steps.push(format!(
                    "Nothing to do: PID {} holds the directory (a single-user server or `interlock hold`); wait for it to finish.",
                    -pid
                ));
            } else {
                steps.push(format!(
                    "Nothing to do: the server runs (PID {pid}). To stop it: pg_ctl stop -D {dir} -m fast"
                ));
            }
            return steps;
        }
        Verdict::WillStart if r.safe_to_start => {
            if matches!(stage, LockStage::Dead) {
                steps.push(format!(
                    "Start it (pg_ctl start -D {dir}); it removes the stale {lock} itself."
                ));
            } else {
                steps.push(format!("Start it: pg_ctl start -D {dir}"));
            }
        }
        _ => {}
    }
    if let Some(f) = cx
        .findings
        .iter()
        .find(|f| f.code == Code::ControlFileInvalid)
    {
        steps.push(format!(
            "Do not start the server on a guess: {}. Restore global/pg_control from a backup of this cluster (pg_resetwal rewrites it but loses data; it is the last resort).",
            f.message
        ));
    }
    if let Some(f) = cx.findings.iter().find(|f| f.code == Code::HeldByCreator) {
        steps.push(format!(
            "Do not kill anything and do not remove the segment: {}. Wait for it to finish, or stop it the way it was started (a server: pg_ctl stop -D {dir}).",
            f.message
        ));
        return steps;
    }
    if cx.findings.iter().any(|f| f.code == Code::MaintenanceHold) {
        steps.push(
            "Do not kill anything and do not remove the segment or the lock file: a maintenance command run by `interlock hold` still works on this directory (see the finding). Wait for it to finish; its keeper exits with it, and PostgreSQL can start then.".into(),
        );
        return steps;
    }
    if let Some(f) = cx.findings.iter().find(|f| f.code == Code::ForeignHolders) {
        steps.push(format!(
            "Find out what the processes of another user are before stopping anything (ls -l /proc/PID/exe, ipcs -m -i ID): {}",
            f.message
        ));
    }
    // Only the owner's processes can be a server's leftovers (the
    // others are named above, never given a kill command).
    let leftovers: Vec<&Holder> = r
        .holders
        .iter()
        .filter(|h| h.process.uid == cx.owner.0)
        .collect();
    if !leftovers.is_empty() && r.lock_file.identity != Some(Identity::Owner) {
        let pids: Vec<String> = leftovers
            .iter()
            .map(|h| h.process.pid.to_string())
            .collect();
        let pids = {
            let mut p = pids;
            p.dedup();
            p.join(" ")
        };
        let stopped: Vec<String> = leftovers
            .iter()
            .filter(|h| h.process.state == ProcState::Stopped)
            .map(|h| h.process.pid.to_string())
            .collect();
        if r.verdict == Verdict::WillStart {
            steps.push("Do not start PostgreSQL yet: it would run alongside the old processes below and corrupt the data.".into());
        }
        steps.push(format!(
            "Stop the old server's leftover processes (all of them are attached to this directory's segment): kill -TERM {pids}"
        ));
        if !stopped.is_empty() {
            steps.push(format!(
                "Some are stopped and cannot act on SIGTERM until continued: kill -CONT {}",
                stopped.join(" ")
            ));
        }
        steps.push(format!(
            "If any is still there after 10 seconds: kill -KILL {pids}"
        ));
        steps.push("Do not remove the segment with ipcrm: that does not stop those processes, it only hides them from the next server.".into());
        if matches!(stage, LockStage::Dead | LockStage::Absent) {
            steps.push(format!(
                "Then start PostgreSQL (pg_ctl start -D {dir}): it removes the old segment{} itself.",
                if matches!(stage, LockStage::Dead) { " and lock file" } else { "" }
            ));
        }
    }
    match stage {
        LockStage::Live(Identity::Zombie) | LockStage::Live(Identity::Reused)
            if nobody_attached =>
        {
            let elsewhere = r.lock_file.serves_elsewhere;
            let what = if matches!(stage, LockStage::Live(Identity::Zombie)) {
                "a zombie holds nothing"
            } else if elsewhere {
                "the process at that PID is proven another data directory's server (leave it running)"
            } else {
                "the process at that PID is not a server of this directory"
            };
            steps.push(format!(
                "Remove the lock file, which is safe because {what} and no process is attached to this directory's segment: rm {lock}"
            ));
            if matches!(stage, LockStage::Live(Identity::Zombie)) {
                if let Some(p) = &r.lock_file.process {
                    steps.push(format!(
                        "Then find out why PID {} does not collect its exited children (in a container, run an init such as tini, or docker run --init).",
                        p.ppid
                    ));
                }
            }
        }
        LockStage::Live(Identity::Zombie) | LockStage::Live(Identity::Reused) => {
            steps.push(format!(
                "Once they are gone, remove the lock file: rm {lock}"
            ));
        }
        LockStage::Empty | LockStage::Bogus(_) => {
            if !cx.workers.is_empty() {
                steps.push(format!(
                    "Wait: processes working in {dir} may be a server that is starting ({}); run this again in a few seconds.",
                    cx.workers.iter().map(|w| w.pid.to_string()).collect::<Vec<_>>().join(" ")
                ));
            } else if nobody_attached {
                steps.push(format!(
                    "Make sure no server is starting in {dir} (nothing is attached to its segment now), then remove the lock file: rm {lock}"
                ));
            } else {
                steps.push(format!(
                    "Once they are gone, remove the lock file: rm {lock}"
                ));
            }
        }
        _ => {}
    }
    for s in r.socket_locks.iter().filter(|s| s.blocks) {
        let postmaster = s
            .process
            .as_ref()
            .is_some_and(|p| p.role == Some(PgRole::Postmaster));
        match s.identity {
            Some(Identity::Owner) => {}
            Some(Identity::Reused) if postmaster => steps.push(format!(
                "Another server (PID {}, data directory {}) uses this port's socket {}: start this one on another port (port = … in postgresql.conf, or -p).",
                s.pid.unwrap_or(0),
                shell::display(s.data_dir.as_deref().unwrap_or("?")),
                shell::quote(s.path.trim_end_matches(".lock"))
            )),
            Some(_) => steps.push(format!(
                "Remove the stale socket lock file, whose PID is not a server: rm {}",
                shell::quote(&s.path)
            )),
            None => steps.push(format!(
                "Make sure no server is starting on this port, then remove the socket lock file: rm {}",
                shell::quote(&s.path)
            )),
        }
    }
    for s in &r.segments {
        if s.nattch == 0 && s.belongs == Whose::ThisDirectory && has(Code::LeakedSegment) {
            steps.push(format!(
                "Remove the leftover segment, which nothing is attached to: ipcrm -m {}",
                s.shmid
            ));
        }
    }
    let leaked: Vec<std::borrow::Cow<'_, str>> = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked)
        .map(|d| shell::quote(&d.path))
        .collect();
    if !leaked.is_empty() && !recycling {
        steps.push(format!(
            "Free the leaked dynamic shared memory, which no process maps: rm {}",
            leaked.join(" ")
        ));
    }
    if r.verdict == Verdict::Blocked && steps.is_empty() {
        steps.push("Fix the cause above, then start the server again.".into());
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const BTIME: i64 = 1_700_000_000;
    /// A PID above any pid_max, so that the real kill(pid, 0) says ESRCH.
    const DEAD_PID: i32 = 2_000_000_000;

    struct Fixture {
        _root: tempfile::TempDir,
        data: PathBuf,
        opts: StatusOptions,
        shmid: i32,
        key: i32,
    }

    /// A data directory whose server was killed; its checkpointer (a name
    /// with spaces and parentheses, stopped) is still attached to the
    /// segment on line 7. /proc and /dev/shm are fixture trees; the
    /// segment table has octal permissions.
    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        fs::create_dir_all(data.join("global")).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(data.join("PG_VERSION"), "16\n").unwrap();
        fs::write(
            data.join("global/pg_control"),
            interlock_format::pgcontrol::minimal_control_file(
                16,
                interlock_format::pgcontrol::DbState::InProduction,
            )
            .unwrap(),
        )
        .unwrap();
        let m = fs::metadata(&data).unwrap();
        let uid = m.uid();
        let key = pg::key_for_inode(m.ino()).0;
        let shmid = 65538;
        fs::write(
            data.join("postmaster.pid"),
            format!(
                "{DEAD_PID}\n{}\n{}\n5432\n/tmp\n*\n{:>9} {:>9}\nready   \n",
                data.display(),
                BTIME + 100,
                key as i64 as u64,
                shmid
            ),
        )
        .unwrap();

        let proc_root = root.path().join("proc");
        fs::create_dir_all(proc_root.join("sysvipc")).unwrap();
        fs::write(
            proc_root.join("stat"),
            format!("cpu 1 2 3\nbtime {BTIME}\n"),
        )
        .unwrap();
        fs::write(
            proc_root.join("sysvipc/shm"),
            format!(
                "{}{key:>10} {shmid:>10}  1600 {:>21} {:>5} {:>5} {:>6} {uid:>5} {uid:>5} {uid:>5} {uid:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
                interlock_format::sysvipc::SHM_TABLE_HEADER,
                56, 4241, 4242, 1, BTIME + 100, 0, BTIME + 100, 4096, 0
            ),
        )
        .unwrap();
        let p = proc_root.join("4242");
        fs::create_dir_all(&p).unwrap();
        let hz = rustix::param::clock_ticks_per_second() as i64;
        fs::write(
            p.join("stat"),
            format!(
                "4242 (postgres: a (b) ) T 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
                 228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                100 * hz
            ),
        )
        .unwrap();
        fs::write(
            p.join("status"),
            format!(
                "Name:\tpostgres: a (b) \nState:\tT (stopped)\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t4242\n"
            ),
        )
        .unwrap();
        fs::write(p.join("cmdline"), b"postgres: checkpointer \0").unwrap();
        fs::write(
            p.join("maps"),
            format!(
                "7f2b61b05000-7f2b61b06000 rw-s 00000000 00:01 {shmid}                      /SYSV{:08x} (deleted)\n",
                key as u32
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink(&data, p.join("cwd")).unwrap();

        let dev_shm = root.path().join("dev/shm");
        fs::create_dir_all(&dev_shm).unwrap();
        fs::write(dev_shm.join("PostgreSQL.77"), vec![0u8; 4096]).unwrap();
        let old = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: BTIME,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: BTIME,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            dev_shm.join("PostgreSQL.77"),
            &old,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();

        let opts = StatusOptions {
            root: crate::HostRoot::new(root.path()),
            ..StatusOptions::default()
        };
        Fixture {
            _root: root,
            data,
            opts,
            shmid,
            key,
        }
    }

    #[test]
    fn a_stopped_orphan_blocks_with_the_servers_message() {
        let f = fixture();
        let r = status(&f.data, &f.opts).unwrap();
        assert_eq!(r.verdict, Verdict::Blocked);
        assert_eq!(
            r.postgres_would_say.as_deref(),
            Some(format!(
                "pre-existing shared memory block (key {}, ID {}) is still in use",
                f.key as i64 as u64, f.shmid
            ))
            .as_deref()
        );
        assert_eq!(r.lock_file.identity, Some(Identity::Gone));
        assert_eq!(r.holders.len(), 1);
        let h = &r.holders[0].process;
        assert_eq!((h.pid, h.state), (4242, ProcState::Stopped));
        assert_eq!(h.role.map(|r| r.name()), Some("checkpointer"));
        assert_eq!(h.start_time, BTIME + 100);
        let codes: Vec<Code> = r.findings.iter().map(|f| f.code).collect();
        assert!(codes.contains(&Code::OrphanedHolders), "{codes:?}");
        assert!(codes.contains(&Code::StaleLockFile), "{codes:?}");
        assert!(codes.contains(&Code::LeakedDsm), "{codes:?}");
        // Attributed without attaching: the holder works in this directory.
        assert_eq!(r.segments[0].belongs, Whose::ThisDirectory);
        assert!(r.segments[0].evidence.contains("works in this directory"));
        assert!(
            r.remedy.iter().any(|s| s.contains("kill -CONT 4242")),
            "{:?}",
            r.remedy
        );
        assert!(!r.safe_to_start);
    }

    #[test]
    fn once_the_orphan_is_gone_it_will_start_and_recycle_the_segment() {
        let f = fixture();
        let root = f.opts.root.procfs().root().to_path_buf();
        fs::remove_dir_all(root.join("4242")).unwrap();
        let table = fs::read_to_string(root.join("sysvipc/shm")).unwrap();
        // nattch 1 -> 0
        let table = table.replacen("     1 ", "     0 ", 1);
        fs::write(root.join("sysvipc/shm"), table).unwrap();
        let r = status(&f.data, &f.opts).unwrap();
        assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
        assert!(r.safe_to_start);
        assert_eq!(r.postgres_would_say, None);
        assert!(
            r.probe
                .outcome
                .contains(&format!("finds segment ID {} at key", f.shmid)),
            "{}",
            r.probe.outcome
        );
    }

    #[test]
    fn a_segment_owned_by_another_user_is_foreign() {
        let f = fixture();
        let root = f.opts.root.procfs().root().to_path_buf();
        let uid = fs::metadata(&f.data).unwrap().uid();
        let table = fs::read_to_string(root.join("sysvipc/shm")).unwrap();
        // uid and cuid 100000 (above 16 bits), mode 0600.
        let other = 100_000u32;
        assert_ne!(uid, other);
        let table = table.replace(
            &format!(" {uid:>5} {uid:>5} {uid:>5} {uid:>5} "),
            &format!(" {other:>5} {uid:>5} {other:>5} {uid:>5} "),
        );
        fs::write(root.join("sysvipc/shm"), table).unwrap();
        let r = status(&f.data, &f.opts).unwrap();
        assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
        assert!(r.findings.iter().any(|x| x.code == Code::SegmentForeign));
        assert!(r.findings.iter().any(|x| x.code == Code::KeyCollision));
    }
}
