//! Beyond this host, without etcd: whether the data directory is on a
//! network or cluster file system ([`HostRoot::shared_storage`]:
//! `statfs`'s magic number, or the mount's type in `mountinfo`), and what
//! that leaves unprovable.
//!
//! PostgreSQL's interlock sees one host: the lock file's PID is checked
//! with `kill(pid, 0)` here, and the segment lives in this host's kernel.
//! On shared storage a lock file naming a PID that does not run here may
//! be a live server's on another host, so:
//!
//! - no lock file: every server keeps one while it runs, so none runs on
//!   the directory now; the verdict stands, with a warning (two hosts
//!   starting at once, or a file not yet visible through the NFS client's
//!   attribute cache, are what only a fence such as `interlock run
//!   --etcd` covers);
//! - a lock file whose PID does not run here (`LockStage::Dead`): the
//!   verdict becomes `unknown` (the server here would remove the file and
//!   start, which is safe only if no other host runs one);
//! - a lock file whose PID runs here but is not proven this directory's
//!   (reused, a zombie), or empty, or bogus: the verdict stands (the
//!   server here stops either way), and `fix` never removes the file
//!   (`RefusalCode::OtherHost`): it may be another host's live server's.
//!
//! The same holds inside a container (a PID namespace other than the
//! host's initial one, [`HostRoot::nested_pid_namespace`]) for a directory
//! that other containers may share (a Docker volume, a Kubernetes volume
//! mounted by a new pod while the old one terminates):
//! `Code::ContainerNamespace`, with the same consequences, whenever there
//! is a lock file not proven this namespace's server's.
//!
//! When the directory holds `interlock.fence` naming another host
//! ([`last_holder_elsewhere`]), the finding says to look there first.
//!
//! Line 3's start time before this host's boot time says the file was
//! written before this boot or on another host; on a local file system
//! that is PostgreSQL's own reboot case, and nothing changes. What cannot
//! be decided from the file: the PID namespace it was written in (a
//! server in a container on a bind-mounted local directory is seen from
//! the host by its own PID; when its processes are visible here, the
//! holders stage ties them to the directory, `Code::OtherNamespace`).

use super::*;
use crate::SharedStorage;

/// Look at the directory's file system; on shared storage, say what the
/// lock file's state leaves unprovable. Returns whether the verdict must
/// be `unknown` (a lock file whose PID does not run here).
pub(super) fn storage_check(
    cx: &mut Ctx<'_>,
    stage: &LockStage,
    lock: &LockFileInfo,
    fence_file: Option<&FenceFileInfo>,
) -> bool {
    let dir = shell::quote_os(cx.shown.as_os_str());
    let (code, base) = match cx.opts.root.shared_storage(&cx.real) {
        Some(SharedStorage { fs, how }) => (
            Code::SharedStorage,
            format!(
                "{dir} is on {fs} ({how}): another host may run a server on it that this host cannot see; the lock file and the segment check only this host"
            ),
        ),
        None => match cx.opts.root.nested_pid_namespace() {
            // Only a lock file to judge matters here: with none, no
            // server runs on the directory (the file system is shared).
            Some(ns) if !matches!(stage, LockStage::Absent | LockStage::Live(Identity::Owner)) => (
                Code::ContainerNamespace,
                format!(
                    "interlock runs in a container's PID namespace ({ns}, not the host's): a server of another container, or of the host, that shares {dir} is invisible here; the lock file's PID and the segment are checked in this namespace only"
                ),
            ),
            _ => return false,
        },
    };
    let lock_path = &lock.path;
    let pid = lock.pid.unwrap_or(0).abs();
    let boot = cx.host.boot_time();
    let written = match (lock.start_time, boot) {
        (Some(t), Some(b)) if t < b - interlock::process::START_TIME_TOLERANCE_SECS => format!(
            " (line 3 says its server started at {}, before this host booted at {}: it was written before this boot, or on another host)",
            format_utc(t),
            format_utc(b)
        ),
        _ => String::new(),
    };
    let (severity, more, unknown) = match (stage, lock.state) {
        (LockStage::Absent, _) => (
            Severity::Warning,
            format!(
                "; there is no {}, which every server keeps while it runs, so none runs on it now (unless another host's file is not yet visible here)",
                interlock::LOCK_FILE_NAME
            ),
            false,
        ),
        (LockStage::Dead, LockState::Present) => (
            Severity::Problem,
            format!(
                "; {lock_path} names PID {pid}, which does not run here{written}: it may be a server's on another host, so whether the directory is in use cannot be told here"
            ),
            true,
        ),
        (LockStage::Live(Identity::Owner), _) => (
            Severity::Warning,
            format!("; this host's server (PID {pid}) runs on it now"),
            false,
        ),
        (LockStage::Live(Identity::Reused | Identity::Zombie), _) => (
            Severity::Problem,
            format!(
                "; {lock_path} names PID {pid}, which here is not this directory's server{written}: the file may be a live server's on another host, so it is never removed"
            ),
            false,
        ),
        (LockStage::Empty | LockStage::Bogus(_), _) => (
            Severity::Problem,
            format!(
                "; {lock_path} is {}: a server on another host may be starting, so it is never removed",
                lock.state
            ),
            false,
        ),
        _ => (Severity::Warning, String::new(), false),
    };
    let last = last_holder_elsewhere(fence_file)
        .map(|l| format!("; {l}"))
        .unwrap_or_default();
    cx.find(code, severity, format!("{base}{more}{last}"));
    unknown
}
