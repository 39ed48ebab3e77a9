//! Stage 2: `postmaster.pid`, read strictly and the server's lenient way
//! (`CreateLockFile`, src/backend/utils/init/miscinit.c), and who its PID is:
//! this directory's live owner only with evidence that ties it to this
//! directory (`interlock::process::ProcFs::judge_owner`).

use super::*;

/// The parts of a lock file identity checks use.
#[derive(Debug, Clone, Copy)]
pub(super) struct PidFileParts {
    pub(super) pid: i32,
    pub(super) start_time: Option<i64>,
}

/// Why a lock file was not read: (unreadable rather than unusable, why).
pub(super) type LockReadError = (bool, String);

/// A lock file's first bytes (as much as PostgreSQL reads) and its real
/// size, read by `pg::read_lock_file` as the lock reads them.
/// `Err((true, _))`: unreadable; `Err((false, _))`: not what PostgreSQL
/// writes (a FIFO, a link, a device), refused without blocking.
pub(super) fn read_lock_file(path: &Path) -> Result<Option<(Vec<u8>, u64)>, LockReadError> {
    use interlock::safe_fs::ReadError;
    match pg::read_lock_file(path) {
        Ok(r) => Ok(r.map(|r| (r.bytes, r.size))),
        // Links are refused whoever owns the directory: PostgreSQL writes a
        // regular file there.
        Err(ReadError::NotRegular {
            kind: "a symbolic link",
            ..
        }) => Err((
            false,
            "is a symbolic link; PostgreSQL writes a regular file there".into(),
        )),
        Err(ReadError::NotRegular { kind, .. }) => {
            Err((false, format!("is not a regular file: it is {kind}")))
        }
        Err(e @ ReadError::PermissionDenied { .. }) => Err((true, format!("cannot open it: {e}"))),
        Err(e) => Err((true, format!("cannot read it: {e}"))),
    }
}

/// What the lock file stage reads and decides.
pub(super) struct LockRead {
    pub(super) stage: LockStage,
    pub(super) info: LockFileInfo,
    pub(super) reading: Option<ServerReading>,
    pub(super) parts: Option<PidFileParts>,
}

/// Read `postmaster.pid` as the server does, and judge the PID it names.
pub(super) fn read_lock(cx: &mut Ctx<'_>) -> LockRead {
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    let mut lock_info = LockFileInfo {
        path: lock_path.display().to_string(),
        state: LockState::Absent,
        pid: None,
        data_dir: None,
        start_time: None,
        port: None,
        status: None,
        shmem_key: None,
        shmem_id: None,
        identity: None,
        evidence: None,
        serves_elsewhere: false,
        process: None,
        problem: None,
    };
    let mut reading: Option<ServerReading> = None;
    let mut parts: Option<PidFileParts> = None;
    let stage = match read_lock_file(&lock_path) {
        Ok(None) => LockStage::Absent,
        Err((true, why)) => {
            lock_info.state = LockState::Unreadable;
            lock_info.problem = Some(why.clone());
            LockStage::Unreadable(why)
        }
        Err((false, why)) => {
            lock_info.state = LockState::Unusable;
            lock_info.problem = Some(why.clone());
            LockStage::Unusable(why)
        }
        Ok(Some((bytes, _))) if bytes.is_empty() => {
            lock_info.state = LockState::Empty;
            LockStage::Empty
        }
        Ok(Some((bytes, size))) => {
            // The server reads only the start (ServerReading); the strict
            // parse refuses more than MAX_PIDFILE_SIZE bytes, and the size
            // said is the file's own (fstat), not the bytes read.
            let r = ServerReading::of(&bytes);
            let strict = PidFile::parse(&bytes);
            if size > MAX_PIDFILE_SIZE as u64 {
                let why = format!(
                    "is {size} bytes ({}), larger than the {MAX_PIDFILE_SIZE} bytes any PostgreSQL writes; only its start was read, as the server reads it",
                    human_bytes(size)
                );
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Warning,
                    format!("{} {why}", lock_path.display()),
                );
                lock_info.problem = Some(format!("the file {why}"));
            } else if let Err(e) = &strict {
                lock_info.problem = Some(e.to_string());
            }
            let strict = strict.ok();
            lock_info.pid = Some(r.pid);
            lock_info.start_time = strict.as_ref().map(|p| p.start_time);
            lock_info.data_dir = strict
                .as_ref()
                .map(|p| p.data_dir.to_string_lossy().into_owned());
            lock_info.port = strict.as_ref().map(|p| p.port);
            lock_info.status = strict
                .as_ref()
                .and_then(|p| p.status)
                .map(|s| s.name().to_string());
            lock_info.shmem_key = r.shmem.map(|s| s.0);
            lock_info.shmem_id = r.shmem.map(|s| s.1);
            let stage = if r.is_bogus() {
                lock_info.state = LockState::Bogus;
                LockStage::Bogus(String::from_utf8_lossy(&r.buffer).into_owned())
            } else {
                lock_info.state = LockState::Present;
                let pid = r.other_pid();
                parts = Some(PidFileParts {
                    pid,
                    start_time: strict.as_ref().map(|p| p.start_time),
                });
                judge_lock_owner(cx, &mut lock_info, pid, &r, parts)
            };
            reading = Some(r);
            stage
        }
    };

    if matches!(stage, LockStage::Empty | LockStage::Bogus(_)) {
        let pids = cx.host.working_in(cx.dir_id);
        cx.workers = pids
            .into_iter()
            .filter_map(|p| summary(cx.host, p))
            .collect();
        if !cx.workers.is_empty() {
            let list = cx
                .workers
                .iter()
                .map(|w| format!("{} ({})", w.pid, w.cmdline))
                .collect::<Vec<_>>()
                .join(", ");
            cx.find(
                Code::PostmasterRunning,
                Severity::Warning,
                format!("processes work in this directory, so a server may be starting: {list}"),
            );
        }
    }
    LockRead {
        stage,
        info: lock_info,
        reading,
        parts,
    }
}

/// Judge the lock file's PID as the server would (`kill(pid, 0)` as the
/// directory's owner) and as we do (identity), filling `info`.
pub(super) fn judge_lock_owner(
    cx: &mut Ctx<'_>,
    info: &mut LockFileInfo,
    pid: i32,
    r: &ServerReading,
    parts: Option<PidFileParts>,
) -> LockStage {
    let _ = parts;
    let my_pid = std::process::id() as i32;
    // The one identity rule (interlock::process): only evidence that ties
    // the process to this directory makes it the owner, never start time.
    let verdict = cx.host.procfs.judge_pid(
        pid,
        r.shmem.map(|(_, id)| ShmId(id as i32)),
        &cx.real,
        cx.owner.0,
        my_pid,
    );
    let facts = cx.host.info(pid);
    info.process = summary(cx.host, pid);
    let lock_path = info.path.clone();
    let owner_uid = cx.owner.0;
    let same_user = facts
        .as_ref()
        .is_some_and(|f| f.uid == owner_uid || f.suid == owner_uid);
    let Some(f) = facts else {
        let identity = if verdict == OwnerVerdict::OtherUser {
            cx.find(
                Code::PidOtherUser,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which exists but cannot be read here (another user's, under hidepid); PostgreSQL treats it as gone"
                ),
            );
            Identity::OtherUser
        } else {
            cx.find(
                Code::StaleLockFile,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which no longer exists; PostgreSQL removes the file itself"
                ),
            );
            Identity::Gone
        };
        info.identity = Some(identity);
        return LockStage::Dead;
    };
    let facts = Some(f);
    let (identity, stage) = match (&verdict, &facts) {
        (OwnerVerdict::Zombie, Some(f)) => {
            let parent = summary(cx.host, f.ppid)
                .map(|p| format!("PID {} ({})", p.pid, p.cmdline))
                .unwrap_or_else(|| format!("PID {}", f.ppid));
            if same_user {
                cx.find(
                    Code::ZombiePostmaster,
                    Severity::Problem,
                    format!(
                        "PID {pid} named in {lock_path} has exited but is a zombie, never collected by its parent {parent}; PostgreSQL's kill(pid, 0) still succeeds on it"
                    ),
                );
                (Identity::Zombie, LockStage::Live(Identity::Zombie))
            } else {
                cx.find(
                    Code::PidOtherUser,
                    Severity::Info,
                    format!(
                        "PID {pid} is a zombie of {}; PostgreSQL treats it as gone",
                        cx.host.user_name(f.uid)
                    ),
                );
                (Identity::Zombie, LockStage::Dead)
            }
        }
        (OwnerVerdict::Alive { evidence, .. }, Some(_)) if same_user => {
            info.evidence = Some(evidence.to_string());
            (Identity::Owner, LockStage::Live(Identity::Owner))
        }
        (OwnerVerdict::Elsewhere { because, .. }, Some(f)) if same_user => {
            // Identity `reused`: the PID is not this directory's server,
            // and fix removes such a lock file without signalling anyone.
            info.evidence = Some(format!("another data directory's: {because}"));
            info.serves_elsewhere = true;
            cx.find(
                Code::PidReused,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, which is another data directory's server, not this one's ({because}; started {}): this directory is likely a copy of a running cluster's; PostgreSQL only checks that the PID is alive",
                    format_utc(f.start_time)
                ),
            );
            (Identity::Reused, LockStage::Live(Identity::Reused))
        }
        (OwnerVerdict::Unknown { why, .. }, Some(_)) if same_user => {
            info.evidence = Some(why.clone());
            cx.find(
                Code::PermissionDenied,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, a live process of {}, and whether it is this directory's server cannot be told: {why}",
                    cx.host.user_name(owner_uid)
                ),
            );
            (Identity::Unknown, LockStage::Live(Identity::Unknown))
        }
        (_, Some(f)) if same_user => {
            cx.find(
                Code::PidReused,
                Severity::Problem,
                format!(
                    "{lock_path} names PID {pid}, which is now {} (started {}), not a server of this directory; PostgreSQL only checks that the PID is alive",
                    info.process.as_ref().map(|p| p.cmdline.clone()).unwrap_or_else(|| printable(b"?")),
                    format_utc(f.start_time)
                ),
            );
            (Identity::Reused, LockStage::Live(Identity::Reused))
        }
        (_, Some(f)) => {
            cx.find(
                Code::PidOtherUser,
                Severity::Info,
                format!(
                    "{lock_path} names PID {pid}, which now belongs to {} ({}); PostgreSQL treats it as gone (kill returns EPERM) and removes the file",
                    cx.host.user_name(f.uid),
                    info.process.as_ref().map(|p| p.cmdline.clone()).unwrap_or_default()
                ),
            );
            (Identity::OtherUser, LockStage::Dead)
        }
        (_, None) => (Identity::Gone, LockStage::Dead),
    };
    info.identity = Some(identity);
    stage
}

pub(super) fn running_exe(cx: &Ctx<'_>, lock: &LockFileInfo) -> Option<PathBuf> {
    let mut pids: Vec<i32> = Vec::new();
    if lock.identity == Some(Identity::Owner) {
        pids.extend(lock.pid.map(i32::abs));
    }
    pids.extend(cx.attached.iter().map(|a| a.pid));
    for pid in pids {
        if let Ok(exe) = cx.host.procfs.exe(pid) {
            if is_postgres_executable(&exe) && exe.is_file() {
                return Some(exe);
            }
        }
    }
    None
}
