//! Startup steps between the lock file and the sockets (issue 13, items
//! 2, 4, 6 and 7), against the real `postgres` binary: a data directory on
//! a read-only or full file system, a socket directory that is missing or
//! not writable, another cluster listening on the TCP port, the port of
//! 10–12 after `postmaster.pid` was removed with an orphan attached, and a
//! healthy running server.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// A tmpfs this test mounted; unmounted (lazily, so a failed test cannot
/// leave it busy) on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Mount(at.to_path_buf())
    }

    fn remount(&self, how: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount {how}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A fresh cluster copied onto a tmpfs of its own (mounted under the test
/// directory): the directory, the test directory, and the mount guard
/// (last, so it is dropped first: unmounted before the directory goes).
fn cluster_on_tmpfs(bindir: &Path) -> (PathBuf, TestDir, Mount) {
    let t = cluster(bindir);
    let m = Mount::tmpfs(&t.root.path().join("fs"), "100m");
    let data = m.0.join("data");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&t.data)
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success());
    (data, t, m)
}

/// `interlock status --json --postgres BINDIR/postgres DATA`, with the exit
/// code checked as `common::status` checks it.
fn status_of(data: &Path, bindir: &Path) -> Value {
    let pg = bindir.join("postgres").display().to_string();
    let out = Command::new(bin())
        .args(["status", "--json", "--postgres", &pg])
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let expected = match (r["verdict"].as_str(), r["safe_to_start"].as_bool()) {
        (Some("running"), _) | (Some("will_start"), Some(true)) => 0,
        (Some("will_start"), _) | (Some("blocked"), _) => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(expected), "{r:#}");
    r
}

/// A refused start of the cluster on a tmpfs, its output kept outside it.
fn refused_on_tmpfs(bindir: &Path, data: &Path, t: &TestDir, c: &mut Cleanup) -> String {
    let log = t.root.path().join(format!(
        "postgres-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let k = t.data.display().to_string();
    let args = ["-p", "5999", "-c", "listen_addresses=", "-k", &k];
    match start_postgres_logged(bindir, data, &args, &log, c) {
        Start::Exited(log) => log,
        Start::Running(_) => panic!("postgres started"),
    }
}

/// `interlock status --json [ARGS] DATA`.
fn status_args(data: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .args(["status", "--json"])
        .args(args)
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

fn finding<'a>(r: &'a Value, code: &str) -> Option<&'a Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
}

/// Debian's build and every cached one.
fn builds() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = pg_bindir()
        .map(|b| ("installed".to_string(), b))
        .into_iter()
        .collect();
    v.extend(cached_builds());
    v
}

/// A TCP port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn append_conf(data: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    writeln!(f, "{text}").unwrap();
}

fn blocked_as_predicted(r: &Value, log: &str, code: &str, message: &str) {
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(r["postgres_would_say"], message, "{r:#}");
    assert!(finding(r, code).is_some(), "no {code}: {r:#}");
    said_what_was_predicted(r, log);
}

// ------------------------------------------------------------------ item 2

#[test]
fn read_only_file_system() {
    let _ = require_postgres!();
    for (name, bindir) in builds() {
        let (data, t, m) = cluster_on_tmpfs(&bindir);
        let mut c = Cleanup::for_dir(&data);
        m.remount("ro");
        let r = status_of(&data, &bindir);
        let log = refused_on_tmpfs(&bindir, &data, &t, &mut c);
        eprintln!("{name}: {}", r["postgres_would_say"]);
        blocked_as_predicted(
            &r,
            &log,
            "lock_file_not_creatable",
            "could not create lock file \"postmaster.pid\": Read-only file system",
        );
        // A stale lock file: the server stops when it tries to remove it.
        m.remount("rw");
        lock_file_naming(&data, 999_999_999);
        m.remount("ro");
        let r = status_of(&data, &bindir);
        let log = refused_on_tmpfs(&bindir, &data, &t, &mut c);
        blocked_as_predicted(
            &r,
            &log,
            "lock_file_not_creatable",
            "could not remove old lock file \"postmaster.pid\": Read-only file system",
        );
        let (_, exit) = fix(&data);
        assert_ne!(exit, 0, "fix must not promise a start");
    }
}

/// `interlock fix --json DATA` (a dry run): the report and the exit code.
fn fix(data: &Path) -> (Value, i32) {
    let out = Command::new(bin())
        .args(["fix", "--json", "--timeout", "3"])
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (v, out.status.code().unwrap_or(-1))
}

/// Fill the file system of `path` with it (as root: tmpfs keeps no
/// blocks for root).
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
}

#[test]
fn full_file_system() {
    let _ = require_postgres!();
    for (name, bindir) in builds() {
        let (data, t, m) = cluster_on_tmpfs(&bindir);
        let mut c = Cleanup::for_dir(&data);
        fill(&m.0.join("fill"));
        let r = status_of(&data, &bindir);
        let log = refused_on_tmpfs(&bindir, &data, &t, &mut c);
        eprintln!("{name}: {}", r["postgres_would_say"]);
        blocked_as_predicted(
            &r,
            &log,
            "lock_file_not_creatable",
            "could not write lock file \"postmaster.pid\": No space left on device",
        );
        // With a stale lock file, its removal frees room for the new one,
        // and then the next write (postmaster.opts) decides: unknown.
        std::fs::remove_file(m.0.join("fill")).unwrap();
        lock_file_naming(&data, 999_999_999);
        fill(&m.0.join("fill"));
        let r = status_of(&data, &bindir);
        assert_eq!(r["verdict"], "unknown", "{name}: {r:#}");
        assert!(
            finding(&r, "lock_file_not_creatable").is_some(),
            "{name}: {r:#}"
        );
    }
}

#[test]
fn socket_directory_missing_or_not_writable() {
    let _ = require_postgres!();
    for (name, bindir) in builds() {
        let t = cluster(&bindir);
        let mut c = Cleanup::for_dir(&t.data);
        let missing = t.root.path().join("run/postgresql");
        let port = free_port();
        append_conf(
            &t.data,
            &format!(
                "port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{}'",
                missing.display()
            ),
        );
        let r = status_of(&t.data, &bindir);
        let log = match start_postgres_with(&bindir, &t.data, &[], &mut c) {
            Start::Exited(log) => log,
            Start::Running(_) => panic!("{name}: postgres started"),
        };
        eprintln!("{name}: {}", r["postgres_would_say"]);
        blocked_as_predicted(
            &r,
            &log,
            "socket_directory_unusable",
            &format!(
                "could not create lock file \"{}/.s.PGSQL.{port}.lock\": No such file or directory",
                missing.display()
            ),
        );
        // Now it exists, owned by root, mode 0755.
        std::fs::create_dir_all(&missing).unwrap();
        let r = status_of(&t.data, &bindir);
        let log = match start_postgres_with(&bindir, &t.data, &[], &mut c) {
            Start::Exited(log) => log,
            Start::Running(_) => panic!("{name}: postgres started"),
        };
        blocked_as_predicted(
            &r,
            &log,
            "socket_directory_unusable",
            &format!(
                "could not create lock file \"{}/.s.PGSQL.{port}.lock\": Permission denied",
                missing.display()
            ),
        );
        // Given to postgres, it starts.
        chown_r(&missing);
        let r = status_of(&t.data, &bindir);
        will_start(&r);
        let child = match start_postgres_with(&bindir, &t.data, &[], &mut c) {
            Start::Running(child) => child,
            Start::Exited(log) => panic!("{name}: postgres did not start:\n{log}"),
        };
        stop_fast(&t.data, child);
    }
}

// ------------------------------------------------------------------ item 4

#[test]
fn another_cluster_listens_on_the_port() {
    let _ = require_postgres!();
    for (name, bindir) in builds() {
        let a = cluster(&bindir);
        let b = cluster(&bindir);
        let mut c = Cleanup::for_dir(&a.data);
        c.dirs.push(b.data.clone());
        let port = free_port();
        let ps = port.to_string();
        let ka = a.data.display().to_string();
        let first = match start_postgres_with(
            &bindir,
            &a.data,
            &["-p", &ps, "-c", "listen_addresses=127.0.0.1", "-k", &ka],
            &mut c,
        ) {
            Start::Running(child) => child,
            Start::Exited(log) => panic!("{name}: the first did not start:\n{log}"),
        };
        append_conf(
            &b.data,
            &format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'",
                b.data.display()
            ),
        );
        let r = status_of(&b.data, &bindir);
        let log = match start_postgres_with(&bindir, &b.data, &[], &mut c) {
            Start::Exited(log) => log,
            Start::Running(_) => panic!("{name}: the second started"),
        };
        eprintln!("{name}: {}", r["postgres_would_say"]);
        blocked_as_predicted(
            &r,
            &log,
            "port_in_use",
            "could not create any TCP/IP sockets",
        );
        stop_fast(&a.data, first);
        // Port free again: it starts.
        will_start(&status_of(&b.data, &bindir));
    }
}

// ------------------------------------------------------------------ item 6

/// 10–12 after `rm postmaster.pid` with an orphan attached, started with
/// `-p N` while the configuration says nothing (5432): the keys and socket
/// lock files are those of port N, from `postmaster.opts`.
#[test]
fn port_of_the_last_start_after_the_lock_file_was_removed() {
    let _ = require_postgres!();
    let old: Vec<(String, PathBuf)> = cached_builds()
        .into_iter()
        .filter(|(n, _)| ["10.", "11.", "12."].iter().any(|p| n.starts_with(p)))
        .collect();
    if old.is_empty() {
        eprintln!("skipped: no cached 10–12 build (scripts/pg-versions install 10.20 11.15 12)");
        return;
    }
    for (name, bindir) in old {
        let t = cluster(&bindir);
        let mut c = Cleanup::for_dir(&t.data);
        let port = free_port().to_string();
        let k = t.data.display().to_string();
        let args = ["-p", &port, "-c", "listen_addresses=", "-k", &k];
        let _server = match start_postgres_with(&bindir, &t.data, &args, &mut c) {
            Start::Running(child) => child,
            Start::Exited(log) => panic!("{name}: did not start:\n{log}"),
        };
        kill_leaving_stopped_checkpointer(&t.data, &mut c);
        std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
        let r = status_args(
            &t.data,
            &["--postgres", &bindir.join("postgres").display().to_string()],
        );
        assert!(
            r["probe"]["seed_from"]
                .as_str()
                .unwrap()
                .contains(&format!("port {port} (the last start's command line")),
            "{name}: {r:#}"
        );
        let log = match start_postgres_with(&bindir, &t.data, &args, &mut c) {
            Start::Exited(log) => log,
            Start::Running(_) => panic!("{name}: postgres started beside the orphan"),
        };
        eprintln!("{name}: {}", r["postgres_would_say"]);
        assert_eq!(r["verdict"], "blocked", "{name}: {r:#}");
        said_what_was_predicted(&r, &log);
        // Without postmaster.opts either, the orphan's key still tells.
        std::fs::remove_file(t.data.join("postmaster.opts")).unwrap();
        let r = status_args(
            &t.data,
            &["--postgres", &bindir.join("postgres").display().to_string()],
        );
        assert_eq!(r["verdict"], "blocked", "{name}: {r:#}");
        assert!(
            r["probe"]["seed_from"]
                .as_str()
                .unwrap()
                .contains(&format!("port {port} (the key ")),
            "{name}: {r:#}"
        );
    }
}

// ------------------------------------------------------------------ item 7

#[test]
fn a_running_servers_own_socket_lock_file_is_no_finding() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let child = start(&bindir, &t.data, &mut c);
    let r = status_of(&t.data, &bindir);
    assert_eq!(r["verdict"], "running", "{r:#}");
    assert!(!r["socket_locks"].as_array().unwrap().is_empty(), "{r:#}");
    for f in r["findings"].as_array().unwrap() {
        assert!(
            !(f["code"] == "socket_lock_file"
                && (f["severity"] == "danger" || f["severity"] == "problem")),
            "{r:#}"
        );
    }
    for s in r["socket_locks"].as_array().unwrap() {
        assert_eq!(s["blocks"], false, "{r:#}");
    }
    stop_fast(&t.data, child);
}
