//! A small multi-process server on the interlock: it forks two workers and
//! execs a third, as a PostgreSQL postmaster forks backends.
//!
//! ```text
//! cargo run -p interlock --example server -- demo        # the whole story in a temp dir
//! cargo run -p interlock --example server -- serve DIR   # just serve (Ctrl-C or SIGTERM to stop)
//! ```
//!
//! `demo` starts `serve` on a fresh directory, kills the server with
//! SIGKILL while its workers live, shows that the directory is refused (and
//! who still holds it), stops the workers, and shows the clean restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use interlock::sys::signal::SignalFd;
use interlock::{DataDirLock, Error, LockOptions, PmStatus};

fn serve(dir: &str) -> Result<(), Error> {
    let mut lock = DataDirLock::acquire_with(dir, &LockOptions::new().port(5999))?;
    let mut workers = Vec::new();
    for n in 1..=2 {
        // SAFETY: single-threaded here, so the child may do anything; it
        // sleeps like an idle backend, attached, until it is killed.
        match unsafe { interlock::sys::proc::fork() }.expect("fork") {
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
                let _ = n;
            },
            Some(pid) => workers.push(pid),
        }
    }
    // Any program can be a worker: exec drops the SysV attachment, so the
    // library keeps it covered with a keeper process.
    let exec_worker = lock
        .spawn(Command::new("sleep").arg("3600"))
        .expect("spawn sleep");
    // Watch SIGINT/SIGTERM only now, so the workers do not inherit the block.
    let signals = SignalFd::for_forwarding().expect("signalfd");
    lock.set_status(PmStatus::Ready)?;
    println!(
        "READY {} forked {} {} exec {} keeper {} key {} shmid {}",
        std::process::id(),
        workers[0],
        workers[1],
        exec_worker.id(),
        exec_worker.keeper_id(),
        lock.key(),
        lock.shmid()
    );
    loop {
        // A server's main loop: serve, and recheck the lock about once a minute.
        std::thread::sleep(Duration::from_millis(200));
        if let Err(e) = lock.recheck_if_due() {
            eprintln!("server: {e}; shutting down");
            break;
        }
        if signals.read().ok().flatten().is_some() {
            break;
        }
    }
    lock.set_status(PmStatus::Stopping)?;
    for pid in &workers {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let _ = Command::new("kill")
        .arg(exec_worker.id().to_string())
        .status();
    Ok(())
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir
        .path()
        .to_str()
        .ok_or("temp path is not UTF-8")?
        .to_string();
    step(1, &format!("start the server on {path}"));
    let mut server = Command::new(std::env::current_exe()?)
        .args(["serve", &path])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.first() != Some(&"READY") || f.len() < 13 {
        return Err(format!("server did not start: {line}").into());
    }
    let (pid, w1, w2, exec, keeper) = (f[1], f[3], f[4], f[6], f[8]);
    println!(
        "   server {pid}: forked workers {w1} and {w2}, exec'd worker {exec} (kept by {keeper})"
    );
    println!("   key {}, shmid {}", f[10], f[12]);
    print!(
        "   postmaster.pid:\n{}",
        indent(&std::fs::read_to_string(dir.path().join("postmaster.pid"))?)
    );

    step(
        2,
        &format!("kill -9 {pid} (the server), while its workers live"),
    );
    server.kill()?;
    server.wait()?;

    step(3, "try to start again");
    let workers = [w1, w2, exec];
    match DataDirLock::acquire(&path) {
        Ok(_) => return Err("the directory was handed out while workers still ran".into()),
        Err(e) => {
            println!("   refused: {e}");
            if let Some(h) = e.hint() {
                println!("   hint: {h}");
            }
        }
    }

    step(
        4,
        &format!("stop the old workers: kill {}", workers.join(" ")),
    );
    for w in workers {
        Command::new("kill").arg(w).status()?;
    }
    // The forked workers are our grandchildren, re-parented to init, which
    // reaps them; give it a moment.
    for _ in 0..100 {
        if workers
            .iter()
            .all(|w| !std::path::Path::new(&format!("/proc/{w}")).exists())
            && !std::path::Path::new(&format!("/proc/{keeper}")).exists()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    step(5, "start again");
    let lock = DataDirLock::acquire(&path)?;
    println!(
        "   acquired: key {}, shmid {} (the stale lock file of {pid} and its segment were cleaned up)",
        lock.key(),
        lock.shmid()
    );
    drop(lock);
    println!("\ndone: released, nothing left behind");
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   | {l}\n")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result: Result<(), Box<dyn std::error::Error>> =
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["serve", dir] => serve(dir).map_err(Into::into),
            ["demo"] | [] => demo(),
            _ => Err("usage: server [demo] | server serve DATADIR".into()),
        };
    if let Err(e) = result {
        eprintln!("server: {e}");
        std::process::exit(1);
    }
}
