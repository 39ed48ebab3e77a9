//! The library API in one process: what the lock file looks like, the
//! status line, the recheck, and release.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use interlock::{DataDirLock, Error, LockOptions, PidFile, PmStatus};

fn read_pidfile(dir: &std::path::Path) -> (Vec<u8>, PidFile) {
    let bytes = std::fs::read(dir.join("postmaster.pid")).unwrap();
    let pf = PidFile::parse(&bytes).unwrap();
    (bytes, pf)
}

#[test]
fn lock_file_is_postgres_format_with_our_identity() {
    let dir = tempfile::tempdir().unwrap();
    let lock = DataDirLock::acquire_with(dir.path(), &LockOptions::new().port(5433)).unwrap();
    let (bytes, pf) = read_pidfile(dir.path());
    assert_eq!(pf.pid, std::process::id() as i32);
    assert_eq!(pf.data_dir, dir.path());
    assert_eq!(pf.port, 5433);
    assert_eq!(pf.status, Some(PmStatus::Starting));
    let shm = pf.shmem.unwrap();
    assert_eq!((shm.key, shm.shmid), (lock.key().0, lock.shmid().0));
    // Line 7 as PostgreSQL prints it: "%9lu %9lu".
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(
        text.lines().nth(6).unwrap(),
        format!("{:>9} {:>9}", lock.key().to_string(), lock.shmid().0)
    );
    // Line 3 is this process's start time, as PostgreSQL's MyStartTime.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        pf.start_time <= now && pf.start_time > now - 3600,
        "{}",
        pf.start_time
    );
    let meta = std::fs::metadata(dir.path().join("postmaster.pid")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The segment: PostgreSQL's 56-byte header, keyed by the inode, mode 0600.
    let st = interlock::sys::shm::stat(lock.shmid()).unwrap();
    assert_eq!(st.size, 56);
    assert_eq!(st.mode & 0o777, 0o600);
    assert_eq!(
        lock.key(),
        interlock::pg::key_for_inode(std::fs::metadata(dir.path()).unwrap().ino())
    );
}

#[test]
fn standalone_lock_file_has_a_negative_pid_and_no_status() {
    let dir = tempfile::tempdir().unwrap();
    let _lock =
        DataDirLock::acquire_with(dir.path(), &LockOptions::new().standalone(true)).unwrap();
    let (bytes, pf) = read_pidfile(dir.path());
    assert_eq!(pf.pid, -(std::process::id() as i32));
    assert_eq!(pf.status, None);
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 7);
}

#[test]
fn status_line_is_padded_and_the_file_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = DataDirLock::acquire(dir.path()).unwrap();
    let len = |d: &std::path::Path| std::fs::metadata(d.join("postmaster.pid")).unwrap().len();
    let first = len(dir.path());
    for (status, line) in [
        (PmStatus::Ready, "ready   "),
        (PmStatus::Standby, "standby "),
        (PmStatus::Stopping, "stopping"),
    ] {
        lock.set_status(status).unwrap();
        let (bytes, pf) = read_pidfile(dir.path());
        assert_eq!(pf.status, Some(status));
        assert!(String::from_utf8(bytes)
            .unwrap()
            .ends_with(&format!("\n{line}\n")));
        assert_eq!(len(dir.path()), first);
    }
}

#[test]
fn recheck_notices_a_removed_or_replaced_lock_file_and_a_removed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = DataDirLock::acquire(dir.path()).unwrap();
    lock.recheck().unwrap();
    let path = dir.path().join("postmaster.pid");
    let saved = std::fs::read(&path).unwrap();

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(lock.recheck(), Err(Error::LockLost { .. })));

    std::fs::write(&path, b"12345\n/x\n1\n5432\n\n").unwrap();
    let e = lock.recheck().unwrap_err();
    assert!(e.to_string().contains("it names PID 12345"), "{e}");

    // Same content, but another file: still not ours.
    std::fs::write(&path, &saved).unwrap();
    assert!(matches!(lock.recheck(), Err(Error::LockLost { .. })));

    interlock::sys::shm::remove(lock.shmid()).unwrap();
    assert!(matches!(lock.recheck(), Err(Error::SegmentRemoved { .. })));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn recheck_if_due_waits_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LockOptions::new().recheck_interval(std::time::Duration::from_secs(3600));
    let mut lock = DataDirLock::acquire_with(dir.path(), &opts).unwrap();
    std::fs::remove_file(dir.path().join("postmaster.pid")).unwrap();
    assert!(lock.recheck_if_due().is_ok(), "not due yet");
    assert!(lock.recheck().is_err());
}

#[test]
fn release_removes_segment_and_lock_file_and_a_second_acquire_in_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lock = DataDirLock::acquire(dir.path()).unwrap();
    let shmid = lock.shmid();
    assert!(matches!(
        DataDirLock::acquire(dir.path()),
        Err(Error::AlreadyHeld { .. })
    ));
    assert_eq!(lock.release(), interlock::Released::Clean);
    assert!(!dir.path().join("postmaster.pid").exists());
    assert!(interlock::sys::shm::stat(shmid).is_err(), "segment removed");
    drop(DataDirLock::acquire(dir.path()).unwrap());
}

#[test]
fn release_never_removes_a_lock_file_that_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let lock = DataDirLock::acquire(dir.path()).unwrap();
    let path = dir.path().join("postmaster.pid");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"777\n/elsewhere\n1\n5432\n\n").unwrap();
    drop(lock);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"777\n/elsewhere\n1\n5432\n\n"
    );
}
