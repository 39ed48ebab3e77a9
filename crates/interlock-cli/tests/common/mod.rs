//! Harness for the CLI and PostgreSQL tests: data directories owned by the
//! right user, a PostgreSQL 15 fixture that starts the `postgres` binary
//! itself, and guards that kill only what a test started and remove only
//! the segments of its own directories.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::Value;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_interlock"))
}

/// `target/<profile>/examples/<name>` (built by `cargo test --workspace`).
pub fn example(name: &str) -> PathBuf {
    let p = bin()
        .parent()
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace`, which builds the examples",
        p.display()
    );
    p
}

fn id_of(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

/// The user PostgreSQL runs as in these tests.
pub const PG_USER: &str = "postgres";

/// A temporary root (mode 0755) with a data directory inside (mode 0700)
/// owned by `postgres` when we are root, else by us.
pub struct TestDir {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        if is_root() {
            chown_r(&data);
        }
        TestDir { root, data }
    }
}

pub fn chown_r(path: &Path) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{PG_USER}:"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

/// Wait until `pid` has left the process table, zombie included: a killed
/// postmaster stays a zombie until runuser, its parent, reaps it, and the
/// server counts a zombie named in the lock file as alive (kill(pid, 0)).
pub fn wait_gone(pid: i32) {
    wait_until(&format!("PID {pid} reaped"), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `pid` is stopped: SIGSTOP takes effect asynchronously.
pub fn wait_stopped(pid: i32) {
    wait_until("a stopped process", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("T")
        })
    });
}

/// Kills (SIGCONT, SIGKILL) the processes a test started and removes
/// segments that name its data directories, on drop.
#[derive(Default)]
pub struct Cleanup {
    pub pids: Vec<i32>,
    pub dirs: Vec<PathBuf>,
}

impl Cleanup {
    pub fn for_dir(dir: &Path) -> Cleanup {
        Cleanup {
            pids: Vec::new(),
            dirs: vec![dir.to_path_buf()],
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid, Signal::CONT);
            signal(pid, Signal::KILL);
        }
        for &pid in &self.pids {
            let start = Instant::now();
            while pid_alive(pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        for line in table.lines().skip(1) {
            let Some(id) = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()) else {
                continue;
            };
            for dir in &self.dirs {
                use interlock::segment::{analyze, cleanup_dsm, SegmentState};
                use std::os::unix::fs::MetadataExt;
                // Our processes are dead, but the kernel may not have
                // detached the last of them yet: give it a moment.
                let mut state = analyze(interlock::ShmId(id), dir);
                for _ in 0..50 {
                    if !matches!(state, SegmentState::Attached { .. }) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    state = analyze(interlock::ShmId(id), dir);
                }
                match state {
                    // Nobody left: remove its DSM files too, as the server
                    // does when it recycles a segment.
                    SegmentState::Unattached { header } => {
                        let uid = std::fs::metadata(dir).map(|m| m.uid()).unwrap_or(0);
                        cleanup_dsm(header.dsm_control, uid);
                        let _ = interlock::sys::shm::remove(interlock::ShmId(id));
                    }
                    SegmentState::Attached { .. } => {
                        let _ = interlock::sys::shm::remove(interlock::ShmId(id));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Segments that name `dir` (attached or not).
pub fn segments_of(dir: &Path) -> Vec<i32> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|s| s.parse().ok()))
        .filter(|&id| {
            use interlock::segment::{analyze, SegmentState};
            matches!(
                analyze(interlock::ShmId(id), dir),
                SegmentState::Attached { .. } | SegmentState::Unattached { .. }
            )
        })
        .collect()
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

// ---------------------------------------------------------------- PostgreSQL

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

/// Skip (with the reason printed) unless root and PostgreSQL is installed.
#[allow(unused_macros)]
macro_rules! require_postgres {
    () => {
        match (common::is_root(), common::pg_bindir()) {
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
#[allow(unused_imports)]
pub(crate) use require_postgres;

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
                if !pid_alive(pid) {
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
        wait_until("postmaster exit", || !pid_alive(pm));
    }
    let _ = child.wait();
}

/// Children of `ppid` whose command line contains `needle`.
pub fn children_named(ppid: i32, needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let pp = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok());
        if pp == Some(ppid) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
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
    wait_until("clean shutdown", || !pid_alive(pm));
    let _ = child.wait();
}

/// SIGSTOP the running server's checkpointer, SIGKILL its postmaster, and
/// return the checkpointer's PID (killed by the cleanup guard).
pub fn kill_leaving_stopped_checkpointer(data: &Path, c: &mut Cleanup) -> i32 {
    let pm = postmaster_pid(data).unwrap();
    let checkpointer = children_named(pm, "checkpointer")[0];
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

/// Make `cmd` run as `postgres` (uid and gid switched between fork and
/// exec, so the child's PID is the command's, unlike `runuser`'s).
pub fn as_postgres(cmd: &mut Command) -> &mut Command {
    interlock::sys::proc::run_command_as(cmd, id_of("-u", PG_USER), id_of("-g", PG_USER));
    cmd
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
