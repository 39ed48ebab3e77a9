//! Shared harness for the real-process tests: the `holder` example as a
//! driven owner, guards that kill only the processes a test started and
//! remove only the segments it created, and a PostgreSQL 15 fixture.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use interlock::ShmId;

/// `target/<profile>/examples/<name>`, built by `cargo test` with the tests.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests through `cargo test`, which builds the examples",
        p.display()
    );
    p
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Wait until `pid` is gone (or a zombie), up to 10 s.
pub fn wait_gone(pid: i32) {
    for _ in 0..1000 {
        if !pid_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} did not exit");
}

/// Processes this test started (directly or through a holder), killed with
/// SIGKILL (after SIGCONT) on drop, and segments it created, removed on drop.
#[derive(Default)]
pub struct Cleanup {
    pids: Vec<i32>,
    shmids: Vec<ShmId>,
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    /// Also remove, at the end, every segment whose header names `dir`
    /// (crashed acquires leave some that no line reported). Declare the
    /// `Cleanup` after the temporary directory so it runs first.
    pub fn for_dir(dir: &Path) -> Cleanup {
        Cleanup {
            pids: Vec::new(),
            shmids: Vec::new(),
            dirs: vec![dir.to_path_buf()],
        }
    }

    pub fn pid(&mut self, pid: i32) {
        self.pids.push(pid);
    }
    pub fn shmid(&mut self, id: ShmId) {
        self.shmids.push(id);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid, rustix::process::Signal::CONT);
            signal(pid, rustix::process::Signal::KILL);
        }
        for &pid in &self.pids {
            for _ in 0..300 {
                if !pid_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for &id in &self.shmids {
            let _ = interlock::sys::shm::remove(id);
        }
        // Segments created by processes we started (a crash right after
        // shmget leaves one without a header), and any naming our dirs.
        let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(id) = f.get(1).and_then(|s| s.parse().ok()) else {
                continue;
            };
            if f.get(4)
                .and_then(|s| s.parse::<i32>().ok())
                .is_some_and(|cpid| self.pids.contains(&cpid))
            {
                let _ = interlock::sys::shm::remove(ShmId(id));
                continue;
            }
            for dir in &self.dirs {
                use interlock::segment::{analyze, SegmentState};
                if matches!(
                    analyze(ShmId(id), dir),
                    SegmentState::Attached { .. } | SegmentState::Unattached { .. }
                ) {
                    let _ = interlock::sys::shm::remove(ShmId(id));
                }
            }
        }
    }
}

/// A running `holder` example, read line by line.
pub struct Holder {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub pid: i32,
}

/// What a holder said about acquiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acquired { pid: i32, shmid: i32 },
    Refused { variant: String, message: String },
}

impl Holder {
    /// Start `holder DIR ARGS` as the current user (or as `user` via runuser).
    pub fn start_as(
        user: Option<&str>,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cleanup: &mut Cleanup,
    ) -> Holder {
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(example("holder"));
                c
            }
            None => Command::new(example("holder")),
        };
        cmd.arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn holder");
        let pid = child.id() as i32;
        cleanup.pid(pid);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Holder {
            child,
            stdin,
            lines: rx,
            pid,
        }
    }

    pub fn start(dir: &Path, args: &[&str], cleanup: &mut Cleanup) -> Holder {
        Self::start_as(None, dir, args, &[], cleanup)
    }

    /// The next line, within 20 s (None at end of output).
    pub fn line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(20)).ok()
    }

    /// The first line, parsed; segments and children it reports are
    /// registered for clean-up.
    pub fn outcome(&self, cleanup: &mut Cleanup) -> Outcome {
        let line = self.line().expect("holder printed nothing");
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first().copied() {
            Some("ACQUIRED") => {
                let shmid: i32 = f[3].parse().expect("shmid");
                cleanup.shmid(ShmId(shmid));
                Outcome::Acquired {
                    pid: f[1].parse().expect("pid"),
                    shmid,
                }
            }
            Some("REFUSED") => {
                let rest = line.trim_start_matches("REFUSED ").to_string();
                let (variant, message) = rest.split_once(": ").unwrap_or((&rest, ""));
                Outcome::Refused {
                    variant: variant.to_string(),
                    message: message.to_string(),
                }
            }
            _ => panic!("unexpected holder output: {line}"),
        }
    }

    /// Read `CHILD`/`EXEC` lines: the PIDs of forked children, the exec'd
    /// program and its keeper, registered for clean-up.
    pub fn children(&self, n: usize, cleanup: &mut Cleanup) -> Vec<i32> {
        let mut pids = Vec::new();
        while pids.len() < n {
            let line = self.line().expect("child line");
            for (i, w) in line.split_whitespace().enumerate() {
                if i % 2 == 1 {
                    let pid: i32 = w.parse().expect("pid");
                    cleanup.pid(pid);
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Close stdin: the holder releases and exits. Returns its last line.
    pub fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut last = String::new();
        while let Some(l) = self.line() {
            last = l;
        }
        let _ = self.child.wait();
        last
    }

    pub fn kill9(&mut self) {
        signal(self.pid, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

pub fn acquire_outcome(dir: &Path, cleanup: &mut Cleanup) -> Outcome {
    let h = Holder::start(dir, &[], cleanup);
    let o = h.outcome(cleanup);
    h.finish();
    o
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(bytes).expect("write");
}
