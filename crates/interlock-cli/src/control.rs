//! `interlock control DATADIR`: `global/pg_control`, and what the next
//! start does.

use std::path::PathBuf;

use interlock_doctor::{format_utc, ControlReport, StatusOptions, Verdict};
use serde::Serialize;

use crate::exit;
use crate::status::{esc, paint, print, BOLD, GREEN, RED, YELLOW};

/// Arguments of `interlock control`.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The data directory.
    pub datadir: PathBuf,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    control: &'a ControlReport,
    /// The PID of a server running on the directory now.
    running_pid: Option<i32>,
    /// What the next start does, in words.
    next_start: String,
}

pub fn run(args: &ControlArgs) -> u8 {
    let report = match interlock_doctor::control(&args.datadir) {
        Ok(r) => r,
        Err(e) => return exit::error(&e),
    };
    // A running server's pg_control says "in production": say so rather
    // than announce a crash recovery.
    let status_opts = StatusOptions {
        root: crate::host_root().clone(),
        ..StatusOptions::default()
    };
    let running_pid = interlock_doctor::status(&args.datadir, &status_opts)
        .ok()
        .filter(|s| s.verdict == Verdict::Running)
        .and_then(|s| s.lock_file.pid.map(i32::abs));
    let out = Output {
        control: &report,
        running_pid,
        next_start: report.next_start(running_pid),
    };
    if print(args.json, &out, render).is_err() {
        return exit::UNKNOWN;
    }
    let clean = report.crc_ok
        && report.problems.is_empty()
        && (running_pid.is_some() || report.crash_recovery_on_start == Some(false));
    if clean {
        exit::OK
    } else {
        exit::BLOCKED
    }
}

fn render(o: &Output) -> String {
    let r = o.control;
    let mut s = format!(
        "{}\n  pg_control version {} (PostgreSQL {}){}\n\n",
        paint(BOLD, &esc(&r.path)),
        r.pg_control_version,
        r.written_by,
        r.data_dir_major
            .as_deref()
            .map(|m| format!(", PG_VERSION {m}"))
            .unwrap_or_default()
    );
    let rows: [(&str, String); 10] = [
        ("Database cluster state", r.state.to_string()),
        ("pg_control last modified", format_utc(r.last_modified)),
        ("Latest checkpoint location", r.checkpoint.clone()),
        ("Latest checkpoint's REDO location", r.redo.clone()),
        ("Latest checkpoint's TimeLineID", r.timeline.to_string()),
        (
            "Latest checkpoint's PrevTimeLineID",
            r.prev_timeline.to_string(),
        ),
        ("Time of latest checkpoint", format_utc(r.checkpoint_time)),
        (
            "Minimum recovery ending location",
            r.min_recovery_point.clone(),
        ),
        ("Database system identifier", r.system_identifier.clone()),
        ("Catalog version number", r.catalog_version.to_string()),
    ];
    for (k, v) in rows {
        s += &format!("  {:<36}{v}\n", format!("{k}:"));
    }
    let crc = if r.crc_ok {
        paint(GREEN, &format!("ok ({})", r.crc_stored))
    } else {
        paint(
            RED,
            &format!(
                "MISMATCH: stored {}, computed {}",
                r.crc_stored, r.crc_computed
            ),
        )
    };
    s += &format!("  {:<36}{crc}\n", "CRC-32C:");
    for p in &r.problems {
        s += &format!("  {}  {p}\n", paint(RED, "x "));
    }
    let style = if !r.crc_ok || r.crash_recovery_on_start != Some(false) && o.running_pid.is_none()
    {
        YELLOW
    } else {
        GREEN
    };
    s += &format!("\n  {}\n", paint(style, &o.next_start));
    s
}
