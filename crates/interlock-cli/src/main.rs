//! `interlock`: will PostgreSQL start on this data directory, and if not,
//! why; and hold a data directory for a maintenance command.
//!
//! The binary is glue: arguments → library → output and exit code. Every
//! fact about PostgreSQL, `/proc` and the kernel lives in the `interlock`
//! and `interlock-format` crates.

#![forbid(unsafe_code)]

mod assets;
mod control;
mod demo;
mod exit;
mod explain;
mod fix;
mod hold;
mod limits;
mod monitor;
mod out;
mod preflight;
mod run;
mod scan;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use interlock_doctor::HostRoot;

/// Will PostgreSQL start on this data directory? If not, why not — and hold
/// a data directory for a maintenance command.
#[derive(Debug, Parser)]
#[command(name = "interlock", version, about, long_about = None, after_help = exit::EXIT_CODES_HELP)]
struct Args {
    /// For developers and tests, hidden from --help: read the host's files
    /// (/proc, /dev/shm, /etc, /sys) under DIR instead of / — a fixture
    /// tree laid out as DIR/proc, DIR/dev/shm, DIR/etc, DIR/sys. Every
    /// command that reads the host honours it (`interlock --root DIR status
    /// DATADIR`); whether a PID runs then comes from DIR/proc/PID alone,
    /// never from kill(pid, 0). `fix --yes` refuses it: signals and
    /// removals would reach the real host.
    #[arg(long, value_name = "DIR", hide = true, default_value = "/")]
    root: PathBuf,
    /// For packagers, hidden from --help: write the man pages (DIR/man/
    /// interlock.1, interlock-SUBCOMMAND.1) and the bash, zsh and fish
    /// completions (DIR/complete/) generated from these definitions, then
    /// exit. `scripts/package` runs it.
    #[arg(long, value_name = "DIR", hide = true)]
    generate_assets: Option<PathBuf>,
    /// What to do [default: scan].
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Will PostgreSQL start on DATADIR? If not, why not, who holds it, and
    /// what to do.
    ///
    /// Replays the server's own startup checks (data directory, lock file,
    /// line 7's segment, the key probe) against what /proc shows, and names
    /// the FATAL message the server would log. Attaches to no segment: a
    /// segment's processes are found in /proc/PID/maps and its header is
    /// read through a holder's /proc/PID/mem (needs root), so a server
    /// starting at the same moment is never disturbed.
    #[command(after_help = exit::STATUS_EXIT_CODES_HELP)]
    Status(status::StatusArgs),
    /// The whole host: every PostgreSQL data directory, segment and DSM
    /// file, who holds them, and what is left over. What `interlock` alone
    /// runs.
    ///
    /// Finds data directories from the working directories of PostgreSQL
    /// processes, the directories given and /var/lib/postgresql/*/*, and
    /// diagnoses each as `status` does; maps every segment to its data
    /// directory without attaching; reports leaked segments and DSM files,
    /// directories that probe the same keys, and servers in other
    /// namespaces (containers). With --etcd (or INTERLOCK_ETCD), also each
    /// directory's fence across hosts: every key under /interlock/SYSID/
    /// (one read per system identifier) counts for a directory if it is
    /// its default key (/interlock/SYSID/PATH, its absolute path as found)
    /// or if the datadir its holder recorded is that path or resolves here
    /// to the same directory (a key of `run --name`); a holder elsewhere is
    /// preferred when several count. Keys that count for no directory found
    /// are listed as "fenced under other names" (replicas share SYSID),
    /// without changing a verdict. etcd is given 3 s for every directory
    /// together, and once unreachable is not tried again.
    #[command(after_help = exit::SCAN_EXIT_CODES_HELP)]
    Scan(scan::ScanArgs),
    /// Get a blocked PostgreSQL started without harming anything else: print
    /// the plan; with --yes, carry it out.
    ///
    /// Stops only the processes proven attached to DATADIR's segment (SIGCONT
    /// if stopped, then SIGQUIT for a server's children or SIGINT for a
    /// postmaster, then SIGKILL after --timeout), each through a pidfd opened
    /// after re-checking its PID and start time, so a reused PID is never
    /// hit. Then removes a lock file the server would refuse (empty, bogus,
    /// naming a zombie or an unrelated process) once nothing is attached,
    /// this directory's segments the server will not reach and nothing is
    /// attached to, and leaked /dev/shm files. Never removes an attached
    /// segment; leaves to PostgreSQL what its startup cleans up itself.
    /// Finally diagnoses again, as `status` does, and reports the verdict.
    #[command(after_help = exit::FIX_EXIT_CODES_HELP)]
    Fix(fix::FixArgs),
    /// May PostgreSQL start on DATADIR now? For service managers: an exit
    /// code to act on (systemd ExecStartPre=, a Kubernetes initContainer).
    ///
    /// Diagnoses as `status` does and answers 0 only when the server would
    /// start and no process of an earlier server is attached. With --wait,
    /// gives orphans of the last server time to exit on their own. Reads
    /// only: never signals, attaches or removes anything (`interlock fix
    /// --yes DATADIR` stops orphans). Prints a few plain lines, fit for a
    /// journal. With --etcd (or INTERLOCK_ETCD), also refuses while another
    /// host holds the directory's fence, as `status --etcd` reads it, and
    /// cannot tell while etcd is unreachable.
    #[command(after_help = exit::PREFLIGHT_EXIT_CODES_HELP)]
    Preflight(preflight::PreflightArgs),
    /// Read DATADIR/global/pg_control (10–18): CRC, state, latest
    /// checkpoint, redo location, timeline; and whether the next start
    /// runs crash recovery.
    ///
    /// Fields are named as pg_controldata names them. Only reads the file;
    /// a running server's pg_control reads "in production", which is said
    /// as such, not as a crash.
    #[command(after_help = exit::CONTROL_EXIT_CODES_HELP)]
    Control(control::ControlArgs),
    /// The host around PostgreSQL: SysV limits (shmmax, shmall, shmmni,
    /// sem), huge pages, overcommit, /dev/shm, RemoveIPC, the cgroup memory
    /// limit, containers; with DATADIR, judged against what it needs.
    ///
    /// What DATADIR needs comes from a running server's own mapping, else
    /// (15+, nothing running or holding the directory) from `postgres -C
    /// shared_memory_size` run as its owner, else from an estimate of its
    /// configuration (postgresql.conf, postgresql.auto.conf, includes).
    /// Each limit: ok, or too low with the sysctl line and where to
    /// persist it.
    #[command(after_help = exit::LIMITS_EXIT_CODES_HELP)]
    Limits(limits::LimitsArgs),
    /// Explain a failing server log: each startup or IPC failure found,
    /// what it means, what to check, how to fix it.
    ///
    /// Reads server or pg_ctl output in the stderr format with any
    /// log_line_prefix (English messages). With -D DATADIR, says what is
    /// true now: who still holds the segment the log names, whether the
    /// lock file's PID runs, the limits the failure ran into. `--json`
    /// gives stable codes (segment_in_use, lock_file_exists,
    /// shmget_failed, dsm_segment_missing, dev_shm_full, …).
    #[command(after_help = exit::EXPLAIN_EXIT_CODES_HELP)]
    Explain(explain::ExplainArgs),
    /// Replay the case study's outage in a temporary directory, and fix it.
    ///
    /// initdb, start, commit rows, stop a backend and kill the postmaster;
    /// then `status`, the server's own refusal, `fix` and `fix --yes`, a
    /// clean start and the rows, all there. Uses the newest PostgreSQL in
    /// /usr/lib/postgresql (as the postgres user when run as root), or the
    /// library's example server when there is none. Removes everything it
    /// made, also when interrupted (Ctrl-C).
    Demo(demo::DemoArgs),
    /// The demo's example server (internal).
    #[command(hide = true)]
    DemoServer {
        /// Its data directory.
        dir: std::path::PathBuf,
    },
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
    Hold(hold::HoldArgs),
    /// Hold DATADIR as `hold` does and, across hosts, an etcd lease while
    /// COMMAND runs.
    ///
    /// The key /interlock/SYSID/NAME (pg_control's system identifier and
    /// --name, or the data directory's absolute path) is created only if
    /// absent, bound to a lease of --ttl seconds, and its revision printed
    /// as the fencing token and written to DATADIR/interlock.fence. COMMAND
    /// runs in its own process group. The lease is renewed every TTL/6; if
    /// no renewal succeeds for TTL/3, COMMAND's group gets SIGQUIT, then
    /// SIGKILL after TTL/6 (self-fence) — enforced also by a watchdog
    /// process, so a killed or stopped `interlock run` cannot leave COMMAND
    /// running unfenced. On COMMAND's exit the lease is revoked. Exits with
    /// COMMAND's status, or 75 when the key is held (naming the holder) or
    /// etcd cannot be reached at start (--local-only runs without etcd,
    /// unfenced across hosts).
    #[command(after_help = exit::RUN_EXIT_CODES_HELP)]
    Run(run::RunArgs),
    /// The fence's watchdog, started by `run` (internal).
    #[command(hide = true)]
    FenceWatchdog(run::WatchdogArgs),
}

static ROOT: OnceLock<HostRoot> = OnceLock::new();

/// Where the host's files are read (`--root`, default `/`).
pub(crate) fn host_root() -> &'static HostRoot {
    ROOT.get_or_init(HostRoot::default)
}

/// The user name of `uid`, from the root's `/etc/passwd`.
pub(crate) fn user_name(uid: u32) -> String {
    host_root().user_name(uid)
}

fn main() -> ExitCode {
    let args: Args = monitor::parse();
    if let Some(dir) = &args.generate_assets {
        return ExitCode::from(assets::run::<Args>(dir));
    }
    let _ = ROOT.set(HostRoot::new(&args.root));
    let code = match args.command {
        Some(Cmd::Hold(hold)) => hold::run(&hold),
        Some(Cmd::Run(r)) => run::run(&r),
        Some(Cmd::FenceWatchdog(w)) => run::watchdog(&w),
        Some(Cmd::Status(st)) => status::run(&st),
        Some(Cmd::Scan(sc)) => scan::run(&sc),
        Some(Cmd::Fix(f)) => fix::run(&f),
        Some(Cmd::Preflight(p)) => preflight::run(&p),
        Some(Cmd::Control(c)) => control::run(&c),
        Some(Cmd::Limits(l)) => limits::run(&l),
        Some(Cmd::Explain(x)) => explain::run(&x),
        Some(Cmd::Demo(d)) => demo::run(&d),
        Some(Cmd::DemoServer { dir }) => demo::example_server(&dir),
        None => scan::run(&scan::ScanArgs {
            etcd: status::EtcdArgs::from_env(),
            ..scan::ScanArgs::default()
        }),
    };
    if out::closed() {
        // The reader went away (`| head -1`): not a failure.
        return ExitCode::SUCCESS;
    }
    ExitCode::from(code)
}
