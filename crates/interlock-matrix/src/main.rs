//! `interlock-matrix`: every scenario of the interlock against real
//! PostgreSQL builds, one cell per build × scenario.
//!
//! Each cell builds its situation with the real server (crashes, stopped
//! backends, lock files, twins on the same key, another user's segment,
//! `interlock hold`), asks `interlock status --json` what the server will
//! do, starts the `postgres` binary, and records whether the verdict and
//! the exact FATAL message match; where the start was blocked or unsafe it
//! runs `interlock fix --yes` and checks that the server starts with the
//! rows committed before the crash. Results go to JSON and a markdown
//! table. `scripts/matrix` installs the builds and runs this.
//!
//! Runs as root (it mounts tmpfs file systems and runs PostgreSQL as the
//! `postgres` user). Exit: 0 every applicable cell agreed, 1 a cell
//! disagreed or could not be built, 2 a usage or set-up error, 130
//! interrupted (after cleaning up).

mod cell;
mod env;
mod report;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::cell::Cell;
use crate::env::{Build, Env, INTERRUPTED};
use crate::report::{CellResult, Matrix, Outcome};

#[derive(Debug, Parser)]
#[command(name = "interlock-matrix", about, long_about = None)]
struct Args {
    /// A PostgreSQL build to run: NAME=BINDIR (repeat; in this order).
    #[arg(long = "build", value_name = "NAME=BINDIR")]
    builds: Vec<String>,

    /// Run only this scenario (repeat); default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// The interlock binary [default: next to this one].
    #[arg(long)]
    interlock: Option<PathBuf>,

    /// psql to count rows with (any version from 10 on talks to 10–18).
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin/psql")]
    psql: PathBuf,

    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Write the markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,

    /// The command line to name in the markdown (how to make it again).
    #[arg(long, default_value = "scripts/matrix")]
    command: String,

    /// Keep each cell's directory (server logs) under the work directory.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for s in scenario::ALL {
            println!("{:26} {}", s.name, s.title);
        }
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if e.starts_with(INTERRUPTED) => {
            eprintln!("interlock-matrix: {e}; cleaned up");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("interlock-matrix: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    if !rustix::process::geteuid().is_root() {
        return Err(
            "needs root: it mounts tmpfs file systems and runs PostgreSQL as the postgres user"
                .into(),
        );
    }
    if args.builds.is_empty() {
        return Err("no --build NAME=BINDIR given (scripts/matrix passes them)".into());
    }
    let chosen: Vec<&scenario::Scenario> = if args.scenarios.is_empty() {
        scenario::ALL.iter().collect()
    } else {
        args.scenarios
            .iter()
            .map(|n| {
                scenario::ALL
                    .iter()
                    .find(|s| s.name == n)
                    .ok_or_else(|| format!("no scenario {n:?} (see --list)"))
            })
            .collect::<Result<_, _>>()?
    };
    let interlock = match &args.interlock {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("interlock"),
    };
    if !interlock.is_file() {
        return Err(format!(
            "{}: no interlock binary (cargo build -p interlock-cli, or --interlock)",
            interlock.display()
        ));
    }
    let (uid, gid) = env::ids_of("postgres")?;
    let builds: Vec<Build> = args
        .builds
        .iter()
        .map(|b| Build::from_arg(b, uid, gid))
        .collect::<Result<_, _>>()?;
    let work = std::env::temp_dir().join(format!("interlock-matrix-{}", std::process::id()));
    let env = Env::new(interlock, args.psql.clone(), work.clone(), args.keep)?;

    let t0 = Instant::now();
    let mut matrix = Matrix::new(&builds, &chosen);
    let mut index = 0u16;
    let result = (|| {
        for b in &builds {
            for s in &chosen {
                index += 1;
                let r = run_cell(&env, b, s, index)?;
                eprintln!(
                    "{:>10} {:26} {:>5.1} s  {}",
                    b.version,
                    s.name,
                    r.seconds,
                    match r.outcome {
                        Outcome::Agreed => "agreed".to_string(),
                        Outcome::NotApplicable => "n/a".to_string(),
                        Outcome::Disagreed => format!("DISAGREED: {}", r.problems.join("; ")),
                        Outcome::Error => format!("ERROR: {}", r.reason.as_deref().unwrap_or("")),
                    }
                );
                matrix.push(r);
            }
        }
        Ok::<(), String>(())
    })();
    matrix.seconds = t0.elapsed().as_secs_f64();
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result?;

    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&matrix).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, report::markdown(&matrix, &args.command))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let t = &matrix.totals;
    println!(
        "matrix: {} agreed, {} disagreed, {} errors, {} not applicable ({} builds x {} scenarios, {:.0} s)",
        t.agreed,
        t.disagreed,
        t.error,
        t.not_applicable,
        builds.len(),
        chosen.len(),
        matrix.seconds
    );
    Ok(matrix.all_agreed())
}

/// One cell, cleaned up whatever happens; an interruption ends the run.
fn run_cell(
    env: &Env,
    b: &Build,
    s: &scenario::Scenario,
    index: u16,
) -> Result<CellResult, String> {
    let t0 = Instant::now();
    let mut r = CellResult {
        build: b.name.clone(),
        version: b.version.clone(),
        scenario: s.name,
        outcome: Outcome::NotApplicable,
        reason: None,
        checks: Vec::new(),
        fix: None,
        problems: Vec::new(),
        notes: Vec::new(),
        seconds: 0.0,
    };
    if let Err(why) = (s.applies)(b) {
        r.reason = Some(why.to_string());
        return Ok(r);
    }
    // Ports 52000.. (the keys of 10–12 are port * 1000 + 1), four per cell.
    let port = 52000 + (index % 2000) * 4;
    let name = format!("{index:03}-{}-{}", b.name, s.name);
    let outcome = {
        let mut cell = Cell::new(env, b, &name, port)?;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.run)(&mut cell)))
            .unwrap_or_else(|_| Err("the scenario panicked".into()));
        r.checks = std::mem::take(&mut cell.checks);
        r.fix = cell.fix.take();
        r.problems = std::mem::take(&mut cell.problems);
        r.notes = std::mem::take(&mut cell.notes);
        run
        // The cell cleans up here.
    };
    env.check()?;
    match outcome {
        Err(e) if e.starts_with(INTERRUPTED) => return Err(e),
        Err(e) => {
            r.outcome = Outcome::Error;
            r.reason = Some(e);
        }
        Ok(()) if r.problems.is_empty() => r.outcome = Outcome::Agreed,
        Ok(()) => r.outcome = Outcome::Disagreed,
    }
    r.seconds = t0.elapsed().as_secs_f64();
    Ok(r)
}
