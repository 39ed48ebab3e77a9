//! `interlock`: will PostgreSQL start on this data directory, and if not,
//! why; and hold a data directory for a maintenance command.
//!
//! The binary is glue: arguments → library → output and exit code. Every
//! fact about PostgreSQL, `/proc` and the kernel lives in the `interlock`
//! and `interlock-format` crates.

#![forbid(unsafe_code)]

mod exit;
mod hold;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Will PostgreSQL start on this data directory? If not, why not — and hold
/// a data directory for a maintenance command.
#[derive(Debug, Parser)]
#[command(name = "interlock", version, about, long_about = None, after_help = exit::EXIT_CODES_HELP)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Hold DATADIR, in PostgreSQL's own format, while COMMAND runs.
    ///
    /// PostgreSQL refuses to start on DATADIR until COMMAND has exited, even
    /// if this process is killed meanwhile: a keeper process stays attached
    /// to the interlock segment for as long as COMMAND runs. The lock file
    /// is written as a standalone backend writes it (negative PID), so
    /// `pg_ctl` reports "single-user server is running". Run as root, it
    /// switches to the data directory's owner first, as PostgreSQL must run.
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to it are passed on to
    /// COMMAND. Exits with COMMAND's status (128+N if it died of signal N).
    #[command(after_help = exit::HOLD_EXIT_CODES_HELP)]
    Hold {
        /// The data directory.
        datadir: PathBuf,
        /// Port for line 4 of the lock file [default: the cluster's
        /// configured port, else 5432].
        #[arg(long)]
        port: Option<u16>,
        /// Hold with the segment only, writing no postmaster.pid: for tools
        /// that refuse to run while postmaster.pid exists (pg_resetwal,
        /// pg_upgrade). PostgreSQL 13+ still refuses to start; 10–12 do not
        /// look for the segment without the lock file.
        #[arg(long)]
        no_lock_file: bool,
        /// Seconds to wait for another interlock process that is acquiring
        /// the same directory.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let code = match args.command {
        Cmd::Hold {
            datadir,
            port,
            no_lock_file,
            wait,
            quiet,
            command,
        } => hold::run(&hold::HoldArgs {
            datadir,
            port,
            no_lock_file,
            wait,
            quiet,
            command,
        }),
    };
    ExitCode::from(code)
}
