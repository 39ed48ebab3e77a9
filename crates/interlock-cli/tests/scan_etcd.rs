//! `interlock scan --etcd` and `INTERLOCK_ETCD`: each cluster's fence
//! across hosts in the scan, against a real etcd (skipped where it is not
//! installed); etcd unreachable is every fence unknown, within one time
//! limit for the whole scan.
//!
//! scan diagnoses every cluster on the host, so these look only at the
//! directories they give it (another test's cluster may be found too).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use interlock_fence::etcd::{Client, Created};
use interlock_fence::key::{key_for, this_boot_id, this_host, HolderValue};
use interlock_testkit::etcd::{free_port, Etcd};
use serde_json::Value;

fn cluster() -> tempfile::TempDir {
    let d = fake_cluster();
    if is_root() {
        chown_r(d.path());
    }
    d
}

/// `interlock ARGS` with `env` set (and INTERLOCK_ETCD* removed unless
/// set there): exit code, stdout, and how long it took.
fn interlock(
    args: &[&str],
    dirs: &[&Path],
    env: &[(&str, &str)],
) -> (Option<i32>, String, Duration) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .args(dirs)
        .env_remove("INTERLOCK_ETCD")
        .env_remove("INTERLOCK_ETCD_NAME")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let took = start.elapsed();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        took,
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The scan's entry for `dir`.
fn entry<'a>(scan: &'a Value, dir: &Path) -> &'a Value {
    let shown = dir.display().to_string();
    scan["data_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["data_dir"] == shown.as_str())
        .unwrap_or_else(|| panic!("{shown} not in the scan: {scan:#}"))
}

/// Take `dir`'s key (named `name`, else by its path) in etcd for `holder`,
/// on a lease of a minute; the fencing token.
fn hold_key(client: &Client, dir: &Path, name: Option<&str>, holder: HolderValue) -> i64 {
    let abs = std::path::absolute(dir).unwrap();
    let key = key_for(&abs, name).unwrap();
    let limit = Duration::from_secs(5);
    let lease = client.grant(60, limit).unwrap();
    let value = HolderValue {
        datadir: abs.display().to_string(),
        ..holder
    };
    match client
        .create_with_lease(&key, &value.to_json(), lease, limit)
        .unwrap()
    {
        Created::Ok { revision } => revision,
        Created::Held(h) => panic!("{key} held already: {h:?}"),
    }
}

fn other_host() -> HolderValue {
    HolderValue {
        host: "db-other".into(),
        boot_id: "00000000-0000-0000-0000-000000000000".into(),
        pid: Some(4242),
        since: "2026-12-02T17:00:00Z".into(),
        datadir: String::new(),
    }
}

fn codes_of(v: &Value) -> Vec<String> {
    codes(v)
}

#[test]
fn scan_folds_each_clusters_fence_into_its_verdict() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let client = Client::new(&etcd.endpoint).unwrap();
    let free = cluster();
    let elsewhere = cluster();
    let here = cluster();
    let token = hold_key(&client, elsewhere.path(), None, other_host());
    hold_key(
        &client,
        here.path(),
        None,
        HolderValue {
            host: this_host(),
            boot_id: this_boot_id(),
            ..other_host()
        },
    );
    let dirs = [free.path(), elsewhere.path(), here.path()];

    let (code, out, _) = interlock(&["scan", "--json", "--etcd", &etcd.endpoint], &dirs, &[]);
    let scan = json(&out);
    // One directory blocked makes the scan's exit code 1, whatever else it
    // finds on the host.
    assert_eq!(code, Some(1), "{scan:#}");
    assert_eq!(
        scan["etcd"]["endpoints"],
        etcd.endpoint.as_str(),
        "{scan:#}"
    );
    assert!(scan["etcd"]["unreachable"].is_null(), "{scan:#}");

    let b = entry(&scan, elsewhere.path());
    assert_eq!(b["verdict"], "blocked", "{b:#}");
    assert_eq!(b["safe_to_start"], false, "{b:#}");
    assert_eq!(b["fence"]["state"], "held_elsewhere", "{b:#}");
    assert_eq!(b["fence"]["holder"]["host"], "db-other", "{b:#}");
    assert_eq!(b["fence"]["holder"]["pid"], 4242, "{b:#}");
    assert_eq!(b["fence"]["holder"]["token"], token, "{b:#}");
    assert!(codes_of(b).contains(&"fenced_elsewhere".into()), "{b:#}");
    assert!(
        b["remedy"][0].as_str().unwrap().contains("db-other"),
        "{b:#}"
    );

    let a = entry(&scan, free.path());
    assert_eq!(a["verdict"], "will_start", "{a:#}");
    assert_eq!(a["safe_to_start"], true, "{a:#}");
    assert_eq!(a["fence"]["state"], "free", "{a:#}");
    assert!(!codes_of(a).iter().any(|c| c.starts_with("fence")), "{a:#}");

    let h = entry(&scan, here.path());
    assert_eq!(h["verdict"], "will_start", "{h:#}");
    assert_eq!(h["fence"]["state"], "held_here", "{h:#}");
    assert!(codes_of(h).contains(&"fenced_here".into()), "{h:#}");

    // The text names the holder under the blocked directory.
    let (_, text, _) = interlock(&["scan", "--etcd", &etcd.endpoint], &dirs, &[]);
    assert!(
        text.contains(&format!("etcd: {}: ", etcd.endpoint)),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let shown = elsewhere.path().display().to_string();
    let key = key_for(&std::path::absolute(elsewhere.path()).unwrap(), None).unwrap();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("BLOCKED") && l.contains(&shown))
        .unwrap_or_else(|| panic!("{shown} not BLOCKED in:\n{text}"));
    assert!(
        lines[at + 1].contains(&format!(
            "fence  {key}: held by host db-other (PID 4242, token {token}, since 2026-12-02T17:00:00Z, lease expires in "
        )),
        "{text}"
    );

    // Without --etcd, no fence: the directory would start.
    let (_, out, _) = interlock(&["scan", "--json"], &dirs, &[]);
    let plain = json(&out);
    assert!(plain.get("etcd").is_none(), "{plain:#}");
    let b = entry(&plain, elsewhere.path());
    assert_eq!(b["verdict"], "will_start", "{b:#}");
    assert!(b.get("fence").is_none(), "{b:#}");
}

#[test]
fn scan_counts_a_key_under_another_name_by_the_datadir_its_holder_recorded() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let client = Client::new(&etcd.endpoint).unwrap();
    // Fenced as `interlock run --name lun7` on another host, which
    // recorded this directory's path.
    let named = cluster();
    let token = hold_key(&client, named.path(), Some("lun7"), other_host());
    // Fenced under a name by another spelling of its path (a symbolic
    // link): the recorded datadir resolves here to this directory.
    let linked = cluster();
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("pgdata");
    std::os::unix::fs::symlink(linked.path(), &link).unwrap();
    hold_key(&client, &link, Some("via-link"), other_host());
    // Two keys count: this host's default key, another host's by name;
    // the other host's is the one reported.
    let both = cluster();
    let this = HolderValue {
        host: this_host(),
        boot_id: this_boot_id(),
        ..other_host()
    };
    hold_key(&client, both.path(), None, this);
    hold_key(&client, both.path(), Some("b-elsewhere"), other_host());
    // A key under the same system identifier that names none of them: a
    // replica on another host. For the record only.
    let free = cluster();
    let abs_free = std::path::absolute(free.path()).unwrap();
    let replica = key_for(&abs_free, Some("replica-b")).unwrap();
    let lease = client.grant(60, Duration::from_secs(5)).unwrap();
    let value = HolderValue {
        host: "db-replica".into(),
        datadir: "/srv/replica-b".into(),
        ..other_host()
    };
    assert!(matches!(
        client
            .create_with_lease(&replica, &value.to_json(), lease, Duration::from_secs(5))
            .unwrap(),
        Created::Ok { .. }
    ));
    let dirs = [named.path(), linked.path(), both.path(), free.path()];

    let (code, out, _) = interlock(&["scan", "--json", "--etcd", &etcd.endpoint], &dirs, &[]);
    let scan = json(&out);
    assert_eq!(code, Some(1), "{scan:#}");
    let n = entry(&scan, named.path());
    assert_eq!(n["verdict"], "blocked", "{n:#}");
    assert_eq!(n["fence"]["state"], "held_elsewhere", "{n:#}");
    assert!(
        n["fence"]["key"].as_str().unwrap().ends_with("/lun7"),
        "{n:#}"
    );
    assert_eq!(n["fence"]["holder"]["host"], "db-other", "{n:#}");
    assert_eq!(n["fence"]["holder"]["token"], token, "{n:#}");
    assert!(
        n["fence"]["holder"]["lease_expires_in"].as_i64().unwrap() > 0,
        "{n:#}"
    );
    assert!(codes_of(n).contains(&"fenced_elsewhere".into()), "{n:#}");
    let l = entry(&scan, linked.path());
    assert_eq!(l["verdict"], "blocked", "{l:#}");
    assert!(
        l["fence"]["key"].as_str().unwrap().ends_with("/via-link"),
        "{l:#}"
    );
    let b = entry(&scan, both.path());
    assert_eq!(b["verdict"], "blocked", "{b:#}");
    assert!(
        b["fence"]["key"]
            .as_str()
            .unwrap()
            .ends_with("/b-elsewhere"),
        "{b:#}"
    );
    let default_both = key_for(&std::path::absolute(both.path()).unwrap(), None).unwrap();
    assert!(
        b["fence"]["line"]
            .as_str()
            .unwrap()
            .ends_with(&format!("; also under {default_both}")),
        "{b:#}"
    );
    let f = entry(&scan, free.path());
    assert_eq!(f["verdict"], "will_start", "{f:#}");
    assert_eq!(f["fence"]["state"], "free", "{f:#}");
    assert!(!codes_of(f).iter().any(|c| c.starts_with("fence")), "{f:#}");
    let others = scan["etcd"]["other_names"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{scan:#}");
    assert_eq!(others[0]["key"], replica.as_str(), "{scan:#}");
    assert_eq!(others[0]["datadir"], "/srv/replica-b", "{scan:#}");
    assert_eq!(others[0]["holder"]["host"], "db-replica", "{scan:#}");
    assert_eq!(others[0]["here"], false, "{scan:#}");

    // The text: the named holder under the blocked directory, the other
    // name once, at the top.
    let (_, text, _) = interlock(&["scan", "--etcd", &etcd.endpoint], &dirs, &[]);
    let lines: Vec<&str> = text.lines().collect();
    let shown = named.path().display().to_string();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("BLOCKED") && l.contains(&shown))
        .unwrap_or_else(|| panic!("{shown} not BLOCKED in:\n{text}"));
    assert!(
        lines[at + 1].contains("/lun7: held by host db-other (PID 4242, token ")
            && lines[at + 1].ends_with(&format!(", for datadir {shown}")),
        "{text}"
    );
    assert_eq!(
        text.matches(&format!(
            "fenced under other names: {replica} held by host db-replica (PID 4242, token "
        ))
        .count(),
        1,
        "{text}"
    );
    assert!(text.contains("datadir /srv/replica-b)"), "{text}");

    // Scanned alone, the free directory still would start: every other key
    // is only named.
    let (_, out, _) = interlock(
        &["scan", "--json", "--etcd", &etcd.endpoint],
        &[free.path()],
        &[],
    );
    let alone = json(&out);
    let f = entry(&alone, free.path());
    assert_eq!(f["verdict"], "will_start", "{f:#}");
    assert_eq!(f["fence"]["state"], "free", "{f:#}");
    let keys: Vec<&str> = alone["etcd"]["other_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    for name in ["/lun7", "/via-link", "/b-elsewhere", "/replica-b"] {
        assert!(keys.iter().any(|k| k.ends_with(name)), "{name}: {alone:#}");
    }
    assert!(keys.contains(&default_both.as_str()), "{alone:#}");
}

#[test]
fn interlock_etcd_in_the_environment_is_read_by_status_and_scan() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let client = Client::new(&etcd.endpoint).unwrap();
    let by_path = cluster();
    let named = cluster();
    hold_key(&client, by_path.path(), None, other_host());
    hold_key(&client, named.path(), Some("lun7"), other_host());
    let env = [("INTERLOCK_ETCD", etcd.endpoint.as_str())];

    // status, by the default key.
    let (code, out, _) = interlock(&["status", "--json"], &[by_path.path()], &env);
    let r = json(&out);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert_eq!(r["fence"]["holder"]["host"], "db-other", "{r:#}");
    assert_eq!(code, Some(1), "{r:#}");

    // status, the name from INTERLOCK_ETCD_NAME; and from --name.
    let with_name = [env[0], ("INTERLOCK_ETCD_NAME", "lun7")];
    let (_, out, _) = interlock(&["status", "--json"], &[named.path()], &with_name);
    let r = json(&out);
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    assert!(
        r["fence"]["key"].as_str().unwrap().ends_with("/lun7"),
        "{r:#}"
    );
    let (_, out, _) = interlock(
        &["status", "--json", "--name", "lun7"],
        &[named.path()],
        &env,
    );
    assert_eq!(json(&out)["verdict"], "blocked", "{out}");

    // --etcd given wins over the environment.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (_, out, _) = interlock(
        &["status", "--json", "--etcd", &nowhere],
        &[by_path.path()],
        &env,
    );
    assert_eq!(json(&out)["fence"]["state"], "unknown", "{out}");

    // An empty INTERLOCK_ETCD is not set: no fence read.
    let (code, out, _) = interlock(
        &["status", "--json"],
        &[by_path.path()],
        &[("INTERLOCK_ETCD", ""), ("INTERLOCK_ETCD_NAME", "lun7")],
    );
    let r = json(&out);
    assert_eq!(r["verdict"], "will_start", "{r:#}");
    assert!(r.get("fence").is_none(), "{r:#}");
    assert_eq!(code, Some(0), "{r:#}");
    // But --name without etcd is a mistake.
    let (code, _, _) = interlock(&["status", "--name", "lun7"], &[by_path.path()], &[]);
    assert_eq!(code, Some(2));

    // scan.
    let (_, out, _) = interlock(&["scan", "--json"], &[by_path.path()], &env);
    let scan = json(&out);
    assert_eq!(
        entry(&scan, by_path.path())["verdict"],
        "blocked",
        "{scan:#}"
    );

    // `interlock` alone is a scan, and reads it too.
    let (_, text, _) = interlock(&[], &[], &env);
    assert!(
        text.contains(&format!("etcd: {}: ", etcd.endpoint)),
        "{text}"
    );
}

#[test]
fn etcd_unreachable_is_every_fence_unknown_said_once_within_one_limit() {
    // An endpoint that accepts connections and never answers: each read
    // would wait for its whole time limit (3 s, `fence::LIMIT` in
    // crates/interlock-doctor/src/fence.rs), so four clusters would take
    // 12 s if the limit were paid per cluster.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let clusters: Vec<_> = (0..4).map(|_| cluster()).collect();
    let dirs: Vec<&Path> = clusters.iter().map(|c| c.path()).collect();

    let (code, out, took) = interlock(&["scan", "--json", "--etcd", &endpoint], &dirs, &[]);
    let scan = json(&out);
    assert!(took < Duration::from_secs(7), "scan took {took:?}");
    assert!(matches!(code, Some(1 | 2)), "{scan:#}");
    let why = scan["etcd"]["unreachable"].as_str().unwrap();
    assert!(why.contains("etcd unreachable"), "{scan:#}");
    let host_wide: Vec<_> = scan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "fence_unknown")
        .collect();
    assert_eq!(host_wide.len(), 1, "{scan:#}");
    for d in &dirs {
        let e = entry(&scan, d);
        assert_eq!(e["verdict"], "unknown", "{e:#}");
        assert_eq!(e["fence"]["state"], "unknown", "{e:#}");
        assert!(codes_of(e).contains(&"fence_unknown".into()), "{e:#}");
    }

    // Refused at once: fast, and said once in the text.
    let refused = format!("http://127.0.0.1:{}", free_port());
    let (code, text, took) = interlock(&["scan", "--etcd", &refused], &dirs, &[]);
    assert!(took < Duration::from_secs(3), "scan took {took:?}");
    assert!(matches!(code, Some(1 | 2)), "{text}");
    assert_eq!(text.matches("cannot be reached").count(), 1, "{text}");
    assert!(
        text.contains("every directory's fence is unknown"),
        "{text}"
    );
    for d in &dirs {
        let shown = d.display().to_string();
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("unknown") && l.contains(&shown)),
            "{shown} not unknown in:\n{text}"
        );
    }
    drop(silent);
}

/// `interlock preflight DIR` with `env`: exit code and stderr.
fn preflight(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("preflight")
        .args(args)
        .arg(dir)
        .env_remove("INTERLOCK_ETCD")
        .env_remove("INTERLOCK_ETCD_NAME")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn preflight_refuses_while_another_host_holds_the_fence() {
    let etcd_bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&etcd_bin);
    let client = Client::new(&etcd.endpoint).unwrap();
    let free = cluster();
    let held = cluster();
    let token = hold_key(&client, held.path(), Some("lun7"), other_host());
    let env = [("INTERLOCK_ETCD", etcd.endpoint.as_str())];

    let (code, err) = preflight(free.path(), &[], &env);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = preflight(held.path(), &["--name", "lun7"], &env);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "must not start: {}",
            key_for(&std::path::absolute(held.path()).unwrap(), Some("lun7")).unwrap()
        )) && err.contains(&format!("held by host db-other (PID 4242, token {token},")),
        "{err}"
    );
    assert!(
        err.contains("what to do: Do not start the server here"),
        "{err}"
    );
    // The same from --etcd and INTERLOCK_ETCD_NAME.
    let (code, err) = preflight(
        held.path(),
        &["--etcd", &etcd.endpoint],
        &[("INTERLOCK_ETCD_NAME", "lun7")],
    );
    assert_eq!(code, Some(1), "{err}");
    // Without the fence it would start.
    let (code, err) = preflight(held.path(), &[], &[]);
    assert_eq!(code, Some(0), "{err}");

    // etcd unreachable: it cannot be told.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = preflight(free.path(), &["--etcd", &nowhere], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("etcd unreachable"), "{err}");
    assert!(err.contains("reach etcd first"), "{err}");
}
