//! `interlock explain [LOGFILE | -]`: the startup and IPC failures in a
//! server log, explained; with -D, joined with the live state.

use std::io::Read;
use std::path::{Path, PathBuf};

use interlock_doctor::explain::{explain, ExplainOptions, ExplainReport};
use interlock_doctor::StatusOptions;

use crate::exit;
use crate::status::{esc, paint, print, BOLD, DIM, RED, YELLOW};

/// The most of a log that is read: its end, where startups fail.
const MAX_READ: u64 = 256 << 20;

/// Arguments of `interlock explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The server log or `pg_ctl` output; `-` for standard input [default:
    /// with -D, the newest file in the cluster's log_directory; else
    /// standard input].
    pub logfile: Option<PathBuf>,
    /// The data directory the log is of: say what is true now (who still
    /// holds the segment the log names, whether the lock file's PID runs…).
    #[arg(short = 'D', long = "data-dir", value_name = "DATADIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// The newest log file in the cluster's `log_directory`: a regular file
/// owned by the data directory's owner, as the logging collector writes
/// them (`syslogger.c`, `logfile_open`). The configuration is the owner's,
/// so as root its `log_directory` may name any directory (`/etc`): files of
/// other owners are not read, nor links in directories the owner controls,
/// nor FIFOs (see `interlock::safe_fs`).
fn newest_log(data_dir: &Path) -> Result<(PathBuf, interlock::safe_fs::Opened), String> {
    use interlock::safe_fs;
    use rustix::fs::{AtFlags, Dir, FileType};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let settings = interlock_doctor::config::read_settings(data_dir);
    let dir = settings.get("log_directory").unwrap_or("log");
    let shown = if Path::new(dir).is_absolute() {
        PathBuf::from(dir)
    } else {
        data_dir.join(dir)
    };
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| format!("{}: {e}", data_dir.display()))?
        .uid();
    let fd = safe_fs::open_dir(Some(data_dir), Path::new(dir)).map_err(|e| e.to_string())?;
    let entries = Dir::read_from(&fd).map_err(|e| format!("{}: {e}", shown.display()))?;
    let mut newest: Option<((i64, u64), std::ffi::OsString)> = None;
    for e in entries.flatten() {
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string();
        let n = name.to_string_lossy();
        if n.starts_with('.') || n.ends_with(".csv") || n.ends_with(".json") {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != owner {
            continue;
        }
        let t = (st.st_mtime, st.st_mtime_nsec);
        if newest.as_ref().is_none_or(|(best, _)| t > *best) {
            newest = Some((t, name));
        }
    }
    let Some((_, name)) = newest else {
        return Err(format!(
            "no log file found in {}'s log_directory {} (only regular files owned by {} are read)",
            data_dir.display(),
            shown.display(),
            interlock_doctor::user_name(owner)
        ));
    };
    let path = shown.join(&name);
    // Opened by name again: refused if it was swapped for a FIFO or a link.
    let opened = safe_fs::open_regular_at(&fd, &name, &path).map_err(|e| e.to_string())?;
    if opened.uid != owner {
        return Err(format!(
            "{} is not owned by {}: not read",
            path.display(),
            interlock_doctor::user_name(owner)
        ));
    }
    Ok((path, opened))
}

/// Where the log comes from.
enum Input {
    Stdin,
    /// A file the operator named: read as given (a pipe is fine).
    Named(PathBuf),
    /// The newest file of `log_directory`, already opened safely.
    Found(PathBuf, std::fs::File),
}

fn read_input(input: Input) -> Result<(Vec<u8>, String, Option<String>), String> {
    let mut buf = Vec::new();
    let (path, opened) = match input {
        Input::Stdin => (None, None),
        Input::Named(p) => (Some(p), None),
        Input::Found(p, f) => (Some(p), Some(f)),
    };
    match path.as_deref() {
        None => {
            std::io::stdin()
                .lock()
                .take(MAX_READ)
                .read_to_end(&mut buf)
                .map_err(|e| format!("standard input: {e}"))?;
            Ok((buf, "standard input".into(), None))
        }
        Some(p) => {
            use std::io::{Seek, SeekFrom};
            let name = p.display().to_string();
            let mut f = match opened {
                Some(f) => f,
                None => std::fs::File::open(p).map_err(|e| format!("{name}: {e}"))?,
            };
            let len = f.metadata().map_err(|e| format!("{name}: {e}"))?.len();
            let mut note = None;
            if len > MAX_READ {
                f.seek(SeekFrom::Start(len - MAX_READ))
                    .map_err(|e| format!("{name}: {e}"))?;
                note = Some(format!(
                    "read the last {} MiB of {} MiB (line numbers count from there)",
                    MAX_READ >> 20,
                    len >> 20
                ));
            }
            f.take(MAX_READ)
                .read_to_end(&mut buf)
                .map_err(|e| format!("{name}: {e}"))?;
            if note.is_some() {
                // Start at a line boundary.
                if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    buf.drain(..=nl);
                }
            }
            Ok((buf, name, note))
        }
    }
}

pub fn run(args: &ExplainArgs) -> u8 {
    let input = match (&args.logfile, &args.data_dir) {
        (Some(p), _) if p.as_os_str() == "-" => Input::Stdin,
        (Some(p), _) => Input::Named(p.clone()),
        (None, Some(d)) => match newest_log(d) {
            Ok((p, o)) => Input::Found(p, o.file),
            Err(why) => {
                eprintln!("interlock: {why}");
                eprintln!("hint: give the log file, or - to read standard input (pg_ctl -l FILE, journalctl -u postgresql)");
                return exit::UNKNOWN;
            }
        },
        (None, None) => Input::Stdin,
    };
    let (input, source, note) = match read_input(input) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("interlock: {e}");
            return exit::UNKNOWN;
        }
    };
    if let Some(n) = &note {
        eprintln!("interlock: {source}: {n}");
    }
    let opts = ExplainOptions {
        data_dir: args.data_dir.clone(),
        status: StatusOptions::default(),
    };
    let report = match explain(&input, &source, &opts) {
        Ok(r) => r,
        Err(e) => return exit::error(&e),
    };
    if print(args.json, &report, render).is_err() {
        return exit::UNKNOWN;
    }
    if report.found_failure() {
        exit::BLOCKED
    } else {
        exit::OK
    }
}

fn render(r: &ExplainReport) -> String {
    let failures = r.failures.iter().filter(|f| !f.informational).count();
    let mut s = format!(
        "{}: {} in {} lines ({} report{})\n",
        paint(BOLD, &esc(&r.source)),
        match failures {
            0 => "no startup or IPC failure recognised".to_string(),
            1 => "1 failure".into(),
            n => format!("{n} failures"),
        },
        r.lines,
        r.reports,
        if r.reports == 1 { "" } else { "s" }
    );
    if r.binary_line_count > 0 {
        s += &format!(
            "  {} not text and skipped (line {}{})\n",
            if r.binary_line_count == 1 {
                "1 line is".to_string()
            } else {
                format!("{} lines are", r.binary_line_count)
            },
            r.binary_lines
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if r.binary_line_count > r.binary_lines.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    if let Some(st) = &r.status_now {
        s += &format!("  now: {}\n", esc(st));
    }
    for f in &r.failures {
        let style = if f.informational { YELLOW } else { RED };
        let also = if f.lines.len() > 1 {
            format!(
                ", {} times (lines {})",
                f.lines.len(),
                f.lines
                    .iter()
                    .take(10)
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        s += &format!("\n  {}  line {}{also}\n", paint(style, f.code), f.line);
        for l in f.logged.lines() {
            s += &format!("    {}\n", paint(DIM, &esc(l)));
        }
        s += &format!("    {}\n", wrap(&esc(&f.meaning), 6));
        for n in &f.now {
            s += &format!("    {} {}\n", paint(BOLD, "now:"), esc(n));
        }
        for c in &f.check {
            s += &format!("    check: {}\n", esc(c));
        }
        for x in &f.fix {
            s += &format!("    fix:   {}\n", esc(x));
        }
    }
    s
}

/// Wrap at 100 columns, continuation lines indented by `indent`.
fn wrap(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split(' ') {
        if col > 0 && col + word.len() > 96 {
            out.push('\n');
            out.push_str(&" ".repeat(indent - 2));
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}
