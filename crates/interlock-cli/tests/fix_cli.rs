//! `interlock fix` and `interlock demo` as a user runs them, without a
//! server: `--help`, the plan for a lock file PostgreSQL never removes by
//! itself, `--yes`, refusals and errors with their exit codes.

mod common;

use assert_cmd::Command as Cmd;
use common::*;

fn fix(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String, String) {
    run(&[&["fix"], args].concat(), dir)
}

#[test]
fn fix_help() {
    let out = Cmd::new(bin()).args(["fix", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn demo_help() {
    let out = Cmd::new(bin()).args(["demo", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_empty_lock_file_is_planned_then_removed() {
    let d = fake_cluster();
    let lock = d.path().join("postmaster.pid");
    std::fs::write(&lock, b"").unwrap();
    let (code, stdout, _) = fix(&[], d.path());
    assert_eq!(code, Some(1), "a plan waiting for --yes exits 1\n{stdout}");
    assert!(lock.exists(), "the plan alone removed it");
    insta::assert_snapshot!(stdout);

    let (code, stdout, _) = fix(&["--yes", "--json"], d.path());
    assert_eq!(code, Some(0), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["outcome"]["steps"][0]["result"], "done", "{v:#}");
    assert_eq!(v["outcome"]["after"]["verdict"], "will_start");
    assert_eq!(v["outcome"]["ready"], true);
    assert!(!lock.exists());

    // Nothing left to do: exit 0, no outcome.
    let (code, stdout, _) = fix(&["--yes", "--json"], d.path());
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["outcome"].is_null());
}

#[test]
fn a_problem_that_is_not_the_interlocks_is_refused_with_exit_3() {
    let d = fake_cluster();
    std::fs::remove_file(d.path().join("PG_VERSION")).unwrap();
    std::fs::write(d.path().join("postmaster.pid"), b"").unwrap();
    let (code, stdout, _) = fix(&["--yes", "--json"], d.path());
    assert_eq!(code, Some(3), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["plan"]["refused"][0]["code"], "not_interlock", "{v:#}");
    assert!(v["outcome"].is_null());
    assert!(
        d.path().join("postmaster.pid").exists(),
        "nothing is changed"
    );
}

#[test]
fn a_missing_directory_is_an_error_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope");
    let (code, stdout, stderr) = fix(&["--yes"], &missing);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("does not exist"), "{stderr}");
}
