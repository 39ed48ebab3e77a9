//! Pure parsers and writers for PostgreSQL's data-directory interlock files and for the
//! Linux `/proc` text they are checked against.
//!
//! This crate is the I/O-free layer of the interlock: every function takes bytes or text
//! that the caller has already read and returns plain values (or renders values back into
//! the exact bytes the producer writes). Keeping it free of syscalls and `unsafe` makes it
//! easy to test byte-for-byte against captured fixtures, to property-test round trips, and
//! to fuzz: no parser here panics on any input, and every rejection is a [`ParseError`]
//! that names the line, the field, what was expected and what was found.
//!
//! Modules:
//! * [`pidfile`]: `postmaster.pid` as PostgreSQL 10–18 write it;
//! * [`shmem_header`]: the `PGShmemHeader` at the start of the System V interlock segment;
//! * [`sysvipc`]: the kernel's `/proc/sysvipc/shm` table;
//! * [`maps`]: `/proc/PID/maps` lines, and finding System V attachments in them;
//! * [`procstat`]: `/proc/PID/stat`, `/proc/PID/status` and the `btime` line of `/proc/stat`;
//! * [`dsm`]: PostgreSQL's dynamic shared memory control segment;
//! * [`fencefile`]: `interlock.fence`, the fence holder's record in the data directory;
//! * [`pgcontrol`]: `global/pg_control` of 10–18, with its CRC-32C;
//! * [`serverlog`]: server and `pg_ctl` log output, and the startup failures in it;
//! * [`nettcp`]: the kernel's `/proc/net/tcp` and `/proc/net/tcp6` socket tables;
//! * [`sysctl`]: the kernel limit files, `/proc/meminfo`, `logind.conf`, `login.defs`;
//! * [`statfs`]: network and cluster file systems by `statfs` magic and `mountinfo` type, and `/proc/PID/mountinfo`;
//! * [`shell`]: shell quoting of the commands the tools print, and escaping of paths in prose.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod num;

pub mod dsm;
pub mod fencefile;
pub mod maps;
pub mod nettcp;
pub mod pgconf;
pub mod pgcontrol;
pub mod pgproc;
pub mod pidfile;
pub mod procstat;
pub mod serverlog;
pub mod shell;
pub mod shmem_header;
pub mod statfs;
pub mod sysctl;
pub mod sysvipc;
pub mod utc;

pub use error::ParseError;
