//! `/proc/PID/maps` lines, and finding System V shared memory attachments in them.
//!
//! The kernel prints each mapping as (`fs/proc/task_mmu.c`, `show_vma_header_prefix`)
//! `"%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu "`, then, if the mapping has a name, pads with
//! spaces to a fixed column and prints the name. Example:
//!
//! ```text
//! 7f2b61b0563000-7f2b61b0564000 rw-s 00000000 00:01 116293664                  /SYSV00001000 (deleted)
//! ```
//!
//! A System V segment is backed by a file named `SYSV%08x` (the key) on an internal shmem (or
//! hugetlbfs) mount, unlinked from birth, so its path reads `/SYSV<key> (deleted)`, and the
//! kernel sets that file's inode number to the shmid (`ipc/shm.c` `newseg`: "proc-ps tools use
//! this"). So `maps` tells which segments a process has attached, by ID, without any syscall
//! on the segment itself. This is how a diagnostic tool finds the processes behind a nonzero
//! `nattch`.
//!
//! Approach: the five leading columns are parsed strictly (hex addresses and offset, a 4-letter
//! permission string, hex device, decimal inode); the name is everything after the run of
//! spaces that follows the inode, because names may contain spaces. Parsing works on borrowed
//! slices, so [`maps_mentions_shmid`] can scan a whole maps file without allocating.

use crate::error::ParseError;
use crate::num;

/// One parsed line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MapsLine {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Permissions, e.g. `*b"rw-s"`: `r`/`-`, `w`/`-`, `x`/`-`, then `s` (shared) or `p`.
    pub perms: [u8; 4],
    /// Offset into the backing file.
    pub offset: u64,
    /// Device major number of the backing file.
    pub dev_major: u32,
    /// Device minor number of the backing file.
    pub dev_minor: u32,
    /// Inode of the backing file (the shmid for a System V segment), 0 for anonymous memory.
    pub inode: u64,
    /// The mapping's name (a path, `[heap]`, `[anon:…]`, …) without a trailing
    /// `" (deleted)"`; `None` for an anonymous mapping without a name.
    pub path: Option<Vec<u8>>,
    /// True if the name ended in `" (deleted)"`: the backing file was unlinked.
    pub deleted: bool,
}

impl MapsLine {
    /// True for a shared mapping (`s` in the fourth permission column).
    pub fn is_shared(&self) -> bool {
        self.perms[3] == b's'
    }

    /// The System V key, if this maps a System V shared memory segment.
    pub fn sysv_key(&self) -> Option<i32> {
        self.path.as_deref().and_then(sysv_key_of)
    }

    /// Renders the line as a 64-bit kernel prints it, with its newline (for fixtures and
    /// round-trip tests): the columns, then, for a named mapping, spaces up to column 73 (at
    /// least one) and the name, plus `" (deleted)"` if [`MapsLine::deleted`]. An unnamed
    /// mapping ends in a single space, as in the kernel's output.
    pub fn render(&self) -> Vec<u8> {
        let mut line = format!(
            "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
            self.start,
            self.end,
            String::from_utf8_lossy(&self.perms),
            self.offset,
            self.dev_major,
            self.dev_minor,
            self.inode,
        )
        .into_bytes();
        if let Some(path) = &self.path {
            // seq_setwidth(25 + 6 * sizeof(void *) - 1), seq_pad(m, ' ').
            if line.len() < NAME_COLUMN {
                line.resize(NAME_COLUMN, b' ');
            }
            line.push(b' ');
            line.extend_from_slice(path);
            if self.deleted {
                line.extend_from_slice(b" (deleted)");
            }
        }
        line.push(b'\n');
        line
    }
}

/// The width the kernel pads the columns to before a name on 64-bit (`25 + 6 * 8 - 1`).
const NAME_COLUMN: usize = 72;

/// The columns of a maps line, borrowing the name.
struct RawLine<'a> {
    start: u64,
    end: u64,
    perms: [u8; 4],
    offset: u64,
    dev_major: u32,
    dev_minor: u32,
    inode: u64,
    path: Option<&'a [u8]>,
    deleted: bool,
}

/// Which column failed, and the text found there (no allocation on the error path).
struct RawError<'a> {
    field: &'static str,
    expected: &'static str,
    found: &'a [u8],
}

/// Splits off the next space-delimited column: skips leading spaces, returns the column
/// and the rest (starting at the space after it, if any).
fn next_column(rest: &[u8]) -> (&[u8], &[u8]) {
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let rest = rest.get(start..).unwrap_or(&[]);
    let len = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
    rest.split_at_checked(len).unwrap_or((rest, &[]))
}

/// Splits `bytes` at the first `sep` into (before, after).
fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|b| *b == sep)?;
    let (a, b) = bytes.split_at_checked(i)?;
    Some((a, b.get(1..)?))
}

fn parse_raw(line: &[u8]) -> Result<RawLine<'_>, RawError<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let fail = |field, expected, found| RawError {
        field,
        expected,
        found,
    };

    let (range, rest) = next_column(line);
    let (start, end) = split_once(range, b'-')
        .and_then(|(a, b)| Some((num::parse_unsigned(a, 16)?, num::parse_unsigned(b, 16)?)))
        .ok_or_else(|| {
            fail(
                "address range",
                "two hexadecimal addresses (\"%08lx-%08lx\")",
                range,
            )
        })?;

    let (perms_col, rest) = next_column(rest);
    let perms: [u8; 4] = perms_col
        .try_into()
        .ok()
        .filter(|p: &[u8; 4]| {
            matches!(p[0], b'r' | b'-')
                && matches!(p[1], b'w' | b'-')
                && matches!(p[2], b'x' | b'-')
                && matches!(p[3], b's' | b'p')
        })
        .ok_or_else(|| {
            fail(
                "permissions",
                "four permission letters such as \"rw-s\"",
                perms_col,
            )
        })?;

    let (offset_col, rest) = next_column(rest);
    let offset = num::parse_unsigned(offset_col, 16)
        .ok_or_else(|| fail("offset", "a hexadecimal offset (\"%08llx\")", offset_col))?;

    let (dev_col, rest) = next_column(rest);
    let (dev_major, dev_minor) = split_once(dev_col, b':')
        .and_then(|(a, b)| {
            let major = u32::try_from(num::parse_unsigned(a, 16)?).ok()?;
            let minor = u32::try_from(num::parse_unsigned(b, 16)?).ok()?;
            Some((major, minor))
        })
        .ok_or_else(|| {
            fail(
                "device",
                "a hexadecimal device number (\"%02x:%02x\")",
                dev_col,
            )
        })?;

    let (inode_col, rest) = next_column(rest);
    let inode = num::dec_u64(inode_col)
        .ok_or_else(|| fail("inode", "a decimal inode number (\"%lu\")", inode_col))?;

    // The name follows the run of spaces after the inode (an unnamed mapping ends in one space).
    let name_start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let name = rest.get(name_start..).unwrap_or(&[]);
    let (path, deleted) = if name.is_empty() {
        (None, false)
    } else {
        match name.strip_suffix(b" (deleted)") {
            Some(stripped) if !stripped.is_empty() => (Some(stripped), true),
            _ => (Some(name), false),
        }
    };
    Ok(RawLine {
        start,
        end,
        perms,
        offset,
        dev_major,
        dev_minor,
        inode,
        path,
        deleted,
    })
}

/// Parses one line of `/proc/PID/maps` (a trailing newline is allowed).
///
/// The name is everything after the run of spaces following the inode, with one trailing
/// `" (deleted)"` moved into [`MapsLine::deleted`]; names may contain spaces. Errors have no
/// line number.
pub fn parse_maps_line(line: &[u8]) -> Result<MapsLine, ParseError> {
    match parse_raw(line) {
        Ok(raw) => Ok(MapsLine {
            start: raw.start,
            end: raw.end,
            perms: raw.perms,
            offset: raw.offset,
            dev_major: raw.dev_major,
            dev_minor: raw.dev_minor,
            inode: raw.inode,
            path: raw.path.map(<[u8]>::to_vec),
            deleted: raw.deleted,
        }),
        Err(e) => Err(ParseError::quoting(None, e.field, e.expected, e.found)),
    }
}

/// The System V key encoded in a mapping name: `/SYSV` followed by exactly 8 lowercase hex
/// digits (the kernel names the backing file `"SYSV%08x"`), returned as the `key_t`
/// (the 32 bits reinterpreted as signed). `None` for any other name, including one that still
/// carries `" (deleted)"`.
pub fn sysv_key_of(path: &[u8]) -> Option<i32> {
    let hex = path.strip_prefix(b"/SYSV")?;
    if hex.len() != 8 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let key = u32::try_from(num::parse_unsigned(hex, 16)?).ok()?;
    Some(key as i32)
}

/// The System V attachment described by a line, as (key, shmid), if any.
fn raw_attachment(raw: &RawLine<'_>) -> Option<(i32, i32)> {
    let key = sysv_key_of(raw.path?)?;
    let shmid = i32::try_from(raw.inode).ok()?;
    Some((key, shmid))
}

/// For each System V attachment in a maps text: (key, shmid). The kernel sets the inode of the
/// segment's backing file to the shmid (`ipc/shm.c` `newseg`: "proc-ps tools use this"), so
/// inode == shmid.
///
/// Unparsable lines are skipped, and consecutive duplicates (one attachment split into several
/// mappings, e.g. by `mprotect`) are reported once. The key is the one the segment was created
/// with; it stays in the name even after the segment is removed and its key reset to 0.
pub fn sysv_attachments(maps_text: &[u8]) -> impl Iterator<Item = (i32, i32)> + '_ {
    let mut last: Option<i32> = None;
    maps_text
        .split(|b| *b == b'\n')
        .filter_map(|line| parse_raw(line).ok())
        .filter_map(|raw| raw_attachment(&raw))
        .filter(move |&(_, shmid)| {
            let duplicate = last == Some(shmid);
            last = Some(shmid);
            !duplicate
        })
}

/// True if the maps text shows the System V segment `shmid` attached. Does not allocate: only
/// lines containing `/SYSV` are parsed, and the inode column is compared with `shmid`.
pub fn maps_mentions_shmid(maps_text: &[u8], shmid: i32) -> bool {
    if shmid < 0 {
        return false;
    }
    maps_text
        .split(|b| *b == b'\n')
        .filter(|line| line.windows(5).any(|w| w == b"/SYSV"))
        .filter_map(|line| parse_raw(line).ok())
        .filter_map(|raw| raw_attachment(&raw))
        .any(|(_, id)| id == shmid)
}

/// A System V attachment seen in a maps text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvMapping {
    /// The segment id (the mapping's inode).
    pub shmid: i32,
    /// The key the segment was created with (from the `/SYSV%08x` name).
    pub key: i32,
    /// Where it is mapped: the start of the segment in that process.
    pub start: u64,
}

/// The shared mappings of one process that matter to the interlock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedMappings {
    /// One entry per `shmat`: mappings at offset 0 of a `/SYSV` file. (An attachment split
    /// by `mprotect` shows further lines at nonzero offsets, which are not counted, so the
    /// entries for a shmid add up to that process's share of `shm_nattch`.)
    pub sysv: Vec<SysvMapping>,
    /// Handles of the POSIX dynamic shared memory segments mapped (`/dev/shm/PostgreSQL.N`).
    pub dsm_handles: Vec<u32>,
}

/// Collects the System V attachments and PostgreSQL DSM mappings of a maps text. Only
/// lines that name `/SYSV` or `/dev/shm/PostgreSQL.` are parsed; unparsable lines are
/// skipped.
pub fn shared_mappings(maps_text: &[u8]) -> SharedMappings {
    let mut out = SharedMappings::default();
    for line in maps_text.split(|b| *b == b'\n') {
        // The columns before the name hold no `/`, so a name that is a
        // `/SYSV` or `/dev/shm/` path starts at the line's first `/`.
        let interesting = line
            .iter()
            .position(|b| *b == b'/')
            .and_then(|i| line.get(i..))
            .is_some_and(|name| name.starts_with(b"/SYSV") || name.starts_with(b"/dev/"));
        if !interesting {
            continue;
        }
        let Ok(raw) = parse_raw(line) else { continue };
        if let Some((key, shmid)) = raw_attachment(&raw) {
            if raw.offset == 0 {
                out.sysv.push(SysvMapping {
                    shmid,
                    key,
                    start: raw.start,
                });
            }
            continue;
        }
        let handle = raw
            .path
            .and_then(|p| p.strip_prefix(b"/dev/shm/".as_slice()))
            .and_then(|name| std::str::from_utf8(name).ok())
            .and_then(crate::dsm::parse_dsm_file_name);
        if let Some(h) = handle {
            if raw.offset == 0 && !out.dsm_handles.contains(&h) {
                out.dsm_handles.push(h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a 6.18 x86_64 kernel: two attached segments, keys 5432001 (0x52e2c1,
    /// already removed) and 0x80000001, IDs 1 and 0, plus ordinary lines.
    const CAPTURED: &[u8] =
        b"5571677b4000-5571677b6000 r--p 00000000 fe:00 247030                     /usr/bin/cat
5571a4aff000-5571a4b20000 rw-p 00000000 00:00 0                          [heap]
7f61a3d86000-7f61a3e4a000 rw-p 00000000 00:00 0 
7ff4925d8000-7ff4925d9000 rw-s 00000000 00:01 1                          /SYSV0052e2c1 (deleted)
7ff4925d9000-7ff4925da000 rw-s 00000000 00:01 0                          /SYSV80000001 (deleted)
7ffd1c1f2000-7ffd1c213000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn sysv_line_deleted() {
        let line = b"7f2b61b0563000-7f2b61b0564000 rw-s 00000000 00:01 116293664                  /SYSV00001000 (deleted)";
        let m = parse_maps_line(line).unwrap();
        assert_eq!(m.start, 0x7f_2b61_b056_3000);
        assert_eq!(m.end, 0x7f_2b61_b056_4000);
        assert_eq!(&m.perms, b"rw-s");
        assert!(m.is_shared());
        assert_eq!(m.offset, 0);
        assert_eq!((m.dev_major, m.dev_minor), (0, 1));
        assert_eq!(m.inode, 116293664);
        assert_eq!(m.path.as_deref(), Some(&b"/SYSV00001000"[..]));
        assert!(m.deleted);
        assert_eq!(m.sysv_key(), Some(0x1000));
    }

    #[test]
    fn path_with_spaces() {
        let line = b"7f61a3e4a000-7f61a3ea1000 r--p 00001000 fe:00 316534                     /home/a b/my lib (1).so\n";
        let m = parse_maps_line(line).unwrap();
        assert_eq!(m.path.as_deref(), Some(&b"/home/a b/my lib (1).so"[..]));
        assert!(!m.deleted);
        assert_eq!(m.offset, 0x1000);
        assert_eq!((m.dev_major, m.dev_minor), (0xfe, 0));
        let del = parse_maps_line(b"1-2 r--p 0 08:02 9 /tmp/x y (deleted)").unwrap();
        assert_eq!(del.path.as_deref(), Some(&b"/tmp/x y"[..]));
        assert!(del.deleted);
    }

    #[test]
    fn anonymous_and_heap() {
        let anon = parse_maps_line(b"7f61a3d86000-7f61a3e4a000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(anon.path, None);
        assert!(!anon.deleted);
        assert_eq!(anon.inode, 0);
        assert!(!anon.is_shared());
        let bare = parse_maps_line(b"7f61a3d86000-7f61a3e4a000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(bare.path, None);
        let heap = parse_maps_line(
            b"5571a4aff000-5571a4b20000 rw-p 00000000 00:00 0                          [heap]",
        )
        .unwrap();
        assert_eq!(heap.path.as_deref(), Some(&b"[heap]"[..]));
        assert_eq!(heap.sysv_key(), None);
    }

    #[test]
    fn rejects_malformed() {
        for (line, field) in [
            (&b""[..], "address range"),
            (b"zz-1 rw-p 0 00:00 0", "address range"),
            (b"1-2 rwxq 0 00:00 0", "permissions"),
            (b"1-2 rw-pp 0 00:00 0", "permissions"),
            (b"1-2 rw-p g 00:00 0", "offset"),
            (b"1-2 rw-p 0 0000 0", "device"),
            (b"1-2 rw-p 0 00:00 x", "inode"),
            (b"1-2 rw-p 0 00:00", "inode"),
        ] {
            let e = parse_maps_line(line).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert_eq!(e.line, None);
        }
    }

    #[test]
    fn sysv_key_names() {
        assert_eq!(sysv_key_of(b"/SYSV00001000"), Some(0x1000));
        assert_eq!(sysv_key_of(b"/SYSV80000001"), Some(-2147483647));
        assert_eq!(sysv_key_of(b"/SYSVffffffff"), Some(-1));
        assert_eq!(sysv_key_of(b"/SYSV0000100"), None);
        assert_eq!(sysv_key_of(b"/SYSV000010000"), None);
        assert_eq!(sysv_key_of(b"/SYSV0000100A"), None);
        assert_eq!(sysv_key_of(b"/SYSV00001000 (deleted)"), None);
        assert_eq!(sysv_key_of(b"/tmp/SYSV00001000"), None);
        assert_eq!(sysv_key_of(b"/SYSV+0001000"), None);
    }

    #[test]
    fn render_matches_kernel_spacing() {
        for line in CAPTURED.split_inclusive(|b| *b == b'\n') {
            assert_eq!(parse_maps_line(line).unwrap().render(), line);
        }
        let long = parse_maps_line(b"7f2b61b0563000-7f2b61b0564000 rw-s 00000000 00:01 116293664                  /SYSV00001000 (deleted)").unwrap();
        let rendered = long.render();
        assert_eq!(parse_maps_line(&rendered), Ok(long));
    }

    #[test]
    fn attachments_in_captured_maps() {
        let found: Vec<_> = sysv_attachments(CAPTURED).collect();
        assert_eq!(found, vec![(5432001, 1), (-2147483647, 0)]);
        assert!(maps_mentions_shmid(CAPTURED, 0));
        assert!(maps_mentions_shmid(CAPTURED, 1));
        assert!(!maps_mentions_shmid(CAPTURED, 2));
        assert!(!maps_mentions_shmid(CAPTURED, -1));
    }

    #[test]
    fn attachments_dedup_and_skip_garbage() {
        let text = b"garbage line
7f00-7f01 rw-s 00000000 00:01 65538                      /SYSV0052e2c1 (deleted)
7f01-7f02 r--s 00001000 00:01 65538                      /SYSV0052e2c1 (deleted)
7f02-7f03 rw-s 00000000 00:01 65539                      /SYSV0052e2c2
7f03-7f04 rw-s 00000000 00:05 123                        /dev/shm/PostgreSQL.1234
7f04-7f05 rw-s 00000000 00:01 99999999999                /SYSV0052e2c3 (deleted)
7f05-7f06 rw-s 00000000 00:01 65538                      /SYSV0052e2c1 (deleted)";
        let found: Vec<_> = sysv_attachments(text).collect();
        assert_eq!(
            found,
            vec![(0x52e2c1, 65538), (0x52e2c2, 65539), (0x52e2c1, 65538)]
        );
        assert!(maps_mentions_shmid(text, 65539));
        assert!(!maps_mentions_shmid(text, 123));
        assert_eq!(sysv_attachments(b"").count(), 0);
    }
}

#[cfg(test)]
mod shared_mappings_tests {
    use super::*;

    #[test]
    fn attachments_dsm_and_split_mappings() {
        let text = b"7f0000000000-7f0000001000 rw-s 00000000 00:01 65538                      /SYSV0052e2c1 (deleted)
7f0000001000-7f0000002000 r--s 00001000 00:01 65538                      /SYSV0052e2c1 (deleted)
7f0000003000-7f0000004000 rw-s 00000000 00:01 65538                      /SYSV0052e2c1 (deleted)
7f0000010000-7f0000020000 rw-s 00000000 00:19 12                         /dev/shm/PostgreSQL.1804289383
7f0000020000-7f0000030000 rw-s 00000000 00:19 13                         /dev/shm/PostgreSQL.42 (deleted)
7f0000030000-7f0000040000 rw-s 00000000 00:19 14                         /dev/shm/other
7f0000040000-7f0000050000 r--p 00000000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
";
        let m = shared_mappings(text);
        // Attached twice (two offset-0 mappings); the split tail is not counted.
        assert_eq!(
            m.sysv,
            vec![
                SysvMapping {
                    shmid: 65538,
                    key: 5432001,
                    start: 0x7f0000000000
                },
                SysvMapping {
                    shmid: 65538,
                    key: 5432001,
                    start: 0x7f0000003000
                },
            ]
        );
        assert_eq!(m.dsm_handles, vec![1804289383, 42]);
        assert_eq!(
            shared_mappings(b"garbage\n/SYSV\n"),
            SharedMappings::default()
        );
    }
}
