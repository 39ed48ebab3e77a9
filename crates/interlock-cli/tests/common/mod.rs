//! Harness for the CLI's tests: the test kit (`interlock-testkit`: clean-up
//! guards, waiting for processes, test users, PostgreSQL fixtures), plus
//! what needs this crate's binary: running it, `interlock hold`, and the
//! checks on its reports.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub use interlock_testkit::*;

/// The `interlock` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_interlock"))
}

/// Start `interlock hold [OPTS] DATA -- sleep 600`; returns the hold
/// process, the command's PID (from the banner) and the banner. Both PIDs
/// are registered for clean-up.
pub fn spawn_hold(data: &Path, opts: &[&str], c: &mut Cleanup) -> (Child, i32, String) {
    use std::io::BufRead;
    let mut hold = Command::new(bin())
        .arg("hold")
        .args(opts)
        .arg(data)
        .args(["--", "sleep", "600"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.pids.push(hold.id() as i32);
    let banner = std::io::BufReader::new(hold.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let pid: i32 = banner
        .rsplit("while PID ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no command PID in {banner:?}"));
    c.pids.push(pid);
    (hold, pid, banner)
}

// ------------------------------------------------- predictions and starts

/// `interlock status --json DATA`: the report, after checking that the
/// exit code is the documented one for its verdict.
pub fn status(data: &Path) -> Value {
    let out = Command::new(bin())
        .args(["status", "--json"])
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let expected = match (
        report["verdict"].as_str(),
        report["safe_to_start"].as_bool(),
    ) {
        (Some("running"), _) | (Some("will_start"), Some(true)) => 0,
        (Some("will_start"), _) | (Some("blocked"), _) => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(expected), "{report:#}");
    report
}

pub fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// The prediction for a refused start matches the server's FATAL line.
/// (The log continues a multi-line message with a tab after each newline.)
pub fn said_what_was_predicted(report: &Value, log: &str) {
    let predicted = report["postgres_would_say"]
        .as_str()
        .unwrap_or_else(|| panic!("no prediction in {report:#}"));
    let log = log.replace("\n\t", "\n");
    assert!(
        log.contains(&format!("FATAL:  {predicted}")),
        "predicted {predicted:?}, the server said:\n{log}"
    );
}

pub fn will_start(report: &Value) {
    assert_eq!(report["verdict"], "will_start", "{report:#}");
    assert_eq!(report["safe_to_start"], true, "{report:#}");
    assert!(report["postgres_would_say"].is_null(), "{report:#}");
}

/// Run the binary with `args` then `dir`: exit code, stdout with `dir`
/// shown as `[DATADIR]`, stderr.
pub fn run(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::new(bin())
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).replace(&dir.display().to_string(), "[DATADIR]"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The name `running` had here before the test kit: in the process table
/// and not a zombie.
pub use interlock_testkit::running as pid_alive;

/// `interlock fix --json --timeout SECS [--yes] DATA`: the report and the
/// exit code.
pub fn fix_json(data: &Path, yes: bool, timeout_secs: &str) -> (Value, i32) {
    let mut cmd = Command::new(bin());
    cmd.args(["fix", "--json", "--timeout", timeout_secs]);
    if yes {
        cmd.arg("--yes");
    }
    let out = cmd.arg(data).stdin(Stdio::null()).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}
