//! `interlock run [--etcd ENDPOINTS] DATADIR -- COMMAND...`: the local
//! interlock, as `hold` takes it, and a lease in etcd keyed by the data
//! directory's identity, held while COMMAND runs; renewed, and a
//! self-fence (COMMAND's process group stopped) before it can lapse.
//!
//! Three processes enforce the lease deadline, so that no single pause or
//! death leaves COMMAND running unfenced:
//! - `interlock run` renews every `renew_every` and self-fences when
//!   `fence_after` passes on CLOCK_MONOTONIC since the send time of the
//!   last renewal that succeeded;
//! - `interlock fence-watchdog` (this binary re-executed, in its own
//!   process group) receives over a pipe the send time of every successful
//!   renewal and enforces the same deadline; if the pipe closes while
//!   COMMAND runs (`interlock run` died), it stops COMMAND at once;
//! - the lock's keeper, as for `hold`, keeps the local interlock (with
//!   `--server-locks`, COMMAND is the server and takes it itself).
//!
//! The key is `/interlock/<system identifier>/<name>`: pg_control's system
//! identifier (shared by replicas) and `--name`, or else the data
//! directory's absolute path (which identifies the storage only when
//! every host mounts it at the same path: give `--name` otherwise).
//!
//! The key, its value and `interlock.fence` (`interlock_fence::key`), taking
//! the lease and renewing it (`interlock_fence::lease`) are the library's,
//! shared with its one-call `Fence` (`crates/interlock-fence/src/fence.rs`);
//! what is here is the CLI's: COMMAND, its stop, and the watchdog process.

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interlock::sys::signal::SignalFd;
use interlock::{DataDirLock, Error, Released};
use interlock_fence::key::HolderValue;
use interlock_fence::lease::{fence_due, now_ns, AcquireError, Lease, RenewEvent, Renewer};
use interlock_fence::timing::{Timing, DEFAULT_TTL, MIN_TTL};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process_group, Pid, Signal};

use crate::exit;

/// Arguments of `interlock run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The data directory.
    pub datadir: PathBuf,
    /// etcd client endpoints, comma-separated (http://HOST:PORT). Required
    /// unless --local-only.
    #[arg(long, value_name = "ENDPOINTS")]
    pub etcd: Option<String>,
    /// The lease's time-to-live in seconds (at least 3). The holder
    /// renews every TTL/6 and stops COMMAND after TTL/3 without a renewal.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TTL.as_secs())]
    pub ttl: u64,
    /// What identifies the storage, with pg_control's system identifier,
    /// in the key /interlock/SYSID/NAME [default: the data directory's
    /// absolute path — give a name when hosts mount it at different paths].
    #[arg(long)]
    pub name: Option<String>,
    /// Take the local interlock only, as `hold` does: no etcd, not fenced
    /// across hosts.
    #[arg(long, conflicts_with_all = ["etcd", "server_locks"])]
    pub local_only: bool,
    /// COMMAND is the server itself (`postgres -D DATADIR`), which takes
    /// the data directory's local interlock on its own: take none here
    /// (the one `hold` takes would make the server refuse to start), hold
    /// only the etcd lease.
    #[arg(long)]
    pub server_locks: bool,
    /// Port for line 4 of the lock file [default: the cluster's
    /// configured port, else 5432].
    #[arg(long)]
    pub port: Option<u16>,
    /// Seconds to wait for another interlock process that is acquiring
    /// the same directory.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// Print nothing but errors (and the self-fence).
    #[arg(long, short)]
    pub quiet: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

/// Arguments of the hidden `interlock fence-watchdog` (started by `run`;
/// reads `hb NS`, `pid N` and `lost` lines on its standard input).
#[derive(Debug, clap::Args)]
pub struct WatchdogArgs {
    /// The lease's TTL: the watchdog derives the same `Timing` as `run`.
    #[arg(long)]
    pub ttl_ms: u64,
    /// CLOCK_MONOTONIC (ns) of the last renewal known to have succeeded
    /// (the grant's send time at first) [default: now].
    #[arg(long)]
    pub last_ok_ns: Option<u64>,
}

fn timeout_until(deadline_ns: u64) -> Timespec {
    let left = deadline_ns.saturating_sub(now_ns());
    Timespec {
        tv_sec: (left / 1_000_000_000) as _,
        tv_nsec: (left % 1_000_000_000) as _,
    }
}

fn report(err: &Error) {
    eprintln!("interlock: {err}");
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
}

/// The pipe to the watchdog; lines `hb NS`, `pid N` (written by COMMAND
/// itself before it execs) and `lost`.
struct WatchdogLink {
    timing: Timing,
    state: Mutex<LinkState>,
}

/// What the watchdog has been told, replayed to a new one if it dies.
struct LinkState {
    child: Child,
    stdin: Option<ChildStdin>,
    last_hb: u64,
    pid: Option<u32>,
    lost: bool,
    restarts: u32,
}

/// How many times a watchdog that died is started again.
const WATCHDOG_RESTARTS: u32 = 5;

fn spawn_watchdog(timing: &Timing, last_ok_ns: u64) -> std::io::Result<(Child, ChildStdin)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("fence-watchdog")
        .arg("--ttl-ms")
        .arg(timing.ttl.as_millis().to_string())
        .arg("--last-ok-ns")
        .arg(last_ok_ns.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Not in our process group: a Ctrl-C or a group kill aimed at
        // `interlock run` must not end the watchdog.
        .process_group(0)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no pipe to the watchdog"))?;
    Ok((child, stdin))
}

impl WatchdogLink {
    /// Start the watchdog, counting from `last_ok_ns` (the grant's send
    /// time: never later than the lease's start at etcd).
    fn start(timing: &Timing, last_ok_ns: u64) -> std::io::Result<WatchdogLink> {
        let (child, stdin) = spawn_watchdog(timing, last_ok_ns)?;
        Ok(WatchdogLink {
            timing: *timing,
            state: Mutex::new(LinkState {
                child,
                stdin: Some(stdin),
                last_hb: last_ok_ns,
                pid: None,
                lost: false,
                restarts: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pipe's write end, for COMMAND to announce its PID on between
    /// fork and exec (`interlock::sys::proc::announce_pid_in`).
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.lock().stdin.as_ref().map(|w| w.as_raw_fd())
    }

    /// A renewal sent at `ns` succeeded.
    fn heartbeat(&self, ns: u64) {
        let mut st = self.lock();
        st.last_hb = st.last_hb.max(ns);
        self.send(&mut st, &format!("hb {ns}\n"));
    }

    /// COMMAND runs as `pid` (it announced itself already; kept for a
    /// watchdog started again).
    fn command_started(&self, pid: u32) {
        self.lock().pid = Some(pid);
    }

    /// The lease or the key is gone at etcd: fence now.
    fn lease_lost(&self) {
        let mut st = self.lock();
        st.lost = true;
        self.send(&mut st, "lost\n");
    }

    /// Send `line`; if the watchdog is gone (killed), start another,
    /// tell it what the old one knew, and send it there.
    fn send(&self, st: &mut LinkState, line: &str) {
        let ok = st
            .stdin
            .as_mut()
            .is_some_and(|w| w.write_all(line.as_bytes()).is_ok());
        if ok || st.stdin.is_none() {
            return;
        }
        st.stdin = None;
        let _ = st.child.try_wait();
        if st.restarts >= WATCHDOG_RESTARTS {
            eprintln!(
                "interlock: warning: the fence watchdog is gone again; not started a {}th time (interlock run still enforces the lease deadline itself)",
                WATCHDOG_RESTARTS + 1
            );
            return;
        }
        st.restarts += 1;
        match spawn_watchdog(&self.timing, st.last_hb) {
            Ok((child, mut stdin)) => {
                eprintln!("interlock: warning: the fence watchdog was gone: started it again");
                let mut replay = String::new();
                if let Some(pid) = st.pid {
                    replay += &format!("pid {pid}\n");
                }
                if st.lost {
                    replay += "lost\n";
                }
                replay += line;
                if stdin.write_all(replay.as_bytes()).is_ok() {
                    st.stdin = Some(stdin);
                }
                // The old one closed its end of the pipe, which it does
                // only by exiting: reap it (and should it linger, it is
                // ours to end).
                let mut old = std::mem::replace(&mut st.child, child);
                if !matches!(old.try_wait(), Ok(Some(_))) {
                    let _ = old.kill();
                    let _ = old.wait();
                }
            }
            Err(e) => eprintln!("interlock: warning: the fence watchdog is gone ({e})"),
        }
    }

    fn finish(self) {
        let mut st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        drop(st.stdin.take());
        let _ = st.child.wait();
    }
}

fn signal_group(pgid: Pid, sig: Signal) {
    // ESRCH: the group is gone already.
    let _ = kill_process_group(pgid, sig);
}

pub fn run(args: &RunArgs) -> u8 {
    if args.etcd.is_none() && !args.local_only {
        eprintln!("interlock: run needs --etcd ENDPOINTS, or --local-only to run unfenced");
        return exit::HOLD_FAILED;
    }
    if let Err(e) = interlock::act_as_owner(&args.datadir) {
        report(&e);
        return exit::HOLD_FAILED;
    }
    let ttl = Duration::from_secs(args.ttl);
    if ttl < MIN_TTL {
        eprintln!(
            "interlock: --ttl {} is below the minimum of {} s",
            args.ttl,
            MIN_TTL.as_secs()
        );
        return exit::HOLD_FAILED;
    }
    let timing = Timing::for_ttl(ttl);
    let datadir = match std::path::absolute(&args.datadir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("interlock: {}: {e}", args.datadir.display());
            return exit::HOLD_FAILED;
        }
    };
    let key = if args.local_only {
        None
    } else {
        match interlock_fence::key::key_for(&datadir, args.name.as_deref()) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("interlock: cannot read the system identifier: {e}");
                return exit::HOLD_FAILED;
            }
        }
    };

    let opts = crate::hold::lock_options(&datadir, args.port, true, args.wait);

    // Block the signals we pass on before any thread or process is
    // started, so that none is lost.
    let signals = match SignalFd::for_forwarding() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("interlock: cannot set up signal forwarding: {e}");
            return exit::HOLD_FAILED;
        }
    };
    let acquired = if args.server_locks {
        Ok(None)
    } else {
        DataDirLock::acquire_with(&datadir, &opts).map(Some)
    };
    let lock = match acquired {
        Ok(lock) => lock,
        Err(e) => {
            report(&e);
            return crate::hold::acquire_failed(&e);
        }
    };

    let holder = HolderValue::this_process(&datadir);
    let lease = match (&key, &args.etcd) {
        (Some(key), Some(endpoints)) => {
            match Lease::acquire(endpoints, key, &holder.to_json(), &timing) {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("interlock: {e}; not running the command");
                    if !matches!(e, AcquireError::Held { .. }) {
                        eprintln!(
                            "hint: without etcd the data directory cannot be fenced across \
                             hosts; --local-only runs it with the local interlock only"
                        );
                    }
                    drop(lock);
                    return exit::HOLD_BUSY;
                }
            }
        }
        _ => None,
    };
    if let Some(l) = &lease {
        if let Err(e) =
            interlock_fence::key::write_fence_file(&datadir, l.token(), l.key(), &holder)
        {
            eprintln!("interlock: warning: cannot write interlock.fence: {e}");
        }
        if !args.quiet {
            eprintln!(
                "interlock: fenced by etcd key {} (fencing token {}, lease TTL {} s)",
                l.key(),
                l.token(),
                timing.ttl.as_secs()
            );
        }
        println!("fencing token {}", l.token());
        let _ = std::io::stdout().flush();
    } else if !args.quiet {
        eprintln!("interlock: --local-only: not fenced across hosts (local interlock only)");
    }

    let watchdog = match &lease {
        Some(l) => match WatchdogLink::start(&timing, l.granted_sent_ns()) {
            Ok(w) => Some(Arc::new(w)),
            Err(e) => {
                eprintln!("interlock: cannot start the fence watchdog: {e}");
                let _ = l.revoke(timing.renew_every);
                return exit::HOLD_FAILED;
            }
        },
        None => None,
    };

    let (program, rest) = match args.command.split_first() {
        Some(split) => split,
        None => return exit::HOLD_FAILED, // clap requires at least one
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    // Its own process group, so that a fence stops all of it.
    cmd.process_group(0);
    // It tells the watchdog its PID itself, before it execs: were we
    // killed right after the fork, the watchdog still knows whom to stop.
    if let Some(fd) = watchdog.as_ref().and_then(|w| w.raw_fd()) {
        interlock::sys::proc::announce_pid_in(&mut cmd, fd);
    }
    let spawned = match &lock {
        Some(lock) => lock.spawn(&mut cmd).map(Spawned::Kept),
        None => Spawned::plain(&mut cmd),
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("interlock: cannot run {}: {e}", program.to_string_lossy());
            if let Some(l) = &lease {
                let _ = l.revoke(timing.renew_every);
            }
            if let Some(w) = watchdog {
                if let Ok(w) = Arc::try_unwrap(w) {
                    w.finish();
                }
            }
            return match e.kind() {
                ErrorKind::NotFound => exit::HOLD_NOT_FOUND,
                ErrorKind::PermissionDenied => exit::HOLD_CANNOT_EXEC,
                _ => exit::HOLD_FAILED,
            };
        }
    };
    let Some(pgid) = Pid::from_raw(child.id() as i32) else {
        return exit::HOLD_FAILED;
    };
    if let Some(w) = &watchdog {
        w.command_started(child.id());
    }
    if !args.quiet {
        match &lock {
            Some(lock) => eprintln!(
                "interlock: holding {} (segment key {}, ID {}) while PID {} runs",
                lock.data_dir().display(),
                lock.key(),
                lock.shmid(),
                child.id()
            ),
            None => eprintln!(
                "interlock: the server takes the local interlock itself; fencing {} \
                 while PID {} runs",
                datadir.display(),
                child.id()
            ),
        }
    }

    // The lease or its key gone at etcd: another host may hold the key
    // now, so COMMAND is stopped at once, not at the deadline; the
    // renewer wakes `wait_fencing` through this pipe.
    let lost_pipe = match rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "interlock: warning: no pipe for the lease's loss ({e}); the deadline fences"
            );
            None
        }
    };
    let (lost_r, lost_w) = match lost_pipe {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    // The renewer, which heartbeats the watchdog. Without it (no thread),
    // the deadline passes and fences COMMAND.
    let renewer = lease.as_ref().and_then(|l| {
        let watchdog = watchdog.clone();
        let started = Renewer::start(l, &timing, move |ev| match ev {
            RenewEvent::Renewed { sent_ns } => {
                if let Some(w) = &watchdog {
                    w.heartbeat(sent_ns);
                }
            }
            RenewEvent::Recovered => eprintln!("interlock: lease renewed again"),
            RenewEvent::Failing(e) => eprintln!("interlock: lease renewal failed: {e}"),
            RenewEvent::Gone | RenewEvent::KeyLost => {
                eprintln!(
                    "interlock: {}",
                    if matches!(ev, RenewEvent::Gone) {
                        "the lease is gone at etcd (expired or revoked)"
                    } else {
                        "the key is no longer bound to our lease at etcd (deleted or taken)"
                    }
                );
                if let Some(w) = &watchdog {
                    w.lease_lost();
                }
                if let Some(w) = &lost_w {
                    let _ = rustix::io::write(w, b"!");
                }
            }
        });
        started
            .map_err(|e| eprintln!("interlock: cannot start the lease renewer: {e}"))
            .ok()
    });
    let last_ok = match (&renewer, &lease) {
        (Some(r), _) => r.last_ok().clone(),
        (None, l) => Arc::new(AtomicU64::new(
            l.as_ref().map(Lease::granted_sent_ns).unwrap_or(0),
        )),
    };

    let status = wait_fencing(
        &mut child,
        pgid,
        &signals,
        lease.is_some().then_some((&*last_ok, &timing)),
        lost_r.as_ref(),
    );
    drop(signals);
    if let Some(r) = renewer {
        r.stop();
    }
    if let Some(l) = &lease {
        if let Err(e) = l.revoke(timing.renew_every) {
            eprintln!(
                "interlock: warning: could not revoke the lease ({e}); it lapses within {} s",
                timing.ttl.as_secs()
            );
        }
    }
    if let Some(w) = watchdog {
        if let Ok(w) = Arc::try_unwrap(w) {
            w.finish();
        }
    }
    let code = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => c.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
            _ => exit::HOLD_FAILED,
        },
        Err(e) => {
            eprintln!("interlock: waiting for the command failed: {e}");
            exit::HOLD_FAILED
        }
    };
    match lock.map(DataDirLock::release) {
        Some(Released::Deferred { nattch }) if !args.quiet => eprintln!(
            "interlock: {nattch} process(es) started by the command still hold the directory; \
             the lock stays until they exit"
        ),
        _ => {}
    }
    code
}

/// COMMAND: kept by the lock's keeper, or on its own (`--server-locks`).
enum Spawned {
    Kept(interlock::KeptChild),
    Plain(Child, OwnedFd),
}

impl Spawned {
    fn plain(cmd: &mut Command) -> std::io::Result<Spawned> {
        interlock::sys::proc::unblock_signals_in(cmd);
        let child = cmd.spawn()?;
        // Our unreaped child: its PID cannot be reused.
        let pidfd = rustix::process::pidfd_open(
            Pid::from_child(&child),
            rustix::process::PidfdFlags::empty(),
        )?;
        Ok(Spawned::Plain(child, pidfd))
    }

    fn id(&self) -> u32 {
        match self {
            Spawned::Kept(k) => k.id(),
            Spawned::Plain(c, _) => c.id(),
        }
    }

    fn pidfd(&self) -> &OwnedFd {
        match self {
            Spawned::Kept(k) => k.pidfd(),
            Spawned::Plain(_, fd) => fd,
        }
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Spawned::Kept(k) => k.wait(),
            Spawned::Plain(c, _) => c.wait(),
        }
    }
}

/// Wait for COMMAND, passing on the signals we receive to its process
/// group and, with a lease, self-fencing when its deadline passes.
fn wait_fencing(
    child: &mut Spawned,
    pgid: Pid,
    signals: &SignalFd,
    fence: Option<(&AtomicU64, &Timing)>,
    lost: Option<&OwnedFd>,
) -> std::io::Result<std::process::ExitStatus> {
    let mut kill_at: Option<u64> = None;
    let mut lease_lost = false;
    loop {
        let deadline = match (fence, kill_at) {
            (_, Some(k)) => Some(k),
            (Some((last_ok, t)), None) => {
                Some(last_ok.load(Ordering::SeqCst) + t.fence_after.as_nanos() as u64)
            }
            (None, None) => None,
        };
        let timeout = deadline.map(timeout_until);
        let pidfd: &OwnedFd = child.pidfd();
        let mut fds = vec![
            PollFd::new(pidfd, PollFlags::IN),
            PollFd::new(signals, PollFlags::IN),
        ];
        if let Some(fd) = lost.filter(|_| !lease_lost) {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let exited = !fds[0].revents().is_empty();
        if fds.len() > 2 && !fds[2].revents().is_empty() {
            lease_lost = true;
        }
        drop(fds);
        while let Some(got) = signals.read()? {
            if !exited {
                if let Some(sig) = Signal::from_named_raw(got.signo) {
                    signal_group(pgid, sig);
                }
            }
        }
        if exited {
            if kill_at.is_some() {
                // The leader is a zombie still, so the group's ID is not
                // reused: sweep what is left of it.
                signal_group(pgid, Signal::KILL);
            }
            return child.wait();
        }
        let now = now_ns();
        match (fence, kill_at) {
            (_, Some(k)) if now >= k => {
                eprintln!("interlock: COMMAND did not stop: SIGKILL to its process group");
                signal_group(pgid, Signal::KILL);
                kill_at = Some(u64::MAX);
            }
            (Some((last_ok, t)), None) => {
                let last = last_ok.load(Ordering::SeqCst);
                if lease_lost || fence_due(last, now, t) {
                    if lease_lost {
                        eprintln!("interlock: the fence is lost: stopping COMMAND (self-fence)");
                    } else {
                        eprintln!(
                            "interlock: lease not renewed for {} ms: stopping COMMAND (self-fence)",
                            (now - last) / 1_000_000
                        );
                    }
                    signal_group(pgid, Signal::QUIT);
                    kill_at = Some(now + t.stop_within.as_nanos() as u64);
                }
            }
            _ => {}
        }
    }
}

/// `interlock fence-watchdog`: enforce the lease deadline from the
/// heartbeats `run` sends on standard input; stop COMMAND's process group
/// when it passes or when `run` is gone. Exits when COMMAND has exited.
pub fn watchdog(args: &WatchdogArgs) -> u8 {
    let timing = Timing::for_ttl(Duration::from_millis(args.ttl_ms));
    let fence_after = timing.fence_after;
    let stop_within = timing.stop_within.as_nanos() as u64;
    let mut last_ok: u64 = args.last_ok_ns.unwrap_or_else(now_ns);
    // The lease or its key is gone at etcd (`lost`), or the deadline
    // passed before COMMAND's PID came: fence as soon as it comes.
    let mut due = false;
    let mut target: Option<(Pid, OwnedFd)> = None;
    let mut buf = Vec::new();
    let mut eof = false;
    let mut kill_at: Option<u64> = None;
    loop {
        let deadline = match (kill_at, due, &target) {
            (Some(k), _, _) => Some(k),
            // Nothing to stop yet: wait for COMMAND's PID (or EOF).
            (None, true, None) => None,
            (None, true, Some(_)) => Some(0),
            (None, false, _) => Some(last_ok + fence_after.as_nanos() as u64),
        };
        let timeout = deadline.map(timeout_until);
        let (in_ready, exited) = {
            let stdin_fd = std::io::stdin();
            let mut fds = vec![PollFd::new(&stdin_fd, PollFlags::IN)];
            if eof {
                fds.clear();
            }
            let at = fds.len();
            if let Some((_, fd)) = &target {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return 1,
            }
            let in_ready = !eof && !fds[0].revents().is_empty();
            let exited = target.is_some() && !fds[at].revents().is_empty();
            (in_ready, exited)
        };
        if exited {
            if let (Some((pgid, _)), Some(_)) = (&target, kill_at) {
                signal_group(*pgid, Signal::KILL);
            }
            return 0;
        }
        if in_ready {
            let mut chunk = [0u8; 4096];
            match rustix::io::read(std::io::stdin().as_fd(), &mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => eof = true,
            }
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let mut words = line.split_whitespace();
                match (
                    words.next(),
                    words.next().and_then(|w| w.parse::<u64>().ok()),
                ) {
                    (Some("hb"), Some(ns)) => last_ok = last_ok.max(ns),
                    (Some("lost"), _) => due = true,
                    (Some("pid"), Some(pid)) if target.is_none() => {
                        let Some(pid) = Pid::from_raw(pid as i32) else {
                            continue;
                        };
                        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                        {
                            Ok(fd) => target = Some((pid, fd)),
                            // Already gone: nothing to guard.
                            Err(_) => return 0,
                        }
                    }
                    _ => {}
                }
            }
            if eof {
                let Some((pgid, _)) = &target else {
                    // `run` ended before COMMAND started: nothing to guard.
                    return 0;
                };
                if kill_at.is_none() {
                    eprintln!(
                        "interlock fence-watchdog: interlock run is gone: stopping COMMAND \
                         (self-fence)"
                    );
                    signal_group(*pgid, Signal::QUIT);
                    kill_at = Some(now_ns() + stop_within);
                }
            }
            continue;
        }
        let now = now_ns();
        match kill_at {
            Some(k) if now >= k => {
                if let Some((pgid, _)) = &target {
                    eprintln!(
                        "interlock fence-watchdog: COMMAND did not stop: SIGKILL to its group"
                    );
                    signal_group(*pgid, Signal::KILL);
                }
                kill_at = Some(u64::MAX / 2);
            }
            None if due || fence_due(last_ok, now, &timing) => {
                if due {
                    eprintln!(
                        "interlock fence-watchdog: the fence is lost: stopping COMMAND (self-fence)"
                    );
                } else {
                    eprintln!(
                        "interlock fence-watchdog: lease not renewed for {} ms: stopping COMMAND \
                         (self-fence)",
                        (now - last_ok) / 1_000_000
                    );
                }
                match &target {
                    Some((pgid, _)) => {
                        signal_group(*pgid, Signal::QUIT);
                        kill_at = Some(now + stop_within);
                    }
                    // COMMAND not started yet (it announces its PID before
                    // it execs): stop it the moment its PID comes.
                    None => due = true,
                }
            }
            _ => {}
        }
    }
}
