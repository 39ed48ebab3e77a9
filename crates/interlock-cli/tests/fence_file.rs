//! `interlock.fence` in `status`: the fencing token `interlock
//! run --etcd` printed is the one `status` reports from the data directory,
//! with or without etcd, and `status --etcd` finds it consistent with the
//! key while the holder runs, and an earlier holder's once the key is
//! released. Against a real etcd (skipped where it is not installed).

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use interlock_fence::key::{key_for, this_boot_id, this_host};
use interlock_testkit::etcd::Etcd;
use rustix::process::Signal;
use serde_json::Value;

/// `interlock status [--json] DATA [ARGS]`: the standard output.
fn status_out(data: &Path, json: bool, args: &[&str]) -> String {
    let mut cmd = Command::new(bin());
    cmd.arg("status");
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn report(data: &Path, args: &[&str]) -> Value {
    let out = status_out(data, true, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn status_reports_the_token_run_printed_and_etcd_finds_it_consistent() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let a = fake_cluster();
    if is_root() {
        chown_r(a.path());
    }
    let mut c = Cleanup::for_dir(a.path());
    // No file before any holder: null, and no line.
    assert_eq!(status(a.path())["fence_file"], Value::Null);
    assert!(!status_out(a.path(), false, &[]).contains("fence file"));

    let mut run = Command::new(bin())
        .args(["run", "--etcd", &etcd.endpoint, "--name", "ff"])
        .arg(a.path())
        .args(["--", "sleep", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    c.pid(run.id() as i32);
    let line = std::io::BufReader::new(run.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let token: i64 = line
        .strip_prefix("fencing token ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let key = key_for(&std::path::absolute(a.path()).unwrap(), Some("ff")).unwrap();

    // Without etcd: the file alone.
    let r = status(a.path());
    let f = &r["fence_file"];
    assert_eq!(f["token"], token, "{r:#}");
    assert_eq!(f["key"], key.as_str(), "{r:#}");
    assert_eq!(f["host"], this_host().as_str(), "{r:#}");
    assert_eq!(f["boot_id"], this_boot_id().as_str(), "{r:#}");
    assert_eq!(f["pid"], run.id(), "{r:#}");
    assert_eq!(f["here"], true, "{r:#}");
    assert_eq!(f["versus_etcd"], Value::Null, "{r:#}");
    assert_eq!(f["problem"], Value::Null, "{r:#}");
    let text = status_out(a.path(), false, &[]);
    let want = format!(
        "  fence file  token {token} by host {} (PID {}, since {}), this host\n",
        this_host(),
        run.id(),
        f["since"].as_str().unwrap()
    );
    assert!(text.contains(&want), "{want}\n{text}");

    // With etcd: the key's token is the file's.
    let etcd_args = ["--etcd", etcd.endpoint.as_str(), "--name", "ff"];
    let r = report(a.path(), &etcd_args);
    assert_eq!(r["fence"]["state"], "held_here", "{r:#}");
    assert_eq!(r["fence"]["holder"]["token"], token, "{r:#}");
    assert_eq!(r["fence_file"]["versus_etcd"], "consistent", "{r:#}");
    let text = status_out(a.path(), false, &etcd_args);
    assert!(
        text.contains(&format!("; interlock.fence agrees (token {token})\n")),
        "{text}"
    );

    // Released: the file stays, an earlier holder's; the verdict is the
    // key's (free), not the file's.
    signal(run.id() as i32, Signal::TERM);
    run.wait().unwrap();
    let r = report(a.path(), &etcd_args);
    assert_eq!(r["fence"]["state"], "free", "{r:#}");
    assert_eq!(r["fence_file"]["token"], token, "{r:#}");
    assert_eq!(r["fence_file"]["versus_etcd"], "earlier_holder", "{r:#}");
    assert_eq!(r["verdict"], status(a.path())["verdict"], "{r:#}");
    assert!(
        r["fence"]["line"]
            .as_str()
            .unwrap()
            .contains("is an earlier holder's"),
        "{r:#}"
    );
}
