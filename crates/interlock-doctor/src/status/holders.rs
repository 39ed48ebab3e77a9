//! The processes attached to this directory's segments, what they are (the
//! live owner, the segment's creator, a maintenance hold, or orphans of a
//! server that is gone), and the DSM files they map.

use super::*;

/// The processes attached to this directory's segments, and what hides them.
pub(super) fn collect_holders(
    cx: &mut Ctx<'_>,
    ours_attached: &[ShmEntry],
    lock_info: &LockFileInfo,
) -> Vec<Holder> {
    let my_uid = rustix::process::geteuid().as_raw();
    let mut holders: Vec<Holder> = Vec::new();
    for e in ours_attached {
        let mut found = 0u64;
        for a in cx.holders_of(e.shmid) {
            found += a.attaches;
            if let Some(process) = summary(cx.host, a.pid) {
                holders.push(Holder {
                    process,
                    shmid: a.shmid,
                    attaches: a.attaches,
                });
            }
        }
        if found < e.nattch {
            cx.find(
                Code::HoldersHidden,
                Severity::Warning,
                format!(
                    "segment ID {} has {} attachments but only {found} are visible here: the others are in another PID namespace, or their /proc/PID/maps cannot be read{}",
                    e.shmid,
                    e.nattch,
                    if my_uid == 0 { "" } else { " (run as root)" }
                ),
            );
        }
    }
    holders.sort_by_key(|h| (h.shmid, h.process.pid));
    // Written in another PID namespace? A holder whose innermost PID is the
    // one on line 1 (a container's postmaster is often PID 1 there).
    if matches!(
        lock_info.identity,
        Some(Identity::Gone | Identity::Reused | Identity::OtherUser)
    ) {
        let pid = lock_info.pid.unwrap_or(0).abs();
        if let Some(h) = holders
            .iter()
            .find(|h| h.process.nspid.len() > 1 && h.process.nspid.last() == Some(&pid))
        {
            cx.find(
                Code::OtherNamespace,
                Severity::Problem,
                format!(
                    "{} was written in another PID namespace: PID {pid} there is PID {} here ({}), attached to this directory's segment",
                    lock_info.path, h.process.pid, h.process.cmdline
                ),
            );
        }
    }
    holders
}

/// Whether the holders are the keeper of an `interlock hold` whose own
/// process is gone (SIGKILLed) while its command still runs: the keeper
/// (named [`KEEPER_NAME`], a fork of `interlock`, attached) holds a pidfd on
/// that command and lives exactly as long as it. Such a directory is held
/// for maintenance (`pg_upgrade`, `pg_resetwal`, a file-level backup), and
/// nothing of it is a leftover. A keeper whose descriptors cannot be read
/// counts as holding: what it keeps cannot be proven gone.
pub(super) fn maintenance_hold(cx: &mut Ctx<'_>, holders: &[Holder]) -> bool {
    let keeper_name = KEEPER_NAME.to_bytes();
    let mut found = Vec::new();
    for h in holders {
        let pid = h.process.pid;
        let Ok(stat) = cx.host.procfs.stat(pid) else {
            continue;
        };
        if stat.comm != keeper_name || stat.is_zombie() {
            continue;
        }
        match cx.host.procfs.pidfd_targets(pid) {
            Ok(targets) => {
                for t in targets.into_iter().filter(|t| *t > 0) {
                    if let Some(cmd) = summary(cx.host, t).filter(|c| c.state != ProcState::Zombie)
                    {
                        found.push(format!(
                            "keeper PID {pid} keeps PID {t} ({}, {}, started {}), which still runs",
                            cmd.cmdline,
                            cx.host.user_name(cmd.uid),
                            format_utc(cmd.start_time)
                        ));
                    }
                }
            }
            Err(e) => found.push(format!(
                "keeper PID {pid} ({}): what command it keeps cannot be read ({e}){}",
                cx.host.user_name(h.process.uid),
                if rustix::process::geteuid().is_root() {
                    ""
                } else {
                    "; run as root"
                }
            )),
        }
    }
    if found.is_empty() {
        return false;
    }
    cx.find(
        Code::MaintenanceHold,
        Severity::Problem,
        format!(
            "an `interlock hold` holds this directory for a command that is still running, though its own process is gone: {}; PostgreSQL refuses to start until that command exits, as it should",
            found.join("; ")
        ),
    );
    true
}

/// The holders as the running server's, or as orphans of one that is gone;
/// `held`: whether the lock file's owner is alive, the creator of the
/// segment that still holds it, and whether a maintenance hold holds it.
pub(super) fn owner_or_orphans(
    cx: &mut Ctx<'_>,
    holders: &[Holder],
    lock_info: &LockFileInfo,
    (owner_alive, creator, maintenance): (bool, Option<&Holder>, bool),
    verdict: Verdict,
) {
    // No server of this directory runs as another user (the server checks
    // that it owns the directory: checkDataDir in
    // src/backend/utils/init/miscinit.c), so such a holder is not one of
    // its leftovers, whatever the segment's header says.
    let owner_uid = cx.owner.0;
    let foreign: Vec<&Holder> = holders
        .iter()
        .filter(|h| h.process.uid != owner_uid)
        .collect();
    if !foreign.is_empty() {
        let segs: Vec<String> = foreign
            .iter()
            .map(|h| h.shmid)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|id| {
                let e = cx.host.by_shmid(id);
                let ev = cx
                    .belongs
                    .get(&id)
                    .map(|b| b.evidence().to_string())
                    .unwrap_or_default();
                match e {
                    Some(e) => format!(
                        "segment ID {id} (owner {}, created by {}, mode {:03o}, created by PID {}; {ev})",
                        cx.host.user_name(e.uid),
                        cx.host.user_name(e.cuid),
                        e.permissions(),
                        e.cpid
                    ),
                    None => format!("segment ID {id} ({ev})"),
                }
            })
            .collect();
        cx.find(
            Code::ForeignHolders,
            Severity::Problem,
            format!(
                "{} of another user than {}, the directory's owner, {} attached to a segment that claims this directory: {}; {}. No server of this directory runs as another user: find out what {} before stopping anything",
                plural(foreign.len(), "process", "processes"),
                cx.host.user_name(owner_uid),
                if foreign.len() == 1 { "is" } else { "are" },
                foreign
                    .iter()
                    .map(|h| format!(
                        "PID {} (user {}, {})",
                        h.process.pid,
                        cx.host.user_name(h.process.uid),
                        h.process.cmdline
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                segs.join("; "),
                if foreign.len() == 1 { "it is" } else { "they are" }
            ),
        );
    }
    let orphans: Vec<&Holder> = if owner_alive || creator.is_some() || maintenance {
        Vec::new()
    } else {
        holders
            .iter()
            .filter(|h| h.process.uid == owner_uid)
            .collect()
    };
    if let (false, Some(c)) = (owner_alive, creator) {
        cx.find(
            Code::HeldByCreator,
            Severity::Problem,
            format!(
                "PID {} ({}) created this directory's segment ID {} and is still attached: it holds the directory ({}); {} attached, none of them a leftover",
                c.process.pid,
                c.process.cmdline,
                c.shmid,
                if lock_info.state == LockState::Absent {
                    "an `interlock hold --no-lock-file`, or a server whose postmaster.pid was removed"
                } else {
                    "the lock file names another process"
                },
                plural(holders.len(), "process", "processes")
            ),
        );
    }
    if owner_alive {
        let pid = lock_info.pid.unwrap_or(0);
        let what = lock_info
            .process
            .as_ref()
            .map(|p| p.cmdline.clone())
            .unwrap_or_default();
        cx.find(
            Code::PostmasterRunning,
            Severity::Info,
            format!(
                "PID {} ({what}) owns this directory{}; {} attached",
                pid.abs(),
                lock_info
                    .status
                    .as_deref()
                    .map(|s| format!(", status \"{s}\""))
                    .unwrap_or_default(),
                plural(holders.len(), "process", "processes")
            ),
        );
    } else if !orphans.is_empty() {
        let stopped = orphans
            .iter()
            .filter(|h| h.process.state == ProcState::Stopped)
            .count();
        cx.find(
            Code::OrphanedHolders,
            if verdict == Verdict::WillStart {
                Severity::Danger
            } else {
                Severity::Problem
            },
            format!(
                "{} of a server that is gone {} still attached to this directory's segment: {}{}",
                plural(orphans.len(), "process", "processes"),
                if orphans.len() == 1 { "is" } else { "are" },
                orphans
                    .iter()
                    .map(|h| format!(
                        "{} ({})",
                        h.process.pid,
                        h.process
                            .role
                            .map_or(h.process.cmdline.as_str(), |r| r.name())
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                if stopped > 0 {
                    format!("; {stopped} stopped (SIGSTOP)")
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// The DSM files of this directory, and those leaked by a server of its
/// owner.
pub(super) fn dsm_report(cx: &mut Ctx<'_>, holders: &[Holder], recycling: bool) -> Vec<DsmInfo> {
    let files = cx.host.dsm_files(&cx.opts.root.dev_shm());
    if files.is_empty() {
        return Vec::new();
    }
    let holder_pids: Vec<i32> = holders.iter().map(|h| h.process.pid).collect();
    let owner = cx.owner.0;
    let now = now_epoch();
    // Files of the owner that no process read so far maps: before calling
    // them leaked, read every map that could map them.
    let mut usage = cx.host.dsm_use(&files);
    if files
        .iter()
        .any(|f| f.uid == owner && !usage.is_mapped(f.handle))
    {
        cx.host.read_all_mappings(&[owner]);
        usage = cx.host.dsm_use(&files);
    }
    let mut out = Vec::new();
    let mut leaked = Vec::new();
    let mut unknown = 0usize;
    for f in files {
        let by = usage.mapped_by(f.handle);
        let status = if by.iter().any(|p| holder_pids.contains(p)) {
            DsmStatus::InUse
        } else if f.uid != owner {
            continue;
        } else {
            match usage.state(&f, now) {
                DsmState::Unused => {
                    leaked.push((f.path.display().to_string(), f.size));
                    DsmStatus::Leaked
                }
                DsmState::Unknown => {
                    unknown += 1;
                    DsmStatus::Unknown
                }
                DsmState::InUse => continue,
            }
        };
        out.push(f.info(by, status));
    }
    if unknown > 0 {
        cx.find(
            Code::PermissionDenied,
            Severity::Warning,
            format!(
                "{} of {} that no process read here maps: the maps of some of {}'s processes could not be read, so whether they are leaked cannot be told (run as root)",
                plural(unknown, "/dev/shm file", "/dev/shm files"),
                cx.host.user_name(owner),
                cx.host.user_name(owner)
            ),
        );
    }
    if !leaked.is_empty() {
        let total: u64 = leaked.iter().map(|l| l.1).sum();
        cx.find(
            Code::LeakedDsm,
            Severity::Warning,
            format!(
                "{} of {} ({}) that no process maps, left by a server that was killed{}",
                plural(leaked.len(), "/dev/shm file", "/dev/shm files"),
                cx.host.user_name(owner),
                human_bytes(total),
                if recycling {
                    "; if they were this directory's, PostgreSQL removes them when it starts, through the old segment it recycles"
                } else {
                    "; nothing removes them before a reboot (PostgreSQL finds old ones only through an old segment of its own)"
                }
            ),
        );
    }
    out
}
