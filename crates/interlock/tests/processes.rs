//! The interlock against real processes: killed owners with live, stopped
//! and exec'd children, zombies, reused PIDs, deleted lock files, shifted
//! keys, racing starters, and a crash at every step of acquire and release.

mod common;

use std::time::Duration;

use common::*;
use interlock::pg::key_for_inode;
use rustix::process::Signal;

fn inode(dir: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir).unwrap())
}

fn refused(o: &Outcome, variant: &str) -> String {
    match o {
        Outcome::Refused {
            variant: v,
            message,
        } if v == variant => message.clone(),
        other => panic!("expected {variant}, got {other:?}"),
    }
}

fn acquired(o: &Outcome) {
    assert!(
        matches!(o, Outcome::Acquired { .. }),
        "expected ACQUIRED, got {o:?}"
    );
}

/// An owner that forked one child and was then SIGKILLed: the child, an
/// orphan still attached, like a backend of a killed postmaster.
fn orphaned_child(dir: &std::path::Path, c: &mut Cleanup) -> i32 {
    let mut owner = Holder::start(dir, &["--fork", "1"], c);
    acquired(&owner.outcome(c));
    let child = owner.children(1, c)[0];
    owner.kill9();
    child
}

/// Kill the orphan: then the directory is free again.
fn end_orphan_then_acquire(dir: &std::path::Path, orphan: i32, c: &mut Cleanup) {
    signal(orphan, Signal::KILL);
    wait_gone(orphan);
    acquired(&acquire_outcome(dir, c));
}

#[test]
fn killed_owner_with_live_child_is_refused_until_the_child_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let mut owner = Holder::start(dir.path(), &["--fork", "1"], &mut c);
    let Outcome::Acquired { shmid, .. } = owner.outcome(&mut c) else {
        panic!("not acquired")
    };
    let child = owner.children(1, &mut c)[0];
    owner.kill9();

    let msg = refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    assert!(
        msg.contains(&format!("ID {shmid}) is still in use")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("PID {child}")),
        "the holder is named: {msg}"
    );

    end_orphan_then_acquire(dir.path(), child, &mut c);
    assert!(
        !dir.path().join("postmaster.pid").exists(),
        "released cleanly"
    );
}

#[test]
fn killed_owner_with_stopped_child_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let mut owner = Holder::start(dir.path(), &["--fork", "2"], &mut c);
    acquired(&owner.outcome(&mut c));
    let kids = owner.children(2, &mut c);
    signal(kids[0], Signal::STOP);
    signal(kids[1], Signal::KILL);
    // Its parent, alive, does not reap it: wait until it has exited.
    wait_until("the child to exit", || !running(kids[1]));
    owner.kill9();

    let msg = refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    assert!(msg.contains(&format!("PID {}", kids[0])), "{msg}");
    end_orphan_then_acquire(dir.path(), kids[0], &mut c);
}

#[test]
fn exec_child_is_kept_covered_after_its_parent_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let mut owner = Holder::start(dir.path(), &["--exec", "sleep", "600"], &mut c);
    acquired(&owner.outcome(&mut c));
    let pids = owner.children(2, &mut c);
    let (exec, keeper) = (pids[0], pids[1]);
    owner.kill9();
    assert!(running(exec) && running(keeper));

    let msg = refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    assert!(
        msg.contains(&format!("PID {keeper} (interlock-keep: ")),
        "{msg}"
    );

    // The keeper goes exactly when the command goes.
    signal(exec, Signal::KILL);
    wait_gone(keeper);
    acquired(&acquire_outcome(dir.path(), &mut c));
}

#[test]
fn zombie_owner_counts_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let owner = Holder::start(dir.path(), &[], &mut c);
    acquired(&owner.outcome(&mut c));
    // Kill it but do not reap it: it stays a zombie, and kill(pid, 0)
    // still succeeds, which is all PostgreSQL looks at.
    signal(owner.pid, Signal::KILL);
    for _ in 0..500 {
        if !running(owner.pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        std::path::Path::new(&format!("/proc/{}", owner.pid)).exists(),
        "still a zombie"
    );
    assert!(
        rustix::process::test_kill_process(rustix::process::Pid::from_raw(owner.pid).unwrap())
            .is_ok()
    );
    acquired(&acquire_outcome(dir.path(), &mut c));
    drop(owner);
}

#[test]
fn lock_file_naming_an_unrelated_live_process_is_stale_and_that_process_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let mut bystander = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = bystander.id() as i32;
    c.pid(pid);
    // Written an hour before the bystander started: a reused PID.
    let started_long_ago = 1_600_000_000;
    write_file(
        &dir.path().join("postmaster.pid"),
        format!(
            "{pid}\n{}\n{started_long_ago}\n5432\n/tmp\n*\n   999999     999999\nready   \n",
            dir.path().display()
        )
        .as_bytes(),
    );
    let h = Holder::start(dir.path(), &[], &mut c);
    acquired(&h.outcome(&mut c));
    let text = std::fs::read_to_string(dir.path().join("postmaster.pid")).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        h.pid.to_string(),
        "the new lock file is the winner's"
    );
    h.finish();
    assert!(running(pid), "the bystander was not signalled");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn live_owner_is_refused_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let owner = Holder::start(dir.path(), &["--ready"], &mut c);
    acquired(&owner.outcome(&mut c));
    let msg = refused(&acquire_outcome(dir.path(), &mut c), "LockFileHeld");
    assert!(
        msg.contains(&format!("another postmaster (PID {})", owner.pid)),
        "{msg}"
    );
    assert!(msg.contains("whose header names this directory"), "{msg}");
    assert!(owner.finish().starts_with("RELEASED Clean"));
}

#[test]
fn deleting_the_lock_file_does_not_let_anyone_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let child = orphaned_child(dir.path(), &mut c);
    std::fs::remove_file(dir.path().join("postmaster.pid")).unwrap();
    refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    end_orphan_then_acquire(dir.path(), child, &mut c);
}

/// 000_2c92e32b102abf06.txt's bypass: the old holder sits on key K+1
/// because K was taken when it started; K is freed and the lock file moved
/// away, so a key scan from K finds nothing. PostgreSQL starts here.
#[test]
fn shifting_the_key_does_not_let_anyone_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let key = key_for_inode(inode(dir.path()));
    // Another cluster's segment on our first key.
    let foreign =
        interlock::sys::shm::create_exclusive(key, 56).expect("test segment on the inode key");
    c.shmid(foreign);
    let mut owner = Holder::start(dir.path(), &["--fork", "1"], &mut c);
    acquired(&owner.outcome(&mut c));
    let child = owner.children(1, &mut c)[0];
    let line7 = std::fs::read_to_string(dir.path().join("postmaster.pid")).unwrap();
    let k: i64 = line7
        .lines()
        .nth(6)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Past K (K+1, or further if a neighbouring test directory's segment
    // sits on K+1: tmpfs hands out consecutive inodes).
    assert!(
        k > i64::from(key.0),
        "the owner moved past the taken key: {k}"
    );
    owner.kill9();

    interlock::sys::shm::remove(foreign).unwrap();
    std::fs::rename(
        dir.path().join("postmaster.pid"),
        dir.path().join("postmaster.pid.bak"),
    )
    .unwrap();
    let msg = refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    assert!(msg.contains(&format!("PID {child}")), "{msg}");

    end_orphan_then_acquire(dir.path(), child, &mut c);
}

#[test]
fn concurrent_starters_have_exactly_one_winner_every_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    for round in 0..15 {
        let starters: Vec<Holder> = (0..6)
            .map(|_| Holder::start(dir.path(), &[], &mut c))
            .collect();
        let outcomes: Vec<Outcome> = starters.iter().map(|h| h.outcome(&mut c)).collect();
        let winners: Vec<i32> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Acquired { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for o in &outcomes {
            if let Outcome::Refused { variant, .. } = o {
                assert!(
                    variant == "LockFileHeld" || variant == "SegmentInUse",
                    "round {round}: {o:?}"
                );
            }
        }
        // Nobody deleted the winner's lock file.
        let text = std::fs::read_to_string(dir.path().join("postmaster.pid")).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            winners[0].to_string(),
            "round {round}"
        );
        for h in starters {
            h.finish();
        }
        assert!(
            !dir.path().join("postmaster.pid").exists(),
            "round {round}: released"
        );
    }
}

const ACQUIRE_STEPS: &[&str] = &[
    "mutex_taken",
    "lockfile_checked",
    "segments_scanned",
    "segment_created",
    "segment_attached",
    "stale_lockfile_removed",
    "lockfile_unlinked_copy_written",
    "lockfile_written",
];

fn crash_at(dir: &std::path::Path, step: &str, c: &mut Cleanup) {
    let mut h = Holder::start_as(None, dir, &[], &[("INTERLOCK_FAILPOINT", step)], c);
    let status = h.child.wait().unwrap();
    let line = h.line();
    use std::os::unix::process::ExitStatusExt;
    // A step that is not reached on this path (e.g. no stale file to
    // remove) lets the acquire finish; it then holds until stdin closes.
    if status.signal() != Some(9) {
        panic!("{step}: holder was expected to crash, exited {status:?} after {line:?}");
    }
}

#[test]
fn a_crash_at_any_step_of_acquire_never_wedges_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    // Leave a stale lock file so that every step is on the path.
    let mut first = Holder::start(dir.path(), &[], &mut c);
    acquired(&first.outcome(&mut c));
    first.kill9();
    for step in ACQUIRE_STEPS {
        crash_at(dir.path(), step, &mut c);
        let h = Holder::start(dir.path(), &[], &mut c);
        let o = h.outcome(&mut c);
        assert!(
            matches!(o, Outcome::Acquired { .. }),
            "after a crash at {step}: {o:?}"
        );
        // Leave a stale file again for the next step.
        let mut h = h;
        h.kill9();
    }
}

#[test]
fn a_crash_at_any_step_never_wins_while_an_old_holder_lives() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let orphan = orphaned_child(dir.path(), &mut c);
    for step in ACQUIRE_STEPS {
        let h = Holder::start_as(
            None,
            dir.path(),
            &[],
            &[("INTERLOCK_FAILPOINT", step)],
            &mut c,
        );
        // Either it crashed, or it refused before reaching the step.
        if let Some(line) = h.line() {
            assert!(line.starts_with("REFUSED SegmentInUse"), "{step}: {line}");
        }
        refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    }
    end_orphan_then_acquire(dir.path(), orphan, &mut c);
}

#[test]
fn a_crash_during_release_leaves_nothing_that_blocks() {
    for step in ["release_detached", "release_segment_removed"] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cleanup::for_dir(dir.path());
        let h = Holder::start_as(
            None,
            dir.path(),
            &[],
            &[("INTERLOCK_FAILPOINT", step)],
            &mut c,
        );
        acquired(&h.outcome(&mut c));
        h.finish();
        acquired(&acquire_outcome(dir.path(), &mut c));
    }
}

#[test]
fn release_with_children_still_attached_keeps_the_directory_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(dir.path());
    let owner = Holder::start(dir.path(), &["--fork", "1"], &mut c);
    acquired(&owner.outcome(&mut c));
    let child = owner.children(1, &mut c)[0];
    assert_eq!(owner.finish(), "RELEASED Deferred { nattch: 1 }");
    assert!(
        dir.path().join("postmaster.pid").exists(),
        "kept while the child lives"
    );
    refused(&acquire_outcome(dir.path(), &mut c), "SegmentInUse");
    signal(child, Signal::KILL);
    wait_gone(child);
    acquired(&acquire_outcome(dir.path(), &mut c));
}
