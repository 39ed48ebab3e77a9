//! interlock-fence: the same guarantee as the local interlock — never two
//! servers on one data directory — where a directory is reachable from
//! several hosts or containers, through a lease in etcd held while the
//! server runs.
//!
//! [`timing`] holds the protocol's time constants and [`protocol`] the
//! holder's and the keeper's decisions (pure: times are passed in); the
//! code that renews and self-fences uses both, and so does the model that
//! checks the protocol.
//!
//! With the feature `etcd` (off by default: without it the crate pulls in
//! no HTTP stack and no serde):
//! - `etcd`: a small blocking etcd v3 client (grant, create-if-absent,
//!   keep-alive, revoke, get, get_prefix) on etcd's JSON gateway;
//! - `key`: the key (`/interlock/SYSID/NAME`), the holder's value, and
//!   `DATADIR/interlock.fence`, the holder's record of its fencing token;
//! - `lease`: taking the key under a lease (`Lease::acquire`) and renewing
//!   it (`Renewer`), on CLOCK_MONOTONIC;
//! - `fence`: all of it in one call for a Rust server, `Fence::acquire`:
//!   the key taken, the token recorded, the lease renewed, and the
//!   deadline enforced by a thread that calls `on_lost` (by default,
//!   `Fence::acquire_or_abort`, the process is killed). `interlock run`
//!   (`crates/interlock-cli/src/run.rs`) uses `lease` and `key` too, and
//!   adds a watchdog process, which also covers a frozen process: an
//!   in-process fence cannot (see `fence`'s documentation).
//!
//! ```no_run
//! # #[cfg(feature = "etcd")]
//! # fn main() -> Result<(), interlock_fence::fence::FenceError> {
//! use interlock_fence::fence::{Fence, FenceOptions};
//!
//! // Refused if another host holds the directory (the error names it).
//! let fence = Fence::acquire_or_abort(
//!     std::path::Path::new("/srv/pg/orders"),
//!     &FenceOptions::new("http://10.0.0.1:2379").name("orders-db"),
//! )?;
//! eprintln!("holding {} with fencing token {}", fence.key(), fence.token());
//! // ... serve; if the lease cannot be renewed in time, the process is
//! // killed before another host can take the key.
//! fence.release()?; // after the last write
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "etcd"))]
//! # fn main() {}
//! ```
//!
//! # The model, checked
//!
//! `tests/model.rs` checks the protocol exhaustively with `stateright`.
//! Two hosts, each with its `interlock` (alive, paused for any length,
//! dead), its keeper and its COMMAND (idle, running, stopping, stopped);
//! etcd's key with its holder and its lease's expiry on etcd's clock. Time
//! is discrete: one tick is `ttl / 12`, so the code's [`timing::Timing`]
//! gives renew every 2 ticks, fence after 4, stop within 2, TTL 12; the
//! tick counts are derived from `Timing`, and the decisions (when to renew,
//! when to fence, when a stop is done, which result counts) are the
//! functions of [`protocol`], called with the code's `Timing`.
//!
//! - Acquisition: a transaction that creates the key only if absent (or
//!   its lease expired), taken atomically (sent, handled, answered, COMMAND
//!   started in one step): the worst case, as a delay only starts COMMAND
//!   and the lease later.
//! - Renewals: one request in flight per host, sent when due; etcd handles
//!   it whenever the checker chooses (any delay) or it is lost; it succeeds
//!   if the host still holds an unexpired lease, and moves the expiry to
//!   `ttl` after etcd handled it. The response can be lost or arrive late;
//!   the holder counts from the send time of its last *known* success and
//!   heartbeats the keeper then. (The code counts a renewal only when a
//!   quorum read after it confirms the key is still bound to the lease,
//!   [`lease`]: fewer successes than the model allows, never more.)
//! - Fencing: while COMMAND runs, a live `interlock` or the keeper stops it
//!   at the deadline (time cannot pass it); the stop ends at any moment up
//!   to `stop_within` later (time cannot pass that either). A stop that
//!   ends at the very tick the lease lapses counts as overlapping.
//! - Faults, anywhere: `interlock` paused (and resumed, or not), killed;
//!   the whole host crashed (COMMAND dies with it; its request already on
//!   the wire can still reach etcd).
//! - Clocks: a host's clock may fall one tick behind etcd's, at any moment
//!   while it holds, once over the horizon. [`timing::MAX_CLOCK_DRIFT_PPM`]
//!   over a TTL is `ttl / 200`, far less than a tick (`ttl / 12`), so one
//!   tick of under-count over three TTLs over-approximates the real drift
//!   (the test asserts drift per TTL < one tick).
//! - Bounds: a horizon of three TTLs (36 ticks); each host acquires at most
//!   once (a host that fenced and retries is a new host); states whose
//!   COMMAND stopped forget that host's renewal state; the two hosts are
//!   symmetric.
//!
//! Not modelled: the whole host frozen (keeper and COMMAND paused with
//! `interlock`) for longer than the TTL — the fence does not cover it
//! without a watchdog.
//!
//! Checked: never two COMMANDs running (or stopping) at once; sometimes a
//! host runs COMMAND, and sometimes the other host takes over. With the
//! code's timing, no counterexample (about 462,000 unique states). The
//! checker finds the double start when the margin is removed (fence only at
//! `ttl`, or at `ttl - stop_within`), when a one-tick margin meets the
//! drift, when there is neither self-fence nor keeper, and when there is no
//! keeper and `interlock` is killed or paused.

#![forbid(unsafe_code)]

pub mod protocol;
pub mod timing;

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
pub mod fence;
#[cfg(feature = "etcd")]
pub mod key;
#[cfg(feature = "etcd")]
pub mod lease;
