//! The data directory: opening it, checking it as PostgreSQL's
//! `checkDataDir` would, and the startup mutex.
//!
//! The directory is opened once and everything else is done relative to
//! that descriptor (`openat`, `unlinkat`), so a rename of the path during
//! acquire cannot make us read one directory and write another.
//!
//! The startup mutex closes the race Tom Lane left open in 2002 (two
//! starters that both judge the same stale lock file dead, and one unlinks
//! the file the other just created): every acquirer of this library takes
//! an exclusive `flock` on the directory itself for the length of the
//! acquire sequence. It leaves no file behind, the kernel drops it when the
//! acquirer dies (no stale mutex), and it serialises our starters. A real
//! PostgreSQL does not take it; against it the segment is the interlock, as
//! explained in `lock.rs`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::Error;

/// An open, checked data directory.
#[derive(Debug)]
pub(crate) struct DataDir {
    /// The path as PostgreSQL writes it on line 2: absolute, cleaned, but
    /// with symbolic links left as they are.
    pub(crate) path: PathBuf,
    /// The path with symbolic links resolved (what `/proc/PID/cwd` shows).
    pub(crate) canonical: PathBuf,
    pub(crate) fd: OwnedFd,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) uid: u32,
    pub(crate) mode: u32,
}

/// Make `path` absolute and lexically clean, like PostgreSQL's
/// `make_absolute_path` + `canonicalize_path` (no symlink resolution).
pub(crate) fn absolute_clean(path: &Path) -> io::Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut out = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

impl DataDir {
    /// Open and check `path`: it must exist, be a directory we can read,
    /// and be owned by our effective uid (PostgreSQL refuses any other
    /// owner: "data directory has wrong ownership").
    pub(crate) fn open(path: &Path) -> Result<DataDir, Error> {
        let abs = absolute_clean(path).map_err(|e| Error::sys("getcwd()", e))?;
        let fd = match rustix::fs::open(
            &abs,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                return Err(Error::DataDirMissing {
                    path: path.to_path_buf(),
                })
            }
            Err(rustix::io::Errno::NOTDIR) => {
                return Err(Error::DataDirUnusable {
                    path: path.to_path_buf(),
                    reason: "is not a directory".into(),
                    hint: "point at the directory that holds PG_VERSION".into(),
                })
            }
            Err(rustix::io::Errno::ACCESS) => {
                return Err(Error::DataDirUnusable {
                    path: path.to_path_buf(),
                    reason: "cannot be opened: permission denied".into(),
                    hint: "run as the data directory's owner".into(),
                })
            }
            Err(e) => return Err(Error::sys(format!("open(\"{}\")", abs.display()), e.into())),
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::sys(format!("fstat(\"{}\")", abs.display()), e.into()))?;
        let euid = rustix::process::geteuid().as_raw();
        if crate::pg::check_data_dir_owner(st.st_uid, euid).is_err() {
            return Err(Error::DataDirUnusable {
                path: path.to_path_buf(),
                reason: format!("has wrong ownership: it is owned by uid {}, and this process runs as uid {euid}", st.st_uid),
                hint: "run as the user that owns the data directory, as PostgreSQL must".into(),
            });
        }
        let canonical = std::fs::canonicalize(&abs).unwrap_or_else(|_| abs.clone());
        Ok(DataDir {
            path: abs,
            canonical,
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
        })
    }

    /// Take the startup mutex, waiting at most `wait`.
    pub(crate) fn startup_mutex(&self, wait: Duration) -> Result<StartupMutex<'_>, Error> {
        let started = Instant::now();
        loop {
            match rustix::fs::flock(&self.fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(StartupMutex { dir: self }),
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {}
                // File systems without flock (some network ones): go on
                // without the mutex; the segment still interlocks.
                Err(rustix::io::Errno::NOLCK) | Err(rustix::io::Errno::OPNOTSUPP) => {
                    return Ok(StartupMutex { dir: self })
                }
                Err(e) => {
                    return Err(Error::sys(
                        format!("flock(\"{}\", LOCK_EX)", self.path.display()),
                        e.into(),
                    ))
                }
            }
            if started.elapsed() >= wait {
                return Err(Error::Busy {
                    path: self.path.clone(),
                    waited_ms: wait.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// File mode PostgreSQL 11+ gives new files here: 0640 when the
    /// directory allows group access (0750), else 0600.
    pub(crate) fn file_mode(&self) -> u32 {
        if self.mode & 0o077 == 0o050 {
            0o640
        } else {
            0o600
        }
    }
}

/// The held startup mutex; released on drop.
#[derive(Debug)]
pub(crate) struct StartupMutex<'a> {
    dir: &'a DataDir,
}

impl Drop for StartupMutex<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.dir.fd.as_fd(), FlockOperation::Unlock);
    }
}

/// If this process runs as root, switch it for good to the owner of
/// `data_dir` (its uid and group), as PostgreSQL must run as the owner and
/// refuses root. Returns the uid switched to, or `None` when not root.
/// A data directory owned by root is refused: no PostgreSQL can use it.
pub fn act_as_owner(data_dir: &Path) -> Result<Option<u32>, Error> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Ok(None);
    }
    let st = match rustix::fs::stat(data_dir) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => {
            return Err(Error::DataDirMissing {
                path: data_dir.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(Error::sys(
                format!("stat(\"{}\")", data_dir.display()),
                e.into(),
            ))
        }
    };
    if st.st_uid == 0 {
        return Err(Error::DataDirUnusable {
            path: data_dir.to_path_buf(),
            reason: "is owned by root, and PostgreSQL refuses to run as root".into(),
            hint: "chown the directory to the PostgreSQL user (e.g. postgres) and chmod it 0700"
                .into(),
        });
    }
    crate::sys::proc::switch_user(st.st_uid, st.st_gid)
        .map_err(|e| Error::sys(format!("setresuid({0}, {0}, {0})", st.st_uid), e))?;
    Ok(Some(st.st_uid))
}
