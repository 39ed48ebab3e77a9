//! Processes: whether one runs, signals, and waiting.
//!
//! "Gone" has one meaning here: the PID has **left the process table**
//! (`/proc/PID` does not exist). A zombie is not gone: `kill(pid, 0)` still
//! succeeds on it, which is all PostgreSQL's lock-file check looks at, and
//! its PID cannot be reused yet. A zombie has, however, already detached
//! its segments: to ask "has it exited?" use `!`[`running`]. Do not wait
//! for a child of the test process itself to be gone: reap it
//! (`Child::wait`), nobody else will.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::Signal;

/// How long the waits here wait before failing the test.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T`, `Z`…), if the PID
/// is in the process table.
pub fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// In the process table and not a zombie (nor dead, `X`): it has not
/// exited. See the module documentation for "gone".
pub fn running(pid: i32) -> bool {
    state_of(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// Whether `pid` has left the process table.
pub fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

pub fn signal(pid: i32, sig: Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Poll `f` every 20 ms until it holds; panic after [`WAIT_LIMIT`].
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT_LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `pid` has left the process table (reaped by its parent),
/// zombie included: a killed postmaster stays a zombie until runuser, its
/// parent, reaps it, and the server counts a zombie named in the lock file
/// as alive.
pub fn wait_gone(pid: i32) {
    wait_until(&format!("PID {pid} to leave the process table"), || {
        gone(pid)
    });
}

/// Wait until `pid` is stopped (`T`): SIGSTOP takes effect asynchronously.
pub fn wait_stopped(pid: i32) {
    wait_until(&format!("PID {pid} to stop"), || state_of(pid) == Some('T'));
}

/// A process: its PID as seen from the test, its parent and its argv.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub argv: Vec<String>,
}

/// Every process on the machine, with parent (from each `/proc/PID/stat`'s
/// parent field, which every kernel has) and argv.
pub fn all_procs() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(ppid) = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv = cmd
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push(Proc { pid, ppid, argv });
    }
    out
}

/// Children of `ppid` whose command line contains `needle`.
pub fn children_named(ppid: i32, needle: &str) -> Vec<i32> {
    all_procs()
        .into_iter()
        .filter(|p| p.ppid == ppid && p.argv.join(" ").contains(needle))
        .map(|p| p.pid)
        .collect()
}

/// `target/<profile>/examples/<name>`, built by `cargo test --workspace`
/// (found from the running test binary, `target/<profile>/deps/…`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace`, which builds the examples",
        p.display()
    );
    p
}
