//! `interlock status` against a real PostgreSQL: each test puts a data
//! directory in a state, asks the tool what the server will do, then starts
//! the `postgres` binary itself and compares the prediction with what it
//! really did (started, or the FATAL line it logged).

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use rustix::process::Signal;
use serde_json::Value;

#[test]
fn cleanly_stopped_then_running_then_stopped() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);

    let r = status(&t.data);
    will_start(&r);
    assert_eq!(r["lock_file"]["state"], "absent");
    assert_eq!(r["version"]["keys"], "inode");

    let child = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    let r = status(&t.data);
    assert_eq!(r["verdict"], "running", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        "lock file \"postmaster.pid\" already exists"
    );
    assert_eq!(r["lock_file"]["identity"], "owner");
    assert!(codes(&r).contains(&"postmaster_running".to_string()));
    let holders = r["holders"].as_array().unwrap();
    let postmaster = holders
        .iter()
        .find(|h| h["pid"] == pm)
        .unwrap_or_else(|| panic!("postmaster {pm} not among {holders:#?}"));
    assert_eq!(postmaster["role"], "postmaster");
    assert!(holders.iter().any(|h| h["role"] == "checkpointer"));
    assert_eq!(
        r["version"]["server_binary"],
        bindir.join("postgres").display().to_string()
    );
    // A second server is refused as predicted.
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));

    stop_fast(&t.data, child);
    will_start(&status(&t.data));
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
}

#[test]
fn killed_postmaster_with_a_stopped_backend_is_blocked_until_it_is_gone() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let (key, shmid) = {
        start(&bindir, &t.data, &mut c);
        line7(&t.data)
    };
    let checkpointer = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    // The other children notice the postmaster's death and leave; only the
    // stopped checkpointer stays attached.
    wait_until("one holder left", || {
        status(&t.data)["holders"].as_array().unwrap().len() == 1
    });

    let r = status(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        format!("pre-existing shared memory block (key {key}, ID {shmid}) is still in use")
    );
    let seg = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shmid"].as_i64() == shmid.parse().ok())
        .unwrap();
    assert_eq!(seg["state"], "attached", "{seg:#}");
    assert_eq!(seg["belongs"], "this_directory");
    let h = &r["holders"][0];
    assert_eq!(h["pid"], checkpointer);
    assert_eq!(h["state"], "stopped");
    assert_eq!(h["role"], "checkpointer");
    assert_eq!(h["shmid"].to_string(), shmid);
    let found = codes(&r);
    assert!(found.contains(&"orphaned_holders".to_string()), "{found:?}");
    assert!(found.contains(&"stale_lock_file".to_string()), "{found:?}");
    let remedy = r["remedy"].to_string();
    assert!(
        remedy.contains(&format!("kill -CONT {checkpointer}")),
        "{remedy}"
    );
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));

    // Once it is gone: will start, recycling the old segment.
    signal(checkpointer, Signal::CONT);
    signal(checkpointer, Signal::KILL);
    wait_until("checkpointer gone", || !running(checkpointer));
    let r = status(&t.data);
    will_start(&r);
    assert!(
        r["probe"]["outcome"]
            .as_str()
            .unwrap()
            .contains(&format!("removes the old segment ID {shmid}")),
        "{r:#}"
    );
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
}

#[test]
fn lock_file_naming_a_live_process_of_the_same_user() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let runner = Command::new("runuser")
        .args(["-u", "postgres", "--", "sleep", "600"])
        .spawn()
        .unwrap();
    c.pids.push(runner.id() as i32);
    let sleeper = {
        let mut found = Vec::new();
        wait_until("sleep started", || {
            found = children_named(runner.id() as i32, "sleep");
            !found.is_empty()
        });
        found[0]
    };
    c.pids.push(sleeper);
    lock_file_naming(&t.data, sleeper);

    let r = status(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        "lock file \"postmaster.pid\" already exists"
    );
    assert_eq!(r["lock_file"]["identity"], "reused");
    assert!(r["lock_file"]["process"]["cmdline"]
        .as_str()
        .unwrap()
        .contains("sleep 600"));
    assert!(codes(&r).contains(&"pid_reused".to_string()));
    assert!(r["remedy"][0]
        .as_str()
        .unwrap()
        .starts_with("Remove the lock file"));
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));

    // A PID of another user is dead to the server (EPERM).
    lock_file_naming(&t.data, std::process::id() as i32);
    let r = status(&t.data);
    will_start(&r);
    assert_eq!(r["lock_file"]["identity"], "other_user");
    assert!(codes(&r).contains(&"pid_other_user".to_string()));
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
}

/// Write `content` as the lock file; expect `status` to predict `message`
/// with finding `code`, and the server to refuse with that very message.
fn lock_file_blocks(
    bindir: &Path,
    data: &Path,
    c: &mut Cleanup,
    content: &[u8],
    message: &str,
    code: &str,
) {
    std::fs::write(data.join("postmaster.pid"), content).unwrap();
    chown_r(&data.join("postmaster.pid"));
    let r = status(data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(r["postgres_would_say"], message);
    assert!(codes(&r).contains(&code.to_string()), "{r:#}");
    said_what_was_predicted(&r, &refused(bindir, data, c));
    assert!(data.join("postmaster.pid").exists(), "nothing is removed");
}

#[test]
fn empty_lock_file() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    lock_file_blocks(
        &bindir,
        &t.data,
        &mut c,
        b"",
        "lock file \"postmaster.pid\" is empty",
        "lock_file_empty",
    );
}

#[test]
fn lock_file_with_garbage() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    lock_file_blocks(
        &bindir,
        &t.data,
        &mut c,
        b"not a pid\nat all\n",
        "bogus data in lock file \"postmaster.pid\": \"not a pid\nat all\n\"",
        "lock_file_corrupt",
    );

    // Leading digits are enough for the server (atoi): a dead PID followed
    // by junk is a stale lock file, not garbage.
    std::fs::write(t.data.join("postmaster.pid"), b"2000000000junk\n").unwrap();
    let r = status(&t.data);
    will_start(&r);
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
}

#[test]
fn ipcrm_and_rm_of_the_lock_file_make_an_unsafe_start_that_is_predicted() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let (key, shmid) = {
        start(&bindir, &t.data, &mut c);
        line7(&t.data)
    };
    let checkpointer = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    // The segment's DSM control handle, to free its files at the end: once
    // the segment is removed, nothing else can find them (the leak the
    // facts sheet describes).
    let dsm_control =
        match interlock::segment::analyze(interlock::ShmId(shmid.parse().unwrap()), &t.data) {
            interlock::segment::SegmentState::Attached { header, .. } => header.dsm_control,
            other => panic!("segment {shmid} should be attached: {other:?}"),
        };
    // What the DBA in the case study did: ipcrm. Linux still lets the
    // server attach to the removed segment through line 7, so it refuses.
    let st = Command::new("ipcrm").args(["-m", &shmid]).status().unwrap();
    assert!(st.success());
    let r = status(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        format!("pre-existing shared memory block (key {key}, ID {shmid}) is still in use")
    );
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
    assert!(codes(&r).contains(&"segment_removed".to_string()));

    // And then the lock file: nothing stops the server any more, while the
    // old checkpointer still runs. The tool says so (exit 1), and the
    // server does start.
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    let r = status(&t.data);
    assert_eq!(r["verdict"], "will_start", "{r:#}");
    assert_eq!(r["safe_to_start"], false);
    assert_eq!(r["holders"][0]["pid"], checkpointer);
    let danger: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "danger")
        .collect();
    assert!(
        danger.iter().any(|f| f["code"] == "segment_removed"),
        "{r:#}"
    );
    assert!(r["remedy"][0].as_str().unwrap().starts_with("Do not start"));
    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
    signal(checkpointer, Signal::CONT);
    signal(checkpointer, Signal::KILL);
    wait_until("checkpointer gone", || !running(checkpointer));
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&t.data).unwrap().uid();
    interlock::segment::cleanup_dsm(dsm_control, owner);
}

#[test]
fn scan_maps_each_segment_to_its_data_directory() {
    let bindir = require_postgres!();
    let running = cluster(&bindir);
    let orphaned = cluster(&bindir);
    let mut c = Cleanup::for_dir(&running.data);
    c.dirs.push(orphaned.data.clone());
    let child = start(&bindir, &running.data, &mut c);
    let pm = postmaster_pid(&running.data).unwrap();

    // The second cluster's server is killed; its stopped checkpointer stays.
    // (Both listen on no TCP port and have their sockets in their own
    // directories, so they do not collide.)
    start(&bindir, &orphaned.data, &mut c);
    let (_, shmid2) = line7(&orphaned.data);
    let ckpt = kill_leaving_stopped_checkpointer(&orphaned.data, &mut c);

    // `interlock` alone runs the scan.
    let out = Command::new(bin()).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("host: "), "{text}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "one directory is blocked:\n{text}"
    );

    let out = Command::new(bin())
        .args(["scan", "--json"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir_of = |data: &Path| {
        r["data_dirs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["data_dir"] == data.display().to_string())
            .unwrap_or_else(|| panic!("{} not found in {r:#}", data.display()))
            .clone()
    };
    assert_eq!(dir_of(&running.data)["verdict"], "running");
    assert_eq!(dir_of(&orphaned.data)["verdict"], "blocked");
    let seg = |shmid: &str| {
        r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["shmid"].as_i64() == shmid.parse().ok())
            .unwrap_or_else(|| panic!("segment {shmid} not in {r:#}"))
            .clone()
    };
    let (_, shmid1) = line7(&running.data);
    assert_eq!(seg(&shmid1)["data_dir"], running.data.display().to_string());
    assert!(seg(&shmid1)["holders"]
        .as_array()
        .unwrap()
        .contains(&Value::from(pm)));
    assert_eq!(
        seg(&shmid2)["data_dir"],
        orphaned.data.display().to_string()
    );
    assert_eq!(seg(&shmid2)["holders"], serde_json::json!([ckpt]));
    stop_fast(&running.data, child);
}

/// What a diagnosis decides, without what is read at a moment (times,
/// states of processes): to compare `scan`'s report of a directory with
/// `status`'s.
fn decision(r: &Value) -> Value {
    let mut holders: Vec<(i64, i64)> = r["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_i64().unwrap(), h["shmid"].as_i64().unwrap()))
        .collect();
    holders.sort_unstable();
    let mut segments: Vec<(i64, String)> = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["shmid"].as_i64().unwrap(), s["belongs"].to_string()))
        .collect();
    segments.sort();
    let mut findings = codes(r);
    findings.sort();
    serde_json::json!({
        "verdict": r["verdict"],
        "postgres_would_say": r["postgres_would_say"],
        "safe_to_start": r["safe_to_start"],
        "lock_file": r["lock_file"]["identity"],
        "holders": holders,
        "segments": segments,
        "findings": findings,
    })
}

#[test]
fn scan_reports_each_directory_as_status_does() {
    // scan diagnoses every directory from one reading of the host: what
    // one directory's diagnosis finds (holders, whose segments are whose)
    // must not show in another's.
    let bindir = require_postgres!();
    let running = cluster(&bindir);
    let orphaned = cluster(&bindir);
    let mut c = Cleanup::for_dir(&running.data);
    c.dirs.push(orphaned.data.clone());
    let child = start(&bindir, &running.data, &mut c);
    start(&bindir, &orphaned.data, &mut c);
    let ckpt = kill_leaving_stopped_checkpointer(&orphaned.data, &mut c);
    // The killed server's other children notice and leave.
    wait_until("one holder left", || {
        status(&orphaned.data)["holders"].as_array().unwrap().len() == 1
    });

    let out = Command::new(bin())
        .args(["scan", "--json"])
        .arg(&running.data)
        .arg(&orphaned.data)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scanned = |data: &Path| {
        r["data_dirs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["data_dir"] == data.display().to_string())
            .unwrap_or_else(|| panic!("{} not found in {r:#}", data.display()))
            .clone()
    };
    for data in [&running.data, &orphaned.data] {
        let alone = status(data);
        let in_scan = scanned(data);
        assert_eq!(
            decision(&in_scan),
            decision(&alone),
            "{}: scan says\n{in_scan:#}\nstatus says\n{alone:#}",
            data.display()
        );
    }
    assert_eq!(scanned(&running.data)["verdict"], "running");
    assert_eq!(scanned(&orphaned.data)["verdict"], "blocked");
    let holders = scanned(&orphaned.data)["holders"].clone();
    assert_eq!(holders.as_array().unwrap().len(), 1, "{holders:#}");
    assert_eq!(holders[0]["pid"], ckpt);
    assert!(!scanned(&running.data)["holders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["pid"] == ckpt));
    stop_fast(&running.data, child);
}

#[test]
fn postgres_option_asks_the_binary_and_catches_a_version_mismatch() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let postgres = bindir.join("postgres");
    let run = |data: &Path| {
        let out = Command::new(bin())
            .args(["status", "--json", "--postgres"])
            .arg(&postgres)
            .arg(data)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let r = run(&t.data);
    will_start(&r);
    let server = r["version"]["server"].as_str().unwrap().to_string();
    let major = r["version"]["data_dir_major"].as_str().unwrap();
    assert!(server.starts_with(&format!("{major}.")), "{server}");
    assert_eq!(r["version"]["server_source"], "--postgres");

    // A directory of another major version: the server refuses it first.
    let other = if major == "16" { "17" } else { "16" };
    std::fs::write(t.data.join("PG_VERSION"), format!("{other}\n")).unwrap();
    let r = run(&t.data);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(
        r["postgres_would_say"],
        "database files are incompatible with server"
    );
    said_what_was_predicted(&r, &refused(&bindir, &t.data, &mut c));
}
