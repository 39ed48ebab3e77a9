//! `scan`: the whole host. Every PostgreSQL-like System V segment and DSM
//! file, every postmaster and leftover backend, each mapped to its data
//! directory without attaching; directories that share an inode number (and
//! so probe the same keys); leaked segments; other namespaces.
//!
//! Data directories are found from the working directories of PostgreSQL
//! processes (every server process runs in its data directory), from the
//! directories given, and from Debian's `/var/lib/postgresql/*/*`. Each is
//! then diagnosed with [`super::status()`].

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::host::{now_epoch, DsmState, Host, ProcRead, GRACE_SECS};
use super::*;
use interlock::process::ProcFs;

/// What to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Data directories to include besides those found.
    pub dirs: Vec<PathBuf>,
    /// Options for each directory's diagnosis.
    pub status: StatusOptions,
    /// Where Debian keeps clusters (`/var/lib/postgresql`).
    pub debian_root: PathBuf,
    /// etcd client endpoints: also read each directory's fence there
    /// (`interlock run --etcd`): its default key, or any key under its
    /// system identifier whose holder recorded this directory
    /// ([`crate::fence::FenceReader::read_found`]).
    pub etcd: Option<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            dirs: Vec::new(),
            status: StatusOptions::default(),
            debian_root: PathBuf::from("/var/lib/postgresql"),
            etcd: None,
        }
    }
}

/// A PostgreSQL-like segment on the host.
#[derive(Debug, Clone, Serialize)]
pub struct HostSegment {
    /// Key as PostgreSQL prints it.
    pub key: u64,
    /// Key as `ipcs` prints it.
    pub key_hex: String,
    /// Id.
    pub shmid: i32,
    /// Size in bytes.
    pub size: u64,
    /// Attach count.
    pub nattch: u64,
    /// Owner.
    pub uid: u32,
    /// Creator PID.
    pub cpid: i32,
    /// Removed while attached.
    pub removed: bool,
    /// Its data directory, if known.
    pub data_dir: Option<String>,
    /// How that is known, or why not.
    pub evidence: String,
    /// Attached processes seen in this IPC namespace.
    pub holders: Vec<i32>,
}

/// One data directory, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct HostDir {
    /// The full diagnosis.
    #[serde(flatten)]
    pub status: StatusReport,
    /// How the directory was found.
    pub found_by: String,
}

/// The host.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// Our IPC namespace (inode of `/proc/self/ns/ipc`).
    pub ipc_namespace: Option<u64>,
    /// Our PID namespace.
    pub pid_namespace: Option<u64>,
    /// Every data directory found.
    pub data_dirs: Vec<HostDir>,
    /// Every PostgreSQL-like segment.
    pub segments: Vec<HostSegment>,
    /// Every `/dev/shm/PostgreSQL.*` file.
    pub dsm: Vec<DsmInfo>,
    /// Host-wide findings.
    pub findings: Vec<Finding>,
    /// The fences read in etcd, when asked for (`--etcd`); each
    /// directory's own is in its report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<ScanEtcd>,
}

/// etcd as `scan --etcd` found it.
#[derive(Debug, Clone, Serialize)]
pub struct ScanEtcd {
    /// The endpoints, as given.
    pub endpoints: String,
    /// Why etcd could not be reached, if it could not: then every
    /// directory's fence is unknown, and so is its verdict.
    pub unreachable: Option<String>,
    /// Keys under a scanned directory's system identifier that count for
    /// no directory found: fenced under other names (replicas share a
    /// system identifier). Informational, never a verdict.
    pub other_names: Vec<crate::fence::OtherName>,
}

/// A PostgreSQL process: PID, working directory, its (device, inode).
struct PgProc {
    pid: i32,
    cwd: Option<PathBuf>,
    cwd_id: Option<(u64, u64)>,
}

fn is_pg_exe(p: &Path) -> bool {
    interlock_format::pgproc::is_postgres_executable(p)
}

/// Scan the host.
pub fn scan(opts: &ScanOptions) -> ScanReport {
    let procfs: ProcFs = opts.status.root.procfs().clone();
    let mut host = Host::read(&opts.status.root);
    let my_pid = host.my_pid;
    let pid_ns = procfs.namespace(my_pid, "pid").ok();
    let mut findings: Vec<Finding> = Vec::new();
    let mut find = |code, severity, message: String| {
        findings.push(Finding {
            code,
            severity,
            message,
        })
    };

    // Every process once: its owner (of /proc/PID, one stat); for
    // processes not root's, also its executable and its command line (a
    // process title). PostgreSQL refuses to run as root (`check_root` in
    // src/backend/main/main.c, for a postmaster and a standalone backend
    // alike), so a root process is never one of its servers and costs no
    // more than that stat. PostgreSQL's processes have their maps read.
    let pids = host.all_pids();
    let mut pg_procs: Vec<PgProc> = Vec::new();
    let mut others: Vec<i32> = Vec::new();
    let mut root: Vec<i32> = Vec::new();
    let candidates: Vec<i32> = pids.iter().copied().filter(|&p| p != my_pid).collect();
    // The boot time, read once for every process (as `Host::info` reads it).
    let known_boot = host.boot_time_read();
    let boot = std::sync::OnceLock::new();
    let boot_time = || *boot.get_or_init(|| known_boot.unwrap_or_else(|| procfs.boot_time().ok()));
    let seen = host.owners_and(&candidates, |procfs, pid, uid| {
        let is_pg = uid != 0
            && (procfs.exe(pid).map(|e| is_pg_exe(&e)).unwrap_or(false)
                || fs::read(procfs.root().join(pid.to_string()).join("cmdline"))
                    .ok()
                    .and_then(|c| interlock_format::pgproc::pg_role(&c))
                    .is_some());
        // What the diagnoses ask of a PostgreSQL process (its maps,
        // working directory, namespace, stat and status, children) is read
        // here, on the pass's threads, rather than one at a time later.
        is_pg.then(|| {
            ProcRead::of(procfs, pid, || {
                boot_time().ok_or_else(|| std::io::Error::other("no boot time in /proc/stat"))
            })
        })
    });
    if let Some(b) = boot.get() {
        host.keep_boot_time(*b);
    }
    for (pid, uid, pg_read) in seen {
        let Some(read) = pg_read else {
            if uid == 0 {
                root.push(pid);
            } else {
                others.push(pid);
            }
            continue;
        };
        pg_procs.push(PgProc {
            pid,
            cwd: read.cwd.clone(),
            cwd_id: read.cwd_id,
        });
        host.keep(pid, uid, read);
    }
    // The maps of the others only as far as needed: while the segment
    // table counts attachments the maps read do not show (anyone with
    // the permission may attach a segment, root to any), other users'
    // processes, then root's; and, as `status` does for its directory,
    // every process of a user who owns a /dev/shm/PostgreSQL.* file that
    // no map read so far shows.
    let mut missing = host.unaccounted_attachments();
    for pid in others.into_iter().chain(root) {
        if missing == 0 {
            break;
        }
        if host.mappings(pid).is_some_and(|m| !m.sysv.is_empty()) {
            missing = host.unaccounted_attachments();
        }
    }
    let files = host.dsm_files(&opts.status.root.dev_shm());
    let usage = host.dsm_use(&files);
    let mut dsm_owners: Vec<u32> = files
        .iter()
        .filter(|f| !usage.is_mapped(f.handle))
        .map(|f| f.uid)
        .collect();
    dsm_owners.sort_unstable();
    dsm_owners.dedup();
    if !dsm_owners.is_empty() {
        host.read_all_mappings(&dsm_owners);
    }

    // Processes of other namespaces.
    let mut other_ns: Vec<String> = Vec::new();
    for PgProc { pid, cwd, .. } in &pg_procs {
        let theirs = host.ipc_namespace(*pid);
        if host.my_ipc_ns.is_some() && theirs.is_some() && theirs != host.my_ipc_ns {
            if let Ok(info) = procfs.info(*pid) {
                if info.role == Some(PgRole::Postmaster) {
                    other_ns.push(format!(
                        "{pid} ({}, in {}{})",
                        info.cmdline,
                        cwd.as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "?".into()),
                        info.nspid
                            .last()
                            .filter(|_| info.nspid.len() > 1)
                            .map(|inner| format!(", PID {inner} in its container"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    if !other_ns.is_empty() {
        find(
            Code::OtherNamespace,
            Severity::Warning,
            format!(
                "PostgreSQL servers in another IPC namespace (containers): {}. Their segments are invisible here, so their directories' diagnosis from this namespace cannot see them; run interlock inside (nsenter -t PID -i -m -p)",
                other_ns.join("; ")
            ),
        );
    }

    // Candidate directories.
    let mut dirs: BTreeMap<(u64, u64), (PathBuf, String)> = BTreeMap::new();
    for d in &opts.dirs {
        if let Ok(m) = fs::metadata(d) {
            dirs.entry((m.dev(), m.ino()))
                .or_insert_with(|| (d.clone(), "given".into()));
        }
    }
    for PgProc { pid, cwd, cwd_id } in &pg_procs {
        if let (Some(cwd), Some(id)) = (cwd, cwd_id) {
            // One look per directory, not per process working in it.
            if dirs.contains_key(id) {
                continue;
            }
            if cwd.join("PG_VERSION").is_file() || cwd.join("postmaster.pid").is_file() {
                dirs.entry(*id)
                    .or_insert_with(|| (cwd.clone(), format!("working directory of PID {pid}")));
            }
        }
    }
    if let Ok(versions) = fs::read_dir(&opts.debian_root) {
        for v in versions.flatten() {
            let Ok(clusters) = fs::read_dir(v.path()) else {
                continue;
            };
            for c in clusters.flatten() {
                let p = c.path();
                if p.join("PG_VERSION").is_file() {
                    if let Ok(m) = fs::metadata(&p) {
                        dirs.entry((m.dev(), m.ino()))
                            .or_insert_with(|| (p, "Debian's layout".into()));
                    }
                }
            }
        }
    }

    // Diagnose each, from the host as read above: every process's maps are
    // in `host` already, and what each diagnosis reads more (working
    // directories, the /dev/shm listing) is kept for the next.
    // With etcd, each directory's fence too (`fence.rs`, `read_found`: one
    // range per system identifier, a key counted by its name or the
    // datadir its holder recorded), from one reader: one client, one time
    // budget for all, and no further attempt once etcd is found
    // unreachable.
    let mut fences = opts
        .etcd
        .as_deref()
        .map(|endpoints| crate::fence::FenceReader::here(endpoints, crate::fence::LIMIT));
    let mut data_dirs: Vec<HostDir> = Vec::new();
    for (path, found_by) in dirs.values() {
        if let Ok(mut status) = super::status::status_with_host(path, &opts.status, &mut host) {
            if let Some(reader) = &mut fences {
                let fence = reader.read_found(path);
                crate::fence::apply_fence(&mut status, fence);
            }
            data_dirs.push(HostDir {
                status,
                found_by: found_by.clone(),
            });
        }
    }

    // Directories whose inodes give the same first key (13+).
    let mut by_key: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for ((_, ino), (path, _)) in &dirs {
        by_key
            .entry(*ino as u32)
            .or_default()
            .push(path.display().to_string());
    }
    for (key, paths) in by_key.iter().filter(|(_, p)| p.len() > 1) {
        find(
            Code::KeyCollision,
            Severity::Warning,
            format!(
                "{} have the same inode number on different filesystems, so PostgreSQL 13+ starts probing at the same key {:#010x} for each: the second to start takes a later key, and ipcs keys alone no longer tell their segments apart",
                paths.join(" and "),
                key
            ),
        );
    }

    // Every PostgreSQL-like segment: mapped to a directory by the diagnoses
    // (header, creator, holders' cwd), else by a lock file's line 7.
    let mut holders_by_shmid: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let pg_pids: Vec<i32> = pg_procs.iter().map(|p| p.pid).collect();
    let mapped: Vec<(i32, Vec<i32>)> = host
        .mapped()
        .map(|(pid, m)| (pid, m.sysv.iter().map(|s| s.shmid).collect()))
        .collect();
    for (pid, ids) in mapped {
        let same_ns = host.ipc_namespace(pid) == host.my_ipc_ns;
        if !same_ns {
            continue;
        }
        for id in ids {
            let v = holders_by_shmid.entry(id).or_default();
            if !v.contains(&pid) {
                v.push(pid);
            }
        }
    }
    let now = now_epoch();
    let mut segments = Vec::new();
    for e in &host.shm {
        let holders = holders_by_shmid.get(&e.shmid).cloned().unwrap_or_default();
        let pg_held = holders.iter().any(|p| pg_pids.contains(p));
        let looks_pg = pg_held || (e.size == 56 && e.permissions() == 0o600);
        if !looks_pg {
            continue;
        }
        let mut data_dir = None;
        let mut evidence = String::new();
        for d in &data_dirs {
            if let Some(s) = d.status.segments.iter().find(|s| s.shmid == e.shmid) {
                if s.belongs == Whose::ThisDirectory {
                    data_dir = Some(d.status.data_dir.clone());
                    evidence = s.evidence.clone();
                    break;
                }
            }
        }
        if data_dir.is_none() {
            if let Some(d) = data_dirs
                .iter()
                .find(|d| d.status.lock_file.shmem_id == Some(e.shmid as u64))
            {
                data_dir = Some(d.status.data_dir.clone());
                evidence = "named on line 7 of its postmaster.pid".into();
            }
        }
        if data_dir.is_none() {
            evidence = if e.nattch == 0 {
                "nobody is attached and no known directory names it".into()
            } else {
                "its holders work in no known data directory".into()
            };
            if e.nattch == 0 && now - e.ctime > GRACE_SECS {
                find(
                    Code::LeakedSegment,
                    Severity::Warning,
                    format!(
                        "segment ID {} (key {}, {} bytes, {}, created by PID {} at {}) has nobody attached and belongs to no known data directory: its server is gone and no start will reach it; ipcrm -m {} frees it",
                        e.shmid,
                        key_hex(e.key),
                        e.size,
                        host.user_name(e.uid),
                        e.cpid,
                        format_utc(e.ctime),
                        e.shmid
                    ),
                );
            }
        }
        segments.push(HostSegment {
            key: key_u64(e.key),
            key_hex: key_hex(e.key),
            shmid: e.shmid,
            size: e.size,
            nattch: e.nattch,
            uid: e.uid,
            cpid: e.cpid,
            removed: e.is_marked_for_removal(),
            data_dir,
            evidence,
            holders,
        });
    }

    // DSM files.
    let mut dsm = Vec::new();
    let mut leaked = 0u64;
    let mut leaked_bytes = 0u64;
    let mut unknown = 0u64;
    let usage = host.dsm_use(&files);
    for f in &files {
        let status = match usage.state(f, now) {
            DsmState::Unused => {
                leaked += 1;
                leaked_bytes += f.size;
                DsmStatus::Leaked
            }
            DsmState::Unknown => {
                unknown += 1;
                DsmStatus::Unknown
            }
            DsmState::InUse => DsmStatus::InUse,
        };
        dsm.push(f.info(usage.mapped_by(f.handle), status));
    }
    if unknown > 0 {
        find(
            Code::PermissionDenied,
            Severity::Warning,
            format!(
                "{unknown} /dev/shm/PostgreSQL.* files are mapped by no process whose maps could be read, but their owners' other processes could not be read: whether they are leaked cannot be told (run as root)"
            ),
        );
    }
    if leaked > 0 {
        find(
            Code::LeakedDsm,
            Severity::Warning,
            format!(
                "{leaked} /dev/shm/PostgreSQL.* files ({leaked_bytes} bytes) are mapped by no process: left by killed servers; they use memory until removed or the host reboots"
            ),
        );
    }
    let etcd = opts.etcd.as_ref().map(|endpoints| ScanEtcd {
        endpoints: endpoints.clone(),
        unreachable: fences
            .as_ref()
            .and_then(|r| r.unreachable().map(str::to_string)),
        other_names: fences.as_ref().map(|r| r.other_names()).unwrap_or_default(),
    });
    if let Some(why) = etcd.as_ref().and_then(|e| e.unreachable.as_deref()) {
        find(
            Code::FenceUnknown,
            Severity::Problem,
            format!(
                "etcd cannot be reached ({why}): whether another host holds any of these data directories cannot be told, so each one's verdict is unknown"
            ),
        );
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    ScanReport {
        ipc_namespace: host.my_ipc_ns,
        pid_namespace: pid_ns,
        data_dirs,
        segments,
        dsm,
        findings,
        etcd,
    }
}
