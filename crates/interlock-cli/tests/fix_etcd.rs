//! `interlock fix --etcd`: never acts on a directory another host holds
//! through the fence, nor while etcd cannot be read (a real etcd; skipped
//! where it is not installed).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use interlock_fence::etcd::{Client, Created};
use interlock_fence::key::{key_for, HolderValue};
use interlock_testkit::etcd::{free_port, Etcd};
use serde_json::Value;

/// A stopped cluster whose lock file names a dead PID: what `fix` would
/// leave to the server (nothing to stop, nothing to remove), so its plan
/// is empty and its answer "it would start" unless the fence says no.
fn stale_cluster() -> tempfile::TempDir {
    let d = fake_cluster();
    std::fs::write(
        d.path().join("postmaster.pid"),
        format!(
            "999999\n{}\n1700000000\n5999\n/tmp\n*\n        0         0\nready   \n",
            d.path().display()
        ),
    )
    .unwrap();
    if is_root() {
        chown_r(d.path());
    }
    d
}

fn fix(data: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(bin())
        .args(["fix", "--json"])
        .args(args)
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code(),
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr))),
    )
}

fn refusal_codes(r: &Value) -> Vec<String> {
    r["plan"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn held_by_another_host_fix_refuses_and_changes_nothing() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let d = stale_cluster();
    let abs = d.path().canonicalize().unwrap();
    // Without the fence: nothing to refuse, the server removes the file.
    let (code, r) = fix(&abs, &[]);
    assert_eq!(code, Some(0), "{r:#}");
    assert!(refusal_codes(&r).is_empty(), "{r:#}");

    let client = Client::new(&etcd.endpoint).unwrap();
    let limit = Duration::from_secs(2);
    let lease = client.grant(60, limit).unwrap();
    let key = key_for(&abs, Some("lun")).unwrap();
    let value = HolderValue {
        host: "db-other".into(),
        boot_id: "00000000-0000-0000-0000-000000000000".into(),
        pid: Some(4242),
        since: "2026-12-02T17:00:00Z".into(),
        datadir: abs.display().to_string(),
    };
    let Created::Ok { .. } = client
        .create_with_lease(&key, &value.to_json(), lease, limit)
        .unwrap()
    else {
        panic!("not created");
    };
    let lock = std::fs::read(abs.join("postmaster.pid")).unwrap();
    let (code, r) = fix(&abs, &["--yes", "--etcd", &etcd.endpoint, "--name", "lun"]);
    assert_eq!(code, Some(3), "{r:#}");
    assert_eq!(refusal_codes(&r), ["fenced_elsewhere"], "{r:#}");
    let msg = r["plan"]["refused"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("db-other") && msg.contains("PID 4242"),
        "{msg}"
    );
    // Refused: `--yes` carries nothing out.
    assert!(r["outcome"].is_null(), "{r:#}");
    assert_eq!(r["plan"]["before"]["verdict"], "blocked", "{r:#}");
    assert_eq!(std::fs::read(abs.join("postmaster.pid")).unwrap(), lock);
}

#[test]
fn etcd_unreachable_fix_refuses_as_unknown() {
    let d = stale_cluster();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let (code, r) = fix(d.path(), &["--etcd", &nobody]);
    assert_eq!(code, Some(2), "{r:#}");
    assert_eq!(refusal_codes(&r), ["unknown"], "{r:#}");
    assert_eq!(r["plan"]["before"]["verdict"], "unknown", "{r:#}");
}
