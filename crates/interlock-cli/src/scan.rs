//! `interlock scan` (and `interlock` alone): the whole host.

use std::path::PathBuf;

use crate::user_name;
use interlock_doctor::fence::FenceState;
use interlock_doctor::{
    Code, DsmStatus, ScanOptions, ScanReport, Severity, StatusOptions, Verdict,
};

use crate::exit;
use crate::monitor::{self, Format};
use crate::status::{esc, paint, EtcdArgs, BOLD, DIM, GREEN, RED, YELLOW};

/// Arguments of `interlock scan`.
#[derive(Debug, Default, clap::Args)]
pub struct ScanArgs {
    /// Data directories to include besides those found (the working
    /// directories of PostgreSQL processes, and /var/lib/postgresql/*/*).
    pub dirs: Vec<PathBuf>,
    /// Output: --format, --json, --prometheus-textfile.
    #[command(flatten)]
    pub output: crate::monitor::OutputArgs,
    /// etcd: --etcd.
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

pub fn run(args: &ScanArgs) -> u8 {
    // A directory given that is not a data directory is an error, not
    // something to skip in silence.
    let format = args.output.format();
    for d in &args.dirs {
        if let Err(e) = interlock_doctor::require_data_dir(d) {
            if format == Format::Nagios {
                return monitor::nagios_error(&e);
            }
            return exit::error(&e);
        }
    }
    let root = crate::host_root();
    let opts = ScanOptions {
        dirs: args.dirs.clone(),
        status: StatusOptions {
            root: root.clone(),
            ..StatusOptions::default()
        },
        debian_root: root.at(ScanOptions::default().debian_root),
        etcd: args.etcd.endpoints().map(str::to_string),
    };
    let report = interlock_doctor::scan(&opts);
    let written = args.output.prometheus_textfile.as_deref().map(|dir| {
        let host = interlock_doctor::limits::host_facts(root.root());
        monitor::write_or_say(
            dir,
            monitor::SCAN_FILE_NAME,
            &monitor::prometheus_scan(&report, &host),
        )
    });
    monitor::finish(
        format,
        written,
        &report,
        render,
        monitor::nagios_scan,
        exit_code,
    )
}

/// 1 if any directory is blocked or unsafe to start, else 2 if any is
/// unknown, else 0.
pub fn exit_code(r: &ScanReport) -> u8 {
    let codes: Vec<u8> = r
        .data_dirs
        .iter()
        .map(|d| crate::status::exit_code(&d.status))
        .collect();
    if codes.contains(&exit::BLOCKED) {
        exit::BLOCKED
    } else if codes.contains(&exit::UNKNOWN) {
        exit::UNKNOWN
    } else {
        exit::OK
    }
}

pub fn render(r: &ScanReport) -> String {
    let mut s = String::new();
    s += &format!(
        "{}: {} data {}, {} PostgreSQL {}, {} DSM {}\n",
        paint(BOLD, "host"),
        r.data_dirs.len(),
        if r.data_dirs.len() == 1 {
            "directory"
        } else {
            "directories"
        },
        r.segments.len(),
        if r.segments.len() == 1 {
            "segment"
        } else {
            "segments"
        },
        r.dsm.len(),
        if r.dsm.len() == 1 { "file" } else { "files" },
    );
    // etcd unreachable is said once, here and in the findings, not under
    // every directory.
    let etcd_down = r.etcd.as_ref().is_some_and(|e| e.unreachable.is_some());
    if let Some(e) = &r.etcd {
        s += &format!(
            "{}: {}\n",
            paint(BOLD, "etcd"),
            match &e.unreachable {
                Some(why) => paint(
                    YELLOW,
                    &format!(
                        "{}: cannot be reached ({}): every directory's fence is unknown",
                        esc(&e.endpoints),
                        esc(why)
                    )
                ),
                None => format!(
                    "{}: {} of {} fenced from another host",
                    esc(&e.endpoints),
                    r.data_dirs
                        .iter()
                        .filter(|d| d
                            .status
                            .fence
                            .as_ref()
                            .is_some_and(|f| f.state == FenceState::HeldElsewhere))
                        .count(),
                    r.data_dirs.len()
                ),
            }
        );
    }
    // Keys under a scanned system identifier that count for no directory
    // here: for the record (a replica, or a directory not found here).
    for o in r.etcd.iter().flat_map(|e| &e.other_names) {
        s += &format!(
            "      {}\n",
            paint(DIM, &format!("fenced under other names: {}", esc(&o.line)))
        );
    }
    if !r.data_dirs.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "data directories"));
        for d in &r.data_dirs {
            let st = &d.status;
            let (style, word) = match st.verdict {
                Verdict::Running => (GREEN, "running"),
                Verdict::WillStart if st.safe_to_start => (GREEN, "will start"),
                Verdict::WillStart => (RED, "UNSAFE"),
                Verdict::Blocked => (RED, "BLOCKED"),
                Verdict::Unknown => (YELLOW, "unknown"),
            };
            let pid = match st.lock_file.identity {
                Some(interlock_doctor::Identity::Owner) => st
                    .lock_file
                    .pid
                    .map(|p| format!("PID {}", p.abs()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            s += &format!(
                "    {}{} {}  {}{}{}\n",
                paint(style, word),
                " ".repeat(12usize.saturating_sub(word.len())),
                esc(&st.data_dir),
                pid,
                if st.holders.is_empty() {
                    String::new()
                } else {
                    format!(" ({} attached)", st.holders.len())
                },
                st.postgres_would_say
                    .as_deref()
                    .filter(|_| st.verdict == Verdict::Blocked)
                    .map(|m| format!("\n                 FATAL:  {}", esc(m)))
                    .unwrap_or_default()
            );
            if st.managed_by.is_managed() {
                s += &format!(
                    "                 managed by  {}\n",
                    esc(&st.managed_by.line())
                );
            }
            if let Some(f) = st
                .fence
                .as_ref()
                .filter(|f| f.state != FenceState::Unknown || !etcd_down)
            {
                s += &format!("                 fence  {}\n", esc(&f.line));
            }
            for f in st.findings.iter().filter(|f| {
                f.severity >= Severity::Problem
                    // The fence is on its own line above.
                    && !matches!(f.code, Code::FencedElsewhere | Code::FenceUnknown)
            }) {
                s += &format!("                 {} {}\n", paint(RED, "x"), esc(&f.message));
            }
        }
        s += &format!(
            "    {}\n",
            paint(DIM, "(interlock status DIR tells why, and what to do)")
        );
    }
    if !r.segments.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "segments"));
        s += &format!(
            "    {:>10} {:<10} {:>8} {:>6} {:<10} {}\n",
            "ID", "KEY", "BYTES", "NATTCH", "OWNER", "DATA DIRECTORY"
        );
        for g in &r.segments {
            s += &format!(
                "    {:>10} {:<10} {:>8} {:>6} {:<10} {}\n",
                g.shmid,
                g.key_hex,
                g.size,
                g.nattch,
                user_name(g.uid),
                esc(&g
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| format!("? ({})", g.evidence)))
            );
        }
    }
    let leaked: Vec<_> = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked)
        .collect();
    if !leaked.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "leaked dynamic shared memory"));
        for d in leaked {
            s += &format!(
                "    {} {} bytes, {}\n",
                esc(&d.path),
                d.size,
                user_name(d.uid)
            );
        }
    }
    if r.findings.iter().any(|f| f.code != Code::FenceUnknown) {
        s += &format!("\n  {}\n", paint(BOLD, "findings"));
        // etcd unreachable is on the etcd line at the top.
        for f in r.findings.iter().filter(|f| f.code != Code::FenceUnknown) {
            let code = serde_json::to_value(f.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s += &format!("    {}  {}\n", paint(BOLD, &code), esc(&f.message));
        }
    }
    s
}
