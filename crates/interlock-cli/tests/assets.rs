//! `interlock --generate-assets DIR` (hidden; `scripts/package` runs it):
//! a man page for the command and for every subcommand `--help` lists, and
//! completions for bash, zsh and fish, all from the clap definitions as
//! they are.

use std::path::Path;
use std::process::Command;

fn interlock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_interlock"))
        .args(args)
        .output()
        .unwrap()
}

/// The subcommands `interlock --help` lists (hidden ones are not listed).
fn listed_subcommands() -> Vec<String> {
    let help = String::from_utf8(interlock(&["--help"]).stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_listed_subcommand_gets_a_man_page_and_completions_for_three_shells() {
    let dir = tempfile::tempdir().unwrap();
    let out = interlock(&["--generate-assets", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let man = dir.path().join("man");

    let subs = listed_subcommands();
    assert!(
        subs.len() >= 5,
        "--help lists too few subcommands: {subs:?}"
    );
    let mut expected: Vec<String> = subs.iter().map(|s| format!("interlock-{s}.1")).collect();
    expected.push("interlock.1".into());
    expected.sort();
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages, expected,
        "one page per listed subcommand, none for hidden ones"
    );

    let top = std::fs::read_to_string(man.join("interlock.1")).unwrap();
    assert!(
        top.starts_with(".ie"),
        "not roff: {}",
        &top[..40.min(top.len())]
    );
    for s in &subs {
        assert!(
            top.contains(&format!("interlock\\-{s}(1)")),
            "interlock.1 names no interlock-{s}(1)"
        );
    }
    let status = std::fs::read_to_string(man.join("interlock-status.1")).unwrap();
    assert!(status.contains("DATADIR"), "{status}");

    let complete = dir.path().join("complete");
    for (file, marker) in [
        ("interlock.bash", "complete -F _interlock"),
        ("_interlock", "#compdef interlock"),
        ("interlock.fish", "complete -c interlock"),
    ] {
        let text = std::fs::read_to_string(complete.join(file)).unwrap();
        assert!(text.contains(marker), "{file} lacks {marker:?}");
        for s in &subs {
            assert!(text.contains(s.as_str()), "{file} does not complete {s}");
        }
        assert!(
            !text.contains("demo-server"),
            "{file} completes a hidden subcommand"
        );
    }
    assert!(!Path::new(&man.join("interlock-demo-server.1")).exists());
}

#[test]
fn a_page_of_a_subcommand_since_removed_does_not_linger() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    std::fs::create_dir_all(&man).unwrap();
    std::fs::write(man.join("interlock-gone.1"), "old").unwrap();
    std::fs::write(man.join("other.1"), "not ours").unwrap();
    let out = interlock(&["--generate-assets", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(!man.join("interlock-gone.1").exists());
    assert!(
        man.join("other.1").exists(),
        "only interlock's pages are replaced"
    );
}
