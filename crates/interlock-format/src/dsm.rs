//! PostgreSQL's dynamic shared memory (DSM) control segment, the file
//! `/dev/shm/PostgreSQL.<handle>` whose handle is stored in the interlock segment's
//! `dsm_control` field (facts sheet §4; `src/backend/storage/ipc/dsm.c`).
//!
//! Layout (LP64 Linux, native byte order):
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `magic` u32 | `PG_DYNSHMEM_CONTROL_MAGIC` = 0x9a503d32 |
//! | 4 | `nitems` u32 | slots in use (a high-water mark; freed slots have refcnt 0) |
//! | 8 | `maxitems` u32 | `64 + 5 × MaxBackends` |
//! | 16 | `item[maxitems]` | 24 bytes each in PostgreSQL 10–13, 40 bytes in 14+ |
//!
//! Each item starts with `handle` u32 and `refcnt` u32 (2+ active, 1 moribund, 0 free); the
//! rest (`impl_private_pm_handle`, `pinned`, and in 14+ `first_page`/`npages`) is not needed to
//! decide what to clean up and is not decoded.
//!
//! Approach: the version is not recorded in the segment, so the item size is inferred from the
//! file length. PostgreSQL creates the segment with exactly `dsm_control_bytes_needed(maxitems)`
//! = `16 + maxitems × sizeof(dsm_control_item)` bytes, and a POSIX segment's file length is
//! that size, so exactly one of the two layouts fits (maxitems is never 0). Anything that fits
//! neither is rejected rather than guessed at, because the caller may delete the segments
//! listed here.

use crate::error::ParseError;

/// `PG_DYNSHMEM_CONTROL_MAGIC`.
pub const DSM_CONTROL_MAGIC: u32 = 0x9a50_3d32;

/// `offsetof(dsm_control_header, item)` on LP64.
pub const DSM_CONTROL_HEADER_SIZE: usize = 16;

/// `sizeof(dsm_control_item)` in PostgreSQL 10–13.
pub const DSM_ITEM_SIZE_PG10: usize = 24;

/// `sizeof(dsm_control_item)` in PostgreSQL 14 and later.
pub const DSM_ITEM_SIZE_PG14: usize = 40;

/// Field name used in errors.
const FIELD: &str = "dsm control segment";

/// One slot of the control segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DsmItem {
    /// The segment's handle (its `/dev/shm/PostgreSQL.<handle>` name for the posix type).
    pub handle: u32,
    /// Reference count: 0 free slot, 1 moribund, 2 or more in use.
    pub refcnt: u32,
}

/// A decoded control segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DsmControl {
    /// `nitems`: how many slots have been used.
    pub nitems: u32,
    /// `maxitems`: how many slots the segment has.
    pub maxitems: u32,
    /// `sizeof(dsm_control_item)`: [`DSM_ITEM_SIZE_PG10`] (24, PostgreSQL 10–13) or
    /// [`DSM_ITEM_SIZE_PG14`] (40, 14+).
    pub item_size: usize,
    /// The first `nitems` slots.
    pub items: Vec<DsmItem>,
}

impl DsmControl {
    /// Handles of segments PostgreSQL's `dsm_cleanup_using_control_segment` would destroy:
    /// refcnt != 0 and, in the 40-byte (14+) layout, not a main-region handle (odd).
    ///
    /// Since PostgreSQL 14, odd handles denote DSM carved out of the main shared memory region
    /// (`is_main_region_dsm_handle`); they have no file of their own. In 10–13 handles come
    /// from `random()` and may be odd, and every one is a real segment.
    pub fn live_segment_handles(&self) -> Vec<u32> {
        let pg14 = self.item_size == DSM_ITEM_SIZE_PG14;
        self.items
            .iter()
            .filter(|item| item.refcnt != 0)
            .filter(|item| !(pg14 && item.handle & 1 == 1))
            .map(|item| item.handle)
            .collect()
    }

    /// The PostgreSQL versions the item layout belongs to, for messages.
    pub fn layout_versions(&self) -> &'static str {
        match self.item_size {
            DSM_ITEM_SIZE_PG10 => "PostgreSQL 10–13",
            DSM_ITEM_SIZE_PG14 => "PostgreSQL 14 or later",
            _ => "an unknown PostgreSQL version",
        }
    }
}

/// Reads a native-endian u32 at `offset`.
fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let slice = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_ne_bytes(slice.try_into().ok()?))
}

/// `16 + maxitems × item_size`, if it fits in `usize`.
fn bytes_needed(maxitems: u32, item_size: usize) -> Option<usize> {
    usize::try_from(maxitems)
        .ok()?
        .checked_mul(item_size)?
        .checked_add(DSM_CONTROL_HEADER_SIZE)
}

/// Parses a control segment (the whole file). Rejects a wrong magic, `maxitems` 0,
/// `nitems > maxitems`, and a length that is not exactly `16 + maxitems × 24` or
/// `16 + maxitems × 40`.
pub fn parse_dsm_control(bytes: &[u8]) -> Result<DsmControl, ParseError> {
    let short = || {
        ParseError::new(
            None,
            FIELD,
            format!("at least {DSM_CONTROL_HEADER_SIZE} bytes (the control segment header)"),
            format!("{} bytes", bytes.len()),
        )
    };
    if bytes.len() < DSM_CONTROL_HEADER_SIZE {
        return Err(short());
    }
    let magic = u32_at(bytes, 0).ok_or_else(short)?;
    let nitems = u32_at(bytes, 4).ok_or_else(short)?;
    let maxitems = u32_at(bytes, 8).ok_or_else(short)?;
    if magic != DSM_CONTROL_MAGIC {
        return Err(ParseError::new(
            None,
            FIELD,
            format!("the magic number {DSM_CONTROL_MAGIC:#010x} (PG_DYNSHMEM_CONTROL_MAGIC)"),
            format!("{magic:#010x}"),
        ));
    }
    if maxitems == 0 {
        return Err(ParseError::new(
            None,
            FIELD,
            "a nonzero maxitems (PostgreSQL allocates 64 + 5 × MaxBackends slots)",
            "maxitems 0",
        ));
    }
    if nitems > maxitems {
        return Err(ParseError::new(
            None,
            FIELD,
            format!("nitems at most maxitems ({maxitems})"),
            format!("nitems {nitems}"),
        ));
    }
    let item_size = [DSM_ITEM_SIZE_PG10, DSM_ITEM_SIZE_PG14]
        .into_iter()
        .find(|size| bytes_needed(maxitems, *size) == Some(bytes.len()))
        .ok_or_else(|| {
            let show = |size| {
                bytes_needed(maxitems, size)
                    .map_or_else(|| "too many".to_owned(), |n| n.to_string())
            };
            ParseError::new(
                None,
                FIELD,
                format!(
                    "16 + maxitems × 24 bytes (PostgreSQL 10–13) or 16 + maxitems × 40 bytes \
                     (PostgreSQL 14+), i.e. {} or {} for maxitems {maxitems}",
                    show(DSM_ITEM_SIZE_PG10),
                    show(DSM_ITEM_SIZE_PG14),
                ),
                format!("{} bytes", bytes.len()),
            )
        })?;

    // nitems <= maxitems and the length covers maxitems slots, so every read succeeds.
    let items = bytes
        .get(DSM_CONTROL_HEADER_SIZE..)
        .unwrap_or(&[])
        .chunks_exact(item_size)
        .take(usize::try_from(nitems).unwrap_or(usize::MAX))
        .map(|slot| DsmItem {
            handle: u32_at(slot, 0).unwrap_or(0),
            refcnt: u32_at(slot, 4).unwrap_or(0),
        })
        .collect();
    Ok(DsmControl {
        nitems,
        maxitems,
        item_size,
        items,
    })
}

/// Renders a control segment (for tests and fixtures): the header, then `maxitems` slots of
/// `item_size` bytes (at least 8) holding `items` in order, all other bytes zero.
///
/// `parse_dsm_control(&render_dsm_control(c)) == Ok(c)` when `item_size` is 24 or 40,
/// `maxitems >= 1`, and `items.len() == nitems <= maxitems`. Items beyond `maxitems` are
/// dropped.
pub fn render_dsm_control(ctl: &DsmControl) -> Vec<u8> {
    let slot = ctl.item_size.max(8);
    let slots = usize::try_from(ctl.maxitems).unwrap_or(0);
    let len = slots
        .saturating_mul(slot)
        .saturating_add(DSM_CONTROL_HEADER_SIZE);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&DSM_CONTROL_MAGIC.to_ne_bytes());
    out.extend_from_slice(&ctl.nitems.to_ne_bytes());
    out.extend_from_slice(&ctl.maxitems.to_ne_bytes());
    out.extend_from_slice(&[0; 4]);
    for i in 0..slots {
        let start = out.len();
        if let Some(item) = ctl.items.get(i) {
            out.extend_from_slice(&item.handle.to_ne_bytes());
            out.extend_from_slice(&item.refcnt.to_ne_bytes());
        }
        out.resize(start.saturating_add(slot), 0);
    }
    out
}

/// The name PostgreSQL's posix DSM implementation gives a segment under `/dev/shm`
/// (`shm_open("/PostgreSQL.%u")`).
pub fn dsm_file_name(handle: u32) -> String {
    format!("PostgreSQL.{handle}")
}

/// The handle in a `/dev/shm` file name, if it is exactly a name PostgreSQL creates:
/// `PostgreSQL.` followed by the `%u` of a nonzero handle (no sign, no leading zeros).
/// Handle 0 is `DSM_HANDLE_INVALID`, which PostgreSQL never creates.
pub fn parse_dsm_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("PostgreSQL.")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(item_size: usize, maxitems: u32, items: &[(u32, u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&DSM_CONTROL_MAGIC.to_ne_bytes());
        bytes.extend_from_slice(&(items.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(&maxitems.to_ne_bytes());
        bytes.extend_from_slice(&[0xee; 4]);
        for i in 0..maxitems as usize {
            let mut slot = vec![0x5a; item_size];
            let (h, r) = items.get(i).copied().unwrap_or((0, 0));
            slot[0..4].copy_from_slice(&h.to_ne_bytes());
            slot[4..8].copy_from_slice(&r.to_ne_bytes());
            bytes.extend_from_slice(&slot);
        }
        bytes
    }

    #[test]
    fn pg14_layout_skips_main_region_and_free_slots() {
        let items = [
            (1000, 2),
            (1001, 2),
            (2000, 0),
            (3000, 1),
            (4001, 3),
            (5000, 2),
        ];
        let bytes = segment(40, 64 + 5 * 10, &items);
        assert_eq!(bytes.len(), 16 + 114 * 40);
        let ctl = parse_dsm_control(&bytes).unwrap();
        assert_eq!(ctl.item_size, 40);
        assert_eq!(ctl.nitems, 6);
        assert_eq!(ctl.maxitems, 114);
        assert_eq!(ctl.items.len(), 6);
        assert_eq!(
            ctl.items[1],
            DsmItem {
                handle: 1001,
                refcnt: 2
            }
        );
        assert_eq!(ctl.live_segment_handles(), vec![1000, 3000, 5000]);
        assert_eq!(ctl.layout_versions(), "PostgreSQL 14 or later");
        assert_eq!(parse_dsm_control(&render_dsm_control(&ctl)), Ok(ctl));
    }

    #[test]
    fn pg10_layout_keeps_odd_handles() {
        let items = [(1_804_289_383, 2), (846_930_886, 0), (1_681_692_777, 1)];
        let bytes = segment(24, 64 + 5 * 100, &items);
        let ctl = parse_dsm_control(&bytes).unwrap();
        assert_eq!(ctl.item_size, 24);
        assert_eq!(
            ctl.live_segment_handles(),
            vec![1_804_289_383, 1_681_692_777]
        );
        assert_eq!(ctl.layout_versions(), "PostgreSQL 10–13");
        let rendered = render_dsm_control(&ctl);
        assert_eq!(rendered.len(), bytes.len());
        assert_eq!(parse_dsm_control(&rendered), Ok(ctl));
    }

    #[test]
    fn empty_control_segment() {
        let ctl = parse_dsm_control(&segment(40, 1, &[])).unwrap();
        assert_eq!(ctl.items, vec![]);
        assert!(ctl.live_segment_handles().is_empty());
    }

    #[test]
    fn rejects_bad_segments() {
        assert!(parse_dsm_control(&[])
            .unwrap_err()
            .to_string()
            .contains("at least 16 bytes"));
        let mut bad_magic = segment(40, 4, &[]);
        bad_magic[0] ^= 1;
        let e = parse_dsm_control(&bad_magic).unwrap_err();
        assert!(e.expected.contains("0x9a503d32"), "{e}");
        let e = parse_dsm_control(&segment(40, 0, &[])).unwrap_err();
        assert!(e.found.contains("maxitems 0"), "{e}");
        let e = parse_dsm_control(&segment(40, 1, &[(2, 2), (4, 2)])[..56]).unwrap_err();
        assert!(e.found.contains("nitems 2"), "{e}");
        let mut long = segment(40, 4, &[(2, 2)]);
        long.push(0);
        let e = parse_dsm_control(&long).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dsm control segment: expected 16 + maxitems × 24 bytes (PostgreSQL 10–13) or 16 + maxitems × 40 bytes (PostgreSQL 14+), i.e. 112 or 176 for maxitems 4, found 177 bytes"
        );
        let mut huge = segment(24, 1, &[]);
        huge[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_dsm_control(&huge).is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(dsm_file_name(3_000_000_000), "PostgreSQL.3000000000");
        assert_eq!(
            parse_dsm_file_name("PostgreSQL.3000000000"),
            Some(3_000_000_000)
        );
        assert_eq!(parse_dsm_file_name("PostgreSQL.4294967295"), Some(u32::MAX));
        assert_eq!(parse_dsm_file_name("PostgreSQL.4294967296"), None);
        assert_eq!(parse_dsm_file_name("PostgreSQL.0"), None);
        assert_eq!(parse_dsm_file_name("PostgreSQL.012"), None);
        assert_eq!(parse_dsm_file_name("PostgreSQL.+12"), None);
        assert_eq!(parse_dsm_file_name("PostgreSQL."), None);
        assert_eq!(parse_dsm_file_name("PostgreSQL.12.tmp"), None);
        assert_eq!(parse_dsm_file_name("postgresql.12"), None);
        assert_eq!(parse_dsm_file_name("sem.PostgreSQL.12"), None);
        for h in [1, 2, 1_804_289_383, u32::MAX] {
            assert_eq!(parse_dsm_file_name(&dsm_file_name(h)), Some(h));
        }
    }
}
