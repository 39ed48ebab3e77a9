//! `explain`: the startup and IPC failures in a server log, what each
//! means, what to check and how to fix it; with a data directory, joined
//! with what the host shows now ("the segment this log names is still
//! held by PID N, the checkpointer").
//!
//! Reading the log is [`interlock_format::serverlog`]'s job (any
//! `log_line_prefix`, `pg_ctl` output, binary junk skipped); this module
//! groups what it recognises, words it, and looks at the live state.

use std::path::{Path, PathBuf};

use interlock_format::serverlog::{parse_log, recognize, FailureCode, Recognized};
use interlock_format::shell;
use serde::Serialize;

use super::limits::{host_facts, HostFacts};
use super::{
    control, status, HostRoot, LockState, ProcState, StatusOptions, StatusReport, Verdict,
};
use crate::config::read_settings;
use crate::Error;

/// How to explain.
#[derive(Debug, Clone, Default)]
pub struct ExplainOptions {
    /// The data directory the log is of: join with its live state.
    pub data_dir: Option<PathBuf>,
    /// Options for the `status` the join runs.
    pub status: StatusOptions,
}

/// One failure (all its occurrences).
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    /// The stable code.
    pub code: &'static str,
    /// The level it was logged at (`FATAL`, `LOG`, `pg_ctl`…).
    pub level: &'static str,
    /// The server went on (e.g. huge pages fell back to normal pages).
    pub informational: bool,
    /// First line it appears on, 1-based.
    pub line: usize,
    /// Every line it appears on.
    pub lines: Vec<usize>,
    /// The message as logged (primary, DETAIL, HINT), prefix left out.
    pub logged: String,
    /// The errno, named.
    pub errno: Option<&'static str>,
    /// The key the message names, as printed.
    pub key: Option<u64>,
    /// The shmid it names.
    pub shmid: Option<u64>,
    /// The PID it names.
    pub pid: Option<i64>,
    /// A size in bytes.
    pub size: Option<u64>,
    /// A file, segment name or address.
    pub path: Option<String>,
    /// The data directory it names.
    pub data_dir: Option<String>,
    /// A port.
    pub port: Option<u16>,
    /// A signal.
    pub signal: Option<i32>,
    /// What it means.
    pub meaning: String,
    /// What to check.
    pub check: Vec<String>,
    /// How to fix it.
    pub fix: Vec<String>,
    /// What the host shows now (with a data directory).
    pub now: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    /// The log's name (`standard input` for `-`).
    pub source: String,
    /// Lines read.
    pub lines: usize,
    /// Reports found (any level).
    pub reports: usize,
    /// Lines that were not text and were skipped (the first 20).
    pub binary_lines: Vec<usize>,
    /// How many lines were not text.
    pub binary_line_count: usize,
    /// The data directory joined with, if any.
    pub data_dir: Option<String>,
    /// What `status` says of it now.
    pub status_now: Option<String>,
    /// The failures, in the order they first appear.
    pub failures: Vec<Explained>,
}

impl ExplainReport {
    /// Whether a failure (not only informational messages) was found.
    pub fn found_failure(&self) -> bool {
        self.failures.iter().any(|f| !f.informational)
    }
}

/// Explain `input`, a log named `source`.
///
/// # Errors
/// [`Error::Input`] when the input is not a server log in the stderr
/// format: mostly binary (more than half of its lines hold NUL bytes,
/// invalid UTF-8 or control characters) with no report line among them, or
/// `csvlog`/`jsonlog` lines with no stderr-format report among them. Text
/// in which nothing is recognised, and a log with some binary lines among
/// its reports (a torn write, a crash), are read: they are logs.
pub fn explain(input: &[u8], source: &str, opts: &ExplainOptions) -> Result<ExplainReport, Error> {
    let log = parse_log(input);
    if log.records.is_empty() && log.binary_lines.len() * 2 > log.lines {
        return Err(Error::Input {
            what: source.to_string(),
            reason: format!(
                "not a text log: {} of its {} lines hold binary data (NUL bytes, invalid UTF-8 or control characters) and none is a server report",
                log.binary_lines.len(),
                log.lines
            ),
        });
    }
    if log.records.is_empty() {
        if let Some((format, line)) = log.other_format {
            return Err(Error::Input {
                what: source.to_string(),
                reason: format!(
                    "line {line} is {format} output; explain reads the stderr format (log_destination = stderr, pg_ctl -l, the logging collector's .log files)"
                ),
            });
        }
    }

    let mut ctx = Join::new(opts);
    let mut failures: Vec<Explained> = Vec::new();
    for rec in &log.records {
        let Some(r) = recognize(rec) else { continue };
        let Some(code) = r.code else { continue };
        let logged = rec.text();
        let code = effective_code(&mut ctx, code, &r);
        if let Some(f) = failures
            .iter_mut()
            .find(|f| f.code == code.as_str() && f.logged == logged)
        {
            f.lines.push(rec.line);
            continue;
        }
        let words = words(code, &r);
        let now = ctx.now(code, &r);
        failures.push(Explained {
            code: code.as_str(),
            level: rec.level.as_str(),
            informational: r.informational,
            line: rec.line,
            lines: vec![rec.line],
            logged,
            errno: r.errno,
            key: r.key,
            shmid: r.shmid,
            pid: r.pid,
            size: r.size,
            path: r.path.clone(),
            data_dir: r.data_dir.clone(),
            port: r.port,
            signal: r.signal,
            meaning: words.0,
            check: words.1,
            fix: words.2,
            now,
        });
    }
    Ok(ExplainReport {
        source: source.to_string(),
        lines: log.lines,
        reports: log.records.len(),
        binary_line_count: log.binary_lines.len(),
        binary_lines: log.binary_lines.iter().take(20).copied().collect(),
        data_dir: opts.data_dir.as_ref().map(|d| d.display().to_string()),
        status_now: ctx.status_line(),
        failures,
    })
}

/// `could not map anonymous shared memory` under `huge_pages = on` is the
/// huge pages failing: the log alone cannot tell, the configuration can.
fn effective_code(ctx: &mut Join, code: FailureCode, r: &Recognized) -> FailureCode {
    if code == FailureCode::AnonymousMmapFailed && r.errno == Some("ENOMEM") && ctx.huge_pages_on()
    {
        FailureCode::HugePagesUnavailable
    } else {
        code
    }
}

fn sysctl_d(name: &str, value: &str) -> String {
    format!("sysctl -w {name}={value}; persist it in /etc/sysctl.d/30-postgresql.conf")
}

/// (meaning, check, fix) for a failure.
fn words(code: FailureCode, r: &Recognized) -> (String, Vec<String>, Vec<String>) {
    // Shell-quoted: pasted into the commands below, it names exactly the
    // directory the log names (DATADIR is a placeholder to fill in).
    let dir = r
        .data_dir
        .as_deref()
        .map_or(std::borrow::Cow::Borrowed("DATADIR"), shell::quote);
    let err = r.error_text.as_deref().unwrap_or("an error");
    let size = r
        .size
        .map(|s| format!("{s} bytes ({:.1} MiB)", s as f64 / f64::from(1 << 20)))
        .unwrap_or_else(|| "the size asked".into());
    let s = |t: &str| t.to_string();
    match code {
        FailureCode::SegmentInUse => (
            format!(
                "The server found the System V segment (key {}, ID {}) that postmaster.pid's line 7 or its key probe leads to: it belongs to this data directory and processes are still attached to it. Those are processes of an earlier server (orphaned backends after the postmaster was killed, e.g. by the OOM killer, or stopped ones); starting a second server on the same files would corrupt them, so it refused.",
                r.key.map_or("?".into(), |k| k.to_string()),
                r.shmid.map_or("?".into(), |k| k.to_string())
            ),
            vec![
                format!("which processes are attached and in what state: interlock status {dir}"),
                format!(
                    "by hand: grep -l ' {} ' /proc/[0-9]*/maps (the segment's ID is the inode column)",
                    r.shmid.map_or("ID".into(), |k| k.to_string())
                ),
            ],
            vec![
                format!("interlock fix {dir} shows a plan that stops exactly those processes; --yes carries it out"),
                s("do not ipcrm the segment or delete postmaster.pid: either lets a new server start next to the old processes"),
            ],
        ),
        FailureCode::LockFileExists => {
            let socket = r.path.as_deref().is_some_and(|p| p.ends_with(".lock"));
            let pid = r.pid.map_or("?".into(), |p| p.to_string());
            (
                if socket {
                    format!("The Unix-socket lock file {} names PID {pid}, and a process with that PID exists, so the server assumed another server uses that socket.", r.path.as_deref().unwrap_or("?"))
                } else {
                    format!("postmaster.pid names PID {pid}, and a process with that PID exists (kill({pid}, 0) succeeded), so the server assumed another server runs on {dir}. After a reboot or a container restart the PID often belongs to an unrelated process now.")
                },
                vec![
                    format!("whether PID {pid} is really this directory's server (start time, executable, working directory): interlock status {dir}"),
                    format!("ps -o pid,lstart,cmd -p {pid}"),
                ],
                vec![
                    format!("if that server runs: stop it properly (pg_ctl stop -D {dir}) or leave it running"),
                    format!("if PID {pid} is something else: interlock fix {dir} removes the stale file once nothing is attached; never delete postmaster.pid of a live server (it shuts down within a minute)"),
                ],
            )
        }
        FailureCode::LockFileEmpty => (
            s("postmaster.pid exists but is empty: either another server is starting at this very moment, or an earlier start crashed between creating the file and writing it (disk full, killed)."),
            vec![
                format!("whether a server is starting: interlock status {dir}"),
                format!("free space on the data directory's file system: df -h {dir}"),
            ],
            vec![format!("if nothing is starting: interlock fix {dir} removes the empty file")],
        ),
        FailureCode::LockFileCreateFailed => {
            let socket = r.path.as_deref().is_some_and(|p| p.contains(".s.PGSQL."));
            (
                format!("The server could not create the lock file {}: {err}.{}", r.path.as_deref().unwrap_or("?"), if socket {
                    " It is the lock of a Unix socket: the socket directory is missing or not writable by the server's user (Debian's /var/run/postgresql is made at boot by the postgresql package's tmpfiles.d)."
                } else {
                    " The data directory is not writable by the server's user."
                }),
                vec![s("ls -ld of the directory named, and who owns it")],
                vec![if socket {
                    s("install -d -o postgres -g postgres -m 2775 /var/run/postgresql, or set unix_socket_directories to a directory the server's user owns")
                } else {
                    format!("chown -R postgres: {dir}; chmod 700 {dir}")
                }],
            )
        }
        FailureCode::LockFileRemoved => (
            s("The running server re-reads postmaster.pid about once a minute; it found it removed or rewritten and shut down at once, so that no second server can start beside it. Someone deleted the lock file of a running server: a clean-up script, or an attempt to fix a 'stale' lock."),
            vec![s("what removed it: shell history, cron jobs, container entrypoints that delete postmaster.pid")],
            vec![format!("never delete postmaster.pid by hand; interlock status {dir} tells a stale file from a live one, interlock fix removes only what the server would refuse")],
        ),
        FailureCode::ShmgetFailed => {
            let (why, fix) = match r.errno {
                Some("EINVAL") => (
                    format!("the request ({size}) exceeds SHMMAX, the largest segment the kernel allows (or is below SHMMIN). Since 9.3 the System V segment is tiny unless shared_memory_type = sysv."),
                    vec![
                        sysctl_d("kernel.shmmax", &r.size.map_or("BYTES".into(), |s| s.next_power_of_two().to_string())),
                        s("or set shared_memory_type = mmap (the default)"),
                    ],
                ),
                Some("ENOMEM") => (
                    format!("the request ({size}) would exceed SHMALL, the kernel's total for System V shared memory (in pages)."),
                    vec![sysctl_d("kernel.shmall", "PAGES"), s("or set shared_memory_type = mmap")],
                ),
                Some("ENOSPC") => (
                    s("all System V segment IDs are taken (SHMMNI), or the system-wide total is reached. It does not mean the disk is full. Segments leaked by crashed servers or other programs are the usual cause."),
                    vec![
                        s("interlock scan lists leaked segments; ipcrm only those nobody is attached to (nattch 0)"),
                        sysctl_d("kernel.shmmni", "8192"),
                    ],
                ),
                Some("EACCES") => (
                    s("the kernel refused the server's user: a security policy (SELinux, AppArmor, a container's seccomp profile) forbids System V shared memory, or a segment with this key belongs to another user."),
                    vec![s("check the audit log (ausearch -m avc) or the container's security profile"), s("ipcs -m -i ID for the key's owner")],
                ),
                _ => (format!("shmget failed: {err}."), vec![]),
            };
            (
                format!("The server could not create its System V interlock segment: {why}"),
                vec![
                    s("interlock limits DATADIR compares kernel.shmmax, shmall and shmmni with what the cluster needs"),
                    s("ipcs -m; sysctl kernel.shmmax kernel.shmall kernel.shmmni"),
                ],
                fix,
            )
        }
        FailureCode::AnonymousMmapFailed => (
            format!("The kernel would not map {size} of shared memory for the buffers: {err}. Either there is not that much memory (and swap), or vm.overcommit_memory = 2 leaves no commit room, or huge_pages = on and not enough huge pages are free."),
            vec![
                s("interlock limits DATADIR: memory, overcommit, cgroup limit, huge pages against the request"),
                s("grep -E 'MemAvailable|Commit|HugePages' /proc/meminfo"),
            ],
            vec![
                s("lower shared_buffers (and max_connections) until the request fits"),
                s("or make room: more memory or swap, vm.overcommit_ratio, or free huge pages (vm.nr_hugepages)"),
            ],
        ),
        FailureCode::HugePagesUnavailable => {
            if r.informational {
                (
                    format!("huge_pages = try: mapping {size} with huge pages failed ({err}), so the server used normal pages. It runs, with more TLB misses than it could."),
                    vec![s("grep Huge /proc/meminfo; postgres -D DATADIR -C shared_memory_size_in_huge_pages (15+, server stopped)")],
                    vec![s("reserve enough huge pages: sysctl -w vm.nr_hugepages=N (persist in /etc/sysctl.d), or leave it")],
                )
            } else {
                (
                    format!("huge_pages = on, and the server could not get {size} in huge pages ({err}): not enough free huge pages of the size asked, or none reserved; under shared_memory_type = sysv or without MAP_HUGETLB huge pages are not supported at all. With huge_pages = on there is no fallback."),
                    vec![
                        s("grep Huge /proc/meminfo: HugePages_Free against what the cluster needs"),
                        s("interlock limits DATADIR computes the pages needed (the server's own figure on 15+)"),
                    ],
                    vec![
                        s("sysctl -w vm.nr_hugepages=N (N = pages needed plus those others use); persist in /etc/sysctl.d/30-postgresql.conf; in Kubernetes, request hugepages-2Mi"),
                        s("or set huge_pages = try, which falls back to normal pages"),
                    ],
                )
            }
        }
        FailureCode::SemaphoresExhausted => (
            format!("The server could not create System V semaphores ({err}): the limit on semaphore sets (SEMMNI) or on semaphores system-wide (SEMMNS) would be exceeded. It does not mean the disk is full. PostgreSQL 10+ on Linux normally uses POSIX semaphores; this comes from a build using System V ones, or another platform."),
            vec![s("ipcs -s (sets in use, leaked ones of crashed servers); sysctl kernel.sem"), s("interlock limits DATADIR computes the sets needed")],
            vec![
                sysctl_d("kernel.sem", "\"250 32000 100 256\""),
                s("or lower max_connections"),
            ],
        ),
        FailureCode::DsmSegmentMissing => (
            format!("A dynamic shared memory segment ({}) vanished while the server used it. The classic cause is systemd-logind's RemoveIPC=yes: when the last session of the server's user ends (an admin's su - postgres or ssh logging out) logind removes all its IPC objects, unless the user is a system user. A script that cleans /dev/shm does the same.", r.path.as_deref().unwrap_or("/PostgreSQL.N")),
            vec![
                s("RemoveIPC in /etc/systemd/logind.conf and logind.conf.d; id -u postgres against SYS_UID_MAX (/etc/login.defs): interlock limits checks both"),
                s("journalctl -u systemd-logind around the time of the message"),
            ],
            vec![
                s("printf '[Login]\\nRemoveIPC=no\\n' > /etc/systemd/logind.conf.d/postgresql.conf; systemctl restart systemd-logind"),
                s("or make postgres a system user (useradd -r / adduser --system)"),
            ],
        ),
        FailureCode::DevShmFull => (
            format!("/dev/shm had no room for a {size} dynamic shared memory segment ({}; {err}). Parallel queries, parallel index builds and shared hash tables live there. Containers get 64 MB by default.", r.path.as_deref().unwrap_or("?")),
            vec![s("df -h /dev/shm; ls -l /dev/shm/PostgreSQL.* (leaked files of crashed servers: interlock scan)")],
            vec![
                s("Docker: --shm-size=1g; Kubernetes: an emptyDir with medium: Memory mounted at /dev/shm; a host: mount -o remount,size=1G /dev/shm"),
                s("or less parallelism (max_parallel_workers_per_gather) or work_mem"),
            ],
        ),
        FailureCode::DataDirUnusable => (
            format!("The data directory {dir} fails the server's own checks: it is missing, not a directory, not owned by the server's user, has group/world permissions, or lacks PG_VERSION (not a data directory, or the mount is missing)."),
            vec![format!("ls -ld {dir}; ls {dir}/PG_VERSION; findmnt -T {dir}")],
            vec![
                format!("the server must run as the owner: chown -R postgres: {dir}; chmod 700 {dir} (or 750 with group access, 11+)"),
                s("if the path is wrong or the volume not mounted, fix the path or mount it; do not initdb over a missing mount"),
            ],
        ),
        FailureCode::IncompatibleVersion => {
            let (data, server) = r.versions.clone().unwrap_or_else(|| ("?".into(), "?".into()));
            (
                format!("The data directory was initialised by PostgreSQL {data}, the server binary is {server}: a major version cannot open another's files."),
                vec![s("cat DATADIR/PG_VERSION; which postgres; pg_lsclusters on Debian")],
                vec![format!("start it with the {data} binaries (/usr/lib/postgresql/{data}/bin on Debian), or upgrade the data with pg_upgrade")],
            )
        }
        FailureCode::ControlFileInvalid => (
            s("global/pg_control cannot be read or is damaged (a CRC mismatch, invalid contents): the server cannot tell where to start recovery and refuses."),
            vec![format!("interlock control {dir} (CRC, state, checkpoint)")],
            vec![s("restore the cluster (or at least global/pg_control) from a backup; pg_resetwal is a last resort that loses data")],
        ),
        FailureCode::PortInUse => (
            format!("Another process listens on {} already: another PostgreSQL on the same port, or something else.", r.port.map_or_else(|| r.path.clone().unwrap_or_default(), |p| format!("port {p} of {}", r.path.as_deref().unwrap_or("?")))),
            vec![format!("ss -ltnp 'sport = :{}'", r.port.map_or("PORT".into(), |p| p.to_string()))],
            vec![s("stop the other server, or give this one another port")],
        ),
        FailureCode::ListenFailed => (
            format!("The server could not listen on {}: {err}. listen_addresses names an address this host does not have, or the address is not up yet at boot.", r.path.as_deref().unwrap_or("?")),
            vec![s("ip addr; listen_addresses in postgresql.conf")],
            vec![s("fix listen_addresses (or use '*'), or start after the network is up")],
        ),
        FailureCode::RunAsRoot => (
            s("The server was started as root; PostgreSQL refuses, because a compromised server must not own the machine."),
            vec![s("the service manager's User= or the command used")],
            vec![format!("run it as the data directory's owner: runuser -u postgres -- pg_ctl -D {dir} start")],
        ),
        FailureCode::ProcessKilled => {
            let what = r.path.as_deref().unwrap_or("a server process");
            match r.signal {
                Some(9) => (
                    format!("{what} (PID {}) was killed with SIGKILL: on Linux almost always the OOM killer. The postmaster then stops all processes and runs crash recovery. If the postmaster itself is killed, its children stay attached to the segment and the next start fails with segment_in_use.", r.pid.map_or("?".into(), |p| p.to_string())),
                    vec![s("dmesg -T | grep -i 'killed process' (or journalctl -k)"), s("interlock limits DATADIR: memory, overcommit, cgroup limit")],
                    vec![s("vm.overcommit_memory = 2 so the kernel refuses allocations instead of killing; lower shared_buffers/work_mem; raise the container's memory limit")],
                ),
                Some(7) => (
                    format!("{what} (PID {}) died of SIGBUS: touching shared memory that the kernel could not back. In containers: huge pages promised but not available (a Kubernetes pod without a hugepages limit on a node that has them), or /dev/shm full.", r.pid.map_or("?".into(), |p| p.to_string())),
                    vec![s("grep Huge /proc/meminfo inside the container; df -h /dev/shm")],
                    vec![s("huge_pages = off in such pods (or request hugepages-2Mi), and a larger /dev/shm")],
                ),
                _ => (
                    format!("{what} (PID {}) died of signal {} ({err}); the postmaster reset all processes and runs crash recovery.", r.pid.map_or("?".into(), |p| p.to_string()), r.signal.map_or("?".into(), |s| s.to_string())),
                    vec![s("the lines before it for the query, and the system log for a core dump")],
                    vec![s("a crash (signal 11, 6) is a bug or a broken extension: report it with the backtrace")],
                ),
            }
        }
    }
}

/// The live side of the join, read once.
struct Join {
    data_dir: Option<PathBuf>,
    status_opts: StatusOptions,
    status: Option<Option<StatusReport>>,
    host: Option<HostFacts>,
    huge_pages_on: Option<bool>,
}

impl Join {
    fn new(opts: &ExplainOptions) -> Join {
        Join {
            data_dir: opts.data_dir.clone(),
            status_opts: opts.status.clone(),
            status: None,
            host: None,
            huge_pages_on: None,
        }
    }

    fn status(&mut self) -> Option<&StatusReport> {
        let dir = self.data_dir.clone()?;
        if self.status.is_none() {
            self.status = Some(status(&dir, &self.status_opts).ok());
        }
        self.status.as_ref()?.as_ref()
    }

    fn host(&mut self) -> &HostFacts {
        let root = self.status_opts.root.root();
        self.host.get_or_insert_with(|| host_facts(root))
    }

    fn huge_pages_on(&mut self) -> bool {
        let Some(dir) = self.data_dir.clone() else {
            return false;
        };
        *self.huge_pages_on.get_or_insert_with(|| {
            read_settings(&self.status_opts.root, &dir).get("huge_pages") == Some("on")
        })
    }

    fn status_line(&mut self) -> Option<String> {
        let r = self.status()?;
        let verdict = match r.verdict {
            Verdict::Running => "a server runs on it".to_string(),
            Verdict::WillStart if r.safe_to_start => {
                "its interlock (lock file, segments) would let a server start now".into()
            }
            Verdict::WillStart => {
                "its interlock would let a server start now, alongside processes of an earlier server".into()
            }
            Verdict::Blocked => format!(
                "its interlock would stop a server now: FATAL:  {}",
                r.postgres_would_say.as_deref().unwrap_or("?")
            ),
            Verdict::Unknown => "whether it would start cannot be told".into(),
        };
        Some(format!("{}: {verdict}", r.data_dir))
    }

    fn now(&mut self, code: FailureCode, r: &Recognized) -> Vec<String> {
        if self.data_dir.is_none() {
            return Vec::new();
        }
        let mb = super::limits::human_limit;
        let mut out = Vec::new();
        match code {
            FailureCode::SegmentInUse => {
                let Some(id) = r.shmid else { return out };
                let table = std::fs::read_to_string(self.status_opts.root.at("/proc/sysvipc/shm"))
                    .unwrap_or_default();
                let exists = interlock_format::sysvipc::parse_shm_table(&table)
                    .ok()
                    .and_then(|t| t.into_iter().find(|e| e.shmid as u64 == id));
                match exists {
                    None => out.push(format!(
                        "segment ID {id} no longer exists: the processes that held it are gone"
                    )),
                    Some(e) => {
                        let holders: Vec<String> = self
                            .status()
                            .map(|s| {
                                s.holders
                                    .iter()
                                    .filter(|h| h.shmid as u64 == id)
                                    .map(|h| {
                                        format!(
                                            "PID {} ({}{})",
                                            h.process.pid,
                                            h.process
                                                .role
                                                .map_or(h.process.cmdline.as_str(), |r| r.name()),
                                            if matches!(
                                                h.process.state,
                                                ProcState::Running | ProcState::Sleeping
                                            ) {
                                                String::new()
                                            } else {
                                                format!(", {}", h.process.state)
                                            }
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        if holders.is_empty() {
                            out.push(format!(
                                "the segment this log names (key {}, ID {id}) still exists with {} attached; who they are is not visible here (run as root)",
                                r.key.map_or("?".into(), |k| k.to_string()),
                                e.nattch
                            ));
                        } else {
                            out.push(format!(
                                "the segment this log names (key {}, ID {id}) is still held by {}",
                                r.key.map_or("?".into(), |k| k.to_string()),
                                holders.join(", ")
                            ));
                        }
                    }
                }
            }
            FailureCode::LockFileExists | FailureCode::LockFileEmpty => {
                if let Some(s) = self.status() {
                    let l = &s.lock_file;
                    let named = r.pid;
                    match (l.state, l.pid) {
                        (LockState::Absent, _) => out.push("postmaster.pid is gone now".into()),
                        (LockState::Empty, _) => out.push("postmaster.pid is still empty".into()),
                        (_, Some(pid)) if named.is_some_and(|n| n != i64::from(pid)) => {
                            out.push(format!(
                                "postmaster.pid now names PID {} (the log: {})",
                                pid.abs(),
                                named.unwrap_or_default()
                            ))
                        }
                        (_, Some(pid)) => {
                            let who = match l.identity {
                                Some(super::Identity::Owner) => {
                                    "still runs and is this directory's server".to_string()
                                }
                                Some(super::Identity::Zombie) => {
                                    "is a zombie: the server is dead, its parent has not reaped it"
                                        .into()
                                }
                                Some(super::Identity::Reused) => format!(
                                    "is now another process ({}), not a server of this directory",
                                    l.process.as_ref().map_or("?", |p| p.cmdline.as_str())
                                ),
                                Some(super::Identity::OtherUser) => {
                                    "belongs to another user's process".into()
                                }
                                Some(super::Identity::Gone) => "no longer exists".into(),
                                Some(super::Identity::Unknown) | None => "cannot be judged".into(),
                            };
                            out.push(format!("PID {} {who}", pid.abs()));
                        }
                        (state, None) => out.push(format!("postmaster.pid is {state}")),
                    }
                }
            }
            FailureCode::ShmgetFailed => {
                let h = self.host();
                out.push(format!(
                    "now: kernel.shmmax {}, kernel.shmall {} pages, kernel.shmmni {} with {} segments in use",
                    h.shmmax.map_or("?".into(), |v| v.to_string()),
                    h.shmall.map_or("?".into(), |v| v.to_string()),
                    h.shmmni.map_or("?".into(), |v| v.to_string()),
                    h.shm_segments.map_or("?".into(), |v| v.to_string())
                ));
            }
            FailureCode::AnonymousMmapFailed | FailureCode::HugePagesUnavailable => {
                let h = self.host().clone();
                out.push(format!(
                    "now: MemAvailable {}, vm.overcommit_memory {}, commit room {}, cgroup limit {}, huge pages {} free of {} ({} each)",
                    h.mem_available.map_or("?".into(), mb),
                    h.overcommit_memory.map_or("?".into(), |v| v.to_string()),
                    match (h.commit_limit, h.committed) {
                        (Some(l), Some(c)) => mb(l.saturating_sub(c)),
                        _ => "?".into(),
                    },
                    h.cgroup_memory_limit.map_or("none".into(), mb),
                    h.huge_pages_free.map_or("?".into(), |v| v.to_string()),
                    h.huge_pages_total.map_or("?".into(), |v| v.to_string()),
                    h.huge_page_size.map_or("?".into(), mb),
                ));
                let room = h.mem_total.unwrap_or(0) + h.swap_total.unwrap_or(0);
                if let Some(size) = r.size.filter(|&s| room > 0 && s > room) {
                    out.push(format!(
                        "the request ({}) is more than memory and swap together ({})",
                        mb(size),
                        mb(room)
                    ));
                }
                if let (Some(size), Some(hp)) = (r.size, h.huge_page_size) {
                    if code == FailureCode::HugePagesUnavailable {
                        out.push(format!(
                            "the request of {} needs {} huge pages of {}",
                            mb(size),
                            size.div_ceil(hp),
                            mb(hp)
                        ));
                    }
                }
                if self.huge_pages_on() {
                    out.push("the configuration says huge_pages = on".into());
                }
            }
            FailureCode::SemaphoresExhausted => {
                let h = self.host();
                out.push(format!(
                    "now: kernel.sem {} {} {} {}, {} sets in use",
                    h.semmsl.map_or("?".into(), |v| v.to_string()),
                    h.semmns.map_or("?".into(), |v| v.to_string()),
                    h.semopm.map_or("?".into(), |v| v.to_string()),
                    h.semmni.map_or("?".into(), |v| v.to_string()),
                    h.sem_sets.map_or("?".into(), |v| v.to_string())
                ));
            }
            FailureCode::DsmSegmentMissing => {
                let dir = self.data_dir.clone().unwrap_or_default();
                let h = self.host().clone();
                use std::os::unix::fs::MetadataExt;
                let owner = std::fs::metadata(&dir).map(|m| m.uid()).ok();
                match &h.remove_ipc {
                    None => out.push("systemd-logind is not installed here".into()),
                    Some(ri) => out.push(format!(
                        "RemoveIPC={} ({}){}; the data directory's owner {}",
                        if ri.value { "yes" } else { "no" },
                        ri.from,
                        if ri.systemd_running {
                            ""
                        } else {
                            ", but systemd does not run here"
                        },
                        owner.map_or("?".into(), |u| format!(
                            "{} (uid {u}) is {}a system user (SYS_UID_MAX {})",
                            self.status_opts.root.user_name(u),
                            if u <= h.sys_uid_max { "" } else { "not " },
                            h.sys_uid_max
                        ))
                    )),
                }
            }
            FailureCode::DevShmFull => {
                let h = self.host();
                out.push(format!(
                    "now: /dev/shm {} in all, {} free",
                    h.dev_shm_size.map_or("?".into(), mb),
                    h.dev_shm_free.map_or("?".into(), mb)
                ));
            }
            FailureCode::ControlFileInvalid => {
                if let Some(dir) = self.data_dir.clone() {
                    match control(&dir) {
                        Ok(c) => out.push(format!("pg_control now: {}", c.next_start(None))),
                        Err(e) => out.push(format!("pg_control now: {e}")),
                    }
                }
            }
            FailureCode::DataDirUnusable => {
                if let Some(s) = self.status() {
                    let bad: Vec<&str> = s
                        .findings
                        .iter()
                        .filter(|f| f.code == super::Code::DataDirInvalid)
                        .map(|f| f.message.as_str())
                        .collect();
                    if bad.is_empty() {
                        out.push("the data directory passes the server's checks now".into());
                    } else {
                        out.extend(bad.iter().map(|m| format!("now: {m}")));
                    }
                } else if let Some(dir) = &self.data_dir {
                    out.push(format!("{} cannot be examined now", dir.display()));
                }
            }
            _ => {}
        }
        out
    }
}

// ------------------------------------------------------------ reading logs

/// The most of a log that is read: its end, where startups fail.
pub const MAX_READ: u64 = 256 << 20;

/// The newest log file in the cluster's `log_directory`: a regular file
/// owned by the data directory's owner, as the logging collector writes
/// them (`syslogger.c`, `logfile_open`). The configuration is the owner's,
/// so as root its `log_directory` may name any directory (`/etc`): files of
/// other owners are not read, nor links in directories the owner controls,
/// nor FIFOs (see `interlock::safe_fs`).
pub fn newest_log(
    data_dir: &Path,
    root: &HostRoot,
) -> Result<(PathBuf, interlock::safe_fs::Opened), String> {
    use interlock::safe_fs;
    use rustix::fs::{AtFlags, Dir, FileType};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let settings = read_settings(root, data_dir);
    let dir = settings.get("log_directory").unwrap_or("log");
    let shown = if Path::new(dir).is_absolute() {
        PathBuf::from(dir)
    } else {
        data_dir.join(dir)
    };
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| format!("{}: {e}", data_dir.display()))?
        .uid();
    let fd = safe_fs::open_dir(Some(data_dir), Path::new(dir)).map_err(|e| e.to_string())?;
    let entries = Dir::read_from(&fd).map_err(|e| format!("{}: {e}", shown.display()))?;
    let mut newest: Option<((i64, u64), std::ffi::OsString)> = None;
    for e in entries.flatten() {
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string();
        let n = name.to_string_lossy();
        if n.starts_with('.') || n.ends_with(".csv") || n.ends_with(".json") {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != owner {
            continue;
        }
        let t = (st.st_mtime, st.st_mtime_nsec);
        if newest.as_ref().is_none_or(|(best, _)| t > *best) {
            newest = Some((t, name));
        }
    }
    let Some((_, name)) = newest else {
        return Err(format!(
            "no log file found in {}'s log_directory {} (only regular files owned by {} are read)",
            data_dir.display(),
            shown.display(),
            root.user_name(owner)
        ));
    };
    let path = shown.join(&name);
    // Opened by name again: refused if it was swapped for a FIFO or a link.
    let opened = safe_fs::open_regular_at(&fd, &name, &path).map_err(|e| e.to_string())?;
    if opened.uid != owner {
        return Err(format!(
            "{} is not owned by {}: not read",
            path.display(),
            root.user_name(owner)
        ));
    }
    Ok((path, opened))
}

/// At most the last `max` bytes of `f` (named `name` in errors), from a
/// line boundary; with a note saying so when the file is longer.
pub fn read_log_tail(
    mut f: std::fs::File,
    name: &str,
    max: u64,
) -> Result<(Vec<u8>, Option<String>), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    let len = f.metadata().map_err(|e| format!("{name}: {e}"))?.len();
    let mut note = None;
    if len > max {
        f.seek(SeekFrom::Start(len - max))
            .map_err(|e| format!("{name}: {e}"))?;
        note = Some(format!(
            "read the last {} MiB of {} MiB (line numbers count from there)",
            max >> 20,
            len >> 20
        ));
    }
    f.take(max)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{name}: {e}"))?;
    if note.is_some() {
        // Start at a line boundary.
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    Ok((buf, note))
}

#[cfg(test)]
mod read_log_tests {
    use super::read_log_tail;

    #[test]
    fn a_long_log_is_read_from_a_line_boundary_of_its_end() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"first line\nsecond\nthird\n").unwrap();
        std::io::Seek::rewind(&mut f).unwrap();
        let (buf, note) = read_log_tail(f, "log", 2 << 20).unwrap();
        assert_eq!(buf, b"first line\nsecond\nthird\n");
        assert!(note.is_none());

        let mut f = tempfile::tempfile().unwrap();
        let long = "x".repeat(1 << 20) + "\nkept\n";
        std::io::Write::write_all(&mut f, long.as_bytes()).unwrap();
        let (buf, note) = read_log_tail(f, "log", 1 << 20).unwrap();
        assert_eq!(buf, b"kept\n");
        assert!(note.unwrap().starts_with("read the last 1 MiB"));
    }
}
