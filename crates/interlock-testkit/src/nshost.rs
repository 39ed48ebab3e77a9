//! "Hosts" on one machine, for the fence's tests: a command run in new
//! IPC, PID, mount and UTS namespaces (util-linux `unshare`, root only),
//! with its own `/proc`, `/dev/shm` and host name. Over one data
//! directory, two of them are to PostgreSQL what two hosts on shared
//! storage are: neither sees the other's processes (the lock file's PID is
//! checked with `kill(pid, 0)` in the checker's PID namespace) nor its
//! System V segments (`shmget` and `shmctl` act in the caller's IPC
//! namespace). The network is shared, so etcd on 127.0.0.1 is reachable
//! from both, and so is a server's socket directory on the shared file
//! system.
//!
//! The guard kills the namespace's init on drop: the kernel then kills
//! every process in the namespace (`zap_pid_ns_processes`,
//! kernel/pid_namespace.c), and the IPC and mount namespaces, with their
//! segments and `/dev/shm` files, go with the last of them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::process::{all_procs, Proc};

/// What runs as PID 1: it sets the host name and a private `/dev/shm`,
/// starts the command in a subshell that records its exit status, and
/// becomes `sleep`, an init that outlives the command, so that what the
/// command leaves behind when it is killed (a server, its children) stays
/// running in the namespace, as it would on a real host, instead of dying
/// with PID 1.
const INIT: &str = r#"hostname "$1" && mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 97
status=$2
shift 2
( "$@"; echo $? >"$status.tmp"; mv "$status.tmp" "$status" ) </dev/null &
exec sleep 100000"#;

/// The namespaces of a "host", and its own `/proc`.
const UNSHARE: [&str; 6] = [
    "--ipc",
    "--pid",
    "--mount",
    "--uts",
    "--fork",
    "--mount-proc",
];

/// One "host": `argv` running in its own namespaces.
#[derive(Debug)]
pub struct NsHost {
    unshare: Child,
    init: i32,
    /// The host name inside (`hostname`), which `interlock run` records as
    /// the holder's host.
    pub name: String,
    status: PathBuf,
    /// The command's standard output and error.
    pub out: PathBuf,
    pub err: PathBuf,
}

/// Whether `unshare` can make the namespaces here (root, and a kernel and
/// sandbox that allow it); the reason when not.
pub fn namespaces_available() -> Result<(), String> {
    if !crate::is_root() {
        return Err("namespaces need root".into());
    }
    let out = Command::new("unshare")
        .args(UNSHARE)
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Skip the test (return) with the reason when namespaces cannot be made.
#[macro_export]
macro_rules! require_namespaces {
    () => {
        if let Err(why) = $crate::nshost::namespaces_available() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

impl NsHost {
    /// Start `argv` on a new host named `name`; its output goes to
    /// `logs/NAME.N.out` and `.err`, N counting the hosts started by this
    /// test process.
    pub fn start<S: AsRef<OsStr>>(name: &str, logs: &Path, argv: &[S]) -> NsHost {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let out = logs.join(format!("{name}.{n}.out"));
        let err = logs.join(format!("{name}.{n}.err"));
        let status = logs.join(format!("{name}.{n}.status"));
        let unshare = Command::new("unshare")
            .args(UNSHARE)
            .args([
                // The namespace's init is SIGKILLed if unshare dies.
                "--kill-child",
                "--",
                "sh",
                "-c",
                INIT,
                "sh",
                name,
            ])
            .arg(&status)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("unshare");
        let upid = unshare.id() as i32;
        let mut host = NsHost {
            unshare,
            init: 0,
            name: name.to_string(),
            status,
            out,
            err,
        };
        let start = Instant::now();
        loop {
            if let Some(p) = all_procs().into_iter().find(|p| p.ppid == upid) {
                host.init = p.pid;
                break;
            }
            if let Ok(Some(st)) = host.unshare.try_wait() {
                panic!("unshare exited at once ({st}): {}", host.stderr());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the namespace's init did not appear"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        host
    }

    /// The namespace's PID 1, as seen from the test.
    pub fn init_pid(&self) -> i32 {
        self.init
    }

    /// Every process in the namespace but its init (PIDs as seen from the
    /// test).
    pub fn processes(&self) -> Vec<Proc> {
        let all = all_procs();
        let mut inside = vec![self.init];
        let mut out = Vec::new();
        // Parents come before children in no particular order: repeat
        // until no new descendant is found.
        loop {
            let before = out.len();
            for p in &all {
                if inside.contains(&p.ppid) && !inside.contains(&p.pid) {
                    inside.push(p.pid);
                    out.push(p.clone());
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// The first process in the namespace whose argv satisfies `f`.
    pub fn find(&self, f: impl Fn(&[String]) -> bool) -> Option<i32> {
        self.processes()
            .into_iter()
            .find(|p| f(&p.argv) && crate::running(p.pid))
            .map(|p| p.pid)
    }

    /// `interlock run`, if it runs.
    pub fn interlock_run(&self) -> Option<i32> {
        self.find(|a| a.len() > 1 && a[0].ends_with("/interlock") && a[1] == "run")
    }

    /// The postmaster: a running `postgres` process whose parent is not
    /// one (its children keep the executable's name).
    pub fn postmaster(&self) -> Option<i32> {
        let procs = self.processes();
        let is_pg = |p: &Proc| {
            std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                .is_ok_and(|c| c.trim() == "postgres")
        };
        procs
            .iter()
            .filter(|p| is_pg(p) && crate::running(p.pid))
            .find(|p| !procs.iter().any(|q| q.pid == p.ppid && is_pg(q)))
            .map(|p| p.pid)
    }

    /// The command's exit status, once it has exited.
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.status)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Wait up to `limit` for the command's exit status.
    pub fn wait_exit(&self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.exit_code() {
                return Some(c);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Kill everything in the namespace and wait until it is gone.
    pub fn shut_down(&mut self) {
        let procs = self.processes();
        if self.init > 0 {
            for p in &procs {
                // A stopped process dies of SIGKILL too; this only makes
                // the order of the kills irrelevant.
                crate::signal(p.pid, Signal::CONT);
            }
            crate::signal(self.init, Signal::KILL);
        }
        // unshare reaps the init, which the kernel lets exit only once
        // every other process in the namespace is gone.
        let start = Instant::now();
        while self.unshare.try_wait().ok().flatten().is_none()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        while procs.iter().any(|p| crate::running(p.pid))
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NsHost {
    fn drop(&mut self) {
        self.shut_down();
    }
}
