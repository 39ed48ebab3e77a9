//! Whose each segment is (its header, read through a holder's memory, or
//! other evidence), line 7's segment (`interlock::pg::line7_verdict`), and
//! the segments a report shows: attached ones the probe never reaches,
//! removed ones, leaked ones.

use super::*;

/// Decide whose each segment that matters is (pass A through the likely
/// holders, pass B through all of them).
pub(super) fn attribute_segments(
    cx: &mut Ctx<'_>,
    line7_shmid: Option<i32>,
    parts: Option<PidFileParts>,
) {
    // Segments whose owner matters: every one with holders that a server
    // running as the directory's owner could attach, plus line 7's.
    let mut targets: Vec<ShmEntry> = cx
        .host
        .shm
        .iter()
        .filter(|e| {
            (e.nattch > 0 && e.size >= HEADER_SIZE as u64 && {
                let (uid, _) = cx.owner;
                e.uid == uid || e.cuid == uid || cx.server_can_attach(e)
            }) || Some(e.shmid) == line7_shmid
        })
        .cloned()
        .collect();
    targets.sort_by_key(|e| e.shmid);
    // Pass A: the likely holders only (creator, last attacher, the lock
    // file's PID) decide most segments through their header.
    let mut undecided: Vec<ShmEntry> = Vec::new();
    for e in &targets {
        if !cx.server_can_attach(e) || e.size < HEADER_SIZE as u64 {
            let b = cx.decide(e, parts.as_ref());
            cx.belongs.insert(e.shmid, b);
            continue;
        }
        let mut decided = None;
        for pid in [e.cpid, e.lpid, parts.map(|p| p.pid).unwrap_or(0)] {
            if pid <= 0 {
                continue;
            }
            if let Some(a) = attachment(cx.host, pid, e.shmid) {
                if let Some(hdr) = cx.host.header_via(&a) {
                    decided = Some(cx.by_header(&hdr, e.shmid, pid));
                    break;
                }
            }
        }
        match decided {
            Some(foreign @ Belongs::Foreign(_)) => {
                cx.belongs.insert(e.shmid, foreign);
            }
            _ => undecided.push(e.clone()),
        }
    }
    // Pass B: every holder of the segments that are (or may be) ours.
    let hints: Vec<i32> = parts
        .map(|p| p.pid)
        .into_iter()
        .chain(undecided.iter().flat_map(|e| [e.cpid, e.lpid]))
        .collect();
    let mut uids = vec![cx.owner.0];
    for e in &undecided {
        for u in [e.uid, e.cuid] {
            if !uids.contains(&u) {
                uids.push(u);
            }
        }
    }
    let wanted: Vec<(i32, u64)> = undecided
        .iter()
        .filter(|e| e.nattch > 0)
        .map(|e| (e.shmid, e.nattch))
        .collect();
    let search = cx.host.find_holders(&wanted, &hints, cx.dir_id, &uids);
    cx.attached = search.found.clone();
    for e in &undecided {
        let b = cx.decide(e, parts.as_ref());
        cx.belongs.insert(e.shmid, b);
    }
    for pid in &search.other_namespace {
        cx.find(
            Code::OtherNamespace,
            Severity::Info,
            format!(
                "PID {pid} maps a System V segment with one of these IDs, but in another IPC namespace (a container): that is a different segment, and it is not counted"
            ),
        );
    }
}

/// Line 7 as `PGSharedMemoryIsInUse` sees it, under the server's
/// algorithm (`version.algorithm`; `None` when its minor is unknown): what
/// blocks, and what cannot be told (its finding's code and message).
pub(super) fn line7_check(
    cx: &mut Ctx<'_>,
    stage: &LockStage,
    reading: Option<&ServerReading>,
    version: &VersionInfo,
) -> (Option<String>, Option<(Code, String)>) {
    let mut line7_blocks: Option<String> = None;
    let mut line7_unknown: Option<(Code, String)> = None;
    if let (LockStage::Dead, Some((id1, id2))) = (stage, reading.and_then(|r| r.shmem)) {
        let shmid = id2 as i32;
        let (whose, nattch, access, belongs) = match cx.host.by_shmid(shmid).cloned() {
            None => (pg::Whose::Vanished, 0, pg::ShmAccess::None, None),
            Some(e) => match cx.belongs.get(&shmid).cloned() {
                Some(b) => (whose(&b), e.nattch, cx.server_access(&e), Some(b)),
                None => return (None, None),
            },
        };
        let algo = version.algorithm.map(pg::Algorithm::from);
        let user = cx.host.user_name(cx.owner.0);
        let before = match version.major() {
            Some(10) => "10.8",
            Some(11) => "11.3",
            _ => "10.8/11.3",
        };
        match (pg::line7_verdict(algo, whose, nattch, access), belongs) {
            (pg::Line7Verdict::InUse, b) => {
                if access == pg::ShmAccess::ReadOnly {
                    let why = b.as_ref().map(Belongs::evidence).unwrap_or_default();
                    cx.find(
                        Code::SegmentForeign,
                        Severity::Problem,
                        format!(
                            "line 7 names segment ID {shmid}, which has {nattch} attached and is not one a server running as {user} may attach ({why}); PostgreSQL before {before} takes it for in use all the same (any shmat failure, permission denied included, is \"in use\" to it), later minors ignore it"
                        ),
                    );
                }
                line7_blocks = Some(format!(
                    "pre-existing shared memory block (key {id1}, ID {id2}) is still in use"
                ));
            }
            (pg::Line7Verdict::Ignored, Some(Belongs::Foreign(why))) => cx.find(
                Code::SegmentForeign,
                Severity::Info,
                format!(
                    "line 7 names segment ID {shmid}, which now belongs to something else ({why}); PostgreSQL ignores it"
                ),
            ),
            (pg::Line7Verdict::Unknown(pg::Line7Doubt::Whose), b) => {
                let why = b.as_ref().map(Belongs::evidence).unwrap_or_default();
                line7_unknown = Some((
                    Code::PermissionDenied,
                    format!(
                        "segment ID {shmid} (line 7) has {nattch} attached, and whose it is cannot be told: {why}"
                    ),
                ));
            }
            (pg::Line7Verdict::Unknown(pg::Line7Doubt::Algorithm), _) => {
                line7_unknown = Some((
                    Code::VersionUnknown,
                    format!(
                        "segment ID {shmid} (line 7) has {nattch} attached, and a server running as {user} may read it but not attach it: PostgreSQL before {before} takes it for in use and refuses, later minors take it for another's and go on; which minor runs is unknown: give the server binary with --postgres"
                    ),
                ));
            }
            _ => {}
        }
    }
    (line7_blocks, line7_unknown)
}

/// The segments the later stages turn on, by ID.
pub(super) struct InPlay {
    pub(super) line7_shmid: Option<i32>,
    pub(super) blocked_shmid: Option<i32>,
    pub(super) ours_attached: Vec<ShmEntry>,
}

/// The segments of this directory the server will not see, and those it stops at.
pub(super) fn in_play(cx: &Ctx<'_>, line7_shmid: Option<i32>, probe_end: &ProbeEnd) -> InPlay {
    let blocked_shmid = match &probe_end {
        ProbeEnd::Blocked { shmid, .. } => Some(*shmid),
        _ => None,
    };
    let ours_attached: Vec<ShmEntry> = cx
        .host
        .shm
        .iter()
        .filter(|e| e.nattch > 0 && cx.belongs.get(&e.shmid).is_some_and(Belongs::is_this))
        .cloned()
        .collect();
    InPlay {
        line7_shmid,
        blocked_shmid,
        ours_attached,
    }
}

/// Segments with holders that may be this directory's and whose owner
/// could not be told (holders whose maps or memory cannot be read, or that
/// are not visible at all). Such a segment may be this directory's, removed
/// with `ipcrm` or on a shifted key, with an old server's processes still
/// attached: a start would then run alongside them. So it makes a
/// `will_start` unknown; `skip`: a segment already reported (line 7's).
pub(super) fn unattributed_segments(
    cx: &mut Ctx<'_>,
    verdict: Verdict,
    skip: Option<i32>,
) -> (Verdict, bool) {
    let root = rustix::process::geteuid().is_root();
    let undecided: Vec<(ShmEntry, String)> = cx
        .host
        .shm
        .iter()
        .filter(|e| e.nattch > 0 && Some(e.shmid) != skip)
        .filter_map(|e| match cx.belongs.get(&e.shmid) {
            Some(Belongs::Unknown(why)) => Some((e.clone(), why.clone())),
            _ => None,
        })
        .collect();
    for (e, why) in &undecided {
        cx.find(
            Code::PermissionDenied,
            Severity::Problem,
            format!(
                "segment ID {} ({}, {} bytes, owner {}, {} attached) may be this directory's, and whose it is cannot be told: {why}{}",
                e.shmid,
                if e.is_marked_for_removal() || e.key == 0 {
                    "removed with ipcrm".to_string()
                } else {
                    format!("key {}", key_hex(e.key))
                },
                e.size,
                cx.host.user_name(e.uid),
                e.nattch,
                if root { "" } else { "; run this as root to tell" }
            ),
        );
    }
    let verdict = if verdict == Verdict::WillStart && !undecided.is_empty() {
        Verdict::Unknown
    } else {
        verdict
    };
    (verdict, !undecided.is_empty())
}

/// This directory's attached segments the probe does not stop at.
pub(super) fn unseen_segments(
    cx: &mut Ctx<'_>,
    play: &InPlay,
    owner_alive: bool,
    verdict: Verdict,
    stops_at: Option<Stage>,
    seed_key: Option<ShmKey>,
) {
    let InPlay {
        line7_shmid,
        blocked_shmid,
        ref ours_attached,
    } = *play;
    for e in ours_attached {
        if owner_alive {
            continue;
        }
        let removed = e.is_marked_for_removal() || e.key == 0;
        let what_blocks = Some(e.shmid) == blocked_shmid
            || Some(e.shmid) == line7_shmid
                && verdict == Verdict::Blocked
                && stops_at == Some(Stage::SharedMemory);
        if what_blocks && !removed {
            continue;
        }
        if removed {
            cx.find(
                Code::SegmentRemoved,
                if verdict == Verdict::WillStart { Severity::Danger } else { Severity::Warning },
                format!(
                    "segment ID {} of this directory was removed (ipcrm) while {} still attached: PostgreSQL can no longer see them{}",
                    e.shmid,
                    plural(e.nattch as usize, "process was", "processes were"),
                    if verdict == Verdict::WillStart { ", and would start alongside them" } else { "" }
                ),
            );
        } else {
            cx.find(
                Code::UnprobedSegment,
                if verdict == Verdict::WillStart { Severity::Danger } else { Severity::Warning },
                format!(
                    "segment ID {} (key {}) of this directory has {} attached, on a key PostgreSQL does not reach from {}{}",
                    e.shmid,
                    key_hex(e.key),
                    e.nattch,
                    seed_key.map(|k| key_hex(k.0)).unwrap_or_else(|| "its first key".into()),
                    if verdict == Verdict::WillStart { ": it would start alongside them" } else { "" }
                ),
            );
        }
    }
}

/// Line 7's segment, if nobody is attached and the server will not remove it.
pub(super) fn leaked_segments(
    cx: &mut Ctx<'_>,
    line7_shmid: Option<i32>,
    owner_alive: bool,
    recycled: Option<i32>,
    parts: Option<PidFileParts>,
) {
    if let Some(shmid) = line7_shmid {
        if let Some(e) = cx.host.by_shmid(shmid).cloned() {
            if e.nattch == 0 && !owner_alive && Some(shmid) != recycled {
                let b = cx.decide(&e, parts.as_ref());
                cx.belongs.insert(shmid, b.clone());
                if b.is_this() {
                    cx.find(
                        Code::LeakedSegment,
                        Severity::Warning,
                        format!(
                            "segment ID {shmid} (key {}) of this directory has nobody attached, and PostgreSQL will not remove it ({}): it stays until removed or the host reboots",
                            key_hex(e.key),
                            b.evidence()
                        ),
                    );
                }
            }
        }
    }
}

/// The segments the report shows, each with why and whose it is.
pub(super) fn segments_to_show(
    cx: &mut Ctx<'_>,
    play: &InPlay,
    seed_key: Option<ShmKey>,
    probe_end: &ProbeEnd,
    recycled: Option<i32>,
    parts: Option<PidFileParts>,
) -> Vec<SegmentInfo> {
    let InPlay {
        line7_shmid,
        blocked_shmid,
        ref ours_attached,
    } = *play;
    let mut segments: Vec<SegmentInfo> = Vec::new();
    let mut shown_ids: Vec<i32> = Vec::new();
    if let Some(id) = line7_shmid {
        shown_ids.push(id);
    }
    shown_ids.extend(ours_attached.iter().map(|e| e.shmid));
    if let Some(k) = seed_key {
        if let Some(e) = cx.host.by_key(k.0) {
            shown_ids.push(e.shmid);
        }
    }
    if let ProbeEnd::Blocked { shmid, .. } = *probe_end {
        shown_ids.push(shmid);
    }
    if let Some(r) = recycled {
        shown_ids.push(r);
    }
    shown_ids.dedup();
    let mut seen = Vec::new();
    for id in shown_ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let Some(e) = cx.host.by_shmid(id).cloned() else {
            continue;
        };
        let b = match cx.belongs.get(&id) {
            Some(b) => b.clone(),
            None => cx.decide(&e, parts.as_ref()),
        };
        let mut why = Vec::new();
        if Some(id) == line7_shmid {
            why.push(Listed::LineSeven);
        }
        if seed_key.is_some_and(|k| cx.host.by_key(k.0).map(|x| x.shmid) == Some(id))
            || blocked_shmid == Some(id)
            || recycled == Some(id)
        {
            why.push(Listed::Probe);
        }
        if e.nattch > 0 && b.is_this() {
            why.push(Listed::Attached);
        }
        segments.push(SegmentInfo {
            key: key_u64(e.key),
            key_hex: key_hex(e.key),
            shmid: e.shmid,
            size: e.size,
            nattch: e.nattch,
            uid: e.uid,
            cpid: e.cpid,
            lpid: e.lpid,
            removed: e.is_marked_for_removal(),
            why,
            belongs: b.whose(),
            state: match (&b, e.nattch) {
                (Belongs::This(_), 0) => MemoryState::Unattached,
                (Belongs::This(_), _) => MemoryState::Attached,
                (Belongs::Foreign(_), _) => MemoryState::Foreign,
                (Belongs::Unknown(_), _) => MemoryState::Unknown,
            },
            evidence: b.evidence().to_string(),
            dsm_control: cx.dsm_control.get(&id).copied().filter(|&h| h != 0),
        });
    }
    segments
}

/// The attachment of `shmid` in `pid`, if it maps it (same IPC namespace
/// assumed; the caller only uses it to read a header, which names a
/// directory whatever the namespace).
pub(super) fn attachment(host: &mut Host, pid: i32, shmid: i32) -> Option<Attached> {
    let m = host.mappings(pid)?;
    let first = m.sysv.iter().find(|s| s.shmid == shmid)?;
    Some(Attached {
        pid,
        shmid,
        attaches: m.sysv.iter().filter(|s| s.shmid == shmid).count() as u64,
        start: first.start,
    })
}
