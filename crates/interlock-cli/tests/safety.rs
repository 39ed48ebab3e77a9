//! Safety of the diagnosis where it used to give a confident wrong answer
//! or advise harm (issue 12, items 1, 3, 4, 5 and 6), against the real
//! `postgres` binary: a killed `interlock hold` whose command still runs, a
//! user who sees a removed segment but cannot attribute it, a damaged
//! `pg_control`, and a forged segment held by another user.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use interlock::sys::shm;
use rustix::process::Signal;
use serde_json::Value;

/// `interlock fix --json [--yes] DATA`: the report and the exit code.
fn fix(data: &Path, yes: bool) -> (Value, i32) {
    fix_json(data, yes, "3")
}

fn refusal_codes(fix: &Value) -> Vec<String> {
    fix["plan"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
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

// ------------------------------------------------------------------ item 1

/// `interlock hold` is SIGKILLed while its command runs: the keeper still
/// holds the directory, and PostgreSQL rightly refuses. `status` must call
/// it a maintenance hold, not orphans, and `fix --yes` must refuse and
/// leave both keeper and command running.
fn killed_hold_is_a_maintenance_hold(hold_opts: &[&str]) {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let (mut hold, command, _) = spawn_hold(&t.data, hold_opts, &mut c);
    let hold_pid = hold.id() as i32;
    let keepers = children_named(hold_pid, "hold");
    assert_eq!(keepers.len(), 1, "one keeper expected: {keepers:?}");
    let keeper = keepers[0];
    c.pids.push(keeper);
    signal(hold_pid, Signal::KILL);
    let _ = hold.wait();
    assert!(running(keeper) && running(command));

    let r = status(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    let found = codes(&r);
    assert!(found.contains(&"maintenance_hold".to_string()), "{r:#}");
    assert!(!found.contains(&"orphaned_holders".to_string()), "{r:#}");
    let finding = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "maintenance_hold")
        .unwrap();
    let msg = finding["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "keeper PID {keeper} keeps PID {command} (sleep 600"
        )),
        "{msg}"
    );
    let remedy = remedy_text(&r);
    assert!(!remedy.contains("kill -"), "{remedy}");

    let (plan, code) = fix(&t.data, true);
    assert_eq!(code, 3, "{plan:#}");
    assert!(
        refusal_codes(&plan).contains(&"maintenance_hold".to_string()),
        "{plan:#}"
    );
    assert!(plan["outcome"].is_null(), "{plan:#}");
    assert!(running(keeper), "fix stopped the keeper");
    assert!(running(command), "fix stopped the maintenance command");

    // PostgreSQL agrees that the directory is held.
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));

    // Once the command ends, its keeper goes with it, and the server starts.
    signal(command, Signal::KILL);
    wait_until("the keeper to exit with its command", || !running(keeper));
    let after = status(&t.data);
    assert!(
        !codes(&after).contains(&"maintenance_hold".to_string()),
        "{after:#}"
    );
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
}

#[test]
fn killed_hold_with_lock_file_is_a_maintenance_hold() {
    killed_hold_is_a_maintenance_hold(&[]);
}

#[test]
fn killed_hold_without_lock_file_is_a_maintenance_hold() {
    killed_hold_is_a_maintenance_hold(&["--no-lock-file"]);
}

// ------------------------------------------------------------ items 3 and 4

/// A copy of the `interlock` binary another user can run (the build tree
/// may sit below a directory only root may enter).
fn public_binary(dir: &Path) -> PathBuf {
    let p = dir.join("interlock");
    std::fs::copy(bin(), &p).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
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

/// After a crash with a stopped backend, `ipcrm` and `rm postmaster.pid`,
/// a member of the directory's group sees the removed segment of the
/// directory's owner but cannot read its holders: that is `unknown`, never
/// `will_start`; its DSM files are not "leaked"; `fix` does not call the
/// start safe. Root sees the orphan and says it is unsafe.
#[test]
fn what_a_group_member_cannot_attribute_is_unknown() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    // Group access, as initdb -g gives it (PostgreSQL 11+ accepts 0750).
    let st = Command::new("chmod")
        .args(["-R", "g+rX"])
        .arg(&t.data)
        .status()
        .unwrap();
    assert!(st.success());
    let user = TestUser::new("grp", Some(PG_USER));
    let mut c = Cleanup::for_dir(&t.data);
    let child = start(&bindir, &t.data, &mut c);
    psql(&bindir, &t.data, "select 1");
    let (_, shmid) = line7(&t.data);
    let orphan = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    // Once its segment is removed, nothing frees the DSM files the orphan
    // maps: this test does, at the end.
    let _dsm = DsmFiles::of(orphan);
    let _ = { child }.wait();
    shm::remove(interlock::ShmId(shmid.parse().unwrap())).unwrap();
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();

    // Root: the orphan is found, the start is unsafe.
    let root_view = status(&t.data);
    assert_eq!(root_view["safe_to_start"], false, "{root_view:#}");
    assert!(
        codes(&root_view).contains(&"segment_removed".to_string()),
        "{root_view:#}"
    );

    let tool = public_binary(t.root.path());
    let out = user
        .command(&tool)
        .args(["status", "--json"])
        .arg(&t.data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = json_of(&out);
    assert_eq!(r["verdict"], "unknown", "{r:#}");
    assert_eq!(out.status.code(), Some(2), "{r:#}");
    assert!(
        codes(&r).contains(&"permission_denied".to_string()),
        "{r:#}"
    );
    assert!(remedy_text(&r).contains("as root"), "{r:#}");
    // Item 4: what the orphan maps is not "leaked" to someone who cannot
    // read its maps.
    for d in r["dsm"].as_array().unwrap() {
        assert_ne!(d["status"], "leaked", "{r:#}");
    }
    assert!(!codes(&r).contains(&"leaked_dsm".to_string()), "{r:#}");

    let out = user
        .command(&tool)
        .args(["fix", "--json"])
        .arg(&t.data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let plan = json_of(&out);
    assert!(
        matches!(out.status.code(), Some(2) | Some(3)),
        "fix as a group member: {plan:#}"
    );
    assert!(
        plan["plan"]["remove"].as_array().unwrap().is_empty(),
        "{plan:#}"
    );

    let out = user
        .command(&tool)
        .args(["scan", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = json_of(&out);
    let dsm_of_orphan: Vec<&Value> = s["dsm"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["mapped_by"].as_array().unwrap().is_empty()
                && Path::new(d["path"].as_str().unwrap()).exists()
                && std::fs::read_to_string("/proc/".to_string() + &orphan.to_string() + "/maps")
                    .unwrap_or_default()
                    .contains(d["path"].as_str().unwrap())
        })
        .collect();
    assert!(
        !dsm_of_orphan.is_empty(),
        "the orphan maps DSM files: {s:#}"
    );
    for d in dsm_of_orphan {
        assert_ne!(d["status"], "leaked", "scan as a group member: {d:#}");
    }
    drop(c);
    drop(user);
}

// ------------------------------------------------------------------ item 5

/// A cleanly stopped cluster whose `pg_control` has a bad CRC, or is
/// another major's: the server refuses ("incorrect checksum in control
/// file", "database files are incompatible with server"), so `status` says
/// blocked with those words, and `fix` does not call it startable.
#[test]
fn a_damaged_pg_control_blocks_the_start() {
    let debian = require_postgres!();
    // Debian's 15, and every cached build (10.20, 11.15, 12 and 18 in CI):
    // 10 reads the file while creating shared memory, 11+ right after the
    // lock file.
    let mut builds = vec![("debian-15".to_string(), debian)];
    builds.extend(cached_builds());
    for (name, bindir) in &builds {
        let other = if name.starts_with("17") { 18 } else { 17 };
        for (what, damage) in [("crc", None), ("another major", Some(other))] {
            damaged_pg_control(&format!("{name}, {what}"), bindir, damage);
        }
    }
}

fn damaged_pg_control(what: &str, bindir: &Path, damage: Option<u32>) {
    let t = cluster(bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let path = t.data.join("global/pg_control");
    let mut bytes = std::fs::read(&path).unwrap();
    match damage {
        None => bytes[100] ^= 0x40,
        Some(major) => {
            bytes = interlock_format::pgcontrol::minimal_control_file(
                major,
                interlock_format::pgcontrol::DbState::ShutDown,
            )
            .unwrap()
        }
    }
    // Written in place: the file keeps its owner and mode.
    std::fs::write(&path, bytes).unwrap();

    let out = Command::new(bin())
        .args(["status", "--json", "--postgres"])
        .arg(bindir.join("postgres"))
        .arg(&t.data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: {r:#}");
    assert_eq!(r["verdict"], "blocked", "{what}: {r:#}");
    assert!(
        codes(&r).contains(&"control_file_invalid".to_string()),
        "{what}: {r:#}"
    );
    said_what_was_predicted(&r, &refused(bindir, &t.data, &mut c));
    let (plan, code) = fix(&t.data, false);
    assert_eq!(code, 3, "{what}: {plan:#}");
    assert!(
        refusal_codes(&plan).contains(&"not_interlock".to_string()),
        "{what}: {plan:#}"
    );
}

// ------------------------------------------------------------------ item 6

/// Run as `uid`/`gid`: create a segment at `key`, mode 0666, whose header
/// names `data`; fork a child that stays attached to it; exit, so that its
/// creator is gone. Returns (shmid, worker PID).
fn forge_segment(data: &Path, key: i32, user: &TestUser) -> (i32, i32) {
    let exe = std::env::current_exe().unwrap();
    let copy = data.parent().unwrap().join("forger");
    std::fs::copy(&exe, &copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let m = std::fs::metadata(data).unwrap();
    let mut cmd = Command::new(&copy);
    interlock::sys::proc::run_command_as(&mut cmd, user.uid, user.gid);
    let out = cmd
        .args([
            "--exact",
            "forger",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FORGE_KEY", key.to_string())
        .env("FORGE_DEV", m.dev().to_string())
        .env("FORGE_INO", m.ino().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The harness may print "test forger ... " on the same line.
    let line = text
        .lines()
        .find_map(|l| l.split_once("FORGED ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "forger said:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut f = line.split_whitespace();
    (
        f.next().unwrap().parse().unwrap(),
        f.next().unwrap().parse().unwrap(),
    )
}

/// The forger, run by `forge_segment` in a process of its own as another
/// user; ignored when the suite runs.
#[test]
#[ignore = "run by forge_segment as another user"]
fn forger() {
    let var = |n: &str| std::env::var(n).unwrap();
    let key: i32 = var("FORGE_KEY").parse().unwrap();
    let id = shm::get(
        interlock::ShmKey(key),
        interlock_format::shmem_header::HEADER_SIZE,
        libc_flags(),
    )
    .unwrap();
    let hdr = interlock_format::shmem_header::ShmemHeader::new_interlock(
        std::process::id() as i32,
        var("FORGE_DEV").parse().unwrap(),
        var("FORGE_INO").parse().unwrap(),
    );
    let mut a = shm::attach(id).unwrap();
    a.write(&hdr.render());
    // A forked child inherits the attachment and stays, closing every
    // descriptor (the caller reads our output to its end); we then exit,
    // detaching, so that the segment's creator is gone.
    let worker = interlock::sys::proc::fork_idle().unwrap();
    drop(a);
    println!("FORGED {} {worker}", id.0);
}

/// `IPC_CREAT | IPC_EXCL | 0666`.
fn libc_flags() -> i32 {
    0o1000 | 0o2000 | 0o666
}

/// Another user's segment, made to look like this directory's (mode 0666,
/// at the directory's first key, its header naming the directory), its
/// creator gone, another user's process attached. The server refuses (the
/// segment is "still in use"), but that process is no leftover of this
/// directory's server: `status` names it as another user's and gives no
/// kill command, and `fix` refuses.
#[test]
fn a_forged_segment_of_another_user_is_named_not_killed() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let user = TestUser::new("frg", None);
    let mut c = Cleanup::for_dir(&t.data);
    let key = interlock::pg::key_for_inode(std::fs::metadata(&t.data).unwrap().ino()).0;
    let (shmid, worker) = forge_segment(&t.data, key, &user);
    c.pids.push(worker);

    let r = status(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    let codes = codes(&r);
    assert!(codes.contains(&"foreign_holders".to_string()), "{r:#}");
    assert!(!codes.contains(&"orphaned_holders".to_string()), "{r:#}");
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "foreign_holders")
        .unwrap();
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("PID {worker} (user {}", user.name)),
        "{msg}"
    );
    assert!(msg.contains(&format!("segment ID {shmid}")), "{msg}");
    let remedy = remedy_text(&r);
    assert!(!remedy.contains("kill -"), "{remedy}");

    let (plan, code) = fix(&t.data, true);
    assert_eq!(code, 3, "{plan:#}");
    assert!(
        refusal_codes(&plan).contains(&"other_user".to_string()),
        "{plan:#}"
    );
    assert!(running(worker));
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));

    signal(worker, Signal::KILL);
    wait_until("the forged segment's holder to exit", || !running(worker));
    let _ = shm::remove(interlock::ShmId(shmid));
    drop(c);
    drop(user);
}
