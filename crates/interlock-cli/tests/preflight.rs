//! `interlock preflight`, the gate a service manager runs before starting
//! PostgreSQL, against a real PostgreSQL (Debian's 15, run as postgres):
//! a crash that leaves an orphan (refused, the orphan named; after
//! `fix --yes`, allowed), `--wait` returning as soon as the orphan exits, a
//! running server, a clean stopped cluster, `--debian-cluster` under a
//! fixture `/etc`; and the shipped systemd drop-ins (`systemd-analyze
//! verify`) and Kubernetes manifest, whose commands are run here.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustix::process::Signal;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `interlock ARGS…`: exit code, stdout, stderr.
fn interlock(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn preflight(data: &Path) -> (i32, String, String) {
    interlock(&["preflight", data.to_str().unwrap()])
}

/// A cluster crashed with an orphan: postmaster SIGKILLed, its
/// checkpointer SIGSTOPped (still attached). Returns the checkpointer.
fn crashed_with_orphan(bindir: &Path, t: &TestDir, c: &mut Cleanup) -> i32 {
    let _child = start(bindir, &t.data, c);
    kill_leaving_stopped_checkpointer(&t.data, c)
}

#[test]
fn an_orphan_is_refused_and_named_then_allowed_after_fix() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let ck = crashed_with_orphan(&bindir, &t, &mut c);
    let (code, out, err) = preflight(&t.data);
    eprintln!("{err}");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("PID {ck} checkpointer (stopped)")),
        "{err}"
    );
    assert!(err.contains("must not start"), "{err}");
    assert!(
        err.contains("FATAL:  pre-existing shared memory block"),
        "{err}"
    );
    assert!(err.contains("interlock fix --yes"), "{err}");
    // No colours for a journal.
    assert!(!err.contains('\x1b'), "{err:?}");
    // The gate signalled nothing.
    assert_eq!(state_of(ck), Some('T'));

    let (_, code) = fix_json(&t.data, true, "5");
    assert_eq!(code, 0);
    let (code, out, err) = preflight(&t.data);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PostgreSQL may start now"), "{out}");
}

#[test]
fn wait_returns_as_soon_as_the_orphan_exits() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let ck = crashed_with_orphan(&bindir, &t, &mut c);
    let began = Instant::now();
    let mut gate = Command::new(bin())
        .args(["preflight", "--wait", "20"])
        .arg(&t.data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.pid(gate.id() as i32);
    std::thread::sleep(Duration::from_secs(1));
    // Still waiting: the orphan is there, and the gate did not touch it.
    if let Some(status) = gate.try_wait().unwrap() {
        let out = gate.wait_with_output().unwrap();
        panic!(
            "the gate did not wait: {status}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(state_of(ck), Some('T'));
    // The test's own orphan, by PID.
    let exited = Instant::now();
    signal(ck, Signal::KILL);
    wait_until("the checkpointer to exit", || !running(ck));
    let deadline = Duration::from_secs(25);
    let status = loop {
        if let Some(s) = gate.try_wait().unwrap() {
            break s;
        }
        assert!(
            began.elapsed() < deadline,
            "preflight --wait 20 still running after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let after = exited.elapsed();
    let out = gate.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stderr}{stdout}returned {after:?} after the orphan was killed");
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        after < Duration::from_secs(3),
        "returned {after:?} after the orphan exited"
    );
    assert!(stderr.contains("waiting up to 20 s"), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {ck} checkpointer (stopped)")),
        "{stderr}"
    );
    assert!(
        stdout.contains("PostgreSQL may start now (after"),
        "{stdout}"
    );
}

#[test]
fn wait_gives_up_when_the_time_is_up() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let ck = crashed_with_orphan(&bindir, &t, &mut c);
    let began = Instant::now();
    let (code, _, err) = interlock(&["preflight", "--wait", "1", t.data.to_str().unwrap()]);
    let took = began.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(err.contains("(waited 1 s)"), "{err}");
    assert!(running(ck));
}

#[test]
fn a_running_server_is_refused_and_named() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let child = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    // --wait does not wait for a running server.
    let began = Instant::now();
    let (code, out, err) = interlock(&["preflight", "--wait", "20", t.data.to_str().unwrap()]);
    eprintln!("{err}");
    assert_eq!(code, 1, "{out}{err}");
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(
        err.contains(&format!("PostgreSQL already runs here, PID {pm}")),
        "{err}"
    );
    assert!(
        err.contains("lock file \"postmaster.pid\" already exists"),
        "{err}"
    );
    stop_fast(&t.data, child);
}

#[test]
fn a_clean_stopped_cluster_may_start() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let _c = Cleanup::for_dir(&t.data);
    let (code, out, err) = preflight(&t.data);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "interlock preflight: {}: PostgreSQL may start now\n",
            t.data.display()
        )
    );
    assert!(err.is_empty(), "{err}");
}

#[test]
fn errors_and_unknown_data_directories_exit_2() {
    let (code, _, err) = interlock(&["preflight", "/nonexistent/interlock-preflight"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = interlock(&["preflight"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = interlock(&["preflight", "/tmp", "--debian-cluster", "15/main"]);
    assert_eq!(code, 2, "{err}");
}

/// A fixture root holding only `etc/postgresql/15/main/postgresql.conf`.
fn debian_root(conf: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/postgresql/15/main");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("postgresql.conf"), conf).unwrap();
    root
}

#[test]
fn debian_cluster_resolves_the_data_directory_like_pg_ctlcluster() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let _c = Cleanup::for_dir(&t.data);
    let root = debian_root(&format!(
        "# pg_createcluster writes it\ndata_directory = '{}'\t# comment\nport = 5999\n",
        t.data.display()
    ));
    let r = root.path().to_str().unwrap();
    let by_name = interlock(&["--root", r, "preflight", "--debian-cluster", "15/main"]);
    let by_path = interlock(&["--root", r, "preflight", t.data.to_str().unwrap()]);
    assert_eq!(by_name, by_path);
    assert!(
        by_name.1.contains(&t.data.display().to_string()),
        "{by_name:?}"
    );

    // Not set: /var/lib/postgresql/15/main, under the root.
    let root = debian_root("port = 5433\n");
    let r = root.path().to_str().unwrap();
    let (code, _, err) = interlock(&["--root", r, "preflight", "--debian-cluster", "15/main"]);
    assert_eq!(code, 2, "{err}");
    let default = root.path().join("var/lib/postgresql/15/main");
    assert!(err.contains(&default.display().to_string()), "{err}");

    // No such cluster; not a cluster name.
    let (code, _, err) = interlock(&["--root", r, "preflight", "--debian-cluster", "16/main"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such cluster"), "{err}");
    let (code, _, err) = interlock(&["--root", r, "preflight", "--debian-cluster", "15-main"]);
    assert_eq!(code, 2);
    assert!(err.contains("VERSION/NAME"), "{err}");
}

// ------------------------------------------------------- systemd, Kubernetes

/// A unit directory: Debian's postgresql@.service (the host's copy), a
/// PGDG-like postgresql-15.service, and the repository's drop-ins with
/// /usr/bin/interlock replaced by `exe`.
fn unit_dir(exe: &Path) -> Option<tempfile::TempDir> {
    let debian = Path::new("/lib/systemd/system/postgresql@.service");
    let Ok(template) = std::fs::read_to_string(debian) else {
        eprintln!("skipped: no {} here", debian.display());
        return None;
    };
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("postgresql@.service"), template).unwrap();
    std::fs::write(
        d.path().join("postgresql-15.service"),
        "[Unit]\nDescription=PostgreSQL 15 database server (PGDG-like)\nAfter=network-online.target\n\n\
         [Service]\nType=notify\nUser=postgres\nGroup=postgres\n\
         Environment=PGDATA=/var/lib/pgsql/15/data/\n\
         ExecStartPre=/usr/bin/true\nExecStart=/usr/bin/true\nKillMode=mixed\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    for dropin in ["postgresql@.service.d", "postgresql-.service.d"] {
        let text = std::fs::read_to_string(
            repo()
                .join("packaging/systemd")
                .join(dropin)
                .join("interlock.conf"),
        )
        .unwrap();
        assert!(text.contains("ExecStartPre=+/usr/bin/interlock preflight "));
        std::fs::create_dir(d.path().join(dropin)).unwrap();
        std::fs::write(
            d.path().join(dropin).join("interlock.conf"),
            text.replace("/usr/bin/interlock", exe.to_str().unwrap()),
        )
        .unwrap();
    }
    Some(d)
}

/// `systemd-analyze verify UNIT` with the unit path `dir` first, at debug
/// level (which dumps each unit as loaded): success, and the output.
fn verify(dir: &Path, unit: &str) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", unit])
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The ExecStartPre command lines of the unit dump.
fn exec_start_pre(dump: &str) -> Vec<String> {
    let mut lines = dump.lines().skip_while(|l| !l.contains("-> ExecStartPre:"));
    lines.next();
    lines
        .take_while(|l| !l.contains("-> "))
        .filter_map(|l| l.trim().strip_prefix("Command Line: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_systemd_drop_ins_verify_and_their_command_runs() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // The drop-ins name /usr/bin/interlock, which must exist for verify to
    // pass; these copies name the binary under test instead.
    let exe = bin();
    let Some(units) = unit_dir(&exe) else { return };

    // Debian: the template instance postgresql@15-main.service; %I is 15/main.
    let (ok, dump) = verify(units.path(), "postgresql@15-main.service");
    assert!(ok, "{dump}");
    assert!(
        dump.contains("postgresql@.service.d/interlock.conf"),
        "{dump}"
    );
    let want = format!(
        "{} preflight --wait 30 --debian-cluster 15/main",
        exe.display()
    );
    assert!(dump.contains(&format!("Command Line: {want}")), "{dump}");

    // PGDG: the prefix drop-in postgresql-.service.d applies to
    // postgresql-15.service, after the unit's own ExecStartPre.
    let (ok, dump) = verify(units.path(), "postgresql-15.service");
    assert!(ok, "{dump}");
    assert!(
        dump.contains("postgresql-.service.d/interlock.conf"),
        "{dump}"
    );
    let pre = exec_start_pre(&dump);
    assert!(pre.len() >= 2, "{dump}");
    assert_eq!(pre[0], "/usr/bin/true");
    assert_eq!(
        pre[1],
        format!("{} preflight --wait 30 \"\\${{PGDATA}}\"", exe.display())
    );

    // Verify does check the drop-in's binary (Debian's unit: it is the
    // first ExecStartPre): a path that does not exist fails.
    let broken = units.path().join("postgresql@.service.d/interlock.conf");
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(
        &broken,
        text.replace(exe.to_str().unwrap(), "/nonexistent/interlock"),
    )
    .unwrap();
    let (ok, out) = verify(units.path(), "postgresql@15-main.service");
    assert!(!ok && out.contains("/nonexistent/interlock"), "{out}");
}

#[test]
fn the_drop_ins_commands_answer_for_a_real_cluster() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let _c = Cleanup::for_dir(&t.data);
    for (dropin, args) in [
        ("postgresql@.service.d", "--debian-cluster %I"),
        ("postgresql-.service.d", "${PGDATA}"),
    ] {
        let text = std::fs::read_to_string(
            repo()
                .join("packaging/systemd")
                .join(dropin)
                .join("interlock.conf"),
        )
        .unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStartPre=+/usr/bin/interlock "))
            .unwrap();
        assert_eq!(line, format!("preflight --wait 30 {args}"));
    }
    // The Debian one, with /etc/postgresql/15/main under a fixture root
    // naming this cluster; the PGDG one with PGDATA set to it.
    let root = debian_root(&format!("data_directory = '{}'\n", t.data.display()));
    let r = root.path().to_str().unwrap();
    let (code, out, err) = interlock(&[
        "--root",
        r,
        "preflight",
        "--wait",
        "30",
        "--debian-cluster",
        "15/main",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = interlock(&["preflight", "--wait", "30", t.data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The initContainer's command, read from the manifest with python3's
/// yaml module (None, with a message, where there is none).
fn initcontainer_command() -> Option<Vec<String>> {
    let manifest = repo().join("packaging/kubernetes/initcontainer.yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             d = yaml.safe_load(open(sys.argv[1]))\n\
             spec = d['spec']['template']['spec']\n\
             assert spec['shareProcessNamespace'] is True\n\
             [c] = spec['initContainers']\n\
             print(json.dumps(c['command']))",
        ])
        .arg(&manifest)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("No module named 'yaml'") {
                eprintln!("skipped: python3 has no yaml module");
                return None;
            }
            panic!("{}: {err}", manifest.display())
        }
        Err(_) => {
            eprintln!("skipped: no python3");
            None
        }
    }
}

#[test]
fn the_kubernetes_initcontainer_runs_the_gate_on_its_volume() {
    let Some(cmd) = initcontainer_command() else {
        return;
    };
    assert_eq!(
        cmd,
        [
            "interlock",
            "preflight",
            "--wait",
            "60",
            "/var/lib/postgresql/data/pgdata"
        ]
    );
    let bindir = require_postgres!();
    // Exactly that command, with the volume's path replaced by a cluster's:
    // 0 on a clean one; after a crash that leaves an orphan (without the
    // wait, which test `wait_returns_as_soon_as_the_orphan_exits` covers),
    // 1 naming it.
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let args: Vec<String> = cmd[1..4]
        .iter()
        .cloned()
        .chain([t.data.display().to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = interlock(&args);
    assert_eq!(code, 0, "{out}{err}");
    let ck = crashed_with_orphan(&bindir, &t, &mut c);
    let (code, out, err) = interlock(&["preflight", &format!("{}", t.data.display())]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("PID {ck} checkpointer")), "{err}");
}
