//! `limits`: the host around the interlock. The kernel's System V limits,
//! huge pages, overcommit, `/dev/shm`, systemd-logind's `RemoveIPC`, the
//! cgroup memory limit, containers; and, for a data directory, what its
//! configuration needs from them.
//!
//! Every file is read under a root directory (`/` on a live host), so a
//! fixture tree of `proc/`, `sys/`, `etc/` and `dev/shm` stands in for a
//! host in tests. Only `/dev/shm`'s size comes from `statvfs` of
//! `ROOT/dev/shm`.
//!
//! What a cluster needs, most trustworthy first:
//! 1. a server running on it: the size of its shared mapping, read from
//!    its `/proc/PID/maps`;
//! 2. 15+, nothing running and nothing holding the directory: the server's
//!    own `postgres -C shared_memory_size` (and `…_in_huge_pages`, and 18's
//!    `num_os_semaphores`). That command creates and removes
//!    `postmaster.pid` (facts sheet §3.4), so it is never run while a
//!    server, its leftovers or an `interlock hold` own the directory;
//! 3. otherwise an estimate from the configuration: seed 002's table
//!    (buffers, connections, locks, WAL buffers, a fixed part), with the
//!    per-item sizes refitted to what real 10–18 servers map (see
//!    [`estimate`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use interlock_format::maps::parse_maps_line;
use interlock_format::sysctl::{
    parse_cgroup, parse_login_defs_sys_uid_max, parse_logind_remove_ipc, parse_meminfo,
    parse_memory_limit, parse_number, parse_sem, MemInfo,
};
use interlock_format::sysvipc::parse_shm_table;
use serde::Serialize;

use super::{status, HostRoot, StatusOptions, Verdict};
use crate::config::{read_settings, Settings};
use crate::Error;

/// Where to look.
#[derive(Debug, Clone)]
pub struct LimitsOptions {
    /// The host's root (`/`); a fixture tree in tests.
    pub root: HostRoot,
    /// The server binary to ask (`postgres -C`), as `status --postgres`.
    pub postgres: Option<PathBuf>,
    /// Whether `postgres -C` may be run (15+, nothing running).
    pub ask_server: bool,
}

impl Default for LimitsOptions {
    fn default() -> Self {
        LimitsOptions {
            root: HostRoot::default(),
            postgres: None,
            ask_server: true,
        }
    }
}

/// systemd-logind's `RemoveIPC`.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveIpc {
    /// Whether systemd runs as init here (`/run/systemd/system` exists).
    pub systemd_running: bool,
    /// Whether systemd-logind is installed.
    pub logind_installed: bool,
    /// The effective value.
    pub value: bool,
    /// Where it comes from (`FILE:LINE`, or systemd's default).
    pub from: String,
}

/// What the host offers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFacts {
    /// `kernel.shmmax`, bytes.
    pub shmmax: Option<u64>,
    /// `kernel.shmall`, pages.
    pub shmall: Option<u64>,
    /// `kernel.shmmni`.
    pub shmmni: Option<u64>,
    /// The page size shmall counts in.
    pub page_size: u64,
    /// `kernel.sem`: SEMMSL.
    pub semmsl: Option<u64>,
    /// SEMMNS.
    pub semmns: Option<u64>,
    /// SEMOPM.
    pub semopm: Option<u64>,
    /// SEMMNI.
    pub semmni: Option<u64>,
    /// System V segments that exist now.
    pub shm_segments: Option<u64>,
    /// Their pages, together.
    pub shm_pages: Option<u64>,
    /// System V semaphore sets that exist now.
    pub sem_sets: Option<u64>,
    /// Their semaphores, together.
    pub sems: Option<u64>,
    /// `MemTotal`, bytes.
    pub mem_total: Option<u64>,
    /// `MemAvailable`, bytes.
    pub mem_available: Option<u64>,
    /// `SwapTotal`, bytes.
    pub swap_total: Option<u64>,
    /// `HugePages_Total`.
    pub huge_pages_total: Option<u64>,
    /// `HugePages_Free`.
    pub huge_pages_free: Option<u64>,
    /// `HugePages_Rsvd`.
    pub huge_pages_reserved: Option<u64>,
    /// `Hugepagesize`, bytes.
    pub huge_page_size: Option<u64>,
    /// Huge page sizes the kernel offers (`/sys/kernel/mm/hugepages`), bytes.
    pub huge_page_sizes: Vec<u64>,
    /// `vm.overcommit_memory`.
    pub overcommit_memory: Option<u64>,
    /// `vm.overcommit_ratio`.
    pub overcommit_ratio: Option<u64>,
    /// `CommitLimit`, bytes.
    pub commit_limit: Option<u64>,
    /// `Committed_AS`, bytes.
    pub committed: Option<u64>,
    /// `/dev/shm` size, bytes.
    pub dev_shm_size: Option<u64>,
    /// `/dev/shm` free, bytes.
    pub dev_shm_free: Option<u64>,
    /// `RemoveIPC`.
    pub remove_ipc: Option<RemoveIpc>,
    /// `SYS_UID_MAX` (login.defs, else 999).
    pub sys_uid_max: u32,
    /// The cgroup memory limit of this process, bytes (`None`: none).
    pub cgroup_memory_limit: Option<u64>,
    /// The file it was read from.
    pub cgroup_memory_file: Option<String>,
    /// The kind of container this runs in, and the evidence.
    pub container: Option<String>,
    /// Files that could not be read or parsed.
    pub unreadable: Vec<String>,
}

/// What a data directory's configuration needs.
#[derive(Debug, Clone, Serialize)]
pub struct Need {
    /// The data directory.
    pub data_dir: String,
    /// `PG_VERSION`.
    pub major: Option<u32>,
    /// Main shared memory, bytes.
    pub shared_memory_size: u64,
    /// How that was learned.
    pub size_source: String,
    /// Whether a server runs on the directory (the size is its mapping).
    pub server_running: bool,
    /// `huge_pages`.
    pub huge_pages: String,
    /// Huge pages that size needs (the server's own figure on 15+).
    pub huge_pages_needed: Option<u64>,
    /// The huge page size used, bytes.
    pub huge_page_size: Option<u64>,
    /// `shared_memory_type`.
    pub shared_memory_type: String,
    /// The System V segment's size: the interlock header, or everything
    /// under `shared_memory_type = sysv`.
    pub sysv_segment_size: u64,
    /// `MaxBackends` (connections, autovacuum workers and launcher,
    /// background workers, WAL senders).
    pub max_backends: u64,
    /// Semaphores the server makes (one per backend and auxiliary
    /// process).
    pub semaphores: u64,
    /// `dynamic_shared_memory_type`.
    pub dynamic_shared_memory_type: String,
    /// The data directory's owner.
    pub owner: String,
    /// Whether the owner is a system user (uid ≤ SYS_UID_MAX).
    pub owner_is_system_user: bool,
    /// The settings used, `name = value (FILE:LINE)`.
    pub settings: Vec<String>,
    /// Files that could not be read (`PG_VERSION`, configuration files),
    /// each naming the file and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One limit, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What (`kernel.shmmax`, `huge pages`, `RemoveIPC`…).
    pub name: &'static str,
    /// `ok`, `too_low`, `warning`, `info` or `unknown`.
    pub status: &'static str,
    /// What the host has.
    pub value: String,
    /// What is needed, when something is.
    pub need: Option<String>,
    /// One sentence.
    pub message: String,
    /// What to run, and where to persist it.
    pub fix: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsReport {
    /// The host.
    pub host: HostFacts,
    /// What the data directory needs, when one was given.
    pub need: Option<Need>,
    /// Each limit.
    pub checks: Vec<Check>,
}

impl LimitsReport {
    /// Whether any limit is too low.
    pub fn too_low(&self) -> bool {
        self.checks.iter().any(|c| c.status == "too_low")
    }
}

fn at(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

fn read(root: &Path, p: &str, unreadable: &mut Vec<String>) -> Option<String> {
    match fs::read_to_string(at(root, p)) {
        Ok(t) => Some(t),
        Err(e) => {
            unreadable.push(format!("{p}: {e}"));
            None
        }
    }
}

/// Read what the host offers.
pub fn host_facts(root: &Path) -> HostFacts {
    let mut h = HostFacts {
        page_size: rustix::param::page_size() as u64,
        sys_uid_max: 999,
        ..HostFacts::default()
    };
    let mut bad = Vec::new();
    for (file, slot) in [
        ("/proc/sys/kernel/shmmax", &mut h.shmmax),
        ("/proc/sys/kernel/shmall", &mut h.shmall),
        ("/proc/sys/kernel/shmmni", &mut h.shmmni),
        ("/proc/sys/vm/overcommit_memory", &mut h.overcommit_memory),
        ("/proc/sys/vm/overcommit_ratio", &mut h.overcommit_ratio),
    ] {
        if let Some(t) = read(root, file, &mut bad) {
            match parse_number(&t, "value") {
                Ok(n) => *slot = Some(n),
                Err(e) => bad.push(format!("{file}: {e}")),
            }
        }
    }
    if let Some(t) = read(root, "/proc/sys/kernel/sem", &mut bad) {
        match parse_sem(&t) {
            Ok(s) => {
                h.semmsl = Some(s.semmsl);
                h.semmns = Some(s.semmns);
                h.semopm = Some(s.semopm);
                h.semmni = Some(s.semmni);
            }
            Err(e) => bad.push(format!("/proc/sys/kernel/sem: {e}")),
        }
    }
    if let Some(t) = read(root, "/proc/sysvipc/shm", &mut bad) {
        match parse_shm_table(&t) {
            Ok(entries) => {
                h.shm_segments = Some(entries.len() as u64);
                h.shm_pages = Some(entries.iter().map(|e| e.size.div_ceil(h.page_size)).sum());
            }
            Err(e) => bad.push(format!("/proc/sysvipc/shm: {e}")),
        }
    }
    if let Some(t) = read(root, "/proc/sysvipc/sem", &mut bad) {
        // key semid perms nsems uid gid cuid cgid otime ctime
        let rows: Vec<u64> = t
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
            .collect();
        h.sem_sets = Some(rows.len() as u64);
        h.sems = Some(rows.iter().sum());
    }
    if let Some(t) = read(root, "/proc/meminfo", &mut bad) {
        match parse_meminfo(&t) {
            Ok(m) => meminfo_into(&m, &mut h),
            Err(e) => bad.push(format!("/proc/meminfo: {e}")),
        }
    }
    if let Ok(dir) = fs::read_dir(at(root, "/sys/kernel/mm/hugepages")) {
        let mut sizes: Vec<u64> = dir
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse::<u64>()
                    .ok()
                    .map(|kb| kb * 1024)
            })
            .collect();
        sizes.sort_unstable();
        h.huge_page_sizes = sizes;
    }
    if let Ok(st) = rustix::fs::statvfs(at(root, "/dev/shm")) {
        h.dev_shm_size = Some(st.f_blocks * st.f_frsize);
        h.dev_shm_free = Some(st.f_bavail * st.f_frsize);
    } else {
        bad.push("/dev/shm: cannot statvfs".into());
    }
    if let Ok(t) = fs::read_to_string(at(root, "/etc/login.defs")) {
        if let Some(n) = parse_login_defs_sys_uid_max(&t) {
            h.sys_uid_max = n;
        }
    }
    h.remove_ipc = remove_ipc(root, &mut bad);
    (h.cgroup_memory_limit, h.cgroup_memory_file) = cgroup_limit(root, &mut bad);
    h.container = container(root);
    h.unreadable = bad;
    h
}

fn meminfo_into(m: &MemInfo, h: &mut HostFacts) {
    h.mem_total = m.bytes("MemTotal");
    h.mem_available = m.bytes("MemAvailable");
    h.swap_total = m.bytes("SwapTotal");
    h.huge_pages_total = m.get("HugePages_Total");
    h.huge_pages_free = m.get("HugePages_Free");
    h.huge_pages_reserved = m.get("HugePages_Rsvd");
    h.huge_page_size = m.bytes("Hugepagesize");
    h.commit_limit = m.bytes("CommitLimit");
    h.committed = m.bytes("Committed_AS");
}

/// logind.conf, then its drop-ins in filename order (a file in /etc
/// hides one of the same name in /run and /usr/lib).
fn remove_ipc(root: &Path, bad: &mut Vec<String>) -> Option<RemoveIpc> {
    let logind_installed = [
        "/lib/systemd/systemd-logind",
        "/usr/lib/systemd/systemd-logind",
    ]
    .iter()
    .any(|p| at(root, p).exists());
    let systemd_running = at(root, "/run/systemd/system").is_dir();
    let mut files = vec![PathBuf::from("/etc/systemd/logind.conf")];
    let mut dropins: Vec<(String, PathBuf)> = Vec::new();
    for dir in [
        "/usr/lib/systemd/logind.conf.d",
        "/run/systemd/logind.conf.d",
        "/etc/systemd/logind.conf.d",
    ] {
        for e in fs::read_dir(at(root, dir)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                dropins.retain(|(n, _)| *n != name);
                dropins.push((name.clone(), Path::new(dir).join(&name)));
            }
        }
    }
    dropins.sort();
    files.extend(dropins.into_iter().map(|(_, p)| p));
    let mut value = true;
    let mut from = "systemd's default (RemoveIPC=yes)".to_string();
    for f in files {
        let Ok(text) = fs::read_to_string(at(root, &f.to_string_lossy())) else {
            continue;
        };
        match parse_logind_remove_ipc(&text) {
            Ok(Some((v, line))) => {
                value = v;
                from = format!("{}:{line}", f.display());
            }
            Ok(None) => {}
            Err(e) => bad.push(format!("{}: {e}", f.display())),
        }
    }
    (logind_installed || systemd_running).then_some(RemoveIpc {
        systemd_running,
        logind_installed,
        value,
        from,
    })
}

fn cgroup_limit(root: &Path, bad: &mut Vec<String>) -> (Option<u64>, Option<String>) {
    let Some(text) = read(root, "/proc/self/cgroup", bad) else {
        return (None, None);
    };
    let Ok(lines) = parse_cgroup(&text) else {
        bad.push("/proc/self/cgroup: not in the kernel's format".into());
        return (None, None);
    };
    let mut candidates = Vec::new();
    for l in &lines {
        if l.hierarchy == 0 && l.controllers.is_empty() {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                candidates.push(format!("{base}{}/memory.max", l.path.trim_end_matches('/')));
                candidates.push(format!("{base}/memory.max"));
            }
        } else if l.controllers.iter().any(|c| c == "memory") {
            candidates.push(format!(
                "/sys/fs/cgroup/memory{}/memory.limit_in_bytes",
                l.path.trim_end_matches('/')
            ));
            candidates.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".into());
        }
    }
    // The tightest limit found on our own cgroup's path or the root of the
    // hierarchy we can see (a container's namespace shows it as "/").
    let mut best: (Option<u64>, Option<String>) = (None, None);
    for c in candidates {
        let Ok(t) = fs::read_to_string(at(root, &c)) else {
            continue;
        };
        if let Ok(Some(n)) = parse_memory_limit(&t) {
            if best.0.is_none_or(|b| n < b) {
                best = (Some(n), Some(c));
            }
        } else if best.1.is_none() {
            best.1 = Some(c);
        }
    }
    best
}

fn container(root: &Path) -> Option<String> {
    if at(root, "/.dockerenv").exists() {
        return Some("docker (/.dockerenv exists)".into());
    }
    if at(root, "/run/.containerenv").exists() {
        return Some("podman (/run/.containerenv exists)".into());
    }
    if let Ok(env) = fs::read(at(root, "/proc/1/environ")) {
        if let Some(v) = env
            .split(|&b| b == 0)
            .find_map(|kv| kv.strip_prefix(b"container="))
        {
            return Some(format!(
                "{} (container= in PID 1's environment)",
                String::from_utf8_lossy(v)
            ));
        }
    }
    let cg = fs::read_to_string(at(root, "/proc/1/cgroup")).unwrap_or_default();
    for (needle, kind) in [
        ("kubepods", "kubernetes"),
        ("docker", "docker"),
        ("containerd", "containerd"),
        ("lxc", "lxc"),
        ("libpod", "podman"),
    ] {
        if cg.contains(needle) {
            return Some(format!("{kind} (/proc/1/cgroup names {needle})"));
        }
    }
    None
}

/// A memory setting in bytes: `128MB`, `8kB`, `16384` (in `unit` bytes).
pub fn parse_memory_setting(value: &str, unit: u64) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult: u64 = match suffix.trim() {
        "" => unit,
        "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    if n < 0 {
        return None;
    }
    (n as u64).checked_mul(mult)
}

/// The settings `estimate` uses, with PostgreSQL's defaults.
#[derive(Debug, Clone)]
pub struct Sizing {
    /// `shared_buffers`, bytes.
    pub shared_buffers: u64,
    /// `max_connections`.
    pub max_connections: u64,
    /// `autovacuum_max_workers`.
    pub autovacuum_max_workers: u64,
    /// `max_worker_processes`.
    pub max_worker_processes: u64,
    /// `max_wal_senders`.
    pub max_wal_senders: u64,
    /// `max_prepared_transactions`.
    pub max_prepared_transactions: u64,
    /// `max_locks_per_transaction`.
    pub max_locks_per_transaction: u64,
    /// `wal_buffers`, bytes; `None`: -1 (automatic).
    pub wal_buffers: Option<u64>,
}

impl Sizing {
    /// From a directory's settings (defaults where unset or unreadable).
    pub fn from_settings(s: &Settings) -> Sizing {
        let int = |name: &str, default: u64| {
            s.get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        Sizing {
            shared_buffers: s
                .get("shared_buffers")
                .and_then(|v| parse_memory_setting(v, 8192))
                .unwrap_or(128 << 20),
            max_connections: int("max_connections", 100),
            autovacuum_max_workers: int("autovacuum_max_workers", 3),
            max_worker_processes: int("max_worker_processes", 8),
            max_wal_senders: int("max_wal_senders", 10),
            max_prepared_transactions: int("max_prepared_transactions", 0),
            max_locks_per_transaction: int("max_locks_per_transaction", 64),
            wal_buffers: s
                .get("wal_buffers")
                .filter(|v| v.trim() != "-1")
                .and_then(|v| parse_memory_setting(v, 8192)),
        }
    }

    /// `MaxBackends`: 12+ counts WAL senders apart from connections; 10
    /// and 11 count them among `max_connections`.
    pub fn max_backends(&self, major: u32) -> u64 {
        self.max_connections
            + self.autovacuum_max_workers
            + 1
            + self.max_worker_processes
            + if major >= 12 { self.max_wal_senders } else { 0 }
    }
}

/// Estimated main shared memory of a 10–18 server, in bytes.
///
/// Seed 002's table (as of 8.3) sized shared memory as buffers ×
/// (block size + 208) + backends × (1800 + 270 × locks per transaction) +
/// WAL buffers + 770 kB. The shape still holds; the per-item sizes have
/// grown, so they are refitted here by least squares to the shared mapping
/// of real servers (7 configurations × 9 majors, `scripts/fit-shmem`),
/// where the estimate is within 2 % of what the server maps.
pub fn estimate(major: u32, s: &Sizing) -> u64 {
    let nb = s.shared_buffers / 8192;
    let backends = s.max_backends(major) + s.max_prepared_transactions;
    let locks = s.max_locks_per_transaction * backends;
    let wal = s
        .wal_buffers
        .unwrap_or_else(|| (nb / 32).clamp(8, 2048) * 8192);
    let (fixed, per_buffer, per_backend, per_lock) = coefficients(major);
    fixed + nb * per_buffer + backends * per_backend + locks * per_lock + wal
}

/// (fixed, per buffer, per backend, per lock slot) bytes, per major.
fn coefficients(major: u32) -> (u64, u64, u64, u64) {
    // scripts/fit-shmem, 2026-11-21, builds 10.20 … 18.4; largest errors
    // 0.25 % (10, 11), 0.48 % (12–14), 0.66 % (15, 16), 0.30 % (17),
    // 1.97 % (18).
    match major {
        ..=11 => (1_295_000, 8_393, 19_170, 452),
        12..=14 => (1_199_000, 8_394, 21_020, 438),
        15 | 16 => (1_626_000, 8_391, 19_230, 474),
        17 => (1_282_000, 8_448, 22_740, 405),
        _ => (6_170_000, 8_465, 25_459, 541),
    }
}

/// Read the host and, with a data directory, judge it against what the
/// directory needs.
///
/// # Errors
/// A data directory that does not exist or cannot be read.
pub fn limits(data_dir: Option<&Path>, opts: &LimitsOptions) -> Result<LimitsReport, Error> {
    let host = host_facts(opts.root.root());
    let need = match data_dir {
        Some(d) => Some(need(d, opts, &host)?),
        None => None,
    };
    let checks = checks(&host, need.as_ref(), opts.root.root());
    Ok(LimitsReport { host, need, checks })
}

fn need(data_dir: &Path, opts: &LimitsOptions, host: &HostFacts) -> Result<Need, Error> {
    use std::os::unix::fs::MetadataExt;
    super::require_data_dir(data_dir)?;
    let meta = fs::metadata(data_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::data_dir_missing(data_dir)
        } else {
            Error::sys(format!("stat {}", data_dir.display()), e)
        }
    })?;
    let mut problems = Vec::new();
    let major: Option<u32> = match interlock::safe_fs::pg_version(data_dir) {
        Ok(v) => v.as_deref().and_then(interlock::pg::major_of),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let settings = read_settings(&opts.root, data_dir);
    problems.extend(settings.problems.iter().cloned());
    let sizing = Sizing::from_settings(&settings);
    let m = major.unwrap_or(18);
    let huge_pages = settings.get("huge_pages").unwrap_or("try").to_string();
    let shared_memory_type = settings
        .get("shared_memory_type")
        .unwrap_or("mmap")
        .to_string();
    let huge_page_size = settings
        .get("huge_page_size")
        .and_then(|v| parse_memory_setting(v, 1024))
        .filter(|&n| n > 0 && m >= 14)
        .or(host.huge_page_size);
    let max_backends = sizing.max_backends(m);
    // Backends, auxiliary processes (4 in 10–13, 5 in 14–16, 6 in 17, and
    // 18's I/O workers' slots), and prepared transactions' dummies are not
    // semaphores; 18 says its own figure.
    let aux = match m {
        ..=13 => 4,
        14..=16 => 5,
        17 => 6,
        _ => 6 + 32,
    };
    let mut semaphores = max_backends + aux;

    let mut size = None;
    let mut server_running = false;
    let mut huge_needed = None;
    let mut source = String::new();
    let mut asked: Option<String> = None;
    // 1. A running server's mapping.
    let st = status(
        data_dir,
        &StatusOptions {
            postgres: opts.postgres.clone(),
            root: opts.root.clone(),
            ..StatusOptions::default()
        },
    )
    .ok();
    if let Some(r) = &st {
        if r.verdict == Verdict::Running {
            if let Some(pid) = r.lock_file.pid.map(i32::abs) {
                if let Some(bytes) =
                    mapped_size(opts.root.root(), pid, shared_memory_type == "sysv")
                {
                    size = Some(bytes);
                    server_running = true;
                    source = format!("what the running server (PID {pid}) maps");
                }
            }
        }
    }
    // 2. The server itself, when nothing owns the directory.
    let quiet = st.as_ref().is_some_and(|r| {
        r.verdict == Verdict::WillStart
            && r.safe_to_start
            && r.holders.is_empty()
            && r.lock_file.state == crate::LockState::Absent
    });
    if size.is_none() && opts.ask_server && m >= 15 && quiet {
        let found = super::version::detect_binary(
            data_dir,
            opts.postgres.as_deref(),
            (meta.uid(), meta.gid()),
        );
        match found.server_binary.map(PathBuf::from) {
            Some(bin) => {
                let ask = |name: &str| {
                    ask_server(&opts.root, &bin, data_dir, (meta.uid(), meta.gid()), name)
                };
                match ask("shared_memory_size").map(|v| v.parse::<u64>()) {
                    Ok(Ok(mb)) => {
                        size = Some(mb << 20);
                        source = format!(
                            "the server's own figure ({} -C shared_memory_size)",
                            bin.display()
                        );
                        huge_needed = ask("shared_memory_size_in_huge_pages")
                            .ok()
                            .and_then(|v| v.parse::<i64>().ok())
                            .and_then(|n| u64::try_from(n).ok());
                        if m >= 18 {
                            if let Some(n) =
                                ask("num_os_semaphores").ok().and_then(|v| v.parse().ok())
                            {
                                semaphores = n;
                            }
                        }
                    }
                    Ok(Err(_)) => asked = Some("postgres -C printed no number".into()),
                    Err(e) => asked = Some(format!("postgres -C failed: {e}")),
                }
            }
            None => {
                asked = Some(match found.probe_failure {
                    Some(why) => format!("no server binary of this version answered: {why}"),
                    None => "no server binary of this version found".into(),
                })
            }
        }
    }
    // 3. The estimate.
    let size = size.unwrap_or_else(|| {
        let why = if st.as_ref().is_some_and(|r| r.verdict == Verdict::Running) {
            "a server runs, its mapping could not be read"
        } else if m >= 15 && !quiet {
            "the directory is in use or blocked, so postgres -C is not run"
        } else if m >= 15 && !opts.ask_server {
            "not asking the server (--no-server)"
        } else if let Some(why) = &asked {
            why.as_str()
        } else {
            "before 15 the server cannot say"
        };
        source = match major {
            Some(_) => format!("estimate from the configuration ({why})"),
            None => format!(
                "estimate from the configuration, as for 18: PG_VERSION is unreadable ({why})"
            ),
        };
        estimate(m, &sizing)
    });
    if huge_needed.is_none() {
        if let Some(hp) = huge_page_size.filter(|&h| h > 0) {
            // As 15–18 compute it: one page more than the quotient.
            huge_needed = Some(size / hp + 1);
        }
    }
    let used = [
        "shared_buffers",
        "max_connections",
        "autovacuum_max_workers",
        "max_worker_processes",
        "max_wal_senders",
        "max_prepared_transactions",
        "max_locks_per_transaction",
        "wal_buffers",
        "huge_pages",
        "huge_page_size",
        "shared_memory_type",
        "dynamic_shared_memory_type",
    ]
    .iter()
    .filter_map(|n| {
        let s = settings.values.get(*n)?;
        Some(format!(
            "{n} = {} ({}:{})",
            s.value,
            s.file.display(),
            s.line
        ))
    })
    .collect();
    Ok(Need {
        data_dir: data_dir.display().to_string(),
        major,
        shared_memory_size: size,
        size_source: source,
        server_running,
        huge_pages,
        huge_pages_needed: huge_needed,
        huge_page_size,
        sysv_segment_size: if shared_memory_type == "sysv" {
            size
        } else {
            // sizeof(PGShmemHeader) on x86_64.
            interlock_format::shmem_header::HEADER_SIZE as u64
        },
        shared_memory_type,
        max_backends,
        semaphores,
        dynamic_shared_memory_type: settings
            .get("dynamic_shared_memory_type")
            .unwrap_or("posix")
            .to_string(),
        owner: opts.root.user_name(meta.uid()),
        owner_is_system_user: meta.uid() <= host.sys_uid_max,
        settings: used,
        problems,
    })
}

/// The main shared mapping of a running postmaster: its largest shared
/// `/dev/zero` or `/anon_hugepage` mapping (mmap), or System V mapping.
fn mapped_size(root: &Path, pid: i32, sysv: bool) -> Option<u64> {
    let text = fs::read(at(root, &format!("/proc/{pid}/maps"))).ok()?;
    text.split(|&b| b == b'\n')
        .filter_map(|l| parse_maps_line(l).ok())
        .filter(|m| m.is_shared())
        .filter(|m| {
            let p = m.path.as_deref().unwrap_or_default();
            if sysv {
                m.sysv_key().is_some()
            } else {
                p == b"/dev/zero" || p == b"/anon_hugepage"
            }
        })
        .map(|m| m.end - m.start)
        .max()
}

/// How long one `postgres -C` may take before it and its process group
/// are killed.
pub const POSTGRES_C_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `postgres -D DIR -C NAME` as the directory's owner: its output, or
/// why it failed (its last line of stderr, or that it timed out).
fn ask_server(
    root: &HostRoot,
    bin: &Path,
    data_dir: &Path,
    (uid, gid): (u32, u32),
    name: &str,
) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("-D").arg(data_dir);
    let conf = crate::config::config_file(root, data_dir);
    if conf != data_dir.join("postgresql.conf") {
        // Debian's layout: the configuration lives in /etc/postgresql.
        cmd.arg("-c").arg(format!("config_file={}", conf.display()));
    }
    // The owner runs without its supplementary groups (run_command_as), so
    // a key file readable through ssl-cert would stop the command; SSL
    // plays no part in the sizes.
    cmd.args(["-c", "ssl=off", "-C", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if rustix::process::geteuid().is_root() {
        interlock::sys::proc::run_command_as(&mut cmd, uid, gid);
    }
    // The server reads the owner's configuration, which may never end
    // (a link to /dev/zero) or block (a FIFO): bound it.
    let out = crate::child::output_within(&mut cmd, POSTGRES_C_TIME_LIMIT, 1 << 20)
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !stdout.is_empty() {
        Ok(stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("no output")
            .to_string())
    }
}

/// A size that is a limit, for people: "no limit" past 2^60 (what the
/// kernel's unlimited defaults and cgroup's "max" come to), else
/// [`crate::human_bytes`].
pub fn human_limit(bytes: u64) -> String {
    if bytes >= 1 << 60 {
        "no limit".into()
    } else {
        crate::human_bytes(bytes)
    }
}

fn sysctl_fix(name: &str, value: &str, file: &str) -> Vec<String> {
    vec![
        format!("sysctl -w {name}={value}"),
        format!("persist it: echo '{name} = {value}' > /etc/sysctl.d/{file}.conf"),
    ]
}

fn check(
    name: &'static str,
    status: &'static str,
    value: String,
    need: Option<String>,
    message: String,
    fix: Vec<String>,
) -> Check {
    Check {
        name,
        status,
        value,
        need,
        message,
        fix,
    }
}

fn unknown(name: &'static str, what: &str) -> Check {
    check(
        name,
        "unknown",
        "?".into(),
        None,
        format!("{what} could not be read"),
        vec![],
    )
}

fn checks(h: &HostFacts, need: Option<&Need>, root: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let seg = need.map_or(HEADER, |n| n.sysv_segment_size);
    let running_here = need.is_some_and(|n| n.server_running);
    // --- System V shared memory ---
    out.push(match h.shmmax {
        Some(v) if v >= seg => check(
            "kernel.shmmax",
            "ok",
            v.to_string(),
            Some(format!("{seg} bytes")),
            if v >= 1 << 60 {
                format!("no limit on a segment's size; the server's System V segment is {}", human_limit(seg))
            } else {
                format!("a segment may be {}; the server's System V segment is {}", human_limit(v), human_limit(seg))
            },
            vec![],
        ),
        Some(v) => check(
            "kernel.shmmax",
            "too_low",
            v.to_string(),
            Some(format!("{seg} bytes")),
            format!(
                "the server's System V segment ({}) is larger than a segment may be ({}): shmget fails with EINVAL",
                human_limit(seg),
                human_limit(v)
            ),
            sysctl_fix("kernel.shmmax", &seg.next_power_of_two().to_string(), "30-postgresql-shm"),
        ),
        None => unknown("kernel.shmmax", "/proc/sys/kernel/shmmax"),
    });
    out.push(match (h.shmall, h.shm_pages) {
        (Some(v), Some(used)) => {
            let pages = seg.div_ceil(h.page_size) + if running_here { 0 } else { used };
            if v >= pages {
                check(
                    "kernel.shmall",
                    "ok",
                    v.to_string(),
                    Some(format!("{pages} pages")),
                    if v >= 1 << 50 {
                        format!("no limit on System V shared memory in all; {used} pages in use")
                    } else {
                        format!(
                            "{v} pages of {} bytes may be System V shared memory; {used} are in use",
                            h.page_size
                        )
                    },
                    vec![],
                )
            } else {
                check(
                    "kernel.shmall",
                    "too_low",
                    v.to_string(),
                    Some(format!("{pages} pages")),
                    format!(
                        "System V shared memory would need {pages} pages of {} bytes, the limit is {v}: shmget fails with ENOMEM",
                        h.page_size
                    ),
                    sysctl_fix("kernel.shmall", &(pages * 2).to_string(), "30-postgresql-shm"),
                )
            }
        }
        _ => unknown("kernel.shmall", "/proc/sys/kernel/shmall or /proc/sysvipc/shm"),
    });
    out.push(match (h.shmmni, h.shm_segments) {
        (Some(v), Some(n)) => {
            let wanted = n + u64::from(!running_here);
            if v >= wanted {
                check(
                    "kernel.shmmni",
                    "ok",
                    v.to_string(),
                    Some(format!("{wanted} segments")),
                    format!("{n} of {v} System V segment IDs are taken"),
                    vec![],
                )
            } else {
                check(
                    "kernel.shmmni",
                    "too_low",
                    v.to_string(),
                    Some(format!("{wanted} segments")),
                    format!(
                        "all {v} System V segment IDs are taken ({n} exist): shmget fails with ENOSPC; leaked segments are listed by `interlock scan`"
                    ),
                    sysctl_fix("kernel.shmmni", &(wanted * 2).max(4096).to_string(), "30-postgresql-shm"),
                )
            }
        }
        _ => unknown("kernel.shmmni", "/proc/sys/kernel/shmmni or /proc/sysvipc/shm"),
    });
    // --- semaphores ---
    if let (Some(msl), Some(mns), Some(opm), Some(mni)) = (h.semmsl, h.semmns, h.semopm, h.semmni) {
        let n = need.map_or(0, |n| n.semaphores);
        let sets = n.div_ceil(16);
        let used_sets = h.sem_sets.unwrap_or(0);
        let used = h.sems.unwrap_or(0);
        let value = format!("{msl} {mns} {opm} {mni}");
        let ok = msl >= 17 && mni >= used_sets + sets && mns >= used + sets * 17;
        let message = if need.is_some() {
            format!(
                "{n} semaphores; PostgreSQL 10+ on Linux makes them POSIX semaphores inside its shared memory, so kernel.sem matters only to a build using System V semaphores, which would need {sets} sets of 17 (SEMMSL ≥ 17, SEMMNI ≥ {}, SEMMNS ≥ {})",
                used_sets + sets,
                used + sets * 17
            )
        } else {
            format!(
                "SEMMSL {msl}, SEMMNS {mns}, SEMOPM {opm}, SEMMNI {mni}; {used_sets} sets in use"
            )
        };
        out.push(if ok {
            check("kernel.sem", "ok", value, None, message, vec![])
        } else {
            let v = format!(
                "{} {} {} {}",
                msl.max(250),
                mns.max((used + sets * 17) * 2).max(32000),
                opm.max(100),
                mni.max((used_sets + sets) * 2).max(128)
            );
            check(
                "kernel.sem",
                "warning",
                value,
                Some(format!("SEMMSL ≥ 17, SEMMNI ≥ {}, SEMMNS ≥ {}", used_sets + sets, used + sets * 17)),
                format!("too low for a build using System V semaphores (\"could not create semaphores: No space left on device\"): {message}"),
                sysctl_fix("kernel.sem", &format!("\"{v}\""), "30-postgresql-sem"),
            )
        });
    } else {
        out.push(unknown("kernel.sem", "/proc/sys/kernel/sem"));
    }
    // --- huge pages ---
    out.push(huge_check(h, need));
    // --- memory, overcommit, cgroup ---
    out.push(memory_check(h, need));
    out.push(cgroup_check(h, need));
    // --- /dev/shm ---
    out.push(dev_shm_check(h, need));
    // --- RemoveIPC ---
    out.push(remove_ipc_check(h, need, root));
    out.push(match &h.container {
        Some(c) => check(
            "container",
            "info",
            c.clone(),
            None,
            format!(
                "runs in a container: {c}; System V segments and /dev/shm belong to the container's (pod's) IPC namespace and outlive a container restart"
            ),
            vec![],
        ),
        None => check("container", "info", "none".into(), None, "no container found".into(), vec![]),
    });
    out
}

const HEADER: u64 = interlock_format::shmem_header::HEADER_SIZE as u64;

fn huge_check(h: &HostFacts, need: Option<&Need>) -> Check {
    let (Some(total), Some(free), Some(size)) =
        (h.huge_pages_total, h.huge_pages_free, h.huge_page_size)
    else {
        return unknown("huge pages", "/proc/meminfo's HugePages lines");
    };
    let rsvd = h.huge_pages_reserved.unwrap_or(0);
    let avail = free.saturating_sub(rsvd);
    let value = format!("{total} pages of {}, {avail} free", human_limit(size));
    let Some(n) = need else {
        return check(
            "huge pages",
            "info",
            value.clone(),
            None,
            format!("{value} (vm.nr_hugepages)"),
            vec![],
        );
    };
    let Some(needed) = n.huge_pages_needed else {
        return check(
            "huge pages",
            "unknown",
            value,
            None,
            "the huge page size is unknown".into(),
            vec![],
        );
    };
    let running = n.server_running;
    let enough = running || avail >= needed;
    let target = total + needed.saturating_sub(avail);
    let fix = sysctl_fix(
        "vm.nr_hugepages",
        &target.to_string(),
        "30-postgresql-hugepages",
    );
    match (n.huge_pages.as_str(), enough) {
        ("off", _) => check(
            "huge pages",
            "info",
            value,
            Some(format!("{needed} pages")),
            format!("huge_pages = off: not used (they would need {needed} pages)"),
            vec![],
        ),
        (_, true) => check(
            "huge pages",
            "ok",
            value,
            Some(format!("{needed} pages")),
            if running {
                format!("huge_pages = {}: the server runs", n.huge_pages)
            } else {
                format!("huge_pages = {}: {needed} pages needed, {avail} free", n.huge_pages)
            },
            vec![],
        ),
        ("on", false) => check(
            "huge pages",
            "too_low",
            value,
            Some(format!("{needed} pages")),
            format!(
                "huge_pages = on needs {needed} free huge pages of {}, {avail} are free: the server stops with \"could not map anonymous shared memory: Cannot allocate memory\"",
                human_limit(size)
            ),
            {
                let mut f = fix;
                f.push("or set huge_pages = try (falls back to normal pages)".into());
                f
            },
        ),
        (_, false) if total == 0 => check(
            "huge pages",
            "info",
            value,
            Some(format!("{needed} pages")),
            format!(
                "huge_pages = {}: no huge pages are reserved, so normal pages are used ({needed} huge pages would hold it)",
                n.huge_pages
            ),
            fix,
        ),
        (_, false) => check(
            "huge pages",
            "warning",
            value,
            Some(format!("{needed} pages")),
            format!(
                "huge_pages = {}: {needed} huge pages needed, {avail} free, so the server falls back to normal pages",
                n.huge_pages
            ),
            fix,
        ),
    }
}

fn memory_check(h: &HostFacts, need: Option<&Need>) -> Check {
    let mode = h.overcommit_memory;
    let value = format!(
        "vm.overcommit_memory = {}, MemTotal {}, MemAvailable {}",
        mode.map_or("?".into(), |m| m.to_string()),
        h.mem_total.map_or("?".into(), human_limit),
        h.mem_available.map_or("?".into(), human_limit)
    );
    let Some(n) = need else {
        return check("memory", "info", value.clone(), None, value, vec![]);
    };
    if n.server_running {
        return check(
            "memory",
            "ok",
            value,
            Some(human_limit(n.shared_memory_size)),
            format!(
                "the running server maps {}",
                human_limit(n.shared_memory_size)
            ),
            vec![],
        );
    }
    let size = n.shared_memory_size;
    let reduce = "or lower shared_buffers (and max_connections) in postgresql.conf".to_string();
    match mode {
        Some(2) => {
            let (Some(limit), Some(used)) = (h.commit_limit, h.committed) else {
                return unknown("memory", "CommitLimit/Committed_AS in /proc/meminfo");
            };
            let room = limit.saturating_sub(used);
            if room >= size {
                check(
                    "memory",
                    "ok",
                    value,
                    Some(human_limit(size)),
                    format!(
                        "strict overcommit: {} of commit room left, {} needed",
                        human_limit(room),
                        human_limit(size)
                    ),
                    vec![],
                )
            } else {
                check(
                    "memory",
                    "too_low",
                    value,
                    Some(human_limit(size)),
                    format!(
                        "strict overcommit (mode 2): only {} can still be committed, the server needs {}: \"could not map anonymous shared memory: Cannot allocate memory\"",
                        human_limit(room),
                        human_limit(size)
                    ),
                    {
                        let mut f = sysctl_fix(
                            "vm.overcommit_ratio",
                            &(h.overcommit_ratio.unwrap_or(50) + 10).min(100).to_string(),
                            "30-postgresql-overcommit",
                        );
                        f.push(reduce);
                        f
                    },
                )
            }
        }
        Some(0) | Some(1) | None => {
            let total = h.mem_total.unwrap_or(0) + h.swap_total.unwrap_or(0);
            if mode == Some(0) && total > 0 && size > total {
                check(
                    "memory",
                    "too_low",
                    value,
                    Some(human_limit(size)),
                    format!(
                        "{} of shared memory is more than memory and swap together ({}): the kernel refuses the mapping (\"could not map anonymous shared memory: Cannot allocate memory\")",
                        human_limit(size),
                        human_limit(total)
                    ),
                    vec![reduce.trim_start_matches("or ").to_string()],
                )
            } else if h.mem_available.is_some_and(|a| size > a) {
                check(
                    "memory",
                    "warning",
                    value,
                    Some(human_limit(size)),
                    format!(
                        "{} of shared memory is more than is available now ({}): the server starts, then the OOM killer may stop it as the buffers fill",
                        human_limit(size),
                        h.mem_available.map_or("?".into(), human_limit)
                    ),
                    vec![reduce.trim_start_matches("or ").to_string()],
                )
            } else {
                check(
                    "memory",
                    "ok",
                    value,
                    Some(human_limit(size)),
                    format!("{} of shared memory fits", human_limit(size)),
                    vec![],
                )
            }
        }
        Some(_) => unknown("memory", "vm.overcommit_memory"),
    }
}

fn cgroup_check(h: &HostFacts, need: Option<&Need>) -> Check {
    let Some(limit) = h.cgroup_memory_limit else {
        return check(
            "cgroup memory",
            "ok",
            "no limit".into(),
            None,
            match &h.cgroup_memory_file {
                Some(f) => format!("no memory limit ({f})"),
                None => "no memory limit found".into(),
            },
            vec![],
        );
    };
    let value = format!(
        "{} ({})",
        human_limit(limit),
        h.cgroup_memory_file.as_deref().unwrap_or("?")
    );
    let Some(n) = need else {
        return check(
            "cgroup memory",
            "info",
            value.clone(),
            None,
            format!("memory limit {value}"),
            vec![],
        );
    };
    let size = n.shared_memory_size;
    if size >= limit {
        check(
            "cgroup memory",
            "too_low",
            value,
            Some(human_limit(size)),
            format!(
                "the cgroup may use {}, the server's shared memory alone is {}: it is OOM-killed (SIGKILL) as its buffers fill, leaving its children attached",
                human_limit(limit),
                human_limit(size)
            ),
            vec![
                "raise the container's memory limit (docker --memory, Kubernetes resources.limits.memory)".into(),
                "or lower shared_buffers".into(),
            ],
        )
    } else if size * 4 >= limit * 3 {
        check(
            "cgroup memory",
            "warning",
            value,
            Some(human_limit(size)),
            format!(
                "shared memory ({}) is over three quarters of the cgroup's limit ({}): little is left for backends' own memory",
                human_limit(size),
                human_limit(limit)
            ),
            vec!["raise the memory limit or lower shared_buffers".into()],
        )
    } else {
        check(
            "cgroup memory",
            "ok",
            value,
            Some(human_limit(size)),
            format!("{} of {} limit", human_limit(size), human_limit(limit)),
            vec![],
        )
    }
}

fn dev_shm_check(h: &HostFacts, need: Option<&Need>) -> Check {
    let (Some(size), Some(free)) = (h.dev_shm_size, h.dev_shm_free) else {
        return unknown("/dev/shm", "/dev/shm");
    };
    let value = format!("{} size, {} free", human_limit(size), human_limit(free));
    if need.is_some_and(|n| n.dynamic_shared_memory_type != "posix") {
        return check(
            "/dev/shm",
            "info",
            value,
            None,
            "dynamic_shared_memory_type is not posix: /dev/shm is not used".into(),
            vec![],
        );
    }
    // Parallel queries put their shared state in /dev/shm; containers'
    // default of 64 MB is what "could not resize shared memory segment"
    // reports come from.
    const WANT: u64 = 256 << 20;
    if free < WANT {
        check(
            "/dev/shm",
            "warning",
            value,
            Some(format!("{} free", human_limit(WANT))),
            format!(
                "{} free in /dev/shm: parallel queries fail with \"could not resize shared memory segment … No space left on device\" once their shared state outgrows it",
                human_limit(free)
            ),
            vec![
                "Docker: --shm-size=1g; Kubernetes: an emptyDir with medium: Memory mounted at /dev/shm".into(),
                "a host: mount -o remount,size=1G /dev/shm (persist in /etc/fstab)".into(),
            ],
        )
    } else {
        check(
            "/dev/shm",
            "ok",
            value,
            None,
            format!("{} free for dynamic shared memory", human_limit(free)),
            vec![],
        )
    }
}

fn remove_ipc_check(h: &HostFacts, need: Option<&Need>, root: &Path) -> Check {
    let Some(r) = &h.remove_ipc else {
        return check(
            "RemoveIPC",
            "ok",
            "no systemd-logind".into(),
            None,
            "systemd-logind is not installed: nothing removes the server's IPC at log-out".into(),
            vec![],
        );
    };
    let value = format!(
        "RemoveIPC={} ({})",
        if r.value { "yes" } else { "no" },
        r.from
    );
    // Whose IPC: the directory's owner, else the usual postgres user.
    let (who, uid) = match need {
        Some(n) => (n.owner.clone(), None),
        None => ("postgres".to_string(), uid_of(root, "postgres")),
    };
    let system = match need {
        Some(n) => Some(n.owner_is_system_user),
        None => uid.map(|u| u <= h.sys_uid_max),
    };
    if !r.value {
        return check(
            "RemoveIPC",
            "ok",
            value,
            None,
            "logind does not remove IPC objects at log-out".into(),
            vec![],
        );
    }
    if !r.systemd_running {
        return check(
            "RemoveIPC",
            "ok",
            value,
            None,
            "systemd does not run here (a container?): logind removes nothing".into(),
            vec![],
        );
    }
    match system {
        Some(true) => check(
            "RemoveIPC",
            "ok",
            value,
            None,
            format!("{who} is a system user (uid ≤ SYS_UID_MAX {}): exempt", h.sys_uid_max),
            vec![],
        ),
        Some(false) => check(
            "RemoveIPC",
            "too_low",
            value,
            None,
            format!(
                "{who} is not a system user (uid > SYS_UID_MAX {}): when its last session ends (an admin's `su - {who}` logging out), logind removes its shared memory and semaphores under the running server (\"could not open shared memory segment … No such file or directory\")",
                h.sys_uid_max
            ),
            vec![
                "printf '[Login]\\nRemoveIPC=no\\n' > /etc/systemd/logind.conf.d/postgresql.conf && systemctl restart systemd-logind".into(),
                format!("or make {who} a system user (useradd -r / adduser --system)"),
            ],
        ),
        None => check("RemoveIPC", "unknown", value, None, format!("whether {who} is a system user is unknown"), vec![]),
    }
}

fn uid_of(root: &Path, user: &str) -> Option<u32> {
    interlock::process::passwd_entry_at(root, |e| e.name == user).map(|e| e.uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_settings() {
        assert_eq!(parse_memory_setting("128MB", 8192), Some(128 << 20));
        assert_eq!(parse_memory_setting("16384", 8192), Some(128 << 20));
        assert_eq!(parse_memory_setting("2 GB", 8192), Some(2 << 30));
        assert_eq!(parse_memory_setting("8kB", 8192), Some(8192));
        assert_eq!(parse_memory_setting("lots", 8192), None);
        assert_eq!(parse_memory_setting("-1", 8192), None);
    }

    #[test]
    fn max_backends_follows_the_version() {
        let s = Sizing::from_settings(&Settings::default());
        assert_eq!(s.max_backends(11), 112);
        assert_eq!(s.max_backends(12), 122);
    }
}
