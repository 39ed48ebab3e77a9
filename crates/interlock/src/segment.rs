//! The System V interlock segment: keys, PostgreSQL's five segment states,
//! the key-probing create loop, and clean-up of an unattached segment.
//!
//! Byte-compatible with PostgreSQL 10–18 on 64-bit Linux: the segment is
//! `sizeof(PGShmemHeader)` = 56 bytes, mode 0600, and carries the header
//! PostgreSQL checks (magic, creator PID, device and inode of the data
//! directory). A real server probing its keys therefore classifies our
//! segment exactly as it would classify one of its own: ATTACHED while we
//! (or any process forked from us) live, UNATTACHED afterwards.
//!
//! The analysis follows `PGSharedMemoryAttach` (10.9+/11.4+, facts sheet
//! §1.4) step by step, including its errno rules, and reads `shm_nattch`
//! *before* attaching so that our own probe is not counted. One rule is
//! stronger: a segment smaller than the header is FOREIGN rather than read
//! past its end.
//!
//! What PostgreSQL's key scan cannot see is a segment of this directory on a
//! key it never reaches: after the "shift the key" bypass, or a directory
//! whose key was taken by another cluster's segment when it started. We
//! therefore also look at every segment in `/proc/sysvipc/shm` that belongs
//! to our uid and has attached processes ([`attached_segments_of`](crate::segment::attached_segments_of));
//! attaching briefly to a segment that already has holders cannot change
//! what a concurrently starting PostgreSQL concludes about it.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use interlock_format::dsm::{dsm_file_name, parse_dsm_control};
use interlock_format::shmem_header::{ShmemHeader, HEADER_SIZE};
use interlock_format::sysvipc::parse_shm_table;

use crate::pg::{self, Algorithm, ProbeStep, SegmentAtKey};
use crate::sys::shm::{self, Attachment, ShmId, ShmKey};
use crate::Error;

/// PostgreSQL's `IpcMemoryState` for one segment id.
#[derive(Debug)]
pub enum SegmentState {
    /// No segment with that id (any more).
    Enoent,
    /// Exists, but not this data directory's (or not ours to read).
    Foreign,
    /// This data directory's, with `nattch` processes attached.
    Attached {
        /// Attach count read before we attached.
        nattch: u64,
        /// The header.
        header: ShmemHeader,
    },
    /// This data directory's, with nobody attached.
    Unattached {
        /// The header (its `dsm_control` names the DSM control segment).
        header: ShmemHeader,
    },
    /// An unexpected failure: must be treated as in use.
    AnalysisFailure {
        /// The failing call.
        op: String,
        /// The error.
        error: io::Error,
    },
}

impl SegmentState {
    /// Whether PostgreSQL would refuse to start because of it.
    pub fn blocks_startup(&self) -> bool {
        matches!(
            self,
            SegmentState::Attached { .. } | SegmentState::AnalysisFailure { .. }
        )
    }

    /// Whose it is, for the rules in [`crate::pg`].
    pub fn whose(&self) -> pg::Whose {
        match self {
            SegmentState::Enoent => pg::Whose::Vanished,
            SegmentState::Foreign => pg::Whose::Foreign,
            SegmentState::Attached { .. } | SegmentState::Unattached { .. } => {
                pg::Whose::ThisDirectory
            }
            SegmentState::AnalysisFailure { .. } => pg::Whose::AnalysisFailure,
        }
    }

    /// The attach count read before attaching (0 unless attached).
    pub fn nattch(&self) -> u64 {
        match self {
            SegmentState::Attached { nattch, .. } => *nattch,
            _ => 0,
        }
    }

    /// The error refusing to start because of this segment at `key`, id
    /// `shmid`: an analysis failure says what failed, anything else is in
    /// use (the caller refuses only where [`crate::pg`]'s rules say so).
    pub(crate) fn refusal(self, data_dir: &Path, key: ShmKey, shmid: ShmId) -> Error {
        match self {
            SegmentState::AnalysisFailure { op, error } => Error::SegmentAnalysisFailed {
                key,
                shmid,
                op,
                source: error,
            },
            other => {
                let nattch = other.nattch();
                Error::SegmentInUse {
                    data_dir: data_dir.to_path_buf(),
                    key,
                    shmid,
                    nattch,
                    holders: crate::process::ProcFs::default().holders_or_creator(shmid, nattch),
                }
            }
        }
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Classify segment `shmid` for the data directory at `data_dir`, whose
/// identity is re-read with `stat` as PostgreSQL does on every probe.
pub fn analyze(shmid: ShmId, data_dir: &Path) -> SegmentState {
    // 1. IPC_STAT, before attaching, so the count excludes our probe.
    let st = match shm::stat(shmid) {
        Ok(st) => st,
        Err(e) => {
            return match errno(&e) {
                libc::EINVAL | libc::EIDRM => SegmentState::Enoent,
                libc::EACCES => SegmentState::Foreign,
                _ => SegmentState::AnalysisFailure {
                    op: format!("shmctl({shmid}, IPC_STAT)"),
                    error: e,
                },
            }
        }
    };
    // 2. stat(DataDir); failure is "be conservative".
    let (dev, ino) = match rustix::fs::stat(data_dir) {
        Ok(s) => (s.st_dev, s.st_ino),
        Err(e) => {
            return SegmentState::AnalysisFailure {
                op: format!("stat(\"{}\")", data_dir.display()),
                error: e.into(),
            }
        }
    };
    if st.size < HEADER_SIZE as u64 {
        return SegmentState::Foreign;
    }
    // 3. attach to read the header.
    let att = match shm::attach(shmid) {
        Ok(att) => att,
        Err(e) => {
            return match errno(&e) {
                libc::EINVAL | libc::EIDRM => SegmentState::Enoent,
                libc::EACCES => SegmentState::Foreign,
                _ => SegmentState::AnalysisFailure {
                    op: format!("shmat(id={shmid}, addr=NULL, flags=0x0)"),
                    error: e,
                },
            }
        }
    };
    let bytes = att.read(HEADER_SIZE);
    drop(att);
    // 4. magic, device, inode.
    let header = match ShmemHeader::parse(&bytes) {
        Ok(h) if h.matches(dev, ino) => h,
        _ => return SegmentState::Foreign,
    };
    // 5. the attach count from before we attached.
    if st.nattch == 0 {
        SegmentState::Unattached { header }
    } else {
        SegmentState::Attached {
            nattch: st.nattch,
            header,
        }
    }
}

/// A segment of this data directory that still has holders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachedSegment {
    /// Its key.
    pub key: ShmKey,
    /// Its id.
    pub shmid: ShmId,
    /// Its attach count.
    pub nattch: u64,
}

/// Every segment in `/proc/sysvipc/shm` owned or created by `uid`, with
/// holders, whose header names this data directory. An unreadable table
/// yields an error: the caller cannot then claim the directory is free.
pub fn attached_segments_of(data_dir: &Path, uid: u32) -> Result<Vec<AttachedSegment>, Error> {
    let text = fs::read_to_string("/proc/sysvipc/shm")
        .map_err(|e| Error::sys("read(\"/proc/sysvipc/shm\")", e))?;
    let table = parse_shm_table(&text).map_err(|e| {
        Error::sys(
            "parse(\"/proc/sysvipc/shm\")",
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    let mut found = Vec::new();
    for entry in table {
        if entry.nattch == 0
            || entry.size < HEADER_SIZE as u64
            || (entry.uid != uid && entry.cuid != uid)
        {
            continue;
        }
        if let SegmentState::Attached { nattch, .. } = analyze(ShmId(entry.shmid), data_dir) {
            found.push(AttachedSegment {
                key: ShmKey(entry.key),
                shmid: ShmId(entry.shmid),
                nattch,
            });
        }
    }
    Ok(found)
}

/// Remove the POSIX DSM segments listed in the control segment `handle`,
/// then the control segment itself, as PostgreSQL's
/// `dsm_cleanup_using_control_segment` does when it recycles an unattached
/// interlock segment. Only regular files owned by `uid` are touched; a
/// control segment that is missing or not sane is left alone (PostgreSQL
/// gives up quietly too). Returns the paths removed.
pub fn cleanup_dsm(handle: u32, uid: u32) -> Vec<PathBuf> {
    cleanup_dsm_in(Path::new("/dev/shm"), handle, uid)
}

/// As [`cleanup_dsm`], in `shm_dir` (a fixture tree in tests).
pub fn cleanup_dsm_in(shm_dir: &Path, handle: u32, uid: u32) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if handle == 0 {
        return removed;
    }
    let owned_file = |p: &Path| {
        fs::symlink_metadata(p)
            .map(|m| m.file_type().is_file() && m.uid() == uid)
            .unwrap_or(false)
    };
    let control = shm_dir.join(dsm_file_name(handle));
    if !owned_file(&control) {
        return removed;
    }
    // A control segment holds 64 + 5 * MaxBackends items of at most 40
    // bytes; 64 MiB is far beyond any real one.
    // Opened without blocking and without following a planted link
    // (anyone may create files in /dev/shm), read with its bound.
    let Ok(bytes) =
        crate::safe_fs::read(Some(shm_dir), Path::new(&dsm_file_name(handle)), 64 << 20)
    else {
        return removed;
    };
    let Ok(ctl) = parse_dsm_control(&bytes) else {
        return removed;
    };
    for h in ctl.live_segment_handles() {
        let p = shm_dir.join(dsm_file_name(h));
        if owned_file(&p) && fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    if fs::remove_file(&control).is_ok() {
        removed.push(control);
    }
    removed
}

/// Our newly created, attached interlock segment.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) key: ShmKey,
    pub(crate) shmid: ShmId,
    pub(crate) attachment: Attachment,
}

/// How many keys the probe loop tries before giving up. PostgreSQL has no
/// bound; a host with a thousand foreign segments in a row is broken.
const MAX_KEYS: u32 = 1000;

/// PostgreSQL's `PGSharedMemoryCreate` loop (NEW-ALGO): try to create at
/// `start`; on a collision classify the existing segment and take the step
/// [`pg::probe_step`] gives for the new algorithm: FOREIGN → next key;
/// ENOENT → same key again; UNATTACHED (ours, nobody left) → clean up its
/// DSM segments and remove it, then the same key (next key if removal
/// fails); ATTACHED or ANALYSIS_FAILURE → refuse.
pub(crate) fn create(
    data_dir: &Path,
    dev: u64,
    ino: u64,
    start: ShmKey,
    creator_pid: i32,
    uid: u32,
) -> Result<Created, Error> {
    let mut key = start;
    let mut tries = 0u32;
    loop {
        tries += 1;
        if tries > MAX_KEYS * 2 {
            return Err(Error::sys(
                format!("shmget(key={key}, size={HEADER_SIZE}, 03600)"),
                io::Error::other(format!("no free key after {MAX_KEYS} keys from {start}")),
            ));
        }
        match shm::create_exclusive(key, HEADER_SIZE) {
            Ok(shmid) => {
                crate::failpoint("segment_created");
                let mut attachment = shm::attach(shmid).map_err(|e| {
                    let _ = shm::remove(shmid);
                    Error::sys(format!("shmat(id={shmid}, addr=NULL, flags=0x0)"), e)
                })?;
                attachment.write(&ShmemHeader::new_interlock(creator_pid, dev, ino).render());
                return Ok(Created {
                    key,
                    shmid,
                    attachment,
                });
            }
            Err(e) if matches!(errno(&e), libc::EEXIST | libc::EACCES | libc::EIDRM) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("shmget(key={key}, size={HEADER_SIZE}, 03600)"),
                    e,
                ));
            }
        }
        // Collision: look at what holds the key. shmget failing is FOREIGN.
        let found = shm::get(key, HEADER_SIZE, 0)
            .ok()
            .map(|shmid| (shmid, analyze(shmid, data_dir)));
        let at = SegmentAtKey::Taken {
            whose: found
                .as_ref()
                .map_or(pg::Whose::Foreign, |(_, state)| state.whose()),
            nattch: found.as_ref().map_or(0, |(_, state)| state.nattch()),
            // IPC_RMID's own answer decides (a failure: next key).
            removable: true,
            // The new algorithm asks nothing of it (its answer is `whose`).
            header: pg::HeaderSeen::Unknown,
        };
        match (pg::probe_step(Algorithm::New, &at), found) {
            (ProbeStep::NextKey, _) | (_, None) => key = ShmKey(key.0.wrapping_add(1)),
            (ProbeStep::Recycle, Some((shmid, SegmentState::Unattached { header }))) => {
                cleanup_dsm(header.dsm_control, uid);
                if shm::remove(shmid).is_err() {
                    key = ShmKey(key.0.wrapping_add(1));
                }
            }
            // Blocked; and where a step cannot be told (never, for a
            // segment analysed by attaching), refuse as well.
            (
                ProbeStep::Blocked | ProbeStep::RecycleOrNextKey | ProbeStep::Unknown,
                Some((shmid, state)),
            ) => return Err(state.refusal(data_dir, key, shmid)),
            // The same key again: it was free (ENOENT), or is to be
            // analysed again.
            (ProbeStep::Create | ProbeStep::Retry | ProbeStep::Recycle, Some(_)) => {}
        }
    }
}

/// Remove an unattached segment of this data directory found outside the
/// probe path (named by a stale lock file), with its DSM segments.
/// Re-analyses first; does nothing unless it is still UNATTACHED.
pub(crate) fn remove_if_unattached(shmid: ShmId, data_dir: &Path, uid: u32) -> bool {
    if let SegmentState::Unattached { header } = analyze(shmid, data_dir) {
        cleanup_dsm(header.dsm_control, uid);
        return shm::remove(shmid).is_ok();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsm_cleanup_removes_listed_segments_and_control() {
        use interlock_format::dsm::{render_dsm_control, DsmControl, DsmItem};
        let dir = tempfile::tempdir().unwrap();
        let uid = rustix::process::geteuid().as_raw();
        let ctl = DsmControl {
            nitems: 3,
            maxitems: 4,
            item_size: 40,
            items: vec![
                DsmItem {
                    handle: 100,
                    refcnt: 2,
                },
                DsmItem {
                    handle: 101,
                    refcnt: 2,
                }, // odd: main region, no file
                DsmItem {
                    handle: 200,
                    refcnt: 0,
                }, // free slot
            ],
        };
        fs::write(dir.path().join("PostgreSQL.7"), render_dsm_control(&ctl)).unwrap();
        for h in [100, 101, 200, 300] {
            fs::write(dir.path().join(format!("PostgreSQL.{h}")), b"x").unwrap();
        }
        let removed = cleanup_dsm_in(dir.path(), 7, uid);
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["PostgreSQL.100", "PostgreSQL.7"]);
        for h in [101, 200, 300] {
            assert!(
                dir.path().join(format!("PostgreSQL.{h}")).exists(),
                "{h} must stay"
            );
        }
    }

    #[test]
    fn dsm_cleanup_leaves_a_corrupt_control_segment_alone() {
        let dir = tempfile::tempdir().unwrap();
        let uid = rustix::process::geteuid().as_raw();
        fs::write(dir.path().join("PostgreSQL.9"), b"not a control segment").unwrap();
        assert!(cleanup_dsm_in(dir.path(), 9, uid).is_empty());
        assert!(dir.path().join("PostgreSQL.9").exists());
    }
}
