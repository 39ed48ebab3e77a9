//! Acquire, hold and release a data directory.
//!
//! # The sequence, and why in this order
//!
//! 1. Open the directory and check it like `checkDataDir` (exists, ours).
//! 2. Take the startup mutex (`flock` on the directory, see `datadir.rs`):
//!    our starters run steps 3–7 one at a time, so two of them can never
//!    both judge the same stale file dead and delete each other's file.
//! 3. Read `postmaster.pid`. Empty, corrupt, symlinked, oversized: refuse,
//!    remove nothing. A live owner (judged by identity, `process.rs`:
//!    evidence that ties it to this directory, never start time alone):
//!    refuse; a live PID whose ties cannot be read: refuse too. A PID proven
//!    another directory's (a copy of a running cluster's directory) is
//!    stale, where PostgreSQL refuses. A stale file: check the segment on its line 7 the way
//!    `PGSharedMemoryIsInUse` does; attached means old processes live:
//!    refuse.
//! 4. Look for any attached segment of this directory, on any key
//!    (`segment::attached_segments_of`). This is what defeats the deleted
//!    lock file and the "shift the key" bypass.
//! 5. Create our segment with PostgreSQL's probe loop, keyed by the
//!    directory's inode as 13+ does, header and all.
//! 6. Unlink the stale lock file, if it is still the file we judged.
//! 7. Create the new lock file, lines 1–7 (and 8 for a server) in one
//!    write, `O_EXCL`, fsync. If a real PostgreSQL created one between 6 and
//!    7, it will find our segment ATTACHED and give up; we remove our
//!    segment and start over from step 3, which then refuses while that
//!    server lives.
//!
//! Creating the segment before the lock file means one fsync per acquire,
//! and a crash at any step leaves nothing that wedges the next acquire: a
//! segment without a lock file is UNATTACHED once we are dead and is
//! recycled by the probe loop; a lock file naming a dead PID is stale.
//!
//! # Children
//!
//! A forked child inherits the attachment and counts in `shm_nattch`, so
//! it holds the interlock as a PostgreSQL backend does. `exec` drops the
//! attachment; [`DataDirLock::spawn`] therefore starts a command together
//! with a keeper process (a fork of ours, attached) that lives exactly as
//! long as the command, even if we are killed.
//!
//! # Release
//!
//! On drop or at process exit (`atexit`, as PostgreSQL's `on_proc_exit`):
//! detach; if the segment still has holders (children or keepers still
//! running), leave both segment and lock file in place, which keeps every
//! starter out until they are gone; otherwise remove the segment and then
//! the lock file, if it is still ours.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use interlock_format::pidfile::{PidFile, PmStatus, ShmemLine};

use crate::datadir::DataDir;
use crate::lockfile::{self, Existing, FileId};
use crate::pg;
use crate::process::{OwnerVerdict, ProcFs};
use crate::segment;
use crate::sys;
use crate::sys::shm::{Attachment, ShmId, ShmKey};
use crate::Error;

/// How to acquire a data directory.
#[derive(Debug, Clone)]
pub struct LockOptions {
    port: u16,
    standalone: bool,
    lock_file: bool,
    wait: Duration,
    recheck_interval: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            port: 0,
            standalone: false,
            lock_file: true,
            wait: Duration::from_secs(10),
            recheck_interval: Duration::from_secs(60),
        }
    }
}

impl LockOptions {
    /// Defaults: a server-style lock file (positive PID, status line
    /// `starting`), port 0, a 10 s wait for a concurrent acquire.
    pub fn new() -> Self {
        Self::default()
    }

    /// The port written on line 4 (PostgreSQL's `PostPortNumber`). For a
    /// data directory of 10–12 it also seeds the segment key, as there
    /// (`port * 1000 + 1`); 0 (unknown) seeds it with the inode, as 13+ do.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Write the lock file as a standalone backend does: negative PID,
    /// explicit empty line 6, no status line. `pg_ctl stop` then refuses
    /// with "single-user server is running", and a starting postmaster says
    /// "Is another postgres (PID N) running…". Right for maintenance holds.
    pub fn standalone(mut self, yes: bool) -> Self {
        self.standalone = yes;
        self
    }

    /// Whether to write `postmaster.pid` at all. Without it only the segment
    /// holds the directory: PostgreSQL finds it by its key probe and refuses
    /// with "pre-existing shared memory block" (13+ always; 10–12 when they
    /// start on the port given to [`LockOptions::port`], since their keys
    /// come from the port). This is for tools such as `pg_resetwal` that
    /// refuse to run while `postmaster.pid` exists.
    pub fn lock_file(mut self, yes: bool) -> Self {
        self.lock_file = yes;
        self
    }

    /// How long to wait for another acquirer of this library.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How often [`DataDirLock::recheck_if_due`] actually rechecks
    /// (PostgreSQL: once a minute).
    pub fn recheck_interval(mut self, every: Duration) -> Self {
        self.recheck_interval = every;
        self
    }
}

/// What release found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Segment and lock file removed.
    Clean,
    /// Other processes (forked children, keepers) are still attached:
    /// segment and lock file were left in place so that nobody starts
    /// before they exit. The next acquire cleans up after them.
    Deferred {
        /// Attach count after we detached.
        nattch: u64,
    },
    /// Nothing to do (already released, or not the owner process).
    Nothing,
}

/// Everything needed to release, kept in a process-wide registry so that
/// both `Drop` and the `atexit` hook can do it, exactly once.
#[derive(Debug)]
struct Held {
    id: u64,
    owner_pid: i32,
    shmid: ShmId,
    attachment: Option<Attachment>,
    lock: Option<(OwnedFd, FileId)>,
    dir: DataDir,
}

fn registry() -> &'static Mutex<Vec<Held>> {
    static REGISTRY: OnceLock<Mutex<Vec<Held>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<Held>> {
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

extern "C" fn release_all_at_exit() {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let held: Vec<Held> = {
        let mut reg = lock_registry();
        let (mine, others): (Vec<Held>, Vec<Held>) = reg.drain(..).partition(|h| h.owner_pid == me);
        *reg = others;
        mine
    };
    for h in held {
        release_held(h);
    }
}

fn release_held(mut h: Held) -> Released {
    // Detach first, like PostgreSQL's shmem_exit (shmdt before IPC_RMID).
    drop(h.attachment.take());
    crate::failpoint("release_detached");
    // Another process analysing segments (a starting server, `acquire`
    // elsewhere, a diagnosis with --attach) attaches for microseconds to
    // read a header: give such an attachment a moment to go before calling
    // it a holder that defers the release.
    let mut st = sys::shm::stat(h.shmid);
    for _ in 0..5 {
        match &st {
            Ok(s) if s.nattch > 0 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                st = sys::shm::stat(h.shmid);
            }
            _ => break,
        }
    }
    match st {
        Ok(st) if st.nattch > 0 => return Released::Deferred { nattch: st.nattch },
        Ok(_) => {
            let _ = sys::shm::remove(h.shmid);
        }
        Err(_) => {} // already gone (ipcrm, RemoveIPC)
    }
    crate::failpoint("release_segment_removed");
    if let Some((_fd, id)) = h.lock.take() {
        let _ = lockfile::unlink_if_same(&h.dir, id);
    }
    Released::Clean
}

/// A held data directory. Released on drop (see the module doc).
#[derive(Debug)]
pub struct DataDirLock {
    id: u64,
    owner_pid: i32,
    data_dir: PathBuf,
    lock_path: Option<PathBuf>,
    key: ShmKey,
    shmid: ShmId,
    pidfile: PidFile,
    recheck_interval: Duration,
    last_recheck: Instant,
}

fn my_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

impl DataDirLock {
    /// Acquire `data_dir` with default options. See [`LockOptions`].
    pub fn acquire(data_dir: impl AsRef<Path>) -> Result<DataDirLock, Error> {
        Self::acquire_with(data_dir, &LockOptions::default())
    }

    /// Acquire `data_dir`: refuse if a live owner or any attached segment of
    /// this directory exists, clean up stale remains, create segment and
    /// lock file. The errors name the competing PID, key and shmid.
    pub fn acquire_with(
        data_dir: impl AsRef<Path>,
        opts: &LockOptions,
    ) -> Result<DataDirLock, Error> {
        let given = data_dir.as_ref();
        let dir = DataDir::open(given)?;
        let me = my_pid();
        if lock_registry()
            .iter()
            .any(|h| h.owner_pid == me && h.dir.dev == dir.dev && h.dir.ino == dir.ino)
        {
            return Err(Error::AlreadyHeld {
                path: dir.path.clone(),
            });
        }
        let mutex = dir.startup_mutex(opts.wait)?;
        crate::failpoint("mutex_taken");
        let procfs = ProcFs::default();
        let start_time = procfs
            .stat(me)
            .and_then(|st| procfs.start_time(&st))
            .map_err(|e| Error::sys("read(\"/proc/self/stat\")", e))?;

        // A PostgreSQL starter can slip its lock file in between our checks
        // and our O_EXCL create; then we back out and judge again.
        let mut attempts = 0;
        let (created, lock) = loop {
            attempts += 1;
            let stale = check_existing(&dir, &procfs, me, opts.lock_file)?;
            crate::failpoint("lockfile_checked");
            if let Some(seg) = segment::attached_segments_of(&dir.path, dir.uid)?
                .into_iter()
                .next()
            {
                return Err(Error::SegmentInUse {
                    data_dir: dir.path.clone(),
                    key: seg.key,
                    shmid: seg.shmid,
                    nattch: seg.nattch,
                    holders: procfs.holders_or_creator(seg.shmid, seg.nattch),
                });
            }
            crate::failpoint("segments_scanned");
            let created = segment::create(
                &dir.path,
                dir.dev,
                dir.ino,
                first_key(&dir, opts.port),
                me,
                dir.uid,
            )?;
            crate::failpoint("segment_attached");
            if !opts.lock_file {
                break (created, None);
            }
            let content = render(&dir, me, start_time, opts, created.key, created.shmid);
            let published = stale
                .map_or(Ok(false), |id| lockfile::unlink_if_same(&dir, id))
                .and_then(|_| {
                    crate::failpoint("stale_lockfile_removed");
                    lockfile::create(&dir, &content.render())
                });
            match published {
                Ok(Some((fd, id))) => break (created, Some((fd, id, content))),
                Err(e) => {
                    // Leave no segment behind for an acquire that failed.
                    let shmid = created.shmid;
                    drop(created);
                    let _ = sys::shm::remove(shmid);
                    return Err(e);
                }
                Ok(None) => {
                    let shmid = created.shmid;
                    drop(created);
                    let _ = sys::shm::remove(shmid);
                    if attempts >= 3 {
                        // Judge once more so the error names the winner.
                        check_existing(&dir, &procfs, me, true)?;
                        return Err(Error::sys(
                            format!(
                                "open(\"{}\", O_CREAT|O_EXCL)",
                                lockfile::path(&dir).display()
                            ),
                            std::io::Error::from_raw_os_error(libc::EEXIST),
                        ));
                    }
                }
            }
        };
        crate::failpoint("lockfile_written");
        drop(mutex);

        ensure_exit_hook();
        let id = next_id();
        let (lock_fd, pidfile) = match lock {
            Some((fd, fid, content)) => (Some((fd, fid)), content),
            None => (
                None,
                render(&dir, me, start_time, opts, created.key, created.shmid),
            ),
        };
        let guard = DataDirLock {
            id,
            owner_pid: me,
            data_dir: dir.path.clone(),
            lock_path: lock_fd.as_ref().map(|_| lockfile::path(&dir)),
            key: created.key,
            shmid: created.shmid,
            pidfile,
            recheck_interval: opts.recheck_interval,
            last_recheck: Instant::now(),
        };
        lock_registry().push(Held {
            id,
            owner_pid: me,
            shmid: created.shmid,
            attachment: Some(created.attachment),
            lock: lock_fd,
            dir,
        });
        Ok(guard)
    }

    /// The data directory, absolute, as written on line 2.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The lock file, unless acquired without one.
    pub fn lock_file(&self) -> Option<&Path> {
        self.lock_path.as_deref()
    }

    /// The interlock segment's key.
    pub fn key(&self) -> ShmKey {
        self.key
    }

    /// The interlock segment's id.
    pub fn shmid(&self) -> ShmId {
        self.shmid
    }

    /// The lock file's content as we last wrote it.
    pub fn pidfile(&self) -> &PidFile {
        &self.pidfile
    }

    /// Rewrite the status line (8) as PostgreSQL does, padded so that the
    /// file never shrinks. Ignored for standalone and lock-file-less holds,
    /// which have no status line.
    pub fn set_status(&mut self, status: PmStatus) -> Result<(), Error> {
        if self.pidfile.is_standalone() || self.lock_path.is_none() {
            return Ok(());
        }
        self.pidfile.status = Some(status);
        self.pidfile.line_count = 8;
        let bytes = self.pidfile.render();
        let reg = lock_registry();
        let Some(held) = reg.iter().find(|h| h.id == self.id) else {
            return Ok(());
        };
        if let Some((fd, _)) = &held.lock {
            lockfile::write_at_start(fd, &bytes).map_err(|e| {
                Error::sys(
                    format!(
                        "write(\"{}\")",
                        self.lock_path.as_deref().unwrap_or(Path::new("")).display()
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Is the directory still ours? Like PostgreSQL's
    /// `RecheckDataDirLockFile`: the lock file must still exist and name
    /// our PID; stronger: it must be the same file, and our segment must
    /// not have been removed (`ipcrm`, systemd's `RemoveIPC`). On an error
    /// the caller should shut down, as PostgreSQL does.
    pub fn recheck(&mut self) -> Result<(), Error> {
        self.last_recheck = Instant::now();
        match sys::shm::stat(self.shmid) {
            Ok(st) if st.mode & 0o1000 == 0 => {}
            _ => return Err(Error::SegmentRemoved { shmid: self.shmid }),
        }
        let Some(path) = &self.lock_path else {
            return Ok(());
        };
        let reg = lock_registry();
        let Some(held) = reg.iter().find(|h| h.id == self.id) else {
            return Ok(());
        };
        let Some((_, ours)) = &held.lock else {
            return Ok(());
        };
        match lockfile::read(&held.dir) {
            Ok(Existing::Parsed(pf, id)) if id == *ours && pf.pid == self.pidfile.pid => Ok(()),
            Ok(Existing::Parsed(pf, _)) => Err(Error::LockLost {
                path: path.clone(),
                found: format!("it names PID {}", pf.pid),
            }),
            Ok(Existing::Absent) => Err(Error::LockLost {
                path: path.clone(),
                found: "it was removed".into(),
            }),
            Err(e) => Err(Error::LockLost {
                path: path.clone(),
                found: e.to_string(),
            }),
        }
    }

    /// [`recheck`](Self::recheck) if the recheck interval has passed since
    /// the last one; call it from a server's main loop.
    pub fn recheck_if_due(&mut self) -> Result<(), Error> {
        if self.last_recheck.elapsed() >= self.recheck_interval {
            self.recheck()
        } else {
            Ok(())
        }
    }

    /// Spawn `cmd` so that the interlock covers it although `exec` drops
    /// SysV attachments: a keeper process (a fork of this one, attached)
    /// lives until the command exits, even if this process is killed. The
    /// command does not exec until its keeper is in place.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<KeptChild> {
        let keeper = sys::proc::prepare_kept_command(cmd)?;
        let spawned = cmd.spawn();
        let keeper_pid = keeper.command_spawned();
        match spawned {
            Ok(child) => {
                let pid = rustix::process::Pid::from_child(&child);
                // The child is ours and unreaped: its PID cannot be reused.
                let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
                Ok(KeptChild {
                    child,
                    keeper_pid,
                    pidfd,
                    keeper_reaped: false,
                })
            }
            Err(e) => {
                reap(keeper_pid);
                Err(e)
            }
        }
    }

    /// Release now and say what happened (dropping does the same silently).
    pub fn release(self) -> Released {
        let released = take_and_release(self.id, self.owner_pid);
        std::mem::forget(self);
        released
    }
}

fn take_and_release(id: u64, owner_pid: i32) -> Released {
    if owner_pid != my_pid() {
        // A forked child: its copy of the guard releases nothing; the
        // child's attachment goes when it exits, as a backend's does.
        return Released::Nothing;
    }
    let held = {
        let mut reg = lock_registry();
        match reg.iter().position(|h| h.id == id) {
            Some(i) => reg.swap_remove(i),
            None => return Released::Nothing,
        }
    };
    release_held(held)
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        take_and_release(self.id, self.owner_pid);
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT, blocked in this process and read
/// from a `signalfd`, for [`KeptChild::wait_forwarding`] to pass on. Create
/// it before the lock is acquired and the command spawned, in a
/// single-threaded process, so that no signal is lost and the keeper
/// inherits the block.
#[derive(Debug)]
pub struct ForwardedSignals(sys::signal::SignalFd);

impl ForwardedSignals {
    /// Block the four signals and open the `signalfd`.
    ///
    /// # Errors
    /// What `sigprocmask` and `signalfd` return.
    pub fn block() -> std::io::Result<Self> {
        Ok(ForwardedSignals(sys::signal::SignalFd::for_forwarding()?))
    }
}

/// A command spawned by [`DataDirLock::spawn`].
#[derive(Debug)]
pub struct KeptChild {
    child: Child,
    keeper_pid: i32,
    pidfd: OwnedFd,
    keeper_reaped: bool,
}

impl KeptChild {
    /// The command's PID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The keeper's PID.
    pub fn keeper_id(&self) -> i32 {
        self.keeper_pid
    }

    /// A pidfd for the command, to poll for its exit or signal it without
    /// any PID-reuse race.
    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// The underlying child.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Send `signal` to the command through its pidfd: never to a process
    /// that merely reuses its PID.
    ///
    /// # Errors
    /// `EINVAL` for a number that is not a signal's, `ESRCH` if the
    /// command has exited.
    pub fn signal(&self, signo: i32) -> std::io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(signo)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        rustix::process::pidfd_send_signal(&self.pidfd, signal)?;
        Ok(())
    }

    /// Wait for the command while passing on SIGINT, SIGTERM, SIGHUP and
    /// SIGQUIT that other processes send us (a terminal's Ctrl-C already
    /// reaches the command through its process group and is not sent
    /// twice). `signals` must have been created before the command was
    /// spawned, in a single-threaded process, so that no signal is lost.
    pub fn wait_forwarding(
        &mut self,
        signals: &ForwardedSignals,
    ) -> std::io::Result<std::process::ExitStatus> {
        use rustix::event::{poll, PollFd, PollFlags};
        let signals = &signals.0;
        loop {
            let mut fds = [
                PollFd::new(&self.pidfd, PollFlags::IN),
                PollFd::new(signals, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            let exited = !fds[0].revents().is_empty();
            while let Some(got) = signals.read()? {
                if exited || !got.sent_by_process() {
                    continue;
                }
                if !matches!(
                    got.signo,
                    libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT
                ) {
                    continue;
                }
                // ESRCH: it exited meanwhile; the poll will say so.
                let _ = self.signal(got.signo);
            }
            if exited {
                return self.wait();
            }
        }
    }

    /// Wait for the command, then for its keeper (which exits right after).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        if !self.keeper_reaped {
            reap(self.keeper_pid);
            self.keeper_reaped = true;
        }
        Ok(status)
    }
}

fn reap(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn ensure_exit_hook() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let _ = sys::proc::at_exit(release_all_at_exit);
    });
}

fn render(
    dir: &DataDir,
    pid: i32,
    start_time: i64,
    opts: &LockOptions,
    key: ShmKey,
    shmid: ShmId,
) -> PidFile {
    let mut pf = if opts.standalone {
        PidFile::new_standalone(pid, dir.path.clone(), start_time, opts.port)
    } else {
        PidFile::new_server(pid, dir.path.clone(), start_time, opts.port)
    };
    pf.shmem = Some(ShmemLine {
        key: key.0,
        shmid: shmid.0,
    });
    if opts.standalone {
        pf.line_count = 7;
    } else {
        pf.status = Some(PmStatus::Starting);
        pf.line_count = 8;
    }
    pf
}

/// Step 3: judge an existing lock file. Returns the stale file's identity
/// (to unlink later) or refuses.
fn check_existing(
    dir: &DataDir,
    procfs: &ProcFs,
    me: i32,
    lock_file: bool,
) -> Result<Option<FileId>, Error> {
    let (pf, id) = match lockfile::read(dir)? {
        Existing::Absent => return Ok(None),
        Existing::Parsed(pf, id) => (pf, id),
    };
    // One identity rule (process.rs). A PID proven to be another
    // directory's server (this directory is a copy of a running cluster's)
    // is stale here, where PostgreSQL's kill(pid, 0) refuses; a PID whose
    // ties cannot be read may be the owner, so it refuses.
    match procfs.judge_owner(&pf, &dir.canonical, dir.uid, me) {
        OwnerVerdict::Alive { pid, evidence } => {
            return Err(Error::LockFileHeld {
                path: lockfile::path(dir),
                data_dir: dir.path.clone(),
                pid,
                standalone: pf.is_standalone(),
                evidence: evidence.to_string(),
            })
        }
        OwnerVerdict::Unknown { pid, why, .. } => {
            return Err(Error::LockFileOwnerUnknown {
                path: lockfile::path(dir),
                pid,
                why,
            })
        }
        OwnerVerdict::Gone
        | OwnerVerdict::Zombie
        | OwnerVerdict::Reused { .. }
        | OwnerVerdict::Elsewhere { .. }
        | OwnerVerdict::OtherUser => {}
    }
    if let Some(line) = pf.shmem {
        // PostgreSQL's PGSharedMemoryIsInUse, as pg::line7_verdict rules;
        // stronger: an unattached segment of ours is removed now.
        //
        // The new algorithm's rule, whatever the directory's version. It
        // refuses wherever the old one (10.0–10.7, 11.0–11.2) does but in
        // one case: a segment with processes attached that we may read
        // but not attach, which the old one takes for in use because its
        // shmat fails, whoever's it is. That cannot be a segment a server
        // or acquire of this directory made (mode 0600, its owner's, which
        // is us), so nothing of this directory runs there; elsewhere the
        // new rule is as strict or stricter (an analysis failure).
        // `analyze` has already attached as us, its shmat's EACCES made it
        // Foreign: read-write is what it found.
        let shmid = ShmId(line.shmid);
        let state = segment::analyze(shmid, &dir.path);
        match pg::line7_verdict(
            Some(pg::Algorithm::New),
            state.whose(),
            state.nattch(),
            pg::ShmAccess::ReadWrite,
        ) {
            pg::Line7Verdict::InUse | pg::Line7Verdict::Unknown(_) => {
                return Err(state.refusal(&dir.path, ShmKey(line.key), shmid))
            }
            pg::Line7Verdict::Unattached => {
                segment::remove_if_unattached(shmid, &dir.path, dir.uid);
            }
            pg::Line7Verdict::Ignored => {}
        }
    }
    // Without our own lock file (segment-only holds) a stale file stays:
    // tools that refuse to run while it exists will say so themselves.
    Ok(if lock_file { Some(id) } else { None })
}

/// The first key to probe: PostgreSQL's for the directory's version
/// (`pg::first_key`), so that a server of that version probing for its own
/// segment finds ours; the inode when the version is unknown, or is 10–12
/// and the port is not (0).
fn first_key(dir: &DataDir, port: u16) -> ShmKey {
    // Bounded, and neither a FIFO nor a link in another user's directory
    // (safe_fs): a hostile PG_VERSION must not hang or exhaust `hold`.
    crate::safe_fs::pg_version(&dir.path)
        .ok()
        .flatten()
        .and_then(|v| pg::major_of(&v))
        .filter(|&m| port != 0 || pg::key_seed(m) != Some(pg::KeySeed::Port))
        .and_then(|m| pg::first_key(m, port, dir.ino))
        .unwrap_or_else(|| pg::key_for_inode(dir.ino))
}
