//! The preflight gate: may a service manager start PostgreSQL on a data
//! directory now? One typed answer ([`Gate`]) made from a [`status()`](crate::status())
//! report, and a bounded wait ([`preflight_wait`]) for orphans of the last
//! server to exit on their own. The gate reads; it never signals, attaches
//! or removes anything (`fix` does that, when told).
//!
//! Also where Debian's cluster names are resolved to data directories
//! ([`debian_data_directory`]), as `pg_ctlcluster` does.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{status, Code, Error, HostRoot, StatusOptions, StatusReport, Verdict};

/// The answer to "may PostgreSQL start on this directory now?".
#[derive(Debug, Clone)]
pub enum Gate {
    /// It would start, and no process of an earlier server is attached.
    Start,
    /// It must not start now.
    Refuse(Refusal),
    /// It cannot be told (something that decides could not be read).
    Unknown {
        /// Why, in one sentence.
        reason: String,
        /// Whether it is the fence across hosts that cannot be read (etcd
        /// unreachable, with [`FenceQuery`]): then `reason` is that, and
        /// reaching etcd, not more privileges, is the remedy.
        fence: bool,
    },
}

/// Why a start must not happen now.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A server (or a hold) owns the directory: a start would fail.
    Running {
        /// The lock file's PID, or the process that holds the directory.
        pid: i32,
        /// What it is (its command line), when known.
        what: Option<String>,
        /// The FATAL a second server would log, when known.
        fatal: Option<String>,
    },
    /// Processes of the last server are still attached to this directory's
    /// segment: the server would refuse (`fatal`), or start alongside them
    /// (no `fatal`). They may exit on their own: worth waiting for.
    Orphans {
        /// Them.
        orphans: Vec<Orphan>,
        /// The FATAL the server would log, if it would stop.
        fatal: Option<String>,
        /// The first remedy line.
        remedy: Option<String>,
    },
    /// Another host (or this host in another boot) holds the directory's
    /// fence in etcd (`interlock run --etcd`): a server started here would
    /// be a second one. Only with a fence to read ([`FenceQuery`]).
    Fenced {
        /// Who holds which key, in one sentence (the `fenced_elsewhere`
        /// finding).
        holder: String,
        /// The first remedy line.
        remedy: Option<String>,
    },
    /// The server would stop with a FATAL error for another reason.
    Blocked {
        /// The FATAL primary message, without `FATAL:  `.
        fatal: String,
        /// The first remedy line.
        remedy: Option<String>,
    },
}

/// A process of the last server still attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// Its PID.
    pub pid: i32,
    /// Its PostgreSQL role (`checkpointer`), else its command line.
    pub role: String,
    /// `stopped`, `sleeping`, …
    pub state: String,
}

impl Gate {
    /// Whether the answer may change on its own: only orphans of the last
    /// server that exit. (A running server, a bad directory, an unreadable
    /// `/proc` do not change by waiting.)
    pub fn waitable(&self) -> bool {
        matches!(self, Gate::Refuse(Refusal::Orphans { .. }))
    }
}

/// The gate's answer for a report.
pub fn gate_of(r: &StatusReport) -> Gate {
    let has = |code: Code| r.findings.iter().any(|f| f.code == code);
    let remedy = r.remedy.first().cloned();
    let fenced = r.findings.iter().find(|f| f.code == Code::FencedElsewhere);
    match r.verdict {
        // Before anything seen here: another host runs (or may start) it.
        Verdict::Blocked if fenced.is_some() => Gate::Refuse(Refusal::Fenced {
            holder: fenced.map(|f| f.message.clone()).unwrap_or_default(),
            remedy,
        }),
        Verdict::WillStart if r.safe_to_start => Gate::Start,
        Verdict::Unknown => {
            let fence = r.findings.iter().find(|f| f.code == Code::FenceUnknown);
            Gate::Unknown {
                reason: fence.map_or_else(|| unknown_reason(r), |f| f.message.clone()),
                fence: fence.is_some(),
            }
        }
        Verdict::Running => {
            let (pid, what) = match (&r.lock_file.process, r.lock_file.pid) {
                (Some(p), _) => (p.pid, Some(p.cmdline.clone())),
                (None, Some(pid)) => (pid.abs(), None),
                // Held without a lock file: the segment's creator.
                (None, None) => r
                    .holders
                    .iter()
                    .find(|h| r.segments.iter().any(|s| s.cpid == h.process.pid))
                    .or(r.holders.first())
                    .map_or((0, None), |h| {
                        (h.process.pid, Some(h.process.cmdline.clone()))
                    }),
            };
            Gate::Refuse(Refusal::Running {
                pid,
                what,
                fatal: r.postgres_would_say.clone(),
            })
        }
        // Orphans are what stops it (or makes it unsafe): waiting may help,
        // when nothing but the interlock stops it.
        Verdict::WillStart | Verdict::Blocked
            if has(Code::OrphanedHolders) && r.stops_at.is_none_or(|s| s.is_interlock()) =>
        {
            Gate::Refuse(Refusal::Orphans {
                orphans: orphans_of(r),
                fatal: r.postgres_would_say.clone(),
                remedy,
            })
        }
        Verdict::WillStart => Gate::Refuse(Refusal::Blocked {
            fatal: "(none: it would start alongside processes of an earlier server)".into(),
            remedy,
        }),
        Verdict::Blocked => Gate::Refuse(Refusal::Blocked {
            fatal: r
                .postgres_would_say
                .clone()
                .unwrap_or_else(|| "(unknown message)".into()),
            remedy,
        }),
    }
}

/// The holders that are the last server's: the directory owner's (another
/// user's holders are never a server of this directory).
fn orphans_of(r: &StatusReport) -> Vec<Orphan> {
    let owner = std::fs::metadata(&r.data_dir).ok().map(|m| m.uid());
    let mut seen = Vec::new();
    for h in &r.holders {
        let p = &h.process;
        if owner.is_some_and(|u| u != p.uid) || seen.iter().any(|o: &Orphan| o.pid == p.pid) {
            continue;
        }
        seen.push(Orphan {
            pid: p.pid,
            role: p
                .role
                .map_or_else(|| p.cmdline.clone(), |r| r.name().into()),
            state: p.state.name().into(),
        });
    }
    seen
}

fn unknown_reason(r: &StatusReport) -> String {
    r.findings
        .iter()
        .filter(|f| f.severity >= crate::Severity::Problem)
        .map(|f| f.message.clone())
        .next()
        .unwrap_or_else(|| "something that decides could not be read".into())
}

/// Diagnose `data_dir` once, as `status` does, and answer.
pub fn preflight(data_dir: &Path, opts: &StatusOptions) -> Result<Gate, Error> {
    preflight_fenced(data_dir, opts, None)
}

/// Where to read a directory's fence across hosts (`--etcd`, `--name`).
#[derive(Debug, Clone, Copy)]
pub struct FenceQuery<'a> {
    /// etcd's client endpoints, comma-separated.
    pub endpoints: &'a str,
    /// The key's name (else the directory's absolute path).
    pub name: Option<&'a str>,
}

/// [`preflight`], with the fence read as `status --etcd` reads it
/// ([`crate::fence::check_fence`]): another host holding it refuses
/// ([`Refusal::Fenced`]); etcd unreachable is [`Gate::Unknown`].
pub fn preflight_fenced(
    data_dir: &Path,
    opts: &StatusOptions,
    fence: Option<FenceQuery<'_>>,
) -> Result<Gate, Error> {
    let mut r = status(data_dir, opts)?;
    if let Some(q) = fence {
        crate::fence::check_fence(&mut r, data_dir, q.endpoints, q.name);
    }
    Ok(gate_of(&r))
}

/// [`preflight_fenced`], then, while the answer is a refusal that may change on
/// its own ([`Gate::waitable`]: orphans of the last server), again every
/// `every` until it is not or `wait` has passed. `on_wait` is called once,
/// with the first answer, when waiting begins. Returns the last answer and
/// how long was waited.
pub fn preflight_wait(
    data_dir: &Path,
    opts: &StatusOptions,
    fence: Option<FenceQuery<'_>>,
    wait: Duration,
    every: Duration,
    mut on_wait: impl FnMut(&Gate),
) -> Result<(Gate, Duration), Error> {
    let start = Instant::now();
    let mut gate = preflight_fenced(data_dir, opts, fence)?;
    if gate.waitable() && !wait.is_zero() {
        on_wait(&gate);
    }
    while gate.waitable() && start.elapsed() < wait {
        let left = wait.saturating_sub(start.elapsed());
        std::thread::sleep(every.min(left));
        gate = preflight_fenced(data_dir, opts, fence)?;
    }
    Ok((gate, start.elapsed()))
}

/// A Debian cluster name, `VERSION/NAME` (`15/main`, systemd's `%I` of
/// `postgresql@15-main.service`): its data directory, as `pg_ctlcluster`
/// finds it (`cluster_data_directory` in postgresql-common's PgCommon.pm):
/// `data_directory` in `/etc/postgresql/VERSION/NAME/postgresql.conf`
/// (read with its includes by [`crate::config`]), else the target of the
/// `pgdata` link there, else that directory itself if it holds
/// `PG_VERSION`; else `/var/lib/postgresql/VERSION/NAME`, where
/// `pg_createcluster` puts one. `/etc` is read under `root`; under a root
/// that is not the host's, the directory is taken under the root, unless
/// a configured one exists only as given.
pub fn debian_data_directory(root: &HostRoot, cluster: &str) -> Result<PathBuf, Error> {
    let bad = |why: &str| Error::Input {
        what: format!("--debian-cluster {cluster:?}"),
        reason: format!("{why}: give VERSION/NAME, as in 15/main"),
    };
    let (version, name) = cluster
        .split_once('/')
        .ok_or_else(|| bad("not VERSION/NAME"))?;
    let ok =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
    if !ok(version) || !ok(name) {
        return Err(bad("not VERSION/NAME"));
    }
    let confdir = PathBuf::from(format!("/etc/postgresql/{version}/{name}"));
    let conf = root.at(confdir.join("postgresql.conf"));
    if !conf.exists() {
        return Err(Error::Input {
            what: format!("--debian-cluster {cluster}"),
            reason: format!(
                "no such cluster: {} does not exist (pg_lsclusters lists the clusters)",
                conf.display()
            ),
        });
    }
    let settings = crate::config::read_file_settings(&conf);
    let found = if let Some(d) = settings.get("data_directory").filter(|d| !d.is_empty()) {
        Some(PathBuf::from(d))
    } else if let Ok(link) = std::fs::read_link(root.at(confdir.join("pgdata"))) {
        Some(link)
    } else if root.at(confdir.join("PG_VERSION")).is_file() {
        Some(confdir.clone())
    } else {
        None
    };
    let Some(dir) = found else {
        return Ok(root.at(format!("/var/lib/postgresql/{version}/{name}")));
    };
    let dir = if dir.is_relative() {
        confdir.join(dir)
    } else {
        dir
    };
    if root.is_host() || (dir.exists() && !root.at(&dir).exists()) {
        return Ok(dir);
    }
    Ok(root.at(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn debian_cluster_names_resolve_like_pg_ctlcluster() {
        let tmp = tempfile::tempdir().unwrap();
        let root = HostRoot::new(tmp.path());
        let etc = tmp.path().join("etc/postgresql/15/main");
        fs::create_dir_all(etc.join("conf.d")).unwrap();
        // Nothing set: the default place.
        fs::create_dir_all(tmp.path().join("var/lib/postgresql/15/main")).unwrap();
        fs::write(etc.join("postgresql.conf"), "port = 5433\n").unwrap();
        assert_eq!(
            debian_data_directory(&root, "15/main").unwrap(),
            tmp.path().join("var/lib/postgresql/15/main")
        );
        // Set in an included file: followed.
        fs::write(etc.join("postgresql.conf"), "include_dir = 'conf.d'\n").unwrap();
        fs::write(
            etc.join("conf.d/dd.conf"),
            "data_directory = '/srv/pg/15'\n",
        )
        .unwrap();
        assert_eq!(
            debian_data_directory(&root, "15/main").unwrap(),
            tmp.path().join("srv/pg/15")
        );
        // An existing directory named as it is.
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(
            etc.join("conf.d/dd.conf"),
            format!("data_directory = '{}'\n", real.display()),
        )
        .unwrap();
        assert_eq!(debian_data_directory(&root, "15/main").unwrap(), real);
        assert!(debian_data_directory(&root, "16/main").is_err());
        for bad in [
            "15",
            "15-main",
            "../x",
            "15/",
            "/main",
            "15/main/x",
            "15/..",
        ] {
            assert!(debian_data_directory(&root, bad).is_err(), "{bad}");
        }
    }
}
