//! System V shared memory: `shmget`, `shmctl`, `shmat`, `shmdt`.
//!
//! # Safety
//!
//! Neither rustix nor nix wraps SysV shared memory (rustix lists it under
//! "not implemented yet", nix-rust/nix #1718), so these are hand-written
//! `libc` calls. The invariants that make them sound are local:
//!
//! * `shmctl(IPC_STAT)` writes into a `shmid_ds` we own and zero first.
//! * `shmat` returns a mapping that stays valid until `shmdt`; [`Attachment`]
//!   owns it, detaches exactly once on drop, and never hands out a slice over
//!   memory another process can write to. Reads and writes copy through raw
//!   pointers with volatile accesses, within the segment size that
//!   `IPC_STAT` reports once attached, which [`attach`] itself reads (the
//!   kernel maps whole pages, so the mapping is at least that long; ipc/shm.c
//!   `do_shmat` maps `i_size_read` of the segment's file, its `shm_segsz`).
//! * errno is captured on the line right after each failing call.

#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;

/// A System V IPC key (`key_t`), e.g. the data directory's inode truncated
/// to 32 bits, as PostgreSQL 13+ uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmKey(pub i32);

/// A System V shared-memory identifier (`shmid`), as the kernel returns it
/// from `shmget` and as `postmaster.pid` line 7 records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmId(pub i32);

impl std::fmt::Display for ShmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PostgreSQL prints keys as `(unsigned long) key`, so a negative
        // key_t shows as a 20-digit number; do the same so that our words
        // match the server's log.
        write!(f, "{}", self.0 as i64 as u64)
    }
}

impl std::fmt::Display for ShmId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What `shmctl(IPC_STAT)` says about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// Number of current attaches (`shm_nattch`).
    pub nattch: u64,
    /// Size in bytes (`shm_segsz`).
    pub size: u64,
    /// Creator PID (`shm_cpid`).
    pub cpid: i32,
    /// PID of the last `shmat`/`shmdt` (`shm_lpid`).
    pub lpid: i32,
    /// Creation time, or of the last `IPC_SET` (`shm_ctime`, seconds since
    /// the epoch).
    pub ctime: i64,
    /// Owner uid (`shm_perm.uid`).
    pub uid: u32,
    /// Creator uid (`shm_perm.cuid`).
    pub cuid: u32,
    /// Mode bits, including `SHM_DEST` (0o1000) once removal was requested.
    pub mode: u32,
}

/// `shmget(key, size, flags)` — find or create a segment.
///
/// # Errors
/// EEXIST (with `IPC_CREAT|IPC_EXCL`: key taken), ENOENT (no segment, no
/// `IPC_CREAT`), EACCES (exists, not ours), EINVAL (exists but smaller than
/// `size`, or size outside SHMMIN..SHMMAX), ENOSPC (SHMMNI or SHMALL
/// reached), ENOMEM, EIDRM (being removed).
#[doc(alias = "shmget")]
pub fn get(key: ShmKey, size: usize, flags: i32) -> io::Result<ShmId> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(key.0, size, flags) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ShmId(id))
}

/// `shmget(key, size, IPC_CREAT | IPC_EXCL | 0600)` — create a new segment
/// exactly as PostgreSQL's `InternalIpcMemoryCreate` does.
pub fn create_exclusive(key: ShmKey, size: usize) -> io::Result<ShmId> {
    get(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
}

/// `shmctl(id, IPC_STAT, &buf)` — read a segment's status without attaching.
///
/// # Errors
/// EINVAL (no such id), EACCES (no read permission), EIDRM (removed).
#[doc(alias = "shmctl")]
pub fn stat(id: ShmId) -> io::Result<ShmStat> {
    // SAFETY: shmid_ds is a plain C struct of integers; all-zero is valid.
    let mut buf: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is a valid, writable shmid_ds that outlives the call.
    let rc = unsafe { libc::shmctl(id.0, libc::IPC_STAT, &mut buf) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ShmStat {
        nattch: buf.shm_nattch as u64,
        size: buf.shm_segsz as u64,
        cpid: buf.shm_cpid,
        lpid: buf.shm_lpid,
        ctime: buf.shm_ctime,
        uid: buf.shm_perm.uid,
        cuid: buf.shm_perm.cuid,
        mode: u32::from(buf.shm_perm.mode),
    })
}

/// `shmctl(id, IPC_RMID, NULL)` — mark a segment for removal. The kernel
/// destroys it after the last detach; until then it stays attached to its
/// holders but can no longer be found by key.
#[doc(alias = "shmctl")]
pub fn remove(id: ShmId) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument; NULL is allowed.
    let rc = unsafe { libc::shmctl(id.0, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An attachment (`shmat`) that detaches (`shmdt`) when dropped.
///
/// A forked child inherits the mapping (the kernel counts it in
/// `shm_nattch`); exec drops it. Dropping an `Attachment` in a forked child
/// detaches only the child's copy.
#[derive(Debug)]
pub struct Attachment {
    addr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the attachment is a process-wide mapping; the pointer is not tied
// to the thread that created it, and all access goes through volatile
// copies that take `&self`/`&mut self`.
unsafe impl Send for Attachment {}
// SAFETY: see above; `read` takes `&self` and only performs volatile loads.
unsafe impl Sync for Attachment {}

/// `shmat(id, NULL, 0)` — attach a segment. The attachment's length is the
/// segment's size as `IPC_STAT` reports it (`shm_segsz`) once attached,
/// when the segment can no longer go away (ipc/shm.c: `shm_destroy` only
/// runs at the last detach), so no read or write through it can go past
/// the mapping whatever the caller believes the size is.
///
/// # Errors
/// EINVAL (no such segment), EACCES (not permitted), EIDRM (being
/// removed), ENOMEM; an `IPC_STAT` error after attaching (it then detaches).
#[doc(alias = "shmat")]
pub fn attach(id: ShmId) -> io::Result<Attachment> {
    // SAFETY: a NULL address lets the kernel choose where to map; no memory
    // of ours is affected.
    let addr = unsafe { libc::shmat(id.0, std::ptr::null(), 0) };
    if addr as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    let Some(addr) = NonNull::new(addr) else {
        return Err(io::Error::other("shmat returned a null address"));
    };
    // Owned from here: an early return detaches.
    let mut att = Attachment { addr, len: 0 };
    let size = stat(id)?.size;
    att.len = usize::try_from(size).map_err(io::Error::other)?;
    Ok(att)
}

impl Attachment {
    /// The segment's size (`shm_segsz`): how far reads and writes reach.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has no bytes (never, for a segment `shmget`
    /// made: SHMMIN is 1).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy up to `n` bytes from the start of the segment.
    pub fn read(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.len);
        let base = self.addr.as_ptr().cast::<u8>();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: i < n <= len, the segment size IPC_STAT reported once
            // attached (set only by `attach`), so the offset stays inside
            // the mapping.
            let p = unsafe { base.add(i) };
            // SAFETY: `p` is inside the mapping, which stays valid until
            // `shmdt` in Drop. Volatile because another process may write
            // concurrently.
            let byte = unsafe { p.read_volatile() };
            out.push(byte);
        }
        out
    }

    /// Copy `bytes` to the start of the segment (truncated to its size).
    pub fn write(&mut self, bytes: &[u8]) {
        let base = self.addr.as_ptr().cast::<u8>();
        for (i, b) in bytes.iter().take(self.len).enumerate() {
            // SAFETY: i < len, so the offset stays inside the mapping.
            let p = unsafe { base.add(i) };
            // SAFETY: `p` is inside the mapping, which is writable (attached
            // without SHM_RDONLY) and valid until Drop.
            unsafe { p.write_volatile(*b) };
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `addr` came from a successful shmat and is detached only
        // here, once. A failure (EINVAL) would mean it is already gone.
        unsafe { libc::shmdt(self.addr.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, item 16: the attachment is as long as the segment, not as
    /// long as anyone says: a read asking for more gets the segment's bytes.
    #[test]
    fn attachment_is_sized_by_ipc_stat() {
        let id = get(ShmKey(libc::IPC_PRIVATE), 100, libc::IPC_CREAT | 0o600).unwrap();
        let mut att = match attach(id) {
            Ok(a) => a,
            Err(e) => {
                let _ = remove(id);
                panic!("attach: {e}");
            }
        };
        let _ = remove(id); // freed at the detach below
        assert_eq!(att.len(), 100);
        assert!(!att.is_empty());
        att.write(&[7u8; 5000]);
        let bytes = att.read(1 << 20);
        assert_eq!(bytes, vec![7u8; 100]);
        assert_eq!(att.read(3), vec![7u8; 3]);
    }
}
