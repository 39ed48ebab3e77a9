//! `fix`: make the old holders of a data directory go away, and only them,
//! then remove what PostgreSQL's own startup will not.
//!
//! The remedies operators reach for (`ipcrm -m`, deleting `postmaster.pid`,
//! shifting the key) remove the interlock while old processes may still
//! write to the data files. A fix instead:
//!
//! 1. stops every process [`status()`](super::status()) proved attached to one
//!    of this directory's segments (SIGCONT if stopped, then the signal
//!    that fits its role, then SIGKILL after a grace period), each through
//!    a pidfd opened *before* its identity (PID, start time in clock
//!    ticks, owner, attachment) is checked again, so that a process that
//!    merely reuses a PID is never signalled;
//! 2. removes a lock file the server would refuse to start over (empty,
//!    bogus, or naming a zombie or an unrelated live process), and the
//!    Unix-socket lock files of this directory's last server that name such
//!    a PID, only once nothing is attached and only if each is still the
//!    very file planned (same inode, same bytes);
//! 3. removes this directory's segments that nobody is attached to and
//!    the server will not reach (a shifted key), after reading their
//!    header, and the DSM files they list; never an attached one;
//! 4. removes the DSM control segment (`/dev/shm/PostgreSQL.*`) a removed
//!    segment of this directory names, with the segments it lists: nothing
//!    else ever will. Other leaked DSM files are not proven this
//!    directory's and are left alone;
//! 5. runs `status` again and reports its verdict.
//!
//! What the server cleans up by itself (a stale lock file whose PID is
//! gone, the old segment its key probe recycles) is left to it.
//!
//! A plan is refused, and nothing is done, when a holder cannot be made to
//! exit (uninterruptible sleep, another user, another PID namespace), when
//! holders are hidden from us, when the server may be starting, or when
//! the server stops for a reason that is not the interlock's.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{pidfd_open, pidfd_send_signal, PidfdFlags, Signal};
use serde::Serialize;

use super::{
    status, Code, DsmStatus, Holder, Identity, Listed, LockState, PgRole, ProcState, StatusOptions,
    StatusReport, Verdict, Whose,
};
use interlock_format::dsm::dsm_file_name;

use crate::host::Host;
use crate::supervisor;
use crate::Error;
use interlock::process::{printable, ProcFs};
use interlock::segment::{self, SegmentState};
use interlock::sys::shm::{self, ShmId};

/// How a fix is carried out.
#[derive(Debug, Clone)]
pub struct FixOptions {
    /// How the directory is diagnosed (before and after).
    pub status: StatusOptions,
    /// How long a process gets after its shutdown signal before SIGKILL.
    pub grace: Duration,
    /// How long a process gets after SIGKILL before the fix gives up.
    pub kill_wait: Duration,
    /// Read the fence across hosts too (`fix --etcd`): etcd's endpoints
    /// and the key's name (`None`: the data directory's absolute path).
    pub fence: Option<(String, Option<String>)>,
}

impl Default for FixOptions {
    fn default() -> Self {
        FixOptions {
            status: StatusOptions::default(),
            grace: Duration::from_secs(10),
            kill_wait: Duration::from_secs(5),
            fence: None,
        }
    }
}

/// A signal `fix` sends. These five and no other: a name that is not one
/// of them cannot be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopSignal {
    /// Continue a stopped process, so that it acts on the next signal.
    #[serde(rename = "SIGCONT")]
    Cont,
    /// A postmaster's fast shutdown.
    #[serde(rename = "SIGINT")]
    Int,
    /// What a postmaster sends its children after a crash: exit at once.
    #[serde(rename = "SIGQUIT")]
    Quit,
    /// The usual request to exit.
    #[serde(rename = "SIGTERM")]
    Term,
    /// The last resort, after the grace period.
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl StopSignal {
    /// Its name, `SIGINT`…
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Cont => "SIGCONT",
            StopSignal::Int => "SIGINT",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
        }
    }

    fn signal(self) -> Signal {
        match self {
            StopSignal::Cont => Signal::CONT,
            StopSignal::Int => Signal::INT,
            StopSignal::Quit => Signal::QUIT,
            StopSignal::Term => Signal::TERM,
            StopSignal::Kill => Signal::KILL,
        }
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a process to stop is: it decides the shutdown signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    /// A postmaster (or standalone backend): SIGINT, a fast shutdown that
    /// stops its children too.
    Postmaster,
    /// Another PostgreSQL process (a backend, an auxiliary process):
    /// SIGQUIT, as its postmaster would after a crash.
    Postgres,
    /// Not PostgreSQL's (an `interlock hold`, a tool attached to the
    /// segment): SIGTERM.
    Other,
}

impl StopKind {
    /// The kind of a process with PostgreSQL role `role`.
    pub fn of(role: Option<PgRole>) -> StopKind {
        match role {
            Some(PgRole::Postmaster) => StopKind::Postmaster,
            Some(_) => StopKind::Postgres,
            None => StopKind::Other,
        }
    }

    /// The signal that asks it to exit, and why that one.
    pub fn shutdown(self) -> (StopSignal, &'static str) {
        match self {
            StopKind::Postmaster => (
                StopSignal::Int,
                "SIGINT: a postmaster's fast shutdown, which stops its children too",
            ),
            StopKind::Postgres => (
                StopSignal::Quit,
                "SIGQUIT: what a postmaster sends its children after a crash; they exit at once without writing to the data files",
            ),
            StopKind::Other => (StopSignal::Term, "SIGTERM: the usual request to exit"),
        }
    }
}

/// A process the plan stops.
#[derive(Debug, Clone, Serialize)]
pub struct StopProcess {
    /// PID.
    pub pid: i32,
    /// Start time, epoch seconds (for people).
    pub start_time: i64,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22):
    /// with the PID, the identity re-checked before every signal.
    pub start_ticks: u64,
    /// Real uid.
    pub uid: u32,
    /// Command line.
    pub cmdline: String,
    /// PostgreSQL role, if any.
    #[serde(serialize_with = "super::ser::role")]
    pub role: Option<PgRole>,
    /// What it is, which decides its shutdown signal.
    pub kind: StopKind,
    /// State when planned (`stopped`, `sleeping`…): a stopped one is
    /// continued first.
    #[serde(serialize_with = "super::ser::proc_state")]
    pub state: ProcState,
    /// The segment of this directory it is attached to.
    pub shmid: i32,
    /// Why it holds this directory.
    pub evidence: String,
    /// The signals it gets, in order (`SIGCONT`, `SIGQUIT`, `SIGKILL`).
    pub signals: Vec<StopSignal>,
    /// The one that asks it to exit (SIGINT, SIGQUIT or SIGTERM).
    pub shutdown: StopSignal,
    /// Why that shutdown signal.
    pub why_signal: &'static str,
}

/// A file or segment the plan removes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Removal {
    /// `postmaster.pid`.
    LockFile {
        /// Its path.
        path: String,
        /// Its inode: the file removed must be this one.
        inode: u64,
        /// Its bytes, printable: kept in the report, and the file removed
        /// must still hold exactly these.
        content: String,
        /// Why it is stale.
        reason: String,
    },
    /// A System V segment of this directory.
    Segment {
        /// Its id.
        shmid: i32,
        /// Its key, as `ipcs` prints it.
        key_hex: String,
        /// Why.
        reason: String,
    },
    /// A DSM control segment (`/dev/shm/PostgreSQL.*`) of this directory,
    /// with the segments it lists.
    DsmFile {
        /// Its path.
        path: String,
        /// Its handle.
        handle: u32,
        /// Why.
        reason: String,
    },
}

impl Removal {
    /// What it removes, in a few words.
    pub fn target(&self) -> String {
        match self {
            Removal::LockFile { path, .. } | Removal::DsmFile { path, .. } => path.clone(),
            Removal::Segment { shmid, key_hex, .. } => {
                format!("segment ID {shmid} (key {key_hex})")
            }
        }
    }

    /// Why.
    pub fn reason(&self) -> &str {
        match self {
            Removal::LockFile { reason, .. }
            | Removal::Segment { reason, .. }
            | Removal::DsmFile { reason, .. } => reason,
        }
    }
}

/// Why a plan cannot fix the directory (stable codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The diagnosis itself is unknown.
    Unknown,
    /// The server stops for a reason that is not the interlock's.
    NotInterlock,
    /// A holder is in uninterruptible sleep.
    Uninterruptible,
    /// A holder belongs to another user than the directory's owner.
    OtherUser,
    /// A holder lives in another PID namespace (a container).
    OtherNamespace,
    /// Some holders cannot be seen.
    HoldersHidden,
    /// Processes work in the directory while the lock file is empty or
    /// bogus: a server may be starting.
    ServerStarting,
    /// We may not signal the holders.
    NotPermitted,
    /// A socket lock file on the server's port that is not proven stale
    /// and this directory's (another server on the port, or empty/bogus).
    SocketInUse,
    /// The creator of this directory's segment still runs and holds it
    /// (`interlock hold --no-lock-file`, or a server whose lock file was
    /// removed): not a crash's leftovers.
    HeldByCreator,
    /// An `interlock hold` whose own process is gone still holds the
    /// directory through its keeper, for a command that still runs.
    MaintenanceHold,
    /// A live postmaster, or a process that is not PostgreSQL's, that a
    /// manager runs (a systemd unit, Patroni, Pacemaker, CloudNativePG):
    /// stopping it behind the manager's back makes the manager fight it.
    ManagedServer,
    /// The lock file is on a network or cluster file system and is not
    /// proven this host's: it may be a live server's on another host.
    OtherHost,
    /// Another host holds the data directory's fence in etcd (`fix
    /// --etcd`): its server may be running on this directory.
    FencedElsewhere,
}

/// One reason the plan is refused.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Stable code.
    pub code: RefusalCode,
    /// The process concerned, if any.
    pub pid: Option<i32>,
    /// What and why, and what to do instead.
    pub message: String,
}

/// What `fix` would do. Making a plan changes nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The data directory.
    pub data_dir: String,
    /// The diagnosis the plan is made from.
    pub before: StatusReport,
    /// Processes to stop, in order.
    pub stop: Vec<StopProcess>,
    /// Files and segments to remove once they are stopped.
    pub remove: Vec<Removal>,
    /// What the server cleans up itself when it starts.
    pub left_to_server: Vec<String>,
    /// What was found but is not touched, and why.
    pub left_alone: Vec<String>,
    /// Why the plan cannot be carried out; if any, nothing is done.
    pub refused: Vec<Refusal>,
    /// Who manages the cluster (the diagnosis's `managed_by`): fix never
    /// starts a server, and stops no live postmaster or hold a manager
    /// runs; the leftovers of a dead server are no manager's.
    pub managed_by: super::ManagedBy,
}

impl Plan {
    /// Whether carrying it out would change anything.
    pub fn has_work(&self) -> bool {
        self.refused.is_empty() && (!self.stop.is_empty() || !self.remove.is_empty())
    }
}

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// Done.
    Done,
    /// Not needed any more, or not done because a re-check said no (the
    /// detail says which).
    Skipped,
    /// Tried and failed.
    Failed,
}

/// One step carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What (`stop PID 123`, `remove …`).
    pub what: String,
    /// How it went.
    pub result: StepResult,
    /// The signals sent, what was found, or the error.
    pub detail: String,
}

/// What carrying out a plan did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Each step.
    pub steps: Vec<Step>,
    /// The diagnosis afterwards.
    pub after: StatusReport,
    /// Whether the server can now be started safely.
    pub ready: bool,
}

/// Make the plan for `data_dir`. Changes nothing; errors as `status` does.
/// The diagnosis `fix` acts on: `status`, and with `opts.fence` the fence
/// across hosts read into it (the same rule as `status --etcd`,
/// [`crate::fence::check_fence`]).
fn diagnose(data_dir: &Path, opts: &FixOptions) -> Result<StatusReport, Error> {
    let mut r = status(data_dir, &opts.status)?;
    if let Some((endpoints, name)) = &opts.fence {
        crate::fence::check_fence(&mut r, data_dir, endpoints, name.as_deref());
    }
    Ok(r)
}

pub fn plan(data_dir: &Path, opts: &FixOptions) -> Result<Plan, Error> {
    let before = diagnose(data_dir, opts)?;
    let owner = fs::metadata(data_dir)
        .map(|m| m.uid())
        .map_err(|e| Error::sys(format!("stat(\"{}\")", data_dir.display()), e))?;
    let procfs = opts.status.root.procfs();
    let mut p = Plan {
        data_dir: before.data_dir.clone(),
        stop: Vec::new(),
        remove: Vec::new(),
        left_to_server: Vec::new(),
        left_alone: Vec::new(),
        refused: Vec::new(),
        managed_by: before.managed_by.clone(),
        before,
    };
    let r = &p.before;
    let has = |c: Code| r.findings.iter().any(|f| f.code == c);
    let mut refuse = |code, pid, message: String| p.refused.push(Refusal { code, pid, message });

    // Another host's server may run on the directory: nothing here is
    // proven leftovers of a crash that nobody else needs, and the lock
    // file may be that server's.
    if let Some(f) = r.findings.iter().find(|f| f.code == Code::FencedElsewhere) {
        refuse(
            RefusalCode::FencedElsewhere,
            None,
            format!(
                "{}; fix changes nothing on a directory another host holds: stop the server there (its `interlock run` releases the key), or wait for the lease to lapse if that host is down",
                f.message
            ),
        );
        return Ok(p);
    }
    match r.verdict {
        // A running server, or a hold: nothing to fix, and fix never stops them.
        Verdict::Running => return Ok(p),
        Verdict::Unknown => refuse(
            RefusalCode::Unknown,
            None,
            format!(
                "what PostgreSQL would do cannot be told, so nothing can be proven safe: {}",
                problems(r)
            ),
        ),
        Verdict::Blocked => {
            let msg = r.postgres_would_say.as_deref().unwrap_or("");
            if !r.stops_at.is_some_and(super::Stage::is_interlock) {
                refuse(
                    RefusalCode::NotInterlock,
                    None,
                    format!("PostgreSQL stops for a reason fix does not touch: {msg}"),
                );
            }
        }
        Verdict::WillStart => {}
    }
    if let Some(f) = r.findings.iter().find(|f| f.code == Code::HeldByCreator) {
        refuse(
            RefusalCode::HeldByCreator,
            None,
            format!(
                "{}; fix stops leftovers of a crash, not the process that holds the directory: wait for it, or stop it the way it was started",
                f.message
            ),
        );
    }
    if let Some(f) = r.findings.iter().find(|f| f.code == Code::MaintenanceHold) {
        refuse(
            RefusalCode::MaintenanceHold,
            None,
            format!(
                "{}; fix stops leftovers of a crash, never a maintenance command and the keeper that holds the directory for it: wait for the command to finish",
                f.message
            ),
        );
    }
    if has(Code::HoldersHidden) {
        refuse(
            RefusalCode::HoldersHidden,
            None,
            "some processes attached to this directory's segment cannot be seen here (another PID namespace, or run as root): they cannot be proven gone".into(),
        );
    }
    if has(Code::PermissionDenied) && r.verdict != Verdict::Unknown {
        refuse(RefusalCode::Unknown, None, problems(r));
    }
    if matches!(r.lock_file.state, LockState::Empty | LockState::Bogus)
        && r.findings.iter().any(|f| f.code == Code::PostmasterRunning)
    {
        refuse(
            RefusalCode::ServerStarting,
            None,
            format!(
                "{} is {} while processes work in the directory: a server may be starting; run this again in a few seconds",
                r.lock_file.path, r.lock_file.state
            ),
        );
    }

    // --- the processes to stop ------------------------------------------
    let my_uid = rustix::process::geteuid().as_raw();
    let my_pid_ns = procfs.namespace(std::process::id() as i32, "pid").ok();
    let mut seen: Vec<i32> = Vec::new();
    let mut host: Option<Host> = None;
    // A directory held by its segment's live creator, or by a maintenance
    // hold, has no leftovers.
    let held = has(Code::HeldByCreator) || has(Code::MaintenanceHold);
    for h in r.holders.iter().filter(|_| !held) {
        let pid = h.process.pid;
        if seen.contains(&pid) {
            continue;
        }
        seen.push(pid);
        let what = format!("PID {pid} ({})", h.process.cmdline);
        if h.process.state.is_gone() {
            continue;
        }
        if h.process.state == ProcState::DiskSleep {
            refuse(
                RefusalCode::Uninterruptible,
                Some(pid),
                format!("{what} is in uninterruptible sleep (state D): no signal takes effect until its I/O completes; look for a hung NFS mount or failing disk (dmesg), and run this again once it has left that state"),
            );
            continue;
        }
        if h.process.uid != owner {
            refuse(
                RefusalCode::OtherUser,
                Some(pid),
                format!(
                    "{what} runs as {}, not as {}, the directory's owner: it is not a server of this directory; find out what it is before stopping it",
                    opts.status.root.user_name(h.process.uid),
                    opts.status.root.user_name(owner)
                ),
            );
            continue;
        }
        let their_ns = procfs.namespace(pid, "pid").ok();
        if h.process.nspid.len() > 1 || (my_pid_ns.is_some() && their_ns != my_pid_ns) {
            refuse(
                RefusalCode::OtherNamespace,
                Some(pid),
                format!("{what} lives in another PID namespace (a container): stop it from there (docker stop, kubectl delete pod), not from the host"),
            );
            continue;
        }
        if my_uid != 0 && my_uid != h.process.uid {
            refuse(
                RefusalCode::NotPermitted,
                Some(pid),
                format!(
                    "{what} may only be signalled by root or {}: run this as one of them",
                    opts.status.root.user_name(h.process.uid)
                ),
            );
            continue;
        }
        // A live postmaster, or a process that is not PostgreSQL's (a
        // hold), run by a manager is the manager's to stop; a backend
        // whose postmaster is gone is a leftover, whoever adopted it.
        if StopKind::of(h.process.role) != StopKind::Postgres {
            let host = host.get_or_insert_with(|| Host::read(&opts.status.root));
            if let Ok(m) = supervisor::of_process(host, pid) {
                let how = m
                    .manager
                    .restart_step()
                    .unwrap_or_else(|| "stop it through its manager".into());
                refuse(
                    RefusalCode::ManagedServer,
                    Some(pid),
                    format!(
                        "{what} is run by {} ({}): fix does not stop what a manager runs; {how}",
                        m.manager.describe(),
                        m.evidence
                    ),
                );
                continue;
            }
        }
        let Ok(stat) = procfs.stat(pid) else {
            continue; // gone since the diagnosis
        };
        if let Some(stop) = stop_of(h, r, stat.start_time_ticks) {
            p.stop.push(stop);
        }
    }
    // A postmaster first: its fast shutdown stops its children too.
    p.stop
        .sort_by_key(|s| (s.kind != StopKind::Postmaster, s.pid));

    // --- the lock file -----------------------------------------------------
    let lock = &r.lock_file;
    let stale_because = match (lock.state, lock.identity) {
        (LockState::Empty, _) => Some("it is empty: PostgreSQL never removes it by itself"),
        (LockState::Bogus, _) => Some("it does not start with a PID: PostgreSQL never removes it by itself"),
        (LockState::Present, Some(Identity::Zombie)) => Some("its PID is a zombie, which holds nothing, yet the server's kill(pid, 0) sees it alive"),
        (LockState::Present, Some(Identity::Reused)) => Some("its PID now belongs to another process, not to a server of this directory, yet the server's kill(pid, 0) sees it alive"),
        _ => None,
    };
    // On shared storage a lock file not proven this host's server's may be
    // a live server's on another host, and in a container another
    // container's (status/storage.rs): never removed.
    let other_host = r
        .findings
        .iter()
        .find(|f| matches!(f.code, Code::SharedStorage | Code::ContainerNamespace))
        .filter(|_| {
            !matches!(lock.state, LockState::Absent) && lock.identity != Some(Identity::Owner)
        });
    if let Some(f) = other_host {
        refuse(
            RefusalCode::OtherHost,
            lock.pid.map(i32::abs),
            format!(
                "{}; fix never removes {} there: check the other hosts or containers that share it, and fence the directory across them with `interlock run --etcd ENDPOINTS`",
                f.message, lock.path
            ),
        );
    }
    match stale_because.filter(|_| other_host.is_none()) {
        Some(why) => {
            let path = PathBuf::from(&lock.path);
            match read_exact_file(&path) {
                Ok((inode, bytes)) => p.remove.push(Removal::LockFile {
                    path: lock.path.clone(),
                    inode,
                    content: printable(&bytes),
                    reason: format!(
                        "{why}{}",
                        if p.stop.is_empty() {
                            ""
                        } else {
                            "; removed only once the processes above are gone"
                        }
                    ),
                }),
                Err(e) => refuse(
                    RefusalCode::Unknown,
                    None,
                    format!("{} cannot be read: {e}", lock.path),
                ),
            }
        }
        None if other_host.is_none()
            && matches!(lock.identity, Some(Identity::Gone | Identity::OtherUser)) =>
        {
            p.left_to_server.push(format!(
                "{}: its PID {} is {}; the server removes the file itself",
                lock.path,
                lock.pid.unwrap_or(0).abs(),
                if lock.identity == Some(Identity::Gone) {
                    "gone"
                } else {
                    "another user's process, which the server takes for dead"
                }
            ));
        }
        None => {}
    }

    // --- Unix-socket lock files -------------------------------------------
    for sl in r.socket_locks.iter().filter(|s| s.blocks) {
        let postmaster = sl
            .process
            .as_ref()
            .is_some_and(|p| p.role == Some(PgRole::Postmaster));
        let same_pid = sl.pid.is_some() && sl.pid == lock.pid;
        let stale = match sl.identity {
            Some(Identity::Zombie) if sl.this_directory || same_pid => {
                Some("its PID is a zombie, which holds nothing, yet the server's kill(pid, 0) sees it alive")
            }
            Some(Identity::Reused) if !postmaster && (sl.this_directory || same_pid) => {
                Some("its PID now belongs to another process, not a server, yet the server's kill(pid, 0) sees it alive")
            }
            _ => None,
        };
        match (stale, read_exact_file(Path::new(&sl.path))) {
            (Some(why), Ok((inode, bytes))) => p.remove.push(Removal::LockFile {
                path: sl.path.clone(),
                inode,
                content: printable(&bytes),
                reason: format!("a socket lock file this directory's last server wrote; {why}"),
            }),
            (Some(_), Err(e)) => refuse(
                RefusalCode::Unknown,
                None,
                format!("{} cannot be read: {e}", sl.path),
            ),
            (None, _) if sl.identity == Some(Identity::Owner) => {}
            (None, _) => refuse(
                RefusalCode::SocketInUse,
                sl.pid,
                format!(
                    "{} would stop the server{}: it is not proven this directory's, so it is not removed; start the server on another port, or remove the file once you know what it is",
                    sl.path,
                    match (&sl.process, sl.data_dir.as_deref()) {
                        (Some(p), Some(d)) if postmaster => format!(
                            " (PID {} is the postmaster of {d}, which uses this port)",
                            p.pid
                        ),
                        (Some(p), _) => format!(" (PID {} is {})", p.pid, p.cmdline),
                        _ => format!(" (it is {})", sl.state),
                    }
                ),
            ),
        }
    }

    // --- segments ------------------------------------------------------------
    for s in r
        .segments
        .iter()
        .filter(|s| s.belongs == Whose::ThisDirectory)
    {
        if s.removed {
            p.left_to_server.push(format!(
                "segment ID {}: already removed (ipcrm); the kernel frees it when its last holder exits",
                s.shmid
            ));
        } else if s.why.contains(&Listed::Probe) {
            p.left_to_server.push(format!(
                "segment ID {} (key {}): the server finds it when it starts and removes it once nobody is attached, with the DSM files it lists",
                s.shmid, s.key_hex
            ));
        } else {
            p.remove.push(Removal::Segment {
                shmid: s.shmid,
                key_hex: s.key_hex.clone(),
                reason: format!(
                    "this directory's ({}), on a key the server does not reach, so it would never be removed{}",
                    s.evidence,
                    if s.nattch > 0 {
                        "; removed only once the processes above are gone and nothing is attached"
                    } else {
                        ""
                    }
                ),
            });
        }
    }

    // --- DSM files: only this directory's, as its segments' headers name
    // them (a control segment, and with it the segments it lists) ----------
    let dev_shm = &opts.status.root.dev_shm();
    let mut ours: Vec<String> = Vec::new();
    for s in r
        .segments
        .iter()
        .filter(|s| s.belongs == Whose::ThisDirectory)
    {
        let Some(h) = s.dsm_control else { continue };
        let path = dev_shm.join(dsm_file_name(h));
        if !path.exists() {
            continue;
        }
        let shown = path.display().to_string();
        ours.push(shown.clone());
        if s.removed {
            p.remove.push(Removal::DsmFile {
                path: shown,
                handle: h,
                reason: format!(
                    "the DSM control segment named by segment ID {}, which was removed (ipcrm): nothing else will ever remove it, or the segments it lists; removed with them once nothing maps them",
                    s.shmid
                ),
            });
        } else if s.why.contains(&Listed::Probe) {
            p.left_to_server.push(format!(
                "{shown} and the DSM segments it lists: the server removes them when it recycles segment ID {}",
                s.shmid
            ));
        }
        // Otherwise the segment is removed above, with its DSM files.
    }
    let others: Vec<&str> = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked && !ours.contains(&d.path))
        .map(|d| d.path.as_str())
        .collect();
    if !others.is_empty() {
        p.left_alone.push(format!(
            "{}: leaked DSM files of {}, but not proven this directory's (no segment of it names them); `interlock scan` lists what they may belong to",
            others.join(" "),
            opts.status.root.user_name(owner)
        ));
    }
    Ok(p)
}

/// The problems a report found, in one line.
fn problems(r: &StatusReport) -> String {
    let v: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.severity >= super::Severity::Problem)
        .map(|f| f.message.as_str())
        .collect();
    if v.is_empty() {
        "see `interlock status`".into()
    } else {
        v.join("; ")
    }
}

/// The stop step for holder `h`.
fn stop_of(h: &Holder, r: &StatusReport, start_ticks: u64) -> Option<StopProcess> {
    let seg = r.segments.iter().find(|s| s.shmid == h.shmid)?;
    let kind = StopKind::of(h.process.role);
    let (shutdown, why_signal) = kind.shutdown();
    let mut signals = Vec::new();
    if h.process.state.is_stopped() {
        signals.push(StopSignal::Cont);
    }
    signals.push(shutdown);
    signals.push(StopSignal::Kill);
    Some(StopProcess {
        pid: h.process.pid,
        start_time: h.process.start_time,
        start_ticks,
        uid: h.process.uid,
        cmdline: h.process.cmdline.clone(),
        role: h.process.role,
        kind,
        state: h.process.state,
        shmid: h.shmid,
        evidence: format!(
            "attached to segment ID {} of this directory ({})",
            h.shmid, seg.evidence
        ),
        signals,
        shutdown,
        why_signal,
    })
}

/// The inode and first bytes of a lock file. Opened through
/// [`interlock::safe_fs`] (its directory trusted as named): a FIFO or a link
/// swapped in is refused at once instead of blocking the open.
fn read_exact_file(path: &Path) -> io::Result<(u64, Vec<u8>)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path.file_name().map_or(path, Path::new);
    let mut o = interlock::safe_fs::open_regular(Some(dir.unwrap_or(Path::new("."))), name)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut bytes = Vec::new();
    (&mut o.file)
        .take(interlock_format::pidfile::MAX_PIDFILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok((o.ino, bytes))
}

/// A planned process, pinned by a pidfd after its identity was re-checked.
struct Pinned<'a> {
    stop: &'a StopProcess,
    fd: OwnedFd,
    sent: Vec<StopSignal>,
}

/// Open a pidfd for `s`, then check through `/proc` that the process it
/// refers to is still the one planned: same start ticks, same owner, still
/// attached to the segment. The pidfd is opened first, so a process found
/// matching is the one the pidfd signals, whatever happens to the PID later.
fn pin<'a>(procfs: &ProcFs, s: &'a StopProcess) -> Result<Pinned<'a>, (StepResult, String)> {
    let pid = rustix::process::Pid::from_raw(s.pid)
        .ok_or((StepResult::Failed, "not a valid PID".to_string()))?;
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => {
            return Err((StepResult::Skipped, "already gone".into()));
        }
        Err(e) => return Err((StepResult::Failed, format!("pidfd_open: {e}"))),
    };
    let stat = match procfs.stat(s.pid) {
        Ok(st) => st,
        Err(_) => return Err((StepResult::Skipped, "already gone".into())),
    };
    if stat.start_time_ticks != s.start_ticks {
        return Err((
            StepResult::Skipped,
            format!(
                "PID {} is now another process ({}, started {} ticks after boot, not {}): not signalled",
                s.pid,
                printable(&stat.comm),
                stat.start_time_ticks,
                s.start_ticks
            ),
        ));
    }
    if stat.is_zombie() {
        return Err((
            StepResult::Skipped,
            "already exited (a zombie holds nothing)".into(),
        ));
    }
    match procfs.owner_uid(s.pid) {
        Ok(uid) if uid == s.uid => {}
        Ok(uid) => {
            return Err((
                StepResult::Skipped,
                format!("now runs as uid {uid}, not {}: not signalled", s.uid),
            ))
        }
        Err(_) => return Err((StepResult::Skipped, "already gone".into())),
    }
    match procfs.maps_segment(s.pid, ShmId(s.shmid)) {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                StepResult::Skipped,
                format!(
                    "no longer attached to segment ID {}: it holds nothing, not signalled",
                    s.shmid
                ),
            ))
        }
        Err(_) => return Err((StepResult::Skipped, "already gone".into())),
    }
    Ok(Pinned {
        stop: s,
        fd,
        sent: Vec::new(),
    })
}

impl Pinned<'_> {
    fn send(&mut self, sig: StopSignal) -> io::Result<()> {
        match pidfd_send_signal(&self.fd, sig.signal()) {
            Ok(()) => {
                self.sent.push(sig);
                Ok(())
            }
            // It exited meanwhile: the pidfd never reaches another process.
            Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn exited(&self) -> bool {
        interlock::process::pidfd_exited(&self.fd)
    }
}

/// Wait until every pinned process has exited, or `limit` passes.
fn wait_all(pinned: &[Pinned<'_>], limit: Duration) {
    let start = Instant::now();
    while pinned.iter().any(|p| !p.exited()) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Carry out `plan` (made by [`plan`] with the same options). Refused
/// plans do nothing but diagnose again.
pub fn carry_out(plan: &Plan, opts: &FixOptions) -> Result<Outcome, Error> {
    let dir = PathBuf::from(&plan.data_dir);
    let mut steps = Vec::new();
    if plan.refused.is_empty() {
        stop_processes(plan, opts, &mut steps);
        remove_leftovers(plan, opts, &dir, &mut steps)?;
    }
    let after = diagnose(&dir, opts)?;
    let ready = after.verdict == Verdict::WillStart && after.safe_to_start;
    Ok(Outcome {
        steps,
        after,
        ready,
    })
}

fn stop_processes(plan: &Plan, opts: &FixOptions, steps: &mut Vec<Step>) {
    let procfs = opts.status.root.procfs();
    let mut pinned: Vec<Pinned<'_>> = Vec::new();
    for s in &plan.stop {
        match pin(procfs, s) {
            Ok(p) => pinned.push(p),
            Err((result, detail)) => steps.push(Step {
                what: format!("stop PID {}", s.pid),
                result,
                detail,
            }),
        }
    }
    let mut failed: Vec<(i32, String)> = Vec::new();
    // Continue the stopped ones first, so that each gets its shutdown
    // signal while able to act on it.
    for p in pinned.iter_mut() {
        if p.stop.signals.contains(&StopSignal::Cont) {
            if let Err(e) = p.send(StopSignal::Cont) {
                failed.push((p.stop.pid, format!("SIGCONT: {e}")));
            }
        }
    }
    for p in pinned.iter_mut() {
        let sig = p.stop.shutdown;
        if let Err(e) = p.send(sig) {
            failed.push((p.stop.pid, format!("{sig}: {e}")));
        }
    }
    wait_all(&pinned, opts.grace);
    for p in pinned.iter_mut().filter(|p| !p.exited()) {
        if let Err(e) = p.send(StopSignal::Kill) {
            failed.push((p.stop.pid, format!("SIGKILL: {e}")));
        }
    }
    wait_all(&pinned, opts.kill_wait);
    for p in &pinned {
        let error = failed
            .iter()
            .filter(|(pid, _)| *pid == p.stop.pid)
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let sent = p
            .sent
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ");
        let (result, detail) = if p.exited() {
            (StepResult::Done, format!("sent {sent}; it exited"))
        } else if !error.is_empty() {
            (StepResult::Failed, format!("sent {sent}; {error}"))
        } else {
            (
                StepResult::Failed,
                format!(
                    "sent {sent}; still there after {} s (state {}): stuck in the kernel",
                    (opts.grace + opts.kill_wait).as_secs(),
                    procfs
                        .stat(p.stop.pid)
                        .map(|s| s.proc_state().name())
                        .unwrap_or("unknown")
                ),
            )
        };
        steps.push(Step {
            what: format!(
                "stop PID {} ({})",
                p.stop.pid,
                p.stop.role.map_or(p.stop.cmdline.as_str(), |r| r.name())
            ),
            result,
            detail,
        });
    }
}

/// Removals, each re-checked against a fresh diagnosis.
fn remove_leftovers(
    plan: &Plan,
    opts: &FixOptions,
    dir: &Path,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    if plan.remove.is_empty() {
        return Ok(());
    }
    // The kernel detaches a killed process's segments as it exits, which
    // can lag the pidfd's exit notice by a moment.
    let mut now = status(dir, &opts.status)?;
    let start = Instant::now();
    while plan
        .stop
        .iter()
        .any(|s| now.holders.iter().any(|h| h.process.pid == s.pid))
        && start.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(20));
        now = status(dir, &opts.status)?;
    }
    let holders: Vec<String> = now
        .holders
        .iter()
        .map(|h| format!("{} ({})", h.process.pid, h.process.cmdline))
        .collect();
    for rm in &plan.remove {
        let what = format!("remove {}", rm.target());
        let (result, detail) = match rm {
            Removal::LockFile {
                path,
                inode,
                content,
                ..
            } => {
                if !holders.is_empty() {
                    (
                        StepResult::Skipped,
                        format!("still attached: {}", holders.join(", ")),
                    )
                } else if now.lock_file.identity == Some(Identity::Owner)
                    || now
                        .socket_locks
                        .iter()
                        .any(|s| &s.path == path && s.identity == Some(Identity::Owner))
                {
                    (
                        StepResult::Skipped,
                        "its PID is now this directory's owner: a server started".into(),
                    )
                } else {
                    remove_lock_file(Path::new(path), *inode, content)
                }
            }
            Removal::Segment { shmid, .. } => remove_segment(dir, *shmid),
            Removal::DsmFile { path, handle, .. } => {
                match now.dsm.iter().find(|d| &d.path == path) {
                    Some(d) if !d.mapped_by.is_empty() => (
                        StepResult::Skipped,
                        format!("still mapped by {:?}", d.mapped_by),
                    ),
                    _ if !Path::new(path).exists() => (StepResult::Skipped, "already gone".into()),
                    _ => {
                        // Only files of the directory's owner are touched.
                        let uid = fs::metadata(dir).map(|m| m.uid()).unwrap_or(u32::MAX);
                        let gone =
                            segment::cleanup_dsm_in(&opts.status.root.dev_shm(), *handle, uid);
                        if gone.iter().any(|p| p == Path::new(path)) {
                            let listed: String = gone
                                .iter()
                                .filter(|p| *p != Path::new(path))
                                .map(|p| format!(" {}", p.display()))
                                .collect();
                            (
                                StepResult::Done,
                                if listed.is_empty() {
                                    "removed (it listed no live segment)".into()
                                } else {
                                    format!("removed, with the segments it listed:{listed}")
                                },
                            )
                        } else {
                            (
                                StepResult::Failed,
                                "it is not a sane control segment: left alone".into(),
                            )
                        }
                    }
                }
            }
        };
        steps.push(Step {
            what,
            result,
            detail,
        });
    }
    Ok(())
}

/// Remove the lock file only if it is still the planned one: rename it
/// aside (atomic), check the inode and bytes of what was renamed, then
/// unlink it, or put it back if a server wrote a new one meanwhile.
fn remove_lock_file(path: &Path, inode: u64, content: &str) -> (StepResult, String) {
    let aside = path.with_file_name(format!(
        "{}.interlock-fix-{}",
        interlock::LOCK_FILE_NAME,
        std::process::id()
    ));
    if let Err(e) = fs::rename(path, &aside) {
        return if e.kind() == io::ErrorKind::NotFound {
            (StepResult::Skipped, "already gone".into())
        } else {
            (StepResult::Failed, format!("rename: {e}"))
        };
    }
    match read_exact_file(&aside) {
        Ok((ino, bytes)) if ino == inode && printable(&bytes) == content => {
            match fs::remove_file(&aside) {
                Ok(()) => (StepResult::Done, "removed".into()),
                Err(e) => (
                    StepResult::Failed,
                    format!("unlink {}: {e}", aside.display()),
                ),
            }
        }
        _ => {
            // Not the file planned: a server replaced it. Put it back
            // (link fails if yet another appeared; then keep it aside).
            let back = fs::hard_link(&aside, path).and_then(|()| fs::remove_file(&aside));
            (
                StepResult::Skipped,
                match back {
                    Ok(()) => "it changed since the plan (a server started?): left in place".into(),
                    Err(e) => format!(
                        "it changed since the plan, and could not be put back ({e}): it is at {}",
                        aside.display()
                    ),
                },
            )
        }
    }
}

/// Remove segment `shmid` if its header names `dir` and nobody is attached,
/// with the DSM files its control segment lists (as the server does when
/// it recycles one).
fn remove_segment(dir: &Path, shmid: i32) -> (StepResult, String) {
    let uid = fs::metadata(dir).map(|m| m.uid()).unwrap_or(u32::MAX);
    match segment::analyze(ShmId(shmid), dir) {
        SegmentState::Unattached { header } => {
            let dsm = segment::cleanup_dsm(header.dsm_control, uid);
            match shm::remove(ShmId(shmid)) {
                Ok(()) => (
                    StepResult::Done,
                    if dsm.is_empty() {
                        "removed".into()
                    } else {
                        format!(
                            "removed, with the DSM files it listed: {}",
                            dsm.iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    },
                ),
                Err(e) => (StepResult::Failed, format!("IPC_RMID: {e}")),
            }
        }
        SegmentState::Attached { nattch, .. } => (
            StepResult::Skipped,
            format!("{nattch} still attached: an attached segment is never removed"),
        ),
        SegmentState::Enoent => (StepResult::Skipped, "already gone".into()),
        SegmentState::Foreign => (
            StepResult::Skipped,
            "its header does not name this directory: not ours".into(),
        ),
        SegmentState::AnalysisFailure { op, error } => {
            (StepResult::Failed, format!("{op}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_its_own_shutdown_signal_never_sigkill_first() {
        use super::{StopKind, StopSignal};
        use crate::PgRole;
        let of = |role| StopKind::of(role).shutdown().0;
        assert_eq!(of(Some(PgRole::Postmaster)), StopSignal::Int);
        assert_eq!(
            of(Some(PgRole::Auxiliary("checkpointer"))),
            StopSignal::Quit
        );
        assert_eq!(of(Some(PgRole::ClientBackend)), StopSignal::Quit);
        assert_eq!(of(None), StopSignal::Term);
        // The report names them as the kernel does.
        for (sig, name) in [
            (StopSignal::Cont, "SIGCONT"),
            (StopSignal::Int, "SIGINT"),
            (StopSignal::Quit, "SIGQUIT"),
            (StopSignal::Term, "SIGTERM"),
            (StopSignal::Kill, "SIGKILL"),
        ] {
            assert_eq!(serde_json::to_value(sig).unwrap(), name);
            assert_eq!(sig.name(), name);
        }
    }

    /// Issue 12, item 8: a lock file swapped for a FIFO between the plan
    /// and the removal is neither waited on nor left renamed aside.
    #[test]
    fn a_fifo_swapped_in_is_put_back_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(interlock::LOCK_FILE_NAME);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(remove_lock_file(&p, 1, "42\n"));
        });
        let (result, detail) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("remove_lock_file blocked on a FIFO");
        assert_eq!(result, StepResult::Skipped, "{detail}");
        assert!(detail.contains("left in place"), "{detail}");
        let st = fs::symlink_metadata(&path).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&st.file_type()));
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "something left aside: {left:?}");
    }
}
