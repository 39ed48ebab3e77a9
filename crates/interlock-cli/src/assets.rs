//! `interlock --generate-assets DIR` (hidden): the man pages and the shell
//! completions, generated from the clap definitions as they are, so every
//! subcommand that exists gets its page and its completions.
//!
//! ```text
//! DIR/man/interlock.1, interlock-status.1, … (one per visible subcommand)
//! DIR/complete/interlock.bash, _interlock, interlock.fish
//! ```
//!
//! `scripts/package` runs it into `target/assets` before `cargo deb`.

use std::fs;
use std::io;
use std::path::Path;

use clap::{Command, CommandFactory};
use clap_complete::Shell;

/// Writes every asset under `dir`; prints each path written.
pub(crate) fn run<A: CommandFactory>(dir: &Path) -> u8 {
    match generate::<A>(dir) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            0
        }
        Err(e) => {
            eprintln!(
                "interlock: cannot write the assets under {}: {e}",
                dir.display()
            );
            1
        }
    }
}

fn generate<A: CommandFactory>(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let man = dir.join("man");
    let complete = dir.join("complete");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&complete)?;
    // A page of a subcommand since removed must not linger in the package.
    for e in fs::read_dir(&man)? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("interlock") && name.ends_with(".1") {
            fs::remove_file(&path)?;
        }
    }
    // One page for the command and one per visible subcommand
    // (interlock-status.1, …); hidden ones (demo-server) get none.
    clap_mangen::generate_to(A::command(), &man)?;
    let mut written: Vec<_> = fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    written.sort();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = visible(&A::command());
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "interlock",
            &complete,
        )?);
    }
    Ok(written)
}

/// `cmd` without what `--help` hides (`--root`, `--generate-assets`,
/// `demo-server`, …): clap_complete completes hidden arguments and
/// subcommands, clap_mangen does not. Names, help and values are what
/// completions use; groups are left out (they may name a hidden argument).
fn visible(cmd: &Command) -> Command {
    let mut out = Command::new(cmd.get_name().to_owned())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        );
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_owned());
    }
    out
}
