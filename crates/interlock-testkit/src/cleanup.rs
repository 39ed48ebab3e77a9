//! Clean-up guards: kill only the processes a test started, remove only
//! the segments it made or that name its directories, with the DSM files
//! those segments list.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interlock::segment::{analyze, cleanup_dsm, SegmentState};
use interlock::ShmId;
use rustix::process::Signal;

use crate::process::{running, signal};

/// The segments in `/proc/sysvipc/shm`: (shmid, creator PID).
fn shm_table() -> Vec<(i32, i32)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    interlock_format::sysvipc::parse_shm_table(&text)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.shmid, e.cpid))
        .collect()
}

/// Segments whose header names `dir` (attached or not).
pub fn segments_of(dir: &Path) -> Vec<i32> {
    shm_table()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|&id| {
            matches!(
                analyze(ShmId(id), dir),
                SegmentState::Attached { .. } | SegmentState::Unattached { .. }
            )
        })
        .collect()
}

/// Remove every segment whose header names one of `dirs`. One that still
/// has processes attached is given a second for the kernel to finish
/// detaching processes just killed; once unattached, the DSM files its
/// control segment lists are removed with it, as the server does when it
/// recycles a segment (`interlock::segment::cleanup_dsm`). One still
/// attached after that is marked for removal (IPC_RMID: the kernel frees
/// it at the last detach) if `attached`, else left alone.
/// The user the directory's server ran as: the owner of `PG_VERSION`
/// (initdb writes it as that user), else of the directory, which a test may
/// have given to root (wrong ownership).
fn server_uid(dir: &Path) -> u32 {
    std::fs::metadata(dir.join("PG_VERSION"))
        .or_else(|_| std::fs::metadata(dir))
        .map(|m| m.uid())
        .unwrap_or(0)
}

pub fn remove_segments_naming(dirs: &[PathBuf], attached: bool) {
    for (id, _) in shm_table() {
        for dir in dirs {
            let mut state = analyze(ShmId(id), dir);
            // A killed postmaster's children notice and leave on their
            // own; on a loaded machine that takes a while.
            for _ in 0..250 {
                if !matches!(state, SegmentState::Attached { .. }) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                state = analyze(ShmId(id), dir);
            }
            match state {
                SegmentState::Unattached { header } => {
                    let uid = server_uid(dir);
                    cleanup_dsm(header.dsm_control, uid);
                    let _ = interlock::sys::shm::remove(ShmId(id));
                    break;
                }
                SegmentState::Attached { header, .. } if attached => {
                    // Its last holders are this test's; the DSM files they
                    // still map go with the segment (unlinking takes no
                    // mapping away), or nothing would ever remove them.
                    let uid = server_uid(dir);
                    cleanup_dsm(header.dsm_control, uid);
                    let _ = interlock::sys::shm::remove(ShmId(id));
                    break;
                }
                _ => {}
            }
        }
    }
}

/// What a test started and made, undone on drop: its processes are
/// SIGCONTed and SIGKILLed (and waited for until they no longer run), then
/// the segments in `shmids`, those created by one of `pids` (a crash right
/// after `shmget` leaves one with no header), and those naming one of
/// `dirs` are removed ([`remove_segments_naming`], attached ones too).
/// Declare it after the temporary directory, so that it runs first.
#[derive(Debug, Default)]
pub struct Cleanup {
    pub pids: Vec<i32>,
    pub shmids: Vec<ShmId>,
    pub dirs: Vec<PathBuf>,
}

impl Cleanup {
    /// Also remove, at the end, every segment whose header names `dir`.
    pub fn for_dir(dir: &Path) -> Cleanup {
        Cleanup {
            pids: Vec::new(),
            shmids: Vec::new(),
            dirs: vec![dir.to_path_buf()],
        }
    }

    pub fn pid(&mut self, pid: i32) {
        self.pids.push(pid);
    }

    pub fn shmid(&mut self, id: ShmId) {
        self.shmids.push(id);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid, Signal::CONT);
            signal(pid, Signal::KILL);
        }
        // Exited, zombie or not: a zombie has detached its segments, and
        // one that is our own unreaped child would never leave the table.
        for &pid in &self.pids {
            let start = Instant::now();
            while running(pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for &id in &self.shmids {
            let _ = interlock::sys::shm::remove(id);
        }
        remove_segments_naming(&self.dirs, true);
        for (id, cpid) in shm_table() {
            if self.pids.contains(&cpid) {
                let _ = interlock::sys::shm::remove(ShmId(id));
            }
        }
    }
}
