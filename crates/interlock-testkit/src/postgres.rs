//! PostgreSQL fixtures: where its binaries are, template clusters copied
//! per test, starting and stopping the `postgres` binary itself (as the
//! `postgres` user), psql, and processes around a cluster.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::cleanup::Cleanup;
use crate::process::{children_named, running, signal, wait_gone, wait_stopped};
use crate::users::{as_postgres, chown_r, TestDir, PG_USER};

/// The directory holding `postgres`, `initdb`, `pg_resetwal`: the
/// `INTERLOCK_PG_BINDIR` environment variable, else Debian's newest.
pub fn pg_bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("INTERLOCK_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found.pop()
}

/// Skip the test (with the reason printed, returning from it) unless we
/// are root and PostgreSQL is installed; else the bindir. Root, because
/// PostgreSQL runs as the `postgres` user here.
#[macro_export]
macro_rules! require_postgres {
    () => {
        match ($crate::is_root(), $crate::pg_bindir()) {
            (true, Some(bindir)) => bindir,
            (false, _) => {
                eprintln!("skipped: PostgreSQL runs as the postgres user, which needs root here");
                return;
            }
            (_, None) => {
                eprintln!("skipped: no PostgreSQL found (set INTERLOCK_PG_BINDIR)");
                return;
            }
        }
    };
}

/// One initdb'd template per PostgreSQL build and test process.
fn template(bindir: &Path) -> PathBuf {
    static TEMPLATES: OnceLock<std::sync::Mutex<Vec<(PathBuf, PathBuf)>>> = OnceLock::new();
    let mut made = TEMPLATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, data)) = made.iter().find(|(b, _)| b == bindir) {
        return data.clone();
    }
    if made.is_empty() {
        // Those of finished runs are removed.
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("interlock-pg-template-")
                .and_then(|p| p.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            {
                if !running(pid) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let root = std::env::temp_dir().join(format!(
        "interlock-pg-template-{}-{}",
        std::process::id(),
        made.len()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let data = root.join("data");
    chown_r(&root);
    let out = Command::new("runuser")
        .args(["-u", PG_USER, "--"])
        .arg(bindir.join("initdb"))
        .args(["--no-sync", "-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    made.push((bindir.to_path_buf(), data.clone()));
    data
}

/// A fresh cluster: a copy of one initdb'd template (a new inode, so new
/// keys), owned by postgres.
pub fn cluster(bindir: &Path) -> TestDir {
    let t = TestDir::new();
    std::fs::remove_dir(&t.data).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(template(bindir))
        .arg(&t.data)
        .status()
        .unwrap();
    assert!(st.success());
    t
}

/// Outcome of starting the `postgres` binary.
#[derive(Debug)]
pub enum Start {
    /// It is running; the child is the postmaster.
    Running(Child),
    /// It exited; its stderr.
    Exited(String),
}

/// Start `postgres -D data` as postgres, with the socket in the data
/// directory and no TCP, and wait until it is ready or has exited.
pub fn start_postgres(bindir: &Path, data: &Path, cleanup: &mut Cleanup) -> Start {
    let k = data.display().to_string();
    start_postgres_with(
        bindir,
        data,
        &["-p", "5999", "-c", "listen_addresses=", "-k", &k],
        cleanup,
    )
}

/// Start `postgres -D data ARGS…` as postgres, and wait until it is ready
/// or has exited.
pub fn start_postgres_with(
    bindir: &Path,
    data: &Path,
    args: &[&str],
    cleanup: &mut Cleanup,
) -> Start {
    let log = data.parent().unwrap().join(format!(
        "postgres-{}.log",
        Instant::now().elapsed().as_nanos()
    ));
    start_postgres_logged(bindir, data, args, &log, cleanup)
}

/// [`start_postgres_with`], with the server's output in `log`.
pub fn start_postgres_logged(
    bindir: &Path,
    data: &Path,
    args: &[&str],
    log: &Path,
    cleanup: &mut Cleanup,
) -> Start {
    let logfile = std::fs::File::create(log).unwrap();
    let mut child = Command::new("runuser")
        .args(["-u", PG_USER, "--"])
        .arg(bindir.join("postgres"))
        .arg("-D")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .unwrap();
    // runuser execs nothing itself: it forks postgres; find the postmaster
    // through the lock file once it is ready.
    cleanup.pids.push(child.id() as i32);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready to accept connections") {
            if let Some(pm) = postmaster_pid(data) {
                cleanup.pids.push(pm);
            }
            return Start::Running(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            let mut s = String::new();
            let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut s));
            return Start::Exited(s);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "postgres neither started nor exited:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn postmaster_pid(data: &Path) -> Option<i32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Line 7 of the lock file: (key, shmid) as printed.
pub fn line7(data: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let l = text.lines().nth(6).expect("line 7");
    let mut f = l.split_whitespace();
    (f.next().unwrap().to_string(), f.next().unwrap().to_string())
}

/// Stop a running postmaster with SIGQUIT (immediate) and wait.
pub fn stop_postgres(data: &Path, mut child: Child) {
    if let Some(pm) = postmaster_pid(data) {
        signal(pm, Signal::QUIT);
        wait_gone(pm);
    }
    let _ = child.wait();
}

pub fn start(bindir: &Path, data: &Path, c: &mut Cleanup) -> std::process::Child {
    match start_postgres(bindir, data, c) {
        Start::Running(child) => child,
        Start::Exited(log) => panic!("postgres did not start:\n{log}"),
    }
}

pub fn refused(bindir: &Path, data: &Path, c: &mut Cleanup) -> String {
    match start_postgres(bindir, data, c) {
        Start::Exited(log) => log,
        Start::Running(_) => panic!("postgres started"),
    }
}

/// Stop cleanly (SIGINT, fast shutdown) and wait.
pub fn stop_fast(data: &Path, mut child: std::process::Child) {
    let pm = postmaster_pid(data).unwrap();
    signal(pm, Signal::INT);
    wait_gone(pm);
    let _ = child.wait();
}

/// SIGSTOP the running server's checkpointer, SIGKILL its postmaster, and
/// return the checkpointer's PID (killed by the cleanup guard).
pub fn kill_leaving_stopped_checkpointer(data: &Path, c: &mut Cleanup) -> i32 {
    let pm = postmaster_pid(data).unwrap();
    // The postmaster forks its checkpointer early, but a start counted as
    // running can be seen a moment before that under load.
    let start = std::time::Instant::now();
    let checkpointer = loop {
        if let Some(&pid) = children_named(pm, "checkpointer").first() {
            break pid;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "postmaster {pm} has no checkpointer after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    c.pids.push(checkpointer);
    signal(checkpointer, Signal::STOP);
    wait_stopped(checkpointer);
    signal(pm, Signal::KILL);
    wait_gone(pm);
    checkpointer
}

/// A lock file that is a stopped server's, rewritten to name `pid`.
pub fn lock_file_naming(data: &Path, pid: i32) {
    let text = format!(
        "{pid}\n{}\n1700000000\n5999\n{}\n\n",
        data.display(),
        data.display()
    );
    std::fs::write(data.join("postmaster.pid"), text).unwrap();
    chown_r(&data.join("postmaster.pid"));
}

/// Run `sql` with psql against the server of `data` (socket in `data`,
/// port 5999); its output, unaligned and tuples only.
pub fn psql(bindir: &Path, data: &Path, sql: &str) -> String {
    let out = as_postgres(
        Command::new(bindir.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                "5999",
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-h"])
            .arg(data)
            .args(["-c", sql])
            .stdin(Stdio::null()),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `sleep 600` of the postgres user, working next to the data directory
/// `data` and holding nothing: what a careless fix would hit. Registered
/// for clean-up.
#[allow(clippy::zombie_processes)] // killed by the guard; reaped at exit
pub fn bystander(data: &Path, c: &mut Cleanup) -> i32 {
    let dir = data.parent().unwrap();
    let child = as_postgres(Command::new("sleep").arg("600").current_dir(dir))
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    c.pids.push(pid);
    pid
}

/// A directory that passes the server's own checks for PostgreSQL 16 (no
/// such server binary is installed here, so the report names no minor
/// version), owned by whoever runs the test.
pub fn fake_cluster() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("global")).unwrap();
    std::fs::write(d.path().join("PG_VERSION"), "16\n").unwrap();
    std::fs::write(
        d.path().join("global/pg_control"),
        interlock_format::pgcontrol::minimal_control_file(
            16,
            interlock_format::pgcontrol::DbState::ShutDown,
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    d
}

/// Every cached npm build (`scripts/pg-versions install …`): its version
/// directory name (`10.20.0-beta.6`) and bindir, oldest first.
pub fn cached_builds() -> Vec<(String, PathBuf)> {
    let cache = std::env::var_os("INTERLOCK_PG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/pg"));
    let mut found: Vec<((u32, u32), String, PathBuf)> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut v = name.split('.');
            let major = v.next()?.parse::<u32>().ok()?;
            let minor = v.next()?.parse::<u32>().ok()?;
            let bin = e.path().join("native/bin");
            bin.join("postgres")
                .exists()
                .then_some(((major, minor), name, bin))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n, b)| (n, b)).collect()
}
