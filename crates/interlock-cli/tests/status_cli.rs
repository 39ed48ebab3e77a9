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
    // checkDataDir's own FATAL, word for word (interlock::pg::DataDirProblem).
    assert!(
        stderr.starts_with(&format!(
            "interlock: PostgreSQL would say: FATAL:  data directory \"{}\" does not exist\n",
            missing.display()
        )),
        "{stderr}"
    );
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (code, _, stderr) = run(&["status"], &file);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with(&format!(
            "interlock: PostgreSQL would say: FATAL:  specified data directory \"{}\" is not a directory\n",
            file.display()
        )),
        "{stderr}"
    );
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

/// A fake cluster (as `fake_cluster`) at `parent/name/data`.
fn fake_cluster_at(parent: &std::path::Path, name: &std::ffi::OsStr) -> std::path::PathBuf {
    let data = parent.join(name).join("data");
    std::fs::create_dir_all(data.join("global")).unwrap();
    std::fs::write(data.join("PG_VERSION"), "16\n").unwrap();
    std::fs::write(data.join("global/pg_control"), [0u8; 8192]).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    data
}

/// Issue 12, item 2: the `rm` a report prints names exactly the lock file
/// when pasted into bash, even for directories named with a space and a
/// quote, a newline, or terminal escapes and bytes that are not UTF-8; and
/// no such name breaks a line of the report.
#[test]
fn printed_commands_are_shell_quoted_and_lines_stay_whole() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let have_bash = std::process::Command::new("bash")
        .args(["-c", "exit 0"])
        .status()
        .is_ok_and(|s| s.success());
    let t = tempfile::tempdir().unwrap();
    for name in [
        &b"x y'z"[..],
        b"a\nb",
        b"esc\x1b[31mred\ttab\xff",
        b"/srv/other", // joined: "…//srv/other/data"
    ] {
        let data = fake_cluster_at(t.path(), OsStr::from_bytes(name));
        let lock = data.join("postmaster.pid");
        std::fs::write(&lock, b"").unwrap();
        let out = Cmd::new(bin()).arg("status").arg(&data).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name:?}");
        let stdout = String::from_utf8(out.stdout).expect("the report is UTF-8");
        // One line per line: no control character, no line starting with
        // what follows a newline in the name.
        for line in stdout.lines() {
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(!line.starts_with("b/data"), "{stdout}");
        }
        let rm = stdout
            .lines()
            .find_map(|l| l.split_once("then remove the lock file: rm "))
            .map(|(_, word)| word)
            .unwrap_or_else(|| panic!("no rm step:\n{stdout}"));
        assert_eq!(
            interlock_format::shell::unquote(rm).as_deref(),
            Some(lock.as_os_str().as_bytes()),
            "{rm}"
        );
        if have_bash {
            // The pasted command, with `rm` swapped for a printer of its
            // arguments: exactly one, the lock file.
            let args = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("printf '%s\\0' {rm}"))
                .output()
                .unwrap();
            assert!(args.status.success());
            assert_eq!(
                args.stdout,
                [lock.as_os_str().as_bytes(), b"\0"].concat(),
                "{rm}"
            );
        }
    }
}
