//! `interlock demo`: the outage of the case study, replayed end to end in a
//! temporary directory, and fixed.
//!
//! With PostgreSQL installed: initdb, start, commit rows, stop (SIGSTOP) a
//! backend and SIGKILL the postmaster, then `status`, the server's own
//! refusal, `fix`, `fix --yes`, a clean start and the rows. Without it, the
//! same story with the library's example server (the hidden `demo-server`
//! subcommand: a server on `DataDirLock` whose forked workers stay attached
//! to its segment as backends do).
//!
//! Everything started is tracked through a pidfd and stopped on the way
//! out, also after Ctrl-C or SIGTERM (read from a signalfd between steps);
//! the directory and this directory's segments and DSM files are removed.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interlock::process::{pidfd_exited, ProcFs};
use interlock::sys::signal::SignalFd;
use interlock::{DataDirLock, LockOptions, PmStatus, ShmId};
use interlock_doctor::{FixOptions, StatusOptions};
use interlock_format::pgcontrol::{minimal_control_file, DbState};
use interlock_format::shell::words;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::status::{paint, BOLD, DIM};

/// Arguments of `interlock demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The directory with `initdb`, `postgres` and `psql` [default: the
    /// newest /usr/lib/postgresql/N/bin, else the PATH's].
    #[arg(long, value_name = "DIR")]
    pub bindir: Option<PathBuf>,
    /// Replay it with the library's example server even if PostgreSQL is
    /// installed.
    #[arg(long)]
    pub without_postgres: bool,
}

const ROWS: usize = 1000;

#[derive(Debug)]
enum Stop {
    Interrupted,
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Stop>;

/// A process the demo started (or stopped), pinned by a pidfd.
struct Tracked {
    pid: i32,
    fd: OwnedFd,
    child: Option<Child>,
    /// A postmaster: asked for a fast shutdown first.
    postmaster: bool,
}

struct Demo {
    root: PathBuf,
    data: PathBuf,
    /// Who runs the server (PostgreSQL refuses root).
    user: Option<(u32, u32)>,
    signals: SignalFd,
    tracked: Vec<Tracked>,
    port: u16,
}

pub fn run(args: &DemoArgs) -> u8 {
    // Block SIGINT/SIGTERM/SIGHUP/SIGQUIT first: they are read between
    // steps, and the clean-up always runs. Children get their own process
    // group, so a terminal's Ctrl-C reaches only us.
    let signals = match SignalFd::for_forwarding() {
        Ok(s) => s,
        Err(e) => {
            anstream::eprintln!("interlock demo: signalfd: {e}");
            return crate::exit::UNKNOWN;
        }
    };
    let pg = if args.without_postgres {
        None
    } else {
        find_postgres(args.bindir.as_deref())
    };
    let mut demo = match Demo::new(signals, pg.is_some()) {
        Ok(d) => d,
        Err(e) => {
            anstream::eprintln!("interlock demo: {e}");
            return crate::exit::UNKNOWN;
        }
    };
    let result = match &pg {
        Some(bindir) => demo.postgres(bindir),
        None => demo.example_server(),
    };
    let code = match &result {
        Ok(()) => crate::exit::OK,
        Err(Stop::Interrupted) => {
            crate::out::outln!("\ninterrupted: cleaning up");
            130
        }
        Err(Stop::Failed(e)) => {
            anstream::eprintln!("\ninterlock demo: {e}");
            crate::exit::UNKNOWN
        }
    };
    demo.cleanup();
    code
}

/// Debian's newest PostgreSQL, else the PATH's.
fn find_postgres(given: Option<&Path>) -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = given {
        return has_all(d).then(|| d.to_path_buf());
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| has_all(p))
        .collect();
    debian.sort();
    if let Some((_, p)) = debian.pop() {
        return Some(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_all(d))
}

/// uid and gid of `name` from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let e = interlock::process::passwd_entry_at(Path::new("/"), |e| e.name == name)?;
    Some((e.uid, e.gid?))
}

fn say(n: u32, text: &str) {
    crate::out::outln!("\n{}", paint(BOLD, &format!("{n}. {text}")));
}

fn shell(cmd: &str) {
    crate::out::outln!("{}", paint(DIM, &format!("$ {cmd}")));
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

impl Demo {
    fn new(signals: SignalFd, postgres: bool) -> std::result::Result<Demo, String> {
        let root_user = rustix::process::geteuid().is_root();
        let user = if postgres && root_user {
            Some(user_ids("postgres").ok_or(
                "PostgreSQL refuses to run as root and there is no `postgres` user: run the demo as another user, or with --without-postgres",
            )?)
        } else {
            None
        };
        let root = std::env::temp_dir().join(format!("interlock-demo-{}", std::process::id()));
        fs::create_dir(&root).map_err(|e| format!("mkdir {}: {e}", root.display()))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let data = root.join("data");
        fs::create_dir(&data).map_err(|e| e.to_string())?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        // A port of our own: the socket lives in the directory (no TCP),
        // and 10–12 derive the segment key from the port.
        let port = 50_000 + (std::process::id() % 10_000) as u16;
        Ok(Demo {
            root,
            data,
            user,
            signals,
            tracked: Vec::new(),
            port,
        })
    }

    /// Stop if a signal arrived.
    fn check(&self) -> Result<()> {
        match self.signals.read() {
            Ok(Some(_)) => Err(Stop::Interrupted),
            _ => Ok(()),
        }
    }

    /// Sleep a little, watching for signals.
    fn pause(&self, d: Duration) -> Result<()> {
        std::thread::sleep(d);
        self.check()
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.process_group(0).stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            interlock::sys::proc::run_command_as(&mut cmd, uid, gid);
        }
        cmd
    }

    fn track(&mut self, pid: i32, child: Option<Child>, postmaster: bool) -> Result<()> {
        let p = Pid::from_raw(pid).ok_or("bad PID")?;
        let fd = pidfd_open(p, PidfdFlags::empty())?;
        self.tracked.push(Tracked {
            pid,
            fd,
            child,
            postmaster,
        });
        Ok(())
    }

    fn signal(&self, pid: i32, sig: Signal) {
        if let Some(t) = self.tracked.iter().find(|t| t.pid == pid) {
            let _ = pidfd_send_signal(&t.fd, sig);
        }
    }

    fn wait_exit(&mut self, pid: i32, limit: Duration) -> Result<bool> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(t) = self.tracked.iter_mut().find(|t| t.pid == pid) {
                if let Some(c) = t.child.as_mut() {
                    if c.try_wait()?.is_some() {
                        return Ok(true);
                    }
                } else if pidfd_exited(&t.fd) {
                    return Ok(true);
                }
            }
            self.pause(Duration::from_millis(20))?;
        }
        Ok(false)
    }

    fn diagnosis(&self) -> Result<interlock_doctor::StatusReport> {
        Ok(interlock_doctor::status(
            &self.data,
            &StatusOptions::default(),
        )?)
    }

    fn show_status(&self) -> Result<()> {
        shell(&words(&[
            OsStr::new("interlock"),
            OsStr::new("status"),
            self.data.as_os_str(),
        ]));
        crate::out::out!("{}", indent(&crate::status::render(&self.diagnosis()?)));
        Ok(())
    }

    /// `interlock fix`, then `interlock fix --yes`; whether it is ready.
    fn show_fix(&self) -> Result<bool> {
        let opts = FixOptions::default();
        shell(&words(&[
            OsStr::new("interlock"),
            OsStr::new("fix"),
            self.data.as_os_str(),
        ]));
        let plan = interlock_doctor::plan(&self.data, &opts)?;
        crate::out::out!("{}", indent(&crate::fix::text(&plan, None, false)));
        self.check()?;
        shell(&words(&[
            OsStr::new("interlock"),
            OsStr::new("fix"),
            OsStr::new("--yes"),
            self.data.as_os_str(),
        ]));
        let plan = interlock_doctor::plan(&self.data, &opts)?;
        let outcome = interlock_doctor::carry_out(&plan, &opts)?;
        crate::out::out!("{}", indent(&crate::fix::text(&plan, Some(&outcome), true)));
        Ok(outcome.ready)
    }

    // ------------------------------------------------------------ PostgreSQL

    fn postgres(&mut self, bindir: &Path) -> Result<()> {
        let version = Command::new(bindir.join("postgres"))
            .arg("--version")
            .output()?;
        crate::out::outln!(
            "interlock demo: the outage of the case study (\"pre-existing shared memory block ... is still in use\"),\nreplayed with {} ({}) in {}{}.",
            String::from_utf8_lossy(&version.stdout).trim(),
            bindir.display(),
            self.root.display(),
            if self.user.is_some() { ", as the postgres user" } else { "" }
        );

        say(1, "initdb");
        shell(&format!("initdb -D {}", self.data.display()));
        let out = self
            .command(bindir.join("initdb"))
            .args(["--no-sync", "-A", "trust", "-D"])
            .arg(&self.data)
            .output()?;
        if !out.status.success() {
            return Err(Stop::Failed(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        self.check()?;

        say(2, &format!("start the server and commit {ROWS} rows"));
        let pm = self
            .start_postgres(bindir, "server.log")?
            .map_err(Stop::Failed)?;
        crate::out::outln!("   postmaster PID {pm}");
        let sql = format!(
            "create table orders (id int primary key, note text); insert into orders select i, 'order ' || i from generate_series(1, {ROWS}) i"
        );
        shell(&format!("psql -c \"{sql}\""));
        crate::out::out!("{}", indent(&self.psql(bindir, &sql)?));

        say(
            3,
            "a backend stops responding, and the postmaster is killed",
        );
        let session = self
            .command(bindir.join("psql"))
            .args(self.psql_args())
            .args(["-c", "select pg_sleep(3600)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let spid = session.id() as i32;
        self.track(spid, Some(session), false)?;
        let procfs = ProcFs::default();
        let start = Instant::now();
        let backend = loop {
            let found = procfs.children(pm).into_iter().find(|&c| {
                procfs
                    .info(c)
                    .is_ok_and(|i| i.cmdline.contains("[local]") && i.cmdline.contains("SELECT"))
            });
            if let Some(b) = found {
                break b;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(Stop::Failed("the session's backend did not appear".into()));
            }
            self.pause(Duration::from_millis(20))?;
        };
        self.track(backend, None, false)?;
        shell(&format!(
            "kill -STOP {backend}    # the session's backend, stuck (as in uninterruptible I/O, or under a debugger)"
        ));
        self.signal(backend, Signal::STOP);
        // A stop takes effect asynchronously; the backend must be stopped
        // before its postmaster dies, or it would notice and exit.
        let start = Instant::now();
        while !procfs.stat(backend).is_ok_and(|st| st.state == b'T')
            && start.elapsed() < Duration::from_secs(5)
        {
            self.pause(Duration::from_millis(5))?;
        }
        shell(&format!(
            "kill -KILL {pm}    # the postmaster, killed (the case study's OOM killer)"
        ));
        self.signal(pm, Signal::KILL);
        self.wait_exit(pm, Duration::from_secs(10))?;
        // The other children notice their postmaster's death and exit.
        self.wait_for_holders(1)?;

        say(4, "what interlock says");
        self.show_status()?;

        say(5, "what PostgreSQL says when started now");
        shell(&format!("postgres -D {}", self.data.display()));
        match self.start_postgres(bindir, "refused.log")? {
            Ok(pid) => {
                return Err(Stop::Failed(format!(
                    "the server started (PID {pid}) alongside the stuck backend"
                )))
            }
            Err(log) => {
                for l in log
                    .lines()
                    .filter(|l| l.contains("FATAL") || l.contains("HINT"))
                {
                    crate::out::outln!("   {l}");
                }
            }
        }

        say(
            6,
            "the safe fix: only the old server's processes, then the server cleans up",
        );
        if !self.show_fix()? {
            return Err(Stop::Failed("fix did not make the directory ready".into()));
        }

        say(7, "start again, and count the rows");
        let pm = self
            .start_postgres(bindir, "server2.log")?
            .map_err(Stop::Failed)?;
        crate::out::outln!("   postmaster PID {pm}; crash recovery ran:");
        let log = fs::read_to_string(self.root.join("server2.log")).unwrap_or_default();
        for l in log.lines().filter(|l| {
            l.contains("not properly shut down")
                || l.contains("redo done")
                || l.contains("ready to accept")
        }) {
            crate::out::outln!("   {l}");
        }
        shell("psql -c \"select count(*) from orders\"");
        let n = self.psql(bindir, "select count(*) from orders")?;
        crate::out::outln!("   {n} rows: all {ROWS} committed before the crash are there");
        if n != ROWS.to_string() {
            return Err(Stop::Failed(format!("{n} rows, not {ROWS}")));
        }

        say(8, "stop the server and remove the directory");
        self.signal(pm, Signal::INT);
        self.wait_exit(pm, Duration::from_secs(30))?;
        Ok(())
    }

    fn psql_args(&self) -> Vec<String> {
        vec![
            "-X".into(),
            "-At".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-p".into(),
            self.port.to_string(),
            "-d".into(),
            "postgres".into(),
            "-h".into(),
            self.data.display().to_string(),
        ]
    }

    fn psql(&self, bindir: &Path, sql: &str) -> Result<String> {
        let out = self
            .command(bindir.join("psql"))
            .args(self.psql_args())
            .args(["-c", sql])
            .output()?;
        if !out.status.success() {
            return Err(Stop::Failed(format!(
                "psql: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Start `postgres`; `Ok(Ok(pid))` once ready, `Ok(Err(log))` if it exited.
    fn start_postgres(
        &mut self,
        bindir: &Path,
        log: &str,
    ) -> Result<std::result::Result<i32, String>> {
        let log = self.root.join(log);
        let file = fs::File::create(&log)?;
        let child = self
            .command(bindir.join("postgres"))
            .arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=",
                "-k",
            ])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()?;
        let pid = child.id() as i32;
        self.track(pid, Some(child), true)?;
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to accept connections") {
                return Ok(Ok(pid));
            }
            if self.wait_exit(pid, Duration::from_millis(1))? {
                let mut s = String::new();
                fs::File::open(&log)?.read_to_string(&mut s)?;
                return Ok(Err(s));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(Stop::Failed(format!(
                    "postgres neither started nor exited:\n{text}"
                )));
            }
            self.pause(Duration::from_millis(20))?;
        }
    }

    /// Wait until the segments of the directory have `n` attachments in all.
    fn wait_for_holders(&self, n: u64) -> Result<()> {
        let start = Instant::now();
        loop {
            let r = self.diagnosis()?;
            let attached: u64 = r
                .segments
                .iter()
                .filter(|s| s.belongs == interlock_doctor::Whose::ThisDirectory)
                .map(|s| s.nattch)
                .sum();
            if attached <= n || start.elapsed() > Duration::from_secs(10) {
                return Ok(());
            }
            self.pause(Duration::from_millis(50))?;
        }
    }

    // ------------------------------------------------------- example server

    fn example_server(&mut self) -> Result<()> {
        crate::out::outln!(
            "interlock demo: no PostgreSQL found (give --bindir), so the outage of the case study is replayed\nwith the library's example server, whose workers attach to its segment as backends do, in {}.",
            self.root.display()
        );
        // What PostgreSQL's checks look for; the server is ours.
        fs::write(self.data.join("PG_VERSION"), "16\n")?;
        fs::create_dir(self.data.join("global"))?;
        fs::write(
            self.data.join("global/pg_control"),
            minimal_control_file(16, DbState::ShutDown).expect("16 is known"),
        )?;

        say(
            1,
            &format!("start the example server, which commits {ROWS} rows"),
        );
        let (pm, workers) = self.start_example()?.map_err(Stop::Failed)?;
        crate::out::outln!(
            "   server PID {pm}, workers {} and {}; rows in {}",
            workers[0],
            workers[1],
            self.data.join("rows").display()
        );

        say(2, "a worker stops responding, and the server is killed");
        shell(&format!("kill -STOP {}", workers[0]));
        self.signal(workers[0], Signal::STOP);
        let start = Instant::now();
        while !ProcFs::default()
            .stat(workers[0])
            .is_ok_and(|st| st.state == b'T')
            && start.elapsed() < Duration::from_secs(5)
        {
            self.pause(Duration::from_millis(5))?;
        }
        shell(&format!("kill -KILL {pm}"));
        self.signal(pm, Signal::KILL);
        self.wait_exit(pm, Duration::from_secs(10))?;

        say(3, "what interlock says");
        self.show_status()?;

        say(4, "what the server says when started now");
        shell(&format!("interlock demo-server {}", self.data.display()));
        match self.start_example()? {
            Ok((pid, _)) => {
                return Err(Stop::Failed(format!(
                    "the server started (PID {pid}) alongside the old workers"
                )))
            }
            Err(said) => crate::out::out!("{}", indent(&said)),
        }

        say(5, "the safe fix");
        if !self.show_fix()? {
            return Err(Stop::Failed("fix did not make the directory ready".into()));
        }

        say(6, "start again, and count the rows");
        let (pm, _) = self.start_example()?.map_err(Stop::Failed)?;
        let n = fs::read_to_string(self.data.join("rows"))?.lines().count();
        crate::out::outln!("   server PID {pm}: {n} rows, all {ROWS} there");

        say(7, "stop the server and remove the directory");
        self.signal(pm, Signal::TERM);
        self.wait_exit(pm, Duration::from_secs(10))?;
        Ok(())
    }

    /// Start `interlock demo-server`; its PID and workers once ready, or
    /// what it said when it refused.
    fn start_example(&mut self) -> Result<std::result::Result<(i32, Vec<i32>), String>> {
        let mut child = self
            .command(std::env::current_exe()?)
            .arg("demo-server")
            .arg(&self.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        self.track(pid, Some(child), false)?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"READY") {
            let workers: Vec<i32> = f[1..].iter().filter_map(|w| w.parse().ok()).collect();
            for &w in &workers {
                self.track(w, None, false)?;
            }
            return Ok(Ok((pid, workers)));
        }
        self.wait_exit(pid, Duration::from_secs(10))?;
        let mut said = String::new();
        stderr.read_to_string(&mut said)?;
        Ok(Err(said))
    }

    // --------------------------------------------------------------- clean-up

    /// Stop everything started, then remove this directory's segments, DSM
    /// files and the directory.
    fn cleanup(&mut self) {
        for t in &self.tracked {
            if t.postmaster {
                let _ = pidfd_send_signal(&t.fd, Signal::INT);
            }
        }
        let start = Instant::now();
        while self
            .tracked
            .iter()
            .any(|t| t.postmaster && !pidfd_exited(&t.fd))
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for t in &self.tracked {
            let _ = pidfd_send_signal(&t.fd, Signal::CONT);
            let _ = pidfd_send_signal(&t.fd, Signal::KILL);
        }
        for t in self.tracked.iter_mut() {
            if let Some(c) = t.child.as_mut() {
                let _ = c.wait();
            }
        }
        let start = Instant::now();
        while self.tracked.iter().any(|t| !pidfd_exited(&t.fd))
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let uid = fs::metadata(&self.data).map(|m| m.uid()).ok();
        if let (Some(uid), Ok(text)) = (uid, fs::read_to_string("/proc/sysvipc/shm")) {
            for e in interlock_format::sysvipc::parse_shm_table(&text).unwrap_or_default() {
                if e.uid != uid {
                    continue;
                }
                // The kernel may lag the last exit by a moment.
                for _ in 0..50 {
                    match interlock::segment::analyze(ShmId(e.shmid), &self.data) {
                        interlock::segment::SegmentState::Unattached { header } => {
                            interlock::segment::cleanup_dsm(header.dsm_control, uid);
                            let _ = interlock::sys::shm::remove(ShmId(e.shmid));
                            break;
                        }
                        interlock::segment::SegmentState::Attached { .. } => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        _ => break,
                    }
                }
            }
        }
        match fs::remove_dir_all(&self.root) {
            Ok(()) => crate::out::outln!("   removed {}", self.root.display()),
            Err(e) => anstream::eprintln!("   could not remove {}: {e}", self.root.display()),
        }
    }
}

// ---------------------------------------------------- the example server

/// `interlock demo-server DIR` (hidden): the library's example server. It
/// takes the directory as PostgreSQL would, commits the rows once, starts
/// two workers that attach to its segment, prints `READY W1 W2`, and serves
/// until SIGTERM or SIGINT.
pub fn example_server(dir: &Path) -> u8 {
    // Started by the demo, which blocks the signals it watches.
    let _ = interlock::sys::signal::unblock_all();
    let mut lock = match DataDirLock::acquire_with(dir, &LockOptions::new().port(5999)) {
        Ok(l) => l,
        Err(e) => {
            anstream::eprintln!("FATAL:  {e}");
            if let Some(h) = e.hint() {
                anstream::eprintln!("HINT:  {h}");
            }
            return 1;
        }
    };
    let rows = dir.join("rows");
    if !rows.exists() {
        let text: String = (1..=ROWS).map(|i| format!("row {i}\n")).collect();
        let ok = fs::File::create(&rows).and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = ok {
            anstream::eprintln!("FATAL:  could not write {}: {e}", rows.display());
            return 1;
        }
    }
    // Forked, not exec'd: each worker inherits the server's attachment to
    // its segment, as a PostgreSQL backend does, and can be pointed at no
    // other segment. Before the signalfd, so they do not inherit its block.
    let mut workers = Vec::new();
    for _ in 0..2 {
        match interlock::sys::proc::fork_idle() {
            Ok(w) => workers.push(w),
            Err(e) => {
                anstream::eprintln!("FATAL:  could not start a worker: {e}");
                stop_workers(&workers);
                return 1;
            }
        }
    }
    let signals = SignalFd::new(&[Signal::TERM.as_raw(), Signal::INT.as_raw()]).ok();
    let _ = lock.set_status(PmStatus::Ready);
    crate::out::outln!(
        "READY {}",
        workers
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if lock.recheck_if_due().is_err() {
            break;
        }
        if signals
            .as_ref()
            .is_some_and(|s| s.read().ok().flatten().is_some())
        {
            break;
        }
    }
    let _ = lock.set_status(PmStatus::Stopping);
    stop_workers(&workers);
    0
}

/// SIGKILL the example server's forked workers and reap them.
fn stop_workers(workers: &[i32]) {
    for &w in workers {
        if let Some(pid) = Pid::from_raw(w) {
            let _ = rustix::process::kill_process(pid, Signal::CONT);
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}
