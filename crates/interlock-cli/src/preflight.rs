//! `interlock preflight`: may a service manager start PostgreSQL now? An
//! exit code to act on and a few plain lines for the journal. The decision
//! is the doctor's (`interlock_doctor::preflight`).

use std::path::PathBuf;
use std::time::Duration;

use interlock_doctor::preflight::{debian_data_directory, preflight_wait};
use interlock_doctor::{FenceQuery, Gate, Orphan, Refusal, StatusOptions};

use crate::exit;
use crate::status::{self, esc, EtcdArgs, ETCD_NAME_ENV};

/// How often the directory is diagnosed again while waiting.
const EVERY: Duration = Duration::from_millis(200);

/// Arguments of `interlock preflight`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["datadir", "debian_cluster"]))]
pub struct PreflightArgs {
    /// The data directory.
    pub datadir: Option<PathBuf>,
    /// A Debian cluster, VERSION/NAME (15/main; systemd's %I of
    /// postgresql@15-main.service): its data directory is found as
    /// pg_ctlcluster finds it (data_directory in
    /// /etc/postgresql/VERSION/NAME/postgresql.conf, else
    /// /var/lib/postgresql/VERSION/NAME).
    #[arg(long, value_name = "VERSION/NAME", conflicts_with = "datadir")]
    pub debian_cluster: Option<String>,
    /// While the only obstacle is processes of the last server still
    /// attached, diagnose again every 200 ms for up to SECONDS, and answer
    /// as soon as they are gone. They are never signalled.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
    /// etcd: --etcd.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The name in the fence's key /interlock/SYSID/NAME, as given to
    /// `interlock run --name` [default: the data directory's absolute path].
    /// Read only with --etcd (or INTERLOCK_ETCD); an empty value is not set.
    #[arg(long, env = ETCD_NAME_ENV, hide_env_values = true)]
    pub name: Option<String>,
}

pub fn run(args: &PreflightArgs) -> u8 {
    let Some(name) = status::fence_name(&args.etcd, args.name.as_deref()) else {
        return exit::UNKNOWN;
    };
    let fence = args
        .etcd
        .endpoints()
        .map(|endpoints| FenceQuery { endpoints, name });
    let root = crate::host_root();
    let data = match (&args.datadir, &args.debian_cluster) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match debian_data_directory(root, c) {
            Ok(d) => d,
            Err(e) => return exit::error(&e),
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let shown = esc(&data.display().to_string()).into_owned();
    let opts = StatusOptions {
        root: root.clone(),
        ..StatusOptions::default()
    };
    let wait = Duration::from_secs(args.wait);
    let waited = preflight_wait(&data, &opts, fence, wait, EVERY, |gate| {
        if let Gate::Refuse(Refusal::Orphans { orphans, .. }) = gate {
            eprintln!(
                "interlock preflight: {shown}: waiting up to {} s for {} of the last server to exit: {}",
                args.wait,
                count(orphans.len()),
                names(orphans)
            );
        }
    });
    let (gate, took) = match waited {
        Ok(g) => g,
        Err(e) => {
            eprintln!("interlock preflight: {shown}: cannot tell whether PostgreSQL may start");
            return exit::error(&e);
        }
    };
    match gate {
        Gate::Start => {
            crate::out::outln!(
                "interlock preflight: {shown}: PostgreSQL may start now{}",
                if took >= EVERY && args.wait > 0 {
                    format!(" (after {:.1} s)", took.as_secs_f64())
                } else {
                    String::new()
                }
            );
            exit::OK
        }
        Gate::Unknown { reason, fence } => {
            eprintln!(
                "interlock preflight: {shown}: cannot tell whether PostgreSQL may start: {}",
                esc(&reason)
            );
            if fence {
                eprintln!("interlock preflight: reach etcd first: another host may run a server on {shown}");
            } else {
                eprintln!("interlock preflight: run as root; `interlock status {shown}` shows what could not be read");
            }
            exit::UNKNOWN
        }
        Gate::Refuse(Refusal::Running { pid, what, fatal }) => {
            eprintln!(
                "interlock preflight: {shown}: must not start: PostgreSQL already runs here, PID {pid}{}; a start would fail",
                what.map(|w| format!(" ({})", esc(&w))).unwrap_or_default()
            );
            if let Some(f) = fatal {
                eprintln!("interlock preflight: it would say: FATAL:  {}", esc(&f));
            }
            exit::BLOCKED
        }
        Gate::Refuse(Refusal::Orphans {
            orphans,
            fatal,
            remedy,
        }) => {
            eprintln!(
                "interlock preflight: {shown}: must not start: {} of the last server {} still attached: {}{}",
                count(orphans.len()),
                if orphans.len() == 1 { "is" } else { "are" },
                names(&orphans),
                if args.wait > 0 {
                    format!(" (waited {} s)", args.wait)
                } else {
                    String::new()
                }
            );
            match fatal {
                Some(f) => eprintln!("interlock preflight: it would say: FATAL:  {}", esc(&f)),
                None => eprintln!(
                    "interlock preflight: it would start alongside them: two servers' processes on one directory"
                ),
            }
            if let Some(r) = remedy {
                eprintln!("interlock preflight: what to do: {}", esc(&r));
            }
            eprintln!("interlock preflight: `interlock fix --yes {shown}` stops them (the gate never does)");
            exit::BLOCKED
        }
        Gate::Refuse(Refusal::Fenced { holder, remedy }) => {
            eprintln!(
                "interlock preflight: {shown}: must not start: {}",
                esc(&holder)
            );
            if let Some(r) = remedy {
                eprintln!("interlock preflight: what to do: {}", esc(&r));
            }
            exit::BLOCKED
        }
        Gate::Refuse(Refusal::Blocked { fatal, remedy }) => {
            eprintln!(
                "interlock preflight: {shown}: must not start: it would say: FATAL:  {}",
                esc(&fatal)
            );
            if let Some(r) = remedy {
                eprintln!("interlock preflight: what to do: {}", esc(&r));
            }
            exit::BLOCKED
        }
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

/// `PID 123 checkpointer (stopped), PID 124 …`.
fn names(orphans: &[Orphan]) -> String {
    orphans
        .iter()
        .map(|o| format!("PID {} {} ({})", o.pid, esc(&o.role), o.state))
        .collect::<Vec<_>>()
        .join(", ")
}
