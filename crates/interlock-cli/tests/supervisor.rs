//! Who manages a cluster, against real processes: a plain started
//! PostgreSQL has no manager (whatever cgroup this machine gives it: `/`, a
//! container's, a session's scope are no unit), and, where systemd runs as
//! PID 1, a server started under `systemd-run --unit` is that unit's while
//! one under `systemd-run --scope` is no unit's.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The cgroup line of `pid` this machine shows, for the messages.
fn cgroup_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("0::") || l.contains("name=systemd:"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_plain_started_cluster_has_no_manager() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);

    let r = status(&t.data);
    assert_eq!(
        r["managed_by"]["manager"]["kind"], "none",
        "{:#}",
        r["managed_by"]
    );
    assert!(
        r["remedy"].to_string().contains("pg_ctl start -D"),
        "{:#}",
        r["remedy"]
    );

    let child = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    let r = status(&t.data);
    assert_eq!(r["verdict"], "running", "{r:#}");
    // Its parent is the test's runuser, and its cgroup here
    // ({cgroup_of}) is no system service that runs PostgreSQL only.
    assert_eq!(
        r["managed_by"]["manager"]["kind"],
        "none",
        "postmaster {pm} in {}: {:#}",
        cgroup_of(pm),
        r["managed_by"]
    );
    assert_eq!(r["managed_by"]["how_known"], "proven");
    assert!(
        r["managed_by"]["evidence"]
            .as_str()
            .unwrap()
            .contains(&format!("PID {pm}")),
        "{:#}",
        r["managed_by"]
    );
    assert!(
        r["remedy"].to_string().contains("pg_ctl stop -D"),
        "{:#}",
        r["remedy"]
    );
    let text = Command::new(bin())
        .arg("status")
        .arg(&t.data)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&text.stdout).contains("managed by"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    stop_fast(&t.data, child);
}

fn systemd_runs() -> bool {
    if Path::new("/run/systemd/system").exists() {
        return true;
    }
    eprintln!(
        "SKIP: systemd does not run as PID 1 here (no /run/systemd/system): a server under systemd-run cannot be started"
    );
    false
}

/// Start the server with `systemd-run ARGS` as the postgres user; its
/// postmaster's PID.
fn start_under(bindir: &Path, data: &Path, how: &[&str], c: &mut Cleanup) -> i32 {
    let mut child = Command::new("systemd-run")
        .args(how)
        .arg("--uid=postgres")
        .arg(bindir.join("postgres"))
        .arg("-D")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.pids.push(child.id() as i32);
    wait_until("the postmaster under systemd-run", || {
        postmaster_pid(data).is_some() && status(data)["verdict"] == "running"
    });
    let pm = postmaster_pid(data).unwrap();
    c.pids.push(pm);
    // `--unit` returns once the unit runs; `--scope` stays its parent.
    let _ = child.try_wait();
    pm
}

#[test]
fn a_server_under_systemd_run_unit_is_that_units_and_under_scope_no_ones() {
    let bindir = require_postgres!();
    if !systemd_runs() {
        return;
    }
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let unit = format!("interlock-supervisor-test-{}", std::process::id());

    let pm = start_under(
        &bindir,
        &t.data,
        &[&format!("--unit={unit}"), "--property=Type=exec"],
        &mut c,
    );
    let r = status(&t.data);
    assert_eq!(
        r["managed_by"]["manager"],
        serde_json::json!({"kind": "systemd", "unit": format!("{unit}.service")}),
        "postmaster {pm} in {}: {:#}",
        cgroup_of(pm),
        r["managed_by"]
    );
    assert_eq!(r["managed_by"]["how_known"], "proven");
    assert!(
        r["remedy"]
            .to_string()
            .contains(&format!("systemctl restart {unit}.service")),
        "{:#}",
        r["remedy"]
    );
    let _ = Command::new("systemctl").args(["stop", &unit]).status();
    wait_gone(pm);

    let pm = start_under(&bindir, &t.data, &["--scope"], &mut c);
    let r = status(&t.data);
    assert_eq!(
        r["managed_by"]["manager"]["kind"],
        "none",
        "postmaster {pm} in {}: {:#}",
        cgroup_of(pm),
        r["managed_by"]
    );
    signal(pm, rustix::process::Signal::INT);
    wait_gone(pm);
}
