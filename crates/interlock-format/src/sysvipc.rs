//! `/proc/sysvipc/shm`: the kernel's table of System V shared memory segments.
//!
//! The kernel prints each segment with (`ipc/shm.c`, `sysvipc_shm_proc_show`, 64-bit):
//!
//! ```text
//! "%10d %10d  %4o %21lu %5u %5u  %5lu %5u %5u %5u %5u %10llu %10llu %10llu %21lu %21lu\n"
//! key   shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
//! ```
//!
//! after a header line starting with `key`. Pitfalls that generic parsers (the `procfs` crate
//! among them) get wrong, and that matter for the interlock:
//! * `key` is a *signed* `%d`: PostgreSQL 13+ derives keys from inode numbers, so negative keys
//!   are normal;
//! * `perms` is *octal* and includes `SHM_DEST` (01000, the segment is marked for removal and
//!   disappears at the last detach) and `SHM_LOCKED` (02000): `1600` means "0600, removed";
//! * uids and gids are 32-bit (values above 65535 are common with user namespaces);
//! * `rss` and `swap` are missing on old kernels, and 32-bit kernels use narrower columns.
//!
//! Approach: columns are split on whitespace rather than by fixed widths, because values can be
//! wider than their columns (a negative key takes 11 characters) and widths differ by
//! architecture; each column is then parsed with the radix and signedness the kernel uses.
//! A renderer produces the kernel's exact spacing for fixtures and round-trip tests.

use crate::error::{quote, ParseError};
use crate::num;

/// `SHM_DEST`: the segment is marked for removal (`IPC_RMID` while attached).
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED`: the segment is locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;

/// The header line the 64-bit kernel prints, including its newline.
pub const SHM_TABLE_HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

/// Column names, in order, for error messages.
const COLUMNS: [&str; 16] = [
    "key", "shmid", "perms", "size", "cpid", "lpid", "nattch", "uid", "gid", "cuid", "cgid",
    "atime", "dtime", "ctime", "rss", "swap",
];

/// One row of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShmEntry {
    /// The key (`key_t`, signed); 0 (`IPC_PRIVATE`) also after the segment was marked for
    /// removal, since the kernel then resets the key.
    pub key: i32,
    /// The shared memory ID.
    pub shmid: i32,
    /// The mode word: permission bits plus [`SHM_DEST`] and [`SHM_LOCKED`].
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// PID of the creator, in the reader's PID namespace (0 if not visible there).
    pub cpid: i32,
    /// PID of the last `shmat`/`shmdt`, in the reader's PID namespace.
    pub lpid: i32,
    /// Number of current attaches.
    pub nattch: u64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Last attach time (seconds since the epoch, 0 if never).
    pub atime: i64,
    /// Last detach time.
    pub dtime: i64,
    /// Last change time.
    pub ctime: i64,
    /// Resident bytes; `None` on kernels that do not print the column.
    pub rss: Option<u64>,
    /// Swapped-out bytes; `None` on kernels that do not print the column.
    pub swap: Option<u64>,
}

impl ShmEntry {
    /// True if `SHM_DEST` is set: the segment was removed with `IPC_RMID` while still attached
    /// and will vanish at the last detach.
    pub fn is_marked_for_removal(&self) -> bool {
        self.mode & SHM_DEST != 0
    }

    /// True if `SHM_LOCKED` is set.
    pub fn is_locked(&self) -> bool {
        self.mode & SHM_LOCKED != 0
    }

    /// The permission bits (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o777
    }

    /// Renders the row exactly as a 64-bit kernel prints it, with its newline. The `rss` and
    /// `swap` columns are printed when either is `Some` (a missing one as 0).
    pub fn render(&self) -> String {
        let mut line = format!(
            "{:10} {:10}  {:4o} {:21} {:5} {:5}  {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10}",
            self.key,
            self.shmid,
            self.mode,
            self.size,
            self.cpid as u32,
            self.lpid as u32,
            self.nattch,
            self.uid,
            self.gid,
            self.cuid,
            self.cgid,
            self.atime as u64,
            self.dtime as u64,
            self.ctime as u64,
        );
        if self.rss.is_some() || self.swap.is_some() {
            line.push_str(&format!(
                " {:21} {:21}",
                self.rss.unwrap_or(0),
                self.swap.unwrap_or(0)
            ));
        }
        line.push('\n');
        line
    }
}

/// Parses the whole table. The header line (starting with `key`) is skipped when present,
/// and blank lines are ignored. Errors carry the 1-based line number.
pub fn parse_shm_table(text: &str) -> Result<Vec<ShmEntry>, ParseError> {
    let mut entries = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let n = i.saturating_add(1);
        let trimmed = line.trim();
        if trimmed.is_empty() || (n == 1 && trimmed.starts_with("key")) {
            continue;
        }
        entries.push(parse_shm_line(line).map_err(|e| e.at_line(n))?);
    }
    Ok(entries)
}

/// Parses one data row (without or with its newline). Errors have no line number.
pub fn parse_shm_line(line: &str) -> Result<ShmEntry, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let cols: Vec<&[u8]> = num::fields(line.as_bytes()).collect();
    if cols.len() != 14 && cols.len() != 16 {
        return Err(ParseError {
            line: None,
            field: "shm table row",
            expected: "14 or 16 whitespace-separated columns (key shmid perms size cpid lpid \
                       nattch uid gid cuid cgid atime dtime ctime, then rss swap on kernels \
                       that print them)"
                .to_owned(),
            found: format!("{} columns in {}", cols.len(), quote(line.as_bytes())),
        });
    }
    let col = |i: usize| cols.get(i).copied().unwrap_or(&[]);
    let bad = |i: usize, expected: &str| {
        ParseError::quoting(
            None,
            COLUMNS.get(i).copied().unwrap_or("column"),
            expected,
            col(i),
        )
    };
    let signed = |i: usize| {
        num::dec_i32(col(i)).ok_or_else(|| bad(i, "a signed 32-bit decimal number (\"%d\")"))
    };
    let pid = |i: usize| {
        num::dec_u64(col(i))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| bad(i, "a process ID (\"%u\", at most 2147483647)"))
    };
    let unsigned = |i: usize| {
        num::dec_u64(col(i)).ok_or_else(|| bad(i, "an unsigned decimal number (\"%lu\")"))
    };
    let id = |i: usize| {
        num::dec_u32(col(i))
            .ok_or_else(|| bad(i, "a 32-bit unsigned decimal user or group ID (\"%u\")"))
    };
    // `%10llu` of a time64_t: negative times print as huge unsigned values.
    let time = |i: usize| {
        num::dec_u64(col(i))
            .map(|v| v as i64)
            .ok_or_else(|| bad(i, "a time in seconds since the epoch (\"%llu\")"))
    };
    let mode = num::parse_unsigned(col(2), 8)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| bad(2, "an octal mode word (\"%4o\"), such as 600 or 1600"))?;
    let (rss, swap) = if cols.len() == 16 {
        (Some(unsigned(14)?), Some(unsigned(15)?))
    } else {
        (None, None)
    };
    Ok(ShmEntry {
        key: signed(0)?,
        shmid: signed(1)?,
        mode,
        size: unsigned(3)?,
        cpid: pid(4)?,
        lpid: pid(5)?,
        nattch: unsigned(6)?,
        uid: id(7)?,
        gid: id(8)?,
        cuid: id(9)?,
        cgid: id(10)?,
        atime: time(11)?,
        dtime: time(12)?,
        ctime: time(13)?,
        rss,
        swap,
    })
}

/// Renders a table as a 64-bit kernel prints it: [`SHM_TABLE_HEADER`] then one row per entry.
pub fn render_shm_table(entries: &[ShmEntry]) -> String {
    let mut out = String::from(SHM_TABLE_HEADER);
    for entry in entries {
        out.push_str(&entry.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a 6.18 x86_64 kernel: a segment with negative key 0x80000001 and one
    /// marked for removal (key reset to 0, perms 1600), both attached once.
    const CAPTURED: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
-2147483647          0   600                    56  4125  4125      1     0     0     0     0 1795240231          0 1795240231                     0                     0
         0          1  1600                    56  4125  4125      1     0     0     0     0 1795240231          0 1795240231                     0                     0
";

    #[test]
    fn captured_table() {
        let entries = parse_shm_table(CAPTURED).unwrap();
        assert_eq!(entries.len(), 2);
        let first = &entries[0];
        assert_eq!(first.key, -2147483647);
        assert_eq!(first.shmid, 0);
        assert_eq!(first.mode, 0o600);
        assert!(!first.is_marked_for_removal());
        assert_eq!(first.size, 56);
        assert_eq!(first.cpid, 4125);
        assert_eq!(first.nattch, 1);
        assert_eq!(first.atime, 1795240231);
        assert_eq!(first.dtime, 0);
        assert_eq!(first.rss, Some(0));
        let second = &entries[1];
        assert_eq!(second.key, 0);
        assert_eq!(second.mode, 0o1600);
        assert!(second.is_marked_for_removal());
        assert!(!second.is_locked());
        assert_eq!(second.permissions(), 0o600);
        assert_eq!(render_shm_table(&entries), CAPTURED);
    }

    #[test]
    fn user_namespace_uid_and_dest_flag() {
        let line = "   5432001      32769  1600                    56 12345 12346      0 100000 100000 100000 100000 1795240231 1795240300 1795240231                  4096                     0";
        let e = parse_shm_line(line).unwrap();
        assert_eq!(e.key, 5432001);
        assert_eq!(e.shmid, 32769);
        assert_eq!(e.uid, 100000);
        assert_eq!(e.gid, 100000);
        assert_eq!(e.cuid, 100000);
        assert_eq!(e.cgid, 100000);
        assert_eq!(e.mode, 0o1600);
        assert!(e.is_marked_for_removal());
        assert_eq!(e.permissions(), 0o600);
        assert_eq!(e.nattch, 0);
        assert_eq!(e.rss, Some(4096));
        assert_eq!(e.render(), format!("{line}\n"));
    }

    #[test]
    fn old_kernel_without_rss_swap_and_no_header() {
        let text =
            "   5432001      32769   600       56  100  100      2  1000  1000  1000  1000 1 2 3\n";
        let entries = parse_shm_table(text).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].rss, None);
        assert_eq!(entries[0].swap, None);
        assert_eq!(entries[0].ctime, 3);
        let again = parse_shm_table(&render_shm_table(&entries)).unwrap();
        assert_eq!(again, entries);
    }

    #[test]
    fn locked_flag() {
        let line = "1 2 3600 56 1 1 0 0 0 0 0 0 0 0";
        let e = parse_shm_line(line).unwrap();
        assert!(e.is_locked());
        assert!(e.is_marked_for_removal());
        assert_eq!(e.permissions(), 0o600);
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = format!("{CAPTURED}         1          2   689   56 1 1 0 0 0 0 0 0 0 0\n");
        let e = parse_shm_table(&text).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.field, "perms");
        assert!(
            e.to_string()
                .starts_with("line 4 (perms): expected an octal mode word"),
            "{e}"
        );

        let e = parse_shm_table("key\n1 2 3\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.found.starts_with("3 columns in \"1 2 3\""), "{e}");

        let e = parse_shm_line("1 2 600 56 1 1 0 -5 0 0 0 0 0 0").unwrap_err();
        assert_eq!(e.field, "uid");
        assert_eq!(e.line, None);
        let e = parse_shm_line("1 2 600 56 1 1 0 4294967296 0 0 0 0 0 0").unwrap_err();
        assert_eq!(e.field, "uid");
        let e = parse_shm_line("2147483648 2 600 56 1 1 0 0 0 0 0 0 0 0").unwrap_err();
        assert_eq!(e.field, "key");
        let e = parse_shm_line("1 2 600 56 -1 1 0 0 0 0 0 0 0 0").unwrap_err();
        assert_eq!(e.field, "cpid");
    }

    #[test]
    fn empty_table() {
        assert_eq!(parse_shm_table(SHM_TABLE_HEADER).unwrap(), vec![]);
        assert_eq!(parse_shm_table("").unwrap(), vec![]);
        assert_eq!(render_shm_table(&[]), SHM_TABLE_HEADER);
    }
}
