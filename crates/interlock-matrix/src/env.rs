//! What every cell shares: the builds, the tools, the postgres user, the
//! work directory, the template clusters, and the signals that end a run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use interlock::sys::signal::SignalFd;

use crate::cell::{Cell, Cluster, R};

/// A PostgreSQL build: a name (`18`, `10.20`, `debian-15`) and its
/// binaries, with the version they print.
#[derive(Debug)]
pub struct Build {
    pub name: String,
    pub bindir: PathBuf,
    /// As `postgres --version` prints it: `18.4`, `15.18`.
    pub version: String,
    pub major: u32,
}

#[derive(Debug)]
pub struct Env {
    pub interlock: PathBuf,
    pub psql: PathBuf,
    pub pg_uid: u32,
    pub pg_gid: u32,
    /// Where the cells and templates live; removed at the end.
    pub work: PathBuf,
    /// Keep each cell's directory (logs) instead of removing it.
    pub keep: bool,
    signals: SignalFd,
    templates: RefCell<HashMap<String, PathBuf>>,
}

/// Ids of a user from the password database (`id`).
pub fn ids_of(user: &str) -> R<(u32, u32)> {
    interlock_testkit::user_ids(user)
        .ok_or_else(|| format!("no user {user:?} (PostgreSQL runs as it)"))
}

impl Build {
    /// `NAME=BINDIR`; the version is read from `postgres --version`, run as
    /// the postgres user.
    pub fn from_arg(arg: &str, uid: u32, gid: u32) -> R<Build> {
        let (name, dir) = arg
            .split_once('=')
            .ok_or_else(|| format!("--build {arg:?}: expected NAME=BINDIR"))?;
        let bindir = PathBuf::from(dir);
        let mut cmd = Command::new(bindir.join("postgres"));
        cmd.arg("--version");
        interlock::sys::proc::run_command_as(&mut cmd, uid, gid);
        let out = cmd
            .output()
            .map_err(|e| format!("{}/postgres --version: {e}", bindir.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let version = text
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| format!("{}/postgres --version printed {text:?}", bindir.display()))?
            .to_string();
        let Some(Ok(major)) = version.split('.').next().map(str::parse::<u32>) else {
            return Err(format!("cannot read a version from {text:?}"));
        };
        Ok(Build {
            name: name.to_string(),
            bindir,
            version,
            major,
        })
    }
}

impl Env {
    pub fn new(interlock: PathBuf, psql: PathBuf, work: PathBuf, keep: bool) -> R<Env> {
        let (pg_uid, pg_gid) = ids_of("postgres")?;
        // SIGINT, SIGTERM and SIGHUP are read between steps, so that a
        // run interrupted by its operator still cleans up.
        let signals = SignalFd::new(&[libc_sig::INT, libc_sig::TERM, libc_sig::HUP])
            .map_err(|e| format!("signalfd: {e}"))?;
        fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        Ok(Env {
            interlock,
            psql,
            pg_uid,
            pg_gid,
            work,
            keep,
            signals,
            templates: RefCell::new(HashMap::new()),
        })
    }

    /// Sleep, then fail if the run was interrupted.
    pub fn pause(&self, d: Duration) -> R {
        std::thread::sleep(d);
        self.check()
    }

    pub fn check(&self) -> R {
        match self.signals.read() {
            Ok(Some(s)) => Err(format!("{INTERRUPTED} (signal {})", s.signo)),
            _ => Ok(()),
        }
    }

    /// The build's template: initdb'd once, with table `t` holding 1000
    /// rows, cleanly stopped. Cells copy it.
    pub fn template(&self, build: &Build) -> R<PathBuf> {
        if let Some(p) = self.templates.borrow().get(&build.name) {
            return Ok(p.clone());
        }
        let data = self.work.join("templates").join(&build.name).join("data");
        fs::create_dir_all(data.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        crate::cell::run(
            Command::new("chown")
                .arg(format!("{}:{}", self.pg_uid, self.pg_gid))
                .arg(data.parent().expect("has a parent")),
        )?;
        let mut initdb = Command::new(build.bindir.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data);
        interlock::sys::proc::run_command_as(&mut initdb, self.pg_uid, self.pg_gid);
        crate::cell::run(&mut initdb)?;
        // Start it once, through a cell of its own, to create the rows.
        {
            let mut cell = Cell::new(self, build, &format!("template-{}", build.name), 51990)?;
            let c: Cluster = cell.adopt(&data, 51990)?;
            let s = cell.start_ok(&c)?;
            cell.psql(
                &c,
                "create table t (i int); insert into t select generate_series(1, 1000)",
            )?;
            cell.stop(s)?;
        }
        // The next start writes its own; a copy must not carry this one's.
        let _ = fs::remove_file(data.join("postmaster.opts"));
        self.templates
            .borrow_mut()
            .insert(build.name.clone(), data.clone());
        Ok(data)
    }
}

pub const INTERRUPTED: &str = "interrupted";

/// Signal numbers without a libc dependency of our own.
mod libc_sig {
    use rustix::process::Signal;
    pub const INT: i32 = Signal::INT.as_raw();
    pub const TERM: i32 = Signal::TERM.as_raw();
    pub const HUP: i32 = Signal::HUP.as_raw();
}
