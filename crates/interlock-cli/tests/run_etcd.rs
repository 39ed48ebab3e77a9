//! `interlock run --etcd`: the fence across hosts, against a real etcd
//! (Debian's etcd-server, one member on loopback; skipped where it is not
//! installed). COMMAND is `sleep 600`; TTL 3 s: renew every 0.5 s, fence
//! after 1 s without a renewal, SIGKILL 0.5 s after the SIGQUIT.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use interlock_testkit::etcd::{free_port, Etcd};
use rustix::process::Signal;

const TTL: &str = "3";
/// fence_after + stop_within for a TTL of 3 s.
const STOPPED_BY: Duration = Duration::from_millis(1500);
/// Scheduling slack on a loaded test machine.
const SLACK: Duration = Duration::from_millis(700);

/// A fenced `interlock run` in the background, its output in files.
struct Run {
    child: Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Run {
    fn start(etcd: &str, data: &Path, name: &str, logs: &Path, c: &mut Cleanup) -> Run {
        Run::start_with(etcd, data, name, &[], &["sleep", "600"], logs, c)
    }

    fn start_with(
        etcd: &str,
        data: &Path,
        name: &str,
        opts: &[&str],
        cmd: &[&str],
        logs: &Path,
        c: &mut Cleanup,
    ) -> Run {
        let tag = format!("{}", logs.read_dir().unwrap().count());
        let out = logs.join(format!("out{tag}"));
        let err = logs.join(format!("err{tag}"));
        let child = Command::new(bin())
            .args(["run", "--etcd", etcd, "--ttl", TTL, "--name", name])
            .args(opts)
            .arg(data)
            .arg("--")
            .args(cmd)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        c.pid(child.id() as i32);
        Run { child, out, err }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The fencing token and COMMAND's PID, once it runs.
    fn started(&self, c: &mut Cleanup) -> (i64, i32) {
        let mut found = None;
        wait_until("interlock run to start COMMAND", || {
            let out = std::fs::read_to_string(&self.out).unwrap_or_default();
            let err = self.stderr();
            let token = out
                .lines()
                .find_map(|l| l.strip_prefix("fencing token "))
                .and_then(|t| t.trim().parse::<i64>().ok());
            let pid = err
                .split("while PID ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse::<i32>().ok());
            found = token.zip(pid);
            found.is_some()
        });
        let (token, pid) = found.unwrap();
        c.pid(pid);
        (token, pid)
    }

    fn wait_code(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                start.elapsed() < limit,
                "interlock run did not exit: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Exited: gone, or a zombie (reparented to an init that may not reap).
fn dead(pid: i32) -> bool {
    !running(pid)
}

/// How long until `pid` is dead, panicking after `limit`.
fn time_to_death(pid: i32, from: Instant, limit: Duration) -> Duration {
    loop {
        if dead(pid) {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < limit,
            "PID {pid} still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Two data directories with one system identifier (a copy), and a
/// directory for logs.
fn dirs() -> (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir) {
    let a = fake_cluster();
    let b = fake_cluster();
    if is_root() {
        // As PostgreSQL, `run` acts as the data directory's owner.
        chown_r(a.path());
        chown_r(b.path());
    }
    (a, b, tempfile::tempdir().unwrap())
}

fn run_once(etcd: &str, data: &Path, name: &str, cmd: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["run", "--etcd", etcd, "--ttl", TTL, "--name", name])
        .arg(data)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap()
}

#[test]
fn second_holder_refused_naming_the_first_then_takes_over_after_release() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    c.dirs.push(b.path().to_path_buf());
    let mut first = Run::start(&etcd.endpoint, a.path(), "shared", logs.path(), &mut c);
    let (token, cmd) = first.started(&mut c);
    assert!(token > 0);
    let fence = std::fs::read_to_string(a.path().join("interlock.fence")).unwrap();
    assert!(fence.starts_with(&format!("token {token}\n")), "{fence}");
    assert!(fence.contains("key /interlock/"), "{fence}");

    let out = run_once(&etcd.endpoint, b.path(), "shared", &["true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains(" is held by host "), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {}", first.child.id())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("token {token}")), "{stderr}");
    assert!(stderr.contains("lease expires in "), "{stderr}");
    assert!(!b.path().join("interlock.fence").exists());

    // SIGTERM is passed on; COMMAND's exit revokes the lease at once.
    signal(first.child.id() as i32, Signal::TERM);
    assert_eq!(first.wait_code(Duration::from_secs(5)), Some(128 + 15));
    assert!(dead(cmd));
    let out = run_once(&etcd.endpoint, b.path(), "shared", &["true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("fencing token ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(second > token, "tokens grow: {token} then {second}");
}

#[test]
fn sigkill_of_run_the_watchdog_stops_command_then_the_lease_lapses() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    c.dirs.push(b.path().to_path_buf());
    let mut first = Run::start(&etcd.endpoint, a.path(), "k", logs.path(), &mut c);
    let (_, cmd) = first.started(&mut c);
    std::thread::sleep(Duration::from_millis(700)); // a renewal or two
    let killed = Instant::now();
    signal(first.child.id() as i32, Signal::KILL);
    let took = time_to_death(cmd, killed, STOPPED_BY + SLACK);
    eprintln!("COMMAND stopped {took:?} after SIGKILL of interlock run");
    first.child.wait().unwrap();
    // The key stays until the lease lapses (no one revoked it), then the
    // other directory takes it.
    let deadline = Duration::from_secs(3) + Duration::from_secs(3);
    loop {
        let out = run_once(&etcd.endpoint, b.path(), "k", &["true"]);
        match out.status.code() {
            Some(0) => break,
            Some(75) => {
                assert!(killed.elapsed() < deadline, "never taken over");
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    let after = killed.elapsed();
    eprintln!("taken over {after:?} after the SIGKILL");
    assert!(after >= took, "taken over before COMMAND stopped");
}

#[test]
fn sigstop_of_run_the_watchdog_stops_command_in_time() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, _b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    let mut first = Run::start(&etcd.endpoint, a.path(), "k", logs.path(), &mut c);
    let (_, cmd) = first.started(&mut c);
    std::thread::sleep(Duration::from_millis(700));
    let stopped = Instant::now();
    signal(first.child.id() as i32, Signal::STOP);
    let took = time_to_death(cmd, stopped, STOPPED_BY + SLACK);
    eprintln!("COMMAND stopped {took:?} after SIGSTOP of interlock run");
    signal(first.child.id() as i32, Signal::CONT);
    // Woken, it finds COMMAND dead of the SIGQUIT and exits with it.
    assert_eq!(first.wait_code(Duration::from_secs(5)), Some(128 + 3));
}

#[test]
fn etcd_stopped_the_holder_self_fences_in_time() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, _b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    let mut first = Run::start(&etcd.endpoint, a.path(), "k", logs.path(), &mut c);
    let (_, cmd) = first.started(&mut c);
    std::thread::sleep(Duration::from_millis(700));
    let lost = Instant::now();
    signal(etcd.pid(), Signal::STOP); // CONT again when the guard drops
    let took = time_to_death(cmd, lost, STOPPED_BY + SLACK);
    eprintln!("COMMAND stopped {took:?} after etcd was stopped");
    assert_eq!(first.wait_code(Duration::from_secs(5)), Some(128 + 3));
    let stderr = first.stderr();
    assert!(
        stderr.contains("lease not renewed for ") && stderr.contains("(self-fence)"),
        "{stderr}"
    );
}

#[test]
fn etcd_unreachable_at_start_refused_unless_local_only() {
    let (a, _b, _logs) = dirs();
    let _c = Cleanup::for_dir(a.path());
    let nowhere = format!("127.0.0.1:{}", free_port());
    let out = run_once(&nowhere, a.path(), "k", &["true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("etcd unreachable"), "{stderr}");
    assert!(stderr.contains("--local-only"), "{stderr}");

    let out = Command::new(bin())
        .args(["run", "--local-only"])
        .arg(a.path())
        .args(["--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("not fenced across hosts"), "{stderr}");

    // Neither: refused before anything.
    let out = Command::new(bin())
        .arg("run")
        .arg(a.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

/// Whether a process of group `pgid` still runs.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // state, ppid, pgrp
            f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X"
        })
}

fn ready(data: &Path) -> bool {
    std::fs::read_to_string(data.join("postmaster.pid")).is_ok_and(|s| s.contains("ready"))
}

/// Real PostgreSQL 15 as COMMAND (`--server-locks`: the server takes the
/// local interlock itself): a copy with the same system identifier is
/// refused while it runs; SIGKILL of its `interlock run` stops the whole
/// server (the watchdog's SIGQUIT to its process group); after the lease
/// lapses the copy starts, fenced.
#[test]
fn postgres_fenced_refused_then_stopped_by_the_watchdog_then_taken_over() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let bindir = interlock_testkit::require_postgres!();
    let etcd = Etcd::start(&etcd_bin);
    let (t1, t2) = (cluster(&bindir), cluster(&bindir));
    let logs = tempfile::tempdir().unwrap();
    let mut c = Cleanup::for_dir(&t1.data);
    c.dirs.push(t2.data.clone());
    let postgres = bindir.join("postgres").display().to_string();
    let server = |data: &Path| -> Vec<String> {
        let d = data.display().to_string();
        vec![
            postgres.clone(),
            "-D".into(),
            d.clone(),
            "-k".into(),
            d,
            "-c".into(),
            "listen_addresses=".into(),
        ]
    };
    let (s1, s2) = (server(&t1.data), server(&t2.data));
    let s1: Vec<&str> = s1.iter().map(String::as_str).collect();
    let s2: Vec<&str> = s2.iter().map(String::as_str).collect();
    let opts = ["--server-locks"];

    let mut first = Run::start_with(
        &etcd.endpoint,
        &t1.data,
        "pg",
        &opts,
        &s1,
        logs.path(),
        &mut c,
    );
    let (token, pm) = first.started(&mut c);
    wait_until("the first server to be ready", || ready(&t1.data));
    assert_eq!(postmaster_pid(&t1.data), Some(pm));

    let out = Command::new(bin())
        .args([
            "run",
            "--etcd",
            &etcd.endpoint,
            "--ttl",
            TTL,
            "--name",
            "pg",
        ])
        .args(opts)
        .arg(&t2.data)
        .arg("--")
        .args(&s2)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {}, token {token}", first.child.id())),
        "{stderr}"
    );
    assert!(!t2.data.join("postmaster.pid").exists(), "the copy started");

    std::thread::sleep(Duration::from_millis(700));
    let killed = Instant::now();
    signal(first.child.id() as i32, Signal::KILL);
    let took = time_to_death(pm, killed, STOPPED_BY + SLACK);
    wait_until("the server's process group to be gone", || !group_alive(pm));
    eprintln!("postmaster stopped {took:?} after SIGKILL of interlock run");
    first.child.wait().unwrap();

    // The key lapses with the lease; then the copy starts, fenced.
    let mut second = loop {
        let mut r = Run::start_with(
            &etcd.endpoint,
            &t2.data,
            "pg",
            &opts,
            &s2,
            logs.path(),
            &mut c,
        );
        std::thread::sleep(Duration::from_millis(200));
        match r.child.try_wait().unwrap() {
            Some(st) if st.code() == Some(75) => {
                assert!(
                    killed.elapsed() < Duration::from_secs(8),
                    "never taken over"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(st) => panic!("{st:?}: {}", r.stderr()),
            None => {
                let (t, pid) = r.started(&mut c);
                assert!(t > token, "tokens grow: {token} then {t}");
                eprintln!("taken over {:?} after the SIGKILL", killed.elapsed());
                let _ = pid;
                break r;
            }
        }
    };
    wait_until("the second server to be ready", || ready(&t2.data));
    // SIGINT (fast shutdown) is passed on; the server's status is ours.
    signal(second.child.id() as i32, Signal::INT);
    assert_eq!(
        second.wait_code(Duration::from_secs(20)),
        Some(0),
        "{}",
        second.stderr()
    );
}

/// The etcd key `interlock run` holds, from its banner.
fn held_key(r: &Run) -> String {
    let mut key = String::new();
    wait_until("the banner naming the key", || {
        key = r
            .stderr()
            .split("fenced by etcd key ")
            .nth(1)
            .and_then(|k| k.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        !key.is_empty()
    });
    key
}

/// The key deleted by hand while the lease lives (`etcdctl del`): another
/// holder could take it now, so COMMAND is stopped at the next renewal,
/// not at the deadline; the watchdog is told as well.
#[test]
fn key_deleted_by_hand_the_holder_stops_command_at_once() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, _b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    let mut first = Run::start(&etcd.endpoint, a.path(), "k", logs.path(), &mut c);
    let (_, cmd) = first.started(&mut c);
    let key = held_key(&first);
    std::thread::sleep(Duration::from_millis(700));
    let b64 = Command::new("sh")
        .args(["-c", "printf %s \"$0\" | base64 -w0", &key])
        .output()
        .unwrap();
    let body = format!(
        "{{\"key\":\"{}\"}}",
        String::from_utf8_lossy(&b64.stdout).trim()
    );
    let deleted = Instant::now();
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "-d", &body])
        .arg(format!("{}/v3/kv/deleterange", etcd.endpoint))
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"deleted\":\"1\""));
    // One renewal interval (0.5 s), not the deadline (1 s).
    let took = time_to_death(cmd, deleted, Duration::from_millis(500) + SLACK);
    eprintln!("COMMAND stopped {took:?} after its key was deleted");
    assert_eq!(first.wait_code(Duration::from_secs(5)), Some(128 + 3));
    let stderr = first.stderr();
    assert!(stderr.contains("no longer bound to our lease"), "{stderr}");
    assert!(stderr.contains("the fence is lost"), "{stderr}");
}

/// The watchdog killed: `interlock run` starts another, which knows
/// COMMAND; SIGKILL of `interlock run` afterwards is still answered.
#[test]
fn watchdog_killed_run_starts_another_that_still_guards_command() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let (a, _b, logs) = dirs();
    let mut c = Cleanup::for_dir(a.path());
    let mut first = Run::start(&etcd.endpoint, a.path(), "k", logs.path(), &mut c);
    let (_, cmd) = first.started(&mut c);
    let run_pid = first.child.id() as i32;
    let watchdogs = || children_named(run_pid, "fence-watchdog");
    let old = watchdogs();
    assert_eq!(old.len(), 1, "{old:?}");
    c.pid(old[0]);
    signal(old[0], Signal::KILL);
    let mut new = Vec::new();
    wait_until("another watchdog", || {
        new = watchdogs()
            .into_iter()
            .filter(|p| !old.contains(p) && running(*p))
            .collect();
        !new.is_empty()
    });
    c.pid(new[0]);
    assert!(
        first
            .stderr()
            .contains("watchdog was gone: started it again"),
        "{}",
        first.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    signal(run_pid, Signal::KILL);
    let took = time_to_death(cmd, killed, STOPPED_BY + SLACK);
    eprintln!("COMMAND stopped {took:?} after SIGKILL of interlock run, by the second watchdog");
    first.child.wait().unwrap();
}
