//! Issue 12, items 7, 8, 9 and 14: files of a data directory that its
//! (hostile) owner replaced by a FIFO, a link to `/dev/zero` or a 3 GiB
//! sparse file; links to files the owner may not read; helper programs
//! that never end. Every command must return promptly, in bounded memory,
//! saying which file it refused.

mod common;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long any command may take here.
const DEADLINE: Duration = Duration::from_secs(20);
/// Max RSS allowed (KiB): reading a 3 GiB file whole would exceed it.
const MAX_RSS_KB: u64 = 256 << 10;

struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
    took: Duration,
}

impl Ran {
    fn all(&self) -> String {
        format!("{}\n{}", self.out, self.err)
    }
}

/// Run the binary with `args` under `/usr/bin/time` (for the max RSS) in a
/// process group of its own; kill the group and fail if it has not
/// returned within [`DEADLINE`].
fn run_bounded(args: &[OsString]) -> Ran {
    let tmp = tempfile::tempdir().unwrap();
    let (out_p, err_p, rss_p) = (
        tmp.path().join("out"),
        tmp.path().join("err"),
        tmp.path().join("rss"),
    );
    let time = Path::new("/usr/bin/time").exists();
    let mut cmd = if time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&rss_p).arg(bin());
        c
    } else {
        Command::new(bin())
    };
    let start = Instant::now();
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > DEADLINE {
            // Our own child's group.
            let pgid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            let _ = child.wait();
            panic!(
                "interlock {args:?} did not return within {DEADLINE:?}; stderr: {}",
                std::fs::read_to_string(&err_p).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let mut err = std::fs::read_to_string(&err_p).unwrap_or_default();
    // /usr/bin/time adds "Command exited with non-zero status N".
    err = err
        .lines()
        .filter(|l| !l.starts_with("Command exited with non-zero status"))
        .collect::<Vec<_>>()
        .join("\n");
    // /usr/bin/time exits with the command's status.
    let code = status.code();
    if time {
        let rss: u64 = std::fs::read_to_string(&rss_p)
            .unwrap_or_default()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        assert!(
            rss < MAX_RSS_KB,
            "interlock {args:?} used {rss} KiB (max RSS)"
        );
    }
    let r = Ran {
        code,
        out: std::fs::read_to_string(&out_p).unwrap_or_default(),
        err,
        took,
    };
    assert!(
        !r.err.contains("panicked"),
        "interlock {args:?} panicked: {}",
        r.err
    );
    r
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fifo,
    LinkToZero,
    Sparse,
}

fn plant(path: &Path, kind: Kind) {
    let _ = std::fs::remove_file(path);
    match kind {
        Kind::Fifo => rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap(),
        Kind::LinkToZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        Kind::Sparse => std::fs::File::create(path)
            .unwrap()
            .set_len(3 << 30)
            .unwrap(),
    }
}

/// A fake cluster (owned by postgres when we are root, so that `hold`
/// acts as it) with `file` replaced by `kind`, and a log file beside it.
fn hostile_cluster(file: &str, kind: Kind) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let d = fake_cluster();
    let data = root.path().join("data");
    std::fs::rename(d.path(), &data).unwrap();
    std::fs::write(data.join("postgresql.conf"), "port = 5999\n").unwrap();
    std::fs::write(data.join("postgresql.auto.conf"), "").unwrap();
    std::fs::write(
        data.join("postmaster.opts"),
        "/usr/lib/postgresql/16/bin/postgres \"-D\" \"x\"\n",
    )
    .unwrap();
    plant(&data.join(file), kind);
    if is_root() {
        chown_r(&data);
    }
    let log = root.path().join("server.log");
    std::fs::write(
        &log,
        "2024-01-01 00:00:00 UTC [1] LOG:  database system is ready\n",
    )
    .unwrap();
    (root, data, log)
}

/// Every command on `file` replaced each way: returns promptly and in
/// bounded memory; where the file decides the answer, names it.
fn every_command_survives(file: &str, names_it: &[&str]) {
    let name = Path::new(file).file_name().unwrap().to_str().unwrap();
    for kind in [Kind::Fifo, Kind::LinkToZero, Kind::Sparse] {
        let (_root, data, log) = hostile_cluster(file, kind);
        let mut c = Cleanup::for_dir(&data);
        for cmd in ["status", "control", "limits", "explain", "hold"] {
            let args = match cmd {
                "explain" => os(&[&"explain", &"-D", &data, &log]),
                "hold" => os(&[&"hold", &data, &"--", &"true"]),
                _ => os(&[&cmd, &data]),
            };
            let r = run_bounded(&args);
            eprintln!(
                "{file} as {kind:?}: {cmd} exited {:?} in {:?}",
                r.code, r.took
            );
            if names_it.contains(&cmd) {
                assert!(
                    r.all().contains(name),
                    "{cmd} on {file} as {kind:?} does not name it:\n{}",
                    r.all()
                );
            }
        }
        c.pids.clear();
    }
}

#[test]
fn pg_version() {
    every_command_survives("PG_VERSION", &["status", "limits"]);
}

#[test]
fn postgresql_conf() {
    every_command_survives("postgresql.conf", &["status", "limits", "hold"]);
}

#[test]
fn postgresql_auto_conf() {
    every_command_survives("postgresql.auto.conf", &["status", "limits", "hold"]);
}

#[test]
fn postmaster_opts() {
    every_command_survives("postmaster.opts", &["status"]);
}

#[test]
fn pg_control() {
    every_command_survives("global/pg_control", &["status", "control"]);
    // control stops with exit 2 and the reason.
    for kind in [Kind::Fifo, Kind::LinkToZero, Kind::Sparse] {
        let (_root, data, _log) = hostile_cluster("global/pg_control", kind);
        let r = run_bounded(&os(&[&"control", &data]));
        assert_eq!(r.code, Some(2), "{kind:?}: {}", r.all());
        let want = match kind {
            Kind::Fifo => "FIFO",
            Kind::LinkToZero if is_root() => "not followed",
            Kind::LinkToZero => "character device",
            Kind::Sparse => "3221225472 bytes",
        };
        assert!(r.err.contains(want), "{kind:?}: {}", r.err);
    }
}

#[test]
fn postmaster_pid() {
    every_command_survives("postmaster.pid", &["status", "hold"]);
}

/// Item 14: a 3 GiB lock file is described by its real size.
#[test]
fn a_huge_lock_file_is_described_by_its_real_size() {
    let (_root, data, _log) = hostile_cluster("postmaster.pid", Kind::Sparse);
    // A PostgreSQL-looking start, then 3 GiB of zeros.
    let lock = data.join("postmaster.pid");
    let f = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, format!("424242\n{}\n", data.display()).as_bytes(), 0)
        .unwrap();
    let mut c = Cleanup::for_dir(&data);
    let r = run_bounded(&os(&[&"status", &data]));
    assert!(r.out.contains("3221225472 bytes"), "{}", r.all());
    assert!(!r.all().contains("8193 bytes"), "{}", r.all());
    let r = run_bounded(&os(&[&"hold", &data, &"--", &"true"]));
    assert_ne!(r.code, Some(0));
    assert!(r.err.contains("3221225472 bytes"), "{}", r.err);
    c.pids.clear();
}

/// Item 8: as root, no link is followed in a directory another user owns:
/// `global/pg_control -> /etc/shadow` prints nothing of shadow, and
/// `log_directory = '/etc'` makes `explain -D` read no file of /etc. As
/// the owner, the same link is followed.
#[test]
fn root_follows_no_link_in_the_owners_directory() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (_root, data, _log) = hostile_cluster("global/pg_control", Kind::Fifo);
    std::fs::remove_file(data.join("global/pg_control")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", data.join("global/pg_control")).unwrap();
    std::fs::write(data.join("postgresql.conf"), "log_directory = '/etc'\n").unwrap();
    chown_r(&data);
    let r = run_bounded(&os(&[&"control", &data]));
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(r.err.contains("is a symbolic link"), "{}", r.err);
    assert!(r.err.contains("not followed"), "{}", r.err);
    assert!(!r.all().contains("magic"), "{}", r.all());
    let r = run_bounded(&os(&[&"explain", &"-D", &data]));
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err.contains("only regular files owned by postgres"),
        "{}",
        r.err
    );
    // A log directory reached through a link in the owner's directory is
    // not followed either.
    std::fs::write(data.join("postgresql.conf"), "log_directory = 'log'\n").unwrap();
    std::os::unix::fs::symlink("/etc", data.join("log")).unwrap();
    chown_r(&data);
    let r = run_bounded(&os(&[&"explain", &"-D", &data]));
    assert!(r.err.contains("not followed"), "{}", r.err);

    // As the owner, a link to the owner's own file is followed: the error
    // is about the contents, not the link.
    let theirs = data.parent().unwrap().join("their_control");
    std::fs::write(&theirs, [0u8; 8192]).unwrap();
    chown_r(&theirs);
    std::fs::remove_file(data.join("global/pg_control")).unwrap();
    std::os::unix::fs::symlink(&theirs, data.join("global/pg_control")).unwrap();
    let out = as_postgres(Command::new(bin()).arg("control").arg(&data))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a control file"), "{err}");
    assert!(!err.contains("not followed"), "{err}");
    // As root, the same link is refused.
    let r = run_bounded(&os(&[&"control", &data]));
    assert!(r.err.contains("not followed"), "{}", r.err);
}

/// A fake server binary: answers `--version` (unless `hang_version`),
/// then for anything else records its PID and a child's in `pids` and
/// sleeps forever.
fn fake_postgres(dir: &Path, hang_version: bool) -> (PathBuf, PathBuf) {
    let pids = dir.join("pids");
    let script = dir.join("postgres");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --version ] && [ {hang} = 0 ]; then echo 'postgres (PostgreSQL) 16.4'; exit 0; fi\n\
             echo $$ >> {p}\n\
             sleep 1000 &\n\
             echo $! >> {p}\n\
             wait\n",
            hang = u8::from(hang_version),
            p = pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&pids, "").unwrap();
    std::fs::set_permissions(&pids, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    (script, pids)
}

fn assert_gone(pids: &Path) {
    let text = std::fs::read_to_string(pids).unwrap();
    let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(!pids.is_empty(), "the fake server never ran");
    for pid in pids {
        wait_until(&format!("PID {pid} of the fake server to be gone"), || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.contains(") Z ")
        });
    }
}

fn quiet_cluster() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let d = fake_cluster();
    let data = root.path().join("data");
    std::fs::rename(d.path(), &data).unwrap();
    if is_root() {
        chown_r(&data);
    }
    (root, data)
}

/// Item 9: `postgres -C` that never ends is killed with its process group
/// after the time limit, and the report says so.
#[test]
fn postgres_c_is_time_limited_and_killed() {
    let (root, data) = quiet_cluster();
    let (fake, pids) = fake_postgres(root.path(), false);
    let r = run_bounded(&os(&[&"limits", &"--postgres", &fake, &data]));
    assert!(r.took < Duration::from_secs(15), "took {:?}", r.took);
    assert!(r.out.contains("timed out after 5 s; killed"), "{}", r.all());
    assert_gone(&pids);
}

/// Item 9: `postgres --version` that never ends is killed too, in
/// `limits` and in `status`.
#[test]
fn the_version_probe_is_time_limited_and_killed() {
    let (root, data) = quiet_cluster();
    let (fake, pids) = fake_postgres(root.path(), true);
    let r = run_bounded(&os(&[&"limits", &"--postgres", &fake, &data]));
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
    assert!(
        r.out.contains("--version") && r.out.contains("timed out after 2 s; killed"),
        "{}",
        r.all()
    );
    assert_gone(&pids);
    std::fs::write(&pids, "").unwrap();
    let r = run_bounded(&os(&[&"status", &"--postgres", &fake, &data]));
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
    assert_gone(&pids);
}

/// Item 8: bare `interlock` (scan) looks at the working directory of every
/// process named `postgres`; one working in a directory whose
/// `global/pg_control` is a FIFO must not make it hang.
#[test]
fn scan_survives_a_postgres_process_beside_a_fifo() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (root, data, _log) = hostile_cluster("global/pg_control", Kind::Fifo);
    let fake = root.path().join("postgres");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A process named postgres, our own child, working in that directory,
    // as the directory's owner: PostgreSQL never runs as root, so scan
    // takes no root process for one of its servers.
    let owner = std::fs::metadata(&data).unwrap();
    let mut cmd = Command::new(&fake);
    cmd.arg("600").current_dir(&data).stdin(Stdio::null());
    if is_root() {
        cmd.uid(owner.uid()).gid(owner.gid());
    }
    let mut child = cmd.spawn().unwrap();
    let mut c = Cleanup::for_dir(&data);
    c.pids.push(child.id() as i32);
    for args in [os(&[&"scan", &"--json"]), Vec::new()] {
        let r = run_bounded(&args);
        assert!(r.took < DEADLINE, "{:?}", r.took);
        if !args.is_empty() {
            let v: serde_json::Value = serde_json::from_str(&r.out)
                .unwrap_or_else(|e| panic!("no JSON ({e}): {}", r.all()));
            let dirs = v["data_dirs"].as_array().unwrap();
            assert!(
                dirs.iter()
                    .any(|d| d["data_dir"].as_str() == Some(&data.display().to_string())),
                "scan did not find the directory the fake postgres works in: {v:#}"
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
