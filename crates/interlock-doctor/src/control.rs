//! `global/pg_control`: how the cluster was left, and whether the next
//! start runs crash recovery (seed 004: the startup reads it to decide).
//!
//! The file is read, never written, and never through the server: a
//! stopped cluster, a crashed one and one whose server runs all read the
//! same way. Its fields are named as `pg_controldata` names them.

use std::path::Path;

use interlock_format::pgcontrol::{format_lsn, parse_pg_control, ControlFile, DbState};
use serde::Serialize;

use super::format_utc;
use crate::Error;

/// The file, read.
#[derive(Debug, Clone, Serialize)]
pub struct ControlReport {
    /// `DATADIR/global/pg_control`.
    pub path: String,
    /// `pg_control version number`.
    pub pg_control_version: u32,
    /// The major versions that write it.
    pub written_by: &'static str,
    /// `PG_VERSION` of the directory.
    pub data_dir_major: Option<String>,
    /// `Catalog version number`.
    pub catalog_version: u32,
    /// `Database system identifier` (a string: it does not fit a JSON
    /// number).
    pub system_identifier: String,
    /// `Database cluster state`, as `pg_controldata` prints it.
    pub state: &'static str,
    /// `pg_control last modified`, epoch seconds.
    pub last_modified: i64,
    /// `Latest checkpoint location`.
    pub checkpoint: String,
    /// `Latest checkpoint's REDO location`.
    pub redo: String,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u32,
    /// `Latest checkpoint's PrevTimeLineID`.
    pub prev_timeline: u32,
    /// `Time of latest checkpoint`, epoch seconds.
    pub checkpoint_time: i64,
    /// `Minimum recovery ending location`.
    pub min_recovery_point: String,
    /// Whether the stored CRC matches the file. A server refuses to start
    /// on a mismatch ("incorrect checksum in control file").
    pub crc_ok: bool,
    /// The CRC stored, hex.
    pub crc_stored: String,
    /// The CRC of the bytes, hex.
    pub crc_computed: String,
    /// Whether the next start replays WAL from `redo` because the server
    /// did not shut down cleanly (`None`: unrecognised state).
    pub crash_recovery_on_start: Option<bool>,
    /// What is wrong, beyond the CRC (the version does not match
    /// `PG_VERSION`, an unrecognised state).
    pub problems: Vec<String>,
}

/// Read `DATADIR/global/pg_control`.
///
/// # Errors
/// [`Error::ControlFile`] when the file cannot be read, is truncated, or is
/// not a pg_control of 10–18 (another major, another byte order, junk). A
/// CRC mismatch is not an error: the fields are reported with `crc_ok`
/// false, as `pg_controldata` does.
pub fn control(data_dir: &Path) -> Result<ControlReport, Error> {
    let path = data_dir.join("global").join("pg_control");
    let bytes = read_control_file(data_dir).map_err(|e| Error::ControlFile {
        path: path.clone(),
        reason: match &e {
            interlock::safe_fs::ReadError::NotFound { .. } => "does not exist".into(),
            interlock::safe_fs::ReadError::PermissionDenied { .. } => {
                "cannot be read: permission denied".into()
            }
            e => e.reason(),
        },
        hint: if e.is_not_found() {
            "give a data directory (the one that holds PG_VERSION and global/)".into()
        } else if e.is_hostile() {
            "PostgreSQL writes a regular file of 8192 bytes there: look at what replaced it".into()
        } else {
            "run as root or as the data directory's owner".into()
        },
    })?;
    let cf = parse_pg_control(&bytes).map_err(|e| Error::ControlFile {
        path: path.clone(),
        reason: format!("is not a control file of PostgreSQL 10–18: {e}"),
        hint: "if this is a 10–18 cluster, the file is damaged: restore it from a backup; \
               do not start the server on a guess (pg_resetwal loses data)"
            .into(),
    })?;
    let (data_dir_major, pgv_problem) = match interlock::safe_fs::pg_version(data_dir) {
        Ok(m) => (m, None),
        Err(e) if e.is_hostile() => (None, Some(e.to_string())),
        Err(_) => (None, None),
    };
    let mut r = report(&path, &cf, data_dir_major);
    r.problems.extend(pgv_problem);
    Ok(r)
}

/// The bytes of `DATADIR/global/pg_control`: at most PG_CONTROL_FILE_SIZE
/// bytes, never a FIFO or a device, no link in a directory another user
/// owns (safe_fs).
pub(crate) fn read_control_file(data_dir: &Path) -> Result<Vec<u8>, interlock::safe_fs::ReadError> {
    interlock::safe_fs::read(
        Some(data_dir),
        Path::new("global/pg_control"),
        interlock::safe_fs::PG_CONTROL_MAX,
    )
}

fn report(path: &Path, cf: &ControlFile, data_dir_major: Option<String>) -> ControlReport {
    let mut problems = Vec::new();
    if let Some(major) = &data_dir_major {
        if !covers(cf.majors, major) {
            problems.push(format!(
                "PG_VERSION says {major}, but pg_control version {} is written by PostgreSQL {}",
                cf.pg_control_version, cf.majors
            ));
        }
    }
    if let DbState::Unrecognized(n) = cf.state {
        problems.push(format!(
            "the cluster state {n} is not one PostgreSQL writes"
        ));
    }
    ControlReport {
        path: path.display().to_string(),
        pg_control_version: cf.pg_control_version,
        written_by: cf.majors,
        data_dir_major,
        catalog_version: cf.catalog_version_no,
        system_identifier: cf.system_identifier.to_string(),
        state: cf.state.name(),
        last_modified: cf.time,
        checkpoint: format_lsn(cf.checkpoint),
        redo: format_lsn(cf.redo),
        timeline: cf.timeline,
        prev_timeline: cf.prev_timeline,
        checkpoint_time: cf.checkpoint_time,
        min_recovery_point: format_lsn(cf.min_recovery_point),
        crc_ok: cf.crc_ok(),
        crc_stored: format!("{:08x}", cf.crc_stored),
        crc_computed: format!("{:08x}", cf.crc_computed),
        crash_recovery_on_start: cf.state.crash_recovery_on_start(),
        problems,
    }
}

/// Whether `majors` ("13–16", "10") includes `major`.
fn covers(majors: &str, major: &str) -> bool {
    let Ok(m) = major.parse::<u32>() else {
        return false;
    };
    match majors.split_once('–') {
        Some((lo, hi)) => {
            lo.parse::<u32>().is_ok_and(|lo| lo <= m) && hi.parse::<u32>().is_ok_and(|hi| m <= hi)
        }
        None => majors.parse::<u32>() == Ok(m),
    }
}

impl ControlReport {
    /// What the next start does, in one sentence; `running`: the PID of a
    /// server that runs on the directory now.
    pub fn next_start(&self, running: Option<i32>) -> String {
        if !self.crc_ok {
            return format!(
                "the server will refuse to start: the CRC stored in pg_control ({}) does not match its contents ({}) (\"incorrect checksum in control file\")",
                self.crc_stored, self.crc_computed
            );
        }
        if let Some(pid) = running {
            return format!(
                "a server runs (PID {pid}), so the state reads \"{}\"; after a clean stop the next start runs no recovery",
                self.state
            );
        }
        match (self.crash_recovery_on_start, self.state) {
            (Some(true), _) => format!(
                "crash recovery will run on the next start: the server did not shut down cleanly (state \"{}\"); WAL is replayed from the redo location {} of the checkpoint at {}",
                self.state,
                self.redo,
                self.checkpoint
            ),
            (Some(false), "shut down") => {
                "no crash recovery on the next start: the cluster was shut down cleanly".into()
            }
            (Some(false), _) => format!(
                "no crash recovery on the next start: a standby or archive recovery (state \"{}\") resumes where it stopped",
                self.state
            ),
            (None, _) => "cannot tell what the next start does: the state is not one PostgreSQL writes".into(),
        }
    }

    /// One line, for `status`.
    pub fn one_line(&self, running: Option<i32>) -> String {
        let crc = if self.crc_ok { "" } else { ", CRC MISMATCH" };
        let recovery = if !self.crc_ok {
            "the server will refuse to start"
        } else if running.is_some() {
            "running"
        } else {
            match self.crash_recovery_on_start {
                Some(true) => "crash recovery on next start",
                Some(false) => "no recovery on next start",
                None => "next start unknown",
            }
        };
        format!(
            "{}{crc}, checkpoint {} (redo {}, timeline {}) at {}; {recovery}",
            self.state,
            self.checkpoint,
            self.redo,
            self.timeline,
            format_utc(self.checkpoint_time)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_cover() {
        assert!(covers("13–16", "15"));
        assert!(!covers("13–16", "17"));
        assert!(covers("10", "10"));
        assert!(!covers("10", "x"));
    }
}
