//! The lock file's PID must be tied to THIS directory (issue 13, situation
//! 1), a data directory owned by someone else than its server's user
//! (situation 3), and PostgreSQL 10's words for a group-readable directory
//! (situation 5); each prediction checked against the real `postgres`.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// The copy's port; the original runs on 5999 (`common::start`). Each has
/// its socket in its own data directory.
const COPY_PORT: &str = "5997";

/// Debian's 15 and every cached build.
fn builds(debian: PathBuf) -> Vec<(String, PathBuf)> {
    let mut b = vec![("debian-15".to_string(), debian)];
    b.extend(cached_builds());
    b
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `interlock status --json --postgres BINDIR/postgres [--port P] DATA`,
/// with its exit code checked against the verdict.
fn status_of(bindir: &Path, data: &Path, port: Option<&str>) -> Value {
    let mut cmd = Command::new(bin());
    cmd.args(["status", "--json", "--postgres"])
        .arg(bindir.join("postgres"));
    if let Some(p) = port {
        cmd.args(["--port", p]);
    }
    let out = cmd.arg(data).stdin(Stdio::null()).output().unwrap();
    let r = json_of(&out);
    let expected = match (r["verdict"].as_str(), r["safe_to_start"].as_bool()) {
        (Some("running"), _) | (Some("will_start"), Some(true)) => 0,
        (Some("will_start"), _) | (Some("blocked"), _) => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(expected), "{r:#}");
    r
}

/// `interlock fix --json --yes [--port P] DATA`: the report and exit code.
fn fix_yes(data: &Path, port: Option<&str>) -> (Value, i32) {
    let mut cmd = Command::new(bin());
    cmd.args(["fix", "--json", "--yes", "--timeout", "3"]);
    if let Some(p) = port {
        cmd.args(["--port", p]);
    }
    let out = cmd.arg(data).stdin(Stdio::null()).output().unwrap();
    (json_of(&out), out.status.code().unwrap_or(-1))
}

fn remedy_text(r: &Value) -> String {
    r["remedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `common::start_postgres` on another port: `postgres -D data -p port -k
/// data` as postgres, until ready or exited. `Ok(child)` when it runs,
/// `Err(log)` when it stopped.
fn start_on(bindir: &Path, data: &Path, port: &str, c: &mut Cleanup) -> Result<Child, String> {
    let k = data.display().to_string();
    match start_postgres_with(
        bindir,
        data,
        &["-p", port, "-c", "listen_addresses=", "-k", &k],
        c,
    ) {
        Start::Running(child) => Ok(child),
        Start::Exited(log) => Err(log),
    }
}

/// `common::psql` on `port`, with Debian's psql (the cached builds have
/// none; any psql speaks to 10–18).
fn psql_on(data: &Path, port: &str, sql: &str) -> String {
    let psql = pg_bindir().expect("Debian's PostgreSQL").join("psql");
    let out = as_postgres(
        Command::new(psql)
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-p", port])
            .args(["-U", "postgres", "-d", "postgres", "-h"])
            .arg(data)
            .args(["-c", sql])
            .stdin(Stdio::null()),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ------------------------------------------------------------ situation 1

/// A data directory copied (`cp -a`) from a running cluster: its lock file
/// names the original's postmaster, which the server's `kill(pid, 0)`
/// finds alive. `status` of the copy: blocked with the server's words, the
/// PID another directory's server, a remedy that removes the copy's lock
/// file and never stops or signals the original; `fix --yes` removes it,
/// the copy starts on its own port, the original still serves.
#[test]
fn a_copy_of_a_running_cluster_is_blocked_by_another_directorys_server() {
    let debian = require_postgres!();
    for (name, bindir) in builds(debian) {
        copy_of_a_running_cluster(&name, &bindir);
    }
}

fn copy_of_a_running_cluster(name: &str, bindir: &Path) {
    let t = cluster(bindir);
    let copy = t.root.path().join("copy");
    let mut c = Cleanup::for_dir(&t.data);
    c.dirs.push(copy.clone());
    let original = start(bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&t.data)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());

    let r = status_of(bindir, &copy, Some(COPY_PORT));
    assert_eq!(r["verdict"], "blocked", "{name}: {r:#}");
    assert_eq!(
        r["postgres_would_say"], "lock file \"postmaster.pid\" already exists",
        "{name}: {r:#}"
    );
    assert_eq!(r["lock_file"]["pid"], pm, "{name}: {r:#}");
    assert_eq!(r["lock_file"]["identity"], "reused", "{name}: {r:#}");
    let evidence = r["lock_file"]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.starts_with("another data directory's") && evidence.contains("postmaster.pid"),
        "{name}: {r:#}"
    );
    let remedy = remedy_text(&r);
    let lock = copy.join("postmaster.pid");
    assert!(
        remedy.contains(&format!("rm {}", lock.display())),
        "{name}: {remedy}"
    );
    assert!(
        !remedy.contains("pg_ctl stop") && !remedy.contains("kill"),
        "{name}: {remedy}"
    );
    // The real server refuses the copy, on its own port, with those words.
    match start_on(bindir, &copy, COPY_PORT, &mut c) {
        Err(log) => said_what_was_predicted(&r, &log),
        Ok(_) => panic!("{name}: the copy started beside its original"),
    }

    let (fixed, code) = fix_yes(&copy, Some(COPY_PORT));
    assert_eq!(code, 0, "{name}: {fixed:#}");
    assert!(!lock.exists(), "{name}: {fixed:#}");
    assert!(pid_alive(pm), "{name}: the original's postmaster was hit");
    assert_eq!(postmaster_pid(&t.data), Some(pm), "{name}");

    let copy_child = start_on(bindir, &copy, COPY_PORT, &mut c)
        .unwrap_or_else(|log| panic!("{name}: the copy did not start:\n{log}"));
    assert_eq!(psql_on(&copy, COPY_PORT, "select 1"), "1", "{name}");
    assert_eq!(psql_on(&t.data, "5999", "select 1"), "1", "{name}");
    assert!(pid_alive(pm), "{name}");
    stop_fast(&copy, copy_child);
    stop_fast(&t.data, original);
}

/// A lock file naming a live process of the postgres user that has nothing
/// to do with PostgreSQL and started within the 2 s of line 3: start time
/// alone made it "the postmaster" (running). It is a reused PID: blocked,
/// as the server says; `fix --yes` removes the file and leaves it alive.
#[test]
fn a_process_started_at_line_3s_time_is_not_the_owner() {
    let debian = require_postgres!();
    for (name, bindir) in builds(debian) {
        let t = cluster(&bindir);
        let mut c = Cleanup::for_dir(&t.data);
        let sleeper = as_postgres(Command::new("sleep").arg("600"))
            .current_dir(t.root.path())
            .spawn()
            .unwrap();
        let pid = sleeper.id() as i32;
        c.pids.push(pid);
        let started = interlock::process::ProcFs::default()
            .info(pid)
            .unwrap()
            .start_time;
        std::fs::write(
            t.data.join("postmaster.pid"),
            format!(
                "{pid}\n{}\n{started}\n5999\n{}\n\n",
                t.data.display(),
                t.data.display()
            ),
        )
        .unwrap();
        chown_r(&t.data.join("postmaster.pid"));

        let r = status_of(&bindir, &t.data, None);
        assert_eq!(r["verdict"], "blocked", "{name}: {r:#}");
        assert_eq!(r["lock_file"]["identity"], "reused", "{name}: {r:#}");
        said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
        let (fixed, code) = fix_yes(&t.data, None);
        assert_eq!(code, 0, "{name}: {fixed:#}");
        assert!(pid_alive(pid), "{name}: the unrelated process was hit");
        let server = start(&bindir, &t.data, &mut c);
        stop_fast(&t.data, server);
    }
}

// ------------------------------------------------------------ situation 3

/// The data directory itself chowned to root (its contents still the
/// postgres user's): the server's user is pg_control's owner, and the
/// server stops on the directory: on the configuration file it may not
/// read (mode 0700), or with "wrong ownership" (mode 0755). The remedy
/// gives it back with chown.
#[test]
fn a_root_owned_directory_has_the_wrong_ownership() {
    let debian = require_postgres!();
    for (name, bindir) in builds(debian) {
        for mode in [0o700, 0o755] {
            let t = cluster(&bindir);
            let mut c = Cleanup::for_dir(&t.data);
            std::os::unix::fs::chown(&t.data, Some(0), Some(0)).unwrap();
            std::fs::set_permissions(&t.data, PermissionsExt::from_mode(mode)).unwrap();
            let r = status_of(&bindir, &t.data, None);
            let what = format!("{name}, mode {mode:o}");
            assert_eq!(r["verdict"], "blocked", "{what}: {r:#}");
            let said = r["postgres_would_say"].as_str().unwrap().to_string();
            let log = refused(&bindir, &t.data, &mut c);
            if mode == 0o700 {
                assert_eq!(
                    said,
                    format!(
                        "could not access the server configuration file \"{}\": Permission denied",
                        t.data.join("postgresql.conf").display()
                    ),
                    "{what}"
                );
                // A line of its own, "postgres: …", not a FATAL.
                assert!(log.contains(&format!("postgres: {said}")), "{what}: {log}");
            } else {
                assert_eq!(
                    said,
                    format!(
                        "data directory \"{}\" has wrong ownership",
                        t.data.display()
                    ),
                    "{what}"
                );
                said_what_was_predicted(&r, &log);
                assert!(
                    log.contains(
                        "HINT:  The server must be started by the user that owns the data directory."
                    ),
                    "{what}: {log}"
                );
            }
            assert!(
                remedy_text(&r).contains(&format!("chown -R postgres: {}", t.data.display())),
                "{what}: {r:#}"
            );
        }
    }
}

/// With an orphan of the real server's user still attached, a root-owned
/// directory is still diagnosed as the postgres user's: the orphan is
/// found and reported.
#[test]
fn a_root_owned_directory_with_an_orphan_still_finds_the_orphan() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let _server = start(&bindir, &t.data, &mut c);
    let checkpointer = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    std::os::unix::fs::chown(&t.data, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&t.data, PermissionsExt::from_mode(0o755)).unwrap();
    let r = status_of(&bindir, &t.data, None);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        format!(
            "data directory \"{}\" has wrong ownership",
            t.data.display()
        ),
        "{r:#}"
    );
    assert!(codes(&r).contains(&"orphaned_holders".to_string()), "{r:#}");
    assert!(
        r["holders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["pid"] == checkpointer),
        "{r:#}"
    );
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
}

// ------------------------------------------------------------ situation 5

/// PostgreSQL 10 allows 0700 only, and its words differ from 11+'s.
#[test]
fn postgres_10_with_mode_0750_has_group_or_world_access() {
    let _ = require_postgres!();
    let Some((_, bindir)) = cached_builds()
        .into_iter()
        .find(|(n, _)| n.starts_with("10."))
    else {
        eprintln!("skipped: no cached PostgreSQL 10 build (scripts/pg-versions)");
        return;
    };
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    std::fs::set_permissions(&t.data, PermissionsExt::from_mode(0o750)).unwrap();
    let r = status_of(&bindir, &t.data, None);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        format!(
            "data directory \"{}\" has group or world access",
            t.data.display()
        ),
        "{r:#}"
    );
    let log = refused(&bindir, &t.data, &mut c);
    said_what_was_predicted(&r, &log);
    assert!(
        log.contains("DETAIL:  Permissions should be u=rwx (0700)."),
        "{log}"
    );
}
