//! `interlock fix DATADIR [--yes]`: the plan, and with `--yes` its outcome.

use std::path::PathBuf;
use std::time::Duration;

use interlock_doctor::fix::{Outcome, Plan, RefusalCode, StepResult, StopSignal};
use interlock_doctor::{FixOptions, StatusOptions, Verdict};
use serde::Serialize;

use crate::exit;
use crate::status::{esc, paint, print, BOLD, DIM, GREEN, RED, YELLOW};
use interlock_format::shell;

/// Arguments of `interlock fix`.
#[derive(Debug, clap::Args)]
pub struct FixArgs {
    /// The data directory.
    pub datadir: PathBuf,
    /// Carry the plan out (without it, only print the plan: nothing is changed).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print one JSON object (the plan, and the outcome with --yes).
    #[arg(long)]
    pub json: bool,
    /// Seconds a process gets after its shutdown signal before SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// The server binary, to learn its exact version (as for `status`).
    #[arg(long, value_name = "PATH")]
    pub postgres: Option<PathBuf>,
    /// The port the server will start on (decides the keys of 10–12).
    #[arg(long)]
    pub port: Option<u16>,
    /// etcd: --etcd. With it, fix refuses while another host holds the
    /// directory's fence, or while etcd cannot be read.
    #[command(flatten)]
    pub etcd: crate::status::EtcdArgs,
    /// The name in the fence's key, as given to `interlock run --name`
    /// [default: the data directory's absolute path]. Read only with
    /// --etcd (or INTERLOCK_ETCD); an empty value is not set.
    #[arg(long, env = crate::status::ETCD_NAME_ENV, hide_env_values = true)]
    pub name: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    plan: &'a Plan,
    outcome: Option<&'a Outcome>,
}

pub fn run(args: &FixArgs) -> u8 {
    let Some(name) = crate::status::fence_name(&args.etcd, args.name.as_deref()) else {
        return exit::UNKNOWN;
    };
    let fence = args
        .etcd
        .endpoints()
        .map(|e| (e.to_string(), name.map(str::to_string)));
    let opts = FixOptions {
        fence,
        status: StatusOptions {
            postgres: args.postgres.clone(),
            port: args.port,
            root: crate::host_root().clone(),
            ..StatusOptions::default()
        },
        grace: Duration::from_secs(args.timeout),
        ..FixOptions::default()
    };
    if args.yes && !opts.status.root.is_host() {
        eprintln!(
            "interlock: fix --yes acts on this host's processes and segments: not with --root"
        );
        return exit::UNKNOWN;
    }
    let plan = match interlock_doctor::plan(&args.datadir, &opts) {
        Ok(p) => p,
        Err(e) => return exit::error(&e),
    };
    let outcome = if args.yes && plan.has_work() {
        match interlock_doctor::carry_out(&plan, &opts) {
            Ok(o) => Some(o),
            Err(e) => return exit::error(&e),
        }
    } else {
        None
    };
    let report = Report {
        plan: &plan,
        outcome: outcome.as_ref(),
    };
    if print(args.json, &report, |r| render(r, args.yes)).is_err() {
        return exit::UNKNOWN;
    }
    exit_code(&plan, outcome.as_ref())
}

/// The documented exit code.
fn exit_code(plan: &Plan, outcome: Option<&Outcome>) -> u8 {
    if let Some(o) = outcome {
        return settled_code(o.after.verdict, o.after.safe_to_start);
    }
    let b = &plan.before;
    if !plan.refused.is_empty() {
        if plan.refused.iter().all(|r| r.code == RefusalCode::Unknown) {
            exit::UNKNOWN
        } else {
            exit::FIX_REFUSED
        }
    } else {
        settled_code(b.verdict, b.safe_to_start)
    }
}

/// 0 when the directory would start safely or when it runs (before the
/// plan, or after `--yes` because a server started meanwhile: either way
/// there is nothing left to fix), else 1.
fn settled_code(verdict: Verdict, safe_to_start: bool) -> u8 {
    match verdict {
        Verdict::Running => exit::OK,
        Verdict::WillStart if safe_to_start => exit::OK,
        _ => exit::BLOCKED,
    }
}

/// The human report of a plan and, after `--yes`, its outcome.
pub fn text(plan: &Plan, outcome: Option<&Outcome>, yes: bool) -> String {
    render(&Report { plan, outcome }, yes)
}

fn render(r: &Report<'_>, yes: bool) -> String {
    let p = r.plan;
    let b = &p.before;
    let mut s = String::new();
    s += &format!("{}\n", paint(BOLD, &esc(&p.data_dir)));
    s += &format!("  before   {}\n", verdict_line(b));
    if let Some(msg) = &b.postgres_would_say {
        s += &format!("           it says: FATAL:  {}\n", esc(msg));
    }
    if p.managed_by.is_managed() {
        s += &format!(
            "  managed by  {}; fix starts nothing, and stops no live server or hold it runs\n",
            esc(&p.managed_by.line())
        );
    }
    if b.verdict == Verdict::Running {
        s += "\n  Nothing to fix: a live process owns this directory, and fix never stops a running server.\n";
        for step in &b.remedy {
            s += &format!("  {}\n", esc(step));
        }
        return s;
    }
    if !p.refused.is_empty() {
        s += &format!(
            "\n  {}\n",
            paint(RED, "cannot fix this safely; nothing was changed")
        );
        for f in &p.refused {
            let code = serde_json::to_value(f.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s += &format!("    x {}  {}\n", paint(BOLD, &code), esc(&f.message));
        }
        return s;
    }
    if !p.has_work() {
        s += "\n  Nothing to fix.\n";
    } else {
        s += &format!(
            "\n  {}{}\n",
            paint(BOLD, "plan"),
            if r.outcome.is_some() || yes {
                ""
            } else {
                " (nothing has been changed; run with --yes to carry it out)"
            }
        );
        let mut n = 0;
        for st in &p.stop {
            n += 1;
            s += &format!(
                "    {n}. stop PID {} ({}), {}, started {}\n",
                st.pid,
                esc(st.role.map_or(st.cmdline.as_str(), |r| r.name())),
                st.state,
                interlock_doctor::format_utc(st.start_time)
            );
            s += &format!("       {} {}\n", paint(DIM, "evidence:"), esc(&st.evidence));
            s += &format!(
                "       {} {} ({}), SIGKILL if still there after the timeout\n",
                paint(DIM, "signals: "),
                st.signals
                    .iter()
                    .filter(|x| **x != StopSignal::Kill)
                    .map(|x| x.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                st.why_signal
            );
        }
        for rm in &p.remove {
            n += 1;
            s += &format!("    {n}. remove {}\n", esc(&rm.target()));
            s += &format!("       {} {}\n", paint(DIM, "why:"), esc(rm.reason()));
        }
    }
    if !p.left_to_server.is_empty() {
        s += &format!(
            "\n  {}\n",
            paint(
                BOLD,
                "left to PostgreSQL, which cleans these up when it starts"
            )
        );
        for l in &p.left_to_server {
            s += &format!("    - {}\n", esc(l));
        }
    }
    if !p.left_alone.is_empty() {
        s += &format!("\n  {}\n", paint(BOLD, "left alone"));
        for l in &p.left_alone {
            s += &format!("    - {}\n", esc(l));
        }
    }
    if let Some(o) = r.outcome {
        s += &format!("\n  {}\n", paint(BOLD, "carried out"));
        for st in &o.steps {
            let mark = match st.result {
                StepResult::Done => paint(GREEN, "done   "),
                StepResult::Skipped => paint(YELLOW, "skipped"),
                StepResult::Failed => paint(RED, "FAILED "),
            };
            s += &format!("    {mark} {}: {}\n", esc(&st.what), esc(&st.detail));
        }
        s += &format!("\n  after    {}\n", verdict_line(&o.after));
        if let Some(msg) = &o.after.postgres_would_say {
            s += &format!("           it says: FATAL:  {}\n", esc(msg));
        }
        if o.after.verdict == Verdict::Running {
            s += "  It runs now (a server started while fix worked): nothing left to fix.\n";
        } else if o.ready {
            s += &format!(
                "  Start it: {} (or your service manager)\n",
                shell::words(&["pg_ctl", "start", "-D", &o.after.data_dir])
            );
        } else {
            s += &format!(
                "  Not fixed; see `{}`.\n",
                shell::words(&["interlock", "status", &o.after.data_dir])
            );
        }
    } else if b.verdict == Verdict::WillStart && b.safe_to_start {
        s += &format!(
            "\n  It would start safely now: {}\n",
            shell::words(&["pg_ctl", "start", "-D", &b.data_dir])
        );
    }
    s
}

fn verdict_line(r: &interlock_doctor::StatusReport) -> String {
    match r.verdict {
        Verdict::Running => paint(GREEN, "RUNNING"),
        Verdict::WillStart if r.safe_to_start => paint(GREEN, "WILL START"),
        Verdict::WillStart => format!(
            "{} (it would start alongside processes of an earlier server)",
            paint(RED, "UNSAFE")
        ),
        Verdict::Blocked => paint(RED, "BLOCKED"),
        Verdict::Unknown => paint(YELLOW, "UNKNOWN"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, item 10: `fix --yes` during which a server started ends
    /// with the verdict RUNNING, which exits 0 as the README says ("or it
    /// runs"), as a running directory does before any plan.
    #[test]
    fn running_after_the_fix_exits_0() {
        assert_eq!(settled_code(Verdict::Running, false), exit::OK);
        assert_eq!(settled_code(Verdict::Running, true), exit::OK);
        assert_eq!(settled_code(Verdict::WillStart, true), exit::OK);
        assert_eq!(settled_code(Verdict::WillStart, false), exit::BLOCKED);
        assert_eq!(settled_code(Verdict::Blocked, false), exit::BLOCKED);
        assert_eq!(settled_code(Verdict::Unknown, false), exit::BLOCKED);
    }
}
