//! The rules of the versions no registry has (facts sheet §1.4–1.6):
//! 10.0–10.7 and 11.0–11.2 run the old probe loop, which removes a
//! PostgreSQL segment whose creator (the PID in its header) is dead,
//! attached or not, and of any data directory;
//! 10.8+/11.3+ run the segment-state analysis. Each situation is built with
//! a real 10.20 / 11.15 server (the oldest the npm registry has,
//! `scripts/pg-versions install 10.20 11.15`); then `interlock status` is
//! asked with stand-in `postgres` binaries that report the old minors.
//! The real server's own start checks the new-algorithm prediction.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use rustix::process::Signal;
use serde_json::Value;

/// The oldest cached build of `major` (`.cache/pg/10.20.0-…/native/bin`).
fn cached_build(major: u32) -> Option<PathBuf> {
    let cache = std::env::var_os("INTERLOCK_PG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/pg"));
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut v = name.split('.');
            (v.next()?.parse::<u32>().ok()? == major).then_some(())?;
            let minor = v.next()?.parse::<u32>().ok()?;
            let bin = e.path().join("native/bin");
            bin.join("postgres").exists().then_some((minor, bin))
        })
        .collect();
    found.sort();
    found.into_iter().next().map(|(_, b)| b)
}

/// A `postgres` that only says which version it is.
fn stand_in(dir: &Path, version: &str) -> PathBuf {
    let p = dir.join(format!("postgres-{version}"));
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// `interlock status --json --port 5999 --postgres P DIR`: exit code and report.
fn status_as(data: &Path, postgres: &Path) -> (i32, Value) {
    let out = Command::new(bin())
        .args(["status", "--json", "--port", "5999", "--postgres"])
        .arg(postgres)
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), r)
}

/// Whether the predicted probe outcome contains `words`.
fn probe_says(r: &Value, words: &str) -> bool {
    r["probe"]["outcome"].as_str().unwrap().contains(words)
}

fn severity_of(r: &Value, code: &str) -> String {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .map(|f| f["severity"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn old_and_first_new_minors_of_10_and_11() {
    if !is_root() {
        eprintln!("skipped: PostgreSQL runs as the postgres user, which needs root here");
        return;
    }
    // One test: clusters of 10–12 on one port share keys, so the two
    // majors run one after the other.
    for (major, old, first_new) in [(10, "10.7", "10.8"), (11, "11.2", "11.3")] {
        let Some(bindir) = cached_build(major) else {
            eprintln!(
                "skipped {major}: no cached build (scripts/pg-versions install {major}.{})",
                if major == 10 { 20 } else { 15 }
            );
            continue;
        };
        let fakes = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            fakes.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let old_bin = stand_in(fakes.path(), old);
        let new_bin = stand_in(fakes.path(), first_new);
        orphan_without_lock_file(&bindir, &old_bin, &new_bin);
        dead_creators_segment_of_another_directory(&bindir, &old_bin, &new_bin);
    }
}

/// `rm postmaster.pid` while an orphan (a stopped checkpointer) is
/// attached: the new algorithm refuses, the old one removes the attached
/// segment and starts beside the orphan.
fn orphan_without_lock_file(bindir: &Path, old_bin: &Path, new_bin: &Path) {
    let t = cluster(bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let mut server = start(bindir, &t.data, &mut c);
    let (key, shmid) = line7(&t.data);
    let key = key.trim().to_string();
    kill_leaving_stopped_checkpointer(&t.data, &mut c);
    let _ = server.wait();
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();

    let blocked =
        format!("pre-existing shared memory block (key {key}, ID {shmid}) is still in use");
    for postgres in [bindir.join("postgres"), new_bin.to_path_buf()] {
        let (code, r) = status_as(&t.data, &postgres);
        assert_eq!(r["version"]["algorithm"], "new", "{r:#}");
        assert_eq!(r["verdict"], "blocked", "{r:#}");
        assert_eq!(r["postgres_would_say"], blocked.as_str());
        assert_eq!(code, 1);
    }
    // The real server (new algorithm) agrees.
    let (_, r) = status_as(&t.data, &bindir.join("postgres"));
    said_what_was_predicted(&r, &refused(bindir, &t.data, &mut c));

    let (code, r) = status_as(&t.data, old_bin);
    assert_eq!(r["version"]["algorithm"], "old", "{r:#}");
    assert_eq!(r["verdict"], "will_start", "{r:#}");
    assert_eq!(r["safe_to_start"], false);
    assert_eq!(r["probe"]["creates_at"].to_string(), key, "{r:#}");
    assert!(
        probe_says(&r, &format!("removes the old segment ID {shmid}")),
        "{r:#}"
    );
    assert_eq!(severity_of(&r, "orphaned_holders"), "danger", "{r:#}");
    assert_eq!(code, 1, "unsafe: exit 1");
}

/// Another data directory's segment on the first key, nobody attached, its
/// creator dead (that server was SIGKILLed): the new algorithm leaves it
/// and takes the next key; the old one removes it and takes its key. But
/// the old one decides by the header (PostgreSQL's magic, `creatorPID`),
/// which status cannot read without attaching: with a non-PostgreSQL
/// segment there it would move on instead, so status says it starts
/// without naming the key.
fn dead_creators_segment_of_another_directory(bindir: &Path, old_bin: &Path, new_bin: &Path) {
    let other = cluster(bindir);
    let t = cluster(bindir);
    let mut c = Cleanup::for_dir(&other.data);
    c.dirs.push(t.data.clone());
    let mut server = start(bindir, &other.data, &mut c);
    let (key, shmid) = line7(&other.data);
    let key: u64 = key.trim().parse().unwrap();
    let pm = postmaster_pid(&other.data).unwrap();
    signal(pm, Signal::KILL);
    wait_gone(pm);
    let _ = server.wait();
    wait_until("the other server's children to exit", || {
        std::fs::read_to_string("/proc/sysvipc/shm")
            .unwrap()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1) == Some(&shmid.as_str()) && f.get(6) == Some(&"0")
            })
    });

    // Whose the unattached segment is can only be read by attaching, which
    // status does not do to a segment nobody is attached to: it says the
    // server starts, at that key or the next, without naming one.
    for postgres in [bindir.join("postgres"), new_bin.to_path_buf()] {
        let (code, r) = status_as(&t.data, &postgres);
        assert_eq!(r["verdict"], "will_start", "{r:#}");
        assert_eq!(r["probe"]["creates_at"], Value::Null, "{r:#}");
        assert!(
            probe_says(&r, &format!("finds segment ID {shmid} ")),
            "{r:#}"
        );
        assert_eq!(code, 0, "{r:#}");
    }
    let (code, r) = status_as(&t.data, old_bin);
    assert_eq!(r["version"]["algorithm"], "old", "{r:#}");
    assert_eq!(r["verdict"], "will_start", "{r:#}");
    assert_eq!(r["probe"]["creates_at"], Value::Null, "{r:#}");
    assert!(
        probe_says(
            &r,
            &format!("finds segment ID {shmid} at key {key:#010x}, whose header cannot be read here: removes it and creates its own there if it is a PostgreSQL segment whose creator is dead")
        ),
        "{r:#}"
    );
    assert_eq!(code, 0, "{r:#}");

    // The real server (new algorithm) leaves it and takes the next key.
    let child = start(bindir, &t.data, &mut c);
    let (taken, _) = line7(&t.data);
    assert_eq!(taken.trim().parse::<u64>().unwrap(), key + 1);
    stop_fast(&t.data, child);
}
