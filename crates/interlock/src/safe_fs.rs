//! Reading files that a data directory's owner controls, as root.
//!
//! `interlock` often runs as root on a directory that another user owns,
//! so every file it reads from a data directory or a configuration may be
//! hostile: a FIFO (an `open(2)` for reading blocks until a writer comes),
//! a symbolic link to `/dev/zero` or to `/etc/shadow`, a sparse file of
//! gigabytes. The functions here:
//!
//! * open the last component with `O_NONBLOCK | O_NOFOLLOW` (see `open(2)`:
//!   a FIFO opened read-only with `O_NONBLOCK` returns at once, a symbolic
//!   link fails with `ELOOP`), then `fstat` the opened descriptor and
//!   refuse anything that is not a regular file;
//! * refuse a file whose `st_size` exceeds a bound fit for what it is, and
//!   read at most one byte past the bound (a file can grow while read);
//! * walk the path one component at a time with `openat(O_PATH |
//!   O_NOFOLLOW)` and follow a symbolic link only if the directory holding
//!   it is owned by root or by our effective uid — the rule the kernel's
//!   `fs.protected_symlinks` applies in sticky directories (`may_follow_link`
//!   in `fs/namei.c`), applied here to every directory. At most
//!   [`MAX_LINKS`](crate::safe_fs::MAX_LINKS) links are followed (`MAXSYMLINKS` in
//!   `include/linux/namei.h`).
//!
//! Functions taking a `base` trust it (the data directory the operator
//! named, opened as any path is) and apply the rules to the part below it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// `PG_CONTROL_FILE_SIZE` in PostgreSQL's `src/include/catalog/pg_control.h`.
pub const PG_CONTROL_MAX: u64 = 8192;
/// `PG_VERSION` holds a major version and a newline (`initdb.c`,
/// `write_version_file`).
pub const PG_VERSION_MAX: u64 = 64;
/// `postmaster.opts` holds one command line (`postmaster.c`,
/// `CreateOptsFile`); 1 MiB is far beyond any real one.
pub const OPTS_MAX: u64 = 1 << 20;
/// A configuration file (`postgresql.conf`, `postgresql.auto.conf`, an
/// included file). A stock `postgresql.conf` is about 30 KiB; 16 MiB leaves
/// room for generated files and still bounds what we hold in memory.
pub const CONFIG_MAX: u64 = 16 << 20;
/// The most symbolic links followed while resolving one path.
pub const MAX_LINKS: usize = 40;

/// Why a file was not read. Every variant names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The path does not exist.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// Opening it was refused.
    #[error("{} cannot be opened: permission denied", path.display())]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },
    /// A FIFO, a device, a socket or a directory.
    #[error("{} is {kind}, not a regular file; not read", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// "a FIFO (named pipe)", "a directory"…
        kind: &'static str,
    },
    /// Larger than the bound for what it is.
    #[error("{} is {size} bytes, more than the {max} bytes such a file may have; not read", path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size (`st_size`).
        size: u64,
        /// The bound.
        max: u64,
    },
    /// A symbolic link in a directory neither root nor we own.
    #[error(
        "{} is a symbolic link (to \"{}\") in a directory owned by {owner}; not followed",
        path.display(),
        target.display()
    )]
    Symlink {
        /// The link (as reached).
        path: PathBuf,
        /// What it points to.
        target: PathBuf,
        /// The owner of the directory holding it.
        owner: String,
    },
    /// More than `MAX_LINKS` (40) links.
    #[error("{}: more than {MAX_LINKS} symbolic links", path.display())]
    TooManyLinks {
        /// The path.
        path: PathBuf,
    },
    /// Anything else.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The failing step.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl ReadError {
    /// Whether the file (or a directory on the way) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }

    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::NotFound { path }
            | ReadError::PermissionDenied { path }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::Symlink { path, .. }
            | ReadError::TooManyLinks { path }
            | ReadError::Io { path, .. } => path,
        }
    }

    /// The message without the leading path (for callers that name the
    /// file themselves).
    pub fn reason(&self) -> String {
        let all = self.to_string();
        let path = self.path().display().to_string();
        match all.strip_prefix(&path) {
            Some(rest) => rest.trim_start_matches([':', ' ']).to_string(),
            None => all,
        }
    }

    /// Whether the file is something PostgreSQL would never write there (a
    /// FIFO, a refused link, too large) rather than merely unreadable.
    pub fn is_hostile(&self) -> bool {
        matches!(
            self,
            ReadError::NotRegular { .. }
                | ReadError::TooLarge { .. }
                | ReadError::Symlink { .. }
                | ReadError::TooManyLinks { .. }
        )
    }
}

/// A file's first bytes and its real size.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// At most the bound plus one byte.
    pub bytes: Vec<u8>,
    /// `st_size` of the opened file.
    pub size: u64,
}

/// An opened regular file.
#[derive(Debug)]
pub struct Opened {
    /// The file.
    pub file: File,
    /// `st_size`.
    pub size: u64,
    /// `st_uid`.
    pub uid: u32,
    /// `st_mtime` (seconds).
    pub mtime: i64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_dev`.
    pub dev: u64,
}

/// "a FIFO (named pipe)", "a directory"… for an `st_mode`.
pub(crate) fn kind_of(mode: u32) -> &'static str {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

fn map_errno(path: &Path, op: &'static str, e: Errno) -> ReadError {
    match e {
        Errno::NOENT => ReadError::NotFound { path: path.into() },
        Errno::ACCESS | Errno::PERM => ReadError::PermissionDenied { path: path.into() },
        // open(2): ENXIO for a UNIX domain socket.
        Errno::NXIO => ReadError::NotRegular {
            path: path.into(),
            kind: "a socket",
        },
        e => ReadError::Io {
            path: path.into(),
            op,
            source: e.into(),
        },
    }
}

/// What the last component must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Regular,
    Directory,
}

/// Resolve `path` (relative to `base` when given and `path` is relative)
/// under the symlink rule and open its last component.
fn open_walk(base: Option<&Path>, path: &Path, want: Want) -> Result<OwnedFd, ReadError> {
    let shown = match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    };
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut cur = match base {
        _ if path.is_absolute() => rustix::fs::open("/", dir_flags, Mode::empty()),
        Some(b) => rustix::fs::open(b, dir_flags, Mode::empty()),
        None => rustix::fs::open(".", dir_flags, Mode::empty()),
    }
    .map_err(|e| map_errno(&shown, "open", e))?;
    let euid = rustix::process::geteuid().as_raw();
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_components(&mut todo, path);
    let mut links = 0usize;
    // The path as walked so far, for messages.
    let mut reached = match base {
        Some(b) if path.is_relative() => b.to_path_buf(),
        _ if path.is_absolute() => PathBuf::from("/"),
        _ => PathBuf::new(),
    };
    loop {
        let Some(name) = todo.pop_front() else {
            // The path ends in a directory (or is empty).
            return match want {
                Want::Directory => rustix::fs::openat(
                    &cur,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| map_errno(&shown, "open", e)),
                Want::Regular => Err(ReadError::NotRegular {
                    path: shown,
                    kind: "a directory",
                }),
            };
        };
        let last = todo.is_empty();
        if name == ".." {
            cur = rustix::fs::openat(&cur, "..", dir_flags, Mode::empty())
                .map_err(|e| map_errno(&shown, "open", e))?;
            reached.pop();
            continue;
        }
        let here = reached.join(&name);
        let is_link = if last {
            let flags = match want {
                Want::Regular => {
                    OFlags::RDONLY
                        | OFlags::NONBLOCK
                        | OFlags::NOFOLLOW
                        | OFlags::NOCTTY
                        | OFlags::CLOEXEC
                }
                Want::Directory => {
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
                }
            };
            match rustix::fs::openat(&cur, name.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd).map_err(|e| map_errno(&shown, "fstat", e))?;
                    let ft = FileType::from_raw_mode(st.st_mode);
                    let ok = match want {
                        Want::Regular => ft == FileType::RegularFile,
                        Want::Directory => ft == FileType::Directory,
                    };
                    if !ok {
                        return Err(ReadError::NotRegular {
                            path: shown,
                            kind: kind_of(st.st_mode),
                        });
                    }
                    return Ok(fd);
                }
                // O_NOFOLLOW on a symbolic link: ELOOP (open(2)). With
                // O_DIRECTORY a link may also give ENOTDIR; look.
                Err(Errno::LOOP) => true,
                Err(Errno::NOTDIR) if want == Want::Directory => {
                    let st = rustix::fs::statat(
                        &cur,
                        name.as_os_str(),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| map_errno(&shown, "stat", e))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        return Err(ReadError::NotRegular {
                            path: shown,
                            kind: kind_of(st.st_mode),
                        });
                    }
                    true
                }
                Err(e) => return Err(map_errno(&shown, "open", e)),
            }
        } else {
            let fd = rustix::fs::openat(
                &cur,
                name.as_os_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| map_errno(&shown, "open", e))?;
            let st = rustix::fs::fstat(&fd).map_err(|e| map_errno(&shown, "fstat", e))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    cur = fd;
                    reached = here;
                    continue;
                }
                FileType::Symlink => true,
                _ => {
                    return Err(ReadError::Io {
                        path: shown,
                        op: "open",
                        source: Errno::NOTDIR.into(),
                    })
                }
            }
        };
        debug_assert!(is_link);
        links += 1;
        if links > MAX_LINKS {
            return Err(ReadError::TooManyLinks { path: shown });
        }
        let target = rustix::fs::readlinkat(&cur, name.as_os_str(), Vec::new())
            .map_err(|e| map_errno(&here, "readlink", e))?;
        let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
        let dir_st = rustix::fs::fstat(&cur).map_err(|e| map_errno(&shown, "fstat", e))?;
        let dir_uid = dir_st.st_uid;
        // In a sticky world-writable directory (/tmp, /dev/shm) anyone can
        // plant a link: there, as `may_follow_link` in fs/namei.c does,
        // follow only links owned by us or by the directory's owner.
        let sticky_open = dir_st.st_mode & 0o1002 == 0o1002;
        let link_uid = rustix::fs::statat(
            &cur,
            name.as_os_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| map_errno(&here, "stat", e))?
        .st_uid;
        let planted = sticky_open && link_uid != euid && link_uid != dir_uid;
        if planted {
            return Err(ReadError::Symlink {
                path: here,
                target,
                owner: format!(
                    "{} and shared with everyone (sticky), the link by {}",
                    crate::process::user_name(dir_uid),
                    crate::process::user_name(link_uid)
                ),
            });
        }
        if dir_uid != 0 && dir_uid != euid {
            return Err(ReadError::Symlink {
                path: here,
                target,
                owner: crate::process::user_name(dir_uid),
            });
        }
        let mut rest = VecDeque::new();
        push_components(&mut rest, &target);
        rest.extend(todo.drain(..));
        todo = rest;
        if target.is_absolute() {
            cur = rustix::fs::open("/", dir_flags, Mode::empty())
                .map_err(|e| map_errno(&shown, "open", e))?;
            reached = PathBuf::from("/");
        }
    }
}

fn push_components(todo: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components() {
        match c {
            Component::Normal(n) => todo.push_back(n.to_os_string()),
            Component::ParentDir => todo.push_back("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Open the regular file `path` under the rules of this module (no
/// blocking open, no device, no link in a directory another user owns).
///
/// # Errors
/// See [`ReadError`].
pub fn open_regular(base: Option<&Path>, path: &Path) -> Result<Opened, ReadError> {
    let shown = match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    };
    let fd = open_walk(base, path, Want::Regular)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| map_errno(&shown, "fstat", e))?;
    Ok(Opened {
        file: File::from(fd),
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mtime: st.st_mtime,
        ino: st.st_ino,
        dev: st.st_dev,
    })
}

/// Open the directory `path` under the rules of this module, for reading
/// its entries.
///
/// # Errors
/// See [`ReadError`].
pub fn open_dir(base: Option<&Path>, path: &Path) -> Result<OwnedFd, ReadError> {
    open_walk(base, path, Want::Directory)
}

/// Open the regular file `name` (one component) in the open directory
/// `dir`, following no link; `shown` names it in errors.
///
/// # Errors
/// See [`ReadError`].
pub fn open_regular_at(dir: impl AsFd, name: &OsStr, shown: &Path) -> Result<Opened, ReadError> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP => ReadError::NotRegular {
            path: shown.into(),
            kind: "a symbolic link",
        },
        e => map_errno(shown, "open", e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| map_errno(shown, "fstat", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadError::NotRegular {
            path: shown.into(),
            kind: kind_of(st.st_mode),
        });
    }
    Ok(Opened {
        file: File::from(fd),
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mtime: st.st_mtime,
        ino: st.st_ino,
        dev: st.st_dev,
    })
}

fn read_upto(f: &mut File, max: u64, shown: &Path) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: shown.into(),
            op: "read",
            source,
        })?;
    Ok(bytes)
}

/// The first `max` bytes (plus one, to tell a larger file) of the regular
/// file `path`, and its real size. For files PostgreSQL itself reads only
/// the start of (`postmaster.pid`).
///
/// # Errors
/// See [`ReadError`]; never [`ReadError::TooLarge`].
pub fn read_prefix(base: Option<&Path>, path: &Path, max: u64) -> Result<Prefix, ReadError> {
    let shown = match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    };
    let mut o = open_regular(base, path)?;
    let bytes = read_upto(&mut o.file, max, &shown)?;
    Ok(Prefix {
        size: o.size.max(bytes.len() as u64),
        bytes,
    })
}

/// The whole regular file `path`, refused when larger than `max` bytes.
///
/// # Errors
/// See [`ReadError`].
pub fn read(base: Option<&Path>, path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let shown = match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    };
    let o = open_regular(base, path)?;
    read_whole(o, max, shown)
}

/// All of an opened regular file, refused when larger than `max` bytes
/// (by its size, or by what was read if it grew meanwhile).
fn read_whole(mut o: Opened, max: u64, shown: PathBuf) -> Result<Vec<u8>, ReadError> {
    if o.size > max {
        return Err(ReadError::TooLarge {
            path: shown,
            size: o.size,
            max,
        });
    }
    let bytes = read_upto(&mut o.file, max, &shown)?;
    if bytes.len() as u64 > max {
        // It grew while we read.
        return Err(ReadError::TooLarge {
            path: shown,
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// The whole regular file `name` (one component) in the directory `dir`,
/// refused when larger than `max` bytes. The directory is opened as any
/// path is (it is the one asked about); `name` is opened as
/// [`open_regular_at`] opens it: a symbolic link is refused whoever owns
/// the directory, for files that only a program writes there, as a
/// regular file (`interlock.fence`). `Ok(None)` when it does not exist.
///
/// # Errors
/// See [`ReadError`].
pub fn read_in(dir: &Path, name: &OsStr, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let shown = dir.join(name);
    let fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| map_errno(&shown, "open", e))?;
    match open_regular_at(&fd, name, &shown) {
        Ok(o) => read_whole(o, max, shown).map(Some),
        Err(ReadError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// As [`read`], as UTF-8 text.
///
/// # Errors
/// See [`ReadError`]; invalid UTF-8 is [`ReadError::Io`] with
/// `InvalidData`.
pub fn read_to_string(base: Option<&Path>, path: &Path, max: u64) -> Result<String, ReadError> {
    let bytes = read(base, path, max)?;
    String::from_utf8(bytes).map_err(|e| ReadError::Io {
        path: match base {
            Some(b) if path.is_relative() => b.join(path),
            _ => path.to_path_buf(),
        },
        op: "read",
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

/// `DATADIR/PG_VERSION`, trimmed; `Ok(None)` when empty.
///
/// # Errors
/// See [`ReadError`].
pub fn pg_version(data_dir: &Path) -> Result<Option<String>, ReadError> {
    let bytes = read(Some(data_dir), Path::new("PG_VERSION"), PG_VERSION_MAX)?;
    let s = String::from_utf8_lossy(&bytes).trim().to_string();
    Ok((!s.is_empty()).then_some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mkfifo(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn reads_a_small_regular_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(pg_version(d.path()).unwrap().as_deref(), Some("15"));
        assert_eq!(
            read(None, &d.path().join("PG_VERSION"), 64).unwrap(),
            b"15\n"
        );
    }

    #[test]
    fn missing_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let e = read(Some(d.path()), Path::new("global/pg_control"), 8192).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.path(), d.path().join("global/pg_control"));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        mkfifo(&d.path().join("PG_VERSION"));
        let e = pg_version(d.path()).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(e.to_string().contains("PG_VERSION"), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("PG_VERSION")).unwrap();
        let e = pg_version(d.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn a_sparse_giant_is_refused_by_its_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("postgresql.conf");
        File::create(&p).unwrap().set_len(3 << 30).unwrap();
        let e = read(None, &p, CONFIG_MAX).unwrap_err();
        match &e {
            ReadError::TooLarge { size, max, .. } => {
                assert_eq!(*size, 3 << 30);
                assert_eq!(*max, CONFIG_MAX);
            }
            _ => panic!("{e}"),
        }
        assert!(e.to_string().contains("3221225472 bytes"), "{e}");
        // The prefix reader reads the start and says the real size.
        let p = read_prefix(None, &p, 8192).unwrap();
        assert_eq!(p.bytes.len(), 8193);
        assert_eq!(p.size, 3 << 30);
    }

    #[test]
    fn a_link_to_a_device_is_refused() {
        let d = tempfile::tempdir().unwrap();
        symlink("/dev/zero", d.path().join("PG_VERSION")).unwrap();
        // Our own directory: the link is followed, and /dev/zero refused.
        let e = pg_version(d.path()).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn links_in_our_directories_are_followed_and_loops_end() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("real/f"), "x").unwrap();
        symlink("real", d.path().join("via")).unwrap();
        symlink(d.path().join("via/f"), d.path().join("abs")).unwrap();
        assert_eq!(read(Some(d.path()), Path::new("via/f"), 10).unwrap(), b"x");
        assert_eq!(read(Some(d.path()), Path::new("abs"), 10).unwrap(), b"x");
        assert_eq!(
            read(Some(d.path()), Path::new("via/../real/f"), 10).unwrap(),
            b"x"
        );
        symlink("loop", d.path().join("loop")).unwrap();
        let e = read(Some(d.path()), Path::new("loop"), 10).unwrap_err();
        assert!(matches!(e, ReadError::TooManyLinks { .. }), "{e}");
        let fd = open_dir(Some(d.path()), Path::new("via")).unwrap();
        let o = open_regular_at(&fd, OsStr::new("f"), &d.path().join("via/f")).unwrap();
        assert_eq!(o.size, 1);
    }

    #[test]
    fn read_in_refuses_links_fifos_and_giants_and_misses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let name = OsStr::new("interlock.fence");
        assert!(read_in(d.path(), name, 4096).unwrap().is_none());
        std::fs::write(d.path().join("real"), "token 1\n").unwrap();
        symlink("real", d.path().join(name)).unwrap();
        // Our own directory, and still refused: only a program writes it.
        let e = read_in(d.path(), name, 4096).unwrap_err();
        assert!(e.is_hostile() && e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_file(d.path().join(name)).unwrap();
        mkfifo(&d.path().join(name));
        let e = read_in(d.path(), name, 4096).unwrap_err();
        assert!(e.is_hostile() && e.to_string().contains("FIFO"), "{e}");
        std::fs::remove_file(d.path().join(name)).unwrap();
        File::create(d.path().join(name))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let e = read_in(d.path(), name, 4096).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { max: 4096, .. }), "{e}");
        std::fs::write(d.path().join(name), "token 1\n").unwrap();
        assert_eq!(
            read_in(d.path(), name, 4096).unwrap().unwrap(),
            b"token 1\n"
        );
        assert!(read_in(&d.path().join("gone"), name, 4096)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn links_in_another_users_directory_are_not_followed() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (chown)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(d.path().join("secret"), "s").unwrap();
        symlink(d.path().join("secret"), dir.join("PG_VERSION")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        symlink("/", dir.join("up")).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let e = pg_version(&dir).unwrap_err();
        assert!(matches!(e, ReadError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("not followed"), "{e}");
        // Intermediate components too.
        let e = read(Some(&dir), Path::new("up/etc/passwd"), 1 << 20).unwrap_err();
        assert!(matches!(e, ReadError::Symlink { .. }), "{e}");
        // The trusted base itself may be reached through a link.
        std::fs::write(dir.join("sub/f"), "y").unwrap();
        symlink(&dir, d.path().join("base")).unwrap();
        assert_eq!(
            read(Some(&d.path().join("base")), Path::new("sub/f"), 10).unwrap(),
            b"y"
        );
    }
}
