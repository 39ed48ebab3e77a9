//! interlock-doctor, the operator tooling on the interlock: will PostgreSQL
//! start on a data directory, and if not, why
//! not, who holds it, and what to do.
//!
//! [`status()`] replays the server's own startup checks against what the
//! host shows, in the server's order (facts sheet §0.1, §3.2, §1.5, §1.6):
//! the data directory checks, then `postmaster.pid` read the server's
//! lenient way (PID by `atoi`, `kill(pid, 0)` semantics, line 7's segment),
//! then the key probe from the port (10–12) or the inode (13+). The first
//! check that stops the server gives the verdict and the exact FATAL
//! message; everything else found on the way becomes a finding.
//!
//! # Nothing is attached
//!
//! A diagnosis must not make a starting server fail. PostgreSQL reads a
//! segment's attach count *before* attaching to it, so a tool attached to
//! an old, otherwise unattached segment at that moment turns "stale, recycle
//! it" into "pre-existing shared memory block is still in use". So by
//! default nothing is attached: segments are read from
//! `/proc/sysvipc/shm`, their holders from `/proc/PID/maps` (see `host`),
//! and a segment's header — which says which data directory it belongs to
//! — is read through a holder's `/proc/PID/mem`, which needs ptrace-read
//! rights (root) but does not change the attach count. Without those
//! rights, the segment's creator and its holders' working directories are
//! used as evidence, and what cannot be told is reported as unknown.
//! [`StatusOptions::attach`] allows attaching to segments that already have
//! holders (never to one without: that is the dangerous case) when the
//! header cannot be read otherwise.

#![forbid(unsafe_code)]

pub mod child;
pub mod config;
pub mod control;
mod error;
pub mod explain;
pub mod fence;
pub mod fix;
mod host;
pub mod limits;
pub mod preflight;
mod root;
pub mod scan;
mod startup;
mod status;
pub mod supervisor;
pub mod version;

use std::path::PathBuf;

use serde::Serialize;

pub use interlock::process::user_name;
pub use interlock_format::pgproc::PgRole;
pub use interlock_format::procstat::ProcState;

pub use control::{control, ControlReport};
pub use error::Error;
pub use fix::{carry_out, plan, FixOptions, Outcome, Plan};
pub use preflight::{
    preflight, preflight_fenced, preflight_wait, FenceQuery, Gate, Orphan, Refusal,
};
pub use root::{HostRoot, SharedStorage};
pub use scan::{scan, ScanEtcd, ScanOptions, ScanReport};
pub use status::status;
pub use supervisor::{HowKnown, ManagedBy, Manager};
pub use version::VersionInfo;

/// What to look at, and how.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// The server binary to ask for its version (`--postgres`).
    pub postgres: Option<PathBuf>,
    /// The port the server will be started with (decides the keys of
    /// 10–12); default: the configuration's, else line 4, else 5432.
    pub port: Option<u16>,
    /// Attach to segments that already have holders when their header
    /// cannot be read through a holder's memory (see the module doc).
    pub attach: bool,
    /// Where the host's files are (`/proc`, `/dev/shm`, `/etc`, `/sys`):
    /// `/`, or a fixture tree.
    pub root: HostRoot,
}

/// What the server would do if started now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A live server (or holder) owns the directory.
    Running,
    /// It would start.
    WillStart,
    /// It would stop with a FATAL error.
    Blocked,
    /// It cannot be told (permissions, another namespace, unknown version).
    Unknown,
}

impl Verdict {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Running => "running",
            Verdict::WillStart => "will_start",
            Verdict::Blocked => "blocked",
            Verdict::Unknown => "unknown",
        }
    }
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth fixing; does not stop the server.
    Warning,
    /// Stops the server, or stops us from telling.
    Problem,
    /// Starting the server now would put two servers on one directory.
    Danger,
}

/// The startup step at which the server would stop: which of its checks
/// `postgres_would_say` comes from (facts sheet §0.1's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `checkDataDir`: missing, not a directory, wrong owner or mode,
    /// `PG_VERSION`.
    DataDirectory,
    /// An existing `postmaster.pid`: empty, bogus, or naming a live PID.
    LockFile,
    /// Creating or writing `postmaster.pid` (read-only or full file
    /// system, no write permission).
    LockFileCreate,
    /// `global/pg_control` read at startup.
    ControlFile,
    /// Binding the TCP port.
    Port,
    /// An existing Unix-socket lock file (`.s.PGSQL.PORT.lock`).
    SocketLockFile,
    /// The System V segment: line 7's, or one the key probe finds.
    SharedMemory,
}

impl Stage {
    /// Whether it is the interlock that stops the server there (a lock
    /// file or a segment of an earlier server), which `fix` may clear, as
    /// opposed to the directory, its files or the network.
    pub fn is_interlock(self) -> bool {
        matches!(
            self,
            Stage::LockFile | Stage::SocketLockFile | Stage::SharedMemory
        )
    }
}

/// What a lock file is, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// There is none.
    Absent,
    /// It starts with a PID.
    Present,
    /// It is empty.
    Empty,
    /// It does not start with a PID.
    Bogus,
    /// It could not be read (permission, I/O).
    Unreadable,
    /// It is not a file the server wrote (a FIFO, a link, far too large).
    Unusable,
}

impl LockState {
    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Absent => "absent",
            LockState::Present => "present",
            LockState::Empty => "empty",
            LockState::Bogus => "bogus",
            LockState::Unreadable => "unreadable",
            LockState::Unusable => "unusable",
        }
    }
}

impl std::fmt::Display for LockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a segment is listed in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Listed {
    /// Line 7 of `postmaster.pid` names it.
    #[serde(rename = "line 7")]
    LineSeven,
    /// The server's key probe reaches it.
    #[serde(rename = "probe")]
    Probe,
    /// It is this directory's and processes are attached to it.
    #[serde(rename = "attached")]
    Attached,
}

/// Whose a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Whose {
    /// This data directory's: its header names it, or other evidence does.
    ThisDirectory,
    /// Another directory's, or not PostgreSQL's.
    Foreign,
    /// Cannot be told.
    Unknown,
}

impl Whose {
    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Whose::ThisDirectory => "this_directory",
            Whose::Foreign => "foreign",
            Whose::Unknown => "unknown",
        }
    }
}

/// The state PostgreSQL's analysis of a segment would give it
/// (`IpcMemoryState` in `src/backend/port/sysv_shmem.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryState {
    /// This directory's, with processes attached.
    Attached,
    /// This directory's, nobody attached.
    Unattached,
    /// Not this directory's.
    Foreign,
    /// Cannot be told without attaching.
    Unknown,
}

/// Whether a `/dev/shm/PostgreSQL.*` file is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DsmStatus {
    /// Mapped by this directory's processes.
    InUse,
    /// Nobody maps it.
    Leaked,
    /// Nobody readable maps it, but some of its owner's processes could
    /// not be read.
    Unknown,
}

impl DsmStatus {
    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            DsmStatus::InUse => "in_use",
            DsmStatus::Leaked => "leaked",
            DsmStatus::Unknown => "unknown",
        }
    }
}

/// Serialisers for the types of `interlock_format` that reports show by
/// name.
mod ser {
    use serde::Serializer;

    use super::{PgRole, ProcState};

    pub fn proc_state<S: Serializer>(s: &ProcState, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.name())
    }

    pub fn role<S: Serializer>(r: &Option<PgRole>, ser: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => ser.serialize_some(r.name()),
            None => ser.serialize_none(),
        }
    }
}

/// Stable finding codes (the JSON `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The lock file's owner is alive: a server (or holder) runs.
    PostmasterRunning,
    /// Processes of a server that is gone are still attached.
    OrphanedHolders,
    /// No lock file owner runs, but the process that created this
    /// directory's segment does and is still attached to it: it holds the
    /// directory (`interlock hold --no-lock-file`, or a server whose
    /// `postmaster.pid` was removed). Its processes are not leftovers.
    HeldByCreator,
    /// The lock file's owner is gone; the server removes the file itself.
    StaleLockFile,
    /// The lock file's PID now belongs to another process of the same user.
    PidReused,
    /// The lock file's PID now belongs to another user's process.
    PidOtherUser,
    /// The lock file's owner is a zombie.
    ZombiePostmaster,
    /// The lock file is empty.
    LockFileEmpty,
    /// The lock file cannot be read as one.
    LockFileCorrupt,
    /// A segment of this directory with nobody attached that the server
    /// will not remove.
    LeakedSegment,
    /// `/dev/shm/PostgreSQL.*` files nobody maps.
    LeakedDsm,
    /// The first key the server probes is taken by another segment.
    KeyCollision,
    /// Line 7 names a segment that is not this directory's.
    SegmentForeign,
    /// Something could not be read.
    PermissionDenied,
    /// The data directory fails the server's own checks.
    DataDirInvalid,
    /// A segment of this directory was removed (`ipcrm`) while processes
    /// were still attached: the server can no longer see them.
    SegmentRemoved,
    /// A segment of this directory with holders sits on a key the server
    /// does not probe.
    UnprobedSegment,
    /// Fewer holders are visible than the attach count says.
    HoldersHidden,
    /// A process or segment of another namespace is involved.
    OtherNamespace,
    /// The server version needed for a prediction is unknown.
    VersionUnknown,
    /// A Unix-socket lock file (`.s.PGSQL.PORT.lock`) would stop the server.
    SocketLockFile,
    /// The server cannot create `postmaster.pid`: its file system is
    /// read-only or full, or the directory is not writable by its user.
    LockFileNotCreatable,
    /// A Unix-socket directory the server will use is missing, read-only or
    /// not writable by its user: it cannot create its socket lock file.
    SocketDirectoryUnusable,
    /// Every TCP address the server would listen on is taken by a listening
    /// socket on its port.
    PortInUse,
    /// `global/pg_control` is one the server refuses when it reads it at
    /// startup (a CRC mismatch, another version, a truncated file).
    ControlFileInvalid,
    /// An `interlock hold` whose own process is gone (killed) still holds
    /// the directory through its keeper, for a command that still runs
    /// (`pg_upgrade`, `pg_resetwal`, a file-level backup): a live
    /// maintenance hold, not leftovers of a crash.
    MaintenanceHold,
    /// Processes of another user than the directory's owner are attached
    /// to a segment whose header names this directory: no server of this
    /// directory runs as another user, so they are not its leftovers.
    ForeignHolders,
    /// A file of the directory or its configuration was refused: not a
    /// regular file (a FIFO, a device), a symbolic link in a directory
    /// another user owns, or far larger than PostgreSQL writes it.
    UnsafeFile,
    /// The data directory is on a network or cluster file system (NFS,
    /// CIFS, GFS2, OCFS2, CephFS, GlusterFS…): another host may run a
    /// server on it that the lock file's PID check and the segment check,
    /// which see this host only, cannot see.
    SharedStorage,
    /// `interlock` runs in a PID namespace that is not the host's initial
    /// one (a container): a server in another container, or on the host,
    /// that shares the data directory is invisible to the lock file's PID
    /// check here.
    ContainerNamespace,
    /// Another host (or this host in another boot) holds the data
    /// directory's fence in etcd (`interlock run --etcd`): a server
    /// started here would be the second one.
    FencedElsewhere,
    /// This host holds the data directory's fence in etcd.
    FencedHere,
    /// The fence in etcd could not be read (etcd unreachable, the system
    /// identifier unreadable): whether another host holds the directory
    /// cannot be told.
    FenceUnknown,
}

/// One thing found, with a stable code.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// How much it matters.
    pub severity: Severity,
    /// One sentence, naming files, segments and PIDs.
    pub message: String,
}

/// A process, as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSummary {
    /// PID in our namespace.
    pub pid: i32,
    /// Parent PID.
    pub ppid: i32,
    /// `running`, `sleeping`, `stopped`, `zombie`, `disk sleep`…
    #[serde(serialize_with = "ser::proc_state")]
    pub state: ProcState,
    /// Command line (or name in brackets when it has none).
    pub cmdline: String,
    /// Start time, epoch seconds.
    pub start_time: i64,
    /// PostgreSQL role, e.g. `checkpointer`.
    #[serde(serialize_with = "ser::role")]
    pub role: Option<PgRole>,
    /// Real uid.
    pub uid: u32,
    /// PIDs in nested PID namespaces, ours first (more than one: it runs
    /// in a container's PID namespace).
    pub nspid: Vec<i32>,
}

/// A process attached to a segment of this directory.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    /// The process.
    #[serde(flatten)]
    pub process: ProcessSummary,
    /// The segment it is attached to.
    pub shmid: i32,
    /// How many times.
    pub attaches: u64,
}

/// What the lock file's PID is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// This directory's live owner (a postmaster, standalone backend, or
    /// `interlock hold`).
    Owner,
    /// A zombie.
    Zombie,
    /// Another live process of the same user, not this directory's server:
    /// a reused PID, or another data directory's server (a copy of a running
    /// cluster's directory); `evidence` says which.
    Reused,
    /// A live process of the same user whose tie to a data directory could
    /// not be read (its working directory or maps): it may be the owner.
    Unknown,
    /// A process of another user (the server treats the PID as dead).
    OtherUser,
    /// No such process.
    Gone,
}

/// `postmaster.pid`.
#[derive(Debug, Clone, Serialize)]
pub struct LockFileInfo {
    /// Its path.
    pub path: String,
    /// `absent`, `present`, `empty`, `bogus`, `unreadable`, `unusable`.
    pub state: LockState,
    /// Line 1 as the server reads it (negative: standalone).
    pub pid: Option<i32>,
    /// Line 2: the data directory of the server that wrote it (another
    /// one's in a copied directory).
    pub data_dir: Option<String>,
    /// Line 3, epoch seconds.
    pub start_time: Option<i64>,
    /// Line 4.
    pub port: Option<u16>,
    /// Line 8, trimmed.
    pub status: Option<String>,
    /// Line 7's key as printed there.
    pub shmem_key: Option<u64>,
    /// Line 7's shmid.
    pub shmem_id: Option<u64>,
    /// What the PID is.
    pub identity: Option<Identity>,
    /// Why we think so.
    pub evidence: Option<String>,
    /// The PID is proven to be another data directory's server (this
    /// directory is a copy of a running cluster's): identity `reused`, and
    /// that server is left running.
    pub serves_elsewhere: bool,
    /// The process now at that PID.
    pub process: Option<ProcessSummary>,
    /// Why the file could not be read, or what is wrong with it.
    pub problem: Option<String>,
}

/// `interlock.fence`: the record the last holder of the fence across hosts
/// (`interlock run --etcd`) left in the data directory (`status/fencefile.rs`).
/// Informational: etcd's key decides, never this file.
#[derive(Debug, Clone, Serialize)]
pub struct FenceFileInfo {
    /// Its path.
    pub path: String,
    /// The fencing token: the key's create revision when that holder took it.
    pub token: Option<i64>,
    /// The fence's key.
    pub key: Option<String>,
    /// The holder's host name.
    pub host: Option<String>,
    /// The holder's boot id.
    pub boot_id: Option<String>,
    /// The holder's PID (on its host).
    pub pid: Option<u32>,
    /// When it took the fence (RFC 3339).
    pub since: Option<String>,
    /// Whether the holder was this host, this boot (same host name and
    /// boot id); null when either side is not known.
    pub here: Option<bool>,
    /// With `--etcd`, how the file compares with the key there.
    pub versus_etcd: Option<FenceFileVersus>,
    /// Why it could not be read, or what is wrong with it.
    pub problem: Option<String>,
    /// In one line.
    pub line: String,
}

/// How `interlock.fence` compares with the fence's key in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceFileVersus {
    /// The key is held with the file's token: its holder wrote the file.
    Consistent,
    /// The key is held with a larger token, or not held: the file is an
    /// earlier holder's.
    EarlierHolder,
    /// The key is held with a smaller token than the file's: etcd lost
    /// revisions (restored from a backup, another cluster), or the file was
    /// not written by a holder of this key.
    AheadOfEtcd,
    /// The file names another key (another `--name`).
    OtherKey,
}

/// A Unix-socket lock file (`DIR/.s.PGSQL.PORT.lock`) the server will try
/// to create, found already there. The server judges it as it judges
/// `postmaster.pid` (empty, bogus, or a PID that `kill(pid, 0)` finds),
/// without the segment check.
#[derive(Debug, Clone, Serialize)]
pub struct SocketLockInfo {
    /// Its path, as the server names it.
    pub path: String,
    /// `present`, `empty`, `bogus` or `unreadable`.
    pub state: LockState,
    /// Line 1 as the server reads it.
    pub pid: Option<i32>,
    /// Line 2: the data directory of the server that wrote it.
    pub data_dir: Option<String>,
    /// Whether line 2 names this data directory.
    pub this_directory: bool,
    /// What the PID is, judged against this directory.
    pub identity: Option<Identity>,
    /// The process now at that PID.
    pub process: Option<ProcessSummary>,
    /// Whether it stops the server.
    pub blocks: bool,
    /// If it does, the FATAL primary message.
    pub would_say: Option<String>,
}

/// A System V segment that matters to this directory.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    /// The key as PostgreSQL prints it (`(unsigned long) key_t`).
    pub key: u64,
    /// The key as `ipcs` prints it.
    pub key_hex: String,
    /// The id.
    pub shmid: i32,
    /// Size in bytes.
    pub size: u64,
    /// Attach count.
    pub nattch: u64,
    /// Owner uid.
    pub uid: u32,
    /// Creator PID.
    pub cpid: i32,
    /// Last attach/detach PID.
    pub lpid: i32,
    /// Marked for removal (`ipcrm` while attached: its key reads 0).
    pub removed: bool,
    /// Why it is listed: `line 7`, `probe`, `attached`.
    pub why: Vec<Listed>,
    /// `this_directory`, `foreign` or `unknown`.
    pub belongs: Whose,
    /// The state PostgreSQL's analysis would give it (`IpcMemoryState`):
    /// `attached`, `unattached`, `foreign`, or `unknown` when that cannot
    /// be told without attaching.
    pub state: MemoryState,
    /// The evidence for `belongs`.
    pub evidence: String,
    /// The handle of the DSM control segment its header names, when the
    /// header was read (through a holder's memory).
    pub dsm_control: Option<u32>,
}

/// A `/dev/shm/PostgreSQL.*` file.
#[derive(Debug, Clone, Serialize)]
pub struct DsmInfo {
    /// Its path.
    pub path: String,
    /// Its handle.
    pub handle: u32,
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// A control segment (lists other segments).
    pub control: bool,
    /// Processes mapping it.
    pub mapped_by: Vec<i32>,
    /// `in_use` (mapped by this directory's processes), `leaked`, or
    /// `unknown` (nobody readable maps it, but some of its owner's
    /// processes could not be read).
    pub status: DsmStatus,
}

/// The key probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeInfo {
    /// `port` or `inode`.
    pub seed: Option<version::KeySeed>,
    /// Where the seed came from (`port 5432 from postgresql.conf`…).
    pub seed_from: String,
    /// The first key, as PostgreSQL prints it.
    pub first_key: Option<u64>,
    /// What the probe ends with, in words.
    pub outcome: String,
    /// The key the server will create its segment at (as PostgreSQL prints
    /// it on line 7), when that is certain.
    pub creates_at: Option<u64>,
}

/// The whole answer for one data directory.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The data directory, absolute.
    pub data_dir: String,
    /// What the server would do.
    pub verdict: Verdict,
    /// The FATAL primary message it would log, without `FATAL:  `.
    pub postgres_would_say: Option<String>,
    /// The startup step that message comes from, when it would stop (or
    /// when a live server's lock file would stop a second one).
    pub stops_at: Option<Stage>,
    /// Whether starting a server now is safe: it would start, and no
    /// process of an earlier one is attached anywhere.
    pub safe_to_start: bool,
    /// Versions.
    pub version: VersionInfo,
    /// The lock file.
    pub lock_file: LockFileInfo,
    /// Unix-socket lock files found where the server will create its own.
    pub socket_locks: Vec<SocketLockInfo>,
    /// Segments that matter.
    pub segments: Vec<SegmentInfo>,
    /// The key probe.
    pub probe: ProbeInfo,
    /// Processes attached to this directory's segments.
    pub holders: Vec<Holder>,
    /// DSM files of this directory, or leaked by a server of its owner.
    pub dsm: Vec<DsmInfo>,
    /// `global/pg_control`, in one line.
    pub control: ControlLine,
    /// Who starts and stops the server (a systemd unit, Patroni,
    /// Pacemaker, CloudNativePG, repmgr), how sure, and why
    /// (`supervisor`).
    pub managed_by: ManagedBy,
    /// What was found.
    pub findings: Vec<Finding>,
    /// What to do, safest first.
    pub remedy: Vec<String>,
    /// `interlock.fence`, the last fence holder's record in the directory;
    /// null when there is none.
    pub fence_file: Option<FenceFileInfo>,
    /// The fence across hosts in etcd, when asked for (`--etcd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence: Option<fence::FenceInfo>,
}

/// `global/pg_control` as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ControlLine {
    /// The line: state, checkpoint, what the next start does; or why the
    /// file cannot be read.
    pub line: String,
    /// `Database cluster state`, when read.
    pub state: Option<&'static str>,
    /// Whether the CRC matches, when read.
    pub crc_ok: Option<bool>,
    /// Whether the next start runs crash recovery, when known.
    pub crash_recovery_on_start: Option<bool>,
}

/// A key as PostgreSQL prints it: `(unsigned long) key_t`, so a negative
/// key shows as a 20-digit number.
pub(crate) fn key_u64(key: i32) -> u64 {
    key as i64 as u64
}

/// A key as `ipcs` prints it.
pub(crate) fn key_hex(key: i32) -> String {
    format!("{:#010x}", key as u32)
}

/// Whether `path` is a data directory as `limits DATADIR` and `scan DIR…`
/// take one: a directory (else the error `status` gives) holding a
/// `PG_VERSION` entry, as PostgreSQL's `ValidatePgVersion`
/// (src/backend/utils/init/miscinit.c) first asks of a data directory.
/// Only the entry's existence is looked at: an unreadable `PG_VERSION`
/// still counts (the caller says what it could not read).
pub fn require_data_dir(path: &std::path::Path) -> Result<(), crate::Error> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(crate::Error::data_dir_missing(path))
        }
        Err(e) => {
            return Err(crate::Error::sys(
                format!("stat(\"{}\")", path.display()),
                e,
            ))
        }
    };
    if !meta.is_dir() {
        return Err(crate::Error::not_a_directory(path));
    }
    match std::fs::symlink_metadata(path.join("PG_VERSION")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(crate::Error::DataDirUnusable {
            path: path.to_path_buf(),
            reason: "has no PG_VERSION: it is not a PostgreSQL data directory".into(),
            hint: "give the data directory, the one that holds PG_VERSION (initdb makes it)".into(),
            postgres_would_say: None,
        }),
        _ => Ok(()),
    }
}

/// A size for people, the one way every report writes one: GiB from
/// 1 GiB when a whole number of MiB, else MiB from 1 MiB, KiB from 1 KiB,
/// else bytes. (A size that is a limit: [`limits::human_limit`].)
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes % (1 << 20) == 0 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for epoch seconds.
pub fn format_utc(epoch: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil_utc(epoch);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339) for epoch seconds.
pub fn format_rfc3339_utc(epoch: i64) -> String {
    interlock_format::utc::rfc3339(epoch)
}

/// Year, month, day, hour, minute, second (UTC) of epoch seconds.
fn civil_utc(epoch: i64) -> (i64, i64, i64, i64, i64, i64) {
    interlock_format::utc::civil(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interlock_stages_are_for_fix() {
        let all = [
            Stage::DataDirectory,
            Stage::LockFile,
            Stage::LockFileCreate,
            Stage::ControlFile,
            Stage::Port,
            Stage::SocketLockFile,
            Stage::SharedMemory,
        ];
        let interlock: Vec<Stage> = all.into_iter().filter(|s| s.is_interlock()).collect();
        assert_eq!(
            interlock,
            [Stage::LockFile, Stage::SocketLockFile, Stage::SharedMemory]
        );
    }

    #[test]
    fn report_words_stay_as_they_were() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        assert_eq!(
            json(serde_json::to_value(Whose::ThisDirectory).unwrap()),
            "this_directory"
        );
        assert_eq!(
            json(serde_json::to_value(Listed::LineSeven).unwrap()),
            "line 7"
        );
        assert_eq!(
            json(serde_json::to_value(DsmStatus::InUse).unwrap()),
            "in_use"
        );
        assert_eq!(
            json(serde_json::to_value(LockState::Unusable).unwrap()),
            "unusable"
        );
        assert_eq!(
            json(serde_json::to_value(MemoryState::Unattached).unwrap()),
            "unattached"
        );
        assert_eq!(
            json(serde_json::to_value(Stage::LockFileCreate).unwrap()),
            "lock_file_create"
        );
        for l in [
            LockState::Absent,
            LockState::Present,
            LockState::Empty,
            LockState::Bogus,
        ] {
            assert_eq!(json(serde_json::to_value(l).unwrap()), l.as_str());
        }
        for w in [Whose::ThisDirectory, Whose::Foreign, Whose::Unknown] {
            assert_eq!(json(serde_json::to_value(w).unwrap()), w.as_str());
        }
        for d in [DsmStatus::InUse, DsmStatus::Leaked, DsmStatus::Unknown] {
            assert_eq!(json(serde_json::to_value(d).unwrap()), d.as_str());
        }
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(8193), "8.0 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes((1 << 30) + 1), "1024.0 MiB");
        assert_eq!(limits::human_limit(u64::MAX), "no limit");
        assert_eq!(limits::human_limit(2 << 20), "2.0 MiB");
    }
}
