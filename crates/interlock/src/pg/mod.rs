//! The one model of PostgreSQL's startup rules.
//!
//! What `interlock status` predicts, what [`DataDirLock::acquire`]
//! enforces and what `interlock fix` acts on must be the rules the real
//! server applies, so each rule is written here once and used by the lock
//! and by the operator tooling alike: which key the server probes first,
//! how a major version is read from `PG_VERSION`, how `postmaster.pid` is
//! read, and the names of the lock files; which probe algorithm a release
//! runs and what one step of its key probe does with the segment it finds
//! ([`probe_step`]); what the server makes of the segment named on line 7
//! of a stale lock file ([`line7_verdict`]); and its data directory checks,
//! with each version's wording ([`check_data_dir_owner`],
//! [`check_data_dir_mode`]). The formats themselves (the lock file's
//! lines, a process title) are parsed in `interlock_format`.
//!
//! Nothing here signals a process or serialises anything.
//!
//! [`DataDirLock::acquire`]: crate::DataDirLock::acquire

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use interlock_format::pidfile::MAX_PIDFILE_SIZE;

pub use crate::safe_fs::ReadError;
use crate::sys::shm::ShmKey;

mod datadir;
mod probe;

pub use self::datadir::{check_data_dir_mode, check_data_dir_owner, DataDirProblem};
pub use self::probe::{
    algorithm, algorithm_of_server, line7_verdict, minor_of, probe_step, Algorithm, HeaderSeen,
    Line7Doubt, Line7Verdict, ProbeStep, SegmentAtKey, ShmAccess, Whose,
};

/// The lock file's name inside the data directory (`DIRECTORY_LOCK_FILE`
/// in `src/backend/utils/init/miscinit.c`).
pub const LOCK_FILE_NAME: &str = "postmaster.pid";

/// The lock file of the Unix socket for `port` in the socket directory
/// `dir`: `DIR/.s.PGSQL.PORT.lock` (`UNIXSOCK_PATH` in
/// `src/include/libpq/pqcomm.h`, plus `.lock` in `Lock_AF_UNIX`,
/// `src/backend/libpq/pqcomm.c`).
pub fn socket_lock_file(dir: &str, port: u16) -> String {
    format!("{}/.s.PGSQL.{port}.lock", dir.trim_end_matches('/'))
}

/// The major version in `PG_VERSION`'s text (`"15"` → 15; `"9.6"` → 9):
/// the number before the first dot, as `ValidatePgVersion`
/// (`src/backend/utils/init/miscinit.c`) reads it with `"%ld.%ld"`.
pub fn major_of(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

/// Where the keys a server probes for its System V segment start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySeed {
    /// `port * 1000 + 1` (10–12).
    Port,
    /// The data directory's inode (13 and later).
    Inode,
}

/// The key seed of a major version: `PGSharedMemoryCreate`
/// (`src/backend/port/sysv_shmem.c`) starts `NextShmemSegID` at the port
/// times 1000 in 10–12 and at the data directory's `st_ino` from 13 on.
/// `None` before 10, which this crate does not model.
pub fn key_seed(major: u32) -> Option<KeySeed> {
    match major {
        10..=12 => Some(KeySeed::Port),
        13.. => Some(KeySeed::Inode),
        _ => None,
    }
}

/// The key a 10–12 server probes first: `port * 1000 + 1`
/// (`PGSharedMemoryCreate`, `src/backend/port/sysv_shmem.c`).
pub fn key_for_port(port: u16) -> ShmKey {
    ShmKey(i32::from(port) * 1000 + 1)
}

/// The key a 13+ server probes first: the data directory's inode, its low
/// 32 bits reinterpreted as a signed `key_t`.
pub fn key_for_inode(ino: u64) -> ShmKey {
    ShmKey(ino as u32 as i32)
}

/// The key a server of `major` probes first, given its port and its data
/// directory's inode; `None` for a major before 10 (see [`key_seed`]).
pub fn first_key(major: u32, port: u16, ino: u64) -> Option<ShmKey> {
    Some(match key_seed(major)? {
        KeySeed::Port => key_for_port(port),
        KeySeed::Inode => key_for_inode(ino),
    })
}

/// A lock file's first bytes, as read by [`read_lock_file_at`].
#[derive(Debug, Clone)]
pub struct LockFileBytes {
    /// At most [`MAX_PIDFILE_SIZE`] + 1 bytes: the server reads no more
    /// (`CreateLockFile` reads into a `BLCKSZ` buffer), and one byte more
    /// tells a larger file. Parse them strictly with
    /// `interlock_format::pidfile::PidFile::parse` or as the server does
    /// with `interlock_format::pidfile::ServerReading::of`.
    pub bytes: Vec<u8>,
    /// The file's size (`st_size`, or what was read if it grew).
    pub size: u64,
    /// Its device, to recognise the file again.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
}

/// Read the lock file `name` (`postmaster.pid`, or a socket's
/// `.s.PGSQL.PORT.lock`) in the open directory `dir`: never following a
/// symbolic link, never blocking on a FIFO, never more than the server
/// reads (the rules of `safe_fs`). `shown` names it in errors. `Ok(None)`
/// when there is none. A symbolic link is [`ReadError::NotRegular`] of
/// kind "a symbolic link".
///
/// # Errors
/// See [`ReadError`]; never [`ReadError::TooLarge`].
pub fn read_lock_file_at(
    dir: impl AsFd,
    name: &OsStr,
    shown: &Path,
) -> Result<Option<LockFileBytes>, ReadError> {
    let opened = match crate::safe_fs::open_regular_at(dir, name, shown) {
        Ok(o) => o,
        Err(ReadError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(1024);
    (&opened.file)
        .take(MAX_PIDFILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: shown.into(),
            op: "read",
            source,
        })?;
    Ok(Some(LockFileBytes {
        size: opened.size.max(bytes.len() as u64),
        bytes,
        dev: opened.dev,
        ino: opened.ino,
    }))
}

/// As [`read_lock_file_at`], for the lock file at `path`; the directory
/// holding it is opened as any path is (it is the one asked about).
///
/// # Errors
/// See [`read_lock_file_at`]; a missing directory is `Ok(None)`.
pub fn read_lock_file(path: &Path) -> Result<Option<LockFileBytes>, ReadError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(path.as_os_str());
    let fd = match rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
            return Err(ReadError::PermissionDenied { path: path.into() })
        }
        Err(e) => {
            return Err(ReadError::Io {
                path: path.into(),
                op: "open",
                source: e.into(),
            })
        }
    };
    read_lock_file_at(&fd, name, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_per_major() {
        assert_eq!(key_seed(9), None);
        assert_eq!(key_seed(10), Some(KeySeed::Port));
        assert_eq!(key_seed(12), Some(KeySeed::Port));
        assert_eq!(key_seed(13), Some(KeySeed::Inode));
        assert_eq!(key_seed(18), Some(KeySeed::Inode));
        assert_eq!(first_key(12, 5432, 77), Some(ShmKey(5_432_001)));
        assert_eq!(first_key(13, 5432, 77), Some(ShmKey(77)));
        assert_eq!(first_key(9, 5432, 77), None);
        // The inode's low 32 bits, as a signed key_t.
        assert_eq!(key_for_inode(4096), ShmKey(4096));
        assert_eq!(key_for_inode(0x1_8000_0000), ShmKey(i32::MIN));
        assert_eq!(key_for_inode(0x1_8000_0001), ShmKey(-2147483647));
        assert_eq!(
            key_for_inode(0x1_8000_0001).to_string(),
            "18446744071562067969"
        );
        assert_eq!(key_for_port(5432), ShmKey(5432001));
        assert_eq!(key_for_port(65535), ShmKey(65_535_001));
    }

    #[test]
    fn majors() {
        assert_eq!(major_of("15"), Some(15));
        assert_eq!(major_of("15.18"), Some(15));
        assert_eq!(major_of("9.6"), Some(9));
        assert_eq!(major_of(" 16\n"), Some(16));
        assert_eq!(major_of("x"), None);
        assert_eq!(major_of(""), None);
    }

    #[test]
    fn socket_lock_names() {
        assert_eq!(socket_lock_file("/tmp/", 5432), "/tmp/.s.PGSQL.5432.lock");
        assert_eq!(
            socket_lock_file("/run/postgresql", 5433),
            "/run/postgresql/.s.PGSQL.5433.lock"
        );
    }

    #[test]
    fn lock_file_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE_NAME);
        assert!(read_lock_file(&p).unwrap().is_none());
        assert!(read_lock_file(&d.path().join("nope/x")).unwrap().is_none());
        std::fs::write(&p, vec![b'1'; MAX_PIDFILE_SIZE + 100]).unwrap();
        let r = read_lock_file(&p).unwrap().unwrap();
        assert_eq!(r.bytes.len(), MAX_PIDFILE_SIZE + 1);
        assert_eq!(r.size, MAX_PIDFILE_SIZE as u64 + 100);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        match read_lock_file(&p) {
            Err(ReadError::NotRegular { kind, .. }) => assert_eq!(kind, "a symbolic link"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&p).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        match read_lock_file(&p) {
            Err(ReadError::NotRegular { kind, .. }) => assert_eq!(kind, "a FIFO (named pipe)"),
            other => panic!("{other:?}"),
        }
    }
}
