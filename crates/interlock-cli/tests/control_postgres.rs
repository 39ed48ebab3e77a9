//! `interlock control` against real clusters: field by field against
//! `pg_controldata` (Debian's 15), and against the server's own
//! `pg_control_checkpoint()` / `pg_control_system()` on every cached build
//! (the npm builds carry no pg_controldata; Debian's psql 15 asks them).
//! Clean stop, crash (SIGKILL), running; and damaged files.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::*;
use rustix::process::Signal;
use serde_json::Value;

/// The tests here share port 5999 (the keys of 10–12 follow it).
static SERIAL: Mutex<()> = Mutex::new(());

fn control_json(data: &Path) -> (i32, Value) {
    let out = Command::new(bin())
        .args(["control", "--json"])
        .arg(data)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "control --json: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

/// `pg_controldata` as `Field: value` pairs (C locale, UTC).
fn pg_controldata(bindir: &Path, data: &Path) -> Vec<(String, String)> {
    let out = Command::new(bindir.join("pg_controldata"))
        .arg(data)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("pg_controldata printed no {name:?}"))
}

/// A `%c` time of pg_controldata (C locale, UTC) as epoch seconds.
fn epoch_of(c_time: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", c_time, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Every field `control` shows that pg_controldata also prints.
fn agrees_with_pg_controldata(bindir: &Path, data: &Path, ours: &Value) {
    let theirs = pg_controldata(bindir, data);
    let pairs = [
        ("Database cluster state", "state"),
        ("Latest checkpoint location", "checkpoint"),
        ("Latest checkpoint's REDO location", "redo"),
        ("Minimum recovery ending location", "min_recovery_point"),
        ("Database system identifier", "system_identifier"),
    ];
    for (theirs_name, ours_name) in pairs {
        assert_eq!(
            field(&theirs, theirs_name),
            ours[ours_name].as_str().unwrap(),
            "{theirs_name}"
        );
    }
    for (theirs_name, ours_name) in [
        ("Latest checkpoint's TimeLineID", "timeline"),
        ("Latest checkpoint's PrevTimeLineID", "prev_timeline"),
        ("pg_control version number", "pg_control_version"),
        ("Catalog version number", "catalog_version"),
    ] {
        assert_eq!(
            field(&theirs, theirs_name).parse::<u64>().unwrap(),
            ours[ours_name].as_u64().unwrap(),
            "{theirs_name}"
        );
    }
    assert_eq!(
        epoch_of(field(&theirs, "Time of latest checkpoint")),
        ours["checkpoint_time"].as_i64().unwrap()
    );
    assert_eq!(
        epoch_of(field(&theirs, "pg_control last modified")),
        ours["last_modified"].as_i64().unwrap()
    );
}

#[test]
fn clean_running_and_crashed_cluster_agree_with_pg_controldata() {
    let bindir = require_postgres!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);

    // Cleanly stopped (initdb's shutdown checkpoint).
    let (code, v) = control_json(&t.data);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["state"], "shut down");
    assert_eq!(v["crc_ok"], true);
    assert_eq!(v["crash_recovery_on_start"], false);
    agrees_with_pg_controldata(&bindir, &t.data, &v);

    // Running: "in production", said as a running server, exit 0.
    let child = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    psql(
        &bindir,
        &t.data,
        "create table t(i int); insert into t select generate_series(1, 100); checkpoint",
    );
    let (code, v) = control_json(&t.data);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["state"], "in production");
    assert_eq!(v["running_pid"], pm);
    agrees_with_pg_controldata(&bindir, &t.data, &v);

    // Crashed: the postmaster SIGKILLed; its children exit by themselves.
    psql(
        &bindir,
        &t.data,
        "insert into t select generate_series(1, 100)",
    );
    signal(pm, Signal::KILL);
    wait_gone(pm);
    drop(child);
    let (code, v) = control_json(&t.data);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["state"], "in production");
    assert_eq!(v["running_pid"], Value::Null);
    assert_eq!(v["crash_recovery_on_start"], true);
    assert!(v["next_start"]
        .as_str()
        .unwrap()
        .starts_with("crash recovery will run on the next start"));
    agrees_with_pg_controldata(&bindir, &t.data, &v);
    let redo = v["redo"].as_str().unwrap().to_string();

    // status says the same in one line.
    let st = status(&t.data);
    assert_eq!(st["control"]["crash_recovery_on_start"], true);
    assert!(
        st["control"]["line"]
            .as_str()
            .unwrap()
            .contains(&format!("redo {redo}")),
        "{}",
        st["control"]
    );

    // And the server agrees: it runs crash recovery from that redo point.
    wait_until("the crashed server's children to exit", || {
        segments_of(&t.data).iter().all(|&id| {
            interlock::sys::shm::stat(interlock::ShmId(id)).map_or(true, |s| s.nattch == 0)
        })
    });
    let child = start(&bindir, &t.data, &mut c);
    let log = std::fs::read_dir(t.data.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("postgres-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        log.contains("was not properly shut down; automatic recovery in progress")
            && log.contains(&format!("redo starts at {redo}")),
        "{log}"
    );
    stop_fast(&t.data, child);
    let (code, v) = control_json(&t.data);
    assert_eq!((code, v["state"].as_str()), (0, Some("shut down")));
}

#[test]
fn every_cached_build_agrees_with_the_servers_own_functions() {
    let debian = require_postgres!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let builds = cached_builds();
    if builds.is_empty() {
        eprintln!("skipped: no cached builds (scripts/pg-versions install)");
        return;
    }
    for (name, bindir) in builds {
        let t = cluster(&bindir);
        let mut c = Cleanup::for_dir(&t.data);
        let (code, v) = control_json(&t.data);
        assert_eq!(
            (code, v["state"].as_str()),
            (0, Some("shut down")),
            "{name}: {v}"
        );
        assert_eq!(v["crc_ok"], true, "{name}");

        let child = start(&bindir, &t.data, &mut c);
        let pm = postmaster_pid(&t.data).unwrap();
        // Debian's psql 15 talks to 10–18 alike.
        psql(&debian, &t.data, "checkpoint");
        let server = psql(
            &debian,
            &t.data,
            "select c.checkpoint_lsn, c.redo_lsn, c.timeline_id, \
             extract(epoch from c.checkpoint_time)::bigint, \
             s.pg_control_version, s.catalog_version_no, s.system_identifier \
             from pg_control_checkpoint() c, pg_control_system() s",
        );
        let f: Vec<&str> = server.split('|').collect();
        let (_, v) = control_json(&t.data);
        assert_eq!(v["checkpoint"], f[0], "{name}");
        assert_eq!(v["redo"], f[1], "{name}");
        assert_eq!(v["timeline"].to_string(), f[2], "{name}");
        assert_eq!(v["checkpoint_time"].to_string(), f[3], "{name}");
        assert_eq!(v["pg_control_version"].to_string(), f[4], "{name}");
        assert_eq!(v["catalog_version"].to_string(), f[5], "{name}");
        assert_eq!(v["system_identifier"], f[6], "{name}");
        assert_eq!(v["running_pid"], pm, "{name}");

        signal(pm, Signal::KILL);
        wait_gone(pm);
        drop(child);
        let (code, v) = control_json(&t.data);
        assert_eq!(code, 1, "{name}: {v}");
        assert_eq!(v["state"], "in production", "{name}");
        assert_eq!(v["crash_recovery_on_start"], true, "{name}");
        assert_eq!(v["checkpoint"], f[0], "{name}");
        eprintln!("{name}: control agrees with pg_control_checkpoint(), clean and crashed");
    }
}

#[test]
fn damaged_files_are_clear_errors() {
    let bindir = require_postgres!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = cluster(&bindir);
    let file = t.data.join("global/pg_control");
    let good = std::fs::read(&file).unwrap();

    // A flipped bit: read, flagged, exit 1; the server refuses too.
    let mut bad = good.clone();
    bad[40] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    let (code, v) = control_json(&t.data);
    assert_eq!(code, 1);
    assert_eq!(v["crc_ok"], false);
    assert!(v["next_start"]
        .as_str()
        .unwrap()
        .contains("incorrect checksum in control file"));
    let mut c = Cleanup::for_dir(&t.data);
    let log = refused(&bindir, &t.data, &mut c);
    assert!(log.contains("incorrect checksum in control file"), "{log}");

    // Truncated, another version, junk: exit 2, the file named, no panic.
    for (what, bytes, says) in [
        ("truncated", good[..100].to_vec(), "truncated"),
        (
            "9.6's version",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&960u32.to_le_bytes());
                b
            },
            "960",
        ),
        (
            "big-endian",
            {
                let mut b = good.clone();
                let v = u32::from_le_bytes(b[8..12].try_into().unwrap());
                b[8..12].copy_from_slice(&v.to_be_bytes());
                b
            },
            "other byte order",
        ),
        ("empty", Vec::new(), "0 bytes"),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let out = Command::new(bin())
            .arg("control")
            .arg(&t.data)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(&file.display().to_string()) && err.contains(says),
            "{what}: {err}"
        );
        assert!(out.stdout.is_empty(), "{what}");
    }
}
