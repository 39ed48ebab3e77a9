//! `interlock limits [DATADIR]`: the kernel's IPC limits, huge pages,
//! memory, /dev/shm, RemoveIPC and containers; against what DATADIR needs.

use std::path::PathBuf;

use interlock_doctor::limits::{self, human_limit as mib, LimitsOptions, LimitsReport};

use crate::exit;
use crate::status::{esc, paint, print, BOLD, DIM, GREEN, RED, YELLOW};

/// Arguments of `interlock limits`.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// A data directory, to judge the limits against what it needs.
    pub datadir: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// The server binary to ask for its own sizes (15+) [default: as
    /// `status` finds it].
    #[arg(long, value_name = "PATH")]
    pub postgres: Option<PathBuf>,
    /// Never run `postgres -C` (it creates and removes postmaster.pid for a
    /// moment); estimate instead.
    #[arg(long)]
    pub no_server: bool,
    /// Read /proc, /sys, /etc and /dev/shm under DIR instead of / (a copy
    /// of another host's files, or a test fixture).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

pub fn run(args: &LimitsArgs) -> u8 {
    // `limits --root DIR`, else the global hidden `--root`.
    let root = if args.root.as_os_str() == "/" {
        crate::host_root().clone()
    } else {
        interlock_doctor::HostRoot::new(&args.root)
    };
    let opts = LimitsOptions {
        root,
        postgres: args.postgres.clone(),
        ask_server: !args.no_server,
    };
    let report = match limits::limits(args.datadir.as_deref(), &opts) {
        Ok(r) => r,
        Err(e) => return exit::error(&e),
    };
    if print(args.json, &report, render).is_err() {
        return exit::UNKNOWN;
    }
    if report.too_low() {
        exit::BLOCKED
    } else if report.checks.iter().any(|c| c.status == "unknown") {
        exit::UNKNOWN
    } else {
        exit::OK
    }
}

fn render(r: &LimitsReport) -> String {
    let mut s = String::new();
    if let Some(n) = &r.need {
        s += &format!(
            "{}{}\n",
            paint(BOLD, &esc(&n.data_dir)),
            n.major
                .map(|m| format!(" (PostgreSQL {m})"))
                .unwrap_or_default()
        );
        s += &format!(
            "  needs {} of shared memory: {}\n",
            mib(n.shared_memory_size),
            n.size_source
        );
        s += &format!(
            "  {} backends, {} semaphores; huge_pages = {}{}; shared_memory_type = {}; owner {}{}\n",
            n.max_backends,
            n.semaphores,
            n.huge_pages,
            n.huge_pages_needed
                .map(|p| format!(
                    " ({p} pages of {})",
                    n.huge_page_size.map(mib).unwrap_or_default()
                ))
                .unwrap_or_default(),
            n.shared_memory_type,
            n.owner,
            if n.owner_is_system_user {
                " (system user)"
            } else {
                ""
            }
        );
        for set in &n.settings {
            s += &format!("  {}\n", paint(DIM, set));
        }
        for p in &n.problems {
            s += &format!("  {}\n", paint(YELLOW, p));
        }
        s += "\n";
    } else {
        s += &format!("{}\n", paint(BOLD, "host limits"));
    }
    for c in &r.checks {
        let (style, word) = match c.status {
            "ok" => (GREEN, "ok"),
            "too_low" => (RED, "TOO LOW"),
            "warning" => (YELLOW, "warning"),
            "unknown" => (YELLOW, "unknown"),
            _ => (DIM, "-"),
        };
        s += &format!(
            "  {} {:<15} {}\n",
            paint(style, &format!("{word:<8}")),
            c.name,
            c.message
        );
        if c.status != "ok" && c.status != "info" {
            s += &format!(
                "  {:<8} {:<15} {}{}\n",
                "",
                "",
                paint(DIM, &format!("now: {}", c.value)),
                c.need
                    .as_deref()
                    .map(|n| paint(DIM, &format!("; needs {n}")))
                    .unwrap_or_default()
            );
        }
        for f in &c.fix {
            s += &format!("  {:<8} {:<15} -> {f}\n", "", "");
        }
    }
    if !r.host.unreadable.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "not read"));
        for u in &r.host.unreadable {
            s += &format!("    {u}\n");
        }
    }
    s
}
