//! `interlock hold DATADIR -- COMMAND [ARGS...]`.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interlock::{DataDirLock, Error, ForwardedSignals, LockOptions, Released};

use crate::exit;

/// Arguments of `interlock hold`.
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// The data directory.
    pub datadir: PathBuf,
    /// Port for line 4 of the lock file [default: the cluster's
    /// configured port, else 5432].
    #[arg(long)]
    pub port: Option<u16>,
    /// Hold with the segment only, writing no postmaster.pid: for tools
    /// that refuse to run while postmaster.pid exists (pg_resetwal,
    /// pg_upgrade). PostgreSQL still refuses to start: it finds the
    /// segment by its key probe (10–12: when started on the same port, as
    /// their keys come from the port).
    #[arg(long)]
    pub no_lock_file: bool,
    /// Seconds to wait for another interlock process that is acquiring
    /// the same directory.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

fn report(err: &Error) {
    eprintln!("interlock: {err}");
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
}

/// The lock a holder takes on `datadir`, as a standalone backend: on
/// `port`, else the configuration's, else 5432 (the key of 10–12 follows
/// it); files of the configuration refused as unsafe are warned about.
pub fn lock_options(datadir: &Path, port: Option<u16>, lock_file: bool, wait: u64) -> LockOptions {
    let settings =
        interlock_doctor::config::read_settings(&interlock_doctor::HostRoot::default(), datadir);
    for r in &settings.refused {
        eprintln!("interlock: warning: {r}");
    }
    LockOptions::new()
        .standalone(true)
        .port(port.or(settings.port()).unwrap_or(5432))
        .lock_file(lock_file)
        .wait(Duration::from_secs(wait))
}

pub fn run(args: &HoldArgs) -> u8 {
    // As PostgreSQL must run as the directory's owner, so must its lock.
    if let Err(e) = interlock::act_as_owner(&args.datadir) {
        report(&e);
        return exit::HOLD_FAILED;
    }
    let opts = lock_options(&args.datadir, args.port, !args.no_lock_file, args.wait);

    // Block the signals we pass on before anything is forked, so none is
    // lost and the keeper inherits the block.
    let signals = match ForwardedSignals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("interlock: cannot set up signal forwarding: {e}");
            return exit::HOLD_FAILED;
        }
    };
    let lock = match DataDirLock::acquire_with(&args.datadir, &opts) {
        Ok(lock) => lock,
        Err(e) => {
            report(&e);
            return acquire_failed(&e);
        }
    };
    let (program, rest) = match args.command.split_first() {
        Some(split) => split,
        None => return exit::HOLD_FAILED, // clap requires at least one
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    let mut child = match lock.spawn(&mut cmd) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("interlock: cannot run {}: {e}", program.to_string_lossy());
            return match e.kind() {
                ErrorKind::NotFound => exit::HOLD_NOT_FOUND,
                ErrorKind::PermissionDenied => exit::HOLD_CANNOT_EXEC,
                _ => exit::HOLD_FAILED,
            };
        }
    };
    if !args.quiet {
        let what = match lock.lock_file() {
            Some(f) => format!("lock file {} (PID -{})", f.display(), std::process::id()),
            None => "no lock file".to_string(),
        };
        eprintln!(
            "interlock: holding {} (segment key {}, ID {}; {what}) while PID {} runs",
            lock.data_dir().display(),
            lock.key(),
            lock.shmid(),
            child.id()
        );
    }
    let status = child.wait_forwarding(&signals);
    drop(signals);
    let code = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => c.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
            _ => exit::HOLD_FAILED,
        },
        Err(e) => {
            eprintln!("interlock: waiting for the command failed: {e}");
            exit::HOLD_FAILED
        }
    };
    match lock.release() {
        Released::Deferred { nattch } if !args.quiet => eprintln!(
            "interlock: {nattch} process(es) started by the command still hold the directory; \
             the lock stays until they exit"
        ),
        _ => {}
    }
    code
}

/// The exit code of a failed acquire: 75 when the directory is in use (or
/// cannot be proven free), 125 for any other failure (`hold` and `run`).
pub fn acquire_failed(e: &Error) -> u8 {
    match e {
        Error::LockFileHeld { .. }
        | Error::LockFileOwnerUnknown { .. }
        | Error::SegmentInUse { .. }
        | Error::SegmentAnalysisFailed { .. } => exit::HOLD_BUSY,
        _ => exit::HOLD_FAILED,
    }
}
