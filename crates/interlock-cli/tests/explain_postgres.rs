//! `interlock explain` on logs of real failures, provoked safely with
//! Debian's PostgreSQL 15, and joined with the live state (-D).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn explain(log: &str, dir: &Path, data: Option<&Path>) -> Value {
    let file = dir.join(format!("explain-{}.log", std::process::id()));
    std::fs::write(&file, log).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["explain", "--json"]).arg(&file);
    if let Some(d) = data {
        cmd.arg("-D").arg(d);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn first(v: &Value) -> &Value {
    &v["failures"][0]
}

fn now(v: &Value) -> String {
    first(v)["now"].to_string()
}

#[test]
fn a_held_lock_file_and_a_held_segment_are_joined_with_who_holds_them() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let server = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();

    // A second server on the same directory.
    let log = refused(&bindir, &t.data, &mut c);
    let v = explain(&log, t.root.path(), Some(&t.data));
    assert_eq!(first(&v)["code"], "lock_file_exists");
    assert_eq!(first(&v)["pid"], pm);
    assert!(
        now(&v).contains(&format!(
            "PID {pm} still runs and is this directory's server"
        )),
        "{v}"
    );
    assert!(v["status_now"]
        .as_str()
        .unwrap()
        .ends_with("a server runs on it"));

    // The case study: postmaster killed, checkpointer stopped and attached.
    let ckpt = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    drop(server);
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();
    let log = refused(&bindir, &t.data, &mut c);
    let v = explain(&log, t.root.path(), Some(&t.data));
    let f = first(&v);
    assert_eq!(f["code"], "segment_in_use", "{log}");
    assert!(
        now(&v).contains(&format!(
            "is still held by PID {ckpt} (checkpointer, stopped)"
        )),
        "{v}"
    );
    // Without -D: explained, nothing claimed about now.
    let v = explain(&log, t.root.path(), None);
    assert_eq!(first(&v)["now"], serde_json::json!([]));
    assert_eq!(v["status_now"], Value::Null);
}

#[test]
fn an_empty_lock_file_and_bad_permissions() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);

    std::fs::write(t.data.join("postmaster.pid"), "").unwrap();
    chown_r(&t.data.join("postmaster.pid"));
    let log = refused(&bindir, &t.data, &mut c);
    let v = explain(&log, t.root.path(), Some(&t.data));
    assert_eq!(first(&v)["code"], "lock_file_empty", "{log}");
    assert!(now(&v).contains("postmaster.pid is still empty"), "{v}");
    std::fs::remove_file(t.data.join("postmaster.pid")).unwrap();

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&t.data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = refused(&bindir, &t.data, &mut c);
    let v = explain(&log, t.root.path(), Some(&t.data));
    std::fs::set_permissions(&t.data, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(first(&v)["code"], "data_dir_unusable", "{log}");
    assert_eq!(first(&v)["data_dir"], t.data.display().to_string());

    // -D without a log file: the newest file in log_directory.
    std::fs::create_dir_all(t.data.join("log")).unwrap();
    std::fs::write(t.data.join("log/postgresql-2026-11-21.log"), &log).unwrap();
    // Owned by the server's user, as the logging collector writes it:
    // explain -D reads no file of another owner from log_directory.
    chown_r(&t.data.join("log"));
    let out = Command::new(bin())
        .arg("explain")
        .arg("-D")
        .arg(&t.data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("postgresql-2026-11-21.log: 1 failure"),
        "{text}"
    );
    assert!(
        text.contains("the data directory passes the server's checks now"),
        "{text}"
    );
}

fn meminfo(name: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn impossible_huge_pages_and_more_buffers_than_memory() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let conf = t.data.join("postgresql.conf");
    let original = std::fs::read_to_string(&conf).unwrap();

    if meminfo("HugePages_Free") < 200 {
        std::fs::write(&conf, format!("{original}\nhuge_pages = on\n")).unwrap();
        let log = refused(&bindir, &t.data, &mut c);
        // The log alone: an anonymous mapping failed.
        let v = explain(&log, t.root.path(), None);
        assert_eq!(first(&v)["code"], "anonymous_mmap_failed", "{log}");
        assert_eq!(first(&v)["errno"], "ENOMEM");
        // With the directory: its configuration says huge_pages = on.
        let v = explain(&log, t.root.path(), Some(&t.data));
        assert_eq!(first(&v)["code"], "huge_pages_unavailable", "{v}");
        assert!(
            now(&v).contains("the configuration says huge_pages = on"),
            "{v}"
        );
        assert!(now(&v).contains("huge pages of"), "{v}");
    } else {
        eprintln!("huge pages part skipped: this host has free huge pages");
    }

    // Twice memory and swap together: the kernel refuses the mapping.
    let kb = 2 * (meminfo("MemTotal") + meminfo("SwapTotal"));
    std::fs::write(&conf, format!("{original}\nshared_buffers = {kb}kB\n")).unwrap();
    let log = refused(&bindir, &t.data, &mut c);
    let v = explain(&log, t.root.path(), Some(&t.data));
    std::fs::write(&conf, &original).unwrap();
    let f = first(&v);
    assert_eq!(f["code"], "anonymous_mmap_failed", "{log}");
    assert!(f["size"].as_u64().unwrap() > kb * 1024);
    assert!(
        now(&v).contains("is more than memory and swap together"),
        "{v}"
    );
}
