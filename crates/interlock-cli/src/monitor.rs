//! Monitoring outputs of `status` and `scan`: `--format nagios` (the Nagios
//! plugin API) and `--prometheus-textfile DIR` (node_exporter's textfile
//! collector).
//!
//! Both are views of the same reports the text and JSON outputs show; the
//! rules for what is OK, a warning or critical are written once here
//! ([`State::of`]).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use interlock_doctor::limits::HostFacts;
use interlock_doctor::{
    Code, DsmStatus, Finding, Identity, ScanReport, Severity, StatusReport, Verdict,
};

/// What `status` and `scan` print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The report, for people.
    #[default]
    Text,
    /// One JSON object (as `--json`).
    Json,
    /// A Nagios plugin's output: one status line with perfdata (then one
    /// line per directory or finding); exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN.
    Nagios,
}

/// The output options `status` and `scan` share.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct OutputArgs {
    /// What to print: the report (text), one JSON object (json), or a
    /// Nagios plugin's status line and perfdata, with its exit codes
    /// (nagios; see below).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub format: Format,
    /// Print one JSON object instead of the report (as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Also write Prometheus metrics into DIR, for node_exporter's textfile
    /// collector: `scan` writes DIR/interlock.prom (every directory and the
    /// host's IPC headroom), `status` DIR/interlock-PATH.prom (PATH: the
    /// data directory, `/` as `-`, bytes other than [A-Za-z0-9_.] as %XX).
    /// Written to a temporary file in DIR and renamed into place (0644);
    /// nothing is written on an error.
    #[arg(long, value_name = "DIR")]
    pub prometheus_textfile: Option<PathBuf>,
}

impl OutputArgs {
    /// The format asked for (`--json` is `--format json`).
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

// --------------------------------------------------------------- arguments

/// Nagios exit codes.
pub const NAGIOS_OK: u8 = 0;
/// WARNING.
pub const NAGIOS_WARNING: u8 = 1;
/// CRITICAL.
pub const NAGIOS_CRITICAL: u8 = 2;
/// UNKNOWN.
pub const NAGIOS_UNKNOWN: u8 = 3;

/// Parse the command line as clap does, except that an argument error of a
/// command asked for `--format nagios` is a Nagios UNKNOWN (a status line on
/// stdout, exit 3), not clap's exit 2, which a plugin runner would read as
/// CRITICAL.
pub fn parse<A: clap::Parser>() -> A {
    match A::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() && wants_nagios(std::env::args_os()) => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .map(|l| l.trim_start_matches("error: ").trim())
                .find(|l| !l.is_empty())
                .unwrap_or("invalid arguments");
            println!("INTERLOCK UNKNOWN - {}", line_text(first));
            eprint!("{}", e.render());
            std::process::exit(NAGIOS_UNKNOWN.into());
        }
        Err(e) => e.exit(),
    }
}

/// Whether the arguments ask for `--format nagios` (or `--format=nagios`).
fn wants_nagios(args: impl IntoIterator<Item = OsString>) -> bool {
    let args: Vec<OsString> = args.into_iter().collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--format=nagios"
            || (a == "--format" && args.get(i + 1).is_some_and(|v| v == "nagios"))
    })
}

// --------------------------------------------------------------- the rules

/// A Nagios service state, in the order `scan` ranks them (worst last):
/// an unknown directory may be a blocked one, so UNKNOWN outranks WARNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Runs, or would start safely, with nothing to warn of.
    Ok,
    /// Runs or would start safely, but something is left over (a leaked
    /// segment, DSM files) or a warning was found.
    Warning,
    /// Cannot be told (or an error).
    Unknown,
    /// Blocked, or would start alongside processes of an earlier server.
    Critical,
}

impl State {
    /// The state of one directory's report.
    pub fn of(r: &StatusReport) -> State {
        match r.verdict {
            Verdict::Unknown => State::Unknown,
            Verdict::Blocked => State::Critical,
            Verdict::WillStart if !r.safe_to_start => State::Critical,
            Verdict::Running | Verdict::WillStart => {
                if r.findings.iter().any(|f| f.severity >= Severity::Warning) {
                    State::Warning
                } else {
                    State::Ok
                }
            }
        }
    }

    /// The plugin's exit code.
    pub fn code(self) -> u8 {
        match self {
            State::Ok => NAGIOS_OK,
            State::Warning => NAGIOS_WARNING,
            State::Critical => NAGIOS_CRITICAL,
            State::Unknown => NAGIOS_UNKNOWN,
        }
    }

    /// The word of the status line.
    pub fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// The stable code of a finding, as JSON writes it.
pub fn code_str(code: Code) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Whether PostgreSQL runs here or would start safely: status exit 0.
pub fn would_start(r: &StatusReport) -> bool {
    match r.verdict {
        Verdict::Running => true,
        Verdict::WillStart => r.safe_to_start,
        Verdict::Blocked | Verdict::Unknown => false,
    }
}

/// The finding that stops the server (blocked, or unsafe to start), or that
/// stops interlock from telling (unknown): the most severe, the first of
/// equals. None when it runs or would start safely.
pub fn stopping_finding(r: &StatusReport) -> Option<&Finding> {
    if would_start(r) {
        return None;
    }
    [
        Severity::Danger,
        Severity::Problem,
        Severity::Warning,
        Severity::Info,
    ]
    .into_iter()
    .find_map(|s| r.findings.iter().find(|f| f.severity == s))
}

/// The numbers both outputs show for a directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Processes attached to its segments.
    pub holders: u64,
    /// Those left by a server that is gone (`orphaned_holders`).
    pub orphans: u64,
    /// Its segments nobody is attached to that the server will not remove.
    pub leaked_segments: u64,
    /// `/dev/shm/PostgreSQL.*` files of its owner nobody maps.
    pub leaked_dsm_files: u64,
    /// Their bytes.
    pub leaked_dsm_bytes: u64,
}

impl Counts {
    /// The counts of one report.
    pub fn of(r: &StatusReport) -> Counts {
        let orphans = if r.findings.iter().any(|f| f.code == Code::OrphanedHolders) {
            // The orphans are the holders of the directory owner's uid
            // (another user's are `foreign_holders`).
            match std::fs::metadata(&r.data_dir) {
                Ok(m) => r
                    .holders
                    .iter()
                    .filter(|h| h.process.uid == m.uid())
                    .count(),
                Err(_) => r.holders.len(),
            }
        } else {
            0
        };
        let leaked: Vec<_> = r
            .dsm
            .iter()
            .filter(|d| d.status == DsmStatus::Leaked)
            .collect();
        Counts {
            holders: r.holders.len() as u64,
            orphans: orphans as u64,
            leaked_segments: r
                .findings
                .iter()
                .filter(|f| f.code == Code::LeakedSegment)
                .count() as u64,
            leaked_dsm_files: leaked.len() as u64,
            leaked_dsm_bytes: leaked.iter().map(|d| d.size).sum(),
        }
    }
}

/// Print a report in `format` (after the textfile, if asked for, was
/// `written`) and return the exit code: Nagios's for `--format nagios`
/// (a textfile that could not be written is UNKNOWN), else `exit_code`'s (a
/// textfile not written: [`exit::UNKNOWN`](crate::exit::UNKNOWN), after the
/// report).
pub fn finish<T: serde::Serialize>(
    format: Format,
    written: Option<Result<(), String>>,
    report: &T,
    render: impl FnOnce(&T) -> String,
    nagios: impl FnOnce(&T) -> (String, u8),
    exit_code: impl FnOnce(&T) -> u8,
) -> u8 {
    if format == Format::Nagios {
        if let Some(Err(why)) = written {
            crate::out::outln!("INTERLOCK UNKNOWN - {}", line_text(&why));
            return NAGIOS_UNKNOWN;
        }
        let (text, code) = nagios(report);
        if crate::out::write(format_args!("{text}")).is_err() {
            return NAGIOS_UNKNOWN;
        }
        return code;
    }
    if crate::status::print(format == Format::Json, report, render).is_err() {
        return crate::exit::UNKNOWN;
    }
    if let Some(Err(why)) = written {
        eprintln!("interlock: {why}");
        return crate::exit::UNKNOWN;
    }
    exit_code(report)
}

// ------------------------------------------------------------------ Nagios

/// Text of the report as part of a plugin's output: one line (control
/// characters escaped), with no `|` (it starts the perfdata).
fn line_text(text: &str) -> String {
    crate::status::esc(text).replace('|', "¦")
}

/// A perfdata label: quoted when it holds anything but [A-Za-z0-9_.:/-], a
/// quote doubled; `=` and `|`, which no label may hold, replaced.
fn perf_label(label: &str) -> String {
    let l = line_text(label).replace('=', "_");
    if l.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
    {
        l
    } else {
        format!("'{}'", l.replace('\'', "''"))
    }
}

/// One perfdata item, `'label'=value[UOM];[warn];[crit];[min];[max]`.
fn perf(label: &str, value: u64, uom: &str, warn: &str, crit: &str, max: &str) -> String {
    let item = format!("{}={value}{uom};{warn};{crit};0;{max}", perf_label(label));
    // Trailing empty fields may be dropped.
    item.trim_end_matches(';').to_string()
}

/// The perfdata of one directory's counts (`prefix` before each label).
fn perf_counts(c: &Counts) -> Vec<String> {
    vec![
        perf("holders", c.holders, "", "", "", ""),
        // Any orphan is critical (outside 0..0), a leak a warning.
        perf("orphans", c.orphans, "", "", "0", ""),
        perf("leaked_segments", c.leaked_segments, "", "0", "", ""),
        perf("leaked_dsm_bytes", c.leaked_dsm_bytes, "B", "0", "", ""),
    ]
}

/// What a directory is, in a few words, for a status line.
fn summary(r: &StatusReport) -> String {
    let dir = line_text(&r.data_dir);
    let what = match r.verdict {
        Verdict::Running => match (r.lock_file.identity, r.lock_file.pid) {
            (Some(Identity::Owner), Some(pid)) => format!("running (PID {})", pid.abs()),
            _ => "running".into(),
        },
        Verdict::WillStart if r.safe_to_start => "would start safely".into(),
        Verdict::WillStart => {
            "unsafe: it would start alongside processes of an earlier server".into()
        }
        Verdict::Blocked => match &r.postgres_would_say {
            Some(m) => format!("blocked: FATAL:  {}", line_text(m)),
            None => "blocked".into(),
        },
        Verdict::Unknown => "cannot be told".into(),
    };
    let why = match State::of(r) {
        State::Ok => String::new(),
        State::Warning => {
            let mut codes: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
                .map(|f| code_str(f.code))
                .collect();
            codes.dedup();
            format!("; warnings: {}", codes.join(", "))
        }
        State::Critical | State::Unknown => stopping_finding(r)
            .map(|f| format!(" ({}: {})", code_str(f.code), line_text(&f.message)))
            .unwrap_or_default(),
    };
    format!("{dir}: {what}{why}")
}

/// `status --format nagios`: the plugin output and its exit code. Long
/// output: each finding worth a warning, one a line.
pub fn nagios_status(r: &StatusReport) -> (String, u8) {
    let state = State::of(r);
    let mut s = format!(
        "INTERLOCK {} - {} | {}\n",
        state.word(),
        summary(r),
        perf_counts(&Counts::of(r)).join(" ")
    );
    for f in r
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
    {
        let _ = writeln!(s, "{}: {}", code_str(f.code), line_text(&f.message));
    }
    (s, state.code())
}

/// `scan --format nagios`: totals on the status line, one long-output line
/// per directory (its state first), then the host's own findings; perfdata
/// of the totals and each directory's `would_start`.
pub fn nagios_scan(r: &ScanReport) -> (String, u8) {
    let dirs: Vec<&StatusReport> = r.data_dirs.iter().map(|d| &d.status).collect();
    let host_warns: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    let mut state = dirs.iter().map(|d| State::of(d)).max().unwrap_or(State::Ok);
    if !host_warns.is_empty() {
        state = state.max(State::Warning);
    }
    let count = |v: Verdict, safe: Option<bool>| {
        dirs.iter()
            .filter(|d| d.verdict == v && safe.is_none_or(|s| d.safe_to_start == s))
            .count() as u64
    };
    let running = count(Verdict::Running, None);
    let starts = count(Verdict::WillStart, Some(true));
    let unsafe_ = count(Verdict::WillStart, Some(false));
    let blocked = count(Verdict::Blocked, None);
    let unknown = count(Verdict::Unknown, None);
    let mut words = vec![format!(
        "{} data {}",
        dirs.len(),
        if dirs.len() == 1 {
            "directory"
        } else {
            "directories"
        }
    )];
    let mut parts = Vec::new();
    for (n, w) in [
        (running, "running"),
        (starts, "would start"),
        (unsafe_, "unsafe"),
        (blocked, "blocked"),
        (unknown, "unknown"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {w}"));
        }
    }
    if !parts.is_empty() {
        words.push(parts.join(", "));
    }
    if !host_warns.is_empty() {
        let mut codes: Vec<String> = host_warns.iter().map(|f| code_str(f.code)).collect();
        codes.dedup();
        words.push(format!("host warnings: {}", codes.join(", ")));
    }
    let mut total = Counts::default();
    for d in &dirs {
        let c = Counts::of(d);
        total.holders += c.holders;
        total.orphans += c.orphans;
        total.leaked_segments += c.leaked_segments;
    }
    // Segments no known directory names are the host's findings; DSM files
    // are counted once for the host (several directories of one owner see
    // the same leaked files).
    total.leaked_segments += r
        .findings
        .iter()
        .filter(|f| f.code == Code::LeakedSegment)
        .count() as u64;
    total.leaked_dsm_bytes = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked)
        .map(|d| d.size)
        .sum();
    let mut perfdata = vec![
        perf("data_dirs", dirs.len() as u64, "", "", "", ""),
        perf("running", running, "", "", "", ""),
        perf("would_start", starts, "", "", "", ""),
        perf("unsafe", unsafe_, "", "", "0", ""),
        perf("blocked", blocked, "", "", "0", ""),
        perf("unknown", unknown, "", "", "", ""),
    ];
    perfdata.extend(perf_counts(&total));
    for d in &dirs {
        perfdata.push(perf(
            &format!("would_start {}", d.data_dir),
            u64::from(would_start(d)),
            "",
            "",
            "1:",
            "1",
        ));
    }
    let mut s = format!(
        "INTERLOCK {} - {} | {}\n",
        state.word(),
        words.join("; "),
        perfdata.join(" ")
    );
    for d in &dirs {
        let _ = writeln!(s, "{} {}", State::of(d).word(), summary(d));
    }
    for f in host_warns {
        let _ = writeln!(s, "host {}: {}", code_str(f.code), line_text(&f.message));
    }
    (s, state.code())
}

/// The plugin output for an error (no report): UNKNOWN.
pub fn nagios_error(e: &interlock_doctor::Error) -> u8 {
    crate::out::outln!("INTERLOCK UNKNOWN - {}", line_text(&e.to_string()));
    if let Some(hint) = e.hint() {
        crate::out::outln!("hint: {}", line_text(&hint));
    }
    NAGIOS_UNKNOWN
}

// -------------------------------------------------------------- Prometheus

/// A label value in the text exposition format: `\`, `"` and newline
/// escaped.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

/// One gauge family: HELP, TYPE, then its samples (label pairs, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Metrics, written family by family in the order first added.
#[derive(Default)]
struct Metrics(Vec<Family>);

impl Metrics {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        if let Some(f) = self.0.iter_mut().find(|f| f.name == name) {
            f.samples.push((labels, value));
        } else {
            self.0.push(Family {
                name,
                help,
                samples: vec![(labels, value)],
            });
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.0 {
            let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(s, "# TYPE {} gauge", f.name);
            for (labels, value) in &f.samples {
                s += f.name;
                if !labels.is_empty() {
                    let pairs: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                        .collect();
                    let _ = write!(s, "{{{}}}", pairs.join(","));
                }
                let _ = writeln!(s, " {value}");
            }
        }
        s
    }
}

const VERDICTS: [Verdict; 4] = [
    Verdict::Running,
    Verdict::WillStart,
    Verdict::Blocked,
    Verdict::Unknown,
];

/// One directory's metrics.
fn dir_metrics(m: &mut Metrics, r: &StatusReport, now: f64) {
    let dir = || vec![("data_dir", r.data_dir.clone())];
    m.add(
        "interlock_would_start",
        "1 if PostgreSQL runs in the data directory or would start there safely (status exit 0), else 0 (blocked, unsafe: processes of an earlier server attached, or unknown).",
        dir(),
        f64::from(u8::from(would_start(r))),
    );
    for v in VERDICTS {
        m.add(
            "interlock_verdict",
            "What PostgreSQL would do if started now, one-hot: running, will_start, blocked, unknown.",
            vec![("data_dir", r.data_dir.clone()), ("verdict", v.as_str().into())],
            f64::from(u8::from(r.verdict == v)),
        );
    }
    if let Some(f) = stopping_finding(r) {
        m.add(
            "interlock_blocked_reason",
            "1 for the finding (its stable code) that stops PostgreSQL from starting, makes the start unsafe, or keeps the answer unknown; absent when it runs or would start safely.",
            vec![("data_dir", r.data_dir.clone()), ("code", code_str(f.code))],
            1.0,
        );
    }
    let c = Counts::of(r);
    m.add(
        "interlock_holders",
        "Processes attached to the data directory's System V segments.",
        dir(),
        c.holders as f64,
    );
    m.add(
        "interlock_orphaned_holders",
        "Processes of a server that is gone still attached to the data directory's segment.",
        dir(),
        c.orphans as f64,
    );
    m.add(
        "interlock_leaked_segments",
        "Segments of the data directory nobody is attached to that PostgreSQL will not remove.",
        dir(),
        c.leaked_segments as f64,
    );
    m.add(
        "interlock_leaked_dsm_files",
        "/dev/shm/PostgreSQL.* files of the data directory's owner that no process maps.",
        dir(),
        c.leaked_dsm_files as f64,
    );
    m.add(
        "interlock_leaked_dsm_bytes",
        "Bytes of the /dev/shm/PostgreSQL.* files of the data directory's owner that no process maps.",
        dir(),
        c.leaked_dsm_bytes as f64,
    );
    m.add(
        "interlock_scrape_timestamp_seconds",
        "When interlock diagnosed the data directory, in seconds since the epoch.",
        dir(),
        now,
    );
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as f64)
        .unwrap_or(0.0)
}

/// `status --prometheus-textfile`: one directory's metrics.
pub fn prometheus_status(r: &StatusReport) -> String {
    let mut m = Metrics::default();
    dir_metrics(&mut m, r, now());
    m.render()
}

/// `scan --prometheus-textfile`: every directory's metrics, the host's
/// leftovers and the kernel's System V and /dev/shm headroom.
pub fn prometheus_scan(r: &ScanReport, host: &HostFacts) -> String {
    let mut m = Metrics::default();
    let t = now();
    for d in &r.data_dirs {
        dir_metrics(&mut m, &d.status, t);
    }
    m.add(
        "interlock_data_directories",
        "PostgreSQL data directories interlock scan found on the host.",
        vec![],
        r.data_dirs.len() as f64,
    );
    m.add(
        "interlock_host_leaked_segments",
        "PostgreSQL-like System V segments nobody is attached to that belong to no known data directory.",
        vec![],
        r.findings
            .iter()
            .filter(|f| f.code == Code::LeakedSegment)
            .count() as f64,
    );
    let leaked: Vec<_> = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked)
        .collect();
    m.add(
        "interlock_host_leaked_dsm_files",
        "/dev/shm/PostgreSQL.* files on the host that no process maps.",
        vec![],
        leaked.len() as f64,
    );
    m.add(
        "interlock_host_leaked_dsm_bytes",
        "Bytes of the /dev/shm/PostgreSQL.* files on the host that no process maps.",
        vec![],
        leaked.iter().map(|d| d.size).sum::<u64>() as f64,
    );
    let free = |limit: Option<u64>, used: Option<u64>| Some(limit?.saturating_sub(used?) as f64);
    for (name, help, value) in [
        (
            "interlock_shm_segments_free",
            "System V shared memory segments that can still be created: kernel.shmmni minus the segments that exist.",
            free(host.shmmni, host.shm_segments),
        ),
        (
            "interlock_shmall_pages_free",
            "Pages of System V shared memory that can still be allocated: kernel.shmall minus the pages of the segments that exist.",
            free(host.shmall, host.shm_pages),
        ),
        (
            "interlock_semaphore_sets_free",
            "System V semaphore sets that can still be created: SEMMNI (kernel.sem) minus the sets that exist.",
            free(host.semmni, host.sem_sets),
        ),
        (
            "interlock_semaphores_free",
            "System V semaphores that can still be created: SEMMNS (kernel.sem) minus the semaphores that exist.",
            free(host.semmns, host.sems),
        ),
        (
            "interlock_dev_shm_free_bytes",
            "Bytes free in /dev/shm, where PostgreSQL's dynamic shared memory (POSIX) lives.",
            host.dev_shm_free.map(|b| b as f64),
        ),
    ] {
        if let Some(v) = value {
            m.add(name, help, vec![], v);
        }
    }
    m.render()
}

/// The file name `status --prometheus-textfile` writes for `data_dir`:
/// `interlock-` + the path without its leading `/`, `/` written `-`, and
/// every byte but [A-Za-z0-9_.] (and a leading `.`) as `%XX`, so two
/// directories never share a name.
pub fn status_file_name(data_dir: &str) -> String {
    let path = data_dir.strip_prefix('/').unwrap_or(data_dir);
    let mut s = String::from("interlock-");
    if path.is_empty() {
        s.push('-');
    }
    for (i, b) in path.bytes().enumerate() {
        match b {
            b'/' => s.push('-'),
            b'.' if i == 0 => s.push_str("%2e"),
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' => s.push(b as char),
            b => {
                let _ = write!(s, "%{b:02x}");
            }
        }
    }
    s + ".prom"
}

/// The file `scan --prometheus-textfile` writes.
pub const SCAN_FILE_NAME: &str = "interlock.prom";

/// Write `text` to `dir/name` as node_exporter's textfile collector needs
/// it: into a temporary file of `dir` (a name it does not read: no
/// `.prom` ending), mode 0644, synced, then renamed over `name`, so the
/// collector sees the old file or the new one, never half of one.
pub fn write_textfile(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        // Whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself, durable (best effort).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Write a textfile, saying on stderr why not; whether it was written.
pub fn write_or_say(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    write_textfile(dir, name, text).map(|_| ()).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            crate::status::esc(&dir.join(name).display().to_string())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        assert_eq!(label_value("/var/lib/pg"), "/var/lib/pg");
    }

    #[test]
    fn file_names_are_distinct_and_plain() {
        assert_eq!(
            status_file_name("/var/lib/postgresql/15/main"),
            "interlock-var-lib-postgresql-15-main.prom"
        );
        assert_ne!(status_file_name("/a-b"), status_file_name("/a/b"));
        assert_eq!(status_file_name("/a-b"), "interlock-a%2db.prom");
        assert_eq!(status_file_name("/.x y"), "interlock-%2ex%20y.prom");
        assert_eq!(status_file_name("/"), "interlock--.prom");
    }

    #[test]
    fn perf_labels_are_quoted_when_needed() {
        assert_eq!(perf_label("holders"), "holders");
        assert_eq!(perf_label("would_start /a b"), "'would_start /a b'");
        assert_eq!(perf_label("x'y=z|"), "'x''y_z¦'");
    }

    #[test]
    fn nagios_is_asked_for() {
        let a = |v: &[&str]| wants_nagios(v.iter().map(OsString::from));
        assert!(a(&["interlock", "status", "--format", "nagios", "x"]));
        assert!(a(&["interlock", "scan", "--format=nagios"]));
        assert!(!a(&["interlock", "status", "--format", "json", "nagios"]));
        assert!(!a(&["interlock", "status", "nagios"]));
    }
}
