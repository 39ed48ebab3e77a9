//! `interlock hold` as a user runs it: exit codes, what it leaves behind,
//! signals, refusals, and `--help`.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use assert_cmd::Command as Cmd;
use common::*;
use predicates::str::contains;

#[test]
fn hold_runs_the_command_with_the_lock_in_place_and_leaves_nothing_behind() {
    let t = TestDir::new();
    let _c = Cleanup::for_dir(&t.data);
    let script = "head -1 postmaster.pid; sed -n 7p postmaster.pid; exit 7";
    let out = Cmd::new(bin())
        .arg("hold")
        .arg(&t.data)
        .args([
            "--",
            "sh",
            "-c",
            &format!("cd '{}' && {script}", t.data.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's status passes through"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let pid_line = lines.next().unwrap();
    assert!(
        pid_line.starts_with('-'),
        "a standalone lock file: {pid_line}"
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().count(),
        2,
        "line 7 holds key and shmid"
    );
    assert!(!t.data.join("postmaster.pid").exists(), "lock file removed");
    assert!(segments_of(&t.data).is_empty(), "segment removed");
}

#[test]
fn hold_passes_sigint_and_sigterm_on_and_exits_like_the_command() {
    use rustix::process::Signal;
    for (sig, n) in [(Signal::INT, 2), (Signal::TERM, 15)] {
        let t = TestDir::new();
        let mut c = Cleanup::for_dir(&t.data);
        let (mut hold, sleep_pid, banner) = spawn_hold(&t.data, &[], &mut c);
        assert!(banner.starts_with("interlock: holding"), "{banner}");
        signal(hold.id() as i32, sig);
        let st = hold.wait().unwrap();
        assert_eq!(st.code(), Some(128 + n), "{sig:?}");
        assert!(!running(sleep_pid));
        assert!(!t.data.join("postmaster.pid").exists());
        assert!(segments_of(&t.data).is_empty());
    }
}

#[test]
fn a_second_hold_is_refused_naming_the_first() {
    let t = TestDir::new();
    let mut c = Cleanup::for_dir(&t.data);
    let (mut first, _, _) = spawn_hold(&t.data, &[], &mut c);
    Cmd::new(bin())
        .arg("hold")
        .arg(&t.data)
        .args(["--", "true"])
        .assert()
        .code(75)
        .stderr(contains(format!(
            "another postgres (PID {}) is running",
            first.id()
        )));
    signal(first.id() as i32, rustix::process::Signal::TERM);
    assert_eq!(
        first.wait().unwrap().code(),
        Some(143),
        "the first hold is unharmed"
    );
}

/// Issue 12, item 13: with `--no-lock-file` there is no lock file to name
/// the first hold, and (run as root, it switched to the owner, so it is not
/// dumpable) its maps may be unreadable: the loser still names it, by the
/// segment's creator PID, with its command line.
#[test]
fn a_second_segment_only_hold_is_refused_naming_the_first_and_its_command() {
    let t = TestDir::new();
    let mut c = Cleanup::for_dir(&t.data);
    let (mut first, _, _) = spawn_hold(&t.data, &["--no-lock-file"], &mut c);
    let out = Cmd::new(bin())
        .args(["hold", "--no-lock-file"])
        .arg(&t.data)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = format!(
        "PID {} (interlock: {} hold --no-lock-file {} -- sleep 600)",
        first.id(),
        bin().display(),
        t.data.display()
    );
    let mut lines = stderr.lines();
    let (error, hint) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(error.contains(&format!("attached by {named}")), "{stderr}");
    assert!(hint.contains(&named), "{stderr}");
    assert!(
        hint.contains(&format!("kill -TERM {}", first.id())),
        "{stderr}"
    );
    signal(first.id() as i32, rustix::process::Signal::TERM);
    assert_eq!(first.wait().unwrap().code(), Some(143));
}

#[test]
fn hold_reports_missing_commands_and_directories_with_their_codes() {
    let t = TestDir::new();
    let _c = Cleanup::for_dir(&t.data);
    Cmd::new(bin())
        .arg("hold")
        .arg(&t.data)
        .args(["--", "/nonexistent/command"])
        .assert()
        .code(127)
        .stderr(contains("cannot run /nonexistent/command"));
    assert!(!t.data.join("postmaster.pid").exists());
    Cmd::new(bin())
        .arg("hold")
        .arg(t.root.path().join("nope"))
        .args(["--", "true"])
        .assert()
        .code(125)
        .stderr(contains("does not exist"));
}

#[test]
fn hold_as_root_refuses_a_root_owned_directory() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    Cmd::new(bin())
        .arg("hold")
        .arg(d.path())
        .args(["--", "true"])
        .assert()
        .code(125)
        .stderr(contains(
            "is owned by root, and PostgreSQL refuses to run as root",
        ));
    assert!(!d.path().join("postmaster.pid").exists());
}

#[test]
fn hold_as_root_acts_as_the_directory_owner() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new();
    let _c = Cleanup::for_dir(&t.data);
    let out = Cmd::new(bin())
        .arg("hold")
        .arg(&t.data)
        .args(["--", "id", "-un"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), PG_USER);
}

#[test]
fn help_lists_exit_codes() {
    let out = Cmd::new(bin()).args(["hold", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("hold_help", String::from_utf8_lossy(&out.stdout));
    let out = Cmd::new(bin()).arg("--help").output().unwrap();
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}
