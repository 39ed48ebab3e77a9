//! A PostgreSQL-compatible data-directory interlock.
//!
//! PostgreSQL keeps two servers off one data directory with `postmaster.pid`
//! and a tiny System V shared-memory segment whose attach count proves that
//! no process of an earlier server still runs. This crate implements that
//! interlock byte for byte — a real PostgreSQL 10–18 refuses to start while
//! a [`DataDirLock`] is held, and [`DataDirLock::acquire`] refuses while a
//! real server (or any of its orphaned backends) runs — and closes the holes
//! PostgreSQL leaves open:
//!
//! * **PID reuse**: the lock file's PID is judged by identity (start time,
//!   segment mapping, executable and cwd), not by `kill(pid, 0)`; a zombie
//!   owner counts as gone.
//! * **Racing starters** never both win and never delete each other's lock
//!   file: acquires are serialised by a `flock` on the directory, and a
//!   lock file is only ever unlinked if it is still the file that was judged.
//! * **A deleted lock file, or a shifted key**, does not let anyone in while
//!   an old process is still attached: every attached segment of this
//!   directory is found, on whatever key it sits.
//! * **Children**: forked children hold the interlock as backends do; a
//!   command started with [`DataDirLock::spawn`] is covered by a keeper
//!   process for as long as it runs, even after its parent is killed.
//!
//! # Example
//!
//! ```
//! use interlock::{DataDirLock, LockOptions, PmStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut lock = DataDirLock::acquire_with(dir.path(), &LockOptions::new().port(5432))?;
//! lock.set_status(PmStatus::Ready)?;
//! let text = std::fs::read_to_string(dir.path().join("postmaster.pid"))?;
//! assert!(text.ends_with("ready   \n")); // padded, as PostgreSQL pads it
//!
//! // While held, nobody else gets the directory.
//! assert!(DataDirLock::acquire(dir.path()).is_err());
//!
//! // Is the lock file still ours? (Call this about once a minute.)
//! lock.recheck()?;
//! drop(lock); // segment and lock file are removed
//! assert!(!dir.path().join("postmaster.pid").exists());
//! # Ok(()) }
//! ```
//!
//! # What a server uses
//!
//! * [`DataDirLock`]: acquire, [`set_status`](DataDirLock::set_status)
//!   (line 8), [`recheck`](DataDirLock::recheck), [`spawn`](DataDirLock::spawn),
//!   [`release`](DataDirLock::release); configured by [`LockOptions`];
//!   [`Released`] says what a release left behind.
//! * [`KeptChild`]: a command covered by a keeper for as long as it runs;
//!   [`ForwardedSignals`] passes terminal signals on to it.
//! * [`Error`] (what acquire and recheck refuse with) and [`Holder`] (a
//!   process it names).
//! * [`PidFile`], [`PmStatus`], [`LOCK_FILE_NAME`]: the lock file's format.
//! * [`ShmKey`], [`ShmId`]: the System V segment's key and id.
//! * [`pg`]: the model of PostgreSQL's startup rules (first key, lock
//!   file reading), and [`ReadError`], why one of its files was not read.
//! * [`act_as_owner`]: run as the data directory's owner when started as
//!   root, as PostgreSQL requires.
//!
//! # Modules
//!
//! * [`lock`]: acquire / hold / release, and the order of the steps.
//! * [`pg`]: the one model of PostgreSQL's startup rules (the first key,
//!   the major version, reading `postmaster.pid`, lock file names), used
//!   by the lock and by the operator tooling alike.
//!
//! With the `tooling` feature (used by `interlock-doctor`, the operator
//! tooling; off by default), the mechanism is public too: `segment` (keys,
//! PostgreSQL's five segment states, the probe loop), `process` (facts
//! from `/proc` and the owner identity test), `safe_fs` (reading files a
//! hostile owner controls) and `sys` (the only `unsafe` code: SysV calls,
//! `fork`, `signalfd`).
//!
//! # Testing hook
//!
//! With the environment variable `INTERLOCK_FAILPOINT` set to the name of a
//! step (`mutex_taken`, `lockfile_checked`, `segments_scanned`,
//! `segment_created`, `segment_attached`, `stale_lockfile_removed`,
//! `lockfile_unlinked_copy_written`, `lockfile_written`, `release_detached`,
//! `release_segment_removed`), the process kills itself with SIGKILL when it
//! reaches that step. The crash tests use it to prove that no step leaves
//! the directory wedged or open while an old holder lives. The hook exists
//! only with the `failpoints` cargo feature, off by default and turned on
//! only for this crate's own tests and examples (a dev-dependency on
//! itself): a program that links the library, such as the `interlock` CLI,
//! ignores the variable (`scripts/test` checks that the CLI as built
//! normally survives it).

#![deny(unsafe_code)]
#![deny(missing_docs)]

/// A module public with the `tooling` feature (what `interlock-doctor`
/// builds on), private otherwise: a server that depends on the lock sees
/// the lock only.
macro_rules! tooling_mod {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg(feature = "tooling")]
        pub mod $name;
        #[cfg(not(feature = "tooling"))]
        #[allow(dead_code, unreachable_pub)]
        mod $name;
    };
}

mod datadir;
mod error;
pub mod lock;
mod lockfile;
pub mod pg;
tooling_mod!(
    /// Facts from `/proc` and the owner identity test.
    process
);
tooling_mod!(
    /// Bounded, non-blocking, no-follow reads of files a data directory's
    /// owner controls.
    safe_fs
);
tooling_mod!(
    /// Keys, PostgreSQL's five segment states, the probe loop.
    segment
);
tooling_mod!(
    /// The only `unsafe` code (SysV calls, `fork`, `signalfd`).
    sys
);

pub use datadir::act_as_owner;
pub use error::Error;
pub use interlock_format::pidfile::{PidFile, PmStatus};
pub use lock::{DataDirLock, ForwardedSignals, KeptChild, LockOptions, Released};
pub use pg::LOCK_FILE_NAME;
pub use process::Holder;
pub use safe_fs::ReadError;
pub use sys::shm::{ShmId, ShmKey};

/// Kill this process with SIGKILL if `INTERLOCK_FAILPOINT` names `step`
/// (see "Testing hook" in the crate docs). Only with the `failpoints`
/// feature, which only this crate's tests and examples turn on.
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint(step: &str) {
    static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var("INTERLOCK_FAILPOINT").ok());
    if wanted.as_deref() == Some(step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// Without the `failpoints` feature (every normal build): nothing, and the
/// environment is not read.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn failpoint(_step: &str) {}
