//! `interlock demo`: the replay runs to the end with PostgreSQL and with the
//! example server, and leaves nothing behind, also when interrupted.

#![allow(clippy::zombie_processes)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use rustix::process::Signal;

/// The temporary directory the demo names in its first lines.
fn demo_dir(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.contains("/interlock-demo-"))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .unwrap_or_else(|| panic!("no directory in:\n{output}"))
}

/// Segment IDs the output shows (`segment ID N`).
fn segment_ids(output: &str) -> Vec<String> {
    output
        .split("segment ID ")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn no_segment_left(ids: &[String]) {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    for id in ids {
        assert!(
            !table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(id.as_str())),
            "segment {id} was left behind"
        );
    }
}

fn demo(args: &[&str]) -> (String, i32) {
    let out = Command::new(bin())
        .arg("demo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, out.status.code().unwrap_or(-1))
}

#[test]
fn the_postgres_replay_runs_to_the_end() {
    let bindir = require_postgres!();
    let (out, code) = demo(&["--bindir", bindir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "BLOCKED  PostgreSQL",
        "FATAL:  pre-existing shared memory block",
        "sent SIGCONT, SIGQUIT; it exited",
        "after    WILL START",
        "database system was not properly shut down",
        "1000 rows: all 1000 committed before the crash are there",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    let dir = demo_dir(&out);
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was left behind"
    );
    no_segment_left(&segment_ids(&out));
}

#[test]
fn the_example_server_replay_runs_to_the_end() {
    let (out, code) = demo(&["--without-postgres"]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "it says: FATAL:  pre-existing shared memory block",
        "FATAL:  pre-existing shared memory block",
        "sent SIGCONT, SIGTERM; it exited",
        "after    WILL START",
        "1000 rows, all 1000 there",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    assert!(!std::path::Path::new(&demo_dir(&out)).exists());
    no_segment_left(&segment_ids(&out));
}

/// Ctrl-C right after the crash: the stopped backend is still attached; the
/// demo must stop it, free its segment and remove its directory.
#[test]
fn interrupted_after_the_crash_it_cleans_up() {
    let bindir = require_postgres!();
    let mut c = Cleanup::default();
    let mut child = Command::new(bin())
        .args(["demo", "--bindir", bindir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.pids.push(child.id() as i32);
    let mut seen = String::new();
    let mut backend = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        seen += &line;
        seen.push('\n');
        if let Some(rest) = line.strip_prefix("$ kill -STOP ") {
            backend = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok());
        }
        if line.starts_with("4. ") {
            // The crash is done and status is about to run.
            signal(child.id() as i32, Signal::INT);
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted: cleaning up"), "{seen}");
    let backend = backend.unwrap_or_else(|| panic!("no backend in:\n{seen}"));
    assert!(!running(backend), "the stopped backend {backend} survived");
    assert!(!std::path::Path::new(&demo_dir(&seen)).exists(), "{seen}");
    no_segment_left(&segment_ids(&seen));
}
