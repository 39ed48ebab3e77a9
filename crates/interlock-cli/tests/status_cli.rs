//! `interlock status` as a user runs it: the human report, JSON, exit codes
//! and `--help`, on data directories put in known states by hand.

mod common;

use std::os::unix::fs::PermissionsExt;

use assert_cmd::Command as Cmd;
use common::*;

#[test]
fn status_help() {
    let out = Cmd::new(bin()).args(["status", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn report_of_an_empty_lock_file() {
    let d = fake_cluster();
    std::fs::write(d.path().join("postmaster.pid"), b"").unwrap();
    let (code, stdout, _) = run(&["status"], d.path());
    assert_eq!(code, Some(1), "blocked exits 1");
    // Piped: no colour codes.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(d.path()).unwrap().ino();
    let stdout = stdout
        .replace(&format!("inode {ino}"), "inode [INODE]")
        .replace(&format!("{:#010x}", ino as u32), "[KEY]");
    insta::assert_snapshot!(stdout);
}

#[test]
fn json_has_the_documented_fields_and_exit_codes() {
    let d = fake_cluster();
    let (code, stdout, _) = run(&["status", "--json"], d.path());
    assert_eq!(code, Some(0), "will start: exit 0\n{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["data_dir"], "[DATADIR]");
    assert_eq!(v["verdict"], "will_start");
    assert!(v["postgres_would_say"].is_null());
    assert!(v["holders"].as_array().unwrap().is_empty());
    assert!(v["findings"].is_array());
    assert!(!v["remedy"].as_array().unwrap().is_empty());

    std::fs::write(d.path().join("postmaster.pid"), b"garbage\n").unwrap();
    let (code, stdout, _) = run(&["status", "--json"], d.path());
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verdict"], "blocked");
    assert_eq!(
        v["postgres_would_say"],
        "bogus data in lock file \"postmaster.pid\": \"garbage\n\""
    );
    assert_eq!(v["findings"][0]["code"], "lock_file_corrupt");
}

#[test]
fn bad_directories_are_errors_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope");
    let (code, stdout, stderr) = run(&["status"], &missing);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "data directory \"{}\" does not exist",
            missing.display()
        )),
        "{stderr}"
    );
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (code, _, stderr) = run(&["status"], &file);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

#[test]
fn wrong_permissions_and_missing_pg_version_are_what_the_server_says() {
    let d = fake_cluster();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, stdout, _) = run(&["status", "--json"], d.path());
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["postgres_would_say"],
        "data directory \"[DATADIR]\" has invalid permissions"
    );
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(d.path().join("PG_VERSION")).unwrap();
    let (_, stdout, _) = run(&["status", "--json"], d.path());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["postgres_would_say"],
        "\"[DATADIR]\" is not a valid data directory"
    );
    assert_eq!(v["findings"][0]["code"], "data_dir_invalid");
}

#[test]
fn scan_help() {
    let out = Cmd::new(bin()).args(["scan", "--help"]).output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}
