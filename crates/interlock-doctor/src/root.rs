//! [`HostRoot`]: the one seam through which the tooling reads the host's
//! files: `/proc` (processes, the segment table, `/proc/sys`,
//! `/proc/meminfo`, `/proc/net`), `/dev/shm`, `/etc` (`passwd` and `group`
//! for user names, `login.defs`, logind's configuration) and `/sys` (huge
//! pages, cgroups).
//!
//! The default root is `/`, the host itself. Any other root is a tree laid
//! out the same way (`ROOT/proc`, `ROOT/dev/shm`, `ROOT/etc`, `ROOT/sys`):
//! a copy of another host's files, or a test fixture. Under such a root the
//! tooling never asks the running kernel about the processes it reads of:
//! whether a PID runs comes from `ROOT/proc/PID` alone, not `kill(pid, 0)`
//! (see [`ProcFs::is_host`]). (Segments are still only read, never
//! attached, unless `--attach` asks for it.)

use std::path::{Path, PathBuf};

use interlock::process::{passwd_entry_in, ProcFs};

/// Where the host's files are: `/`, or a tree laid out like it.
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
    procfs: ProcFs,
}

impl Default for HostRoot {
    fn default() -> Self {
        HostRoot::new("/")
    }
}

impl HostRoot {
    /// The host's files under `root` (`/` for the host itself).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let procfs = ProcFs::new(at(&root, "/proc"));
        HostRoot { root, procfs }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the running host's own `/` (not a fixture tree).
    pub fn is_host(&self) -> bool {
        self.procfs.is_host()
    }

    /// The absolute path `path` (`/proc/meminfo`) under the root.
    pub fn at(&self, path: impl AsRef<Path>) -> PathBuf {
        at(&self.root, path)
    }

    /// `ROOT/proc`.
    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// `ROOT/dev/shm`, where POSIX shared memory (DSM files) lives.
    pub fn dev_shm(&self) -> PathBuf {
        self.at("/dev/shm")
    }

    /// `ROOT/proc/net`.
    pub fn proc_net(&self) -> PathBuf {
        self.at("/proc/net")
    }

    /// The user name of `uid` from `ROOT/etc/passwd`, or "uid N".
    pub fn user_name(&self, uid: u32) -> String {
        user_name_in(self.passwd().as_deref(), uid)
    }

    /// `ROOT/etc/passwd`'s text, if it can be read.
    pub(crate) fn passwd(&self) -> Option<String> {
        std::fs::read_to_string(self.at("/etc/passwd")).ok()
    }
}

/// The user name of `uid` in the text of a password file (`None`: it could
/// not be read), or "uid N": as [`interlock::process::user_name`] reads it.
pub(crate) fn user_name_in(passwd: Option<&str>, uid: u32) -> String {
    passwd
        .and_then(|text| passwd_entry_in(text, |e| e.uid == uid))
        .map_or_else(|| format!("uid {uid}"), |e| e.name)
}

fn at(root: &Path, path: impl AsRef<Path>) -> PathBuf {
    let p = path.as_ref();
    root.join(p.strip_prefix("/").unwrap_or(p))
}
