//! Shared harness for the real-process tests: the test kit
//! (`interlock-testkit`: clean-up guards that kill only the processes a
//! test started and remove only the segments it made, waiting for
//! processes), and the `holder` example as a driven owner.

#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use interlock::ShmId;
pub use interlock_testkit::*;

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
