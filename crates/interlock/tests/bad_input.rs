//! Bad input: every malformed lock file and unusable data directory gives
//! a clear error naming the file (and line), and nothing is removed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use interlock::{DataDirLock, Error};

fn acquire_err(dir: &Path) -> Error {
    match DataDirLock::acquire(dir) {
        Ok(_) => panic!("acquired {}", dir.display()),
        Err(e) => e,
    }
}

fn with_lock_file(bytes: &[u8]) -> (tempfile::TempDir, Error) {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("postmaster.pid"), bytes);
    let err = acquire_err(dir.path());
    assert_eq!(
        std::fs::read(dir.path().join("postmaster.pid")).unwrap(),
        bytes,
        "the lock file is untouched"
    );
    (dir, err)
}

#[test]
fn empty_lock_file() {
    let (dir, e) = with_lock_file(b"");
    assert!(matches!(e, Error::LockFileEmpty { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "lock file \"{}/postmaster.pid\" is empty",
            dir.path().display()
        )
    );
    assert!(e.hint().unwrap().contains("another server is starting"));
}

#[test]
fn truncated_lock_file_names_the_line() {
    let (_dir, e) = with_lock_file(b"4242\n/data\n17000");
    assert!(matches!(e, Error::LockFileCorrupt { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("postmaster.pid\" is corrupt: line 3"), "{msg}");
}

#[test]
fn lock_file_with_too_few_lines() {
    let (_dir, e) = with_lock_file(b"4242\n/data\n");
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn garbage_lock_file() {
    let (_dir, e) = with_lock_file(b"\x7fELF\x02\x01\x01\0\0\0\0\n\n\n\n\n");
    assert!(matches!(e, Error::LockFileCorrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn bogus_pid_is_refused_like_postgres() {
    let (_dir, e) = with_lock_file(b"0\n/data\n1\n5432\n\n");
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn oversized_lock_file() {
    let mut big = b"4242\n/data\n1\n5432\n\n".to_vec();
    big.resize(20_000, b'x');
    let (_dir, e) = with_lock_file(&big);
    assert!(matches!(e, Error::LockFileUnsafe { .. }), "{e:?}");
    assert!(e.to_string().contains("larger than the 8192 bytes"), "{e}");
}

#[test]
fn symlinked_lock_file_is_neither_followed_nor_removed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    write_file(&target, b"precious\n");
    std::os::unix::fs::symlink(&target, dir.path().join("postmaster.pid")).unwrap();
    let e = acquire_err(dir.path());
    assert!(matches!(e, Error::LockFileUnsafe { .. }), "{e:?}");
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
    assert!(std::fs::symlink_metadata(dir.path().join("postmaster.pid"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious\n");
}

#[test]
fn lock_file_that_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("postmaster.pid")).unwrap();
    let e = acquire_err(dir.path());
    assert!(e.to_string().contains("is not a regular file"), "{e}");
    assert!(dir.path().join("postmaster.pid").is_dir());
}

#[test]
fn missing_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = acquire_err(&dir.path().join("nope"));
    assert!(matches!(e, Error::DataDirMissing { .. }), "{e:?}");
    assert!(e.to_string().ends_with("nope\" does not exist"), "{e}");
}

#[test]
fn data_directory_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("f"), b"");
    let e = acquire_err(&dir.path().join("f"));
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

#[test]
fn foreign_owned_data_directory() {
    if !is_root() {
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let e = acquire_err(dir.path());
    assert!(
        e.to_string()
            .contains("has wrong ownership: it is owned by uid 65534"),
        "{e}"
    );
    assert!(!dir.path().join("postmaster.pid").exists());
}

#[test]
fn unreadable_data_directory() {
    // Root reads everything: check it as an unprivileged user instead.
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = Cleanup::for_dir(&dir);
    let user = if is_root() {
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Some("nobody")
    } else {
        None
    };
    let h = Holder::start_as(user, &dir, &[], &[], &mut c);
    match h.outcome(&mut c) {
        Outcome::Refused { variant, message } => {
            assert_eq!(variant, "DataDirUnusable");
            assert!(
                message.contains("cannot be opened: permission denied"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}
