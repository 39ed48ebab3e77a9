//! Exit codes, in one place, and their `--help` text.
//!
//! Like grep and ripgrep: 0 yes, 1 a negative answer, 2 an error. `hold`
//! passes its command's status through, so its own failures use the codes
//! that `env`, `timeout` and `chroot` use for the same purpose.

/// `status`/`scan`: PostgreSQL runs, or would start safely.
pub const OK: u8 = 0;
/// `status`/`scan`: PostgreSQL would not start, or would start alongside
/// processes of an earlier server.
pub const BLOCKED: u8 = 1;
/// `status`/`scan`: the answer cannot be told, or an error.
pub const UNKNOWN: u8 = 2;

/// `fix`: the plan cannot fix the directory safely (a holder that cannot
/// be made to exit, holders hidden, a reason that is not the interlock's);
/// nothing was changed.
pub const FIX_REFUSED: u8 = 3;

/// `hold`: the data directory is in use by another process (a server, an
/// orphaned backend, another hold); COMMAND was not run. EX_TEMPFAIL.
pub const HOLD_BUSY: u8 = 75;
/// `hold`: failed before COMMAND could run (bad data directory, corrupt lock
/// file, system error).
pub const HOLD_FAILED: u8 = 125;
/// `hold`: COMMAND was found but could not be executed.
pub const HOLD_CANNOT_EXEC: u8 = 126;
/// `hold`: COMMAND was not found.
pub const HOLD_NOT_FOUND: u8 = 127;

/// Print a tooling error and its hint to stderr; the exit code for it.
pub fn error(e: &interlock_doctor::Error) -> u8 {
    // One line each, whatever the paths in them hold.
    eprintln!("interlock: {}", crate::status::esc(&e.to_string()));
    if let Some(hint) = e.hint() {
        eprintln!("hint: {}", crate::status::esc(&hint));
    }
    UNKNOWN
}

/// Shown after the top-level `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    status, scan: running, or would start safely
  1    status, scan: blocked (PostgreSQL would stop with a FATAL error), or
       it would start alongside processes of an earlier server (unsafe)
  2    status, scan: unknown (something that decides could not be read),
       or an error
  status, scan --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
       (the plugin API; see `interlock status --help`)
  fix: 0 ready to start (after --yes, or already) or running, 1 not yet
       (the plan waits for --yes, or did not finish), 2 unknown or error,
       3 refused
  preflight: 0 may start now, 1 must not start (blocked, orphans of the
       last server attached, or already running), 2 unknown or error
  explain: 0 nothing recognised, 1 failures explained, 2 unreadable
  limits: 0 ok, 1 a limit too low, 2 unknown or error
  control: 0 clean, 1 crash recovery next or damaged, 2 unreadable
  hold: COMMAND's own status, or 75 (directory in use), 125 (hold failed),
        126 (COMMAND not executable), 127 (COMMAND not found)
  run: as hold; 75 also when the etcd key is held or etcd is unreachable";

/// Shown after `hold --help`.
pub const HOLD_EXIT_CODES_HELP: &str = "\
Exit codes:
  N      COMMAND's exit status (128+N if COMMAND died of signal N)
  75     the data directory is in use (a server or its leftover processes); COMMAND did not run
  125    the hold failed before COMMAND ran
  126    COMMAND was found but could not be executed
  127    COMMAND was not found";

/// Shown after `run --help`.
pub const RUN_EXIT_CODES_HELP: &str = "\
Exit codes:
  N      COMMAND's exit status (128+N if COMMAND died of signal N; 131 after
         a self-fence's SIGQUIT, 137 after its SIGKILL)
  75     the data directory is in use here, or its etcd key is held by
         another holder (named), or etcd could not be reached at start;
         COMMAND did not run
  125    the run failed before COMMAND ran (no --etcd nor --local-only, an
         unreadable pg_control, a TTL below 3 s)
  126    COMMAND was found but could not be executed
  127    COMMAND was not found";

/// Shown after `status --help` and `scan --help`.
pub const STATUS_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    PostgreSQL runs, or would start safely
  1    blocked: it would stop with a FATAL error (shown); or unsafe: it would
       start alongside processes of an earlier server still attached; or,
       with --etcd, another host holds its fence (named)
  2    unknown: something that decides could not be read (run as root;
       with --etcd, etcd unreachable); or an error (no such directory)

With --format nagios (the Nagios plugin API):
  0    OK: PostgreSQL runs, or would start safely, and nothing was found
       worth a warning
  1    WARNING: it runs or would start safely, but something is left over
       or wrong (a leaked segment, leaked DSM files: any finding of
       severity warning or above)
  2    CRITICAL: blocked; or unsafe: it would start alongside processes of
       an earlier server (orphans attached)
  3    UNKNOWN: the answer cannot be told; an error (no such directory, a
       textfile that cannot be written); or invalid arguments
Status line: INTERLOCK STATE - DATADIR: what | perfdata holders, orphans
(critical above 0), leaked_segments (warning above 0), leaked_dsm_bytes
(B); then each finding of severity warning or above, one a line.";

/// Shown after `scan --help`.
pub const SCAN_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every data directory found runs, or would start safely
  1    at least one is blocked, or unsafe to start
  2    none is blocked, and at least one is unknown
With --etcd, a directory whose fence another host holds is blocked, and
etcd unreachable makes every directory unknown.

With --format nagios: the worst directory's state (CRITICAL over UNKNOWN
over WARNING over OK; the host's own leftovers, such as leaked segments
of no known directory, are a WARNING), 3 UNKNOWN for an error or invalid
arguments. Status line: totals; perfdata data_dirs, running, would_start,
unsafe, blocked, unknown, holders, orphans, leaked_segments,
leaked_dsm_bytes (B), and 'would_start DATADIR' (1 runs or would start
safely, else 0) per directory; then one line per directory: STATE
DATADIR: what.";

/// Shown after `preflight --help`.
pub const PREFLIGHT_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    PostgreSQL may start now: it would start, and no process of an
       earlier server is attached
  1    it must not start: it would stop with a FATAL error (shown, with the
       first thing to do); or processes of the last server are still
       attached (named: PID, role, state; --wait gives them time to exit,
       `interlock fix --yes DATADIR` stops them); or it already runs (the
       PID is named), so a start would fail; or, with --etcd, another host
       holds its fence (named)
  2    it cannot be told (run as root; with --etcd, etcd unreachable), or
       an error (no such directory or cluster)

systemd: ExecStartPre=+/usr/bin/interlock preflight --wait 30 --debian-cluster %I
(packaging/systemd/ has drop-ins for Debian's and the PGDG units).";

/// Shown after `control --help`.
pub const CONTROL_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    shut down cleanly (no recovery on the next start), or a server runs
  1    crash recovery will run on the next start; or the CRC does not match
       (the server will refuse to start); or the file disagrees with
       PG_VERSION
  2    the file cannot be read as a pg_control of 10-18 (missing,
       truncated, another version or byte order)";

/// Shown after `limits --help`.
pub const LIMITS_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every limit is ok (warnings allowed)
  1    at least one limit is too low (shown with the sysctl line to fix it)
  2    a limit could not be read (unknown), or an error";

/// Shown after `explain --help`.
pub const EXPLAIN_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    no startup or IPC failure recognised (informational ones may be shown)
  1    at least one failure recognised (explained)
  2    the log cannot be read, or is not a server log: mostly binary (more
       than half of the lines hold NUL bytes, invalid UTF-8 or control
       characters) with no report line, or csvlog/jsonlog only; text with
       nothing recognised is 0

Codes: segment_in_use, lock_file_exists, lock_file_empty,
lock_file_create_failed, lock_file_removed, shmget_failed (with errno),
anonymous_mmap_failed, huge_pages_unavailable, semaphores_exhausted,
dsm_segment_missing, dev_shm_full, data_dir_unusable, incompatible_version,
control_file_invalid, port_in_use, listen_failed, run_as_root,
process_killed";

/// Shown after `fix --help`.
pub const FIX_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    PostgreSQL would start safely now (after --yes, or already), or it runs
  1    not yet: the plan waits for --yes; or it was carried out and the
       directory is still blocked (the report says why)
  2    unknown: the diagnosis could not be made; or an error
  3    refused: a holder cannot be made to exit (uninterruptible sleep,
       another user, another PID namespace), holders are hidden, a server
       may be starting, or PostgreSQL stops for another reason; nothing was
       changed";
