//! Which PostgreSQL would start on a data directory, and which of its
//! interlock algorithms that version runs.
//!
//! `PG_VERSION` gives the major version, which decides the key seed (port
//! for 10–12, inode for 13+). For 10 and 11 the minor version matters too:
//! 10.0–10.7 and 11.0–11.2 run the old probe loop, which never refuses on a
//! segment it finds by key (facts sheet §1.4–1.6, §9). The exact version is
//! asked of the server binary (`postgres --version`) only when it matters
//! (major 10 or 11, or an unreadable `PG_VERSION`) or when `--postgres` is
//! given (which also checks that binary against `PG_VERSION`), found in
//! this order:
//! the `--postgres` path given, the executable of the directory's running
//! or orphaned server processes, `postgres` on `PATH`, Debian's
//! `/usr/lib/postgresql/MAJOR/bin/postgres`. A binary found by search is
//! used only if its major version matches `PG_VERSION`. When this process
//! runs as root, the binary runs as the directory's owner, so that a
//! binary planted by that user never runs with our privileges.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interlock::pg::major_of;
use serde::Serialize;

/// The interlock algorithm a server version runs: `interlock::pg::Algorithm`,
/// as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// 10.8+, 11.3+, 12+: segment states, refuses on an attached segment
    /// found by key.
    New,
    /// 10.0–10.7, 11.0–11.2: recycles any segment with a PostgreSQL
    /// header whose creator PID is dead, attached or not, of any
    /// directory.
    Old,
}

impl From<interlock::pg::Algorithm> for Algorithm {
    fn from(a: interlock::pg::Algorithm) -> Self {
        match a {
            interlock::pg::Algorithm::New => Algorithm::New,
            interlock::pg::Algorithm::Old => Algorithm::Old,
        }
    }
}

impl From<Algorithm> for interlock::pg::Algorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::New => interlock::pg::Algorithm::New,
            Algorithm::Old => interlock::pg::Algorithm::Old,
        }
    }
}

/// Where the keys PostgreSQL probes start: `interlock::pg::KeySeed`, as
/// reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySeed {
    /// `port * 1000 + 1` (10–12).
    Port,
    /// The data directory's inode (13+).
    Inode,
}

impl From<interlock::pg::KeySeed> for KeySeed {
    fn from(k: interlock::pg::KeySeed) -> Self {
        match k {
            interlock::pg::KeySeed::Port => KeySeed::Port,
            interlock::pg::KeySeed::Inode => KeySeed::Inode,
        }
    }
}

/// What is known about the server version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Contents of `PG_VERSION` (e.g. `15`, `9.6`), if readable.
    pub data_dir_major: Option<String>,
    /// The server binary's version (e.g. `15.18`), if one was found.
    pub server: Option<String>,
    /// The binary asked.
    pub server_binary: Option<String>,
    /// How the binary was found.
    pub server_source: Option<String>,
    /// Why a binary asked for its version gave none (it timed out and was
    /// killed, it failed to start), when no binary answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_failure: Option<String>,
    /// The key seed, if the major version is known and supported.
    pub keys: Option<KeySeed>,
    /// The algorithm, if the version is known well enough to tell.
    pub algorithm: Option<Algorithm>,
}

impl VersionInfo {
    /// The major version number (10, 11, …) from `PG_VERSION`.
    pub fn major(&self) -> Option<u32> {
        self.data_dir_major.as_deref().and_then(major_of)
    }
}

/// The key seed and algorithm of a major (and, for 10 and 11, minor)
/// version: `interlock::pg::key_seed` and `interlock::pg::algorithm_of_server`.
pub fn algorithm_of(major: u32, server: Option<&str>) -> (Option<KeySeed>, Option<Algorithm>) {
    let keys = interlock::pg::key_seed(major).map(KeySeed::from);
    let algorithm = interlock::pg::algorithm_of_server(major, server).map(Algorithm::from);
    (keys, algorithm)
}

/// The version printed by `postgres --version`: `postgres (PostgreSQL) 15.18 (Debian …)`.
pub fn parse_version_output(out: &str) -> Option<String> {
    let rest = out.split("(PostgreSQL) ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect::<String>();
    (!v.is_empty()).then_some(v)
}

/// How long `postgres --version` may take.
pub const VERSION_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Run `binary --version`, as `run_as` (uid, gid) when given, for at most
/// [`VERSION_TIME_LIMIT`].
fn ask_version(binary: &Path, run_as: Option<(u32, u32)>) -> Result<Option<String>, String> {
    let mut cmd = Command::new(binary);
    cmd.arg("--version").env("LC_ALL", "C");
    if let Some((uid, gid)) = run_as {
        interlock::sys::proc::run_command_as(&mut cmd, uid, gid);
    }
    // A binary that hangs, or forks and hangs, is killed with its group.
    let out = crate::child::output_within(&mut cmd, VERSION_TIME_LIMIT, 4096)
        .map_err(|e| format!("{e}"))?;
    Ok(parse_version_output(&String::from_utf8_lossy(&out.stdout)))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Work out the version of the server for `data_dir`.
///
/// `explicit` is `--postgres`; `running_exe` the executable of a process
/// of this directory's server, if one is known; `owner` the directory's
/// owner (uid, gid), used when this process is root.
pub fn detect(
    data_dir: &Path,
    explicit: Option<&Path>,
    running_exe: Option<PathBuf>,
    owner: (u32, u32),
) -> VersionInfo {
    detect_inner(data_dir, explicit, running_exe, owner, false)
}

/// As [`detect`], but always looks for the server binary, also where
/// `PG_VERSION` alone decides the keys (for `postgres -C`).
pub fn detect_binary(data_dir: &Path, explicit: Option<&Path>, owner: (u32, u32)) -> VersionInfo {
    detect_inner(data_dir, explicit, None, owner, true)
}

fn detect_inner(
    data_dir: &Path,
    explicit: Option<&Path>,
    running_exe: Option<PathBuf>,
    owner: (u32, u32),
    always: bool,
) -> VersionInfo {
    let data_dir_major = interlock::safe_fs::pg_version(data_dir).ok().flatten();
    let major = data_dir_major.as_deref().and_then(major_of);
    let needed = always || explicit.is_some() || !matches!(major, Some(12..));
    if !needed {
        let (keys, algorithm) = algorithm_of(major.unwrap_or(0), None);
        return VersionInfo {
            data_dir_major,
            server: None,
            server_binary: running_exe.map(|p| p.display().to_string()),
            server_source: Some(
                "not asked: from 12 on, PG_VERSION alone decides the keys and the algorithm".into(),
            ),
            probe_failure: None,
            keys,
            algorithm,
        };
    }
    let run_as = (rustix::process::geteuid().is_root()).then_some(owner);

    let mut candidates: Vec<(PathBuf, &'static str, bool)> = Vec::new();
    if let Some(p) = explicit {
        candidates.push((p.to_path_buf(), "--postgres", false));
    }
    if let Some(p) = running_exe {
        candidates.push((p, "the running server's executable", false));
    }
    if let Some(p) = on_path("postgres") {
        candidates.push((p, "PATH", true));
    }
    if let Some(m) = major {
        let debian = PathBuf::from(format!("/usr/lib/postgresql/{m}/bin/postgres"));
        if debian.is_file() {
            candidates.push((debian, "Debian's layout", true));
        }
    }

    let mut found = None;
    let mut probe_failure = None;
    for (binary, source, must_match) in candidates {
        let v = match ask_version(&binary, run_as) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                probe_failure.get_or_insert(format!("{} --version: {e}", binary.display()));
                continue;
            }
        };
        if must_match && (major.is_none() || major_of(&v) != major) {
            continue;
        }
        found = Some((binary, source, v));
        break;
    }
    let (server_binary, server_source, server) = match found {
        Some((b, s, v)) => {
            probe_failure = None;
            (Some(b.display().to_string()), Some(s.to_string()), Some(v))
        }
        None => (None, None, None),
    };
    let (keys, algorithm) = match major {
        Some(m) => algorithm_of(m, server.as_deref()),
        None => (None, None),
    };
    VersionInfo {
        data_dir_major,
        server,
        server_binary,
        server_source,
        probe_failure,
        keys,
        algorithm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_output_and_algorithms() {
        assert_eq!(
            parse_version_output("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n")
                .as_deref(),
            Some("15.18")
        );
        assert_eq!(parse_version_output("nonsense"), None);
        assert_eq!(
            algorithm_of(15, None),
            (Some(KeySeed::Inode), Some(Algorithm::New))
        );
        assert_eq!(
            algorithm_of(12, None),
            (Some(KeySeed::Port), Some(Algorithm::New))
        );
        assert_eq!(
            algorithm_of(10, Some("10.7")),
            (Some(KeySeed::Port), Some(Algorithm::Old))
        );
        assert_eq!(
            algorithm_of(10, Some("10.23")),
            (Some(KeySeed::Port), Some(Algorithm::New))
        );
        assert_eq!(algorithm_of(11, Some("11.2")).1, Some(Algorithm::Old));
        assert_eq!(algorithm_of(11, Some("11.3")).1, Some(Algorithm::New));
        // Minor unknown, or a binary of another major: cannot tell.
        assert_eq!(algorithm_of(11, None).1, None);
        assert_eq!(algorithm_of(11, Some("15.2")).1, None);
        assert_eq!(algorithm_of(9, None), (None, None));
    }

    #[test]
    fn algorithms_convert_both_ways() {
        use interlock::pg::Algorithm as Pg;
        assert_eq!(Algorithm::from(Pg::New), Algorithm::New);
        assert_eq!(Algorithm::from(Pg::Old), Algorithm::Old);
        assert_eq!(Pg::from(Algorithm::New), Pg::New);
        assert_eq!(Pg::from(Algorithm::Old), Pg::Old);
    }
}
