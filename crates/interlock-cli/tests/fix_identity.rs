//! The identity check of `fix`: between the plan and the signal, the
//! planned holder dies and its PID is taken by an unrelated process of the
//! same user. Carrying out the plan must not signal that process.
//!
//! A test binary of its own: it makes itself a child subreaper, so that the
//! orphaned holder becomes its child and can be reaped (freeing the PID),
//! and it steers the next PID with `/proc/sys/kernel/ns_last_pid` (root).

#![allow(clippy::zombie_processes)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use interlock_doctor::fix::StepResult;
use interlock_doctor::{carry_out, plan, FixOptions};
use rustix::process::{Pid, Signal, WaitOptions};

/// Spawn `sleep 600` as postgres with PID `pid`, or give up after many
/// tries (another process may take the PID first).
fn spawn_at(pid: i32, c: &mut Cleanup) -> Option<std::process::Child> {
    for _ in 0..200 {
        // Everything that may fork (looking up the user) before the write.
        let mut cmd = Command::new("sleep");
        as_postgres(cmd.arg("600"));
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            return None;
        }
        let child = cmd.spawn().unwrap();
        c.pids.push(child.id() as i32);
        if child.id() as i32 == pid {
            return Some(child);
        }
        signal(child.id() as i32, Signal::KILL);
        let mut child = child;
        let _ = child.wait();
    }
    None
}

#[test]
fn a_reused_pid_is_not_signalled() {
    let bindir = require_postgres!();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let _child = start(&bindir, &t.data, &mut c);
    let ck = kill_leaving_stopped_checkpointer(&t.data, &mut c);

    let opts = FixOptions {
        grace: Duration::from_secs(3),
        ..FixOptions::default()
    };
    let p = plan(&t.data, &opts).unwrap();
    assert_eq!(
        p.stop.iter().map(|s| s.pid).collect::<Vec<_>>(),
        [ck],
        "{p:#?}"
    );

    // Between plan and signal: the checkpointer dies, is reaped (it is our
    // child now: its postmaster died and we are the subreaper), and an
    // unrelated process of the same user gets its PID.
    signal(ck, Signal::KILL);
    rustix::process::waitpid(Pid::from_raw(ck), WaitOptions::empty()).unwrap();
    let Some(mut impostor) = spawn_at(ck, &mut c) else {
        panic!("could not place a process at PID {ck} (ns_last_pid is writable by root only)");
    };

    let outcome = carry_out(&p, &opts).unwrap();
    let step = outcome
        .steps
        .iter()
        .find(|s| s.what.starts_with(&format!("stop PID {ck}")))
        .unwrap_or_else(|| panic!("{outcome:#?}"));
    assert_eq!(step.result, StepResult::Skipped, "{outcome:#?}");
    assert!(
        step.detail.contains("is now another process"),
        "{}",
        step.detail
    );
    // Not signalled: still running (SIGQUIT or SIGKILL would have ended it).
    assert!(
        impostor.try_wait().unwrap().is_none(),
        "the impostor was hit"
    );
    assert!(outcome.ready, "{outcome:#?}");

    let child = start(&bindir, &t.data, &mut c);
    stop_fast(&t.data, child);
    signal(ck, Signal::KILL);
    let _ = impostor.wait();
}
