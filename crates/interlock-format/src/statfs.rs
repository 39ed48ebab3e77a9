//! Which file systems put a data directory within reach of other hosts:
//! `statfs(2)`'s `f_type` magic numbers (the kernel's
//! `include/uapi/linux/magic.h`, and the file systems' own headers for the
//! ones not listed there), the type names `/proc/PID/mountinfo` shows, and
//! a parser for `mountinfo` itself (`proc_pid_mountinfo(5)`), for FUSE
//! mounts, whose magic number does not say what serves them
//! (`fuse.glusterfs`, `fuse.sshfs`).
//!
//! On such a file system PostgreSQL's interlock (the lock file's PID
//! checked with `kill(pid, 0)`, the System V segment) sees this host only:
//! a server on another host that mounts the same directory is invisible.

use crate::error::ParseError;

/// `statfs` magic of a FUSE mount (`FUSE_SUPER_MAGIC`): what serves it is
/// only told by `mountinfo`'s type (`fuse.glusterfs`).
pub const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// Network and cluster file systems by `statfs` magic number.
const NETWORK_MAGICS: &[(u64, &str)] = &[
    (0x6969, "nfs"),         // NFS_SUPER_MAGIC
    (0xFF53_4D42, "cifs"),   // CIFS_SUPER_MAGIC (CIFS_MAGIC_NUMBER)
    (0xFE53_4D42, "smb2"),   // SMB2_SUPER_MAGIC
    (0x517B, "smbfs"),       // SMB_SUPER_MAGIC (the old smbfs)
    (0x0116_1970, "gfs2"),   // GFS2_MAGIC
    (0x7461_636f, "ocfs2"),  // OCFS2_SUPER_MAGIC
    (0x00c3_6400, "ceph"),   // CEPH_SUPER_MAGIC
    (0x5346_414F, "afs"),    // AFS_SUPER_MAGIC
    (0x6B41_4653, "afs"),    // AFS_FS_MAGIC (kAFS)
    (0x0BD0_0BD0, "lustre"), // LL_SUPER_MAGIC
    (0x0102_1997, "9p"),     // V9FS_MAGIC
    (0x4750_4653, "gpfs"),   // GPFS_SUPER_MAGIC
    (0x564c, "ncpfs"),       // NCP_SUPER_MAGIC
];

/// The name of the network or cluster file system whose `statfs` magic
/// number is `f_type` (`nfs`, `cifs`, `gfs2`, `ceph`…), or `None` for a
/// local one, FUSE (see [`FUSE_SUPER_MAGIC`]) and unknown numbers. Only
/// the low 32 bits count: `f_type` is a signed `long` on some targets.
pub fn network_fs_name(f_type: u64) -> Option<&'static str> {
    let t = f_type & 0xFFFF_FFFF;
    NETWORK_MAGICS
        .iter()
        .find(|(m, _)| *m == t)
        .map(|(_, name)| *name)
}

/// The network or cluster file system a `mountinfo` type names (`nfs4`,
/// `cifs`, `smb3`, `fuse.glusterfs`, `fuse.ceph-fuse`…), as one name, or
/// `None` for a local one (`ext4`, `xfs`, `tmpfs`, `overlay`, a local FUSE
/// such as `fuse-overlayfs`).
pub fn network_fs_type(fs_type: &str) -> Option<&'static str> {
    Some(match fs_type {
        "nfs" | "nfs4" => "nfs",
        "cifs" | "smb3" | "smbfs" => "cifs",
        "gfs2" | "gfs2meta" => "gfs2",
        "ocfs2" => "ocfs2",
        "ceph" | "fuse.ceph-fuse" | "fuse.ceph" => "ceph",
        "glusterfs" | "fuse.glusterfs" => "glusterfs",
        "afs" | "openafs" => "afs",
        "lustre" => "lustre",
        "9p" => "9p",
        "gpfs" => "gpfs",
        "beegfs" => "beegfs",
        "pvfs2" | "orangefs" => "orangefs",
        "ncpfs" => "ncpfs",
        "fuse.sshfs" => "sshfs",
        "fuse.s3fs" => "s3fs",
        "fuse.gcsfuse" => "gcsfuse",
        "fuse.juicefs" => "juicefs",
        "fuse.moosefs" | "fuse.mfs" => "moosefs",
        _ => return None,
    })
}

/// One line of `/proc/PID/mountinfo`: `36 35 98:0 /mnt1 /mnt2 rw,noatime
/// master:1 - ext3 /dev/root rw,errors=continue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's ID.
    pub mount_id: u64,
    /// The parent mount's ID.
    pub parent_id: u64,
    /// The file system's device, `major:minor`.
    pub device: (u32, u32),
    /// The directory of the file system this mount shows (octal escapes
    /// undone).
    pub root: Vec<u8>,
    /// Where it is mounted, in the reading process's mount namespace
    /// (octal escapes undone).
    pub mount_point: Vec<u8>,
    /// The file system type (`ext4`, `nfs4`, `fuse.glusterfs`).
    pub fs_type: String,
    /// The mount source (`server:/export`, `/dev/sda1`).
    pub source: Vec<u8>,
}

/// Undo the kernel's octal escapes (`\040` for a space, `\011`, `\012`,
/// `\134`); anything else is kept as it is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, b| a * 8 + u32::from(b - b'0'));
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

fn number<T: std::str::FromStr>(
    field: &[u8],
    name: &'static str,
    line: usize,
) -> Result<T, ParseError> {
    std::str::from_utf8(field)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError::quoting(Some(line), name, "an unsigned number", field))
}

/// Parse one `mountinfo` line (`line`: its 1-based number, for errors).
pub fn parse_mountinfo_line(text: &[u8], line: usize) -> Result<MountInfo, ParseError> {
    let fields: Vec<&[u8]> = text
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let sep = fields
        .iter()
        .position(|f| *f == b"-")
        .filter(|&p| p >= 6)
        .ok_or_else(|| {
            ParseError::quoting(
                Some(line),
                "mountinfo line",
                "six fields, optional fields, then \"-\"",
                text,
            )
        })?;
    if fields.len() < sep + 3 {
        return Err(ParseError::quoting(
            Some(line),
            "file system type and source",
            "two fields after \"-\"",
            text,
        ));
    }
    let device = {
        let d = fields[2];
        let colon = d
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| ParseError::quoting(Some(line), "device", "major:minor", d))?;
        (
            number(&d[..colon], "device major", line)?,
            number(&d[colon + 1..], "device minor", line)?,
        )
    };
    let fs_type = std::str::from_utf8(&unescape(fields[sep + 1]))
        .map_err(|_| {
            ParseError::quoting(
                Some(line),
                "file system type",
                "UTF-8 text",
                fields[sep + 1],
            )
        })?
        .to_string();
    Ok(MountInfo {
        mount_id: number(fields[0], "mount ID", line)?,
        parent_id: number(fields[1], "parent ID", line)?,
        device,
        root: unescape(fields[3]),
        mount_point: unescape(fields[4]),
        fs_type,
        source: unescape(fields[sep + 2]),
    })
}

/// Parse a whole `mountinfo`, in order; lines that do not parse are left
/// out (a mount table is read for the mount of one path: one bad line
/// must not hide the others).
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountInfo> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .filter_map(|(i, l)| parse_mountinfo_line(l, i + 1).ok())
        .collect()
}

/// The mount `path` (absolute, without `.` or `..`, links resolved) is on:
/// the one with the longest mount point that is `path` or one of its
/// parent directories; of several at one mount point, the last (mounted
/// over the others).
pub fn mount_of<'a>(mounts: &'a [MountInfo], path: &[u8]) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        let mp = m.mount_point.as_slice();
        let mp = if mp.len() > 1 && mp.ends_with(b"/") {
            &mp[..mp.len() - 1]
        } else {
            mp
        };
        let under = mp == b"/"
            || (path.starts_with(mp)
                && (path.len() == mp.len() || path.get(mp.len()) == Some(&b'/')));
        if under && best.is_none_or(|b| mp.len() >= trimmed_len(&b.mount_point)) {
            best = Some(m);
        }
    }
    best
}

fn trimmed_len(mp: &[u8]) -> usize {
    if mp.len() > 1 && mp.ends_with(b"/") {
        mp.len() - 1
    } else {
        mp.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_kernels_magic_numbers_name_network_file_systems() {
        assert_eq!(network_fs_name(0x6969), Some("nfs"));
        assert_eq!(network_fs_name(0xFF53_4D42), Some("cifs"));
        assert_eq!(network_fs_name(0xFE53_4D42), Some("smb2"));
        assert_eq!(network_fs_name(0x0116_1970), Some("gfs2"));
        assert_eq!(network_fs_name(0x7461_636f), Some("ocfs2"));
        assert_eq!(network_fs_name(0x00c3_6400), Some("ceph"));
        assert_eq!(network_fs_name(0x5346_414F), Some("afs"));
        assert_eq!(network_fs_name(0x0BD0_0BD0), Some("lustre"));
        assert_eq!(network_fs_name(0x0102_1997), Some("9p"));
        // A signed long sign-extends CIFS's magic on 32-bit targets.
        assert_eq!(network_fs_name(0xFFFF_FFFF_FF53_4D42), Some("cifs"));
        // ext4, xfs, btrfs, tmpfs, overlayfs, zfs: local; FUSE: not told.
        for local in [
            0xEF53u64,
            0x5846_5342,
            0x9123_683E,
            0x0102_1994,
            0x794c_7630,
            0x2fc1_2fc1,
            FUSE_SUPER_MAGIC,
        ] {
            assert_eq!(network_fs_name(local), None, "{local:#x}");
        }
    }

    #[test]
    fn mountinfo_types_name_network_file_systems() {
        assert_eq!(network_fs_type("nfs4"), Some("nfs"));
        assert_eq!(network_fs_type("fuse.glusterfs"), Some("glusterfs"));
        assert_eq!(network_fs_type("smb3"), Some("cifs"));
        assert_eq!(network_fs_type("fuse.ceph-fuse"), Some("ceph"));
        for local in [
            "ext4",
            "xfs",
            "tmpfs",
            "overlay",
            "fuse-overlayfs",
            "fuse.lxcfs",
            "zfs",
        ] {
            assert_eq!(network_fs_type(local), None, "{local}");
        }
    }

    const TABLE: &[u8] = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
25 22 0:22 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw\n\
40 22 0:40 / /srv/pg rw,relatime shared:20 - nfs4 filer:/export/pg rw,vers=4.2\n\
41 40 0:41 /vol /srv/pg/gluster\\040vol rw master:3 - fuse.glusterfs gl1:/vol rw,user_id=0\n\
garbage line\n\
42 22 0:42 / /srv/pg2 rw - xfs /dev/sdb1 rw\n\
43 22 0:43 / /srv/pg2 rw - nfs srv:/x rw\n";

    #[test]
    fn mountinfo_is_parsed_with_escapes_and_optional_fields() {
        let m = parse_mountinfo(TABLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[2].fs_type, "nfs4");
        assert_eq!(m[2].source, b"filer:/export/pg");
        assert_eq!(m[2].device, (0, 40));
        assert_eq!(m[3].mount_point, b"/srv/pg/gluster vol");
        assert_eq!(m[3].root, b"/vol");
        assert_eq!(m[3].parent_id, 40);
        assert!(parse_mountinfo_line(b"garbage line", 5).is_err());
        assert!(parse_mountinfo_line(b"1 2 3:4 / / rw - ext4", 1).is_err());
    }

    #[test]
    fn the_longest_and_last_mount_point_holds_a_path() {
        let m = parse_mountinfo(TABLE);
        let on = |p: &str| mount_of(&m, p.as_bytes()).map(|m| m.fs_type.as_str());
        assert_eq!(on("/srv/pg/16/main"), Some("nfs4"));
        assert_eq!(on("/srv/pg"), Some("nfs4"));
        assert_eq!(on("/srv/pgx/data"), Some("ext4"));
        assert_eq!(on("/srv/pg/gluster vol/data"), Some("fuse.glusterfs"));
        assert_eq!(on("/dev/shm"), Some("tmpfs"));
        assert_eq!(on("/srv/pg2/data"), Some("nfs"), "mounted over the xfs");
        assert_eq!(mount_of(&[], b"/x"), None);
    }

    proptest! {
        #[test]
        fn mountinfo_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let m = parse_mountinfo(&bytes);
            let _ = mount_of(&m, &bytes);
        }

        #[test]
        fn escaped_mount_points_come_back(mp in "/[a-z \\t\\\\]{0,20}") {
            let escaped: String = mp.chars().map(|c| match c {
                ' ' => "\\040".to_string(),
                '\t' => "\\011".to_string(),
                '\\' => "\\134".to_string(),
                c => c.to_string(),
            }).collect();
            let line = format!("1 0 0:1 / {escaped} rw - nfs s:/e rw");
            let m = parse_mountinfo_line(line.as_bytes(), 1).unwrap();
            prop_assert_eq!(m.mount_point, mp.into_bytes());
        }
    }
}
