//! `global/pg_control` of PostgreSQL 10–18 (`ControlFileData`,
//! `src/include/catalog/pg_control.h`), as an x86_64 server writes it.
//!
//! The layout changes between majors (the facts sheet, §6): the version at
//! offset 8 decides where the checkpoint copy and the CRC are. The CRC is
//! CRC-32C over the raw bytes before the `crc` field, padding included,
//! stored native-endian (little-endian here); it is recomputed over the
//! bytes as read, never over re-serialised fields. As the server does, the
//! version is checked before the CRC: a file of an unknown version is an
//! error, one with a bad CRC is parsed and flagged.

use crate::ParseError;

/// `DBState`, named as `pg_controldata` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    /// 0 `DB_STARTUP`.
    Startup,
    /// 1 `DB_SHUTDOWNED`.
    ShutDown,
    /// 2 `DB_SHUTDOWNED_IN_RECOVERY`.
    ShutDownInRecovery,
    /// 3 `DB_SHUTDOWNING`.
    ShuttingDown,
    /// 4 `DB_IN_CRASH_RECOVERY`.
    InCrashRecovery,
    /// 5 `DB_IN_ARCHIVE_RECOVERY`.
    InArchiveRecovery,
    /// 6 `DB_IN_PRODUCTION`.
    InProduction,
    /// Any other value.
    Unrecognized(u32),
}

impl DbState {
    fn from_raw(v: u32) -> Self {
        match v {
            0 => DbState::Startup,
            1 => DbState::ShutDown,
            2 => DbState::ShutDownInRecovery,
            3 => DbState::ShuttingDown,
            4 => DbState::InCrashRecovery,
            5 => DbState::InArchiveRecovery,
            6 => DbState::InProduction,
            n => DbState::Unrecognized(n),
        }
    }

    /// The words `pg_controldata` prints for "Database cluster state".
    pub fn name(self) -> &'static str {
        match self {
            DbState::Startup => "starting up",
            DbState::ShutDown => "shut down",
            DbState::ShutDownInRecovery => "shut down in recovery",
            DbState::ShuttingDown => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
            DbState::Unrecognized(_) => "unrecognized status code",
        }
    }

    /// Whether the next start replays WAL from the last checkpoint's redo
    /// point because the server did not shut down cleanly. A standby or a
    /// recovery target stopped in recovery resumes its recovery instead;
    /// that is not a crash recovery.
    pub fn crash_recovery_on_start(self) -> Option<bool> {
        match self {
            DbState::ShutDown | DbState::ShutDownInRecovery | DbState::InArchiveRecovery => {
                Some(false)
            }
            DbState::Startup
            | DbState::ShuttingDown
            | DbState::InCrashRecovery
            | DbState::InProduction => Some(true),
            DbState::Unrecognized(_) => None,
        }
    }
}

/// The fields of `pg_control` that say how the cluster was left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFile {
    /// `system_identifier`.
    pub system_identifier: u64,
    /// `pg_control_version` (1002 for 10, … 1800 for 18).
    pub pg_control_version: u32,
    /// The major versions that write this `pg_control_version`.
    pub majors: &'static str,
    /// `catalog_version_no`.
    pub catalog_version_no: u32,
    /// `state`.
    pub state: DbState,
    /// `time`: when the file was last updated (epoch seconds).
    pub time: i64,
    /// `checkPoint`: the latest checkpoint record's location.
    pub checkpoint: u64,
    /// `checkPointCopy.redo`: where replay starts.
    pub redo: u64,
    /// `checkPointCopy.ThisTimeLineID`.
    pub timeline: u32,
    /// `checkPointCopy.PrevTimeLineID`.
    pub prev_timeline: u32,
    /// `checkPointCopy.time`: when the latest checkpoint was taken.
    pub checkpoint_time: i64,
    /// `minRecoveryPoint`.
    pub min_recovery_point: u64,
    /// The CRC stored in the file.
    pub crc_stored: u32,
    /// The CRC computed over the bytes before it.
    pub crc_computed: u32,
}

impl ControlFile {
    /// Whether the stored CRC matches the bytes.
    pub fn crc_ok(&self) -> bool {
        self.crc_stored == self.crc_computed
    }
}

/// Where one version's fields are.
struct Layout {
    majors: &'static str,
    /// Offset of `checkPointCopy`.
    checkpoint_copy: usize,
    /// Offset of `time` inside `CheckPoint`.
    checkpoint_time: usize,
    min_recovery_point: usize,
    crc: usize,
}

fn layout(version: u32) -> Option<Layout> {
    let (majors, checkpoint_copy, checkpoint_time, min_recovery_point, crc) = match version {
        1002 => ("10", 48, 56, 136, 288),
        1100 => ("11", 40, 56, 128, 280),
        1201 => ("12", 40, 64, 136, 288),
        1300 => ("13–16", 40, 64, 136, 288),
        1700 => ("17", 40, 64, 136, 288),
        1800 => ("18", 40, 64, 136, 292),
        _ => return None,
    };
    Some(Layout {
        majors,
        checkpoint_copy,
        checkpoint_time,
        min_recovery_point,
        crc,
    })
}

/// `pg_control_version` → major versions, for the error of a file this
/// parser does not know.
fn version_list() -> &'static str {
    "1002 (10), 1100 (11), 1201 (12), 1300 (13–16), 1700 (17) or 1800 (18)"
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `PG_CONTROL_VERSION` of a major (src/include/catalog/pg_control.h).
pub fn control_version_of(major: u32) -> Option<u32> {
    Some(match major {
        10 => 1002,
        11 => 1100,
        12 => 1201,
        13..=16 => 1300,
        17 => 1700,
        18 => 1800,
        _ => return None,
    })
}

/// Why a server of `major` stops on a `global/pg_control` of these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRefusal {
    /// The FATAL primary message, where this version's text is known.
    pub message: Option<String>,
    /// What is wrong with the file, for a human.
    pub why: String,
}

/// What a server of `major` (10–18) does with these bytes of
/// `global/pg_control` at startup, in the order of `ReadControlFile`
/// (src/backend/access/transam/xlog.c): it reads `sizeof(ControlFileData)`
/// bytes, compares `pg_control_version` with its own, then checks the CRC.
/// `None`: it accepts the file (the later checks, such as the catalog
/// version, are not replayed here).
pub fn startup_refusal(bytes: &[u8], major: u32) -> Option<ControlRefusal> {
    let expected = control_version_of(major)?;
    let struct_size = match major {
        11 => 288,
        _ => 296,
    };
    if bytes.len() < struct_size {
        return Some(ControlRefusal {
            // 12+: `ReadControlFile`'s ERRCODE_DATA_CORRUPTED report.
            message: (major >= 12).then(|| {
                format!(
                    "could not read file \"global/pg_control\": read {} of {struct_size}",
                    bytes.len()
                )
            }),
            why: format!(
                "it has {} bytes, fewer than the {struct_size} the server reads",
                bytes.len()
            ),
        });
    }
    let version = u32_at(bytes, 8);
    if version != expected {
        return Some(ControlRefusal {
            message: Some("database files are incompatible with server".into()),
            why: match layout(version) {
                Some(l) => format!(
                    "its pg_control_version {version} is PostgreSQL {}'s, and the server ({major}) expects {expected}",
                    l.majors
                ),
                None => format!(
                    "its pg_control_version is {version} (0x{version:08x}), and the server ({major}) expects {expected}{}",
                    if version.swap_bytes() == expected { ": the other byte order" } else { "" }
                ),
            },
        });
    }
    let cf = parse_pg_control(bytes).ok()?;
    if !cf.crc_ok() {
        return Some(ControlRefusal {
            message: Some("incorrect checksum in control file".into()),
            why: format!(
                "its CRC-32C is {:08x}, the bytes give {:08x}",
                cf.crc_stored, cf.crc_computed
            ),
        });
    }
    None
}

/// A `global/pg_control` of `major` as initdb writes it (8192 bytes,
/// zero-padded, CRC-32C stored), with only the fields this crate reads set:
/// `state` and a fixed system identifier. For fixtures and demonstrations
/// of directories whose server is not PostgreSQL; `None` for a major
/// outside 10–18.
pub fn minimal_control_file(major: u32, state: DbState) -> Option<Vec<u8>> {
    let version = control_version_of(major)?;
    let l = layout(version)?;
    let mut b = vec![0u8; 8192];
    b[0..8].copy_from_slice(&0x7000_0000_0000_0001u64.to_le_bytes());
    b[8..12].copy_from_slice(&version.to_le_bytes());
    let raw: u32 = match state {
        DbState::Startup => 0,
        DbState::ShutDown => 1,
        DbState::ShutDownInRecovery => 2,
        DbState::ShuttingDown => 3,
        DbState::InCrashRecovery => 4,
        DbState::InArchiveRecovery => 5,
        DbState::InProduction => 6,
        DbState::Unrecognized(n) => n,
    };
    b[16..20].copy_from_slice(&raw.to_le_bytes());
    let crc = crc32c(&b[..l.crc]);
    b[l.crc..l.crc + 4].copy_from_slice(&crc.to_le_bytes());
    Some(b)
}

/// Parse the bytes of `global/pg_control`.
///
/// # Errors
/// Fewer bytes than the version's struct (a truncated file), or a
/// `pg_control_version` that is not one of 10–18's (another major, another
/// byte order, or not a control file).
pub fn parse_pg_control(bytes: &[u8]) -> Result<ControlFile, ParseError> {
    if bytes.len() < 16 {
        return Err(ParseError::new(
            None,
            "pg_control",
            "at least 16 bytes (system identifier, version, catalog version)",
            format!("{} bytes", bytes.len()),
        ));
    }
    let version = u32_at(bytes, 8);
    let Some(l) = layout(version) else {
        let swapped = version.swap_bytes();
        return Err(ParseError::new(
            None,
            "pg_control_version",
            version_list(),
            if layout(swapped).is_some() {
                format!("{version} (0x{version:08x}): {swapped} in the other byte order")
            } else {
                format!("{version} (0x{version:08x})")
            },
        ));
    };
    let need = l.crc + 4;
    if bytes.len() < need {
        return Err(ParseError::new(
            None,
            "pg_control",
            format!("at least {need} bytes for pg_control_version {version}"),
            format!("{} bytes (truncated)", bytes.len()),
        ));
    }
    let cp = l.checkpoint_copy;
    Ok(ControlFile {
        system_identifier: u64_at(bytes, 0),
        pg_control_version: version,
        majors: l.majors,
        catalog_version_no: u32_at(bytes, 12),
        state: DbState::from_raw(u32_at(bytes, 16)),
        time: u64_at(bytes, 24) as i64,
        checkpoint: u64_at(bytes, 32),
        redo: u64_at(bytes, cp),
        timeline: u32_at(bytes, cp + 8),
        prev_timeline: u32_at(bytes, cp + 12),
        checkpoint_time: u64_at(bytes, cp + l.checkpoint_time) as i64,
        min_recovery_point: u64_at(bytes, l.min_recovery_point),
        crc_stored: u32_at(bytes, l.crc),
        crc_computed: crc32c(&bytes[..l.crc]),
    })
}

/// An LSN as PostgreSQL prints it: `%X/%X` (high and low 32 bits).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), initial value
/// and final XOR 0xFFFFFFFF: PostgreSQL's `INIT_CRC32C`/`COMP_CRC32C`/`FIN_CRC32C`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control file of `version` with the given state and CRC fixed up.
    fn file(version: u32, state: u32) -> Vec<u8> {
        let l = layout(version).unwrap();
        let mut b = vec![0u8; 8192];
        b[0..8].copy_from_slice(&0x7000_0000_0000_0001u64.to_le_bytes());
        b[8..12].copy_from_slice(&version.to_le_bytes());
        b[12..16].copy_from_slice(&202_307_071u32.to_le_bytes());
        b[16..20].copy_from_slice(&state.to_le_bytes());
        b[32..40].copy_from_slice(&0x1_0000_0028u64.to_le_bytes());
        let cp = l.checkpoint_copy;
        b[cp..cp + 8].copy_from_slice(&0x1_0000_0010u64.to_le_bytes());
        b[cp + 8..cp + 12].copy_from_slice(&3u32.to_le_bytes());
        b[cp + l.checkpoint_time..cp + l.checkpoint_time + 8]
            .copy_from_slice(&1_700_000_000i64.to_le_bytes());
        let crc = crc32c(&b[..l.crc]);
        b[l.crc..l.crc + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn every_version_reads_its_own_layout() {
        for v in [1002, 1100, 1201, 1300, 1700, 1800] {
            let c = parse_pg_control(&file(v, 6)).unwrap();
            assert!(c.crc_ok(), "{v}");
            assert_eq!(c.state, DbState::InProduction);
            assert_eq!(c.redo, 0x1_0000_0010, "{v}");
            assert_eq!(c.timeline, 3, "{v}");
            assert_eq!(c.checkpoint_time, 1_700_000_000, "{v}");
            assert_eq!(format_lsn(c.checkpoint), "1/28");
            assert_eq!(c.state.crash_recovery_on_start(), Some(true));
        }
    }

    #[test]
    fn a_flipped_byte_is_a_crc_mismatch_not_an_error() {
        let mut b = file(1300, 1);
        b[100] ^= 1;
        let c = parse_pg_control(&b).unwrap();
        assert!(!c.crc_ok());
        assert_eq!(c.state.name(), "shut down");
    }

    #[test]
    fn truncated_and_unknown_versions_are_errors() {
        let b = file(1800, 1);
        let e = parse_pg_control(&b[..200]).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut other = b.clone();
        other[8..12].copy_from_slice(&1800u32.to_be_bytes());
        let e = parse_pg_control(&other).unwrap_err();
        assert!(e.to_string().contains("other byte order"), "{e}");
        assert!(parse_pg_control(&[]).is_err());
        assert!(parse_pg_control(&[0xff; 9000]).is_err());
    }

    #[test]
    fn what_the_server_refuses_in_read_control_file_order() {
        for (major, v) in [
            (10, 1002),
            (11, 1100),
            (12, 1201),
            (15, 1300),
            (17, 1700),
            (18, 1800),
        ] {
            assert_eq!(startup_refusal(&file(v, 1), major), None, "{major}");
            let mut bad = file(v, 1);
            bad[100] ^= 1;
            let r = startup_refusal(&bad, major).unwrap();
            assert_eq!(
                r.message.as_deref(),
                Some("incorrect checksum in control file")
            );
        }
        // The version is checked before the CRC.
        let mut other = file(1700, 1);
        other[100] ^= 1;
        let r = startup_refusal(&other, 15).unwrap();
        assert_eq!(
            r.message.as_deref(),
            Some("database files are incompatible with server")
        );
        assert!(r.why.contains("PostgreSQL 17's"), "{}", r.why);
        let mut swapped = file(1300, 1);
        swapped[8..12].copy_from_slice(&1300u32.to_be_bytes());
        let r = startup_refusal(&swapped, 14).unwrap();
        assert!(r.why.contains("other byte order"), "{}", r.why);
        // Shorter than the struct: 12+ names the read, 10 and 11 are not replayed word for word.
        let short = &file(1300, 1)[..100];
        assert_eq!(
            startup_refusal(short, 16).unwrap().message.as_deref(),
            Some("could not read file \"global/pg_control\": read 100 of 296")
        );
        assert_eq!(
            startup_refusal(&file(1100, 1)[..200], 11).unwrap().message,
            None
        );
        // A major this crate does not know: nothing is claimed.
        assert_eq!(startup_refusal(&[0; 10], 9), None);
        // The fixture writer's files are accepted.
        for major in 10..=18 {
            let f = minimal_control_file(major, DbState::ShutDown).unwrap();
            assert_eq!(startup_refusal(&f, major), None, "{major}");
            assert_eq!(parse_pg_control(&f).unwrap().state, DbState::ShutDown);
        }
    }

    #[test]
    fn states_as_pg_controldata_names_them() {
        assert_eq!(DbState::from_raw(2).name(), "shut down in recovery");
        assert_eq!(DbState::from_raw(9).name(), "unrecognized status code");
        assert_eq!(DbState::from_raw(9).crash_recovery_on_start(), None);
        assert_eq!(DbState::from_raw(1).crash_recovery_on_start(), Some(false));
    }
}
