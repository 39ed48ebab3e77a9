//! `interlock status DATADIR`: the report, for people and for programs.

use std::path::PathBuf;

use anstyle::{AnsiColor, Style};
use interlock_doctor::{
    self, format_utc, DsmStatus, LockState, Severity, StatusOptions, StatusReport, Verdict, Whose,
};

use crate::exit;
use crate::monitor::{self, Format};
use crate::user_name;

/// Arguments of `interlock status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The data directory.
    pub datadir: PathBuf,
    /// Output: --format, --json, --prometheus-textfile.
    #[command(flatten)]
    pub output: crate::monitor::OutputArgs,
    /// The server binary, to learn its exact version [default: the running
    /// server's executable, else `postgres` on PATH, else
    /// /usr/lib/postgresql/MAJOR/bin/postgres].
    #[arg(long, value_name = "PATH")]
    pub postgres: Option<PathBuf>,
    /// The port the server will start on (decides the keys of 10–12)
    /// [default: the configured port, else line 4 of postmaster.pid, else
    /// 5432].
    #[arg(long)]
    pub port: Option<u16>,
    /// Allow attaching to segments that already have processes attached,
    /// when their header cannot be read through a holder's memory (when not
    /// root). Never attaches to a segment nobody is attached to: a server
    /// starting at that moment would count us and refuse to start.
    #[arg(long)]
    pub attach: bool,
    /// etcd: --etcd.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The name in the fence's key /interlock/SYSID/NAME, as given to
    /// `interlock run --name` [default: the data directory's absolute path].
    /// Read only with --etcd (or INTERLOCK_ETCD); an empty value is not set.
    #[arg(long, env = ETCD_NAME_ENV, hide_env_values = true)]
    pub name: Option<String>,
}

/// The environment variable that gives `--etcd`.
pub const ETCD_ENV: &str = "INTERLOCK_ETCD";
/// The environment variable that gives `status --name`.
pub const ETCD_NAME_ENV: &str = "INTERLOCK_ETCD_NAME";

/// The fence's name to read, `--name` (or INTERLOCK_ETCD_NAME; empty: not
/// set); `None` (an error said) when `--name` is given on the command line
/// without etcd, as clap's `requires` would say. INTERLOCK_ETCD_NAME alone
/// is no mistake (it may be set for a host where etcd is given only
/// sometimes), so clap cannot check it.
pub fn fence_name<'a>(etcd: &EtcdArgs, name: Option<&'a str>) -> Option<Option<&'a str>> {
    let from_env = name.is_some() && std::env::var(ETCD_NAME_ENV).ok().as_deref() == name;
    if name.is_some() && etcd.endpoints().is_none() && !from_env {
        eprintln!("error: --name needs --etcd ENDPOINTS (or {ETCD_ENV})");
        return None;
    }
    Some(name.filter(|n| !n.is_empty()))
}

/// Where etcd is, for the fence across hosts (`status`, `scan`,
/// `preflight`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd client endpoints, comma-separated (http://HOST:PORT): also read
    /// the fence `interlock run --etcd` holds there, of each data
    /// directory. Another host holding it makes the verdict blocked; etcd
    /// unreachable makes it unknown. An empty value is not set.
    #[arg(long, value_name = "ENDPOINTS", env = ETCD_ENV, hide_env_values = true)]
    pub etcd: Option<String>,
}

impl EtcdArgs {
    /// The endpoints, unless not given or empty (`INTERLOCK_ETCD=` is not
    /// set).
    pub fn endpoints(&self) -> Option<&str> {
        self.etcd.as_deref().filter(|e| !e.trim().is_empty())
    }

    /// The endpoints from the environment alone, for `interlock` run with
    /// no command (whose scan has no arguments parsed).
    pub fn from_env() -> EtcdArgs {
        EtcdArgs {
            etcd: std::env::var(ETCD_ENV).ok(),
        }
    }
}

pub fn run(args: &StatusArgs) -> u8 {
    let Some(name) = fence_name(&args.etcd, args.name.as_deref()) else {
        return exit::UNKNOWN;
    };
    let opts = StatusOptions {
        postgres: args.postgres.clone(),
        port: args.port,
        attach: args.attach,
        root: crate::host_root().clone(),
    };
    let format = args.output.format();
    let mut report = match interlock_doctor::status(&args.datadir, &opts) {
        Ok(r) => r,
        Err(e) if format == Format::Nagios => return monitor::nagios_error(&e),
        Err(e) => return exit::error(&e),
    };
    if let Some(endpoints) = args.etcd.endpoints() {
        interlock_doctor::fence::check_fence(&mut report, &args.datadir, endpoints, name);
    }
    let written = args.output.prometheus_textfile.as_deref().map(|dir| {
        monitor::write_or_say(
            dir,
            &monitor::status_file_name(&report.data_dir),
            &monitor::prometheus_status(&report),
        )
    });
    monitor::finish(
        format,
        written,
        &report,
        render,
        monitor::nagios_status,
        exit_code,
    )
}

/// Print `value` as pretty JSON, or as `render` makes it (styles stripped
/// when stdout is not a terminal), through [`crate::out`].
pub fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    render: impl FnOnce(&T) -> String,
) -> std::io::Result<()> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        crate::out::write(format_args!("{text}\n"))
    } else {
        crate::out::write(format_args!("{}", render(value)))
    }
}

/// The documented exit code for a report.
pub fn exit_code(r: &StatusReport) -> u8 {
    match r.verdict {
        Verdict::Running => exit::OK,
        Verdict::WillStart if r.safe_to_start => exit::OK,
        Verdict::WillStart | Verdict::Blocked => exit::BLOCKED,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

pub const BOLD: Style = Style::new().bold();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const GREEN: Style = AnsiColor::Green.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Text from the report (paths, messages, command lines) as one line:
/// control characters written `\n`, `\x1b`…, so a path with a newline cannot
/// break a line of the report nor send terminal escapes. JSON output keeps
/// the real strings (serde escapes them).
pub fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    interlock_format::shell::display(text)
}

/// The human report: verdict first, then the facts behind it, then what to
/// do. Styled with ANSI codes, which `anstream` strips when the output is
/// not a terminal (or `NO_COLOR` is set).
pub fn render(r: &StatusReport) -> String {
    let mut s = String::new();
    let version = r
        .version
        .server
        .clone()
        .or_else(|| r.version.data_dir_major.clone())
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_else(|| "PostgreSQL".into());
    let (style, word, sentence) = match r.verdict {
        Verdict::Running => (GREEN, "RUNNING", format!("{version} runs here")),
        Verdict::WillStart if r.safe_to_start => {
            (GREEN, "WILL START", format!("{version} would start here"))
        }
        Verdict::WillStart => (
            RED,
            "UNSAFE",
            format!("{version} would start here, alongside processes of an earlier server"),
        ),
        Verdict::Blocked => (RED, "BLOCKED", format!("{version} will not start here")),
        Verdict::Unknown => (
            YELLOW,
            "UNKNOWN",
            "whether PostgreSQL would start here cannot be told".into(),
        ),
    };
    s += &format!("{}\n", paint(BOLD, &esc(&r.data_dir)));
    s += &format!("  {}  {sentence}\n", paint(style, word));
    if let Some(msg) = &r.postgres_would_say {
        s += &format!("  it says: FATAL:  {}\n", esc(msg));
    }
    s += "\n";

    // Lock file.
    let l = &r.lock_file;
    let lock_line = match l.state {
        LockState::Absent => "none".to_string(),
        LockState::Present => {
            let mut parts = Vec::new();
            let pid = l.pid.unwrap_or(0);
            let who = match l.identity {
                Some(interlock_doctor::Identity::Owner) => "alive, this directory's",
                Some(interlock_doctor::Identity::Zombie) => "a zombie",
                Some(interlock_doctor::Identity::Reused) if l.serves_elsewhere => {
                    "another data directory's server"
                }
                Some(interlock_doctor::Identity::Reused) => "reused by another process",
                Some(interlock_doctor::Identity::Unknown) => "alive, whose cannot be told",
                Some(interlock_doctor::Identity::OtherUser) => "another user's process",
                Some(interlock_doctor::Identity::Gone) => "gone",
                None => "?",
            };
            parts.push(format!(
                "PID {}{} ({who})",
                pid.abs(),
                if pid < 0 { " standalone" } else { "" }
            ));
            if let Some(t) = l.start_time {
                parts.push(format!("started {}", format_utc(t)));
            }
            if let Some(p) = l.port {
                parts.push(format!("port {p}"));
            }
            if let Some(st) = &l.status {
                parts.push(st.clone());
            }
            parts.join(", ")
        }
        other => format!(
            "{other}{}",
            l.problem
                .as_deref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default()
        ),
    };
    s += &format!("  {:<10}{}\n", "lock file", esc(&lock_line));
    if r.managed_by.is_managed() {
        s += &format!("  managed by  {}\n", esc(&r.managed_by.line()));
    }
    for sl in &r.socket_locks {
        s += &format!(
            "  {:<10}{}: {}{}\n",
            "socket",
            esc(&sl.path),
            match (sl.state, sl.pid) {
                (LockState::Present, Some(pid)) => format!(
                    "PID {pid} ({}), of {}",
                    match sl.identity {
                        Some(interlock_doctor::Identity::Owner) => "alive, this directory's",
                        Some(interlock_doctor::Identity::Zombie) => "a zombie",
                        Some(interlock_doctor::Identity::Reused) => "another live process",
                        Some(interlock_doctor::Identity::OtherUser) => "another user's process",
                        _ => "gone",
                    },
                    esc(sl.data_dir.as_deref().unwrap_or("?"))
                ),
                (state, _) => state.to_string(),
            },
            if sl.blocks { "; blocks the start" } else { "" }
        );
    }
    for seg in &r.segments {
        s += &format!(
            "  {:<10}ID {}, key {}: {} bytes, {} attached{}, {}; {}\n",
            "segment",
            seg.shmid,
            seg.key_hex,
            seg.size,
            seg.nattch,
            if seg.removed { " (removed)" } else { "" },
            match seg.belongs {
                Whose::ThisDirectory => "this directory's",
                Whose::Foreign => "not this directory's",
                Whose::Unknown => "owner unknown",
            },
            esc(&seg.evidence)
        );
    }
    s += &format!(
        "  {:<10}from {}: {}\n",
        "probe",
        esc(&r.probe.seed_from),
        esc(&r.probe.outcome)
    );
    s += &format!("  {:<10}{}\n", "control", esc(&r.control.line));
    if let Some(f) = &r.fence_file {
        s += &format!("  fence file  {}\n", esc(&f.line));
    }
    if let Some(f) = &r.fence {
        s += &format!("  {:<10}{}\n", "fence", esc(&f.line));
    }

    if !r.holders.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "attached processes"));
        s += &format!(
            "    {:>7} {:>7}  {:<10} {:<23}  {:<18} {}\n",
            "PID", "PPID", "STATE", "STARTED", "ROLE", "COMMAND"
        );
        for h in &r.holders {
            let p = &h.process;
            let state = if p.state.is_stopped() || p.state.is_gone() {
                paint(YELLOW, &format!("{:<10}", p.state))
            } else {
                format!("{:<10}", p.state)
            };
            s += &format!(
                "    {:>7} {:>7}  {} {:<23}  {:<18} {}\n",
                p.pid,
                p.ppid,
                state,
                format_utc(p.start_time),
                p.role.map_or("-", |r| r.name()),
                truncate(&esc(&p.cmdline), 60)
            );
        }
    }
    if !r.dsm.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "dynamic shared memory"));
        for d in &r.dsm {
            s += &format!(
                "    {} {} bytes, {}{}, {}\n",
                esc(&d.path),
                d.size,
                user_name(d.uid),
                if d.control { ", control segment" } else { "" },
                if d.status == DsmStatus::Leaked {
                    paint(YELLOW, "leaked: no process maps it")
                } else if d.status == DsmStatus::Unknown {
                    paint(
                        YELLOW,
                        "mapped by no process readable here; others could not be read",
                    )
                } else {
                    format!(
                        "mapped by {}",
                        d.mapped_by
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            );
        }
    }
    if !r.findings.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "findings"));
        for f in &r.findings {
            let (style, mark) = match f.severity {
                Severity::Danger => (RED, "!!"),
                Severity::Problem => (RED, "x "),
                Severity::Warning => (YELLOW, "! "),
                Severity::Info => (DIM, "- "),
            };
            let code = serde_json::to_value(f.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s += &format!(
                "    {} {}  {}\n",
                paint(style, mark),
                paint(BOLD, &code),
                esc(&f.message)
            );
        }
    }
    if !r.remedy.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "what to do"));
        for (i, step) in r.remedy.iter().enumerate() {
            s += &format!("    {}. {}\n", i + 1, esc(step));
        }
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
