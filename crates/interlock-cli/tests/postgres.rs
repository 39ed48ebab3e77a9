//! Interoperability with a real PostgreSQL (Debian's 15 by default; any
//! version via INTERLOCK_PG_BINDIR), in both directions: the server refuses
//! to start while the library or `interlock hold` holds its directory, and
//! both refuse while the server or its orphaned processes run. Each test
//! starts the `postgres` binary itself and checks the server's own words.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use rustix::process::Signal;

fn fatal_lock_file_exists(log: &str, pid: i32, kind: &str, data: &std::path::Path) {
    assert!(
        log.contains("FATAL:  lock file \"postmaster.pid\" already exists"),
        "{log}"
    );
    let hint = format!(
        "HINT:  Is another {kind} (PID {pid}) running in data directory \"{}\"?",
        data.display()
    );
    assert!(log.contains(&hint), "expected {hint:?} in:\n{log}");
}

fn fatal_segment_in_use(log: &str, key: &str, shmid: &str) {
    let msg =
        format!("FATAL:  pre-existing shared memory block (key {key}, ID {shmid}) is still in use");
    assert!(log.contains(&msg), "expected {msg:?} in:\n{log}");
    assert!(
        log.contains("HINT:  Terminate any old server processes associated with data directory"),
        "{log}"
    );
}

/// Start the server and expect it to come up; stop it again.
fn expect_starts(bindir: &std::path::Path, data: &std::path::Path, c: &mut Cleanup, when: &str) {
    match start_postgres(bindir, data, c) {
        Start::Running(child) => stop_postgres(data, child),
        Start::Exited(log) => panic!("postgres did not start {when}:\n{log}"),
    }
}

/// Start the server and expect it to refuse; its log.
fn expect_refused(
    bindir: &std::path::Path,
    data: &std::path::Path,
    c: &mut Cleanup,
    when: &str,
) -> String {
    match start_postgres(bindir, data, c) {
        Start::Exited(log) => log,
        Start::Running(_) => panic!("postgres started {when}"),
    }
}

/// The library holder, run as postgres.
struct LibHolder {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn lib_holder(data: &std::path::Path, args: &[&str], c: &mut Cleanup) -> (LibHolder, String) {
    let mut child = Command::new("runuser")
        .args(["-u", PG_USER, "--"])
        .arg(example("holder"))
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.pids.push(child.id() as i32);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    (LibHolder { child, lines }, first)
}

#[test]
fn server_refuses_while_the_library_holds_and_starts_after() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let (mut h, first) = lib_holder(&t.data, &["--ready"], &mut c);
    assert!(first.starts_with("ACQUIRED"), "{first}");
    let holder_pid: i32 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    c.pids.push(holder_pid);

    let log = expect_refused(
        &bindir,
        &t.data,
        &mut c,
        "while the library held the directory",
    );
    fatal_lock_file_exists(&log, holder_pid, "postmaster", &t.data);
    drop(h.child.stdin.take());
    assert!(h
        .lines
        .next()
        .unwrap()
        .unwrap()
        .starts_with("RELEASED Clean"));
    h.child.wait().unwrap();
    expect_starts(&bindir, &t.data, &mut c, "after release");
}

#[test]
fn server_refuses_while_hold_runs_even_after_hold_is_killed() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let (mut hold, sleep_pid, _) = spawn_hold(&t.data, &[], &mut c);
    let hold_pid = hold.id() as i32;
    // The lock file is a standalone backend's, owned by the data directory's owner.
    let text = std::fs::read_to_string(t.data.join("postmaster.pid")).unwrap();
    assert_eq!(text.lines().next().unwrap(), format!("-{hold_pid}"));
    let meta = std::fs::metadata(t.data.join("postmaster.pid")).unwrap();
    let data_meta = std::fs::metadata(&t.data).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.uid(), data_meta.uid());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let log = expect_refused(&bindir, &t.data, &mut c, "during hold");
    fatal_lock_file_exists(&log, hold_pid, "postgres", &t.data);

    // SIGKILL the hold itself: the command still runs, so the server must
    // still refuse — now because of the segment its keeper holds.
    let (key, shmid) = line7(&t.data);
    signal(hold_pid, Signal::KILL);
    hold.wait().unwrap();
    assert!(running(sleep_pid));
    let log = expect_refused(&bindir, &t.data, &mut c, "while the held command still ran");
    fatal_segment_in_use(&log, &key, &shmid);

    signal(sleep_pid, Signal::KILL);
    wait_until("keeper exit", || {
        segments_of(&t.data).iter().all(|&id| {
            interlock::sys::shm::stat(interlock::ShmId(id))
                .map(|s| s.nattch == 0)
                .unwrap_or(true)
        })
    });
    expect_starts(&bindir, &t.data, &mut c, "after the command exited");
}

#[test]
fn library_and_hold_refuse_while_the_server_runs() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let Start::Running(server) = start_postgres(&bindir, &t.data, &mut c) else {
        panic!("postgres did not start")
    };
    let pm = postmaster_pid(&t.data).unwrap();

    let (mut h, first) = lib_holder(&t.data, &[], &mut c);
    assert!(first.starts_with("REFUSED LockFileHeld"), "{first}");
    assert!(
        first.contains(&format!("another postmaster (PID {pm}) is running")),
        "{first}"
    );
    h.child.wait().unwrap();

    let out = Command::new(bin())
        .arg("hold")
        .arg(&t.data)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("(PID {pm})")), "{stderr}");
    assert!(stderr.contains("hint: stop the server first"), "{stderr}");
    stop_postgres(&t.data, server);
}

#[test]
fn orphaned_backend_of_a_killed_server_blocks_the_library() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let Start::Running(mut server) = start_postgres(&bindir, &t.data, &mut c) else {
        panic!("no start")
    };
    let pm = postmaster_pid(&t.data).unwrap();
    let checkpointer = children_named(pm, "checkpointer")[0];
    c.pids.push(checkpointer);
    signal(checkpointer, Signal::STOP);
    wait_stopped(checkpointer);
    signal(pm, Signal::KILL);
    let _ = server.wait();
    wait_until("postmaster gone", || !running(pm));

    let (mut h, first) = lib_holder(&t.data, &[], &mut c);
    assert!(first.starts_with("REFUSED SegmentInUse"), "{first}");
    assert!(
        first.contains(&format!("PID {checkpointer}")),
        "the checkpointer is named: {first}"
    );
    h.child.wait().unwrap();

    signal(checkpointer, Signal::KILL);
    wait_until("checkpointer gone", || !running(checkpointer));
    let (mut h, first) = lib_holder(&t.data, &[], &mut c);
    assert!(first.starts_with("ACQUIRED"), "{first}");
    drop(h.child.stdin.take());
    h.child.wait().unwrap();
}

#[test]
fn hold_without_lock_file_lets_pg_resetwal_run_and_still_blocks_the_server() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let resetwal = bindir.join("pg_resetwal");
    // pg_resetwal refuses to run while postmaster.pid exists...
    let out = Command::new(bin())
        .arg("hold")
        .arg(&t.data)
        .arg("--")
        .arg(&resetwal)
        .arg("-n")
        .arg(&t.data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock file \"postmaster.pid\" exists"));
    // ...so hold with the segment alone:
    let out = Command::new(bin())
        .args(["hold", "--no-lock-file"])
        .arg(&t.data)
        .arg("--")
        .arg(&resetwal)
        .arg("-n")
        .arg(&t.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pg_control version number"));

    // and the server is still refused meanwhile.
    let (mut hold, _, _) = spawn_hold(&t.data, &["--no-lock-file"], &mut c);
    assert!(!t.data.join("postmaster.pid").exists());
    let log = expect_refused(&bindir, &t.data, &mut c, "during a segment-only hold");
    assert!(log.contains("pre-existing shared memory block"), "{log}");
    signal(hold.id() as i32, Signal::TERM);
    let st = hold.wait().unwrap();
    assert_eq!(st.code(), Some(143), "SIGTERM passed on to sleep");
}
