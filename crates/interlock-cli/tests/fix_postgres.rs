//! `interlock fix` against a real PostgreSQL: for every blocked (or unsafe)
//! state `status` knows, the plan alone changes nothing, `fix --yes` gets the
//! `postgres` binary started, the rows committed before the crash are all
//! there, and a process of the same user that holds nothing is still alive.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use interlock::sys::shm;
use rustix::process::Signal;
use serde_json::Value;

const ROWS: &str = "1000";

/// `interlock fix --json [--yes] DATA`: the report and the exit code.
fn fix(data: &Path, yes: bool) -> (Value, i32) {
    fix_json(data, yes, "5")
}

/// What a plan must leave as it was: the lock file's bytes, the attach
/// count of each segment the report names, the DSM files it names, and
/// each holder's state.
fn world(data: &Path, report: &Value) -> Vec<String> {
    let mut w = vec![format!(
        "lock {:?}",
        std::fs::read(data.join("postmaster.pid")).ok()
    )];
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    for s in report["segments"].as_array().unwrap() {
        let id = s["shmid"].to_string();
        let row = table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id.as_str()));
        w.push(format!(
            "segment {id}: nattch {:?}",
            row.and_then(|l| l.split_whitespace().nth(6))
        ));
    }
    for d in report["dsm"].as_array().unwrap() {
        let p = d["path"].as_str().unwrap();
        w.push(format!("{p}: {}", Path::new(p).exists()));
    }
    for h in report["holders"].as_array().unwrap() {
        let pid = h["pid"].as_i64().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        w.push(format!(
            "PID {pid}: {:?}",
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
        ));
    }
    w
}

/// A running cluster with ROWS committed rows, and a bystander.
fn running_with_rows(bindir: &Path) -> (TestDir, Cleanup, Child, i32) {
    let t = cluster(bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let by = bystander(&t.data, &mut c);
    let child = start(bindir, &t.data, &mut c);
    psql(
        bindir,
        &t.data,
        &format!(
            "create table t (i int primary key); insert into t select generate_series(1, {ROWS})"
        ),
    );
    (t, c, child, by)
}

/// Wait until the attach counts of `data`'s segments have stopped changing
/// (for 300 ms, at most 10 s): a killed postmaster's other children leave
/// on their own, each detaching, and "the plan changed nothing" compares
/// attach counts.
fn settle_attachments(data: &Path) {
    let counts = || -> Vec<(i32, String)> {
        let ids = segments_of(data);
        let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        ids.into_iter()
            .map(|id| {
                let n = table
                    .lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>())
                    .find(|f| f.get(1) == Some(&id.to_string().as_str()))
                    .and_then(|f| f.get(6).map(|s| s.to_string()))
                    .unwrap_or_default();
                (id, n)
            })
            .collect()
    };
    let start = std::time::Instant::now();
    let mut last = counts();
    let mut since = std::time::Instant::now();
    while since.elapsed() < std::time::Duration::from_millis(300)
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = counts();
        if now != last {
            last = now;
            since = std::time::Instant::now();
        }
    }
}

/// The acceptance for a blocked or unsafe directory: the plan changes
/// nothing; `fix --yes` stops exactly `holders` and leaves it ready; the
/// server starts with every row; the bystander lives. Returns the outcome.
fn fixes_and_starts(
    bindir: &Path,
    t: &TestDir,
    c: &mut Cleanup,
    by: i32,
    holders: &[i32],
) -> Value {
    settle_attachments(&t.data);
    let before = status(&t.data);
    assert!(
        before["verdict"] == "blocked"
            || (before["verdict"] == "will_start" && before["safe_to_start"] == false),
        "{before:#}"
    );
    let w = world(&t.data, &before);
    let (plan, code) = fix(&t.data, false);
    assert_eq!(code, 1, "{plan:#}");
    assert!(plan["outcome"].is_null());
    assert_eq!(plan["plan"]["refused"], serde_json::json!([]), "{plan:#}");
    let planned: Vec<i64> = plan["plan"]["stop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_i64().unwrap())
        .collect();
    let mut want: Vec<i64> = holders.iter().map(|&p| p as i64).collect();
    want.sort_unstable();
    assert_eq!(planned, want, "{plan:#}");
    assert_eq!(
        world(&t.data, &before),
        w,
        "the plan alone changed something"
    );

    let (done, code) = fix(&t.data, true);
    assert_eq!(code, 0, "{done:#}");
    let outcome = &done["outcome"];
    assert_eq!(outcome["ready"], true, "{done:#}");
    assert_eq!(outcome["after"]["verdict"], "will_start");
    for &pid in holders {
        let step = outcome["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["what"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("stop PID {pid} "))
            })
            .unwrap_or_else(|| panic!("no step for {pid}: {done:#}"));
        assert_eq!(step["result"], "done", "{done:#}");
        assert!(!running(pid));
    }
    assert!(running(by), "the bystander {by} was hit");

    let child = start(bindir, &t.data, c);
    assert_eq!(psql(bindir, &t.data, "select count(*) from t"), ROWS);
    assert!(running(by));
    stop_fast(&t.data, child);
    done
}

/// SIGKILL the postmaster and wait until its children have exited (they
/// notice its death): a crash that leaves nobody attached.
fn crash(data: &Path, child: &mut Child) {
    let pm = postmaster_pid(data).unwrap();
    signal(pm, Signal::KILL);
    let _ = child.wait();
    wait_until("the old server's children gone", || {
        segments_of(data).iter().all(|&id| {
            shm::stat(interlock::ShmId(id))
                .map(|s| s.nattch == 0)
                .unwrap_or(true)
        })
    });
}

#[test]
fn killed_postmaster_and_stopped_checkpointer() {
    let bindir = require_postgres!();
    let (t, mut c, _child, by) = running_with_rows(&bindir);
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    fixes_and_starts(&bindir, &t, &mut c, by, &[ck]);
}

/// The case study's outage: a backend that did not notice its postmaster
/// die (here: stopped), so the segment stays attached.
#[test]
fn stopped_backend_and_killed_postmaster() {
    let bindir = require_postgres!();
    let (t, mut c, _child, by) = running_with_rows(&bindir);
    let pm = postmaster_pid(&t.data).unwrap();
    let session = as_postgres(
        Command::new(bindir.join("psql"))
            .args(["-X", "-p", "5999", "-U", "postgres", "-d", "postgres", "-h"])
            .arg(&t.data)
            .args(["-c", "select pg_sleep(600)"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .spawn()
    .unwrap();
    c.pids.push(session.id() as i32);
    let mut backend = Vec::new();
    wait_until("the session's backend", || {
        backend = children_named(pm, "[local]");
        !backend.is_empty()
    });
    let backend = backend[0];
    c.pids.push(backend);
    signal(backend, Signal::STOP);
    wait_stopped(backend);
    signal(pm, Signal::KILL);
    wait_gone(pm);
    let r = status(&t.data);
    assert_eq!(r["holders"][0]["role"], "client backend", "{r:#}");
    fixes_and_starts(&bindir, &t, &mut c, by, &[backend]);
}

#[test]
fn lock_file_deleted_while_an_orphan_is_attached() {
    let bindir = require_postgres!();
    let (t, mut c, _child, by) = running_with_rows(&bindir);
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    let r = status(&t.data);
    assert_eq!(r["lock_file"]["state"], "absent");
    assert!(r["postgres_would_say"]
        .as_str()
        .unwrap()
        .starts_with("pre-existing shared memory block"));
    fixes_and_starts(&bindir, &t, &mut c, by, &[ck]);
}

/// The case study's own remedy (ipcrm, rm postmaster.pid) while a process
/// was still attached: the server would start alongside it.
#[test]
fn ipcrm_and_rm_while_an_orphan_is_attached() {
    let bindir = require_postgres!();
    let (t, mut c, _child, by) = running_with_rows(&bindir);
    let (_, shmid) = line7(&t.data);
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    let st = Command::new("ipcrm").args(["-m", &shmid]).status().unwrap();
    assert!(st.success());
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    let r = status(&t.data);
    assert_eq!(r["verdict"], "will_start");
    assert!(codes(&r).contains(&"segment_removed".to_string()));
    let done = fixes_and_starts(&bindir, &t, &mut c, by, &[ck]);
    assert!(done["plan"]["left_to_server"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("already removed (ipcrm)")));
    // Its DSM control segment would leak for good: the fix removes it.
    let dsm: Vec<&Value> = done["plan"]["remove"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "dsm_file")
        .collect();
    assert_eq!(dsm.len(), 1, "{done:#}");
    let path = dsm[0]["path"].as_str().unwrap();
    assert!(!Path::new(path).exists(), "{path} is still there");
    assert!(done["outcome"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["what"] == format!("remove {path}") && s["result"] == "done"));
}

/// Removes a segment the test created, also on panic.
struct SegmentGuard(interlock::ShmId);

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        let _ = shm::remove(self.0);
    }
}

/// The key shift: the server started on the next key because another
/// segment sat on its first; once that one is gone, a new server would
/// create a segment on the first key and never see the orphan on the next.
#[test]
fn orphan_on_a_shifted_key() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let by = bystander(&t.data, &mut c);
    let ino = std::fs::metadata(&t.data).unwrap().ino();
    let first = interlock::pg::key_for_inode(ino);
    let squatter = SegmentGuard(shm::create_exclusive(first, 4096).expect("the first key is free"));
    let _child = start(&bindir, &t.data, &mut c);
    psql(
        &bindir,
        &t.data,
        &format!(
            "create table t (i int primary key); insert into t select generate_series(1, {ROWS})"
        ),
    );
    let (key, _) = line7(&t.data);
    assert_ne!(
        key,
        first.0.to_string(),
        "the server moved past the squatter"
    );
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    drop(squatter);
    let r = status(&t.data);
    assert!(codes(&r).contains(&"unprobed_segment".to_string()), "{r:#}");
    let orphaned: Vec<i32> = segments_of(&t.data);
    let done = fixes_and_starts(&bindir, &t, &mut c, by, &[ck]);
    let removed: Vec<&Value> = done["plan"]["remove"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "segment")
        .collect();
    assert_eq!(removed.len(), 1, "{done:#}");
    assert!(orphaned.contains(&(removed[0]["shmid"].as_i64().unwrap() as i32)));
    assert!(
        !segments_of(&t.data).iter().any(|id| orphaned.contains(id)),
        "the shifted segment was removed"
    );
}

/// Make the running server's postmaster a zombie: stop its parent (the
/// `runuser` that started it), SIGKILL it, and wait for its children to go.
fn zombie_postmaster_of(data: &Path, runner: &Child) -> i32 {
    let pm = postmaster_pid(data).unwrap();
    signal(runner.id() as i32, Signal::STOP);
    // A stop takes effect asynchronously: until it has, the parent could
    // still reap the postmaster.
    wait_stopped(runner.id() as i32);
    signal(pm, Signal::KILL);
    wait_until("a zombie postmaster", || !running(pm));
    assert!(
        std::fs::metadata(format!("/proc/{pm}")).is_ok(),
        "it is a zombie, not gone"
    );
    wait_until("its children gone", || {
        segments_of(data).iter().all(|&id| {
            shm::stat(interlock::ShmId(id))
                .map(|s| s.nattch == 0)
                .unwrap_or(true)
        })
    });
    pm
}

/// A postmaster whose parent does not reap it: the zombie's PID passes the
/// server's kill(pid, 0), so its lock files block although nothing runs:
/// `postmaster.pid`, and the socket's lock file after it.
#[test]
fn zombie_postmaster() {
    let bindir = require_postgres!();
    let (t, mut c, mut runner, by) = running_with_rows(&bindir);
    zombie_postmaster_of(&t.data, &runner);
    let r = status(&t.data);
    assert_eq!(r["lock_file"]["identity"], "zombie", "{r:#}");
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
    let socket_lock = t.data.join(".s.PGSQL.5999.lock");
    assert_eq!(
        r["socket_locks"][0]["path"],
        socket_lock.display().to_string()
    );
    assert_eq!(r["socket_locks"][0]["identity"], "zombie");
    let done = fixes_and_starts(&bindir, &t, &mut c, by, &[]);
    let removed: Vec<&str> = done["plan"]["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed,
        [
            t.data.join("postmaster.pid").display().to_string(),
            socket_lock.display().to_string()
        ]
    );
    signal(runner.id() as i32, Signal::CONT);
    let _ = runner.wait();
}

/// With only `postmaster.pid` removed by hand, the zombie's socket lock
/// file still stops the server, as predicted, word for word.
#[test]
fn zombie_postmasters_socket_lock_file() {
    let bindir = require_postgres!();
    let (t, mut c, mut runner, by) = running_with_rows(&bindir);
    zombie_postmaster_of(&t.data, &runner);
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    let r = status(&t.data);
    assert_eq!(
        r["postgres_would_say"],
        format!(
            "lock file \"{}\" already exists",
            t.data.join(".s.PGSQL.5999.lock").display()
        ),
        "{r:#}"
    );
    assert!(codes(&r).contains(&"socket_lock_file".to_string()));
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
    fixes_and_starts(&bindir, &t, &mut c, by, &[]);
    signal(runner.id() as i32, Signal::CONT);
    let _ = runner.wait();
}

#[test]
fn empty_lock_file_after_a_crash() {
    let bindir = require_postgres!();
    let (t, mut c, mut child, by) = running_with_rows(&bindir);
    crash(&t.data, &mut child);
    std::fs::write(t.data.join("postmaster.pid"), b"").unwrap();
    let done = fixes_and_starts(&bindir, &t, &mut c, by, &[]);
    assert_eq!(done["plan"]["remove"][0]["kind"], "lock_file", "{done:#}");
}

#[test]
fn bogus_lock_file_after_a_crash() {
    let bindir = require_postgres!();
    let (t, mut c, mut child, by) = running_with_rows(&bindir);
    crash(&t.data, &mut child);
    std::fs::write(t.data.join("postmaster.pid"), b"garbage\n").unwrap();
    fixes_and_starts(&bindir, &t, &mut c, by, &[]);
}

/// The lock file names a live, unrelated process of the same user (the
/// PID was reused): the file goes, the process stays.
#[test]
fn lock_file_naming_an_unrelated_live_process() {
    let bindir = require_postgres!();
    let (t, mut c, mut child, by) = running_with_rows(&bindir);
    crash(&t.data, &mut child);
    lock_file_naming(&t.data, by);
    let r = status(&t.data);
    assert_eq!(r["lock_file"]["identity"], "reused", "{r:#}");
    let done = fixes_and_starts(&bindir, &t, &mut c, by, &[]);
    assert!(done["outcome"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| !s["what"].as_str().unwrap().contains(&by.to_string())));
}

/// A holder of another user (here: this test, as root) stops the plan:
/// nothing is signalled or removed, even with --yes.
#[test]
fn a_holder_of_another_user_stops_the_plan() {
    let bindir = require_postgres!();
    let (t, mut c, _child, by) = running_with_rows(&bindir);
    let (_, shmid) = line7(&t.data);
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    let attachment = shm::attach(interlock::ShmId(shmid.parse().unwrap())).unwrap();
    // The killed postmaster's other children leave on their own, each
    // detaching: wait until only the checkpointer and this test are left,
    // so that the attach counts compared below are settled.
    wait_until("the other children to detach", || {
        std::fs::read_to_string("/proc/sysvipc/shm")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1) == Some(&shmid.as_str()) && f.get(6) == Some(&"2")
            })
    });
    let r = status(&t.data);
    let w = world(&t.data, &r);
    for yes in [false, true] {
        let (v, code) = fix(&t.data, yes);
        assert_eq!(code, 3, "{v:#}");
        assert!(v["outcome"].is_null());
        let refused = &v["plan"]["refused"];
        assert_eq!(refused[0]["code"], "other_user", "{v:#}");
        assert_eq!(refused[0]["pid"], std::process::id());
        assert_eq!(world(&t.data, &r), w);
    }
    assert!(running(ck));
    drop(attachment);
    fixes_and_starts(&bindir, &t, &mut c, by, &[ck]);
}

#[test]
fn a_running_server_is_left_alone() {
    let bindir = require_postgres!();
    let (t, _c, child, by) = running_with_rows(&bindir);
    let pm = postmaster_pid(&t.data).unwrap();
    let (v, code) = fix(&t.data, true);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["plan"]["before"]["verdict"], "running");
    assert_eq!(v["plan"]["stop"], serde_json::json!([]));
    assert!(v["outcome"].is_null());
    assert!(running(pm) && running(by));
    assert_eq!(psql(&bindir, &t.data, "select count(*) from t"), ROWS);
    stop_fast(&t.data, child);
}
