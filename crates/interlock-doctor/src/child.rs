//! Running a helper program (`postgres --version`, `postgres -C`) with a
//! time limit.
//!
//! A server binary reads the data directory's configuration, which a
//! hostile owner controls (`postgresql.auto.conf` as a link to `/dev/zero`
//! keeps `postgres -C` reading forever). So every child runs in its own
//! process group (`setpgid(0, 0)`, see setpgid(2)), dies with us
//! (`PR_SET_PDEATHSIG`, prctl(2)), has its output read with a bound, and is
//! killed with its whole group (`kill(-pgid, SIGKILL)`, kill(2)) when the
//! time is up.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished child said.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (at most the bound given).
    pub stdout: Vec<u8>,
    /// Its standard error (at most the bound given).
    pub stderr: Vec<u8>,
}

/// Why a child gave no output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// It could not be started.
    #[error("{program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: io::Error,
    },
    /// It ran past its time limit and was killed with its process group.
    #[error("{program} timed out after {} s; killed it (process group {pgid})", limit.as_secs_f64())]
    TimedOut {
        /// The program.
        program: String,
        /// The limit.
        limit: Duration,
        /// Its process group (its PID).
        pgid: i32,
    },
}

/// Run `cmd` for at most `limit`, with standard input from /dev/null and
/// its output captured (at most `max_output` bytes of each stream are
/// kept; the rest is read and dropped so the child never blocks on a full
/// pipe). On timeout the child's process group is killed and reaped.
///
/// # Errors
/// [`RunError::Spawn`], [`RunError::TimedOut`].
pub fn output_within(
    cmd: &mut Command,
    limit: Duration,
    max_output: usize,
) -> Result<Output, RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    interlock::sys::proc::die_with_parent(cmd);
    let deadline = Instant::now() + limit;
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, stream) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ] {
        let Some(mut stream) = stream else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = max_output.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&buf[..room]);
                    }
                }
            }
            let _ = tx.send((is_out, kept));
        });
    }
    drop(tx);
    let timed_out = |child: &mut std::process::Child| {
        kill_group(pgid);
        let _ = child.wait();
        RunError::TimedOut {
            program: program.clone(),
            limit,
            pgid,
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return Err(timed_out(&mut child)),
        }
    };
    // The child has ended; a process it left in its group may still hold
    // the pipes open, so the output waits only until the deadline.
    let mut out = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, b)) => out.stdout = b,
            Ok((false, b)) => out.stderr = b,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_group(pgid);
                return Err(RunError::TimedOut {
                    program,
                    limit,
                    pgid,
                });
            }
        }
    }
    Ok(out)
}

/// SIGKILL to the process group `pgid`, which we created.
fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_captured() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo hi; echo err >&2"]),
            Duration::from_secs(5),
            1024,
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn output_is_bounded() {
        let out = output_within(
            Command::new("sh").args(["-c", "head -c 1000000 /dev/zero"]),
            Duration::from_secs(5),
            100,
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 100);
    }

    #[test]
    fn a_hanging_group_is_killed() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("grandchild");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let e = output_within(
            Command::new("sh").args(["-c", &script]),
            Duration::from_millis(500),
            1024,
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("timed out after 0.5 s"), "{e}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild (our test's own, through sh) is gone or a zombie
        // about to be reaped by init.
        std::thread::sleep(Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "sleep still runs: {stat}"
        );
    }
}
