//! One cell of the matrix: a PostgreSQL build × a scenario, run in its own
//! directory, with every process it starts, every mount it makes and every
//! segment its servers leave undone when it ends, however it ends.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use interlock::segment::{self, SegmentState};
use interlock::sys::shm;
use interlock::ShmId;
use rustix::process::Signal;
use serde::Serialize;
use serde_json::Value;

use crate::env::{Build, Env};

pub type R<T = ()> = Result<T, String>;

/// Rows every cluster starts with (committed and checkpointed in the
/// template), and the rows a scenario adds before its crash (committed,
/// in WAL only: crash recovery must replay them).
pub const TEMPLATE_ROWS: i64 = 1000;
pub const ROWS_AFTER_INSERT: i64 = 1500;

/// A data directory of this cell, configured for its own port and with
/// its socket in the directory itself.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub data: PathBuf,
    pub port: u16,
    /// More arguments of every start (`-p N`: a port the configuration
    /// does not say).
    pub args: Vec<String>,
}

/// A running postmaster this cell started (its direct child).
#[derive(Debug)]
pub struct Server {
    pub pid: i32,
}

/// What `interlock status --json` predicted.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub exit: i32,
    pub verdict: String,
    pub safe_to_start: bool,
    pub postgres_would_say: Option<String>,
    /// The key the server will create its segment at, when status is sure.
    pub creates_at: Option<u64>,
    pub findings: Vec<String>,
}

/// What the `postgres` binary did when started.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSaid {
    pub started: bool,
    /// The FATAL primary message as logged, without `FATAL:  `.
    pub fatal: Option<String>,
    /// The key of the segment it created (line 7), if it started.
    pub key: Option<u64>,
}

/// One prediction compared with one real start.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub step: String,
    pub status: Prediction,
    pub server: ServerSaid,
    pub agreed: bool,
}

/// `interlock fix --yes` and the start after it.
#[derive(Debug, Clone, Serialize)]
pub struct FixCheck {
    pub exit: i32,
    pub ready: bool,
    /// Each step fix carried out, in its words.
    pub steps: Vec<String>,
    pub started: bool,
    pub rows_expected: i64,
    pub rows_found: Option<i64>,
}

#[derive(Debug)]
enum Kind {
    Postmaster,
    /// `interlock hold`: SIGTERM is passed on to its command.
    Hold,
    Other,
}

#[derive(Debug)]
struct Tracked {
    pid: i32,
    start_ticks: u64,
    child: Option<Child>,
    kind: Kind,
    /// A session's stdin, kept open so that psql stays connected.
    stdin: Option<ChildStdin>,
}

/// The cell: its directory, what it started, what it saw.
#[derive(Debug)]
pub struct Cell<'e> {
    pub env: &'e Env,
    pub build: &'e Build,
    pub dir: PathBuf,
    port_base: u16,
    tracked: Vec<Tracked>,
    mounts: Vec<PathBuf>,
    clusters: Vec<PathBuf>,
    /// Segments the scenario made itself (another user's squatter).
    segments: Vec<i32>,
    dsm_before: BTreeSet<String>,
    logs: usize,
    pub checks: Vec<Check>,
    pub fix: Option<FixCheck>,
    /// Each disagreement or failed expectation, in words.
    pub problems: Vec<String>,
    /// What the scenario observed that the table should show.
    pub notes: Vec<String>,
}

fn stat_of(pid: i32) -> Option<interlock_format::procstat::ProcStat> {
    interlock::process::ProcFs::new("/proc").stat(pid).ok()
}

pub use interlock_testkit::{running, signal};

fn shm_table() -> Vec<interlock_format::sysvipc::ShmEntry> {
    fs::read_to_string("/proc/sysvipc/shm")
        .ok()
        .and_then(|t| interlock_format::sysvipc::parse_shm_table(&t).ok())
        .unwrap_or_default()
}

pub fn nattch(shmid: i32) -> Option<u64> {
    shm_table()
        .into_iter()
        .find(|e| e.shmid == shmid)
        .map(|e| e.nattch)
}

/// The text of the FATAL message in a server log, without `FATAL:  `. The
/// server's stderr log puts a tab before each further line of a message
/// (elog.c's `append_with_tabs`); bogus data in a lock file spans lines.
pub fn fatal_of(log: &str) -> Option<String> {
    let at = log.find("FATAL:  ")? + "FATAL:  ".len();
    let mut lines = log[at..].split('\n');
    let mut msg = lines.next().unwrap_or("").to_string();
    for l in lines {
        let Some(more) = l.strip_prefix('\t') else {
            break;
        };
        msg.push('\n');
        msg.push_str(more);
    }
    Some(msg)
}

impl<'e> Cell<'e> {
    pub fn new(env: &'e Env, build: &'e Build, name: &str, port_base: u16) -> R<Self> {
        let dir = env.work.join(name);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Cell {
            env,
            build,
            dir,
            port_base,
            tracked: Vec::new(),
            mounts: Vec::new(),
            clusters: Vec::new(),
            segments: Vec::new(),
            dsm_before: interlock_testkit::dsm_files(),
            logs: 0,
            checks: Vec::new(),
            fix: None,
            problems: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// The `n`th port of this cell.
    pub fn port(&self, n: u16) -> u16 {
        self.port_base + n
    }

    pub fn major(&self) -> u32 {
        self.build.major
    }

    pub fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>, as_postgres: bool) -> Command {
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null()).process_group(0);
        interlock::sys::proc::unblock_signals_in(&mut cmd);
        if as_postgres {
            interlock::sys::proc::run_command_as(&mut cmd, self.env.pg_uid, self.env.pg_gid);
        }
        cmd
    }

    fn track(&mut self, pid: i32, child: Option<Child>, kind: Kind) {
        let start_ticks = stat_of(pid).map(|s| s.start_time_ticks).unwrap_or(0);
        self.tracked.push(Tracked {
            pid,
            start_ticks,
            child,
            kind,
            stdin: None,
        });
    }

    /// Track a process the scenario did not start (a server's child), so
    /// the clean-up kills it if it is still that process.
    pub fn track_pid(&mut self, pid: i32) {
        self.track(pid, None, Kind::Other);
    }

    fn log_path(&mut self, what: &str) -> PathBuf {
        self.logs += 1;
        self.dir.join(format!("{:02}-{what}.log", self.logs))
    }

    // ---- clusters --------------------------------------------------------

    /// A copy of the build's template cluster at `dir/data`, on `port`.
    pub fn cluster(&mut self, name: &str, port: u16) -> R<Cluster> {
        let parent = self.dir.join(name);
        fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let data = parent.join("data");
        run(Command::new("cp")
            .arg("-a")
            .arg(&self.env.template(self.build)?)
            .arg(&data))?;
        self.adopt(&data, port)
    }

    /// A copy of the template as the first directory of a new tmpfs, so
    /// that two such copies have the same inode number on different file
    /// systems (the cloud disks of the case study: every data directory's
    /// inode is 4096 there).
    pub fn cluster_on_tmpfs(&mut self, name: &str, port: u16) -> R<Cluster> {
        let mnt = self.dir.join(name);
        fs::create_dir_all(&mnt).map_err(|e| format!("{}: {e}", mnt.display()))?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs"])
            .arg(&mnt))?;
        self.mounts.push(mnt.clone());
        let data = mnt.join("data");
        fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let mut src = self.env.template(self.build)?.into_os_string();
        src.push("/.");
        run(Command::new("cp").arg("-a").arg(src).arg(&data))?;
        run(Command::new("chown")
            .arg(format!("{}:{}", self.env.pg_uid, self.env.pg_gid))
            .arg(&data))?;
        fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        self.adopt(&data, port)
    }

    /// Two clusters whose first probe key is the same: on 10–12 the same
    /// port; on 13+ the same inode number on two file systems.
    pub fn twins(&mut self) -> R<(Cluster, Cluster)> {
        if self.major() <= 12 {
            let p = self.port(0);
            Ok((self.cluster("a", p)?, self.cluster("b", p)?))
        } else {
            let a = self.cluster_on_tmpfs("a", self.port(0))?;
            let b = self.cluster_on_tmpfs("b", self.port(1))?;
            let (ia, ib) = (inode(&a.data)?, inode(&b.data)?);
            if ia != ib {
                return Err(format!(
                    "tmpfs gave the twins different inodes ({ia}, {ib}): cannot build the scenario"
                ));
            }
            Ok((a, b))
        }
    }

    /// Make `data` a cluster of this cell: its port, its socket in itself,
    /// a log line prefix that starts with the time.
    pub fn adopt(&mut self, data: &Path, port: u16) -> R<Cluster> {
        let conf = data.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        writeln!(
            f,
            "\n# interlock-matrix\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nlog_line_prefix = '%m [%p] '",
            data.display()
        )
        .map_err(|e| e.to_string())?;
        self.clusters.push(data.to_path_buf());
        Ok(Cluster {
            data: data.to_path_buf(),
            port,
            args: Vec::new(),
        })
    }

    /// The first key PostgreSQL probes for this cluster.
    pub fn first_key(&self, c: &Cluster) -> R<i32> {
        Ok(if self.major() <= 12 {
            interlock::pg::key_for_port(c.port).0
        } else {
            interlock::pg::key_for_inode(inode(&c.data)?).0
        })
    }

    // ---- servers ---------------------------------------------------------

    /// Start the `postgres` binary on `c`: running once it logs that it is
    /// ready, or the log of its failure.
    pub fn start(&mut self, c: &Cluster) -> R<Result<Server, String>> {
        let log = self.log_path("postgres");
        let file = fs::File::create(&log).map_err(|e| e.to_string())?;
        let out = file.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .command(self.build.bindir.join("postgres"), true)
            .arg("-D")
            .arg(&c.data)
            .args(&c.args)
            .stdout(out)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("{}/postgres: {e}", self.build.bindir.display()))?;
        let pid = child.id() as i32;
        self.track(pid, Some(child), Kind::Postmaster);
        let t0 = Instant::now();
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to accept connections") {
                return Ok(Ok(Server { pid }));
            }
            if self.reap(pid)? {
                let text = fs::read_to_string(&log).unwrap_or_default();
                return Ok(Err(text));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "postgres neither started nor exited in 60 s:\n{text}"
                ));
            }
            self.env.pause(Duration::from_millis(20))?;
        }
    }

    /// Start `c`, which must start.
    pub fn start_ok(&mut self, c: &Cluster) -> R<Server> {
        self.start(c)?
            .map_err(|log| format!("postgres did not start on {}:\n{log}", c.data.display()))
    }

    /// Whether our child `pid` has exited (reaping it).
    fn reap(&mut self, pid: i32) -> R<bool> {
        let t = self
            .tracked
            .iter_mut()
            .find(|t| t.pid == pid)
            .ok_or_else(|| format!("PID {pid} is not ours"))?;
        match t.child.as_mut() {
            Some(c) => Ok(c.try_wait().map_err(|e| e.to_string())?.is_some()),
            None => Ok(!running(pid)),
        }
    }

    /// Wait until our child `pid` has exited and is reaped.
    pub fn wait_exit(&mut self, pid: i32, limit: Duration) -> R<bool> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.reap(pid)? {
                return Ok(true);
            }
            self.env.pause(Duration::from_millis(20))?;
        }
        Ok(false)
    }

    /// Fast shutdown (SIGINT) and wait.
    pub fn stop(&mut self, s: Server) -> R {
        signal(s.pid, Signal::INT);
        if !self.wait_exit(s.pid, Duration::from_secs(60))? {
            return Err(format!("postmaster {} did not shut down in 60 s", s.pid));
        }
        Ok(())
    }

    /// SIGKILL the postmaster and reap it: its lock file then names a PID
    /// that is gone (a zombie would still count as alive to the server).
    pub fn kill_postmaster(&mut self, s: Server) -> R {
        signal(s.pid, Signal::KILL);
        if !self.wait_exit(s.pid, Duration::from_secs(10))? {
            return Err(format!("postmaster {} survived SIGKILL", s.pid));
        }
        Ok(())
    }

    /// SIGSTOP `victims`, SIGKILL the postmaster, and wait until the other
    /// children have left the segment: what remains attached is exactly the
    /// victims.
    pub fn crash_leaving_stopped(&mut self, c: &Cluster, s: Server, victims: &[i32]) -> R {
        let shmid = line7(c)?.1;
        for &v in victims {
            self.track_pid(v);
            signal(v, Signal::STOP);
            self.wait_until("the process to stop", |_| {
                interlock_testkit::state_of(v) == Some('T')
            })?;
        }
        self.kill_postmaster(s)?;
        let n = victims.len() as u64;
        self.wait_until("the other children to exit", |_| {
            nattch(shmid).unwrap_or(0) <= n
        })
    }

    pub fn wait_until(&self, what: &str, mut f: impl FnMut(&Self) -> bool) -> R {
        let t0 = Instant::now();
        while !f(self) {
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("timed out waiting for {what}"));
            }
            self.env.pause(Duration::from_millis(20))?;
        }
        Ok(())
    }

    /// Children of `pm` whose command line contains `needle`.
    pub fn children_named(&self, pm: i32, needle: &str) -> Vec<i32> {
        interlock_testkit::children_named(pm, needle)
    }

    // ---- clients ---------------------------------------------------------

    fn psql_command(&self, c: &Cluster) -> Command {
        let mut cmd = self.command(&self.env.psql, true);
        cmd.args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-h")
        .arg(&c.data)
        .arg("-p")
        .arg(c.port.to_string());
        cmd
    }

    pub fn psql(&self, c: &Cluster, sql: &str) -> R<String> {
        let out = self
            .psql_command(c)
            .arg("-c")
            .arg(sql)
            .output()
            .map_err(|e| format!("{}: {e}", self.env.psql.display()))?;
        if !out.status.success() {
            return Err(format!(
                "psql -c {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn rows(&self, c: &Cluster) -> R<i64> {
        let n = self.psql(c, "select count(*) from t")?;
        n.parse().map_err(|_| format!("count(*) printed {n:?}"))
    }

    /// Commit rows 1001–1500: in WAL, not yet in a checkpoint.
    pub fn insert_rows(&self, c: &Cluster) -> R {
        self.psql(c, "insert into t select generate_series(1001, 1500)")?;
        Ok(())
    }

    /// A psql session that stays connected; its backend's PID.
    pub fn session(&mut self, c: &Cluster) -> R<i32> {
        let mut child = self
            .psql_command(c)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let pid = child.id() as i32;
        self.track(pid, Some(child), Kind::Other);
        writeln!(stdin, "select pg_backend_pid();").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        self.tracked.last_mut().expect("just tracked").stdin = Some(stdin);
        let backend: i32 = line
            .trim()
            .parse()
            .map_err(|_| format!("pg_backend_pid() printed {line:?}"))?;
        self.track_pid(backend);
        Ok(backend)
    }

    /// A process of the postgres user that has nothing to do with any
    /// cluster (`sleep`).
    pub fn bystander(&mut self) -> R<i32> {
        let child = self
            .command("sleep", true)
            .arg("600")
            .spawn()
            .map_err(|e| e.to_string())?;
        let pid = child.id() as i32;
        self.track(pid, Some(child), Kind::Other);
        Ok(pid)
    }

    /// `interlock hold DIR -- sleep 600`, once it holds.
    pub fn hold(&mut self, c: &Cluster) -> R<i32> {
        self.hold_with(c, &[])
    }

    /// `interlock hold ARGS DIR -- sleep 600`, once its segment exists.
    pub fn hold_with(&mut self, c: &Cluster, args: &[&str]) -> R<i32> {
        let log = self.log_path("hold");
        let file = fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = self
            .command(&self.env.interlock, false)
            .arg("hold")
            .args(args)
            .arg(&c.data)
            .args(["--", "sleep", "600"])
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| e.to_string())?;
        let pid = child.id() as i32;
        self.track(pid, Some(child), Kind::Hold);
        let lock = c.data.join("postmaster.pid");
        let t0 = Instant::now();
        loop {
            let held = if args.contains(&"--no-lock-file") {
                self.attached_segment_of(c)
            } else {
                line7(c).is_ok()
            };
            if held {
                return Ok(pid);
            }
            if self.reap(pid)? || t0.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "interlock hold did not hold {}: {}",
                    lock.display(),
                    fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            self.env.pause(Duration::from_millis(20))?;
        }
    }

    /// Whether a segment of `c` has processes attached.
    fn attached_segment_of(&self, c: &Cluster) -> bool {
        shm_table().iter().any(|e| {
            e.nattch > 0
                && matches!(
                    segment::analyze(ShmId(e.shmid), &c.data),
                    SegmentState::Attached { .. }
                )
        })
    }

    /// End `interlock hold` as an operator would (SIGTERM, passed on to its
    /// command) and wait for it.
    pub fn release(&mut self, hold: i32) -> R {
        signal(hold, Signal::TERM);
        if !self.wait_exit(hold, Duration::from_secs(10))? {
            return Err(format!("interlock hold {hold} did not exit on SIGTERM"));
        }
        Ok(())
    }

    /// `interlock fix --yes` on a directory held by `interlock hold`: the
    /// hold must survive (it is a maintenance command's, not a crash's).
    pub fn fix_refuses(&mut self, c: &Cluster, hold: i32) -> R {
        let (exit, v) = self.interlock(&["fix", "--yes"], c)?;
        let alive = running(hold) && self.attached_segment_of(c);
        self.notes.push(format!(
            "fix on the held directory: exit {exit}, refused: {}",
            v["plan"]["refused"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|r| r["code"].as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ));
        if exit == 0 || !alive {
            self.problem(format!(
                "interlock fix --yes on a held directory exited {exit}; hold still holding: {alive}; plan: {}",
                v["plan"]
            ));
        }
        Ok(())
    }

    /// A segment of another user (`nobody`) on `key`, as a squatter would
    /// leave it.
    pub fn foreign_segment(&mut self, key: i32) -> R<i32> {
        let py = format!(
            "import ctypes, sys\nr = ctypes.CDLL(None, use_errno=True).shmget({key}, 1024, 0o3600)\n\
             sys.exit('shmget: ' + __import__('os').strerror(ctypes.get_errno())) if r < 0 else print(r)"
        );
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--", "python3", "-c", &py])
            .output()
            .map_err(|e| format!("runuser: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "could not create nobody's segment on key {key}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let id: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "shmget printed no id".to_string())?;
        self.segments.push(id);
        Ok(id)
    }

    // ---- the tool --------------------------------------------------------

    fn interlock(&self, args: &[&str], c: &Cluster) -> R<(i32, Value)> {
        let out = Command::new(&self.env.interlock)
            .args(args)
            .arg(&c.data)
            .arg("--json")
            .arg("--postgres")
            .arg(self.build.bindir.join("postgres"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.env.interlock.display()))?;
        let code = out.status.code().unwrap_or(-1);
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "interlock {} printed no JSON ({e}); exit {code}; stderr: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        Ok((code, v))
    }

    pub fn status(&self, c: &Cluster) -> R<Prediction> {
        let (exit, r) = self.interlock(&["status"], c)?;
        Ok(Prediction {
            exit,
            verdict: r["verdict"].as_str().unwrap_or("?").to_string(),
            safe_to_start: r["safe_to_start"].as_bool().unwrap_or(false),
            postgres_would_say: r["postgres_would_say"].as_str().map(str::to_string),
            creates_at: r["probe"]["creates_at"].as_u64(),
            findings: r["findings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["code"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Ask `status`, then start the server, and record whether they agree.
    /// `unsafe_start`: whether the scenario knows that processes of an
    /// earlier server stay attached where the new one cannot see them
    /// (`status` must then say `safe_to_start: false`). Returns the server
    /// if it started.
    pub fn probe(&mut self, c: &Cluster, step: &str, unsafe_start: bool) -> R<Option<Server>> {
        let status = self.status(c)?;
        let started = self.start(c)?;
        let server = ServerSaid {
            started: started.is_ok(),
            fatal: started.as_ref().err().and_then(|log| fatal_of(log)),
            key: match started {
                Ok(_) => Some(line7(c)?.0),
                Err(_) => None,
            },
        };
        let mut agreed = match status.verdict.as_str() {
            "will_start" => server.started,
            "blocked" | "running" => {
                !server.started
                    && server.fatal.is_some()
                    && server.fatal == status.postgres_would_say
            }
            _ => false,
        };
        if !agreed {
            self.problem(format!(
                "{step}: status said {} ({}), the server {}",
                status.verdict,
                status.postgres_would_say.as_deref().unwrap_or("no FATAL"),
                match &server.fatal {
                    _ if server.started => "started".to_string(),
                    Some(f) => format!("said FATAL: {f}"),
                    None => "exited without a FATAL line".to_string(),
                }
            ));
        }
        if let (Some(k), Some(p)) = (server.key, status.creates_at) {
            if k != p {
                agreed = false;
                self.problem(format!(
                    "{step}: status said the server creates its segment at key {p}, it took {k}"
                ));
            }
        }
        if server.started && status.safe_to_start == unsafe_start {
            agreed = false;
            self.problem(format!(
                "{step}: status said safe_to_start {}, but processes of the earlier server are {}attached where the new server cannot see them",
                status.safe_to_start,
                if unsafe_start { "" } else { "not " }
            ));
        }
        self.checks.push(Check {
            step: step.to_string(),
            status,
            server,
            agreed,
        });
        Ok(started.ok())
    }

    /// The end of every scenario: if the last check's prediction was not a
    /// safe start (blocked, or started beside an earlier server's
    /// processes), `interlock fix --yes`, then a start; in every case the
    /// rows are counted. `server`: a server of `c` already running. `spared`:
    /// processes that hold nothing of `c` and must be alive afterwards.
    pub fn finish(&mut self, c: &Cluster, server: Option<Server>, rows: i64, spared: &[i32]) -> R {
        let safe = self
            .checks
            .last()
            .is_some_and(|k| k.status.exit == 0 && (k.server.started || server.is_some()));
        let server = if safe {
            match server {
                Some(s) => Some(s),
                None => Some(self.start_ok(c)?),
            }
        } else {
            if let Some(s) = server {
                self.stop(s)?;
            }
            let (exit, v) = self.interlock(&["fix", "--yes"], c)?;
            let steps = v["outcome"]["steps"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            format!(
                                "{}: {}",
                                s["result"].as_str().unwrap_or("?"),
                                s["what"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ready = v["outcome"]["ready"].as_bool().unwrap_or(false);
            if exit != 0 || !ready {
                self.problem(format!(
                    "interlock fix --yes exited {exit} (ready: {ready}); refused: {}",
                    v["plan"]["refused"]
                ));
            }
            self.fix = Some(FixCheck {
                exit,
                ready,
                steps,
                started: false,
                rows_expected: rows,
                rows_found: None,
            });
            match self.start(c)? {
                Ok(s) => {
                    if let Some(f) = self.fix.as_mut() {
                        f.started = true;
                    }
                    Some(s)
                }
                Err(log) => {
                    self.problem(format!(
                        "after fix the server did not start: {}",
                        fatal_of(&log).unwrap_or(log)
                    ));
                    None
                }
            }
        };
        for &p in spared {
            if !running(p) {
                self.problem(format!(
                    "PID {p}, which holds nothing of this directory, is gone"
                ));
            }
        }
        let Some(s) = server else {
            return Ok(());
        };
        let found = self.rows(c)?;
        if let Some(f) = self.fix.as_mut() {
            f.rows_found = Some(found);
        }
        if found != rows {
            self.problem(format!("{found} rows after the restart, {rows} committed"));
        }
        self.notes.push(format!("{found} rows"));
        self.stop(s)
    }

    /// Run `interlock fix --yes` on a directory where nothing must be done
    /// (a running server): it must exit 0 and leave `pm` running.
    pub fn fix_leaves_alone(&mut self, c: &Cluster, pm: i32) -> R {
        let (exit, v) = self.interlock(&["fix", "--yes"], c)?;
        if exit != 0 || !running(pm) {
            self.problem(format!(
                "interlock fix --yes on a running server exited {exit}, postmaster running: {}; plan: {}",
                running(pm),
                v["plan"]
            ));
        }
        Ok(())
    }

    // ---- clean-up --------------------------------------------------------

    fn clean_up(&mut self) {
        let mut tracked = std::mem::take(&mut self.tracked);
        // Close sessions' stdin first: psql then exits by itself.
        for t in &mut tracked {
            t.stdin = None;
        }
        for t in tracked.iter_mut().rev() {
            let same = stat_of(t.pid).is_some_and(|s| s.start_time_ticks == t.start_ticks);
            match (&mut t.child, same) {
                (Some(child), _) => {
                    if child.try_wait().ok().flatten().is_none() {
                        let first = match t.kind {
                            Kind::Postmaster => Signal::QUIT,
                            Kind::Hold => Signal::TERM,
                            Kind::Other => Signal::KILL,
                        };
                        signal(t.pid, Signal::CONT);
                        signal(t.pid, first);
                        let t0 = Instant::now();
                        while child.try_wait().ok().flatten().is_none()
                            && t0.elapsed() < Duration::from_secs(5)
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                (None, true) => {
                    signal(t.pid, Signal::CONT);
                    signal(t.pid, Signal::KILL);
                }
                (None, false) => {}
            }
        }
        // Orphans exit when they notice their postmaster's death.
        let t0 = Instant::now();
        while tracked.iter().any(|t| t.child.is_none() && running(t.pid))
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for id in std::mem::take(&mut self.segments) {
            let _ = shm::remove(ShmId(id));
        }
        // This cell's clusters' segments that nobody uses any more, with the
        // DSM files their headers name.
        interlock_testkit::remove_segments_naming(&self.clusters, false);
        // DSM files this cell's servers left that no process maps (those of
        // a segment removed with ipcrm have no header left to name them).
        let mapped = interlock_testkit::mapped_dsm_files();
        for f in interlock_testkit::dsm_files().difference(&self.dsm_before) {
            let p = Path::new("/dev/shm").join(f);
            let mine = fs::symlink_metadata(&p).is_ok_and(|m| m.uid() == self.env.pg_uid);
            if mine && !mapped.contains(f) {
                let _ = fs::remove_file(p);
            }
        }
        for m in std::mem::take(&mut self.mounts).iter().rev() {
            let ok = Command::new("umount")
                .arg(m)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        if !self.env.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cell<'_> {
    fn drop(&mut self) {
        self.clean_up();
    }
}

pub fn inode(p: &Path) -> R<u64> {
    fs::metadata(p)
        .map(|m| m.ino())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// Line 7 of the cluster's lock file: (key as printed, shmid).
pub fn line7(c: &Cluster) -> R<(u64, i32)> {
    let text = fs::read_to_string(c.data.join("postmaster.pid")).map_err(|e| e.to_string())?;
    let l = text.lines().nth(6).ok_or("no line 7 in postmaster.pid")?;
    let mut f = l.split_whitespace();
    let key = f.next().and_then(|k| k.parse().ok()).ok_or("bad line 7")?;
    let id = f.next().and_then(|k| k.parse().ok()).ok_or("bad line 7")?;
    Ok((key, id))
}

pub fn run(cmd: &mut Command) -> R {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
