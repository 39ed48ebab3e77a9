//! Signals delivered as data: `pthread_sigmask` + `signalfd`.
//!
//! `interlock hold` must pass SIGINT and SIGTERM on to its command while it
//! waits for it. Rather than run code in a signal handler, the signals are
//! blocked and read from a `signalfd`, which also tells who sent them
//! (`ssi_code`, `ssi_pid`): a terminal's Ctrl-C already reaches the whole
//! foreground process group, so only signals sent by a process are
//! forwarded, and the command does not get them twice.
//!
//! # Safety
//!
//! The calls take plain integers and `sigset_t`/`signalfd_siginfo` values
//! that live on our stack; each block names its precondition.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A received signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Signal number.
    pub signo: i32,
    /// `si_code`: `SI_USER` (0) for `kill(2)`, `SI_KERNEL` (0x80) for a
    /// terminal's Ctrl-C, and so on.
    pub code: i32,
    /// Sending PID (0 when sent by the kernel).
    pub pid: u32,
}

impl Received {
    /// Whether a process sent it with `kill`, `sigqueue` or `tgkill`
    /// (rather than the kernel, e.g. a terminal), i.e. whether the
    /// command did not already get it through its process group.
    pub fn sent_by_process(&self) -> bool {
        self.code == libc::SI_USER || self.code == libc::SI_QUEUE || self.code == libc::SI_TKILL
    }
}

/// Unblock every signal in the calling thread: for a program started by
/// one that blocks the signals it reads from a [`SignalFd`] (the blocked
/// mask is inherited across `fork` and `exec`).
pub fn unblock_all() -> io::Result<()> {
    let empty = sigset(&[]);
    // SAFETY: `empty` is an initialised sigset_t; no old mask is asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Blocked signals readable from a file descriptor.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is a valid value to clear.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: `set` is initialised; invalid numbers only return EINVAL.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

impl SignalFd {
    /// Block `signals` in the calling thread (and so in threads and
    /// children created after this call) and open a `signalfd` for them.
    pub fn new(signals: &[i32]) -> io::Result<Self> {
        let set = sigset(signals);
        // SAFETY: sigset_t is plain data; all-zero is valid before filling.
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is initialised and `old_mask` is writable.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd, old_mask })
    }

    /// Block and watch the signals `interlock hold` passes on to its command:
    /// SIGINT, SIGTERM, SIGHUP, SIGQUIT.
    pub fn for_forwarding() -> io::Result<Self> {
        Self::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT])
    }

    /// Read one pending signal, or `None` if none is pending.
    pub fn read(&self) -> io::Result<Option<Received>> {
        // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(err);
        }
        if n as usize != size {
            return Err(io::Error::other("short read from signalfd"));
        }
        Ok(Some(Received {
            signo: info.ssi_signo as i32,
            code: info.ssi_code,
            pid: info.ssi_pid,
        }))
    }
}

impl Drop for SignalFd {
    /// Restore the signal mask from before [`SignalFd::new`]. Read pending
    /// signals first if they must not be delivered.
    fn drop(&mut self) {
        // SAFETY: `old_mask` was filled by pthread_sigmask in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
