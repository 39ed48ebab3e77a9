//! Monitoring outputs: `--format nagios` read as a plugin runner reads it
//! (status line, perfdata grammar, exit code), and `--prometheus-textfile`
//! read by a strict parser of the text exposition format, and by `promtool
//! check metrics` where it is installed (Debian's `prometheus` package);
//! against a real PostgreSQL running, stopped cleanly and crashed with an
//! orphan, and against fixture directories for the unknown cases.

// Processes a test spawns are killed by its `Cleanup` guard, also on panic.
#![allow(clippy::zombie_processes)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

// ------------------------------------------------------------------ Nagios

/// One perfdata item.
#[derive(Debug, Clone)]
struct Perf {
    label: String,
    value: f64,
    uom: String,
    warn: String,
    crit: String,
}

/// What a plugin runner takes from a plugin's output.
#[derive(Debug)]
struct Plugin {
    code: i32,
    state: String,
    text: String,
    perf: Vec<Perf>,
    long: Vec<String>,
}

impl Plugin {
    fn perf(&self, label: &str) -> &Perf {
        self.perf
            .iter()
            .find(|p| p.label == label)
            .unwrap_or_else(|| panic!("no perfdata {label:?} in {self:#?}"))
    }
    fn value(&self, label: &str) -> f64 {
        self.perf(label).value
    }
}

/// A number as perfdata writes one.
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// A threshold range: `[@][start:][end]`, start possibly `~`.
fn is_range(s: &str) -> bool {
    let s = s.strip_prefix('@').unwrap_or(s);
    if s.is_empty() {
        return false;
    }
    match s.split_once(':') {
        None => is_number(s),
        Some((start, end)) => {
            (start.is_empty() || start == "~" || is_number(start))
                && (end.is_empty() || is_number(end))
        }
    }
}

/// Perfdata per the plugin guidelines: space-separated
/// `'label'=value[UOM];[warn];[crit];[min];[max]`, the label quoted when it
/// holds spaces (a quote in it doubled), no `=` in a label.
fn parse_perfdata(s: &str) -> Vec<Perf> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (label, after) = if let Some(q) = rest.strip_prefix('\'') {
            let mut label = String::new();
            let mut chars = q.char_indices().peekable();
            let end = loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed label in {s:?}"));
                if c == '\'' {
                    if chars.peek().map(|p| p.1) == Some('\'') {
                        chars.next();
                        label.push('\'');
                    } else {
                        break i + 1;
                    }
                } else {
                    label.push(c);
                }
            };
            (label, &q[end..])
        } else {
            let i = rest.find('=').unwrap_or_else(|| panic!("no = in {rest:?}"));
            let label = &rest[..i];
            assert!(
                !label.contains(' ') && !label.contains('\''),
                "unquoted label {label:?} in {s:?}"
            );
            (label.to_string(), &rest[i..])
        };
        assert!(!label.is_empty() && !label.contains('='), "label {label:?}");
        let after = after
            .strip_prefix('=')
            .unwrap_or_else(|| panic!("no = after label {label:?} in {s:?}"));
        let end = after.find(' ').unwrap_or(after.len());
        let item = &after[..end];
        rest = after[end..].trim_start();
        let fields: Vec<&str> = item.split(';').collect();
        assert!(fields.len() <= 5, "too many fields in {item:?}");
        let v = fields[0];
        let num_end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(v.len());
        let (num, uom) = v.split_at(num_end);
        assert!(is_number(num), "value {num:?} in {item:?}");
        assert!(
            ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom),
            "unit {uom:?} in {item:?}"
        );
        let field = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
        for i in [1, 2] {
            assert!(
                field(i).is_empty() || is_range(&field(i)),
                "threshold in {item:?}"
            );
        }
        for i in [3, 4] {
            assert!(
                field(i).is_empty() || is_number(&field(i)),
                "min/max in {item:?}"
            );
        }
        out.push(Perf {
            label,
            value: num.parse().unwrap(),
            uom: uom.to_string(),
            warn: field(1),
            crit: field(2),
        });
    }
    let labels: BTreeSet<&str> = out.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels.len(), out.len(), "a label twice in {s:?}");
    out
}

/// Run `interlock ARGS` as a plugin runner would, and read its output:
/// `SERVICE STATE - text | perfdata` on the first line, long output after,
/// the exit code the one of the state.
fn plugin(args: &[&str], dir: Option<&Path>) -> Plugin {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    if let Some(d) = dir {
        cmd.arg(d);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (status, perfdata) = match first.split_once(" | ") {
        Some((s, p)) => (s, p),
        None => (first, ""),
    };
    assert!(!status.contains('|'), "a | in the status text: {first:?}");
    let (head, text) = status
        .split_once(" - ")
        .unwrap_or_else(|| panic!("no ' - ' in {first:?}"));
    let (service, state) = head.split_once(' ').unwrap();
    assert_eq!(service, "INTERLOCK");
    let code = match state {
        "OK" => 0,
        "WARNING" => 1,
        "CRITICAL" => 2,
        "UNKNOWN" => 3,
        other => panic!("state {other:?} in {first:?}"),
    };
    assert_eq!(out.status.code(), Some(code), "{stdout}");
    let long: Vec<String> = lines.map(str::to_string).collect();
    for l in &long {
        assert!(!l.contains('|'), "long output with a |: {l:?}");
    }
    Plugin {
        code,
        state: state.to_string(),
        text: text.to_string(),
        perf: parse_perfdata(perfdata),
        long,
    }
}

/// The perfdata every `status` line carries.
fn has_status_perfdata(p: &Plugin) {
    for l in ["holders", "orphans", "leaked_segments", "leaked_dsm_bytes"] {
        p.perf(l);
    }
    assert_eq!(p.perf("leaked_dsm_bytes").uom, "B");
    assert_eq!(p.perf("orphans").crit, "0");
    assert_eq!(p.perf("leaked_segments").warn, "0");
}

// -------------------------------------------------------------- Prometheus

/// One sample: metric name and labels (sorted), value.
type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.starts_with("__")
}

/// A strict reader of the text exposition format as interlock writes it:
/// names and label names valid, label values quoted with only `\\`, `\"`
/// and `\n` escaped, HELP and TYPE (gauge) once per family and before its
/// samples, a family's samples together, no series twice, a final newline.
fn parse_exposition(text: &str) -> Series {
    assert!(text.ends_with('\n'), "no final newline");
    let mut series = Series::new();
    let mut help = BTreeSet::new();
    let mut typed = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP text");
            assert!(is_metric_name(name), "{line:?}");
            assert!(!doc.is_empty(), "{line:?}");
            assert!(help.insert(name.to_string()), "HELP twice: {line:?}");
            assert!(!done.contains(name), "HELP after samples: {line:?}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE kind");
            assert!(is_metric_name(name), "{line:?}");
            assert_eq!(kind, "gauge", "{line:?}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line:?}");
            assert!(!done.contains(name), "TYPE after samples: {line:?}");
            continue;
        }
        assert!(!line.starts_with('#'), "other comment {line:?}");
        assert!(!line.is_empty(), "empty line");
        let name_end = line.find(['{', ' ']).expect("a value");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "{line:?}");
        assert!(name.starts_with("interlock_"), "{line:?}");
        assert!(
            typed.contains(name) && help.contains(name),
            "no HELP/TYPE before {line:?}"
        );
        if current.as_deref() != Some(name) {
            assert!(done.insert(name.to_string()), "family {name} not together");
            current = Some(name.to_string());
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices();
            let mut key = String::new();
            loop {
                let (i, c) = chars.next().expect("unclosed {");
                match c {
                    '}' if key.is_empty() => {
                        rest = &r[i + 1..];
                        break;
                    }
                    '=' => {
                        assert!(is_label_name(&key), "label name {key:?} in {line:?}");
                        assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("unclosed label value").1 {
                                '\\' => match chars.next().expect("escape").1 {
                                    '\\' => value.push('\\'),
                                    '"' => value.push('"'),
                                    'n' => value.push('\n'),
                                    e => panic!("escape \\{e} in {line:?}"),
                                },
                                '"' => break,
                                '\n' => panic!("raw newline"),
                                c => value.push(c),
                            }
                        }
                        assert!(
                            labels.iter().all(|(k, _): &(String, String)| *k != key),
                            "label {key} twice in {line:?}"
                        );
                        labels.push((std::mem::take(&mut key), value));
                        match chars.next().expect("after a label").1 {
                            ',' => {}
                            '}' => {
                                rest = chars.as_str();
                                break;
                            }
                            c => panic!("{c:?} after a label in {line:?}"),
                        }
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line:?}"));
        let mut fields = value.split(' ');
        let v = fields.next().unwrap();
        let v: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().expect("timestamp");
        }
        assert!(fields.next().is_none(), "{line:?}");
        labels.sort();
        let key = (name.to_string(), labels);
        assert!(!series.contains_key(&key), "series twice: {line:?}");
        series.insert(key, v);
    }
    assert_eq!(help, typed, "HELP and TYPE for the same families");
    series
}

/// promtool: `INTERLOCK_PROMTOOL`, else on PATH, else the one
/// `scripts/test` unpacks from Debian's `prometheus` package into
/// `.cache/promtool` (no daemon installed).
fn promtool() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("INTERLOCK_PROMTOOL") {
        return p.into();
    }
    let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/promtool/promtool");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    on_path.unwrap_or(cached)
}

/// `promtool check metrics` on `text`, where promtool is installed (the
/// parser above checks the rest everywhere).
fn promtool_check(text: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not found (scripts/test unpacks it into .cache/promtool): parser only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of `name{data_dir=dir, extra…}`.
fn sample(s: &Series, name: &str, dir: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("data_dir".to_string(), dir.to_string())];
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    labels.sort();
    s.get(&(name.to_string(), labels)).copied()
}

/// The verdict a file says, from its one-hot series (exactly one is 1).
fn verdict(s: &Series, dir: &str) -> String {
    let on: Vec<&str> = ["running", "will_start", "blocked", "unknown"]
        .into_iter()
        .filter(|v| sample(s, "interlock_verdict", dir, &[("verdict", v)]) == Some(1.0))
        .collect();
    assert_eq!(on.len(), 1, "{s:#?}");
    on[0].to_string()
}

/// The blocked_reason codes of `dir`.
fn reasons(s: &Series, dir: &str) -> Vec<String> {
    s.iter()
        .filter(|((n, l), _)| {
            n == "interlock_blocked_reason" && l.iter().any(|(k, v)| k == "data_dir" && v == dir)
        })
        .map(|((_, l), v)| {
            assert_eq!(*v, 1.0);
            l.iter().find(|(k, _)| k == "code").unwrap().1.clone()
        })
        .collect()
}

/// Run `interlock ARGS --prometheus-textfile DIR`, then check DIR holds
/// just the `expected` file, complete, mode 0644, no temporary file left;
/// its series (checked by the parser and promtool).
fn textfile(args: &[&str], data: &Path, out: &Path, expected: &str) -> Series {
    let before = std::fs::metadata(out.join(expected)).ok().map(|m| m.ino());
    let st = Command::new(bin())
        .args(args)
        .arg("--prometheus-textfile")
        .arg(out)
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.code().is_some_and(|c| c <= 3), "{st:?}");
    let names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [expected], "only the file, no temporary one");
    let path = out.join(expected);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    if let Some(ino) = before {
        assert_ne!(
            meta.ino(),
            ino,
            "replaced by a rename, not rewritten in place"
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    promtool_check(&text);
    parse_exposition(&text)
}

/// The file name `status` writes for `dir`.
fn status_file(dir: &Path) -> String {
    let mut s = String::from("interlock-");
    let p = dir.display().to_string();
    for (i, b) in p.trim_start_matches('/').bytes().enumerate() {
        match b {
            b'/' => s.push('-'),
            b'.' if i == 0 => s.push_str("%2e"),
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' => s.push(b as char),
            b => s += &format!("%{b:02x}"),
        }
    }
    s + ".prom"
}

// ------------------------------------------------------------------- tests

#[test]
fn a_real_cluster_stopped_running_and_crashed_with_an_orphan() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let dir = t.data.display().to_string();
    let prom = tempfile::tempdir().unwrap();
    let scan_prom = tempfile::tempdir().unwrap();
    let file = status_file(&t.data);

    // Stopped cleanly: OK.
    let p = plugin(&["status", "--format", "nagios"], Some(&t.data));
    assert_eq!(p.state, "OK", "{p:#?}");
    assert_eq!(p.code, 0);
    assert_eq!(p.text, format!("{dir}: would start safely"));
    has_status_perfdata(&p);
    assert_eq!(p.value("holders"), 0.0);
    assert_eq!(p.value("orphans"), 0.0);
    let s = textfile(&["status"], &t.data, prom.path(), &file);
    assert_eq!(verdict(&s, &dir), "will_start");
    assert_eq!(sample(&s, "interlock_would_start", &dir, &[]), Some(1.0));
    assert!(reasons(&s, &dir).is_empty());

    // Running: OK, with the postmaster's PID.
    let _child = start(&bindir, &t.data, &mut c);
    let pm = postmaster_pid(&t.data).unwrap();
    let p = plugin(&["status", "--format", "nagios"], Some(&t.data));
    assert_eq!(p.state, "OK", "{p:#?}");
    assert_eq!(p.text, format!("{dir}: running (PID {pm})"));
    has_status_perfdata(&p);
    let holders = p.value("holders");
    assert!(holders >= 2.0, "{p:#?}");
    assert_eq!(p.value("orphans"), 0.0);
    let s = textfile(&["status"], &t.data, prom.path(), &file);
    assert_eq!(verdict(&s, &dir), "running");
    assert_eq!(sample(&s, "interlock_would_start", &dir, &[]), Some(1.0));
    assert_eq!(
        sample(&s, "interlock_orphaned_holders", &dir, &[]),
        Some(0.0)
    );
    assert!(sample(&s, "interlock_holders", &dir, &[]).unwrap() >= 2.0);

    // Crashed, the checkpointer stopped and still attached: CRITICAL.
    let checkpointer = kill_leaving_stopped_checkpointer(&t.data, &mut c);
    wait_until("one holder left", || {
        status(&t.data)["holders"].as_array().unwrap().len() == 1
    });
    let p = plugin(&["status", "--format", "nagios"], Some(&t.data));
    assert_eq!(p.state, "CRITICAL", "{p:#?}");
    assert_eq!(p.code, 2);
    assert!(
        p.text.starts_with(&format!(
            "{dir}: blocked: FATAL:  pre-existing shared memory block"
        )),
        "{p:#?}"
    );
    assert!(p.text.contains("(orphaned_holders: "), "{p:#?}");
    assert!(p.text.contains(&checkpointer.to_string()), "{p:#?}");
    has_status_perfdata(&p);
    assert_eq!(p.value("holders"), 1.0);
    assert_eq!(p.value("orphans"), 1.0);
    assert!(
        p.long.iter().any(|l| l.starts_with("orphaned_holders: ")),
        "{p:#?}"
    );
    let s = textfile(&["status"], &t.data, prom.path(), &file);
    assert_eq!(verdict(&s, &dir), "blocked");
    assert_eq!(sample(&s, "interlock_would_start", &dir, &[]), Some(0.0));
    assert_eq!(reasons(&s, &dir), ["orphaned_holders"]);
    assert_eq!(
        sample(&s, "interlock_orphaned_holders", &dir, &[]),
        Some(1.0)
    );
    assert_eq!(sample(&s, "interlock_holders", &dir, &[]), Some(1.0));

    // The host: CRITICAL because of it; one long-output line for it.
    let p = plugin(&["scan", "--format", "nagios"], Some(&t.data));
    assert_eq!(p.state, "CRITICAL", "{p:#?}");
    assert!(p.value("blocked") >= 1.0);
    assert!(p.value("orphans") >= 1.0);
    assert!(p.value("data_dirs") >= 1.0);
    assert_eq!(p.value(&format!("would_start {dir}")), 0.0);
    assert_eq!(p.perf(&format!("would_start {dir}")).crit, "1:");
    let line = p
        .long
        .iter()
        .find(|l| l.starts_with(&format!("CRITICAL {dir}: blocked: FATAL:  ")))
        .unwrap_or_else(|| panic!("no line for {dir}: {p:#?}"));
    assert!(line.contains("orphaned_holders"), "{line}");
    assert_eq!(
        p.long.iter().filter(|l| !l.starts_with("host ")).count() as f64,
        p.value("data_dirs"),
        "one line per directory"
    );
    let s = textfile(&["scan"], &t.data, scan_prom.path(), "interlock.prom");
    assert_eq!(verdict(&s, &dir), "blocked");
    assert_eq!(reasons(&s, &dir), ["orphaned_holders"]);
    for host in [
        "interlock_data_directories",
        "interlock_shm_segments_free",
        "interlock_shmall_pages_free",
        "interlock_dev_shm_free_bytes",
        "interlock_host_leaked_dsm_bytes",
    ] {
        assert!(
            s.contains_key(&(host.to_string(), Vec::new())),
            "no {host}: {s:#?}"
        );
    }
    assert!(sample(&s, "interlock_scrape_timestamp_seconds", &dir, &[]).unwrap() > 1.7e9);
}

#[test]
fn errors_are_unknown_with_exit_3() {
    let missing = Path::new("/nonexistent/interlock-monitoring");
    for cmd in ["status", "scan"] {
        let p = plugin(&[cmd, "--format", "nagios"], Some(missing));
        assert_eq!(p.state, "UNKNOWN", "{p:#?}");
        assert_eq!(p.code, 3);
        assert!(
            p.text.contains("/nonexistent/interlock-monitoring"),
            "{p:#?}"
        );
    }
    // Argument errors of the mode too (clap's own exit is 2, CRITICAL).
    let d = fake_cluster();
    let p = plugin(
        &["status", "--format", "nagios", "--port", "x"],
        Some(d.path()),
    );
    assert_eq!(p.state, "UNKNOWN", "{p:#?}");
    assert!(p.text.contains("--port"), "{p:#?}");
    let p = plugin(&["scan", "--format=nagios", "--no-such-option"], None);
    assert_eq!(p.state, "UNKNOWN", "{p:#?}");
    // Without the mode, clap's exit codes and --json as it was.
    let (code, _, _) = run(&["status", "--port", "x"], d.path());
    assert_eq!(code, Some(2));
    let (code, out, _) = run(&["status", "--json"], d.path());
    assert_eq!(code, Some(0));
    assert!(out.starts_with('{'));
    let (code, out2, _) = run(&["status", "--format", "json"], d.path());
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), out2.lines().count());
}

#[test]
fn an_unreadable_lock_file_is_unknown_in_both_outputs() {
    // A FIFO for postmaster.pid: no file the server wrote; interlock will
    // not read it, so whether the server would start cannot be told.
    let d = fake_cluster();
    let dir = d.path().display().to_string();
    let st = Command::new("mkfifo")
        .arg(d.path().join("postmaster.pid"))
        .status()
        .unwrap();
    assert!(st.success());
    let p = plugin(&["status", "--format", "nagios"], Some(d.path()));
    assert_eq!(p.state, "UNKNOWN", "{p:#?}");
    assert!(
        p.text
            .starts_with(&format!("{dir}: cannot be told (lock_file_corrupt: ")),
        "{p:#?}"
    );
    has_status_perfdata(&p);
    let prom = tempfile::tempdir().unwrap();
    let s = textfile(&["status"], d.path(), prom.path(), &status_file(d.path()));
    assert_eq!(verdict(&s, &dir), "unknown");
    assert_eq!(sample(&s, "interlock_would_start", &dir, &[]), Some(0.0));
    assert_eq!(reasons(&s, &dir), ["lock_file_corrupt"]);
}

#[test]
fn odd_paths_stay_one_line_and_one_label() {
    // A data directory whose name holds a quote, a backslash, a newline, a
    // pipe and a space.
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("we\"ird\\ |dir\nx");
    let src = fake_cluster();
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(data.join("global")).unwrap();
    for f in ["PG_VERSION", "global/pg_control"] {
        std::fs::copy(src.path().join(f), data.join(f)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = data.display().to_string();

    let p = plugin(&["status", "--format", "nagios"], Some(&data));
    assert_eq!(p.state, "OK", "{p:#?}");
    assert!(p.long.is_empty(), "{p:#?}");
    // The newline written `\n`, the pipe that would start perfdata as `¦`.
    assert!(p.text.contains(r#"we"ird\ ¦dir\nx"#), "{p:#?}");
    let prom = tempfile::tempdir().unwrap();
    let name = status_file(&data);
    assert!(
        name.bytes().all(|b| b.is_ascii_graphic()) && !name.contains('/'),
        "{name:?}"
    );
    let s = textfile(&["status"], &data, prom.path(), &name);
    assert_eq!(sample(&s, "interlock_would_start", &dir, &[]), Some(1.0));
    // Written again: replaced whole.
    let s = textfile(&["status"], &data, prom.path(), &name);
    assert_eq!(verdict(&s, &dir), "will_start");
}

#[test]
fn a_textfile_that_cannot_be_written_is_said() {
    let d = fake_cluster();
    let missing = d.path().join("no-such-dir");
    let out = Command::new(bin())
        .args(["status", "--prometheus-textfile"])
        .arg(&missing)
        .arg(d.path())
        .output()
        .unwrap();
    // The report still, then the error; unknown.
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("WILL START"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
    let p = {
        let out = Command::new(bin())
            .args(["status", "--format", "nagios", "--prometheus-textfile"])
            .arg(&missing)
            .arg(d.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(p.0, Some(3));
    assert!(
        p.1.starts_with("INTERLOCK UNKNOWN - cannot write "),
        "{}",
        p.1
    );
}

// The readers above refuse what a plugin runner or Prometheus would.

#[test]
fn the_readers_accept_the_grammar() {
    let p = parse_perfdata("a=1;;0;0 'b c''d'=2.5B;0;1:;0;10 e=-1c");
    assert_eq!(p[1].label, "b c'd");
    assert_eq!(p[1].uom, "B");
    assert_eq!(p[2].value, -1.0);
    let s = parse_exposition(
        "# HELP interlock_x X.\n# TYPE interlock_x gauge\ninterlock_x{a=\"q\\\"\\\\\\n\",b=\"\"} 1\ninterlock_x 2\n",
    );
    assert_eq!(s.len(), 2);
    assert!(s.contains_key(&(
        "interlock_x".to_string(),
        vec![("a".into(), "q\"\\\n".into()), ("b".into(), String::new())]
    )));
}

#[test]
#[should_panic(expected = "unquoted label")]
fn perfdata_with_a_space_unquoted_is_refused() {
    parse_perfdata("a b=1");
}

#[test]
#[should_panic(expected = "unit")]
fn perfdata_with_an_unknown_unit_is_refused() {
    parse_perfdata("a=1bytes");
}

#[test]
#[should_panic(expected = "series twice")]
fn a_series_twice_is_refused() {
    parse_exposition("# HELP interlock_x X.\n# TYPE interlock_x gauge\ninterlock_x{a=\"1\"} 1\ninterlock_x{a=\"1\"} 2\n");
}

#[test]
#[should_panic(expected = "no HELP/TYPE")]
fn a_sample_before_its_type_is_refused() {
    parse_exposition("interlock_x 1\n# HELP interlock_x X.\n# TYPE interlock_x gauge\n");
}

#[test]
#[should_panic(expected = "escape")]
fn an_unknown_escape_is_refused() {
    parse_exposition("# HELP interlock_x X.\n# TYPE interlock_x gauge\ninterlock_x{a=\"\\t\"} 1\n");
}

#[test]
#[should_panic(expected = "not together")]
fn a_family_split_is_refused() {
    parse_exposition("# HELP interlock_x X.\n# TYPE interlock_x gauge\n# HELP interlock_y Y.\n# TYPE interlock_y gauge\ninterlock_x 1\ninterlock_y 1\ninterlock_x{a=\"b\"} 1\n");
}
