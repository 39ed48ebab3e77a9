//! The fence in one call, for a Rust server that holds a data directory
//! across hosts itself: [`Fence::acquire`] takes the directory's key in
//! etcd, records the fencing token in `DATADIR/interlock.fence`, and starts
//! two threads: the [`Renewer`] and an enforcer, which calls `on_lost` the
//! moment the fence deadline passes ([`crate::protocol::must_fence`]) or
//! the lease is gone at etcd. From then on another host may take the key:
//! the server must stop writing at once. The default a server should use is
//! to end the process: [`Fence::acquire_or_abort`] (with
//! [`kill_this_process`]), the in-process equivalent of `interlock run`'s
//! self-fence.
//!
//! # What an in-process fence cannot do
//!
//! Its enforcer is a thread of the server's process: if the whole process
//! is frozen (SIGSTOP, a debugger, a cgroup freezer, a VM paused) past the
//! deadline, nothing runs to stop it, and when it wakes it may write before
//! the enforcer runs, after another host took the key. The fencing token
//! (larger at every acquisition) lets the storage or the clients refuse a
//! stale holder's writes, if they check it. For the deadline enforced from
//! outside the process, run the server under `interlock run --etcd`
//! (`crates/interlock-cli/src/run.rs`), whose separate watchdog process
//! stops it even when the server and `interlock run` are frozen or dead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::etcd::EtcdError;
use crate::key::{self, HolderValue};
use crate::lease::{self, AcquireError, Lease, RenewEvent, Renewer};
use crate::timing::{Timing, DEFAULT_TTL, MIN_TTL};

/// Where and how to take the fence.
#[derive(Debug, Clone)]
pub struct FenceOptions {
    endpoints: String,
    name: Option<String>,
    ttl: Duration,
}

impl FenceOptions {
    /// The etcd client endpoints, comma-separated (`http://HOST:PORT`; a
    /// bare `HOST:PORT` means `http://`); a TTL of
    /// [`DEFAULT_TTL`], no name.
    pub fn new(endpoints: impl Into<String>) -> FenceOptions {
        FenceOptions {
            endpoints: endpoints.into(),
            name: None,
            ttl: DEFAULT_TTL,
        }
    }

    /// What identifies the storage, with pg_control's system identifier,
    /// in the key `/interlock/SYSID/NAME` (default: the data directory's
    /// absolute path, which identifies the storage only when every host
    /// mounts it at the same path). Holders of one directory, and
    /// `interlock run --name` and `interlock status --name` for it, must
    /// use the same name.
    pub fn name(mut self, name: impl Into<String>) -> FenceOptions {
        self.name = Some(name.into());
        self
    }

    /// The lease's time-to-live (at least
    /// [`MIN_TTL`]); the timing follows from it
    /// ([`Timing::for_ttl`]).
    pub fn ttl(mut self, ttl: Duration) -> FenceOptions {
        self.ttl = ttl;
        self
    }

    /// The endpoints given.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// The timing these options give.
    pub fn timing(&self) -> Timing {
        Timing::for_ttl(self.ttl)
    }
}

/// Why the fence could not be taken or released.
#[derive(Debug)]
#[non_exhaustive]
pub enum FenceError {
    /// The TTL asked for is below [`MIN_TTL`].
    TtlTooShort(Duration),
    /// The data directory's key cannot be made (its absolute path, or
    /// pg_control's system identifier, cannot be read).
    Datadir(String),
    /// The key is held by another holder, or etcd could not be used.
    Acquire(AcquireError),
    /// `DATADIR/interlock.fence` could not be written (the lease was then
    /// revoked).
    FenceFile(PathBuf, std::io::Error),
    /// A thread could not be started (the lease was then revoked).
    Thread(std::io::Error),
    /// At release, the lease could not be revoked: the key stays until
    /// the lease lapses, within its TTL.
    Revoke(EtcdError, Duration),
}

impl fmt::Display for FenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FenceError::TtlTooShort(ttl) => write!(
                f,
                "a TTL of {} ms is below the minimum of {} s",
                ttl.as_millis(),
                MIN_TTL.as_secs()
            ),
            FenceError::Datadir(e) => write!(f, "cannot read the system identifier: {e}"),
            FenceError::Acquire(e) => write!(f, "{e}"),
            FenceError::FenceFile(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            FenceError::Thread(e) => write!(f, "cannot start the fence's thread: {e}"),
            FenceError::Revoke(e, ttl) => write!(
                f,
                "could not revoke the lease ({e}); it lapses within {} s",
                ttl.as_secs()
            ),
        }
    }
}

impl std::error::Error for FenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FenceError::Acquire(e) => Some(e),
            FenceError::FenceFile(_, e) | FenceError::Thread(e) => Some(e),
            FenceError::Revoke(e, _) => Some(e),
            _ => None,
        }
    }
}

/// Why the fence was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// No renewal succeeded for `fence_after`, counted from the send time
    /// of the last that did (this long ago): the lease may lapse at etcd
    /// soon, and the server must be stopped before.
    NotRenewed { since_last_renewal: Duration },
    /// etcd said the lease no longer exists (expired or revoked), or the
    /// key is no longer bound to it (deleted by hand): another holder may
    /// have the key already.
    LeaseGone,
}

/// The fence was lost: what `on_lost` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The key that was held.
    pub key: String,
    /// Its fencing token.
    pub token: i64,
    /// Why.
    pub reason: LostReason,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd key {} (fencing token {}): ", self.key, self.token)?;
        match &self.reason {
            LostReason::NotRenewed { since_last_renewal } => write!(
                f,
                "lease not renewed for {} ms",
                since_last_renewal.as_millis()
            ),
            LostReason::LeaseGone => write!(
                f,
                "the lease is gone at etcd (expired or revoked), or the key is no longer bound to it"
            ),
        }
    }
}

/// The default `on_lost`: say why on standard error, then SIGKILL this
/// process (no clean-up, no further write; PostgreSQL's own rule after a
/// crash, and the in-process equivalent of `interlock run`'s self-fence).
/// Aborts if the signal cannot be sent.
pub fn kill_this_process(lost: Lost) {
    eprintln!("interlock-fence: {lost}: SIGKILL to this process (self-fence)");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort();
}

/// The enforcer's state: told to stop (release), told the lease is gone
/// (by the renewer), and whether it fired.
#[derive(Debug, Default)]
struct Watch {
    state: Mutex<WatchState>,
    wake: Condvar,
    lost: AtomicBool,
}

#[derive(Debug, Default)]
struct WatchState {
    stop: bool,
    gone: bool,
}

impl Watch {
    fn set(&self, f: impl FnOnce(&mut WatchState)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_all();
    }
}

/// A data directory held across hosts: its key in etcd, renewed, and the
/// deadline enforced by a thread. See the [module](self) for what it
/// guarantees and what not.
///
/// Dropping it releases it as [`Fence::release`] does (errors ignored).
#[derive(Debug)]
pub struct Fence {
    lease: Lease,
    timing: Timing,
    datadir: PathBuf,
    holder: HolderValue,
    last_ok: Arc<AtomicU64>,
    watch: Arc<Watch>,
    renewer: Option<Renewer>,
    enforcer: Option<JoinHandle<()>>,
    released: bool,
}

impl Fence {
    /// Take the key of `datadir` ([`key::key_for`]: pg_control's system
    /// identifier and `opts`' name, or else the directory's absolute path),
    /// write `DATADIR/interlock.fence` ([`key::write_fence_file`]: the
    /// token, the key, this host, boot and PID), and start the renewer and
    /// the enforcer.
    ///
    /// `on_lost` runs once, on the enforcer's thread, when the fence
    /// deadline passes without a successful renewal or etcd says the lease
    /// is gone. The server must then stop writing to the directory at once:
    /// ending the process ([`kill_this_process`], as
    /// [`Fence::acquire_or_abort`] does) is the default to use; anything
    /// slower eats into the safety margin
    /// ([`Timing::stop_within`](crate::timing::Timing::stop_within)).
    ///
    /// Refused with [`FenceError::Acquire`] ([`AcquireError::Held`], which
    /// names the holder) when another holder has the key; with
    /// [`AcquireError::Unreachable`] when no etcd endpoint answers.
    pub fn acquire(
        datadir: &Path,
        opts: &FenceOptions,
        on_lost: impl FnOnce(Lost) + Send + 'static,
    ) -> Result<Fence, FenceError> {
        if opts.ttl < MIN_TTL {
            return Err(FenceError::TtlTooShort(opts.ttl));
        }
        let timing = opts.timing();
        let datadir = std::path::absolute(datadir)
            .map_err(|e| FenceError::Datadir(format!("{}: {e}", datadir.display())))?;
        let key = key::key_for(&datadir, opts.name.as_deref()).map_err(FenceError::Datadir)?;
        let holder = HolderValue::this_process(&datadir);
        let lease = Lease::acquire(&opts.endpoints, &key, &holder.to_json(), &timing)
            .map_err(FenceError::Acquire)?;
        let fail = |lease: &Lease, e: FenceError| {
            let _ = lease.revoke(timing.renew_every);
            e
        };
        if let Err(e) = key::write_fence_file(&datadir, lease.token(), &key, &holder) {
            let path = datadir.join(key::FENCE_FILE);
            return Err(fail(&lease, FenceError::FenceFile(path, e)));
        }

        let watch = Arc::new(Watch::default());
        let w = watch.clone();
        let renewer = match Renewer::start(&lease, &timing, move |ev| {
            // The lease gone, or the key no longer bound to it: either
            // way another holder may have the key now.
            if matches!(ev, RenewEvent::Gone | RenewEvent::KeyLost) {
                w.set(|s| s.gone = true);
            }
        }) {
            Ok(r) => r,
            Err(e) => return Err(fail(&lease, FenceError::Thread(e))),
        };
        let last_ok = renewer.last_ok().clone();
        let (w, l, k, token) = (watch.clone(), last_ok.clone(), key.clone(), lease.token());
        let enforcer = std::thread::Builder::new()
            .name("interlock-fence-enforcer".into())
            .spawn(move || enforce(&w, &l, &timing, k, token, on_lost));
        let enforcer = match enforcer {
            Ok(t) => t,
            Err(e) => {
                renewer.stop();
                return Err(fail(&lease, FenceError::Thread(e)));
            }
        };
        Ok(Fence {
            lease,
            timing,
            datadir,
            holder,
            last_ok,
            watch,
            renewer: Some(renewer),
            enforcer: Some(enforcer),
            released: false,
        })
    }

    /// [`Fence::acquire`] with [`kill_this_process`] as `on_lost`: when the
    /// fence is lost, the process says why on standard error and is
    /// killed with SIGKILL.
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use std::time::Duration;
    /// use interlock_fence::fence::{Fence, FenceOptions};
    ///
    /// let opts = FenceOptions::new("http://10.0.0.1:2379,http://10.0.0.2:2379")
    ///     .name("orders-db")
    ///     .ttl(Duration::from_secs(6));
    /// let fence = Fence::acquire_or_abort(Path::new("/srv/pg/orders"), &opts)?;
    /// println!("fencing token {}", fence.token());
    /// // ... serve; before each write batch, optionally:
    /// assert!(fence.is_valid());
    /// fence.release()?;
    /// # Ok::<(), interlock_fence::fence::FenceError>(())
    /// ```
    pub fn acquire_or_abort(datadir: &Path, opts: &FenceOptions) -> Result<Fence, FenceError> {
        Fence::acquire(datadir, opts, kill_this_process)
    }

    /// The fencing token: the key's create revision in etcd, larger at
    /// every acquisition. Give it to whatever can refuse a stale holder.
    pub fn token(&self) -> i64 {
        self.lease.token()
    }

    /// The key held (`/interlock/SYSID/NAME`).
    pub fn key(&self) -> &str {
        self.lease.key()
    }

    /// The lease's ID at etcd.
    pub fn lease_id(&self) -> i64 {
        self.lease.id()
    }

    /// The timing in force.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The data directory, absolute.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The value written in the key (and in `interlock.fence`).
    pub fn holder(&self) -> &HolderValue {
        &self.holder
    }

    /// Whether the fence still holds: the deadline has not passed since
    /// the last renewal that succeeded, and the lease was not found gone.
    /// False from the moment it is lost, even before `on_lost` runs.
    pub fn is_valid(&self) -> bool {
        if self.watch.lost.load(Ordering::SeqCst) {
            return false;
        }
        let last = self.last_ok.load(Ordering::SeqCst);
        !lease::fence_due(last, lease::now_ns(), &self.timing)
            && !self
                .watch
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .gone
    }

    /// Stop renewing and revoke the lease, which deletes the key: another
    /// holder can take it at once. The server must have stopped writing
    /// first. `interlock.fence` stays, the record of the last token. After
    /// `on_lost` ran, the revocation may fail (etcd unreachable): that
    /// error is returned, and the key lapses anyway. If `on_lost` is
    /// running, this waits for it to return.
    pub fn release(mut self) -> Result<(), FenceError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), FenceError> {
        if std::mem::replace(&mut self.released, true) {
            return Ok(());
        }
        // The enforcer first, so that releasing is never taken for a loss.
        self.watch.set(|s| s.stop = true);
        if let Some(t) = self.enforcer.take() {
            let _ = t.join();
        }
        if let Some(r) = self.renewer.take() {
            r.stop();
        }
        let gone = self
            .watch
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .gone;
        if gone {
            return Ok(());
        }
        self.lease
            .revoke(self.timing.renew_every)
            .map_err(|e| FenceError::Revoke(e, self.timing.ttl))
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The enforcer's thread: wait until the deadline (moved on by each
/// renewal), a lost lease, or a stop; on a loss, call `on_lost`.
fn enforce(
    watch: &Watch,
    last_ok: &AtomicU64,
    timing: &Timing,
    key: String,
    token: i64,
    on_lost: impl FnOnce(Lost),
) {
    let reason = {
        let mut g = watch.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if g.stop {
                return;
            }
            if g.gone {
                break LostReason::LeaseGone;
            }
            let now = lease::now_ns();
            let last = last_ok.load(Ordering::SeqCst);
            if lease::fence_due(last, now, timing) {
                break LostReason::NotRenewed {
                    since_last_renewal: Duration::from_nanos(now.saturating_sub(last)),
                };
            }
            let left = lease::fence_deadline_ns(last, timing).saturating_sub(now);
            // std's Condvar times out on CLOCK_MONOTONIC, the deadline's
            // clock; a renewal meanwhile is seen when it wakes.
            g = watch
                .wake
                .wait_timeout(g, Duration::from_nanos(left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    };
    watch.lost.store(true, Ordering::SeqCst);
    on_lost(Lost { key, token, reason });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_in_words() {
        let l = Lost {
            key: "/interlock/7/k".into(),
            token: 9,
            reason: LostReason::NotRenewed {
                since_last_renewal: Duration::from_millis(1003),
            },
        };
        assert_eq!(
            l.to_string(),
            "etcd key /interlock/7/k (fencing token 9): lease not renewed for 1003 ms"
        );
    }

    #[test]
    fn enforcer_fires_at_the_deadline_or_not_after_a_stop() {
        let t = Timing::for_ttl(MIN_TTL);
        let watch = Watch::default();
        let start = lease::now_ns();
        let last_ok = AtomicU64::new(start);
        let mut got = None;
        enforce(&watch, &last_ok, &t, "/k".into(), 1, |l| got = Some(l));
        let took = lease::now_ns() - start;
        let reason = got.expect("fired").reason;
        assert!(
            matches!(reason, LostReason::NotRenewed { .. }),
            "{reason:?}"
        );
        assert!(took >= t.fence_after.as_nanos() as u64, "{took}");
        assert!(watch.lost.load(Ordering::SeqCst));

        let watch = Watch::default();
        watch.set(|s| s.gone = true);
        let mut got = None;
        enforce(&watch, &last_ok, &t, "/k".into(), 1, |l| got = Some(l));
        assert_eq!(got.unwrap().reason, LostReason::LeaseGone);

        let watch = Watch::default();
        watch.set(|s| s.stop = true);
        enforce(&watch, &last_ok, &t, "/k".into(), 1, |_| panic!("fired"));
    }
}
