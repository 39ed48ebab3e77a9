//! The matrix's outputs: JSON (every cell, both sides' words) and a
//! markdown table (one row per scenario, one column per build).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cell::{Check, FixCheck};
use crate::env::Build;
use crate::scenario::Scenario;

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every prediction matched the server, and fix got it started with
    /// its rows.
    Agreed,
    /// Some prediction or expectation did not hold: see `problems`.
    Disagreed,
    /// The scenario cannot exist on this version (`reason`).
    NotApplicable,
    /// The scenario could not be built (`reason`): counts as a failure.
    Error,
}

#[derive(Debug, Serialize)]
pub struct CellResult {
    pub build: String,
    pub version: String,
    pub scenario: &'static str,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub checks: Vec<Check>,
    pub fix: Option<FixCheck>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct BuildInfo {
    pub name: String,
    pub version: String,
    pub bindir: String,
}

#[derive(Debug, Serialize)]
pub struct ScenarioInfo {
    pub name: &'static str,
    pub title: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub agreed: usize,
    pub disagreed: usize,
    pub not_applicable: usize,
    pub error: usize,
}

#[derive(Debug, Serialize)]
pub struct Matrix {
    pub builds: Vec<BuildInfo>,
    pub scenarios: Vec<ScenarioInfo>,
    pub cells: Vec<CellResult>,
    pub totals: Totals,
    pub seconds: f64,
}

impl Matrix {
    pub fn new(builds: &[Build], scenarios: &[&Scenario]) -> Self {
        Matrix {
            builds: builds
                .iter()
                .map(|b| BuildInfo {
                    name: b.name.clone(),
                    version: b.version.clone(),
                    bindir: b.bindir.display().to_string(),
                })
                .collect(),
            scenarios: scenarios
                .iter()
                .map(|s| ScenarioInfo {
                    name: s.name,
                    title: s.title,
                })
                .collect(),
            cells: Vec::new(),
            totals: Totals::default(),
            seconds: 0.0,
        }
    }

    pub fn push(&mut self, c: CellResult) {
        match c.outcome {
            Outcome::Agreed => self.totals.agreed += 1,
            Outcome::Disagreed => self.totals.disagreed += 1,
            Outcome::NotApplicable => self.totals.not_applicable += 1,
            Outcome::Error => self.totals.error += 1,
        }
        self.cells.push(c);
    }

    pub fn all_agreed(&self) -> bool {
        self.totals.disagreed == 0 && self.totals.error == 0
    }

    fn cell(&self, build: &str, scenario: &str) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.build == build && c.scenario == scenario)
    }
}

/// What a cell shows in the table: the verdicts `status` gave, in order,
/// and whether fix had to run.
fn short(c: &CellResult) -> String {
    match c.outcome {
        Outcome::NotApplicable => "n/a".into(),
        Outcome::Error => "**error**".into(),
        Outcome::Disagreed => "**disagreed**".into(),
        Outcome::Agreed => {
            let mut s: Vec<String> = c
                .checks
                .iter()
                .map(
                    |k| match (k.status.verdict.as_str(), k.status.safe_to_start) {
                        ("will_start", false) => "unsafe".to_string(),
                        (v, _) => v.replace('_', " "),
                    },
                )
                .collect();
            if c.fix.is_some() {
                s.push("fixed".into());
            }
            format!("agreed: {}", s.join(" → "))
        }
    }
}

pub fn markdown(m: &Matrix, command: &str) -> String {
    let mut o = String::new();
    let t = &m.totals;
    let _ = writeln!(
        o,
        "# Version matrix: `interlock status` and `fix` against real PostgreSQL\n"
    );
    let _ = writeln!(
        o,
        "Made by `{command}` ({:.0} s). Each cell builds the scenario with the real server, asks \
         `interlock status --json` for its prediction, starts the `postgres` binary, and compares the \
         verdict and the exact FATAL message; where the start was blocked or unsafe it then runs \
         `interlock fix --yes`, starts the server again and counts the rows committed before the crash. \
         The JSON beside this file has both sides' words for every cell.\n",
        m.seconds
    );
    let _ = writeln!(
        o,
        "**Totals:** {} agreed, {} disagreed, {} errors, {} not applicable.\n",
        t.agreed, t.disagreed, t.error, t.not_applicable
    );
    let _ = writeln!(
        o,
        "Cells read \"agreed: blocked → fixed\": status said blocked, the server refused with the \
         same FATAL message, fix made it start with every row. \"unsafe\": status said it will \
         start but beside processes of the earlier server (exit 1), and it did start.\n"
    );
    let _ = writeln!(
        o,
        "Not in the table because no registry has them: 10.0–10.8 and 11.0–11.3; their rules are \
         covered by fixture tests (see [Versions not in the registry](#versions-not-in-the-registry)).\n"
    );
    let _ = write!(o, "| scenario |");
    for b in &m.builds {
        let _ = write!(o, " {} |", b.version_label());
    }
    let _ = write!(o, "\n|---|");
    for _ in &m.builds {
        let _ = write!(o, "---|");
    }
    o.push('\n');
    for s in &m.scenarios {
        let _ = write!(o, "| `{}`: {} |", s.name, s.title);
        for b in &m.builds {
            let text = m.cell(&b.name, s.name).map(short).unwrap_or_default();
            let _ = write!(o, " {text} |");
        }
        o.push('\n');
    }

    let bad: Vec<&CellResult> = m
        .cells
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Disagreed | Outcome::Error))
        .collect();
    let _ = writeln!(o, "\n## Disagreements\n");
    if bad.is_empty() {
        let _ = writeln!(o, "None.");
    }
    for c in bad {
        let _ = writeln!(o, "### `{}` on {}\n", c.scenario, c.version);
        if let Some(r) = &c.reason {
            let _ = writeln!(o, "- could not run: {r}");
        }
        for p in &c.problems {
            let _ = writeln!(o, "- {p}");
        }
        o.push('\n');
    }

    // What the server said, per scenario: the words both sides agreed on,
    // grouped by the versions that said them.
    let _ = writeln!(o, "## What the server said\n");
    for s in &m.scenarios {
        let mut said: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in m.cells.iter().filter(|c| c.scenario == s.name) {
            for k in &c.checks {
                let words = match (&k.server.fatal, k.server.started) {
                    (_, true) => format!("{}: started", k.step),
                    (Some(f), false) => format!(
                        "{}: FATAL:  {}",
                        k.step,
                        numbers_out(f).replace('\n', "\\n")
                    ),
                    (None, false) => format!("{}: exited without FATAL", k.step),
                };
                said.entry(words).or_default().push(c.version.clone());
            }
            if !c.notes.is_empty() {
                said.entry(c.notes.join("; "))
                    .or_default()
                    .push(c.version.clone());
            }
        }
        if said.is_empty() {
            continue;
        }
        let _ = writeln!(o, "**`{}`**\n", s.name);
        for (words, versions) in said {
            let _ = writeln!(o, "- {} — {}", versions.join(", "), words);
        }
        o.push('\n');
    }
    o.push_str(UNAVAILABLE);
    o
}

/// `… (key 52012001, ID 5472256) …` → `… (key K, ID I) …`: the words a
/// message has on every version.
fn numbers_out(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find("(key ") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match rest.find(')') {
            Some(j) if rest[..j].contains(", ID ") => {
                out.push_str("(key K, ID I)");
                rest = &rest[j + 1..];
            }
            _ => {
                out.push_str("(key ");
                rest = &rest[5..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl BuildInfo {
    fn version_label(&self) -> String {
        if self.name.starts_with("debian") {
            format!("{} (Debian)", self.version)
        } else {
            self.version.clone()
        }
    }
}

/// The versions the registry does not have, and where their rules are
/// tested instead.
const UNAVAILABLE: &str = "\
## Versions not in the registry

The npm registry's oldest builds are 10.20 and 11.15, so no real server of
the old algorithm (10.0–10.7, 11.0–11.2: the probe loop removes a
PostgreSQL segment whose creator, the PID in its header, is dead, attached
or not, of any data directory) or of
10.8/11.3 can run here. Their rules are covered by a fixture test instead:
`crates/interlock-cli/tests/old_versions.rs` builds each situation with a
real 10.20 and 11.15 server, then asks `interlock status` with stand-in
`postgres` binaries that report 10.7/11.2 and 10.8/11.3, and checks the
prediction the facts sheet derives (§1.4–1.6); the real server's own start
checks the new algorithm's:

- `postmaster.pid` deleted while an orphaned checkpointer is attached:
  10.7/11.2 remove the attached segment and start beside the orphan (status:
  will start, unsafe, exit 1, `orphaned_holders` as danger); 10.8+/11.3+
  refuse with `pre-existing shared memory block (key K, ID I) is still in
  use`, as the real 10.20/11.15 do;
- another data directory's segment on the first key, nobody attached, its
  creator dead: 10.7/11.2 remove it and take its key (status names the key);
  10.8+/11.3+ leave it and take the next key, as the real server does.

The shmat error rules that differ between 10.8/11.3 and 10.9/11.4 (EINVAL
and EIDRM after a successful IPC_STAT: a segment removed between the two
calls) need a race the kernel does not let a test provoke; `status` follows
10.9+ there.
";
