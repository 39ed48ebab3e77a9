//! The key probe: the first key (`interlock::pg::first_key`) and each step
//! of the server's loop (`interlock::pg::probe_step`, after
//! `PGSharedMemoryCreate` in src/backend/port/sysv_shmem.c) over the host's
//! segments.

use super::*;

/// How far the probe is followed; PostgreSQL has no bound, but a host with
/// a thousand foreign segments in a row is broken.
pub(super) const MAX_PROBE: usize = 1000;

/// Where the key probe starts, from what, and how it ends.
pub(super) struct ProbeStage {
    pub(super) seed_key: Option<ShmKey>,
    pub(super) seed_from: String,
    pub(super) end: ProbeEnd,
}

/// Follow the key probe from the first key, for each algorithm that may apply.
pub(super) fn probe_outcome(
    cx: &mut Ctx<'_>,
    version: &VersionInfo,
    start: &StartSettings,
    parts: Option<PidFileParts>,
) -> ProbeStage {
    let major = version.major();
    let (seed_key, seed_from) = first_key(cx, version, start);
    let ends: Vec<(Algorithm, ProbeEnd)> = match (seed_key, version.algorithm) {
        (None, _) => Vec::new(),
        (Some(k), Some(a)) => vec![(a, probe(cx, k, a.into(), parts.as_ref()))],
        (Some(k), None) => vec![
            (
                Algorithm::New,
                probe(cx, k, pg::Algorithm::New, parts.as_ref()),
            ),
            (
                Algorithm::Old,
                probe(cx, k, pg::Algorithm::Old, parts.as_ref()),
            ),
        ],
    };
    let probe_end: ProbeEnd = match ends.as_slice() {
        [] => ProbeEnd::Unknown(
            "the major version is unknown, so the first key is too (PG_VERSION unreadable or before 10)".into(),
        ),
        [(_, one)] => one.clone(),
        [(_, a), (_, b)] if std::mem::discriminant(a) == std::mem::discriminant(b) => a.clone(),
        _ => {
            cx.find(
                Code::VersionUnknown,
                Severity::Problem,
                format!(
                    "PostgreSQL {} before {} would start here and later minors would refuse; give the server binary with --postgres",
                    major.unwrap_or(0),
                    if major == Some(10) { "10.8" } else { "11.3" }
                ),
            );
            ProbeEnd::Unknown("the minor version decides, and it is unknown".into())
        }
    };
    // A foreign segment on the first key is passed over, except by the old
    // loop when it carries a PostgreSQL header whose creator is dead (or
    // may: its header could not be read here).
    let passed_over = |k: ShmKey| {
        ends.iter()
            .all(|(_, end)| !matches!(end, ProbeEnd::Creates { key, .. } if *key == k.0))
    };
    if let Some(k) = seed_key.filter(|&k| passed_over(k)) {
        if let Some(e) = cx.host.by_key(k.0).cloned() {
            if let Some(Belongs::Foreign(why)) = cx.belongs.get(&e.shmid).cloned().or_else(|| {
                (!cx.server_can_attach(&e) || e.size < HEADER_SIZE as u64)
                    .then(|| cx.decide(&e, parts.as_ref()))
            }) {
                cx.find(
                    Code::KeyCollision,
                    Severity::Info,
                    format!(
                        "the first key PostgreSQL probes, {} ({}), is taken by segment ID {} ({why}); it moves on to the next free key",
                        k, key_hex(k.0), e.shmid
                    ),
                );
            }
        }
    }
    ProbeStage {
        seed_key,
        seed_from,
        end: probe_end,
    }
}

pub(super) fn first_key(
    cx: &Ctx<'_>,
    v: &VersionInfo,
    start: &StartSettings,
) -> (Option<ShmKey>, String) {
    let Some(major) = v.major() else {
        return (None, "unknown".into());
    };
    let key = pg::first_key(major, start.port, cx.dir_id.1);
    let from = match pg::key_seed(major) {
        Some(pg::KeySeed::Inode) => format!("the directory's inode {}", cx.dir_id.1),
        Some(pg::KeySeed::Port) => format!("port {} ({})", start.port, start.port_from),
        None => "unknown".into(),
    };
    (key, from)
}

/// Whose a segment is, in the terms of `pg`'s rules.
pub(super) fn whose(b: &Belongs) -> pg::Whose {
    match b {
        Belongs::This(_) => pg::Whose::ThisDirectory,
        Belongs::Foreign(_) => pg::Whose::Foreign,
        Belongs::Unknown(_) => pg::Whose::Unknown,
    }
}

/// What the old probe loop learns from segment `e`'s header
/// (`pg::HeaderSeen`), from what was read here: the magic and the
/// `creatorPID` of a header read through a holder's memory or by
/// attaching ([`Ctx::headers`]), never the kernel's `shm_cpid`.
pub(super) fn header_seen(cx: &Ctx<'_>, e: &ShmEntry) -> pg::HeaderSeen {
    // shmget(key, sizeof(PGShmemHeader), 0) fails on a smaller segment;
    // shmat(shmid, 0, 0) needs read and write permission.
    if e.size < HEADER_SIZE as u64 || !cx.server_can_attach(e) {
        return pg::HeaderSeen::Unreadable;
    }
    match cx.headers.get(&e.shmid) {
        None => pg::HeaderSeen::Unknown,
        Some(h) if !h.has_magic() => pg::HeaderSeen::NotPostgres,
        Some(h) => pg::HeaderSeen::Postgres {
            creator_alive: kill_zero_alive(cx, h.creator_pid),
        },
    }
}

/// Whether the old loop takes `pid` for alive: `kill(pid, 0)` succeeds or
/// fails otherwise than `ESRCH` (`EPERM` counts as alive). PID 0 is the
/// server's own process group (always there); a negative PID, a process
/// group, cannot be told. A PID not in /proc is asked of the kernel on
/// the host (hidepid hides other users' processes); under a fixture
/// tree its /proc alone says.
fn kill_zero_alive(cx: &Ctx<'_>, pid: i32) -> Option<bool> {
    match pid {
        0 => Some(true),
        ..0 => None,
        _ if cx.host.procfs.stat(pid).is_ok() => Some(true),
        _ if !cx.host.procfs.is_host() => Some(false),
        _ => Some(
            match rustix::process::Pid::from_raw(pid).map(rustix::process::test_kill_process) {
                Some(Ok(())) | Some(Err(rustix::io::Errno::PERM)) => true,
                Some(Err(rustix::io::Errno::SRCH)) | None => false,
                // Not ESRCH: alive, as the server reads it.
                Some(Err(_)) => true,
            },
        ),
    }
}

/// Follow the server's probe loop from `start` over the host's segments,
/// each step as `pg::probe_step` rules.
pub(super) fn probe(
    cx: &mut Ctx<'_>,
    start: ShmKey,
    algo: pg::Algorithm,
    lock: Option<&PidFileParts>,
) -> ProbeEnd {
    let mut key = start.0;
    for _ in 0..MAX_PROBE {
        let found = match cx.host.by_key(key).cloned() {
            None => None,
            Some(e) => {
                let b = match cx.belongs.get(&e.shmid) {
                    Some(b) => b.clone(),
                    None => {
                        let b = cx.decide(&e, lock);
                        cx.belongs.insert(e.shmid, b.clone());
                        b
                    }
                };
                Some((e, b))
            }
        };
        let at = match &found {
            None => pg::SegmentAtKey::Free,
            Some((e, b)) => pg::SegmentAtKey::Taken {
                whose: whose(b),
                nattch: e.nattch,
                removable: e.uid == cx.owner.0 || e.cuid == cx.owner.0,
                header: header_seen(cx, e),
            },
        };
        let (shmid, nattch, why) = found
            .as_ref()
            .map_or((0, 0, ""), |(e, b)| (e.shmid, e.nattch, b.evidence()));
        match pg::probe_step(algo, &at) {
            pg::ProbeStep::Create => {
                return ProbeEnd::Creates {
                    key,
                    recycles: None,
                    unsure: None,
                }
            }
            pg::ProbeStep::Recycle => {
                return ProbeEnd::Creates {
                    key,
                    recycles: Some(shmid),
                    unsure: None,
                }
            }
            // Recycled here or passed over, by what its header says, which
            // cannot be read here (new: nobody attached and whose it is
            // unknown; old: its magic or its creator unknown): either way
            // the server starts, at this key or a later one.
            pg::ProbeStep::RecycleOrNextKey => {
                return ProbeEnd::Creates {
                    key,
                    recycles: None,
                    unsure: Some(shmid),
                }
            }
            pg::ProbeStep::Blocked => {
                return ProbeEnd::Blocked { key, shmid }
            }
            pg::ProbeStep::Unknown => {
                return ProbeEnd::Unknown(format!(
                    "segment ID {shmid} at key {} has {nattch} attached, and whose it is cannot be told: {why}",
                    key_hex(key),
                ))
            }
            pg::ProbeStep::NextKey => key = key.wrapping_add(1),
            // A segment that vanished is looked at again (not seen here:
            // the host's table is read once).
            pg::ProbeStep::Retry => {}
        }
    }
    ProbeEnd::Unknown(format!(
        "no free key within {MAX_PROBE} keys of {}",
        key_hex(start.0)
    ))
}

/// The probe as the report tells it.
pub(super) fn describe_probe(
    seed: Option<KeySeed>,
    algorithm: Option<Algorithm>,
    seed_from: String,
    seed_key: Option<ShmKey>,
    probe_end: &ProbeEnd,
) -> ProbeInfo {
    ProbeInfo {
        seed,
        seed_from,
        first_key: seed_key.map(|k| key_u64(k.0)),
        outcome: match probe_end {
            ProbeEnd::Creates { key, recycles: None, unsure: None } => {
                format!("creates its segment at key {}", key_hex(*key))
            }
            ProbeEnd::Creates { key, recycles: None, unsure: Some(id) } => format!(
                "finds segment ID {id} at key {}, whose header cannot be read here: {}, else moves on to the next free key",
                key_hex(*key),
                match algorithm {
                    Some(Algorithm::New) => "removes it and creates its own there if it is this directory's (nobody is attached)",
                    Some(Algorithm::Old) => "removes it and creates its own there if it is a PostgreSQL segment whose creator is dead",
                    None => "removes it and creates its own there if it is this directory's with nobody attached (before 10.8/11.3: if it is a PostgreSQL segment whose creator is dead)",
                }
            ),
            ProbeEnd::Creates { key, recycles: Some(id), .. } => format!(
                "removes the old segment ID {id} (nobody attached) and creates its own at key {}",
                key_hex(*key)
            ),
            ProbeEnd::Blocked { key, shmid } => format!(
                "stops at key {}: segment ID {shmid} of this directory is still attached",
                key_hex(*key)
            ),
            ProbeEnd::Unknown(why) => format!("unknown: {why}"),
        },
        creates_at: match probe_end {
            ProbeEnd::Creates {
                key, unsure: None, ..
            } => Some(key_u64(*key)),
            _ => None,
        },
    }
}
