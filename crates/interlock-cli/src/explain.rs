//! `interlock explain [LOGFILE | -]`: the startup and IPC failures in a
//! server log, explained; with -D, joined with the live state.

use std::io::Read;
use std::path::PathBuf;

use interlock_doctor::explain::{
    explain, newest_log, read_log_tail, ExplainOptions, ExplainReport, MAX_READ,
};
use interlock_doctor::StatusOptions;

use crate::exit;
use crate::status::{esc, paint, print, BOLD, DIM, RED, YELLOW};

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
            let name = p.display().to_string();
            let f = match opened {
                Some(f) => f,
                None => std::fs::File::open(p).map_err(|e| format!("{name}: {e}"))?,
            };
            let (buf, note) = read_log_tail(f, &name, MAX_READ)?;
            Ok((buf, name, note))
        }
    }
}

pub fn run(args: &ExplainArgs) -> u8 {
    let input = match (&args.logfile, &args.data_dir) {
        (Some(p), _) if p.as_os_str() == "-" => Input::Stdin,
        (Some(p), _) => Input::Named(p.clone()),
        (None, Some(d)) => match newest_log(d, crate::host_root()) {
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
        status: StatusOptions {
            root: crate::host_root().clone(),
            ..StatusOptions::default()
        },
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
