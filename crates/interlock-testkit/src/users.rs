//! Unix users: `postgres`, users made for one test, and data directories
//! owned by the right one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::is_root;

/// The user PostgreSQL runs as in the tests and the matrix.
pub const PG_USER: &str = "postgres";

/// The uid and gid of `user` from the password database (`id`), if it
/// exists.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn pg_ids() -> (u32, u32) {
    user_ids(PG_USER).unwrap_or_else(|| panic!("no user {PG_USER}"))
}

/// Make `cmd` run as `postgres` (uid and gid switched between fork and
/// exec, so the child's PID is the command's, unlike `runuser`'s).
pub fn as_postgres(cmd: &mut Command) -> &mut Command {
    let (uid, gid) = pg_ids();
    interlock::sys::proc::run_command_as(cmd, uid, gid);
    cmd
}

/// `chown -R postgres: path`.
pub fn chown_r(path: &Path) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{PG_USER}:"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A temporary root (mode 0755) with a data directory inside (mode 0700)
/// owned by `postgres` when we are root, else by us.
#[derive(Debug)]
pub struct TestDir {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        if is_root() {
            chown_r(&data);
        }
        TestDir { root, data }
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

/// A Unix user made for one test (`useradd`, needs root), removed on drop
/// (after the processes the test started as it, which its `Cleanup` kills
/// first when declared after it).
#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `ilk<tag><our PID>`, in its own group and in `groups` if given.
    pub fn new(tag: &str, groups: Option<&str>) -> TestUser {
        let name = format!("ilk{tag}{}", std::process::id());
        let mut cmd = Command::new("useradd");
        cmd.args(["--no-create-home", "--shell", "/usr/sbin/nologin", "-U"]);
        if let Some(g) = groups {
            cmd.args(["-G", g]);
        }
        let st = cmd.arg(&name).status().expect("useradd");
        assert!(st.success(), "useradd {name}");
        let (uid, gid) = user_ids(&name).expect("the user just added");
        TestUser { name, uid, gid }
    }

    /// `program`, run as this user (with its supplementary groups, as a
    /// login would give them: `runuser` sets them up, then execs in place).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.name, "--"]).arg(program);
        cmd
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
