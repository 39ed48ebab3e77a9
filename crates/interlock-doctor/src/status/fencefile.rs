//! Beyond this host, the record: `interlock.fence`, which a holder of the
//! fence across hosts (`interlock run --etcd`, `interlock_fence::Fence`)
//! writes in the data directory when it takes the key: the
//! fencing token (the key's create revision, which grows with every
//! acquisition), the key, and the holder's host, boot id, PID and start.
//!
//! It tells, without etcd, which holder came last; it decides nothing.
//! The file is the directory owner's to write (anyone who can write the
//! directory can write it), and a holder whose lease lapsed has
//! self-fenced, so etcd's key is the authority: with `--etcd` the file is
//! compared with the key (`crate::fence::apply_fence`) and the verdict is
//! the key's alone. Without etcd, on storage other hosts or containers may
//! share (`storage`), a file naming another host says where to look first.
//!
//! It is read as the lock file is, as root on a directory another user
//! owns: the directory as given, the file with `O_NOFOLLOW | O_NONBLOCK`
//! (a link is refused whoever owns the directory: only a program writes
//! the file), a regular file by `fstat` on the opened descriptor, at most
//! [`MAX_FENCE_FILE_SIZE`] bytes (`interlock::safe_fs::read_in`), and parsed
//! strictly ([`FenceFile::parse`]). A refused file is an `unsafe_file`
//! finding; one that cannot be opened or parsed is the report's `problem`.

use std::ffi::OsStr;

use interlock_fence::key::FENCE_FILE;
use interlock_format::fencefile::{FenceFile, MAX_FENCE_FILE_SIZE};

use super::*;

/// Read `DATADIR/interlock.fence`; `None` when there is none.
pub(super) fn read_fence_file(cx: &mut Ctx<'_>) -> Option<FenceFileInfo> {
    let path = cx.shown.join(FENCE_FILE);
    let shown = path.display().to_string();
    let blank = |problem: String| FenceFileInfo {
        path: shown.clone(),
        token: None,
        key: None,
        host: None,
        boot_id: None,
        pid: None,
        since: None,
        here: None,
        versus_etcd: None,
        line: format!("{shown}: {problem}"),
        problem: Some(problem),
    };
    let bytes = match interlock::safe_fs::read_in(
        &cx.shown,
        OsStr::new(FENCE_FILE),
        MAX_FENCE_FILE_SIZE as u64,
    ) {
        Ok(None) => return None,
        Ok(Some(b)) => b,
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            if e.is_hostile() {
                cx.find(
                    Code::UnsafeFile,
                    Severity::Warning,
                    format!("{e}; the last fence holder's record is not known"),
                );
            }
            return Some(blank(format!("not read: {}", e.reason())));
        }
    };
    let f = match FenceFile::parse(&bytes) {
        Ok(f) => f,
        Err(e) => return Some(blank(format!("not what a fence holder writes: {e}"))),
    };
    let here = cx
        .opts
        .root
        .host_and_boot_id()
        .map(|(host, boot_id)| f.host == host && f.boot_id == boot_id);
    Some(FenceFileInfo {
        path: shown,
        line: format!(
            "token {} by host {} (PID {}, since {}){}",
            f.token,
            f.host,
            f.pid.map_or("?".into(), |p| p.to_string()),
            f.since,
            if here == Some(true) {
                ", this host"
            } else {
                ""
            }
        ),
        token: Some(f.token),
        key: Some(f.key),
        host: Some(f.host),
        boot_id: Some(f.boot_id),
        pid: f.pid,
        since: Some(f.since),
        here,
        versus_etcd: None,
        problem: None,
    })
}

/// Where to look first when another host or container may run a server on
/// the directory: the holder the file names, when it is not this host
/// (this boot). For the `shared_storage` and `container_namespace`
/// findings and their remedies.
pub(super) fn last_holder_elsewhere(file: Option<&FenceFileInfo>) -> Option<String> {
    let f = file?;
    if f.here != Some(false) {
        return None;
    }
    Some(format!(
        "the last fenced holder was host {} (token {}, since {}; {}): check there first",
        f.host.as_deref()?,
        f.token?,
        f.since.as_deref()?,
        FENCE_FILE
    ))
}
