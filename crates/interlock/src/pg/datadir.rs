//! The server's data directory checks, `checkDataDir`: in
//! `src/backend/postmaster/postmaster.c` in 10, in
//! `src/backend/utils/init/miscinit.c` from 11 on.

use std::path::Path;

/// Why `checkDataDir` stops the server, with each version's FATAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirProblem {
    /// `stat` fails with `ENOENT`: "data directory \"%s\" does not exist".
    Missing,
    /// Not a directory: "specified data directory \"%s\" is not a
    /// directory".
    NotADirectory,
    /// Owned by another user than the server's: "data directory \"%s\" has
    /// wrong ownership".
    WrongOwnership,
    /// 10: any group or world bit: "data directory \"%s\" has group or
    /// world access".
    GroupOrWorldAccess,
    /// 11+: a group write bit or any world bit: "data directory \"%s\" has
    /// invalid permissions".
    InvalidPermissions,
}

impl DataDirProblem {
    /// The server's FATAL message for the directory shown as `shown` (the
    /// server prints its `DataDir`: absolute, as given).
    pub fn fatal(&self, shown: &Path) -> String {
        let d = shown.display();
        match self {
            DataDirProblem::Missing => format!("data directory \"{d}\" does not exist"),
            DataDirProblem::NotADirectory => {
                format!("specified data directory \"{d}\" is not a directory")
            }
            DataDirProblem::WrongOwnership => format!("data directory \"{d}\" has wrong ownership"),
            DataDirProblem::GroupOrWorldAccess => {
                format!("data directory \"{d}\" has group or world access")
            }
            DataDirProblem::InvalidPermissions => {
                format!("data directory \"{d}\" has invalid permissions")
            }
        }
    }

    /// The modes the server accepts, for a mode problem: `"0700"` (10) or
    /// `"0700 or 0750"` (11+), as its DETAIL puts it ("Permissions should
    /// be u=rwx (0700)." / "… or u=rwx,g=rx (0750)."); `None` otherwise.
    pub fn accepted_modes(&self) -> Option<&'static str> {
        match self {
            DataDirProblem::GroupOrWorldAccess => Some("0700"),
            DataDirProblem::InvalidPermissions => Some("0700 or 0750"),
            _ => None,
        }
    }
}

/// `checkDataDir`'s owner rule (all versions): the directory's owner must
/// be the user the server runs as (`stat_buf.st_uid != geteuid()` →
/// [`DataDirProblem::WrongOwnership`]).
///
/// # Errors
/// [`DataDirProblem::WrongOwnership`] when the two differ.
pub fn check_data_dir_owner(dir_uid: u32, server_uid: u32) -> Result<(), DataDirProblem> {
    if dir_uid == server_uid {
        Ok(())
    } else {
        Err(DataDirProblem::WrongOwnership)
    }
}

/// `checkDataDir`'s mode rule for the directory's `mode` (its permission
/// bits; file type bits are ignored). 10 refuses any group or world bit
/// (`S_IRWXG | S_IRWXO`, `src/backend/postmaster/postmaster.c`); 11 and
/// later refuse a group write bit or any world bit (`PG_MODE_MASK_GROUP`,
/// `src/include/common/file_perm.h`, used in
/// `src/backend/utils/init/miscinit.c`), so 0700 and 0750 pass. A major
/// not known (`None`) is judged by the rule of 11 and later.
///
/// # Errors
/// [`DataDirProblem::GroupOrWorldAccess`] (10) or
/// [`DataDirProblem::InvalidPermissions`] (11+).
pub fn check_data_dir_mode(major: Option<u32>, mode: u32) -> Result<(), DataDirProblem> {
    let (refused, problem) = if major == Some(10) {
        (0o077, DataDirProblem::GroupOrWorldAccess)
    } else {
        (0o027, DataDirProblem::InvalidPermissions)
    };
    if mode & refused == 0 {
        Ok(())
    } else {
        Err(problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_per_version() {
        use DataDirProblem::{GroupOrWorldAccess as G, InvalidPermissions as I};
        let table: &[(Option<u32>, u32, Result<(), DataDirProblem>)] = &[
            (Some(10), 0o700, Ok(())),
            (Some(10), 0o40700, Ok(())),
            (Some(10), 0o750, Err(G)),
            (Some(10), 0o710, Err(G)),
            (Some(10), 0o701, Err(G)),
            (Some(10), 0o755, Err(G)),
            (Some(11), 0o700, Ok(())),
            (Some(11), 0o750, Ok(())),
            (Some(11), 0o740, Ok(())),
            (Some(11), 0o770, Err(I)),
            (Some(11), 0o701, Err(I)),
            (Some(11), 0o755, Err(I)),
            (Some(18), 0o750, Ok(())),
            (Some(18), 0o777, Err(I)),
            (None, 0o750, Ok(())),
            (None, 0o705, Err(I)),
        ];
        for &(major, mode, want) in table {
            assert_eq!(check_data_dir_mode(major, mode), want, "{major:?} {mode:o}");
        }
        assert_eq!(G.accepted_modes(), Some("0700"));
        assert_eq!(I.accepted_modes(), Some("0700 or 0750"));
        assert_eq!(DataDirProblem::WrongOwnership.accepted_modes(), None);
    }

    #[test]
    fn owner() {
        assert_eq!(check_data_dir_owner(26, 26), Ok(()));
        assert_eq!(
            check_data_dir_owner(0, 26),
            Err(DataDirProblem::WrongOwnership)
        );
    }

    #[test]
    fn fatal_texts() {
        let p = Path::new("/srv/pg data");
        let table = [
            (
                DataDirProblem::Missing,
                "data directory \"/srv/pg data\" does not exist",
            ),
            (
                DataDirProblem::NotADirectory,
                "specified data directory \"/srv/pg data\" is not a directory",
            ),
            (
                DataDirProblem::WrongOwnership,
                "data directory \"/srv/pg data\" has wrong ownership",
            ),
            (
                DataDirProblem::GroupOrWorldAccess,
                "data directory \"/srv/pg data\" has group or world access",
            ),
            (
                DataDirProblem::InvalidPermissions,
                "data directory \"/srv/pg data\" has invalid permissions",
            ),
        ];
        for (problem, text) in table {
            assert_eq!(problem.fatal(p), text);
        }
    }
}
