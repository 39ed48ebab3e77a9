//! `interlock status --etcd`: the fence across hosts in the report, against
//! a real etcd (skipped where it is not installed).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use interlock_fence::etcd::{Client, Created};
use interlock_fence::key::{key_for, HolderValue};
use interlock_testkit::etcd::{free_port, Etcd};
use rustix::process::Signal;
use serde_json::Value;

fn cluster() -> tempfile::TempDir {
    let d = fake_cluster();
    if is_root() {
        chown_r(d.path());
    }
    d
}

/// `interlock status --json DATA --etcd E --name N`: the exit code and the
/// report.
fn status_etcd(data: &Path, etcd: &str, name: &str, json: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("status");
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .arg(data)
        .args(["--etcd", etcd, "--name", name])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn report(data: &Path, etcd: &str, name: &str) -> (Option<i32>, Value) {
    let (code, out) = status_etcd(data, etcd, name, true);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

#[test]
fn held_on_this_host_is_fenced_here_and_the_verdict_unchanged() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let a = cluster();
    let mut c = Cleanup::for_dir(a.path());
    let mut run = Command::new(bin())
        .args(["run", "--etcd", &etcd.endpoint, "--name", "here"])
        .arg(a.path())
        .args(["--", "sleep", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    c.pid(run.id() as i32);
    let token: i64 = {
        use std::io::BufRead;
        let line = std::io::BufReader::new(run.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        line.strip_prefix("fencing token ")
            .unwrap()
            .parse()
            .unwrap()
    };
    let plain = status(a.path());
    let (code, r) = report(a.path(), &etcd.endpoint, "here");
    assert_eq!(r["verdict"], plain["verdict"], "{r:#}");
    assert!(codes(&r).contains(&"fenced_here".to_string()), "{r:#}");
    assert_eq!(r["fence"]["state"], "held_here", "{r:#}");
    assert_eq!(r["fence"]["holder"]["token"], token, "{r:#}");
    assert_eq!(r["fence"]["holder"]["pid"], run.id(), "{r:#}");
    assert_eq!(code, Some(0), "{r:#}");
    signal(run.id() as i32, Signal::TERM);
    run.wait().unwrap();
}

#[test]
fn held_by_another_host_is_blocked_naming_the_holder() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let b = cluster();
    let plain = status(b.path());
    assert_eq!(plain["verdict"], "will_start", "{plain:#}");
    let abs = std::path::absolute(b.path()).unwrap();
    let key = key_for(&abs, Some("elsewhere")).unwrap();
    let client = Client::new(&etcd.endpoint).unwrap();
    let limit = Duration::from_secs(5);
    let lease = client.grant(60, limit).unwrap();
    let value = HolderValue {
        host: "db-other".into(),
        boot_id: "00000000-0000-0000-0000-000000000000".into(),
        pid: Some(4242),
        since: "2026-12-02T17:00:00Z".into(),
        datadir: abs.display().to_string(),
    };
    let Created::Ok { revision } = client
        .create_with_lease(&key, &value.to_json(), lease, limit)
        .unwrap()
    else {
        panic!("not created");
    };
    let (code, r) = report(b.path(), &etcd.endpoint, "elsewhere");
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(r["safe_to_start"], false, "{r:#}");
    assert_eq!(code, Some(1), "{r:#}");
    assert!(codes(&r).contains(&"fenced_elsewhere".to_string()), "{r:#}");
    assert_eq!(r["fence"]["state"], "held_elsewhere", "{r:#}");
    assert!(
        r["remedy"][0].as_str().unwrap().contains("db-other"),
        "{r:#}"
    );
    let (_, text) = status_etcd(b.path(), &etcd.endpoint, "elsewhere", false);
    assert!(
        text.contains(&format!(
            "held by host db-other (PID 4242, token {revision}, since 2026-12-02T17:00:00Z, lease expires in "
        )),
        "{text}"
    );
    assert!(text.contains("BLOCKED"), "{text}");

    // The same host name in another boot is another holder too.
    let other_boot = cluster();
    let abs = std::path::absolute(other_boot.path()).unwrap();
    let key = key_for(&abs, Some("reboot")).unwrap();
    let value = HolderValue {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .into(),
        ..value
    };
    client
        .create_with_lease(&key, &value.to_json(), lease, limit)
        .unwrap();
    let (_, r) = report(other_boot.path(), &etcd.endpoint, "reboot");
    assert_eq!(r["verdict"], "blocked", "{r:#}");
}

#[test]
fn etcd_unreachable_is_unknown_with_the_reason() {
    let d = cluster();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let (code, r) = report(d.path(), &endpoint, "x");
    assert_eq!(r["verdict"], "unknown", "{r:#}");
    assert_eq!(code, Some(2), "{r:#}");
    assert!(codes(&r).contains(&"fence_unknown".to_string()), "{r:#}");
    assert_eq!(r["fence"]["state"], "unknown", "{r:#}");
    assert!(
        r["fence"]["error"]
            .as_str()
            .unwrap()
            .contains("etcd unreachable"),
        "{r:#}"
    );
}
