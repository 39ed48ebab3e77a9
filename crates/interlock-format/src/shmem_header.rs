//! `PGShmemHeader`, the 56-byte header at the start of PostgreSQL's System V interlock segment.
//!
//! Field list from `src/include/storage/pg_shmem.h`, unchanged in PostgreSQL 10–18 (facts
//! sheet §2). In the default `shared_memory_type = mmap` the System V segment is *only* this
//! header: the real shared memory is an anonymous mapping, and the tiny segment exists so that
//! the kernel's attach count (`shm_nattch`) tells whether any process still uses the data
//! directory.
//!
//! The layout implemented here is the LP64 Linux one (x86_64, aarch64): `Size`, pointers,
//! `dev_t` and `ino_t` are 8 bytes, `pid_t` 4, values in native byte order. Other ABIs (32-bit,
//! macOS with a 4-byte `dev_t`) and PostgreSQL 19 (48-byte header without `index`) lay it out
//! differently; this crate does not guess, it only documents the assumption. Fields are decoded
//! with `from_ne_bytes` from fixed offsets rather than by transmuting a `#[repr(C)]` struct,
//! which keeps the crate free of `unsafe` and makes the offsets explicit and testable.

use crate::error::ParseError;

/// `PGShmemMagic`: 679834894 = 0x2885750E, the same in every version.
pub const PG_SHMEM_MAGIC: i32 = 679_834_894;

/// `sizeof(PGShmemHeader)` on LP64 Linux for PostgreSQL 10–18.
pub const HEADER_SIZE: usize = 56;

/// Offsets of the fields (LP64 Linux).
const OFF_MAGIC: usize = 0;
const OFF_CREATOR_PID: usize = 4;
const OFF_TOTAL_SIZE: usize = 8;
const OFF_FREE_OFFSET: usize = 16;
const OFF_DSM_CONTROL: usize = 24;
// 4 bytes of padding at 28.
const OFF_INDEX: usize = 32;
const OFF_DEVICE: usize = 40;
const OFF_INODE: usize = 48;

/// A decoded `PGShmemHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShmemHeader {
    /// `magic`: [`PG_SHMEM_MAGIC`] in a PostgreSQL segment.
    pub magic: i32,
    /// `creatorPID`: the postmaster's PID ("set but unread" since the 2019 back-patch).
    pub creator_pid: i32,
    /// `totalsize`: the full main shared memory size (56 for an mmap-mode interlock segment
    /// written by this library).
    pub total_size: u64,
    /// `freeoffset`: allocator high-water mark; stale (56) in an mmap-mode interlock segment.
    pub free_offset: u64,
    /// `dsm_control`: the handle of the dynamic shared memory control segment, 0 if none or
    /// after a clean shutdown.
    pub dsm_control: u32,
    /// `index`: the `ShmemIndex` pointer (a process-local address; 0 in the interlock segment).
    pub index: u64,
    /// `device`: `st_dev` of the data directory.
    pub device: u64,
    /// `inode`: `st_ino` of the data directory.
    pub inode: u64,
}

impl ShmemHeader {
    /// The header of an interlock-only segment as this library creates it: magic set,
    /// `total_size` and `free_offset` equal to the header size, no DSM control segment,
    /// no index.
    pub fn new_interlock(creator_pid: i32, device: u64, inode: u64) -> Self {
        ShmemHeader {
            magic: PG_SHMEM_MAGIC,
            creator_pid,
            total_size: HEADER_SIZE as u64,
            free_offset: HEADER_SIZE as u64,
            dsm_control: 0,
            index: 0,
            device,
            inode,
        }
    }

    /// Decodes the first [`HEADER_SIZE`] bytes of a segment. Longer input is fine (a
    /// `sysv`-mode segment is much larger); the magic is *not* checked, so that a caller can
    /// report what a foreign segment contains (see [`ShmemHeader::has_magic`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ParseError::new(
                None,
                "shared memory header",
                format!("at least {HEADER_SIZE} bytes (sizeof(PGShmemHeader) on 64-bit Linux)"),
                format!("{} bytes", bytes.len()),
            ));
        }
        Ok(ShmemHeader {
            magic: i32::from_ne_bytes(read(bytes, OFF_MAGIC)),
            creator_pid: i32::from_ne_bytes(read(bytes, OFF_CREATOR_PID)),
            total_size: u64::from_ne_bytes(read(bytes, OFF_TOTAL_SIZE)),
            free_offset: u64::from_ne_bytes(read(bytes, OFF_FREE_OFFSET)),
            dsm_control: u32::from_ne_bytes(read(bytes, OFF_DSM_CONTROL)),
            index: u64::from_ne_bytes(read(bytes, OFF_INDEX)),
            device: u64::from_ne_bytes(read(bytes, OFF_DEVICE)),
            inode: u64::from_ne_bytes(read(bytes, OFF_INODE)),
        })
    }

    /// Encodes the header; the padding at offset 28 is zero.
    pub fn render(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        write(&mut out, OFF_MAGIC, &self.magic.to_ne_bytes());
        write(&mut out, OFF_CREATOR_PID, &self.creator_pid.to_ne_bytes());
        write(&mut out, OFF_TOTAL_SIZE, &self.total_size.to_ne_bytes());
        write(&mut out, OFF_FREE_OFFSET, &self.free_offset.to_ne_bytes());
        write(&mut out, OFF_DSM_CONTROL, &self.dsm_control.to_ne_bytes());
        write(&mut out, OFF_INDEX, &self.index.to_ne_bytes());
        write(&mut out, OFF_DEVICE, &self.device.to_ne_bytes());
        write(&mut out, OFF_INODE, &self.inode.to_ne_bytes());
        out
    }

    /// True if the magic is [`PG_SHMEM_MAGIC`].
    pub fn has_magic(&self) -> bool {
        self.magic == PG_SHMEM_MAGIC
    }

    /// PostgreSQL's "pertains to DataDir" test (`PGSharedMemoryAttach`): the magic is right
    /// and the recorded device and inode are those of the data directory.
    pub fn matches(&self, device: u64, inode: u64) -> bool {
        self.has_magic() && self.device == device && self.inode == inode
    }
}

/// Reads `N` bytes at `offset`, or zeros if out of range (callers check the length first).
fn read<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    bytes
        .get(offset..offset.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

/// Writes `value` at `offset` (a no-op if out of range, which fixed offsets never are).
fn write(out: &mut [u8], offset: usize, value: &[u8]) {
    if let Some(slot) = out.get_mut(offset..offset.saturating_add(value.len())) {
        slot.copy_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(PG_SHMEM_MAGIC, 0x2885_750E);
        #[cfg(target_endian = "little")]
        assert_eq!(PG_SHMEM_MAGIC.to_ne_bytes(), [0x0E, 0x75, 0x85, 0x28]);
    }

    #[test]
    fn interlock_header_layout() {
        let h = ShmemHeader::new_interlock(4242, 0xfe00, 0x1_8000_0001);
        let bytes = h.render();
        assert_eq!(&bytes[0..4], &PG_SHMEM_MAGIC.to_ne_bytes());
        assert_eq!(&bytes[4..8], &4242i32.to_ne_bytes());
        assert_eq!(&bytes[8..16], &56u64.to_ne_bytes());
        assert_eq!(&bytes[16..24], &56u64.to_ne_bytes());
        assert_eq!(&bytes[24..28], &[0; 4]);
        assert_eq!(&bytes[28..32], &[0; 4]);
        assert_eq!(&bytes[32..40], &[0; 8]);
        assert_eq!(&bytes[40..48], &0xfe00u64.to_ne_bytes());
        assert_eq!(&bytes[48..56], &0x1_8000_0001u64.to_ne_bytes());
        assert_eq!(ShmemHeader::parse(&bytes), Ok(h));
        assert!(h.matches(0xfe00, 0x1_8000_0001));
        assert!(!h.matches(0xfe01, 0x1_8000_0001));
        assert!(!h.matches(0xfe00, 0x1_8000_0002));
    }

    #[test]
    fn parse_real_fields_and_longer_input() {
        let mut bytes = vec![0u8; 4096];
        bytes[0..4].copy_from_slice(&PG_SHMEM_MAGIC.to_ne_bytes());
        bytes[4..8].copy_from_slice(&777i32.to_ne_bytes());
        bytes[8..16].copy_from_slice(&(150u64 << 20).to_ne_bytes());
        bytes[16..24].copy_from_slice(&123456u64.to_ne_bytes());
        bytes[24..28].copy_from_slice(&0x3b9a_ca00u32.to_ne_bytes());
        bytes[28..32].copy_from_slice(&[0xaa; 4]);
        bytes[32..40].copy_from_slice(&0x7f00_0000_1000u64.to_ne_bytes());
        bytes[40..48].copy_from_slice(&66306u64.to_ne_bytes());
        bytes[48..56].copy_from_slice(&1234567u64.to_ne_bytes());
        let h = ShmemHeader::parse(&bytes).unwrap();
        assert_eq!(
            h,
            ShmemHeader {
                magic: PG_SHMEM_MAGIC,
                creator_pid: 777,
                total_size: 150 << 20,
                free_offset: 123456,
                dsm_control: 0x3b9a_ca00,
                index: 0x7f00_0000_1000,
                device: 66306,
                inode: 1234567,
            }
        );
        // Padding is not preserved, everything else is.
        let rendered = h.render();
        assert_eq!(&rendered[28..32], &[0; 4]);
        assert_eq!(ShmemHeader::parse(&rendered), Ok(h));
    }

    #[test]
    fn foreign_magic_parses_but_does_not_match() {
        let mut h = ShmemHeader::new_interlock(1, 2, 3);
        h.magic = 0x1234;
        let parsed = ShmemHeader::parse(&h.render()).unwrap();
        assert!(!parsed.has_magic());
        assert!(!parsed.matches(2, 3));
    }

    #[test]
    fn rejects_short() {
        let e = ShmemHeader::parse(&[0u8; 48]).unwrap_err();
        assert_eq!(e.line, None);
        assert_eq!(
            e.to_string(),
            "shared memory header: expected at least 56 bytes (sizeof(PGShmemHeader) on 64-bit Linux), found 48 bytes"
        );
        assert!(ShmemHeader::parse(&[]).is_err());
    }
}
