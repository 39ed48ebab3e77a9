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
use interlock_format::statfs::{
    mount_of, network_fs_name, network_fs_type, parse_mountinfo, FUSE_SUPER_MAGIC,
};

/// The inode of the initial PID namespace's `/proc/PID/ns/pid`
/// (`PROC_PID_INIT_INO`, include/linux/proc_ns.h).
pub const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// A network or cluster file system a directory is on
/// ([`HostRoot::shared_storage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStorage {
    /// Its name (`nfs`, `cifs`, `glusterfs`).
    pub fs: String,
    /// How it was told (the magic number, or the mount and its type).
    pub how: String,
}

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

    /// The network or cluster file system `dir` (absolute, links
    /// resolved) is on, if it is on one: another host may mount it too.
    ///
    /// `statfs(dir)` first (the directory is real even under a fixture
    /// root, so what the kernel says of it always counts), by magic number
    /// ([`network_fs_name`]); then, when the magic is FUSE's (GlusterFS,
    /// ceph-fuse, sshfs: only the type name tells), or when the root is
    /// not the host's `/`, the type of the mount holding `dir` in
    /// `ROOT/proc/self/mountinfo` ([`network_fs_type`]). A fixture says
    /// "this directory is on NFS" by listing its mount point there with
    /// type `nfs4`; without that file it is taken for local.
    pub fn shared_storage(&self, dir: &Path) -> Option<SharedStorage> {
        use std::os::unix::ffi::OsStrExt;
        let magic = rustix::fs::statfs(dir).ok().map(|s| s.f_type as u64);
        if let Some(name) = magic.and_then(network_fs_name) {
            return Some(SharedStorage {
                fs: name.to_string(),
                how: format!("statfs: file system magic {:#x}", magic.unwrap_or(0)),
            });
        }
        if self.is_host() && magic != Some(FUSE_SUPER_MAGIC) {
            return None;
        }
        let path = self.at("/proc/self/mountinfo");
        let text = std::fs::read(&path).ok()?;
        let mounts = parse_mountinfo(&text);
        let m = mount_of(&mounts, dir.as_os_str().as_bytes())?;
        let name = network_fs_type(&m.fs_type)?;
        Some(SharedStorage {
            fs: name.to_string(),
            how: format!(
                "{}: mounted at {} from {} as {}",
                path.display(),
                String::from_utf8_lossy(&m.mount_point),
                String::from_utf8_lossy(&m.source),
                m.fs_type
            ),
        })
    }

    /// The PID namespace `interlock` runs in, when it is not the host's
    /// initial one (a container's): `pid:[INODE]` as `ROOT/proc/self/ns/pid`
    /// reads. The initial namespace's inode is a constant of the kernel
    /// (`PROC_PID_INIT_INO`, include/linux/proc_ns.h), so the test needs
    /// nothing outside the namespace. `None` when it is the initial one or
    /// cannot be read (a fixture tree without that link).
    pub fn nested_pid_namespace(&self) -> Option<String> {
        let link = std::fs::read_link(self.at("/proc/self/ns/pid")).ok()?;
        let link = link.to_string_lossy().into_owned();
        let inode: u64 = link
            .strip_prefix("pid:[")?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        (inode != PROC_PID_INIT_INO).then_some(link)
    }

    /// This host as the fence's holders name themselves: its host name
    /// and boot id, from `ROOT/proc/sys/kernel/hostname` and
    /// `ROOT/proc/sys/kernel/random/boot_id` (what
    /// `interlock_fence::key::this_host` and `this_boot_id` read on `/`),
    /// trimmed; `None` when either cannot be read (a fixture tree without
    /// them).
    pub fn host_and_boot_id(&self) -> Option<(String, String)> {
        // Both are a line of at most 64 bytes (HOST_NAME_MAX; a UUID);
        // read as any file under a root that may be a copy: bounded, no
        // FIFO, no link in another user's directory.
        let read = |p: &str| {
            interlock::safe_fs::read_to_string(None, &self.at(p), 256)
                .ok()
                .map(|s| s.trim().to_string())
        };
        Some((
            read("/proc/sys/kernel/hostname")?,
            read("/proc/sys/kernel/random/boot_id")?,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The real host: a temporary directory (ext4, overlay, tmpfs…) and
    /// `/dev/shm` (tmpfs) are local, by `statfs`.
    #[test]
    fn local_directories_of_this_host_are_not_shared_storage() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::default();
        let tmp = dir.path().canonicalize().unwrap();
        let magic = rustix::fs::statfs(&tmp).unwrap().f_type as u64;
        if network_fs_name(magic).is_none() {
            assert_eq!(host.shared_storage(&tmp), None, "{magic:#x}");
        }
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(host.shared_storage(Path::new("/dev/shm")), None);
        }
    }

    /// Under a fixture root, `ROOT/proc/self/mountinfo` says it; a mount
    /// above another path, or a local type, says nothing.
    #[test]
    fn a_fixture_root_says_it_through_mountinfo() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().canonicalize().unwrap().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        let host = HostRoot::new(root.path());
        assert_eq!(host.shared_storage(&dir), None, "no mountinfo: local");
        std::fs::write(
            root.path().join("proc/self/mountinfo"),
            format!(
                "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:40 / {} rw - nfs4 filer:/pg rw\n",
                dir.display()
            ),
        )
        .unwrap();
        let s = host.shared_storage(&dir).unwrap();
        assert_eq!(s.fs, "nfs");
        assert!(s.how.contains("from filer:/pg as nfs4"), "{}", s.how);
        assert_eq!(host.shared_storage(&dir.join("sub")).unwrap().fs, "nfs");
        assert_eq!(host.shared_storage(root.path()), None);
    }
}
