//! `postmaster.pid`: reading, exclusive creation, rewriting and removal.
//!
//! The format is PostgreSQL's (see `interlock_format::pidfile`); this module
//! adds the I/O rules. Reads refuse symbolic links, non-regular files and
//! oversized files rather than guess. Creation is exclusive (it fails if any
//! file or link is at the name, like `O_CREAT|O_EXCL|O_NOFOLLOW`), with
//! PostgreSQL's mode, fsync'd, and atomic: see [`create`]. Rewrites go through our own descriptor at offset 0 and never
//! shorten the file, as `AddToDataDirLockFile` does. Removal re-checks that
//! the name still refers to the file we judged (same device and inode)
//! before unlinking, so we never delete a lock file another starter created
//! in the meantime — PostgreSQL's `UnlinkLockFiles` removes by name only.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use interlock_format::pidfile::{PidFile, MAX_PIDFILE_SIZE};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::datadir::DataDir;
use crate::Error;

use crate::pg::LOCK_FILE_NAME;

/// Device and inode of a lock file, to recognise it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// What is at `DATADIR/postmaster.pid`.
#[derive(Debug)]
pub(crate) enum Existing {
    Absent,
    Parsed(PidFile, FileId),
}

pub(crate) fn path(dir: &DataDir) -> PathBuf {
    dir.path.join(LOCK_FILE_NAME)
}

/// Read and parse the lock file. Empty, corrupt, oversized, symlinked or
/// non-regular files are errors that name the file; nothing is removed.
/// The bytes are read by `pg::read_lock_file_at`, as `interlock status`
/// reads them; this is the strict reading of them.
pub(crate) fn read(dir: &DataDir) -> Result<Existing, Error> {
    use crate::safe_fs::ReadError;
    let p = path(dir);
    let read = match crate::pg::read_lock_file_at(&dir.fd, LOCK_FILE_NAME.as_ref(), &p) {
        Ok(None) => return Ok(Existing::Absent),
        Ok(Some(r)) => r,
        Err(ReadError::NotRegular {
            kind: "a symbolic link",
            ..
        }) => {
            return Err(Error::LockFileUnsafe {
                path: p,
                reason: "is a symbolic link; PostgreSQL writes a regular file there".into(),
            })
        }
        Err(ReadError::NotRegular { kind, .. }) => {
            return Err(Error::LockFileUnsafe {
                path: p,
                reason: format!("is not a regular file: it is {kind}"),
            })
        }
        Err(ReadError::PermissionDenied { .. }) => {
            return Err(Error::sys(
                format!("open(\"{}\")", p.display()),
                io::Error::from_raw_os_error(libc::EACCES),
            ))
        }
        Err(ReadError::Io { op, source, .. }) => {
            return Err(Error::sys(format!("{op}(\"{}\")", p.display()), source))
        }
        Err(e) => return Err(Error::sys(e.to_string(), io::Error::other(e.reason()))),
    };
    let bytes = read.bytes;
    if bytes.len() > MAX_PIDFILE_SIZE {
        return Err(Error::LockFileUnsafe {
            path: p,
            // The size from fstat, not what was read: only the first
            // MAX_PIDFILE_SIZE + 1 bytes are.
            reason: format!(
                "is {} bytes, larger than the {MAX_PIDFILE_SIZE} bytes any PostgreSQL writes",
                read.size
            ),
        });
    }
    if bytes.is_empty() {
        return Err(Error::LockFileEmpty { path: p });
    }
    let parsed =
        PidFile::parse(&bytes).map_err(|source| Error::LockFileCorrupt { path: p, source })?;
    Ok(Existing::Parsed(
        parsed,
        FileId {
            dev: read.dev,
            ino: read.ino,
        },
    ))
}

/// Create the lock file exclusively with `content`, fsync'd, and return
/// the open descriptor. EEXIST comes back as `Ok(None)`: someone else
/// created one since we looked.
///
/// The content is written to an unnamed file (`O_TMPFILE`) and linked into
/// place, which fails with EEXIST like `O_EXCL` but publishes the file
/// complete: no reader ever sees it empty or half written, and a crash
/// leaves either no lock file or a whole one. (PostgreSQL's
/// open-then-write leaves an empty file if it dies in between, which then
/// blocks every start until removed by hand.) Where `O_TMPFILE` is not
/// supported, a named temporary file is linked instead.
pub(crate) fn create(dir: &DataDir, content: &[u8]) -> Result<Option<(OwnedFd, FileId)>, Error> {
    let p = path(dir);
    let mode = Mode::from_raw_mode(dir.file_mode());
    let (fd, temp_name) = match rustix::fs::openat(
        &dir.fd,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        mode,
    ) {
        Ok(fd) => (fd, None),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            let name = format!("{LOCK_FILE_NAME}.tmp.{}", std::process::id());
            let fd = rustix::fs::openat(
                &dir.fd,
                name.as_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode,
            )
            .map_err(|e| {
                Error::sys(format!("open(\"{}/{name}\")", dir.path.display()), e.into())
            })?;
            (fd, Some(name))
        }
        Err(e) => {
            return Err(Error::sys(
                format!("open(\"{}\", O_TMPFILE)", dir.path.display()),
                e.into(),
            ))
        }
    };
    let cleanup = |dir: &DataDir| {
        if let Some(name) = &temp_name {
            let _ = rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::empty());
        }
    };
    if let Err(e) = write_at_start(&fd, content) {
        cleanup(dir);
        return Err(Error::sys(format!("write(\"{}\")", p.display()), e));
    }
    crate::failpoint("lockfile_unlinked_copy_written");
    let linked = match &temp_name {
        None => rustix::fs::linkat(
            rustix::fs::CWD,
            format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
            &dir.fd,
            LOCK_FILE_NAME,
            AtFlags::SYMLINK_FOLLOW,
        ),
        Some(name) => rustix::fs::linkat(
            &dir.fd,
            name.as_str(),
            &dir.fd,
            LOCK_FILE_NAME,
            AtFlags::empty(),
        ),
    };
    cleanup(dir);
    match linked {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Ok(None),
        Err(e) => return Err(Error::sys(format!("link(\"{}\")", p.display()), e.into())),
    }
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| Error::sys(format!("fstat(\"{}\")", p.display()), e.into()))?;
    Ok(Some((
        fd,
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
    )))
}

/// Write `content` at offset 0 in one call and fsync. Lines only grow, so
/// no truncation is needed (PostgreSQL pads the status for the same reason).
pub(crate) fn write_at_start(fd: &OwnedFd, content: &[u8]) -> io::Result<()> {
    let n = rustix::io::pwrite(fd.as_fd(), content, 0)?;
    if n != content.len() {
        // A short write sets no errno; PostgreSQL reports it as ENOSPC.
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    rustix::fs::fsync(fd.as_fd())?;
    Ok(())
}

/// Which file is at the lock file's name now, without following links.
pub(crate) fn current_id(dir: &DataDir) -> io::Result<Option<FileId>> {
    match rustix::fs::statat(&dir.fd, LOCK_FILE_NAME, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Unlink the lock file if the name still refers to `id`. Returns whether
/// it did.
pub(crate) fn unlink_if_same(dir: &DataDir, id: FileId) -> Result<bool, Error> {
    let p = path(dir);
    match current_id(dir) {
        Ok(Some(now)) if now == id => {}
        Ok(_) => return Ok(false),
        Err(e) => return Err(Error::sys(format!("stat(\"{}\")", p.display()), e)),
    }
    match rustix::fs::unlinkat(&dir.fd, LOCK_FILE_NAME, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::sys(format!("unlink(\"{}\")", p.display()), e.into())),
    }
}
