//! The binary stays thin (issue 13, item 4): its output ends quietly when
//! the reader goes away, and it has no subcommand that attaches to a
//! segment named on the command line.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// Run `interlock ARGS` with stdout a pipe whose reader is closed before
/// the program writes: its first write meets EPIPE. Exit code and stderr.
fn with_reader_gone(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `interlock ARGS`, read one line of its output, close the pipe
/// (`| head -1`), and wait: the first line, exit code and stderr.
fn head_1(args: &[&str]) -> (String, Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        line,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_status_scan_explain_and_help_quietly() {
    let dir = fake_cluster();
    let data = dir.path().to_str().unwrap();
    let log = dir.path().join("server.log");
    std::fs::write(
        &log,
        "FATAL:  lock file \"postmaster.pid\" already exists\n\
         HINT:  Is another postmaster (PID 4242) running in data directory \"/x\"?\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    for args in [
        &["status", data][..],
        &["status", "--json", data],
        &["scan"],
        &["scan", "--json"],
        &["explain", log],
        &["explain", "--json", log],
        &["--help"],
        &["status", "--help"],
    ] {
        let (code, stderr) = with_reader_gone(args);
        assert_eq!(code, Some(0), "interlock {args:?}: {stderr}");
        assert_eq!(stderr, "", "interlock {args:?}");
    }
}

#[test]
fn head_1_gets_the_first_line_and_a_quiet_exit() {
    let dir = fake_cluster();
    let data = dir.path().to_str().unwrap();
    for args in [&["status", data][..], &["--help"]] {
        let (line, code, stderr) = head_1(args);
        assert!(!line.trim().is_empty(), "interlock {args:?}");
        assert_eq!(code, Some(0), "interlock {args:?}: {stderr}");
        assert_eq!(stderr, "", "interlock {args:?}");
    }
}

/// The demo's workers are forked by its example server; no subcommand
/// attaches to a segment given by its ID.
#[test]
fn there_is_no_worker_subcommand() {
    let out = Command::new(bin())
        .args(["demo-worker", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
