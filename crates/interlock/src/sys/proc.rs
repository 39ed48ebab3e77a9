//! Process creation and credentials that rustix does not cover: `fork`,
//! the keeper process that holds the interlock for an exec'd child, the
//! pre-exec handshake, `setresuid`/`setresgid`/`setgroups`, and `atexit`.
//!
//! # Safety
//!
//! After `fork()` in a process that may have other threads, the child may
//! only call async-signal-safe functions until it execs or exits: no
//! allocation, no locks, no `std::io`. The child code here is therefore
//! written as straight-line raw syscalls on integers and stack buffers, and
//! ends in `_exit`. Every value the child needs is computed before `fork`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `fork()` — duplicate the calling process.
///
/// Returns `None` in the child and `Some(child_pid)` in the parent. The
/// child inherits every SysV attachment, so it counts in `shm_nattch` of the
/// interlock segment exactly like a PostgreSQL backend does.
///
/// # Safety
///
/// If the calling process has more than one thread, the child may only call
/// async-signal-safe functions until it execs or exits (see `fork(2)` and
/// `signal-safety(7)`); in particular it must not allocate. A
/// single-threaded caller has no such restriction.
///
/// # Errors
/// EAGAIN (process limit), ENOMEM.
pub unsafe fn fork() -> io::Result<Option<i32>> {
    // SAFETY: the caller upholds the async-signal-safety contract above.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Fork a child that stays attached to every SysV segment the caller has
/// attached (an attachment is inherited across `fork`, not across `exec`)
/// and does nothing else until a signal ends it: a stand-in for a backend
/// that holds the interlock while it works. Returns the child's PID.
///
/// The child starts a session of its own, as each PostgreSQL child does (a
/// stopped member would otherwise get its orphaned process group SIGHUPped
/// when the parent dies: `kill_orphaned_pgrp` in kernel/exit.c), unblocks
/// every signal, closes every descriptor it inherited (so it keeps no pipe
/// of its parent open), and sleeps in `pause(2)`. It only makes those
/// system calls, so this is safe to call from a process with other
/// threads. This returns once the child is in its own session, so that a
/// SIGSTOP sent right away cannot catch it in its parent's process group.
///
/// # Errors
/// EAGAIN (process limit), ENOMEM, EMFILE.
pub fn fork_idle() -> io::Result<i32> {
    // Closed by the child (close_range) once it is in its own session.
    let (ready_r, ready_w) = pipe_cloexec()?;
    // SAFETY: the child below makes only async-signal-safe system calls on
    // integers and stack data (setsid, pthread_sigmask, close_range, pause)
    // and never returns, so it neither allocates nor runs destructors.
    match unsafe { fork() }? {
        Some(pid) => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            // EOF once the child has closed its copy (or died).
            while let Err(rustix::io::Errno::INTR) = rustix::io::read(&ready_r, &mut byte) {}
            Ok(pid)
        }
        None => {
            // SAFETY: setsid makes one system call on no arguments.
            unsafe { libc::setsid() };
            unblock_all_signals();
            // SAFETY: close_range only closes descriptors; the child uses
            // none of them (closing the ready pipe tells the parent).
            unsafe { libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0) };
            loop {
                // SAFETY: pause makes one system call on no arguments.
                unsafe { libc::pause() };
            }
        }
    }
}

/// Create a pipe whose both ends are close-on-exec.
fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((r, w))
}

/// Close every descriptor except those in `keep` (sorted, distinct).
/// Async-signal-safe: only `close_range(2)` syscalls.
fn close_all_except(keep: &[RawFd; 2]) {
    let mut lo: libc::c_uint = 0;
    for &fd in keep {
        let fd = fd as libc::c_uint;
        if fd > lo {
            // SAFETY: close_range only closes descriptors; none of them is
            // used by the remaining child code except those in `keep`.
            unsafe { libc::syscall(libc::SYS_close_range, lo, fd - 1, 0) };
        }
        lo = fd + 1;
    }
    // SAFETY: as above, for the tail above the highest kept descriptor.
    unsafe { libc::syscall(libc::SYS_close_range, lo, libc::c_uint::MAX, 0) };
}

/// Block every signal in the calling thread. Async-signal-safe.
fn block_all_signals() {
    // SAFETY: sigset_t is plain data; all-zero is a valid value to fill.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: `set` is initialised; a NULL old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Unblock every signal in the calling thread. Async-signal-safe.
fn unblock_all_signals() {
    // SAFETY: sigset_t is plain data; all-zero is a valid value to clear.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is initialised; a NULL old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Read exactly 4 bytes, retrying on EINTR. Async-signal-safe.
fn read4(fd: RawFd) -> Option<[u8; 4]> {
    let mut buf = [0u8; 4];
    let mut got = 0usize;
    while got < 4 {
        // SAFETY: the destination is our stack buffer, bounded by 4 - got.
        let r = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), 4 - got) };
        if r > 0 {
            got += r as usize;
        } else if r < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return None;
        }
    }
    Some(buf)
}

/// Write all of `bytes`, retrying on EINTR. Async-signal-safe.
fn write_all(fd: RawFd, bytes: &[u8]) -> bool {
    let mut done = 0usize;
    while done < bytes.len() {
        // SAFETY: the source is a live slice, bounded by its length.
        let r = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if r > 0 {
            done += r as usize;
        } else if r < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return false;
        }
    }
    true
}

/// The name (`comm`) a keeper gives itself, by which the diagnosis knows
/// it: a keeper holds a pidfd on the command it keeps, and lives exactly as
/// long as that command.
pub const KEEPER_NAME: &std::ffi::CStr = c"interlock-keep";

/// The keeper side of [`prepare_kept_command`]; runs in the forked child and
/// never returns.
fn keeper_main(pid_in: RawFd, ack_out: RawFd) -> ! {
    // Terminal signals (Ctrl-C reaches the whole foreground process group)
    // must not end the keeper before the command it keeps: block them all.
    // Only SIGKILL can end it early.
    block_all_signals();
    let mut keep = [pid_in, ack_out];
    keep.sort_unstable();
    close_all_except(&keep);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from a static.
    unsafe { libc::prctl(libc::PR_SET_NAME, KEEPER_NAME.as_ptr(), 0, 0, 0) };

    let Some(raw_pid) = read4(pid_in) else {
        // The command never got as far as announcing itself; nothing to keep.
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(0) }
    };
    let pid = i32::from_ne_bytes(raw_pid);
    // The command is blocked in its pre-exec hook waiting for our ack, and
    // is its parent's unreaped child, so `pid` cannot have been reused.
    // SAFETY: pidfd_open takes integers only.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    let ack: &[u8] = if pidfd >= 0 { b"k" } else { b"n" };
    let acked = write_all(ack_out, ack);
    // SAFETY: closing our own descriptors.
    unsafe { libc::close(ack_out) };
    // SAFETY: closing our own descriptors.
    unsafe { libc::close(pid_in) };
    if pidfd < 0 || !acked {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(1) }
    }
    loop {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd on our stack; count 1 matches.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 || (r < 0 && errno() != libc::EINTR) {
            break;
        }
    }
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(0) }
}

/// A keeper forked by [`prepare_kept_command`].
#[derive(Debug)]
pub struct Keeper {
    /// The keeper's PID; reap it with `waitpid` once the command has exited.
    pub pid: i32,
    // The parent's copies of the command's handshake ends; they must stay
    // open until the command is forked, and be closed right after.
    pid_w: OwnedFd,
    ack_r: OwnedFd,
}

impl Keeper {
    /// Close the parent's copies of the handshake descriptors; call right
    /// after the command was spawned (or failed to spawn).
    pub fn command_spawned(self) -> i32 {
        drop(self.pid_w);
        drop(self.ack_r);
        self.pid
    }
}

/// Fork a keeper process for a command about to be spawned from `cmd`, and
/// install the command's half of the handshake as a pre-exec hook.
///
/// The keeper is a fork of the caller, so it inherits the caller's SysV
/// attachments and counts in `shm_nattch`; it stays alive until the command
/// exits, even if the caller is killed. The command announces its PID to the
/// keeper from its pre-exec hook and does not exec until the keeper holds a
/// pidfd on it, so there is no moment at which the command runs unkept:
/// if the keeper is gone, the command's spawn fails (ECHILD) instead.
///
/// `cmd` must be spawned once, after this call and before
/// [`Keeper::command_spawned`].
pub fn prepare_kept_command(cmd: &mut Command) -> io::Result<Keeper> {
    let (pid_r, pid_w) = pipe_cloexec()?;
    let (ack_r, ack_w) = pipe_cloexec()?;
    let (pid_r_raw, ack_w_raw) = (pid_r.as_raw_fd(), ack_w.as_raw_fd());
    // SAFETY: the child runs only `keeper_main`, which is written for the
    // post-fork restrictions (raw syscalls, no allocation) and never returns.
    let keeper = match unsafe { fork() }? {
        None => keeper_main(pid_r_raw, ack_w_raw),
        Some(pid) => pid,
    };
    // The keeper's ends must not stay open here (or in the command, which
    // is forked from us), else the command would never see EOF if the
    // keeper died.
    drop(pid_r);
    drop(ack_w);
    let (pid_w_raw, ack_r_raw) = (pid_w.as_raw_fd(), ack_r.as_raw_fd());
    let hook = move || -> io::Result<()> {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let announced = write_all(pid_w_raw, &me.to_ne_bytes());
        // SAFETY: closing the command's copy of the descriptor.
        unsafe { libc::close(pid_w_raw) };
        let mut ack = [0u8; 1];
        let got = loop {
            // SAFETY: reading one byte into our stack buffer.
            let r = unsafe { libc::read(ack_r_raw, ack.as_mut_ptr().cast(), 1) };
            if r < 0 && errno() == libc::EINTR {
                continue;
            }
            break r;
        };
        // SAFETY: closing the command's copy of the descriptor.
        unsafe { libc::close(ack_r_raw) };
        if !announced || got != 1 || ack[0] != b'k' {
            return Err(io::Error::from_raw_os_error(libc::ECHILD));
        }
        unblock_all_signals();
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and calls only
    // async-signal-safe functions on integers and stack buffers.
    unsafe { cmd.pre_exec(hook) };
    Ok(Keeper {
        pid: keeper,
        pid_w,
        ack_r,
    })
}

/// Make `cmd` run as `uid`/`gid` with no supplementary groups (what
/// [`switch_user`] does, in the child between fork and exec). Used to run a
/// program owned by another user, such as a server binary asked for its
/// version, without our privileges.
pub fn run_command_as(cmd: &mut std::process::Command, uid: u32, gid: u32) {
    use std::os::unix::process::CommandExt;
    // switch_user makes only raw system calls on integers and a stack
    // array, so it may run between fork and exec.
    let hook = move || switch_user(uid, gid);
    // SAFETY: the hook runs in the single-threaded child between fork and
    // exec and makes only raw system calls on integers and a stack array.
    unsafe { cmd.pre_exec(hook) };
}

/// Make `cmd` receive SIGKILL when the thread that spawns it ends
/// (`PR_SET_PDEATHSIG`, prctl(2)), so that a child we time-limit does not
/// outlive us if we are killed. The signal setting is cleared when the
/// child's credentials change (prctl(2)), so this must be added after
/// [`run_command_as`]. If the parent is already gone when the hook runs,
/// the child exits at once.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid makes one system call on no arguments.
    let parent = unsafe { libc::getpid() };
    let hook = move || {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid makes one system call on no arguments.
        if unsafe { libc::getppid() } != parent {
            // SAFETY: _exit is async-signal-safe and ends the child.
            unsafe { libc::_exit(1) }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the single-threaded child between fork and
    // exec and makes only raw system calls on integers.
    unsafe { cmd.pre_exec(hook) };
}

/// Make `cmd` start with no signal blocked. The blocked mask is inherited
/// across fork and exec, so a program that blocks signals to read them from
/// a [`SignalFd`](crate::sys::signal::SignalFd) would otherwise start its
/// children deaf to SIGINT and SIGTERM.
pub fn unblock_signals_in(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let hook = || {
        unblock_all_signals();
        Ok(())
    };
    // SAFETY: the hook runs in the single-threaded child between fork and
    // exec and only calls pthread_sigmask on a stack sigset_t.
    unsafe { cmd.pre_exec(hook) };
}

/// Make `cmd`'s child write `pid N\n` (N its own PID) to `fd` between
/// fork and exec, before it runs anything of the command: a process
/// reading the other end (the fence's watchdog) learns whom to guard even
/// if the parent dies right after the fork. The write is one `write(2)`
/// of at most 25 bytes, so it is not interleaved with other lines on a
/// pipe (PIPE_BUF). If it fails (the reader is gone: EPIPE, SIGPIPE
/// ignored for the write), the spawn fails with that error and the
/// command does not run.
pub fn announce_pid_in(cmd: &mut std::process::Command, fd: RawFd) {
    use std::os::unix::process::CommandExt;
    let hook = move || {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut line = [0u8; 25];
        let n = pid_line(&mut line, pid);
        // SAFETY: `sigaction` is plain data; all-zero is a valid value
        // (no handler, empty mask, no flags).
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut ign: libc::sigaction = unsafe { std::mem::zeroed() };
        ign.sa_sigaction = libc::SIG_IGN;
        // SAFETY: both pointers are to live structs on our stack. The
        // hook runs in the single-threaded child between fork and exec,
        // where only async-signal-safe calls are made (sigaction, write).
        unsafe { libc::sigaction(libc::SIGPIPE, &ign, &mut old) };
        let ok = write_all(fd, &line[..n]);
        let err = errno();
        // SAFETY: restores the action read above.
        unsafe { libc::sigaction(libc::SIGPIPE, &old, std::ptr::null_mut()) };
        if ok {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(err))
        }
    };
    // SAFETY: the hook only calls getpid, sigaction and write on stack
    // buffers (see above), all async-signal-safe, and allocates nothing.
    unsafe { cmd.pre_exec(hook) };
}

/// `pid N\n` into `buf`, without allocating; its length.
fn pid_line(buf: &mut [u8; 25], pid: i32) -> usize {
    let mut digits = [0u8; 12];
    let mut v = pid.unsigned_abs();
    let mut d = 0;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf[..4].copy_from_slice(b"pid ");
    let mut n = 4;
    for i in (0..d).rev() {
        buf[n] = digits[i];
        n += 1;
    }
    buf[n] = b'\n';
    n + 1
}

/// Switch the whole process to `uid`/`gid` with no supplementary groups:
/// `setgroups(1, [gid])`, `setresgid(gid×3)`, `setresuid(uid×3)`, in that
/// order (groups can only be changed while still privileged). glibc applies
/// these to every thread.
///
/// # Errors
/// EPERM when not privileged.
#[doc(alias = "setresuid")]
pub fn switch_user(uid: u32, gid: u32) -> io::Result<()> {
    let groups = [gid];
    // SAFETY: `groups` is a valid array of one gid_t for the duration.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresgid(gid, gid, gid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresuid(uid, uid, uid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `atexit(f)` — run `f` when the process calls `exit` (also from
/// `std::process::exit`), as PostgreSQL's `on_proc_exit` does.
pub fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `f` is a plain `extern "C" fn()` with static lifetime.
    if unsafe { libc::atexit(f) } != 0 {
        return Err(io::Error::other("atexit failed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lines_are_written_without_allocating() {
        let mut buf = [0u8; 25];
        for (pid, want) in [
            (1, "pid 1\n"),
            (4194304, "pid 4194304\n"),
            (i32::MAX, "pid 2147483647\n"),
        ] {
            let n = pid_line(&mut buf, pid);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
        }
    }

    #[test]
    fn the_child_announces_its_pid_before_exec() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut cmd = std::process::Command::new("true");
        announce_pid_in(&mut cmd, w.as_raw_fd());
        let mut child = cmd.spawn().unwrap();
        drop(w);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got).unwrap();
        assert_eq!(got, format!("pid {}\n", child.id()));
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn with_the_reader_gone_the_command_does_not_run() {
        let (r, w) = pipe_cloexec().unwrap();
        drop(r);
        let mut cmd = std::process::Command::new("true");
        announce_pid_in(&mut cmd, w.as_raw_fd());
        let e = cmd.spawn().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
    }
}
