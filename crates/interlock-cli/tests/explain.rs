//! `interlock explain` on the fixture logs (tests/fixtures/logs, sources
//! in SOURCES.md) and on bad input.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::bin;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name)
}

fn explain_file(name: &str) -> (i32, Value) {
    let out = Command::new(bin())
        .args(["explain", "--json"])
        .arg(fixture(name))
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

/// (code, errno) of each failure, in order.
fn codes(v: &Value) -> Vec<(String, Option<String>)> {
    v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["errno"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn c(code: &str, errno: Option<&str>) -> (String, Option<String>) {
    (code.to_string(), errno.map(str::to_string))
}

/// A fixture and the (code, errno) pairs it must give.
type Case = (
    &'static str,
    &'static [(&'static str, Option<&'static str>)],
);

#[test]
fn each_fixture_gets_its_stable_code() {
    let cases: &[Case] = &[
        (
            "case_study.log",
            &[("segment_in_use", None), ("lock_file_exists", None)],
        ),
        (
            "pg_ctl_case_study.log",
            &[("segment_in_use", None), ("lock_file_exists", None)],
        ),
        ("shmget_einval.log", &[("shmget_failed", Some("EINVAL"))]),
        ("shmget_enomem.log", &[("shmget_failed", Some("ENOMEM"))]),
        ("shmget_enospc.log", &[("shmget_failed", Some("ENOSPC"))]),
        ("shmget_eacces.log", &[("shmget_failed", Some("EACCES"))]),
        (
            "semget_enospc.log",
            &[("semaphores_exhausted", Some("ENOSPC"))],
        ),
        (
            "removeipc.log",
            &[
                ("dsm_segment_missing", Some("ENOENT")),
                ("dsm_segment_missing", Some("ENOENT")),
            ],
        ),
        ("dev_shm_full.log", &[("dev_shm_full", Some("ENOSPC"))]),
        (
            "huge_pages.log",
            &[
                ("huge_pages_unavailable", Some("ENOMEM")),
                ("huge_pages_unavailable", None),
            ],
        ),
        (
            "oom.log",
            &[("process_killed", None), ("process_killed", None)],
        ),
        ("removed_lock_file.log", &[("lock_file_removed", None)]),
        (
            "misc_startup.log",
            &[
                ("data_dir_unusable", None),
                ("incompatible_version", None),
                ("port_in_use", Some("EADDRINUSE")),
                ("lock_file_create_failed", Some("ENOENT")),
                ("control_file_invalid", None),
                ("run_as_root", None),
            ],
        ),
    ];
    for (file, want) in cases {
        let (code, v) = explain_file(file);
        let want: Vec<_> = want.iter().map(|(c_, e)| c(c_, *e)).collect();
        assert_eq!(codes(&v), want, "{file}");
        assert_eq!(code, 1, "{file}");
        for f in v["failures"].as_array().unwrap() {
            assert!(!f["meaning"].as_str().unwrap().is_empty(), "{file}");
            assert!(!f["fix"].as_array().unwrap().is_empty(), "{file}: {f}");
        }
    }
}

#[test]
fn values_are_taken_from_the_messages() {
    let (_, v) = explain_file("case_study.log");
    let seg = &v["failures"][0];
    assert_eq!(seg["key"], 2048);
    assert_eq!(seg["shmid"], 1_328_250_881u64);
    assert_eq!(seg["data_dir"], "/data");
    assert_eq!(seg["lines"], serde_json::json!([1, 4]));
    assert_eq!(v["failures"][1]["pid"], 794_791);

    let (_, v) = explain_file("shmget_einval.log");
    let f = &v["failures"][0];
    assert_eq!(
        (f["key"].as_u64(), f["size"].as_u64()),
        (Some(5_440_001), Some(4_011_376_640))
    );
    assert!(f["fix"][0]
        .as_str()
        .unwrap()
        .starts_with("sysctl -w kernel.shmmax=4294967296"));
    // The tab-continued second line of the HINT is kept.
    assert!(f["logged"]
        .as_str()
        .unwrap()
        .contains("\nThe PostgreSQL documentation"));

    let (_, v) = explain_file("huge_pages.log");
    assert_eq!(v["failures"][0]["informational"], true);
    assert_eq!(v["failures"][0]["size"], 150_994_944);

    let (_, v) = explain_file("oom.log");
    assert_eq!(v["failures"][0]["signal"], 9);
    assert!(v["failures"][0]["meaning"]
        .as_str()
        .unwrap()
        .contains("OOM killer"));
    assert_eq!(v["failures"][1]["signal"], 7);

    let (_, v) = explain_file("misc_startup.log");
    assert_eq!(v["failures"][0]["data_dir"], "/srv/pg/data");
    assert_eq!(v["failures"][2]["port"], 5432);
}

#[test]
fn the_human_report_quotes_and_explains() {
    let out = Command::new(bin())
        .arg("explain")
        .arg(fixture("pg_ctl_case_study.log"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 failures in 10 lines"), "{text}");
    assert!(text.contains("segment_in_use  line 1"), "{text}");
    assert!(
        text.contains(
            "FATAL:  pre-existing shared memory block (key 4096, ID 143917076) is still in use"
        ),
        "{text}"
    );
    assert!(text.contains("fix:   interlock fix /data"), "{text}");
}

fn explain_stdin(input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_a_clear_error_and_nothing_panics() {
    // All binary: exit 2, said so.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, out, err) = explain_stdin(&junk);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("standard input: not a text log"), "{err}");
    assert!(!err.contains("panicked"));

    // Issue 12, item 12: random bytes (some lines happen to be valid
    // UTF-8) and NUL bytes are both "not a text log", exit 2; text with
    // nothing recognised is a log without failures, exit 0.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..3000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for (what, input) in [("random", random), ("NULs", vec![0u8; 3000])] {
        let (code, out, err) = explain_stdin(&input);
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(
            err.contains("standard input: not a text log"),
            "{what}: {err}"
        );
    }
    let (code, out, _) = explain_stdin(b"hello\nnothing to see here\n");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no startup or IPC failure recognised"),
        "{out}"
    );

    // Junk inside a real log: skipped, counted, the failure still found.
    let mut mixed = std::fs::read(fixture("case_study.log")).unwrap();
    mixed.splice(0..0, b"\x00\x01\xff\xfe garbage\n".iter().copied());
    let (code, out, _) = explain_stdin(&mixed);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("1 line is not text and skipped (line 1)"),
        "{out}"
    );
    assert!(out.contains("segment_in_use  line 2"), "{out}");

    // csvlog: not read, said why.
    let out = Command::new(bin())
        .arg("explain")
        .arg(fixture("csvlog.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 is csvlog output"));

    // A log with nothing wrong: exit 0.
    let (code, out, _) = explain_stdin(
        b"2026-11-20 03:14:07 UTC [1] LOG:  database system is ready to accept connections\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no startup or IPC failure recognised"));

    // A missing file: exit 2, named.
    let out = Command::new(bin())
        .args(["explain", "/nonexistent/postgresql.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/postgresql.log: No such file")
    );
}
