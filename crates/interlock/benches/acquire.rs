//! Acquire + release round trip of the interlock against the bare minimum a
//! pid file costs: `open(O_CREAT|O_EXCL)`, write, `fsync`, close, unlink.
//!
//! ```text
//! cargo bench -p interlock --bench acquire [-- ROUNDS]
//! INTERLOCK_BENCH_DIR=/path/on/the/data/disk cargo bench -p interlock --bench acquire
//! ```
//!
//! Both run in the same process, on the same file system, interleaved in
//! blocks so that disk and cache state affect them alike. The directory
//! defaults to one under `target/` (a real disk, where fsync costs what it
//! costs a data directory); point INTERLOCK_BENCH_DIR at tmpfs to see the
//! pure system-call overhead instead. Prints median and mean per round trip
//! and the ratio of medians.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interlock::{DataDirLock, LockOptions};

fn bare_pidfile(dir: &Path) {
    let p = dir.join("bare.pid");
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .expect("create");
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
        .expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    std::fs::remove_file(&p).expect("unlink");
}

fn interlock_round_trip(dir: &Path, opts: &LockOptions) {
    let lock = DataDirLock::acquire_with(dir, opts).expect("acquire");
    drop(lock);
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let median = v[v.len() / 2].as_secs_f64() * 1e6;
    let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64 * 1e6;
    (median, mean)
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let base = std::env::var_os("INTERLOCK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-tmp")
        });
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("tempdir");
    let opts = LockOptions::new().port(5432);
    // Warm up both paths.
    for _ in 0..50 {
        bare_pidfile(dir.path());
        interlock_round_trip(dir.path(), &opts);
    }
    let (mut bare, mut ours) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let block = 50;
    while bare.len() < rounds {
        for _ in 0..block {
            let t = Instant::now();
            bare_pidfile(dir.path());
            bare.push(t.elapsed());
        }
        for _ in 0..block {
            let t = Instant::now();
            interlock_round_trip(dir.path(), &opts);
            ours.push(t.elapsed());
        }
    }
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir.path())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let (bm, bmean) = stats(bare);
    let (im, imean) = stats(ours);
    println!(
        "directory: {} ({fs}), {rounds} round trips each",
        dir.path().display()
    );
    println!(
        "bare pid file  (O_EXCL create + fsync + unlink): median {bm:9.1} us  mean {bmean:9.1} us"
    );
    println!(
        "interlock      (acquire + release)             : median {im:9.1} us  mean {imean:9.1} us"
    );
    println!(
        "ratio interlock / bare pid file (medians): {:.2}x  (goal: at most 3x)",
        im / bm
    );
}
