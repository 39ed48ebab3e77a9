//! A minimal owner of a data directory, driven line by line: the real-process
//! tests use it, and it is handy for trying the interlock by hand.
//!
//! ```text
//! holder DATADIR [--fork N] [--exec PROGRAM [ARGS...]] [--standalone] [--no-lock-file] [--ready]
//! ```
//!
//! It acquires DATADIR and prints `ACQUIRED <pid> <key> <shmid>`, then one
//! `CHILD <pid>` per forked child (which just sleeps, attached) and
//! `EXEC <pid> KEEPER <pid>` for the exec'd program. It holds until its
//! standard input closes, then releases and prints `RELEASED <what>`. If the
//! directory cannot be acquired it prints `REFUSED <variant>: <message>` and
//! exits 3.

use std::io::{BufRead, Write};
use std::process::Command;

use interlock::{DataDirLock, Error, LockOptions, PmStatus};

fn variant(e: &Error) -> &'static str {
    match e {
        Error::LockFileHeld { .. } => "LockFileHeld",
        Error::LockFileOwnerUnknown { .. } => "LockFileOwnerUnknown",
        Error::SegmentInUse { .. } => "SegmentInUse",
        Error::SegmentAnalysisFailed { .. } => "SegmentAnalysisFailed",
        Error::LockFileEmpty { .. } => "LockFileEmpty",
        Error::LockFileCorrupt { .. } => "LockFileCorrupt",
        Error::LockFileUnsafe { .. } => "LockFileUnsafe",
        Error::DataDirMissing { .. } => "DataDirMissing",
        Error::DataDirUnusable { .. } => "DataDirUnusable",
        Error::Busy { .. } => "Busy",
        _ => "Other",
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: holder DATADIR [--fork N] [--exec PROGRAM [ARGS...]] [--standalone] [--no-lock-file] [--ready]");
        std::process::exit(2);
    };
    let (mut forks, mut exec, mut opts, mut ready) = (
        0,
        Vec::<String>::new(),
        LockOptions::new().port(5432),
        false,
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fork" => forks = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            "--exec" => exec = args.by_ref().collect(),
            "--standalone" => opts = opts.standalone(true),
            "--no-lock-file" => opts = opts.lock_file(false),
            "--ready" => ready = true,
            other => {
                eprintln!("holder: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let out = std::io::stdout();
    let mut lock = match DataDirLock::acquire_with(&dir, &opts) {
        Ok(lock) => lock,
        Err(e) => {
            println!("REFUSED {}: {e}", variant(&e));
            std::process::exit(3);
        }
    };
    if ready {
        lock.set_status(PmStatus::Ready).expect("set status");
    }
    println!(
        "ACQUIRED {} {} {}",
        std::process::id(),
        lock.key(),
        lock.shmid()
    );
    for _ in 0..forks {
        out.lock().flush().ok();
        // SAFETY: this example is single-threaded, so the child may do
        // anything; it only sleeps and then leaves with _exit.
        match unsafe { interlock::sys::proc::fork() }.expect("fork") {
            None => {
                // Like a backend: attached through fork, sleeping until killed.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Some(pid) => println!("CHILD {pid}"),
        }
    }
    let mut kept = None;
    if let Some((prog, rest)) = exec.split_first() {
        let mut cmd = Command::new(prog);
        cmd.args(rest);
        let child = lock.spawn(&mut cmd).expect("spawn");
        println!("EXEC {} KEEPER {}", child.id(), child.keeper_id());
        kept = Some(child);
    }
    out.lock().flush().ok();
    // Hold until stdin closes.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    let released = lock.release();
    println!("RELEASED {released:?}");
    drop(kept); // the exec'd program keeps running on its own
}
